"""Soft sorting, ranking and top-k masks in O(n log n) time and O(n) memory.

Blondel, Teboul, Berthet & Djolonga, "Fast Differentiable Sorting and Ranking", ICML 2020.
With rho = (n, n-1, ..., 1) and epsilon the regularization strength (Section 4):

* soft rank     r(theta) = P(theta / epsilon, rho)                      (eq. 7)
* soft sort     s(theta) = P(rho / epsilon, theta)  (P of rho onto P(theta))   (eq. 8)
* soft top-k    m(theta) = P(theta / epsilon, (1, ..., 1, 0, ..., 0))  (k ones)

where P is the quadratic (``"l2"``) or entropic (``"kl"``) projection onto the permutahedron
(:mod:`lutece.sorting.permutahedron`). For ``"kl"`` the rank and top-k use the weights in log
space and return ``exp`` of the projection, so their outputs still live in the
permutahedron of rho (resp. of the 0/1 vector). Conventions follow fast-soft-sort and
torchsort: ranks are 1-based and ascending, and the results tend to the hard operators as
epsilon -> 0 (exactly reached at epsilon = 0).

The regularization strength is relative to the scale of the input, in opposite directions
for the two operators, since P is positively homogeneous (P(c z, c w) = c P(z, w)):

* soft_rank(c x, epsilon) = soft_rank(x, epsilon / c): two entries get distinct ranks when
  their gap is large compared with epsilon;
* soft_sort(c x, epsilon) = c soft_sort(x, c epsilon): two neighbours stay apart when their
  gap is below 1 / epsilon and are pooled (averaged) when it is larger.

Standardize inputs, or pass a per-row tensor of strengths, when rows have very different
scales.
"""

from __future__ import annotations

import functools

import torch

from ._rows import (
    apply_rowwise,
    average_ranks,
    check_flag,
    check_input,
    check_regularization,
    hard_topk_mask,
    with_zero_gradient,
)
from .permutahedron import project

__all__ = ["soft_sort", "soft_rank", "soft_topk_mask"]


@functools.lru_cache(maxsize=64)
def _rho(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.arange(n, 0, -1, dtype=dtype, device=device)


def _decreasing_weights(rows: torch.Tensor) -> torch.Tensor:
    """rho = (n, n-1, ..., 1) for every row: (B, n) in rows' dtype and device (read-only)."""
    if torch.compiler.is_compiling():
        rho = torch.arange(rows.shape[1], 0, -1, dtype=rows.dtype, device=rows.device)
    else:
        rho = _rho(rows.shape[1], rows.dtype, rows.device)
    return rho.expand_as(rows)


def soft_rank(
    x: torch.Tensor,
    *,
    regularization_strength: float | torch.Tensor = 1.0,
    regularization: str = "l2",
    descending: bool = False,
    dim: int = -1,
) -> torch.Tensor:
    """Differentiable ranks of ``x`` along ``dim`` (1-based; ascending unless ``descending``).

    Args:
        x: (..., n, ...) float16/bfloat16/float32/float64 on any device, finite.
        regularization_strength: epsilon >= 0, a float or a tensor broadcastable to the batch
            shape (``x``'s shape without ``dim``) for one strength per row. 0 returns the
            hard average ranks with an exactly zero gradient.
        regularization: ``"l2"`` (quadratic, eq. 5) or ``"kl"`` (entropic, eq. 6).
        descending: rank 1 goes to the largest entry instead of the smallest.
        dim: the dimension ranked.

    Returns:
        Soft ranks, same shape, dtype and device as ``x``; each row sums to n(n+1)/2.
        Tied entries receive equal ranks (their average as epsilon -> 0).

    Example:
        >>> soft_rank(torch.tensor([5.0, 1.0, 2.0]), regularization_strength=2.0)
        tensor([3.0000, 1.2500, 1.7500])
    """
    fn = "soft_rank"
    x = check_input(fn, "x", x)
    check_regularization(fn, regularization)
    check_flag(fn, "descending", descending)
    sign = -1.0 if descending else 1.0
    kl = regularization == "kl"

    def soft(rows, strength):
        rho = _decreasing_weights(rows)
        projected = project(
            rows * (sign / strength), torch.log(rho) if kl else rho, regularization, False
        )
        return torch.exp(projected) if kl else projected

    def hard(rows):
        return with_zero_gradient(average_ranks(rows, descending), rows)

    return apply_rowwise(fn, x, dim, regularization_strength, soft, hard)


def soft_sort(
    x: torch.Tensor,
    *,
    regularization_strength: float | torch.Tensor = 1.0,
    regularization: str = "l2",
    descending: bool = False,
    dim: int = -1,
) -> torch.Tensor:
    """Differentiable sorted values of ``x`` along ``dim`` (ascending unless ``descending``).

    Args:
        x: (..., n, ...) float16/bfloat16/float32/float64 on any device, finite.
        regularization_strength: epsilon >= 0, float or per-row tensor (see
            :func:`soft_rank`). 0 returns ``torch.sort``'s values, whose gradient is the
            sorting permutation (the epsilon -> 0 limit of the soft Jacobian).
        regularization: ``"l2"`` or ``"kl"``.
        descending: sort in decreasing order.
        dim: the dimension sorted.

    Returns:
        Same shape, dtype and device as ``x``; each row is monotone, has the same sum as the
        input row (``"l2"``), and soft_sort(x + c) = soft_sort(x) + c.

    Example:
        >>> soft_sort(torch.tensor([5.0, 1.0, 2.0]))
        tensor([1.6667, 2.6667, 3.6667])
    """
    fn = "soft_sort"
    x = check_input(fn, "x", x)
    check_regularization(fn, regularization)
    check_flag(fn, "descending", descending)
    sign = 1.0 if descending else -1.0

    def soft(rows, strength):
        target = _decreasing_weights(rows) / strength
        projected = project(target, rows * sign, regularization, True)
        return projected * sign

    def hard(rows):
        return torch.sort(rows, dim=1, descending=descending).values

    return apply_rowwise(fn, x, dim, regularization_strength, soft, hard)


def soft_topk_mask(
    x: torch.Tensor,
    k: int,
    *,
    regularization_strength: float | torch.Tensor = 1.0,
    regularization: str = "l2",
    dim: int = -1,
) -> torch.Tensor:
    """Differentiable mask of the ``k`` largest entries of ``x`` along ``dim``.

    The projection of x / epsilon onto the permutahedron of w = (1, ..., 1, 0, ..., 0) with k
    ones (the hypersimplex): entries lie in [0, 1] and each row sums to k. As epsilon -> 0
    it tends to the hard 0/1 mask of the top k (reached at epsilon = 0, with a zero
    gradient; a tie straddling the k-th place shares the remaining places equally).

    Args:
        x: (..., n, ...) floating tensor, finite.
        k: number of entries selected, an int in [0, n].
        regularization_strength, regularization, dim: as in :func:`soft_rank`.

    Returns:
        Same shape, dtype and device as ``x``.
    """
    fn = "soft_topk_mask"
    x = check_input(fn, "x", x)
    check_regularization(fn, regularization)
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"{fn}: k must be an int, got {type(k).__name__}")
    if isinstance(dim, int) and -x.ndim <= dim < x.ndim:
        n = x.shape[dim]
        if not 0 <= k <= n:
            raise ValueError(f"{fn}: k must be in [0, n] = [0, {n}], got {k}")
    kl = regularization == "kl"

    def hard(rows):
        return with_zero_gradient(hard_topk_mask(rows, k), rows)

    def soft(rows, strength):
        if k == 0:  # the permutahedron of 0 is {0}; its log-weights would all be -inf
            return hard(rows)
        weights = torch.zeros_like(rows)
        weights[:, :k] = 1.0
        projected = project(
            rows / strength, torch.log(weights) if kl else weights, regularization, False
        )
        return torch.exp(projected) if kl else projected

    return apply_rowwise(fn, x, dim, regularization_strength, soft, hard)
