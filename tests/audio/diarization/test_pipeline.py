"""diarize(): a tiny trained DIVE on held-out voices (DER against the simulated reference),
long-audio stitching against an oracle model whose windows are the truth in a shuffled
speaker order, and every documented error path."""

import math
import warnings

import numpy as np
import pytest
import torch

from lutece.audio.diarization import annotation_from_turns, turns
from lutece.audio.diarization.annotation import annotation_to_frames
from lutece.audio.diarization.dive import DIVE, DiveConfig, DiveOutput
from lutece.audio.diarization.metrics import diarization_error_rate
from lutece.audio.diarization.pipeline import LinkingConfig, diarize, diarize_file
from lutece.audio.diarization.simulate import simulate_conversations
from lutece.audio.io import AudioFileError, save

from .conftest import TINY_STEPS


def test_tiny_training_decreases_the_loss_and_diarizes_held_out_voices(tiny_dive,
                                                                        held_out_voices):
    losses = [entry["loss"] for entry in tiny_dive.history]
    assert len(losses) == TINY_STEPS
    assert np.mean(losses[-50:]) < 0.6 * np.mean(losses[:20])
    conversations = simulate_conversations(held_out_voices, 6, num_speakers=2,
                                           utterances_per_speaker=(3, 5), seed=77)
    ders = [diarization_error_rate(c.annotation, diarize(c.wave, 16000, tiny_dive,
                                                         progress=False), collar=0.25)
            for c in conversations]
    assert np.mean(ders) < 0.25, ders


class OracleWindows(DIVE):
    """A stand-in DIVE whose every window output is the reference, speakers in a random
    order per window, vectors = each true speaker's direction plus noise. The wave carries
    its own sample index, so a window knows where it is."""

    def __init__(self, activity: np.ndarray, directions: np.ndarray, seed: int = 0):
        super().__init__(DiveConfig(channels=8, embedding_dim=directions.shape[1],
                                    dilations=(1,), max_speakers=4))
        self.activity = activity  # (frames, speakers) at 50 Hz
        self.directions = directions
        self.rng = np.random.default_rng(seed)

    def forward(self, waves, labels=None, valid=None, **bounds):
        hop = self.config.samples_per_frame
        piece = waves[0].numpy()
        start = int(round(float(piece[0]))) // hop
        frames = math.ceil(len(piece) / hop)
        window = self.activity[start:start + frames]
        present = np.flatnonzero(window.any(axis=0))
        order = self.rng.permutation(present)
        logits = np.where(window[:, order].T > 0, 10.0, -10.0)
        noise = 0.1 * self.rng.standard_normal((len(order), self.directions.shape[1]))
        vectors = self.directions[order] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        as_tensor = torch.from_numpy
        return DiveOutput(as_tensor(logits[None]).float(), as_tensor(vectors[None]).float(),
                          torch.zeros(1, 0, frames), torch.zeros(1, 0),
                          torch.tensor([len(order)]), torch.zeros(1, len(order)),
                          torch.zeros(1, frames, self.directions.shape[1]))


def _long_reference(seconds: float, speakers: int, seed: int):
    rng = np.random.default_rng(seed)
    items, cursor = [], 0.5
    while cursor < seconds - 2:
        length = float(rng.uniform(1.0, 4.0))
        items.append((cursor, min(cursor + length, seconds - 0.5),
                      f"s{int(rng.integers(speakers))}"))
        cursor += length + float(rng.uniform(-0.5, 1.0))  # some overlap
    return annotation_from_turns(items, uri="long")


@pytest.mark.parametrize("speakers", [2, 3])
def test_stitching_keeps_speaker_identities_across_windows(speakers):
    seconds = 90.0
    reference = _long_reference(seconds, speakers, seed=speakers)
    frames = int(seconds * 50)
    activity, labels = annotation_to_frames(reference, frames, 50.0)
    directions = np.linalg.qr(np.random.default_rng(1).standard_normal((16, 16)))[0][:speakers]
    model = OracleWindows(activity, directions)
    wave = np.arange(frames * 320, dtype=np.float32)  # each sample holds its own index
    hypothesis = diarize(wave, 16000, model, linking=LinkingConfig(window=16.0, step=12.0),
                         progress=False)
    assert len(hypothesis.labels()) == speakers  # 7 windows, one speaker set
    assert diarization_error_rate(reference, hypothesis) < 0.01


def test_stitching_merges_down_to_num_speakers():
    reference = _long_reference(60.0, 3, seed=5)
    frames = 60 * 50
    activity, _ = annotation_to_frames(reference, frames, 50.0)
    directions = np.linalg.qr(np.random.default_rng(2).standard_normal((8, 8)))[0][:3]
    model = OracleWindows(activity, directions)
    wave = np.arange(frames * 320, dtype=np.float32)
    hypothesis = diarize(wave, 16000, model, num_speakers=2, progress=False,
                         linking=LinkingConfig(window=16.0, step=12.0))
    assert len(hypothesis.labels()) == 2


def test_diarize_file_and_resampling(tmp_path, tiny_dive, held_out_voices):
    conversation = simulate_conversations(held_out_voices, 1, num_speakers=2,
                                          utterances_per_speaker=3, seed=3)[0]
    path = tmp_path / "meeting.wav"
    save(path, torch.from_numpy(conversation.wave), 16000)
    hypothesis = diarize_file(path, tiny_dive, progress=False)
    assert hypothesis.uri == "meeting" and 1 <= len(hypothesis.labels()) <= 4
    assert all(label.startswith("SPEAKER_") for label in hypothesis.labels())
    resampled = conversation.wave[::2].copy()  # a crude 8 kHz version
    with pytest.warns(UserWarning, match="resampling from 8000 Hz to the model's 16000 Hz"):
        diarize(resampled, 8000, tiny_dive, progress=False)


def test_speaker_counts_are_respected(tiny_dive, held_out_voices):
    conversation = simulate_conversations(held_out_voices, 1, num_speakers=3,
                                          utterances_per_speaker=3, seed=4)[0]
    for count in (1, 2, 3):
        hypothesis = diarize(conversation.wave, 16000, tiny_dive, num_speakers=count,
                             progress=False)
        assert len(hypothesis.labels()) <= count
    capped = diarize(conversation.wave, 16000, tiny_dive, max_speakers=1, progress=False)
    assert len(capped.labels()) <= 1


@pytest.mark.parametrize("kwargs, message", [
    ({"num_speakers": 5, "max_speakers": 3}, r"num_speakers=5 is outside \[min_speakers=1, "
                                             r"max_speakers=3\]"),
    ({"num_speakers": 1, "min_speakers": 2}, "num_speakers=1 is outside"),
    ({"min_speakers": 3, "max_speakers": 2}, "min_speakers=3 is larger than max_speakers=2"),
    ({"num_speakers": 0}, "num_speakers must be a positive int"),
])
def test_speaker_bound_errors(tiny_dive, kwargs, message):
    with pytest.raises(ValueError, match=message):
        diarize(np.zeros(16000, np.float32), 16000, tiny_dive, **kwargs)


def test_input_errors(tmp_path, tiny_dive):
    with pytest.raises(ValueError, match="wave is empty"):
        diarize(np.zeros(0, np.float32), 16000, tiny_dive)
    with pytest.raises(ValueError, match="NaN or infinite"):
        diarize(np.full(16000, np.nan, np.float32), 16000, tiny_dive)
    with pytest.raises(ValueError, match="too short"):
        diarize(np.zeros(100, np.float32), 16000, tiny_dive)
    with pytest.raises(TypeError, match="floating point"):
        diarize(np.zeros(16000, np.int16), 16000, tiny_dive)
    with pytest.raises(TypeError, match="model must be"):
        diarize(np.zeros(16000, np.float32), 16000, model="dive")
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    with pytest.raises(AudioFileError):
        diarize_file(tmp_path / "broken.wav", tiny_dive)


def test_silence_gives_an_empty_annotation(tiny_dive):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hypothesis = diarize(np.zeros(16000 * 5, np.float32), 16000, tiny_dive,
                             progress=False)
    assert len(turns(hypothesis)) <= 1  # at most a blip; digital silence has no speaker
