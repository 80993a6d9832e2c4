"""Non-negative matrix factorization by Lee-Seung multiplicative updates, unrolled.

Lee & Seung, "Algorithms for Non-negative Matrix Factorization", NIPS 2000: for the
weighted Frobenius objective sum_ij W_ij (X - U V)_ij^2 (W >= 0, zero at unobserved
entries; o the entrywise product, the fractions entrywise) the updates

    U <- U o ((W o X) V^T) / ((W o (U V)) V^T)
    V <- V o (U^T (W o X)) / (U^T (W o (U V)))

never increase the objective and keep U, V >= 0 (W = 1 is the paper's rule; a 0/1 W is
the usual masked variant). Every update is a differentiable tensor
expression, so a fixed number of them is a differentiable map X -> (U, V): the two-sided
model of Cuturi, Teboul, Niles-Weed & Vert (ICML 2020, "QMFQ") backpropagates through 100
such updates to learn the input normalization.
"""

from __future__ import annotations

import torch

from .._validation import check_finite, check_floating, check_tensor

__all__ = ["nmf", "nmf_initialization"]

#: added to the denominators of the updates so that a zero column of V or row of U stays 0
_DENOMINATOR = 1e-12


def nmf_initialization(x: torch.Tensor, rank: int, mask: torch.Tensor | None = None, *,
                       generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive factors U (d, r), V (r, n) with entries in [0.5, 1.5) times sqrt(mean(X) / r),
    so that U V starts at the scale of the observed entries of X (d, n)."""
    d, n = x.shape
    observed = x.detach() if mask is None else x.detach()[mask]
    scale = (observed.mean().clamp_min(1e-12) / rank).sqrt()
    u = (0.5 + torch.rand(d, rank, generator=generator, dtype=x.dtype)).to(x.device) * scale
    v = (0.5 + torch.rand(rank, n, generator=generator, dtype=x.dtype)).to(x.device) * scale
    return u, v


def nmf(x: torch.Tensor, rank: int, *, weight: torch.Tensor | None = None,
        iterations: int = 100, init: tuple[torch.Tensor, torch.Tensor] | None = None,
        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-``rank`` NMF of ``x`` (d, n) >= 0 by ``iterations`` Lee-Seung updates (Frobenius).

    Args:
        x: (d, n) nonnegative floating matrix; entries where ``weight`` is 0 are ignored
            (they may hold anything finite).
        rank: r >= 1.
        weight: (d, n) nonnegative entry weights, 0 where unobserved (a bool mask is
            converted); default all ones.
        iterations: number of (U, V) update pairs (>= 0).
        init: initial (U (d, r), V (r, n)) > 0; default :func:`nmf_initialization` drawn
            from ``generator``.

    Returns:
        (U, V), nonnegative, differentiable w.r.t. ``x``, ``weight`` and ``init`` through
        the unrolled updates (memory grows linearly with ``iterations``).
    """
    fn = "nmf"
    x = check_tensor(fn, "x", x, min_ndim=2)
    check_floating(fn, "x", x)
    if x.ndim != 2:
        raise ValueError(f"{fn}: x must be a (d, n) matrix, got shape {tuple(x.shape)}")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"{fn}: rank must be an int >= 1, got {rank!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"{fn}: iterations must be an int >= 0, got {iterations!r}")
    if weight is not None:
        if not isinstance(weight, torch.Tensor) or weight.shape != x.shape:
            raise ValueError(f"{fn}: weight must be a tensor of x's shape {tuple(x.shape)}, "
                             f"got {getattr(weight, 'shape', type(weight).__name__)}")
        weight = weight.to(x.dtype)
        if bool((weight < 0).any()):
            raise ValueError(f"{fn}: weight must be >= 0")
    observed = x if weight is None else torch.where(weight > 0, x, torch.zeros_like(x))
    check_finite(fn, "x (observed entries)", observed)
    if bool((observed < 0).any()):
        raise ValueError(f"{fn}: x must be >= 0 at observed entries, got a minimum of "
                         f"{float(observed.min())}")
    mask = None if weight is None else weight > 0
    u, v = init if init is not None else nmf_initialization(x, rank, mask,
                                                             generator=generator)
    for _ in range(iterations):
        u, v = _update(observed, weight, u, v)
    return u, v


def _update(x: torch.Tensor, weight: torch.Tensor | None, u: torch.Tensor, v: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One pair of multiplicative updates; x is zero where unobserved."""
    if weight is not None:
        x = weight * x
    product = u @ v
    if weight is not None:
        product = product * weight
    u = u * (x @ v.T) / (product @ v.T + _DENOMINATOR)
    product = u @ v
    if weight is not None:
        product = product * weight
    v = v * (u.T @ x) / (u.T @ product + _DENOMINATOR)
    return u, v
