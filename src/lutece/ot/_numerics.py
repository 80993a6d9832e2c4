"""Exponentials of log-kernels without the CPU's slow paths.

Log-kernel entries (f_i + g_j - C_ij) / eps range over thousands of units below 0 when eps is
small. Vectorized exp implementations (torch's on CPU among them) leave their fast path for
inputs below the dtype's normal range, and subnormal numbers slow the matrix-vector products
that follow (measured on this project's 2-core CPU, 16M float32 entries: exp takes 210 ms on
[-1e4, -200] against 11 ms on [-10, 0], and exp(-inf) 29 ms; a product with subnormal terms
is 1.8x slower). :func:`stable_exp` therefore clamps its input at log(NEGLIGIBLE) and sets the
results at that floor to exactly 0: a kernel or plan entry below NEGLIGIBLE (1.3e-26 in
float32, 2.4e-296 in float64, relative to entries of order 1) is dropped, a relative error in
the marginals below NEGLIGIBLE x n, far under the dtype's own resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["negligible", "stable_exp", "stable_logsumexp"]


def negligible(dtype: torch.dtype) -> float:
    """The smallest exp result kept: 2^40 times the smallest normal number of ``dtype``."""
    return torch.finfo(dtype).tiny * 2.0 ** 40


def stable_exp(values: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """exp(values), with results below :func:`negligible` set to 0; ``inplace`` overwrites
    ``values`` (for callers that need no gradient)."""
    floor = negligible(values.dtype)
    if inplace:
        return F.threshold_(values.clamp_(min=math.log(floor)).exp_(), 1.5 * floor, 0.0)
    return F.threshold(torch.exp(values.clamp(min=math.log(floor))), 1.5 * floor, 0.0)


def stable_logsumexp(values: torch.Tensor, dim: int) -> torch.Tensor:
    """log sum exp over ``dim``, max-shifted, through :func:`stable_exp`; a slice of only
    -inf gives -inf. Without gradient, ``values`` is overwritten."""
    largest = values.detach().amax(dim=dim, keepdim=True)
    largest = torch.where(torch.isfinite(largest), largest, torch.zeros_like(largest))
    if torch.is_grad_enabled():
        total = stable_exp(values - largest).sum(dim)
    else:  # values is a fresh block that nobody else reads
        total = stable_exp(values.sub_(largest), inplace=True).sum(dim)
    return torch.log(total) + largest.squeeze(dim)
