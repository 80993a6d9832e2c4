"""lutece.audio.diarization.{vad, embeddings, clustering}.

Oracles: librosa's ``feature.melspectrogram`` / ``filters.mel`` for the d-vector front end;
synthetic signals with known boundaries for the VAD; well-separated Gaussian clusters for
the eigengap count; pyannote.metrics' DER against the known turns of a synthetic
conversation (and, when pyannote.audio's sample is unpacked, its real RTTM).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from pyannote.core import Annotation
from pyannote.metrics.diarization import DiarizationErrorRate

from lutece.audio.diarization.annotation import annotation_from_turns
from lutece.audio.diarization.clustering import (
    ClusteringDiarizer,
    ahc_clustering,
    baseline_pipeline,
    binarized_affinity,
    cosine_similarity,
    default_pipeline,
    eigengap_num_clusters,
    spectral_clustering,
)
from lutece.audio.diarization.embeddings import (
    DVectorEncoder,
    mel_spectrogram,
    mfcc_statistics,
    slaney_mel_filterbank,
)
from lutece.audio.diarization.vad import clean_mask, energy_vad, mask_to_regions, silero_vad
from lutece.audio.synth import random_speaker, random_word, speak

SR = 16000
HAS_RESEMBLYZER = importlib.util.find_spec("resemblyzer") is not None
HAS_SILERO = importlib.util.find_spec("silero_vad") is not None
# unpacked by benchmarks/fetch_pyannote_sample.sh (make bench-setup); not redistributed
SAMPLE = Path(__file__).resolve().parents[3] / ".cache" / "pyannote_sample"
needs_weights = pytest.mark.skipif(not (HAS_RESEMBLYZER and HAS_SILERO),
                                   reason="needs resemblyzer's and silero-vad's weights")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small LSTM/VAD batches run faster on one intra-op thread (and far faster on a
    shared machine); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def conversation(seed: int, kinds=("male", "female"), turns: int = 8):
    """Alternating utterances of two random speakers with 0.2-0.8 s gaps; returns the wave
    (16 kHz float32) and the reference annotation."""
    rng = np.random.default_rng(seed)
    speakers = [random_speaker(rng, kind) for kind in kinds]
    parts, items, time = [np.zeros(int(0.3 * SR), np.float32)], [], 0.3
    for index in range(turns):
        who = index % len(speakers)
        words = [random_word(rng) for _ in range(int(rng.integers(3, 9)))]
        utterance = speak(words, speakers[who], rng=rng) * rng.uniform(0.5, 1.0)
        items.append((time, time + len(utterance) / SR, f"spk{who}"))
        gap = int(rng.uniform(0.2, 0.8) * SR)
        parts += [utterance.astype(np.float32), np.zeros(gap, np.float32)]
        time += (len(utterance) + gap) / SR
    wave = np.concatenate(parts)
    wave += 1e-3 * rng.standard_normal(len(wave)).astype(np.float32)
    return wave, annotation_from_turns(items)


@pytest.fixture(scope="module")
def two_speakers():
    return conversation(0)


# ----------------------------------------------------------------------------- embeddings


def test_mel_spectrogram_matches_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    wave = (0.3 * np.sin(2 * np.pi * (200 + 3000 * t) * t)
            + 0.05 * rng.standard_normal(SR)).astype(np.float32)[:15_877]
    expected = librosa.feature.melspectrogram(y=wave, sr=SR, n_fft=400, hop_length=160,
                                              n_mels=40)
    got = mel_spectrogram(torch.from_numpy(wave)).numpy()
    assert got.shape == expected.shape == (40, 1 + len(wave) // 160)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * expected.max())
    filters = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=64, fmin=50, fmax=9000)
    np.testing.assert_allclose(slaney_mel_filterbank(22050, 1024, 64, 50, 9000), filters,
                               rtol=1e-5, atol=1e-7)
    batch = mel_spectrogram(torch.from_numpy(np.stack([wave, wave])).double())
    assert batch.shape == (2, 40, got.shape[1]) and batch.dtype == torch.float64


@pytest.mark.skipif(not HAS_RESEMBLYZER, reason="needs resemblyzer's pretrained.pt")
def test_dvector_same_speaker_closer_than_different():
    encoder = DVectorEncoder.pretrained()
    assert not encoder.training and "num_layers=3" in repr(encoder)
    rng = np.random.default_rng(3)
    voices = [random_speaker(rng, "male"), random_speaker(rng, "female")]
    waves = [speak([random_word(rng) for _ in range(8)], voice, rng=rng)
             for voice in voices for _ in range(2)]  # m, m, f, f
    embeddings = np.concatenate([encoder.embed_windows(w, SR, [0.0], len(w) / SR)
                                 for w in waves])
    assert embeddings.shape == (4, 256)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    cosine = embeddings @ embeddings.T
    assert min(cosine[0, 1], cosine[2, 3]) > cosine[:2, 2:].max()
    # 8 kHz input is resampled to the encoder's 16 kHz; windows past the end read silence
    windows = encoder.embed_windows(waves[0][::2].copy(), 8000, [0.0, 0.5, 100.0], 1.0)
    assert windows.shape == (3, 256) and np.all(np.isfinite(windows))


def test_mfcc_statistics_shape_and_standardisation():
    rng = np.random.default_rng(1)
    wave = speak([random_word(rng) for _ in range(10)], random_speaker(rng), rng=rng)
    starts = np.arange(0.0, len(wave) / SR - 1.0, 0.25)
    stats = mfcc_statistics(wave, SR, starts, 1.0)
    assert stats.shape == (len(starts), 76) and stats.dtype == np.float32
    np.testing.assert_allclose(stats.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(stats.std(axis=0), 1.0, atol=1e-3)
    raw = mfcc_statistics(wave, SR, starts, 1.0, deltas=False, standardize=False, n_mfcc=13)
    assert raw.shape == (len(starts), 24) and np.all(raw[:, 12:] >= 0)  # stds
    assert mfcc_statistics(wave, SR, [], 1.0).shape == (0, 76)


# ----------------------------------------------------------------------------- clustering


def blobs(sizes, dim=16, spread=0.15, seed=0):
    """Points around random unit directions (one per cluster) and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return centres[labels] + spread * rng.standard_normal((len(labels), dim)), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_spectral_clustering_estimates_the_number_of_clusters(count):
    points, labels = blobs([24, 16, 30, 20, 18][:count], seed=count)
    found = spectral_clustering(points, max_clusters=8)
    assert same_partition(found, labels)
    affinity = binarized_affinity(cosine_similarity(points), 8)
    assert np.allclose(affinity, affinity.T) and set(np.unique(affinity)) <= {0.0, 0.5, 1.0}
    assert eigengap_num_clusters(affinity, 1, 8)[0] == count
    # bounds and a fixed count take precedence over the eigengap
    if count >= 2:
        assert count + 1 <= eigengap_num_clusters(affinity, count + 1, 8)[0] <= 8
        assert eigengap_num_clusters(affinity, 1, count - 1)[0] <= count - 1
        assert len(np.unique(spectral_clustering(points, max_clusters=count - 1))) <= count - 1
    assert len(np.unique(spectral_clustering(points, num_clusters=count + 1))) == count + 1


@pytest.mark.parametrize("count", [1, 3])
def test_ahc_clustering_threshold_and_bounds(count):
    points, labels = blobs([20, 25, 15][:count], seed=10 + count)
    assert same_partition(ahc_clustering(points, threshold=1.0, center=count > 1), labels)
    assert len(np.unique(ahc_clustering(points, num_clusters=2))) == 2
    assert len(np.unique(ahc_clustering(points, threshold=1e-6, max_clusters=4))) == 4


# ----------------------------------------------------------------------------------- vad


def test_energy_vad_finds_known_tone_boundaries():
    rng = np.random.default_rng(0)
    segments = [(0.5, 1.5), (2.0, 2.6), (3.5, 5.0)]  # seconds of tone
    t = np.arange(int(5.5 * SR)) / SR
    wave = 1e-3 * rng.standard_normal(len(t))
    for start, end in segments:
        inside = (t >= start) & (t < end)
        wave[inside] += 0.3 * np.sin(2 * np.pi * 440 * t[inside])
    mask = energy_vad(wave.astype(np.float32), SR)
    assert mask.shape == (550,) and mask.dtype == bool
    found = mask_to_regions(mask) / 100.0
    np.testing.assert_allclose(found, np.array(segments), atol=0.02)
    # a 0.1 s gap is bridged and a 0.1 s blip dropped by the default smoothing
    wave2 = wave.copy()
    wave2[(t >= 1.0) & (t < 1.1)] = 0.0
    wave2[(t >= 3.0) & (t < 3.1)] += 0.3
    np.testing.assert_array_equal(energy_vad(wave2.astype(np.float32), SR), mask)
    # a fixed threshold in dBFS and another frame rate
    fixed = energy_vad(wave.astype(np.float32), SR, threshold_db=-30.0, frame_rate=50)
    np.testing.assert_allclose(mask_to_regions(fixed) / 50.0, np.array(segments), atol=0.04)
    assert not energy_vad(np.zeros(SR, np.float32), SR).any()


def test_clean_mask_fills_then_drops():
    mask = np.zeros(100, bool)
    mask[10:30] = mask[33:40] = mask[60:62] = True
    cleaned = clean_mask(mask, 100, min_duration_on=0.05, min_duration_off=0.05)
    np.testing.assert_array_equal(mask_to_regions(cleaned), [[10, 40]])


@pytest.mark.skipif(not HAS_SILERO, reason="needs silero-vad")
def test_silero_vad_marks_speech_not_silence():
    rng = np.random.default_rng(2)
    speech = speak([random_word(rng) for _ in range(6)], random_speaker(rng), rng=rng)
    wave = np.concatenate([np.zeros(SR, np.float32), speech, np.zeros(SR, np.float32)])
    mask = silero_vad(wave, SR)
    assert mask.shape == (int(np.ceil(len(wave) / 160)),)
    assert not mask[:90].any() and not mask[-90:].any()
    assert mask[100:100 + len(speech) // 160].mean() > 0.7
    assert not silero_vad(np.zeros(2 * 8000, np.float32), 8000).any()


# ------------------------------------------------------------------------------- pipeline


def der(reference: Annotation, hypothesis: Annotation, collar: float = 0.0) -> float:
    return DiarizationErrorRate(collar=collar)(reference, hypothesis)


@needs_weights
def test_default_pipeline_on_synthetic_conversation(two_speakers):
    wave, reference = two_speakers
    hypothesis = default_pipeline()(wave, SR, uri="conversation")
    assert hypothesis.uri == "conversation"
    assert hypothesis.labels() == ["SPEAKER_00", "SPEAKER_01"]
    assert der(reference, hypothesis) < 0.25
    # turns never overlap
    turns = sorted((s.start, s.end) for s, _ in hypothesis.itertracks())
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(turns[:-1], turns[1:]))
    oracle = default_pipeline(resegment=False)(torch.from_numpy(wave), SR, num_speakers=2)
    assert der(reference, oracle) < 0.25


def test_baseline_pipeline_needs_no_weights(two_speakers):
    wave, reference = two_speakers
    hypothesis = baseline_pipeline()(wave, SR, num_speakers=2)
    assert len(hypothesis.labels()) == 2
    assert der(reference, hypothesis) < 0.25
    spectral = ClusteringDiarizer(vad="energy", embedding="mfcc", clustering="spectral")
    assert len(spectral(wave, SR, min_speakers=2, max_speakers=2).labels()) == 2


@needs_weights
@pytest.mark.skipif(not (SAMPLE / "sample.wav").is_file(), reason="pyannote.audio's sample "
                    "is not unpacked in /tmp/pyawheel")
def test_default_pipeline_on_pyannote_sample():
    from lutece.audio.io import load

    wave, rate = load(SAMPLE / "sample.wav")
    rows = [line.split() for line in (SAMPLE / "sample.rttm").read_text().splitlines()]
    reference = annotation_from_turns((float(r[3]), float(r[3]) + float(r[4]), r[7])
                                      for r in rows)
    hypothesis = default_pipeline()(wave[0], rate)
    assert len(hypothesis.labels()) == 2
    assert der(reference, hypothesis, collar=0.5) < 0.2  # md-eval collar 0.25 s


def test_all_silence_gives_an_empty_annotation():
    silence = np.zeros(3 * SR, np.float32)
    result = baseline_pipeline()(silence, SR, uri="quiet")
    assert isinstance(result, Annotation) and len(result) == 0 and result.uri == "quiet"
    if HAS_SILERO:
        assert len(ClusteringDiarizer(embedding="mfcc")(silence, SR)) == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"num_speakers": 3, "max_speakers": 2}, "num_speakers"),
    ({"num_speakers": 1, "min_speakers": 2}, "num_speakers"),
    ({"min_speakers": 3, "max_speakers": 2}, "max_speakers"),
    ({"num_speakers": 0}, "num_speakers"),
    ({"min_speakers": 1.5}, "min_speakers"),
])
def test_speaker_count_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        baseline_pipeline()(np.zeros(3 * SR, np.float32), SR, **kwargs)


def test_input_errors():
    diarizer = baseline_pipeline()
    with pytest.raises(ValueError, match="shorter than one embedding window"):
        diarizer(np.zeros(SR, np.float32), SR)
    with pytest.raises(ValueError, match="wave is empty"):
        diarizer(np.zeros(0, np.float32), SR)
    with pytest.raises(ValueError, match="NaN or infinite"):
        diarizer(np.full(2 * SR, np.inf, np.float32), SR)
    with pytest.raises(ValueError, match="mono"):
        diarizer(np.zeros((2, 3 * SR), np.float32), SR)
    with pytest.raises(TypeError, match="floating"):
        diarizer(np.zeros(3 * SR, np.int16), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        diarizer(np.zeros(3 * SR, np.float32), 0)
    for name in ("vad", "embedding", "clustering"):
        with pytest.raises(ValueError, match=f"{name} must be one of"):
            ClusteringDiarizer(**{name: "nope"})
    with pytest.raises(ValueError, match="step"):
        ClusteringDiarizer(window=1.0, step=2.0)
