"""Losses built on soft ranks and sorts: differentiable Spearman correlation and soft least
trimmed squares (Blondel et al., ICML 2020, Section 6)."""

from __future__ import annotations

import math

import torch

from .._validation import check_dim
from ._rows import average_ranks, check_input, check_regularization
from .operators import soft_rank, soft_sort

__all__ = ["spearman_loss", "soft_least_trimmed_squares"]


def spearman_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    regularization_strength: float | torch.Tensor = 1.0,
    regularization: str = "l2",
    dim: int = -1,
) -> torch.Tensor:
    """1 - soft Spearman rank correlation between ``pred`` and ``target``, per row.

    With r = soft_rank(pred) and t the hard (average-tie) ranks of ``target``,

        1 - rho = 6 * sum_i (r_i - t_i)^2 / (n (n^2 - 1)),

    Spearman's formula, which equals 1 - Pearson(r, t) for tie-free ranks and is, up to the
    factor, the squared loss 1/2 ||r - t||^2 that the paper trains label ranking with
    (Section 6). It is 0 for a perfect ranking, 1 for uncorrelated ranks and 2 for reversed
    ones (in the hard limit), and it is smooth in ``pred`` (no division by a variance).

    Args:
        pred: (..., n, ...) scores; gradients flow to it.
        target: same shape, any real values (only their order matters); no gradient.
        regularization_strength, regularization: of the soft rank of ``pred``.
        dim: the ranked dimension; n >= 2.

    Returns:
        (...) the loss of each row (``pred``'s shape without ``dim``).
    """
    fn = "spearman_loss"
    pred = check_input(fn, "pred", pred)
    check_regularization(fn, regularization)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{fn}: target must be a torch.Tensor, got {type(target).__name__}")
    if target.shape != pred.shape:
        raise ValueError(
            f"{fn}: target must have pred's shape {tuple(pred.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"{fn}: target must be real-valued, got dtype {target.dtype}")
    target = check_input(fn, "target", target.to(pred.dtype) if not target.is_floating_point()
                         else target)
    axis = check_dim(fn, dim, pred.ndim)
    n = pred.shape[axis]
    if n < 2:
        raise ValueError(f"{fn}: needs at least 2 entries along dim {dim}, got {n}")
    ranks = soft_rank(
        pred,
        regularization_strength=regularization_strength,
        regularization=regularization,
        dim=axis,
    )
    moved_target = target.movedim(axis, -1)
    target_ranks = average_ranks(moved_target.reshape(-1, n).detach().double())
    target_ranks = target_ranks.reshape(moved_target.shape).to(ranks.dtype).movedim(-1, axis)
    squared = (ranks - target_ranks).pow(2).sum(dim=axis)
    return squared * (6.0 / (n * (n * n - 1.0)))


def soft_least_trimmed_squares(
    residuals: torch.Tensor,
    trim: float,
    *,
    regularization_strength: float | torch.Tensor = 1.0,
    regularization: str = "l2",
    dim: int = -1,
) -> torch.Tensor:
    """Soft least trimmed squares: the mean of the smallest squared residuals, softly.

    With k = floor(trim * n) residuals trimmed and s = soft_sort(residuals^2) ascending,

        LTS_epsilon = 1 / (n - k) * sum_{i <= n - k} s_i           (Section 6, robust regression)

    which interpolates between least trimmed squares (epsilon -> 0, the n - k smallest
    squares) and least squares (epsilon -> infinity, every soft-sorted value tends to the
    mean). epsilon is in inverse squared-residual units: neighbouring squared residuals
    further apart than 1 / epsilon are averaged (see :func:`lutece.sorting.soft_sort`).

    Args:
        residuals: (..., n, ...) finite floating tensor.
        trim: fraction in [0, 1) of the largest squared residuals to discard.
        regularization_strength, regularization, dim: of the soft sort.

    Returns:
        (...) one loss per row (``residuals``' shape without ``dim``).
    """
    fn = "soft_least_trimmed_squares"
    residuals = check_input(fn, "residuals", residuals)
    if isinstance(trim, bool) or not isinstance(trim, (int, float)):
        raise TypeError(f"{fn}: trim must be a float in [0, 1), got {type(trim).__name__}")
    if not (0.0 <= float(trim) < 1.0) or math.isnan(float(trim)):
        raise ValueError(f"{fn}: trim must be a fraction in [0, 1), got {trim}")
    axis = check_dim(fn, dim, residuals.ndim)
    n = residuals.shape[axis]
    if n == 0:
        raise ValueError(f"{fn}: residuals has no entries along dim {dim}")
    kept = n - math.floor(float(trim) * n)
    sorted_squares = soft_sort(
        residuals.pow(2),
        regularization_strength=regularization_strength,
        regularization=regularization,
        dim=axis,
    )
    return sorted_squares.narrow(axis, 0, kept).mean(dim=axis)
