"""DIVE's parts against brute force: the collar mask, teacher-forced selection order,
greedy stopping, the PIT loss, gradients (finite differences), checkpoints, chunking."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lutece.audio.diarization import annotation_from_turns
from lutece.audio.diarization.dive import (
    DIVE,
    DiveConfig,
    PITDiarizer,
    build_model,
    collar_mask,
    dive_loss,
    pit_loss,
)
from lutece.audio.diarization.training import (
    DiarizationChunks,
    load_diarizer,
    save_diarizer,
)

SMALL = DiveConfig(channels=16, embedding_dim=8, dilations=(1, 2), max_speakers=3)


def _brute_force_keep(labels: np.ndarray, collar_frames: int) -> np.ndarray:
    """Frame j (centre j + 0.5) is kept unless |centre - boundary| < collar_frames for a
    boundary time t (between frames t - 1 and t) where any speaker's activity changes."""
    frames = labels.shape[1]
    boundaries = [t for t in range(1, frames) if np.any(labels[:, t] != labels[:, t - 1])]
    keep = np.ones(frames, bool)
    for j in range(frames):
        if any(abs(j + 0.5 - t) < collar_frames for t in boundaries):
            keep[j] = False
    return keep


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(0, 6))
def test_collar_mask_excludes_exactly_the_boundary_frames(seed, collar_frames):
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(1, 60))
    # piecewise-constant activity with a few turns per speaker
    labels = np.zeros((3, frames), np.float32)
    for k in range(3):
        for _ in range(int(rng.integers(0, 3))):
            a, b = sorted(rng.integers(0, frames + 1, 2))
            labels[k, a:b] = 1
    got = collar_mask(torch.from_numpy(labels)[None], collar_frames)[0].numpy()
    np.testing.assert_array_equal(got, _brute_force_keep(labels, collar_frames))


def test_collar_of_zero_keeps_everything():
    labels = torch.zeros(2, 2, 10)
    labels[:, 0, 3:7] = 1
    assert collar_mask(labels, 0).all()


def _labels(batch=2, frames=100):
    labels = torch.zeros(batch, 3, frames)
    labels[:, 0, 5:40] = 1
    labels[:, 1, 35:70] = 1  # overlaps speaker 0 on 35..39
    labels[0, 2, 75:95] = 1  # window 0 has three speakers, window 1 two
    return labels


def test_teacher_forced_order_is_the_label_order():
    torch.manual_seed(0)
    model = DIVE(SMALL)
    labels = _labels()
    frames = labels.shape[-1]
    waves = torch.randn(2, frames * SMALL.samples_per_frame) * 0.1
    valid = torch.ones(2, frames, dtype=torch.bool)
    output = model(waves, labels, valid)
    assert output.count.tolist() == [3, 2]
    assert output.activity_logits.shape == (2, 3, frames)
    # step k pooled around a frame where reference speaker k talks alone
    for b in range(2):
        for k in range(int(output.count[b])):
            frame = int(output.selected_frames[b, k])
            assert labels[b, k, frame] == 1 and labels[b, :, frame].sum() == 1
    # the greedy path with the same picks gives the same speakers: training and
    # inference pool identically, teacher forcing only chooses the frame
    vectors = model.selector.pool(*model.selector.frame_embeddings(model.encoder(waves)),
                                  output.selected_frames[:, 0])
    torch.testing.assert_close(vectors, output.speaker_vectors[:, 0])


def test_greedy_selection_respects_speaker_bounds():
    torch.manual_seed(0)
    model = DIVE(SMALL).eval()
    waves = torch.randn(3, 16000) * 0.1
    assert model(waves, num_speakers=2).count.tolist() == [2, 2, 2]
    counts = model(waves, min_speakers=2, max_speakers=3).count
    assert ((counts >= 2) & (counts <= 3)).all()
    with torch.no_grad():  # a model that never sees a new speaker stops at min_speakers
        model.selector.existence.bias.fill_(-100.0)
        model.selector.existence.weight.zero_()
    assert model(waves).count.tolist() == [1, 1, 1]
    output = model(waves, min_speakers=2)
    assert output.count.tolist() == [2, 2, 2]
    assert output.activity_logits.shape[1] == 2


def test_pit_loss_is_the_minimum_over_assignments():
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 50)
    labels = (torch.rand(2, 2, 50) > 0.5).float()
    valid = torch.ones(2, 50, dtype=torch.bool)
    loss, _ = pit_loss(logits, labels, valid, collar_frames=0)
    padded = torch.cat([labels, torch.zeros(2, 1, 50)], dim=1)
    expected = 0.0
    for b in range(2):
        expected += min(
            torch.nn.functional.binary_cross_entropy_with_logits(
                logits[b], padded[b, list(p)], reduction="sum")
            for p in itertools.permutations(range(3)))
    torch.testing.assert_close(loss, expected / (2 * 3 * 50))
    # invariant to the order of the reference speakers
    loss_swapped, _ = pit_loss(logits, labels[:, [1, 0]], valid, collar_frames=0)
    torch.testing.assert_close(loss, loss_swapped)
    with pytest.raises(ValueError, match="4 reference speakers for 3 output tracks"):
        pit_loss(logits, torch.zeros(2, 4, 50), valid)


def test_dive_loss_masks_collars_and_padding():
    torch.manual_seed(2)
    model = DIVE(SMALL)
    labels = _labels(frames=100)
    waves = torch.randn(2, 100 * SMALL.samples_per_frame) * 0.1
    valid = torch.ones(2, 100, dtype=torch.bool)
    valid[1, 80:] = False
    output = model(waves, labels, valid)
    loss, parts = dive_loss(output, labels, valid, collar_frames=5)
    loss.backward()
    assert torch.isfinite(loss) and set(parts) == {"vad", "selector", "existence", "embedding"}
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # the VAD term equals a BCE restricted to kept frames, computed by hand
    keep = valid & collar_mask(labels, 5)
    logits = output.activity_logits.detach()
    present = labels.amax(dim=2) > 0
    total, count = 0.0, 0
    for b in range(2):
        for k in range(int(output.count[b])):
            assert present[b, k]
            frames = keep[b]
            total += torch.nn.functional.binary_cross_entropy_with_logits(
                logits[b, k, frames], labels[b, k, frames], reduction="sum")
            count += int(frames.sum())
    assert parts["vad"] == pytest.approx(float(total / count), rel=1e-5)


def test_speaker_pooling_gradients_match_finite_differences():
    torch.manual_seed(3)
    selector = DIVE(SMALL).selector.double()
    e = torch.nn.functional.normalize(torch.randn(2, 12, 8, dtype=torch.float64), dim=-1)
    b = torch.randn(2, 12, dtype=torch.float64)
    frames = torch.tensor([3, 7])

    def pool(e, b):
        return selector.pool(torch.nn.functional.normalize(e, dim=-1), b, frames)

    assert torch.autograd.gradcheck(pool, (e.requires_grad_(), b.requires_grad_()))

    selected = torch.nn.functional.normalize(torch.randn(2, 2, 8, dtype=torch.float64), dim=-1)

    def scores(e, b):
        return selector.scores(e, b, selected)

    assert torch.autograd.gradcheck(scores, (e.detach().requires_grad_(),
                                             b.detach().requires_grad_()))


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(4)
    for config in (SMALL, DiveConfig(kind="pit", channels=16, dilations=(1,), max_speakers=2)):
        model = build_model(config).eval()
        path = save_diarizer(model, tmp_path / f"{config.kind}.pt")
        loaded = load_diarizer(path)
        assert type(loaded) is type(model) and loaded.config == config
        waves = torch.randn(1, 8000)
        with torch.no_grad():
            a = model(waves)
            b = loaded(waves)
        if isinstance(model, PITDiarizer):
            torch.testing.assert_close(a, b)
        else:
            torch.testing.assert_close(a.activity_logits, b.activity_logits)
    with pytest.raises(FileNotFoundError, match="no diarization checkpoint"):
        load_diarizer(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable diarization checkpoint"):
        load_diarizer(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a lutece diarization checkpoint"):
        load_diarizer(tmp_path / "other.pt")
    with pytest.raises(TypeError, match="DIVE or PITDiarizer"):
        save_diarizer(torch.nn.Linear(2, 2), tmp_path / "x.pt")
    with pytest.raises(ValueError, match="kind must be"):
        build_model(DiveConfig(kind="eend"))


def test_chunks_order_speakers_by_first_speech_and_mark_padding():
    config = DiveConfig(max_speakers=3)
    wave = np.random.default_rng(0).standard_normal(16000 * 3).astype(np.float32)
    reference = annotation_from_turns([(2.0, 2.8, "late"), (0.5, 1.5, "early"),
                                       (1.0, 2.2, "middle")])
    chunks = DiarizationChunks([(wave, reference)], config, chunk_seconds=4.0, num_chunks=2)
    item = chunks[0]
    assert item["wave"].shape == (64000,) and item["labels"].shape == (3, 200)
    assert item["valid"].sum() == 150 and not item["valid"][150:].any()
    first = [int(np.argmax(item["labels"][k].numpy())) for k in range(3)]
    assert first == sorted(first) and first[0] == 25  # "early" at 0.5 s, 50 Hz
    np.testing.assert_array_equal(item["wave"][:48000].numpy(), wave)
    with pytest.raises(ValueError, match="recordings is empty"):
        DiarizationChunks([], config)
