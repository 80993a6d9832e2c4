"""Device-agnostic kernels for the projection onto the permutahedron (pure torch).

Same contract as :mod:`lutece.sorting._numba_kernels` (see its docstring for the maths),
vectorized over the batch so that CUDA and other devices work without a compiled
extension. The isotonic problem is solved by *parallel* pool-adjacent-violators: every
round pools all maximal runs of adjacent blocks that violate the decreasing order at once.
Pooling any violating adjacent pair is a valid PAV step and a run of consecutive violators
is pooled by sequential PAV as well, so the fixed point is the same unique solution. Each
round is O(B n) work; the number of rounds is at most n and in practice small.
"""

from __future__ import annotations

import torch

__all__ = ["project_forward", "project_backward"]


def _segment_sum(values: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Per-row sums over segment ids: (B, n) values, (B, n) ids in [0, n) -> (B, n)."""
    return torch.zeros_like(values).scatter_add_(1, segments, values)


def _segment_logsumexp(values: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Per-row, per-segment logsumexp; segments made only of -inf give -inf."""
    maxima = torch.full_like(values, -torch.inf).scatter_reduce_(
        1, segments, values, reduce="amax", include_self=True
    )
    safe_maxima = torch.where(torch.isfinite(maxima), maxima, torch.zeros_like(maxima))
    shifted = torch.exp(values - safe_maxima.gather(1, segments))
    return torch.log(_segment_sum(shifted, segments)) + safe_maxima


def _block_values(
    s: torch.Tensor, ws: torch.Tensor, segments: torch.Tensor, kl: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block value of s and of w at each position, (B, n) each; the isotonic value is
    their difference: means (L2) or logsumexps (KL) over each position's block."""
    if kl:
        value_s = _segment_logsumexp(s, segments)
        value_w = _segment_logsumexp(ws, segments)
    else:
        sizes = _segment_sum(torch.ones_like(s), segments).clamp_min(1)
        value_s = _segment_sum(s, segments) / sizes
        value_w = _segment_sum(ws, segments) / sizes
    return value_s.gather(1, segments), value_w.gather(1, segments)


def _sorted_pair(z, w, perm, sort_w):
    if sort_w:
        return z, w.gather(1, perm)
    return z.gather(1, perm), w


def project_forward(
    z: torch.Tensor, w: torch.Tensor, kl: bool, sort_w: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched projection; returns (out, perm, segments) like the numba kernel."""
    batch, n = z.shape
    # Accumulate in float64 like the CPU kernel: block sums of float32 lose digits.
    z64, w64 = z.double(), w.double()
    perm = torch.argsort(w64 if sort_w else z64, dim=1, descending=True, stable=True)
    s, ws = _sorted_pair(z64, w64, perm, sort_w)
    positions = torch.arange(n, device=z.device).expand(batch, n)
    segments = positions.clone()
    while True:
        value_s, value_w = _block_values(s, ws, segments, kl)
        values = value_s - value_w
        boundary = segments[:, 1:] != segments[:, :-1]
        violation = boundary & (values[:, :-1] < values[:, 1:])
        if not bool(violation.any()):
            break
        new_start = torch.cat(
            [torch.ones_like(boundary[:, :1]), boundary & ~violation], dim=1
        )
        segments = torch.cumsum(new_start, dim=1) - 1
    # (s - value_s) + value_w returns w exactly on singleton blocks (the hard limit).
    projected = ((s - value_s) + value_w).to(z.dtype)
    out = projected if sort_w else torch.empty_like(projected).scatter_(1, perm, projected)
    return out, perm, segments


def project_backward(
    grad: torch.Tensor,
    z: torch.Tensor,
    w: torch.Tensor,
    perm: torch.Tensor,
    segments: torch.Tensor,
    kl: bool,
    sort_w: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vector-Jacobian product for z and w (see the numba kernel for the formulas)."""
    dtype = grad.dtype
    grad, z, w = grad.double(), z.double(), w.double()  # float64 sums, like the forward
    grad_sorted = grad if sort_w else grad.gather(1, perm)
    totals = _segment_sum(grad_sorted, segments).gather(1, segments)
    if kl:
        s, ws = _sorted_pair(z, w, perm, sort_w)
        softmax_s = torch.exp(s - _segment_logsumexp(s, segments).gather(1, segments))
        softmax_w = torch.exp(ws - _segment_logsumexp(ws, segments).gather(1, segments))
        grad_s = grad_sorted - softmax_s * totals
        grad_ws = softmax_w * totals
    else:
        sizes = _segment_sum(torch.ones_like(grad_sorted), segments).gather(1, segments)
        mean = totals / sizes
        grad_s = grad_sorted - mean
        grad_ws = mean
    if sort_w:
        grad_z, grad_w = grad_s, torch.zeros_like(grad_ws).scatter_(1, perm, grad_ws)
    else:
        grad_z, grad_w = torch.zeros_like(grad_s).scatter_(1, perm, grad_s), grad_ws
    return grad_z.to(dtype), grad_w.to(dtype)
