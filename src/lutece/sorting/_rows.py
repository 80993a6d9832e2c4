"""Shared plumbing of the sorting operators: validation, (B, n) reshaping, dtype handling,
per-row regularization strengths and the hard (strength 0) fallback."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validation import (
    check_choice,
    check_dim,
    check_finite,
    check_floating,
    check_nonnegative_strength,
    check_tensor,
    data_checks_enabled,
)

REGULARIZATIONS = ("l2", "kl")

# (B, n) rows in the compute dtype, strength (B, 1) or float > 0 -> (B, n)
SoftFn = Callable[[torch.Tensor, "float | torch.Tensor"], torch.Tensor]
HardFn = Callable[[torch.Tensor], torch.Tensor]


def check_input(fn: str, name: str, x: object) -> torch.Tensor:
    """A floating tensor with at least one dimension and no NaN or inf."""
    x = check_tensor(fn, name, x, min_ndim=1)
    check_floating(fn, name, x)
    return check_finite(fn, name, x)


def check_regularization(fn: str, regularization: object) -> None:
    check_choice(fn, "regularization", regularization, REGULARIZATIONS)


def check_flag(fn: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be a bool, got {type(value).__name__}")


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16/bfloat16 are computed in float32 (their 8-11 bit mantissas cannot hold ranks
    above a few hundred); float32/float64 are computed as they are."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def with_zero_gradient(hard: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``hard`` as a value, connected to ``rows`` with an exactly zero gradient."""
    return hard.detach() + rows * 0


def apply_rowwise(
    fn: str,
    x: torch.Tensor,
    dim: int,
    regularization_strength: float | torch.Tensor,
    soft: SoftFn,
    hard: HardFn,
) -> torch.Tensor:
    """Run an operator on the rows of ``x`` along ``dim``; returns ``x``'s shape and dtype.

    Rows whose strength is 0 take the hard operator; the others the soft one.
    """
    axis = check_dim(fn, dim, x.ndim)
    last = axis == x.ndim - 1
    # Skip no-op movedim/reshape/to: each would add an autograd node to every call.
    moved = x if last else x.movedim(axis, -1)
    strength = check_nonnegative_strength(
        fn, "regularization_strength", regularization_strength, moved.shape[:-1]
    )
    n = moved.shape[-1]
    dtype = compute_dtype(x.dtype)
    rows = moved if moved.ndim == 2 else moved.reshape(moved.shape[:-1].numel(), n)
    if dtype != x.dtype:
        rows = rows.to(dtype)
    if rows.numel() == 0:
        out = rows.clone()
    elif isinstance(strength, float):
        out = hard(rows) if strength == 0 else soft(rows, strength)
    else:
        per_row = strength.reshape(-1, 1).to(dtype=dtype, device=x.device)
        is_hard = per_row == 0
        if data_checks_enabled() and bool(is_hard.all()):
            out = hard(rows)
        elif data_checks_enabled() and not bool(is_hard.any()):
            out = soft(rows, per_row)
        else:
            safe = torch.where(is_hard, torch.ones_like(per_row), per_row)
            out = torch.where(is_hard, hard(rows), soft(rows, safe))
    if dtype != x.dtype:
        out = out.to(x.dtype)
    if moved.ndim != 2:
        out = out.reshape(moved.shape)
    return out if last else out.movedim(-1, axis)


def average_ranks(rows: torch.Tensor, descending: bool = False) -> torch.Tensor:
    """Hard 1-based ranks of each row, ties sharing their average rank (like
    ``scipy.stats.rankdata(method="average")``): the strength -> 0 limit of soft_rank.

    rows: (B, n) -> (B, n) in rows' dtype, without gradient.
    """
    first, last, order = _tie_groups(rows, descending)
    ranks_sorted = (first + last).to(rows.dtype) / 2 + 1
    return torch.empty_like(ranks_sorted).scatter_(1, order, ranks_sorted)


def _tie_groups(
    rows: torch.Tensor, descending: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the sorted rows: the first and last sorted position of each entry's tie group,
    and the sorting permutation. All (B, n) int64."""
    values, order = torch.sort(rows.detach(), dim=1, descending=descending, stable=True)
    batch, n = rows.shape
    positions = torch.arange(n, device=rows.device).expand(batch, n)
    new_group = torch.ones_like(values, dtype=torch.bool)
    new_group[:, 1:] = values[:, 1:] != values[:, :-1]
    group = torch.cumsum(new_group, dim=1) - 1
    first = torch.full_like(positions, n).scatter_reduce(1, group, positions, reduce="amin")
    last = torch.full_like(positions, -1).scatter_reduce(1, group, positions, reduce="amax")
    return first.gather(1, group), last.gather(1, group), order


def hard_topk_mask(rows: torch.Tensor, k: int) -> torch.Tensor:
    """Mask of the k largest entries of each row; a tie group straddling the k-th place
    shares the remaining places equally (the strength -> 0 limit of soft_topk_mask)."""
    first, last, order = _tie_groups(rows, descending=True)
    size = (last - first + 1).to(rows.dtype)
    places = (k - first).clamp(min=0).to(rows.dtype).minimum(size)
    return torch.empty_like(rows).scatter_(1, order, places / size)
