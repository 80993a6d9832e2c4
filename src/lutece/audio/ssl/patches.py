"""Cut a spectrogram into a grid of patches, shuffle them, and put them back.

Carr, Berthet, Blondel, Teboul & Zeghidour, "Self-supervised learning of audio
representations from permutations with differentiable ranking" (IEEE SPL 2021): the pretext
task reorders patches cut along time ("time"), along frequency ("frequency") or on a grid
of both ("time_frequency").

Positions are numbered row-major over the grid (frequency band first, then time), so for a
``(2, 3)`` grid position 4 is the second band's middle time slot. After shuffling, the patch
in slot j came from position ``permutation[j]``; its *true rank* is ``permutation[j] + 1``:
1-based and ascending, as :func:`lutece.sorting.soft_rank` ranks scores, so a scorer that
outputs each patch's original position has ranks equal to the true ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..._validation import check_choice, check_floating, check_tensor

__all__ = ["PATCH_KINDS", "PatchShuffler", "ShuffledPatches", "patchify", "unpatchify",
           "unshuffle"]

PATCH_KINDS = ("time", "frequency", "time_frequency")


@dataclass(frozen=True)
class ShuffledPatches:
    """What :class:`PatchShuffler` returns.

    Attributes:
        patches: (batch, n, freq / F, time / T) patches in shuffled order.
        ranks: (batch, n) the true 1-based rank of each shuffled patch (its original
            position + 1), in ``patches``' dtype so it can be compared with soft ranks.
        permutation: (batch, n) int64, ``patches[b, j]`` is original patch
            ``permutation[b, j]``.
        grid: (F, T), the number of patches along frequency and time.
    """

    patches: torch.Tensor
    ranks: torch.Tensor
    permutation: torch.Tensor
    grid: tuple[int, int]


def _check_grid(fn: str, kind: object, num_patches: object) -> tuple[int, int]:
    check_choice(fn, "kind", kind, PATCH_KINDS)

    def count(name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")
        return value

    if kind == "time_frequency":
        if (not isinstance(num_patches, (tuple, list)) or len(num_patches) != 2):
            raise ValueError(f"{fn}: num_patches of kind 'time_frequency' must be a "
                             f"(frequency, time) pair of ints, got {num_patches!r}")
        grid = (count("num_patches[0]", num_patches[0]), count("num_patches[1]",
                                                                num_patches[1]))
    else:
        if isinstance(num_patches, (tuple, list)):
            raise ValueError(f"{fn}: num_patches of kind {kind!r} must be one int (a "
                             f"(frequency, time) pair is for 'time_frequency'), got "
                             f"{num_patches!r}")
        n = count("num_patches", num_patches)
        grid = (n, 1) if kind == "frequency" else (1, n)
    if grid[0] * grid[1] < 2:
        raise ValueError(f"{fn}: there must be at least 2 patches to permute, got a "
                         f"{grid[0]} x {grid[1]} (frequency x time) grid")
    return grid


def _check_spectrogram(fn: str, spectrogram: object, grid: tuple[int, int]) -> torch.Tensor:
    spectrogram = check_floating(fn, "spectrogram", check_tensor(fn, "spectrogram",
                                                                 spectrogram))
    if spectrogram.ndim != 3:
        raise ValueError(f"{fn}: spectrogram must be (batch, freq, time), got shape "
                         f"{tuple(spectrogram.shape)}")
    _, freq, time = spectrogram.shape
    for axis, size, parts in (("frequency", freq, grid[0]), ("time", time, grid[1])):
        if size % parts:
            raise ValueError(
                f"{fn}: {parts} patches along {axis} do not tile {size} {axis} bins "
                f"(spectrogram shape {tuple(spectrogram.shape)}); crop or pad that axis to a "
                f"multiple of {parts} (e.g. {size - size % parts}) or change num_patches")
    return spectrogram


def _rows_are_permutations(index: torch.Tensor) -> bool:
    """Whether each row of an integer (batch, n) tensor is a permutation of 0..n-1."""
    expected = torch.arange(index.shape[1], device=index.device).expand_as(index)
    return torch.equal(index.sort(dim=1).values, expected)


def patchify(spectrogram: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(batch, freq, time) -> (batch, F * T, freq / F, time / T), positions row-major."""
    batch, freq, time = spectrogram.shape
    rows, cols = grid
    return (spectrogram.reshape(batch, rows, freq // rows, cols, time // cols)
            .permute(0, 1, 3, 2, 4).reshape(batch, rows * cols, freq // rows, time // cols))


def unpatchify(patches: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`: (batch, F * T, f, t) in position order -> (batch, F f,
    T t)."""
    batch, n, height, width = patches.shape
    rows, cols = grid
    if rows * cols != n:
        raise ValueError(f"unpatchify: a {rows} x {cols} grid holds {rows * cols} patches, "
                         f"got {n}")
    return (patches.reshape(batch, rows, cols, height, width).permute(0, 1, 3, 2, 4)
            .reshape(batch, rows * height, cols * width))


def unshuffle(patches: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Put shuffled patches back in position order: slot ``ranks[b, j] - 1`` of the result
    receives ``patches[b, j]``.

    Args:
        patches: (batch, n, ...) shuffled patches.
        ranks: (batch, n) 1-based ranks, a permutation of 1..n per row (float or int).

    Returns:
        (batch, n, ...) patches in their original order.
    """
    fn = "unshuffle"
    patches = check_tensor(fn, "patches", patches, min_ndim=2)
    ranks = check_tensor(fn, "ranks", ranks)
    if ranks.shape != patches.shape[:2]:
        raise ValueError(f"{fn}: ranks must be (batch, n) = {tuple(patches.shape[:2])}, got "
                         f"{tuple(ranks.shape)}")
    index = ranks.round().long() - 1
    n = patches.shape[1]
    if not _rows_are_permutations(index):
        raise ValueError(f"{fn}: each row of ranks must be a permutation of 1..{n}")
    index = index.reshape(*index.shape, *(1,) * (patches.ndim - 2)).expand_as(patches)
    return torch.empty_like(patches).scatter_(1, index, patches)


class PatchShuffler:
    """Cut ``(batch, freq, time)`` spectrograms into patches and shuffle each example's
    patches with its own random permutation.

    Args:
        kind: ``"time"`` (vertical strips), ``"frequency"`` (horizontal bands) or
            ``"time_frequency"`` (a grid).
        num_patches: an int for ``"time"`` / ``"frequency"``; a ``(frequency, time)`` pair
            for ``"time_frequency"``. At least 2 patches in all. Patch sizes follow from the
            input, whose axes must be multiples of the counts.
        generator: a ``torch.Generator`` for the permutations; None uses torch's global
            generator (which :func:`lutece.train.train` seeds and checkpoints).

    Call it as ``shuffler(spectrogram)`` for uniformly random permutations, or
    ``shuffler(spectrogram, permutation=P)`` with ``P`` (batch, n) int64 to apply given
    ones (the fixed-set baseline draws them from its set).
    """

    def __init__(self, kind: str = "time_frequency",
                 num_patches: int | tuple[int, int] = (2, 3),
                 generator: torch.Generator | None = None) -> None:
        self.grid = _check_grid("PatchShuffler", kind, num_patches)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"PatchShuffler: generator must be a torch.Generator or None, "
                            f"got {type(generator).__name__}")
        self.kind = kind
        self.num_patches = num_patches
        self.generator = generator

    @property
    def count(self) -> int:
        """n, the number of patches per example."""
        return self.grid[0] * self.grid[1]

    def random_permutations(self, batch: int, device: torch.device | None = None
                            ) -> torch.Tensor:
        """(batch, n) int64: one uniformly random permutation of 0..n-1 per row."""
        noise = torch.rand(batch, self.count, generator=self.generator)
        return noise.argsort(dim=1).to(device)

    def check(self, spectrogram: object) -> torch.Tensor:
        """``spectrogram`` if it is a floating (batch, freq, time) tensor that the grid
        tiles; a ``ValueError`` saying what to change otherwise."""
        return _check_spectrogram("PatchShuffler", spectrogram, self.grid)

    def __call__(self, spectrogram: torch.Tensor, permutation: torch.Tensor | None = None
                 ) -> ShuffledPatches:
        fn = "PatchShuffler"
        spectrogram = self.check(spectrogram)
        patches = patchify(spectrogram, self.grid)
        batch, n = patches.shape[:2]
        if permutation is None:
            permutation = self.random_permutations(batch, spectrogram.device)
        else:
            permutation = check_tensor(fn, "permutation", permutation)
            if permutation.shape != (batch, n) or permutation.dtype != torch.int64:
                raise ValueError(f"{fn}: permutation must be int64 of shape ({batch}, {n}), "
                                 f"got {permutation.dtype} {tuple(permutation.shape)}")
            if not _rows_are_permutations(permutation):
                raise ValueError(f"{fn}: each row of permutation must be a permutation of "
                                 f"0..{n - 1}")
            permutation = permutation.to(spectrogram.device)
        index = permutation.reshape(batch, n, 1, 1).expand_as(patches)
        shuffled = patches.gather(1, index)
        ranks = (permutation + 1).to(spectrogram.dtype)
        return ShuffledPatches(shuffled, ranks, permutation, self.grid)

    def __repr__(self) -> str:
        return f"PatchShuffler(kind={self.kind!r}, num_patches={self.num_patches!r})"
