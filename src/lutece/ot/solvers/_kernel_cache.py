"""Log-domain Sinkhorn updates at the cost of a matrix-vector product (dense costs).

A log-domain update out_j = eps log sum_i exp((f_i - C_ij) / eps) needs one exp per entry of
the n x m cost. Writing f = f0 + eps log u with a reference potential pair (f0, g0) gives

    out_j = eps log (K^T u)_j - g0_j,   K_ij = exp((f0_i + g0_j - C_ij) / eps),

the "absorption" stabilization of Schmitzer (2019, Sec. 4.1; POT's ``sinkhorn_stabilized``):
K is the plan at the reference potentials, so its entries are at most about 1 and those
that underflow are negligible plan entries, and u = exp((f - f0) / eps) stays moderate as
long as f stays near f0. The cache re-references (one exp pass) when a potential drifts by
more than ``drift_limit`` x eps, and falls back to the exact log-sum-exp when a product still
underflows, so results are those of the log-domain iteration at the price of a GEMV for most
iterations.
"""

from __future__ import annotations

import torch

from ..geometry import Geometry

__all__ = ["KernelCache"]


class KernelCache:
    """Cached Gibbs kernel at reference potentials for one dense geometry and epsilon."""

    def __init__(self, geom: Geometry, cost: torch.Tensor, eps: torch.Tensor,
                 drift_limit: float = 10.0) -> None:
        self.geom = geom
        self.cost = cost          # (B, n, m), detached
        self.eps = eps            # (B,)
        self.drift_limit = drift_limit
        self.f0: torch.Tensor | None = None
        self.g0: torch.Tensor | None = None
        self.kernel: torch.Tensor | None = None
        self.rebuilds = 0
        self.fallbacks = 0

    def rebuild(self, f: torch.Tensor, g: torch.Tensor) -> None:
        """Take (f, g) as the reference potentials: K = exp((f + g - C) / eps)."""
        e = self.eps[:, None, None]
        kernel = self.kernel
        if kernel is None or kernel.shape != self.cost.shape:
            kernel = torch.empty_like(self.cost)
        torch.sub(f[:, :, None] + g[:, None, :], self.cost, out=kernel)
        kernel.div_(e).exp_()
        # -inf potentials (zero weights) give exp(-inf) = 0 rows, as they should; a NaN can
        # only come from inf - inf, i.e. a zero-weight row against a zero-weight column.
        self.kernel = kernel.nan_to_num_(nan=0.0)
        self.f0, self.g0 = f.clone(), g.clone()
        self.rebuilds += 1

    def _drift(self, h: torch.Tensor, h0: torch.Tensor) -> bool:
        finite = torch.isfinite(h0)
        delta = torch.where(finite, (h - h0).abs(), torch.zeros_like(h))
        return bool((delta.amax(-1) > self.drift_limit * self.eps).any())

    def lse(self, h: torch.Tensor, axis: int, other: torch.Tensor) -> torch.Tensor:
        """Same as ``geom.lse(h, axis, eps)``; ``other`` is the current potential of the other
        side, used when the cache has to be re-referenced."""
        if self.kernel is None:
            f, g = (h, other) if axis == 0 else (other, h)
            self.rebuild(f, g)
        assert self.kernel is not None and self.f0 is not None and self.g0 is not None
        h0, out0 = (self.f0, self.g0) if axis == 0 else (self.g0, self.f0)
        if self._drift(h, h0):
            f, g = (h, other) if axis == 0 else (other, h)
            self.rebuild(f, g)
            h0, out0 = (self.f0, self.g0) if axis == 0 else (self.g0, self.f0)
        eps = self.eps[:, None]
        scaling = torch.exp((h - h0) / eps).nan_to_num_(nan=0.0).unsqueeze(-1)
        if axis == 0:
            product = (self.kernel.transpose(1, 2) @ scaling).squeeze(-1)
        else:
            product = (self.kernel @ scaling).squeeze(-1)
        # entries against a -inf reference (zero weights) are irrelevant: their potential
        # stays -inf whatever the update returns, so they are set to 0
        out = torch.where(torch.isfinite(out0), eps * torch.log(product) - out0, 0.0)
        if not bool(torch.isfinite(out).all()):
            # an underflowed product (or a -inf reference): the exact update, then a fresh
            # reference at the next call
            self.fallbacks += 1
            self.kernel = None
            return self.geom.lse(h, axis, self.eps)
        return out
