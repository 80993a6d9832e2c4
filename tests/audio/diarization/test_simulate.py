"""Conversation simulation: references against the audio itself, the EEND recipe's
statistics, sources from folders, and the Kaldi-style data dir round trip."""

import numpy as np
import pytest
import torch

from lutece.audio.diarization import turns
from lutece.audio.diarization.annotation import annotation_to_frames
from lutece.audio.diarization.formats import read_kaldi_data_dir, read_segments, read_utt2spk
from lutece.audio.diarization.simulate import (
    simulate_conversations,
    synthetic_rir,
    synthetic_utterances,
    utterances_from_folder,
    write_conversations,
)
from lutece.audio.diarization.training import recordings_from_data_dir
from lutece.audio.io import save


@pytest.fixture(scope="module")
def voices():
    return synthetic_utterances(5, 6, seed=3)


def _frame_energy_db(wave, rate=100, sample_rate=16000):
    hop = sample_rate // rate
    frames = len(wave) // hop
    energy = np.mean(wave[:frames * hop].reshape(frames, hop).astype(np.float64) ** 2, axis=1)
    return 10 * np.log10(energy + 1e-20), frames


def test_synthetic_voices_are_seeded_and_prefix_stable():
    first = synthetic_utterances(3, 2, seed=1)
    again = synthetic_utterances(3, 2, seed=1)
    shifted = synthetic_utterances(2, 2, seed=1, first_speaker=1)
    assert list(first) == ["spk000", "spk001", "spk002"]
    for speaker in first:
        for a, b in zip(first[speaker], again[speaker]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first["spk001"][0], shifted["spk001"][0])


def test_reference_speech_matches_the_audio_energy(voices):
    """Without noise or reverberation: every frame the RTTM calls silence is digitally
    silent, and speech frames carry energy except short pauses between words."""
    conversations = simulate_conversations(voices, 4, num_speakers=(2, 3),
                                           utterances_per_speaker=(2, 4), seed=5)
    for conversation in conversations:
        energy_db, frames = _frame_energy_db(conversation.wave)
        activity, _ = annotation_to_frames(conversation.annotation, frames, 100.0)
        speech = activity.any(axis=1)
        # frames a turn's edge cuts count as near speech
        near = speech | np.roll(speech, 1) | np.roll(speech, -1)
        assert np.all(energy_db[~near] < -100)  # exact zeros outside every turn
        loud = energy_db[speech] > energy_db.max() - 50
        assert loud.mean() > 0.8  # word-internal pauses are the rest
        # each turn starts and ends on sound (the utterance's own silence is trimmed)
        wave = conversation.wave
        for start, end, _ in turns(conversation.annotation):
            first, last = round(start * 16000), round(end * 16000)
            assert np.abs(wave[first:first + 160]).max() > 0
            assert np.abs(wave[last - 160:last]).max() > 0


def test_eend_statistics(voices):
    conversations = simulate_conversations(voices, 30, num_speakers=(1, 3),
                                           utterances_per_speaker=(3, 5), seed=2)
    counts = [len(c.annotation.labels()) for c in conversations]
    assert set(counts) == {1, 2, 3}
    per_speaker = [sum(1 for u in c.utterances if u.speaker == s)
                   for c in conversations for s in c.annotation.labels()]
    assert min(per_speaker) >= 3 and max(per_speaker) <= 5
    overlap = []
    for c in conversations:
        activity, _ = annotation_to_frames(c.annotation, int(c.duration * 100), 100.0)
        overlap.append((activity.sum(1) >= 2).mean())
    assert np.mean(overlap) > 0.02  # independent tracks overlap
    assert all(c.wave.dtype == np.float32 and np.abs(c.wave).max() <= 0.95 + 1e-6
               for c in conversations)


def test_noise_is_added_at_the_requested_snr(voices):
    clean = simulate_conversations(voices, 1, num_speakers=2, utterances_per_speaker=3,
                                   seed=9)[0]
    noisy = simulate_conversations(voices, 1, num_speakers=2, utterances_per_speaker=3,
                                   seed=9, snr_db=10.0, noise_kinds=("white",))[0]
    activity, _ = annotation_to_frames(clean.annotation, len(clean.wave), 16000.0)
    speech = activity.any(axis=1)
    # the two share the seed, so noisy = c * (clean + g * noise), c <= 1 the peak guard
    c = np.dot(noisy.wave, clean.wave) / np.dot(clean.wave, clean.wave)
    noise = noisy.wave / c - clean.wave
    snr = 10 * np.log10(np.mean(clean.wave[speech] ** 2) / np.mean(noise[speech] ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)
    assert np.abs(noisy.wave[~speech]).max() > 0


def test_room_impulse_response_decays_by_rt60():
    rir = synthetic_rir(0.4, 16000, np.random.default_rng(0))
    assert len(rir) == 6400 and rir[0] == 1.0
    early = np.sum(rir[1:800] ** 2)
    late = np.sum(rir[-800:] ** 2)
    assert 10 * np.log10(early / late) > 30  # ~ -52 dB over the 0.35 s between the windows
    tail_db = 10 * np.log10(np.sum(rir[1:] ** 2))
    assert tail_db == pytest.approx(-3.0, abs=1e-6)


def test_reverberation_keeps_length_and_reference(voices):
    dry = simulate_conversations(voices, 1, num_speakers=2, utterances_per_speaker=2, seed=4)[0]
    wet = simulate_conversations(voices, 1, num_speakers=2, utterances_per_speaker=2, seed=4,
                                 reverb_probability=1.0)[0]
    assert len(dry.wave) == len(wet.wave)
    assert turns(dry.annotation) == turns(wet.annotation)
    assert not np.allclose(dry.wave, wet.wave)


@pytest.mark.parametrize("layout", ["librispeech", "per_speaker"])
def test_utterances_from_folder(tmp_path, layout, voices):
    for s, speaker in enumerate(["19", "26"]):
        folder = tmp_path / speaker / ("198" if layout == "librispeech" else "")
        folder.mkdir(parents=True, exist_ok=True)
        for u in range(2):
            wave = voices[f"spk00{s}"][u]
            save(folder / f"{speaker}-{u}.flac", torch.from_numpy(wave), 16000)
    found = utterances_from_folder(tmp_path)
    assert list(found) == ["19", "26"] and all(len(v) == 2 for v in found.values())
    conversation = simulate_conversations(found, 1, num_speakers=2,
                                          utterances_per_speaker=2, seed=0)[0]
    assert sorted(conversation.annotation.labels()) == ["19", "26"]


def test_utterances_from_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        utterances_from_folder(tmp_path / "missing")
    (tmp_path / "empty_speaker").mkdir()
    with pytest.raises(ValueError, match="no speaker folders with audio"):
        utterances_from_folder(tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_speakers": 9}, "only 5 have utterances"),
    ({"num_speakers": (3, 2)}, "num_speakers must be"),
    ({"sil_scale": 0.0}, "sil_scale must be > 0"),
    ({"reverb_probability": 2.0}, "reverb_probability"),
    ({"utterances_per_speaker": 0}, "utterances_per_speaker"),
])
def test_simulation_errors(voices, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_conversations(voices, 1, **kwargs)
    with pytest.raises(ValueError, match="num_conversations"):
        simulate_conversations(voices, 0)
    with pytest.raises(ValueError, match="non-empty"):
        simulate_conversations({}, 1)


def test_data_dir_round_trip(tmp_path, voices):
    conversations = simulate_conversations(voices, 3, num_speakers=(1, 3),
                                           utterances_per_speaker=2, seed=1)
    write_conversations(conversations, tmp_path / "data")
    data = read_kaldi_data_dir(tmp_path / "data")
    assert sorted(data.wavs) == [c.uri for c in conversations]
    for conversation in conversations:
        expected = turns(conversation.annotation)
        got = turns(data.rttm[conversation.uri])
        assert len(got) == len(expected)
        for (s0, e0, k0), (s1, e1, k1) in zip(sorted(expected), sorted(got)):
            assert k0 == k1 and abs(s0 - s1) < 1e-3 and abs(e0 - e1) < 1e-3
        assert data.reco2dur[conversation.uri] == pytest.approx(conversation.duration, abs=1e-3)
    segments = read_segments(tmp_path / "data" / "segments")
    utt2spk = read_utt2spk(tmp_path / "data" / "utt2spk")
    assert len(segments) == sum(len(c.utterances) for c in conversations) == len(utt2spk)
    recordings = recordings_from_data_dir(tmp_path / "data")
    assert len(recordings) == 3
    np.testing.assert_allclose(recordings[0][0], conversations[0].wave, atol=1e-4)
    assert not list((tmp_path / "data").rglob("*.tmp*"))
