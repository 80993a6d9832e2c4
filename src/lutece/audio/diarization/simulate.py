"""EEND-style simulation of multi-speaker conversations from single-speaker utterances.

Fujita et al., "End-to-End Neural Speaker Diarization with Permutation-Free Objectives"
(Interspeech 2019), section 4.1, and the EEND recipe's mixture simulation: every speaker of
a conversation gets a track of 10-20 of their utterances, each preceded by a pause drawn
from an exponential distribution of mean ``sil_scale`` seconds (beta in the paper, 2 s in
the recipe); the tracks are summed, so overlaps arise where two speakers' tracks both
talk. Optionally each track is reverberated by its own room impulse response and noise is
added at a chosen SNR (the recipe uses MUSAN noises at 5-20 dB, reverberation with
probability 0.5).

Sources of utterances: :func:`synthetic_utterances` (voices of :mod:`lutece.audio.synth`,
the default), or :func:`utterances_from_folder` (LibriSpeech's ``speaker/chapter/*.flac``
layout, or one folder of files per speaker). :func:`write_conversations` writes the
result as WAV files + RTTM + UEM + a Kaldi-style data dir (``wav.scp``, ``segments``,
``utt2spk``, ``reco2dur``), the layout :func:`~.formats.read_kaldi_data_dir` reads back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.signal import fftconvolve

from ..io import load, save
from ..synth import background_noise, mix_at_snr, random_speaker, random_word, speak
from .annotation import Annotation, annotation_from_turns

__all__ = ["Conversation", "Utterance", "synthetic_utterances", "utterances_from_folder",
           "simulate_conversations", "synthetic_rir", "write_conversations"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


@dataclass(frozen=True)
class Utterance:
    """One utterance placed in a conversation: ``start``/``end`` in seconds."""

    speaker: str
    start: float
    end: float
    source: str


@dataclass
class Conversation:
    """A simulated recording.

    Attributes:
        uri: the recording's name (RTTM/UEM ``uri``, Kaldi ``recid``).
        wave: (samples,) float32 mixture.
        sample_rate: Hz.
        annotation: the reference: one turn per utterance, labelled by speaker.
        utterances: where each source utterance was placed.
    """

    uri: str
    wave: np.ndarray
    sample_rate: int
    annotation: Annotation
    utterances: list[Utterance] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.wave) / self.sample_rate


UtteranceSource = np.ndarray | str | os.PathLike


def synthetic_utterances(num_speakers: int, utterances_per_speaker: int, *, seed: int = 0,
                         words_per_utterance: tuple[int, int] = (2, 6),
                         vocabulary_size: int = 200, sample_rate: int = 16000,
                         first_speaker: int = 0) -> dict[str, list[np.ndarray]]:
    """Utterances of seeded synthetic voices (:func:`lutece.audio.synth.random_speaker`).

    Speaker ``i`` (named ``"spk{i:03d}"``) is the same voice for a given ``seed`` whatever
    ``num_speakers`` is, so ``first_speaker`` can carve disjoint train/test voice sets out
    of one seed. Returns speaker -> list of (samples,) float32 waves at ``sample_rate``,
    each ``words_per_utterance`` words (inclusive range) drawn from a shared vocabulary.
    """
    fn = "synthetic_utterances"
    for name, value in (("num_speakers", num_speakers),
                        ("utterances_per_speaker", utterances_per_speaker)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
    low, high = words_per_utterance
    if not 1 <= low <= high:
        raise ValueError(f"{fn}: words_per_utterance must be (low, high) with 1 <= low <= "
                         f"high, got {words_per_utterance!r}")
    vocabulary_rng = np.random.default_rng([seed, 7001])
    vocabulary = [random_word(vocabulary_rng) for _ in range(vocabulary_size)]
    result = {}
    for index in range(first_speaker, first_speaker + num_speakers):
        speaker = random_speaker(np.random.default_rng([seed, 7002, index]))
        rng = np.random.default_rng([seed, 7003, index])
        waves = []
        for _ in range(utterances_per_speaker):
            words = [vocabulary[int(i)] for i in
                     rng.integers(0, vocabulary_size, int(rng.integers(low, high + 1)))]
            waves.append(speak(words, speaker, sample_rate=sample_rate, rng=rng))
        result[f"spk{index:03d}"] = waves
    return result


def utterances_from_folder(root: str | os.PathLike) -> dict[str, list[Path]]:
    """Single-speaker utterance files found under ``root``, grouped by speaker.

    Two layouts are recognised: LibriSpeech's ``root/SPEAKER/CHAPTER/*.flac`` and one folder
    per speaker, ``root/SPEAKER/*.wav`` (any of .wav, .flac, .ogg). The speaker is the
    first folder below ``root``. Files are listed in sorted order.
    """
    fn = "utterances_from_folder"
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{fn}: '{root}' is not a directory")
    result: dict[str, list[Path]] = {}
    for speaker_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in speaker_dir.rglob("*")
                       if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if files:
            result[speaker_dir.name] = files
    if not result:
        raise ValueError(f"{fn}: no speaker folders with audio files "
                         f"({', '.join(AUDIO_EXTENSIONS)}) under '{root}'; expected "
                         f"root/SPEAKER/[CHAPTER/]*.wav")
    return result


def synthetic_rir(rt60: float, sample_rate: int, rng: np.random.Generator, *,
                  direct_to_reverberant_db: float = 3.0) -> np.ndarray:
    """A room impulse response: a unit direct path followed by exponentially decaying
    Gaussian noise whose energy falls 60 dB in ``rt60`` seconds (Polack's statistical
    model), scaled so the direct path is ``direct_to_reverberant_db`` above the tail.
    Returns (samples,) float64 of length ``rt60 * sample_rate``."""
    length = max(int(rt60 * sample_rate), 2)
    times = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-3.0 * math.log(10) * times / rt60)
    tail[0] = 0.0
    tail *= math.sqrt(10 ** (-direct_to_reverberant_db / 10) / max(np.sum(tail**2), 1e-12))
    tail[0] = 1.0
    return tail


def _active_span(wave: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """First and last sample (exclusive) of the part of ``wave`` within 40 dB of its
    loudest 10 ms frame: the utterance without its leading/trailing silence."""
    hop = max(sample_rate // 100, 1)
    frames = len(wave) // hop
    if frames == 0:
        return 0, len(wave)
    energy = np.mean(wave[:frames * hop].reshape(frames, hop).astype(np.float64) ** 2, axis=1)
    loud = np.flatnonzero(energy > energy.max() * 1e-4)
    if len(loud) == 0:
        return 0, 0
    return int(loud[0] * hop), int(min((loud[-1] + 1) * hop, len(wave)))


def _load_source(source: UtteranceSource, sample_rate: int) -> np.ndarray:
    if isinstance(source, np.ndarray):
        if source.ndim != 1:
            raise ValueError(f"simulate_conversations: an utterance array must be 1-d "
                             f"(samples,), got shape {source.shape}")
        return source.astype(np.float32, copy=False)
    wave, _ = load(source, sample_rate)
    return wave[0].numpy()


def _check_range(fn: str, name: str, value, low_bound: float) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, Sequence) or len(value) != 2
            or not low_bound <= value[0] <= value[1]):
        raise ValueError(f"{fn}: {name} must be a number or a (low, high) pair with "
                         f"{low_bound} <= low <= high, got {value!r}")
    return tuple(value)


def simulate_conversations(
    utterances_by_speaker: Mapping[str, Sequence[UtteranceSource]],
    num_conversations: int,
    *,
    num_speakers: int | tuple[int, int] = (1, 3),
    utterances_per_speaker: int | tuple[int, int] = (10, 20),
    sil_scale: float = 2.0,
    snr_db: float | tuple[float, float] | None = None,
    noise_kinds: Sequence[str] = ("pink", "babble", "white"),
    reverb_probability: float = 0.0,
    rt60: tuple[float, float] = (0.2, 0.6),
    sample_rate: int = 16000,
    seed: int = 0,
    uri_prefix: str = "conv",
) -> list[Conversation]:
    """Simulate ``num_conversations`` recordings, EEND-style (module docstring).

    Args:
        utterances_by_speaker: speaker -> utterances, each a (samples,) array at
            ``sample_rate`` or a path to an audio file (resampled to ``sample_rate`` on
            load).
        num_conversations: how many recordings.
        num_speakers: speakers per conversation, or an inclusive (low, high) range drawn
            uniformly per conversation; speakers are drawn without replacement.
        utterances_per_speaker: per speaker and conversation, inclusive range (drawn with
            replacement from that speaker's pool when the pool is smaller).
        sil_scale: mean pause before each utterance of a track, seconds (EEND's beta).
        snr_db: noise level (a value or a range drawn per conversation); None: no noise.
        noise_kinds: :func:`lutece.audio.synth.background_noise` kinds to draw from.
        reverb_probability: chance that a conversation's tracks are reverberated, each by
            its own :func:`synthetic_rir` with RT60 drawn from ``rt60`` seconds.
        seed: everything is drawn from ``numpy.random.default_rng([seed, index])``.

    Returns:
        Conversations whose annotation has one turn per utterance (the utterance's span
        without its own leading and trailing silence).
    """
    fn = "simulate_conversations"
    if not isinstance(utterances_by_speaker, Mapping) or not utterances_by_speaker:
        raise ValueError(f"{fn}: utterances_by_speaker must be a non-empty mapping speaker -> "
                         f"utterances")
    for speaker, pool in utterances_by_speaker.items():
        if isinstance(pool, (str, np.ndarray)) or len(pool) == 0:
            raise ValueError(f"{fn}: speaker {speaker!r} must map to a non-empty list of "
                             f"utterances")
    if isinstance(num_conversations, bool) or not isinstance(num_conversations, int) \
            or num_conversations < 1:
        raise ValueError(f"{fn}: num_conversations must be a positive int, "
                         f"got {num_conversations!r}")
    speakers_range = _check_range(fn, "num_speakers", num_speakers, 1)
    if speakers_range[1] > len(utterances_by_speaker):
        raise ValueError(f"{fn}: num_speakers asks for up to {speakers_range[1]} speakers but "
                         f"only {len(utterances_by_speaker)} have utterances")
    count_range = _check_range(fn, "utterances_per_speaker", utterances_per_speaker, 1)
    if not sil_scale > 0:
        raise ValueError(f"{fn}: sil_scale must be > 0 seconds, got {sil_scale!r}")
    snr_range = None if snr_db is None else _check_range(fn, "snr_db", snr_db, -math.inf)
    if not 0 <= reverb_probability <= 1:
        raise ValueError(f"{fn}: reverb_probability must be in [0, 1], "
                         f"got {reverb_probability!r}")
    rt60_range = _check_range(fn, "rt60", rt60, 0.05)
    names = sorted(utterances_by_speaker)
    cache: dict[tuple[str, int], np.ndarray] = {}

    def utterance(speaker: str, index: int) -> np.ndarray:
        key = (speaker, index)
        if key not in cache:
            wave = _load_source(utterances_by_speaker[speaker][index], sample_rate)
            first, last = _active_span(wave, sample_rate)
            cache[key] = wave[first:last]
        return cache[key]

    conversations = []
    for index in range(num_conversations):
        rng = np.random.default_rng([seed, index])
        count = int(rng.integers(speakers_range[0], speakers_range[1] + 1))
        chosen = [names[int(i)] for i in rng.choice(len(names), count, replace=False)]
        tracks, placed = [], []
        for speaker in chosen:
            pool = len(utterances_by_speaker[speaker])
            how_many = int(rng.integers(count_range[0], count_range[1] + 1))
            picks = rng.choice(pool, how_many, replace=how_many > pool)
            pieces, cursor = [], 0
            for pick in picks:
                pause = int(round(rng.exponential(sil_scale) * sample_rate))
                wave = utterance(speaker, int(pick))
                if len(wave) == 0:
                    continue
                pieces += [np.zeros(pause, np.float32), wave]
                start = cursor + pause
                cursor = start + len(wave)
                placed.append(Utterance(speaker, start / sample_rate, cursor / sample_rate,
                                        f"{speaker}:{int(pick)}"))
            tracks.append(np.concatenate(pieces) if pieces else np.zeros(0, np.float32))
        length = max(len(track) for track in tracks) + int(0.1 * sample_rate)
        mixture = np.zeros(length, np.float64)
        reverberate = rng.random() < reverb_probability
        for track in tracks:
            if reverberate:
                rir = synthetic_rir(float(rng.uniform(*rt60_range)), sample_rate, rng)
                track = fftconvolve(track, rir)[:length]
            mixture[:len(track)] += track
        if snr_range is not None:
            kind = noise_kinds[int(rng.integers(len(noise_kinds)))]
            noise = background_noise(kind, length, sample_rate=sample_rate, rng=rng)
            speech = np.zeros(length, bool)
            for item in placed:
                speech[int(item.start * sample_rate):int(item.end * sample_rate)] = True
            mixture = _mix_noise(mixture, noise, float(rng.uniform(*snr_range)),
                                            speech)
        peak = np.max(np.abs(mixture))
        if peak > 0.95:
            mixture *= 0.95 / peak
        uri = f"{uri_prefix}{index:05d}"
        placed.sort(key=lambda item: (item.start, item.speaker))
        annotation = annotation_from_turns(((u.start, u.end, u.speaker) for u in placed), uri)
        conversations.append(Conversation(uri, mixture.astype(np.float32), sample_rate,
                                          annotation, placed))
    return conversations


def _mix_noise(signal: np.ndarray, noise: np.ndarray, snr_db: float, speech: np.ndarray
               ) -> np.ndarray:
    """``signal + g * noise`` with the SNR measured over the speech samples (a
    conversation's silences do not count as signal); no speech: the noise at RMS 0.01."""
    if speech.any() and np.any(signal[speech]):
        return mix_at_snr(signal, noise, snr_db, active=speech)
    return signal + 0.1 * noise


def write_conversations(conversations: Sequence[Conversation], out_dir: str | os.PathLike
                        ) -> Path:
    """Write ``conversations`` as a Kaldi-style data dir that diarization training reads.

    Layout of ``out_dir``: ``wav/URI.wav`` (16-bit PCM), ``rttm`` (all references),
    ``uem`` (each file scored whole), ``wav.scp`` (``URI wav/URI.wav``, relative to
    ``out_dir``), ``segments`` and ``utt2spk`` (one utterance per placed source, id
    ``SPEAKER-URI-START-END`` in centiseconds, the Kaldi convention that sorts by speaker),
    ``reco2dur`` (seconds). Every file is written atomically. Returns ``out_dir``.
    """
    from .formats import (
        write_reco2dur,
        write_rttm,
        write_segments,
        write_uem,
        write_utt2spk,
        write_wav_scp,
    )

    out_dir = Path(out_dir)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    scp, segments, utt2spk, durations, uem = {}, [], {}, {}, {}
    for conversation in conversations:
        relative = f"wav/{conversation.uri}.wav"
        save(out_dir / relative, torch.from_numpy(conversation.wave), conversation.sample_rate)
        scp[conversation.uri] = relative
        durations[conversation.uri] = conversation.duration
        uem[conversation.uri] = [(0.0, conversation.duration)]
        for item in conversation.utterances:
            utt = (f"{item.speaker}-{conversation.uri}-{round(item.start * 100):07d}-"
                   f"{round(item.end * 100):07d}")
            segments.append((utt, conversation.uri, item.start, item.end))
            utt2spk[utt] = item.speaker
    segments.sort()
    write_rttm(out_dir / "rttm", {c.uri: c.annotation for c in conversations})
    write_uem(out_dir / "uem", uem)
    write_wav_scp(out_dir / "wav.scp", scp)
    write_segments(out_dir / "segments", segments)
    write_utt2spk(out_dir / "utt2spk", dict(sorted(utt2spk.items())))
    write_reco2dur(out_dir / "reco2dur", durations)
    return out_dir
