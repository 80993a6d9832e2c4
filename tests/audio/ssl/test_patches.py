"""PatchShuffler: patches are the right slices, shuffling then un-shuffling with the true
ranks restores the input exactly, and every bad input is refused with a clear message."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lutece.audio.ssl import PatchShuffler, patchify, unpatchify, unshuffle


def _grid_of(kind, counts):
    return {"time": (1, counts[1]), "frequency": (counts[0], 1),
            "time_frequency": counts}[kind]


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["time", "frequency", "time_frequency"]),
       counts=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       size=st.tuples(st.integers(1, 3), st.integers(1, 3)), batch=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_shuffle_then_unshuffle_restores_the_input(kind, counts, size, batch, seed):
    grid = _grid_of(kind, counts)
    if grid[0] * grid[1] < 2:
        return
    num_patches = grid if kind == "time_frequency" else max(grid)
    shuffler = PatchShuffler(kind, num_patches, generator=torch.Generator().manual_seed(seed))
    spectrogram = torch.randn(batch, grid[0] * size[0], grid[1] * size[1])
    out = shuffler(spectrogram)
    assert out.grid == grid and out.patches.shape == (batch, shuffler.count, *size)
    # the true ranks are a 1-based permutation and undo the shuffle exactly
    assert torch.equal(out.ranks.sort(dim=1).values,
                       torch.arange(1.0, shuffler.count + 1).expand(batch, -1))
    restored = unpatchify(unshuffle(out.patches, out.ranks), grid)
    assert torch.equal(restored, spectrogram)


def test_patches_are_the_grid_cells_in_row_major_order():
    spectrogram = torch.arange(2 * 6 * 9, dtype=torch.float32).reshape(2, 6, 9)
    patches = patchify(spectrogram, (2, 3))
    for row in range(2):
        for col in range(3):
            assert torch.equal(patches[:, 3 * row + col],
                               spectrogram[:, 3 * row: 3 * row + 3, 3 * col: 3 * col + 3])
    assert torch.equal(unpatchify(patches, (2, 3)), spectrogram)


def test_shuffled_slot_holds_the_patch_its_rank_names():
    spectrogram = torch.randn(4, 8, 12)
    out = PatchShuffler("time", 4, generator=torch.Generator().manual_seed(0))(spectrogram)
    original = patchify(spectrogram, (1, 4))
    for b in range(4):
        for j in range(4):
            position = int(out.ranks[b, j]) - 1
            assert position == int(out.permutation[b, j])
            assert torch.equal(out.patches[b, j], original[b, position])


def test_given_permutations_are_applied_and_seeded_draws_repeat():
    spectrogram = torch.randn(2, 4, 6)
    permutation = torch.tensor([[2, 0, 1], [0, 1, 2]])
    out = PatchShuffler("time", 3)(spectrogram, permutation=permutation)
    assert torch.equal(out.ranks, (permutation + 1).float())
    first = PatchShuffler("frequency", 4, generator=torch.Generator().manual_seed(5))
    second = PatchShuffler("frequency", 4, generator=torch.Generator().manual_seed(5))
    spectrogram = torch.randn(8, 8, 3)
    assert torch.equal(first(spectrogram).permutation, second(spectrogram).permutation)


def test_every_permutation_is_drawn_uniformly():
    shuffler = PatchShuffler("time", 3, generator=torch.Generator().manual_seed(0))
    drawn = shuffler.random_permutations(6000)
    codes, counts = torch.unique(drawn, dim=0, return_counts=True)
    assert len(codes) == 6  # all 3! permutations, each about 1000 times (sd ~ 29)
    assert counts.min() > 880 and counts.max() < 1120


@pytest.mark.parametrize("kind, num_patches, message", [
    ("time", 1, "at least 2 patches"),
    ("time_frequency", (1, 1), "at least 2 patches"),
    ("diagonal", 4, "kind"),
    ("time", (2, 2), "one int"),
    ("time_frequency", 4, "(frequency, time) pair"),
    ("frequency", 0, "positive int"),
    ("time", 2.0, "positive int"),
])
def test_bad_configurations_are_refused(kind, num_patches, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PatchShuffler(kind, num_patches)


def test_bad_inputs_are_refused():
    shuffler = PatchShuffler("time_frequency", (2, 3))
    with pytest.raises(ValueError, match="3 patches along time do not tile 10 time bins"):
        shuffler(torch.randn(1, 4, 10))
    with pytest.raises(ValueError, match="2 patches along frequency do not tile 5"):
        shuffler(torch.randn(1, 5, 9))
    with pytest.raises(ValueError, match=r"\(batch, freq, time\)"):
        shuffler(torch.randn(4, 9))
    with pytest.raises(TypeError):
        shuffler(torch.ones(1, 4, 9, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64 of shape"):
        shuffler(torch.randn(2, 4, 9), permutation=torch.zeros(2, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="permutation of 0..5"):
        shuffler(torch.randn(1, 4, 9), permutation=torch.zeros(1, 6, dtype=torch.int64))
    with pytest.raises(TypeError, match="generator"):
        PatchShuffler("time", 2, generator=0)
    with pytest.raises(ValueError, match="permutation of 1..3"):
        unshuffle(torch.randn(1, 3, 2, 2), torch.tensor([[1.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="ranks must be"):
        unshuffle(torch.randn(1, 3, 2, 2), torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="holds 6 patches"):
        unpatchify(torch.randn(1, 5, 2, 2), (2, 3))
