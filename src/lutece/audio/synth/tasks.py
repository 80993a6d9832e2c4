"""Labelled audio classification tasks that stand in for real corpora.

==============  =====================================================  =====================
task            stands in for                                          classes (default)
==============  =====================================================  =====================
``speaker``     speaker identification (VoxCeleb-like): two words      10 speakers
                from a shared 20-word vocabulary per clip
``word``        keyword spotting (Speech Commands-like): one word by   10 words
                a fresh random speaker, at a random place in the clip
``pitch``       NSynth pitch: a note of a random family, instrument    24 MIDI pitches
                and velocity                                           (48..71)
``instrument``  NSynth instrument family: a note at a random pitch     11 families
                in the family's register and a random velocity
``event``       acoustic events in scenes (ESC / DCASE-like)           10 event classes
``word_noisy``  ``word`` in babble (2 in 5 clips) or coloured noise    10 words
                at -5..5 dB SNR
==============  =====================================================  =====================

*Identities* (the speakers, the words' phone sequences, the instruments' timbres: four per
family) come from ``identity_seed``; *clips* come from ``seed``. A train split (``seed=1``)
and a test split (``seed=2``) made with the same ``identity_seed`` therefore share speakers,
words and instruments, and differ in everything drawn per clip: which words and (in the
word tasks) which speaker, the utterance's prosody and timing, the note's tuning, velocity
and instrument among the family's four, the placement in the clip, the room (a random
Schroeder-Moorer reverberation on half of the speech and event clips), the channel's tilt,
the background (white, pink, brown or babble; babble clips are random crops of 4 s of six
voices made once per call from ``seed``), its SNR and the level. Clip ``i`` is drawn from
``numpy.random.default_rng([seed, task, 0, i])`` and its label from a permutation of the
classes seeded by ``(seed, task, 1, i // num_classes)``, so it does not depend on how many
clips are made; any ``num_classes`` x k clips are exactly balanced, other counts within one
clip per class.

Every clip is exactly ``clip_seconds`` long (sounds longer than that are randomly cropped),
mixed with its background at an SNR measured over the sound's active part
(:func:`~lutece.audio.synth.events.mix_at_snr`), then peak-normalised to a random level of
-20..0 dB re full scale, so |x| <= 1 always.

The defaults were tuned so that a small CNN on log-mel features (three conv blocks of
32-64 channels, ~50k parameters, 240 training clips, 300 Adam steps) learns every task
well above chance and none perfectly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from ..._validation import check_choice
from ._common import (
    check_int,
    check_positive,
    check_sample_rate,
    coloured_noise,
    num_samples,
    peak,
)
from ._kernels import schroeder_reverb
from .events import EVENT_CLASSES, _babble, make_event, mix_at_snr
from .music import (
    FAMILIES,
    MIDI_RANGE,
    Instrument,
    hz_to_midi,
    play_note,
    random_instrument,
)
from .speech import Speaker, Word, random_speaker, random_word, speak

__all__ = ["TASKS", "LabelledAudio", "make_task", "task_vocabulary", "task_speakers",
           "task_instruments"]

TASKS: tuple[str, ...] = ("speaker", "word", "pitch", "instrument", "event", "word_noisy")
"""The task names :func:`make_task` knows."""

_PITCH_LOWEST = 48  # the pitch task's classes are MIDI 48, 49, ... (C3 upwards)
_VELOCITIES = (25, 50, 75, 100, 127)  # NSynth's velocities
_INSTRUMENTS_PER_FAMILY = 4
# MIDI pitch range of each family in the instrument task: roughly the instruments' ranges,
# so that, as in NSynth, register is a (weak) cue to the family.
_FAMILY_PITCHES = {"bass": (28, 60), "brass": (40, 80), "flute": (60, 96),
                   "guitar": (40, 84), "keyboard": (28, 100), "mallet": (53, 96),
                   "organ": (36, 96), "reed": (45, 84), "string": (36, 96),
                   "synth_lead": (40, 90), "vocal": (45, 79)}
_VOCABULARY_SIZE = 20  # the speaker task draws its words from this many


@dataclass(frozen=True)
class _TaskSpec:
    default_classes: int
    max_classes: int
    snr_db: tuple[float, float]  # default SNR range (dB)
    backgrounds: tuple[str, ...]  # background kinds drawn uniformly
    salt: int


_SPECS = {
    "speaker": _TaskSpec(10, 50, (10.0, 30.0), ("white", "pink", "brown", "babble"), 11),
    "word": _TaskSpec(10, _VOCABULARY_SIZE, (10.0, 30.0), ("white", "pink", "brown", "babble"),
                      12),
    "pitch": _TaskSpec(24, MIDI_RANGE[1] - _PITCH_LOWEST + 1, (10.0, 30.0),
                       ("white", "pink", "brown"), 13),
    "instrument": _TaskSpec(len(FAMILIES), len(FAMILIES), (10.0, 30.0),
                            ("white", "pink", "brown"), 14),
    "event": _TaskSpec(len(EVENT_CLASSES), len(EVENT_CLASSES), (-5.0, 15.0),
                       ("white", "pink", "brown", "babble"), 15),
    "word_noisy": _TaskSpec(10, _VOCABULARY_SIZE, (-5.0, 5.0),
                            ("babble", "babble", "pink", "brown", "white"), 16),
}


@dataclass(frozen=True, eq=False)
class LabelledAudio(Dataset):
    """A labelled set of equal-length mono clips, ready for a training loop.

    Attributes:
        waves: (n, samples) float32 in [-1, 1].
        labels: (n,) int64 in 0..len(class_names) - 1.
        class_names: the name of each label.
        sample_rate: Hz.
        task: the task's name (see :data:`TASKS`).
        metadata: per-clip extras, each (n,) (e.g. "snr_db", "gain_db", "onset_seconds",
            and task-specific ones such as "pitch", "velocity", "family").

    ``dataset[i]`` is ``(wave (1, samples) float32, label () int64)``: channels-first, so
    ``torch.utils.data.default_collate`` gives ``(batch, 1, samples)`` and ``(batch,)``.
    """

    waves: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    sample_rate: int
    task: str
    metadata: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.waves[index].unsqueeze(0), self.labels[index]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def clip_seconds(self) -> float:
        return self.waves.shape[1] / self.sample_rate


def _edit_distance(first: tuple[str, ...], second: tuple[str, ...]) -> int:
    """Levenshtein distance between two phone sequences."""
    row = list(range(len(second) + 1))
    for i, a in enumerate(first, 1):
        previous, row[0] = row[0], i
        for j, b in enumerate(second, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (a != b))
    return row[-1]


def task_vocabulary(identity_seed: int, size: int = _VOCABULARY_SIZE) -> list[Word]:
    """The words of the word and speaker tasks for ``identity_seed``: random words
    (:func:`random_word`) accepted only when at least 3 phone edits away from every word
    already chosen (so that no two differ by one consonant, as in a keyword vocabulary
    designed to be spoken), with distinct spellings. The first k words do not depend on
    ``size``."""
    rng = np.random.default_rng([identity_seed, 101])
    words: list[Word] = []
    while len(words) < size:
        word = random_word(rng)
        if all(word.text != other.text and _edit_distance(word.phones, other.phones) >= 3
               for other in words):
            words.append(word)
    return words


def task_speakers(identity_seed: int, count: int) -> list[Speaker]:
    """The speakers of the speaker task for ``identity_seed`` (prefix-stable in count)."""
    rng = np.random.default_rng([identity_seed, 102])
    return [random_speaker(rng) for _ in range(count)]


def task_instruments(identity_seed: int) -> dict[str, list[Instrument]]:
    """The instruments of the pitch and instrument tasks for ``identity_seed``: 4 per
    family (family -> list)."""
    return {family: [random_instrument(family, rng) for _ in range(_INSTRUMENTS_PER_FAMILY)]
            for f, family in enumerate(FAMILIES)
            for rng in [np.random.default_rng([identity_seed, 103, f])]}


@dataclass
class _Context:
    """What every clip of one make_task call shares."""

    task: str
    sample_rate: int
    length: int  # samples per clip
    snr_db: tuple[float, float]
    backgrounds: tuple[str, ...]
    vocabulary: list[Word]
    speakers: list[Speaker]
    instruments: dict[str, list[Instrument]]
    babble_bank: Callable[[], np.ndarray]


def _place(sound: np.ndarray, length: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """Put ``sound`` at a uniformly random offset in a clip of ``length`` samples (a random
    crop when longer). Returns the clip, its active mask and the offset in samples."""
    clip = np.zeros(length)
    active = np.zeros(length, dtype=bool)
    if len(sound) >= length:
        start = int(rng.integers(0, len(sound) - length + 1))
        clip[:] = sound[start:start + length]
        active[:] = True
        return clip, active, -start
    offset = int(rng.integers(0, length - len(sound) + 1))
    clip[offset:offset + len(sound)] = sound
    active[offset:offset + len(sound)] = True
    return clip, active, offset


def _room(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random room: x plus a Schroeder-Moorer reverberation (four low-passed feedback
    combs of 25-50 ms, two all-passes; see ``schroeder_reverb``) with RT60 0.1-0.7 s and a
    direct-to-reverberant energy ratio of 3-15 dB. Keeps the input's length."""
    rt60 = rng.uniform(0.1, 0.7)
    delays = np.sort(rng.uniform(0.025, 0.05, 4)) * sample_rate
    gains = 10.0 ** (-3 * delays / sample_rate / rt60)  # -60 dB after rt60 seconds
    wet = schroeder_reverb(x, delays.astype(np.int64), gains, rng.uniform(0.1, 0.5),
                           (np.array([0.005, 0.0017]) * sample_rate).astype(np.int64), 0.7)
    ratio = 10.0 ** (rng.uniform(3, 15) / 10)
    scale = math.sqrt(float(np.sum(x**2)) / (ratio * max(float(np.sum(wet**2)), 1e-12)))
    return x + scale * wet


def _channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random first-order tilt: y = x + c (x[n] - x[n-1]) / 2 with c in [-0.8, 0.8]
    (+-5 dB at high frequencies), as microphones and channels differ."""
    c = rng.uniform(-0.8, 0.8)
    return x + 0.5 * c * np.diff(x, prepend=0.0)


def _background(kind: str, ctx: _Context, rng: np.random.Generator) -> np.ndarray:
    if kind == "babble":
        bank = ctx.babble_bank()
        start = int(rng.integers(0, len(bank) - ctx.length + 1))
        return bank[start:start + ctx.length] * rng.choice([-1.0, 1.0])
    return coloured_noise(rng, ctx.length, ("white", "pink", "brown").index(kind))


def _speech_clip(word: Word | list[Word], speaker: Speaker, ctx: _Context, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    wave = speak(word, speaker, sample_rate=ctx.sample_rate, rng=rng).astype(np.float64)
    if rng.random() < 0.5:
        wave = _room(np.concatenate([wave, np.zeros(int(0.3 * ctx.sample_rate))]),
                     ctx.sample_rate, rng)
    clip, active, offset = _place(wave, ctx.length, rng)
    return _channel(clip, rng), active, offset


def _render_clip(label: int, ctx: _Context, rng: np.random.Generator
                 ) -> tuple[np.ndarray, dict[str, float]]:
    """One clip (unscaled, before the background) and its metadata."""
    task = ctx.task
    extra: dict[str, float] = {}
    if task == "speaker":
        # two words, so that a one-second clip is mostly speech (cropped when longer)
        chosen = rng.integers(len(ctx.vocabulary), size=2)
        clip, active, offset = _speech_clip([ctx.vocabulary[k] for k in chosen],
                                            ctx.speakers[label], ctx, rng)
        extra["word"] = int(chosen[0])
    elif task in ("word", "word_noisy"):
        speaker = random_speaker(rng)
        clip, active, offset = _speech_clip(ctx.vocabulary[label], speaker, ctx, rng)
        extra["speaker_f0_hz"] = speaker.f0_hz
    elif task in ("pitch", "instrument"):
        if task == "pitch":
            pitch = _PITCH_LOWEST + label
            family_index = int(rng.integers(len(FAMILIES)))
        else:
            family_index = label
            low, high = _FAMILY_PITCHES[FAMILIES[label]]
            # keep the fundamental (and its vibrato) well below Nyquist at low rates
            high = min(high, int(hz_to_midi(0.48 * ctx.sample_rate / 1.1)))
            pitch = int(rng.integers(min(low, high), high + 1))
        family = FAMILIES[family_index]
        velocity = _VELOCITIES[int(rng.integers(len(_VELOCITIES)))]
        choices = ctx.instruments[family]
        which = int(rng.integers(len(choices)))
        seconds = ctx.length / ctx.sample_rate
        note = play_note(pitch, velocity, family, sample_rate=ctx.sample_rate,
                         duration=seconds * rng.uniform(0.8, 1.0), rng=rng,
                         instrument=choices[which]).astype(np.float64)
        clip = np.zeros(ctx.length)
        offset = int(rng.integers(0, max(ctx.length - len(note), 0) + 1))
        clip[offset:offset + len(note)] = note[: ctx.length - offset]
        active = np.abs(clip) > 1e-3 * peak(clip)
        extra.update(pitch=pitch, family=family_index, velocity=velocity, instrument=which)
    else:  # event
        event = make_event(EVENT_CLASSES[label], sample_rate=ctx.sample_rate,
                           rng=rng).astype(np.float64)
        if rng.random() < 0.5:
            event = _room(np.concatenate([event, np.zeros(int(0.3 * ctx.sample_rate))]),
                          ctx.sample_rate, rng)
        clip, active, offset = _place(event, ctx.length, rng)
        clip = _channel(clip, rng)
    extra["onset_seconds"] = offset / ctx.sample_rate
    kind = ctx.backgrounds[int(rng.integers(len(ctx.backgrounds)))]
    snr = float(rng.uniform(*ctx.snr_db))
    clip = mix_at_snr(clip, _background(kind, ctx, rng), snr, active=active)
    gain_db = float(rng.uniform(-20.0, 0.0))
    clip *= 10.0 ** (gain_db / 20) / max(peak(clip), 1e-12)
    extra.update(snr_db=snr, gain_db=gain_db)
    return clip, extra


def _labels(num_clips: int, num_classes: int, seed: int, salt: int) -> np.ndarray:
    """Label of clip i: entry i % C of a permutation of the C classes seeded by
    (seed, salt, i // C): balanced, shuffled, and the same whatever num_clips is."""
    blocks = -(-num_clips // num_classes)
    labels = np.concatenate([np.random.default_rng([seed, salt, 1, block]).permutation(
        num_classes) for block in range(blocks)])
    return labels[:num_clips]


def _snr_range(fn: str, snr_db: object, default: tuple[float, float]) -> tuple[float, float]:
    if snr_db is None:
        return default
    if isinstance(snr_db, (int, float, np.number)) and not isinstance(snr_db, bool):
        low = high = float(snr_db)
    elif isinstance(snr_db, (tuple, list)) and len(snr_db) == 2 and all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in snr_db):
        low, high = float(snr_db[0]), float(snr_db[1])
    else:
        raise ValueError(f"{fn}: snr_db must be None, a number of dB or a (low, high) pair, "
                         f"got {snr_db!r}")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"{fn}: snr_db must be finite with low <= high, got {snr_db!r}")
    return low, high


def make_task(name: str, num_clips: int, *, seed: int, sample_rate: int = 16000,
              clip_seconds: float = 1.0, identity_seed: int = 0,
              snr_db: float | tuple[float, float] | None = None,
              num_classes: int | None = None) -> LabelledAudio:
    """Generate ``num_clips`` labelled clips of task ``name`` (see the module docstring).

    Args:
        name: one of :data:`TASKS`.
        num_clips: number of clips (>= 1), spread evenly over the classes.
        seed: the clips' seed (>= 0); splits use different seeds.
        sample_rate: Hz (>= 4000; the pitch task needs its top pitch below 0.48 x it).
        clip_seconds: length of every clip in seconds.
        identity_seed: the seed of the speakers, words and instruments (>= 0).
        snr_db: background SNR in dB, fixed (a number) or drawn uniformly from (low, high);
            None: the task's default (speaker, word 5..30, pitch, instrument 10..30,
            event 0..20, word_noisy -5..5).
        num_classes: number of speakers (<= 50), words (<= 20) or pitches (MIDI 48
            upwards, <= 61); None: the task's default (10, 10, 24). The instrument and
            event tasks have a fixed set (11 and 10).

    Returns:
        A :class:`LabelledAudio`.
    """
    fn = "make_task"
    check_choice(fn, "name", name, TASKS)
    spec = _SPECS[name]
    num_clips = check_int(fn, "num_clips", num_clips, 1)
    seed = check_int(fn, "seed", seed, 0)
    identity_seed = check_int(fn, "identity_seed", identity_seed, 0)
    sample_rate = check_sample_rate(fn, sample_rate)
    clip_seconds = check_positive(fn, "clip_seconds", clip_seconds)
    snr_range = _snr_range(fn, snr_db, spec.snr_db)
    if num_classes is None:
        num_classes = spec.default_classes
    elif name in ("instrument", "event") and num_classes != spec.default_classes:
        raise ValueError(f"{fn}: num_classes of task {name!r} is fixed at "
                         f"{spec.default_classes}, got {num_classes!r}")
    num_classes = check_int(fn, "num_classes", num_classes, 2, spec.max_classes)
    if name == "pitch" and 0.48 * sample_rate <= float(
            440.0 * 2.0 ** ((_PITCH_LOWEST + num_classes - 1 - 69) / 12)) * 1.1:
        raise ValueError(f"{fn}: sample_rate {sample_rate} Hz is too low for MIDI pitch "
                         f"{_PITCH_LOWEST + num_classes - 1}; raise it or lower num_classes")

    vocabulary = task_vocabulary(identity_seed) if name in ("speaker", "word",
                                                            "word_noisy") else []
    length = num_samples(clip_seconds, sample_rate)
    bank: list[np.ndarray] = []

    def babble_bank() -> np.ndarray:
        # Made once per call from the seed (not per clip): 4 s of 6 voices, or more for long
        # clips; clips take random crops of it.
        if not bank:
            size = max(4 * sample_rate, 2 * length)
            bank.append(_babble(size, sample_rate, np.random.default_rng([seed, spec.salt, 2]),
                                6).astype(np.float64))
        return bank[0]

    ctx = _Context(task=name, sample_rate=sample_rate, length=length, snr_db=snr_range,
                   backgrounds=spec.backgrounds, vocabulary=vocabulary,
                   speakers=task_speakers(identity_seed, num_classes) if name == "speaker"
                   else [],
                   instruments=task_instruments(identity_seed) if name in (
                       "pitch", "instrument") else {},
                   babble_bank=babble_bank)
    labels = _labels(num_clips, num_classes, seed, spec.salt)
    waves = np.empty((num_clips, length), dtype=np.float32)
    extras: dict[str, list[float]] = {}
    for index, label in enumerate(labels):
        rng = np.random.default_rng([seed, spec.salt, 0, index])
        clip, extra = _render_clip(int(label), ctx, rng)
        waves[index] = np.clip(clip, -1.0, 1.0)
        for key, value in extra.items():
            extras.setdefault(key, []).append(value)
    if name == "speaker":
        class_names = [f"speaker{k}" for k in range(num_classes)]
    elif name in ("word", "word_noisy"):
        class_names = [word.text for word in vocabulary[:num_classes]]
    elif name == "pitch":
        class_names = [f"midi{_PITCH_LOWEST + k}" for k in range(num_classes)]
    elif name == "instrument":
        class_names = list(FAMILIES)
    else:
        class_names = list(EVENT_CLASSES)
    metadata = {key: torch.tensor(values, dtype=torch.float64 if any(
        isinstance(v, float) for v in values) else torch.int64)
        for key, values in extras.items() if len(values) == num_clips}
    return LabelledAudio(waves=torch.from_numpy(waves), labels=torch.from_numpy(
        labels.astype(np.int64)), class_names=class_names, sample_rate=sample_rate, task=name,
        metadata=metadata)
