"""Sinkhorn iterations in the scaling domain, stabilized by absorption into potentials.

The log-domain update g_j = eps log b_j - eps log sum_i exp((f_i - C_ij) / eps) costs one
exp per entry of the n x m cost. Writing the potentials as f = f_ref + eps log u and
g = g_ref + eps log v around reference potentials gives the same update as

    v = b / (K^T u),   u = a / (K v),   K_ij = exp((f_ref_i + g_ref_j - C_ij) / eps),

the kernel iterations of Cuturi (2013) on a kernel re-referenced at (f_ref, g_ref): a
matrix-vector product per half-step. This is the "absorption" stabilization of Schmitzer
(2019, Sec. 4.1; POT's ``sinkhorn_stabilized``): when a product leaves the safe range of the
dtype, or a scaling has grown enough that entries of K flushed to zero at the last reference
could matter, the scalings are absorbed into the references and K is rebuilt. A rebuild takes
the input side's current potential as its reference and sets the output side's reference to
the (hard or soft) c-transform of it, so every output coordinate has a kernel entry of 1
against a unit scaling and the product that follows cannot underflow. The iterates are those
of the log-domain iteration, up to rounding.

Without stabilization (``lse_mode=False``) the same loop runs on K = exp(-C / eps) and never
rebuilds: the classic kernel Sinkhorn, which underflows for small eps.
"""

from __future__ import annotations

import math

import torch

from .._numerics import negligible, stable_exp
from ..geometry import Geometry

__all__ = ["DenseKernel", "LazyKernel", "ScalingIterations", "make_kernel"]


class DenseKernel:
    """K materialized as a (B, n, m) tensor, rebuilt in place."""

    def __init__(self, geom: Geometry, eps: torch.Tensor) -> None:
        self.geom, self.eps = geom, eps
        self.matrix: torch.Tensor | None = None

    def _buffer(self) -> torch.Tensor:
        if self.matrix is None:
            n, m = self.geom.shape
            self.matrix = torch.empty((self.geom.num_problems, n, m), dtype=self.geom.dtype,
                                      device=self.geom.device)
        return self.matrix

    def build(self, reference: torch.Tensor, axis: int) -> torch.Tensor:
        """K at a reference potential ``reference`` on side ``axis`` (0: rows, 1: columns;
        -inf on coordinates with zero weight) and, on the other side, its hard c-transform,
        which is returned: each row (axis=1) or column (axis=0) of K then has a largest entry
        of exactly 1."""
        n, m = self.geom.shape
        everything = (slice(0, n), slice(0, m))
        f, g = (reference, None) if axis == 0 else (None, reference)
        log_kernel = self.geom._log_kernel_block(f, g, self.eps, *everything,
                                                 out=self._buffer())
        largest = log_kernel.amax(dim=1 if axis == 0 else 2, keepdim=True)
        stable_exp(log_kernel.sub_(largest), inplace=True)
        return -self.eps[:, None] * largest.squeeze(1 if axis == 0 else 2)

    def build_plain(self) -> None:
        """K = exp(-C / eps): the reference potentials are zero."""
        n, m = self.geom.shape
        stable_exp(self.geom._log_kernel_block(None, None, self.eps, slice(0, n), slice(0, m),
                                               out=self._buffer()), inplace=True)

    def columns(self, u: torch.Tensor) -> torch.Tensor:
        """K^T u: (B, n) -> (B, m)."""
        assert self.matrix is not None
        return torch.bmm(u.unsqueeze(1), self.matrix).squeeze(1)

    def rows(self, v: torch.Tensor) -> torch.Tensor:
        """K v: (B, m) -> (B, n)."""
        assert self.matrix is not None
        return torch.bmm(self.matrix, v.unsqueeze(-1)).squeeze(-1)


class LazyKernel:
    """K applied block by block through the geometry (online point clouds, grids): nothing
    of size n x m is stored, and a rebuild only moves the reference potentials."""

    def __init__(self, geom: Geometry, eps: torch.Tensor) -> None:
        self.geom, self.eps = geom, eps
        self.f_ref: torch.Tensor | None = None
        self.g_ref: torch.Tensor | None = None

    def build(self, reference: torch.Tensor, axis: int) -> torch.Tensor:
        """As :meth:`DenseKernel.build`, with the soft c-transform (every product at the
        fresh reference is exactly 1)."""
        transform = -self.geom.lse(reference, axis, self.eps)
        finite = torch.where(torch.isfinite(reference), reference, 0.0)
        # zero-weight coordinates keep a zero scaling, so their reference does not matter
        self.f_ref, self.g_ref = (finite, transform) if axis == 0 else (transform, finite)
        return transform

    def build_plain(self) -> None:
        self.f_ref = self.g_ref = None

    def columns(self, u: torch.Tensor) -> torch.Tensor:
        return self.geom.apply_plan(self.f_ref, self.g_ref, self.eps, u, axis=0)

    def rows(self, v: torch.Tensor) -> torch.Tensor:
        return self.geom.apply_plan(self.f_ref, self.g_ref, self.eps, v, axis=1)


def make_kernel(geom: Geometry, eps: torch.Tensor) -> DenseKernel | LazyKernel:
    """A dense kernel unless the geometry never materializes its cost."""
    from ..geometry import Grid

    if geom.is_online or isinstance(geom, Grid):
        return LazyKernel(geom, eps)
    return DenseKernel(geom, eps)


class ScalingIterations:
    """The state (f_ref, g_ref, u, v) of the iterations and the two half-steps.

    Args:
        kernel: a :class:`DenseKernel` or :class:`LazyKernel` of the (detached) geometry.
        a, b: (B, n), (B, m) weights; tau_a, tau_b: marginal relaxations (1: balanced).
        eps: (B,). stabilize: absorb and rebuild when needed (False: kernel mode).
        f, g: initial potentials, (B, n) and (B, m).
    """

    def __init__(self, kernel: DenseKernel | LazyKernel, a: torch.Tensor, b: torch.Tensor,
                 tau_a: float, tau_b: float, eps: torch.Tensor, stabilize: bool,
                 f: torch.Tensor, g: torch.Tensor) -> None:
        self.kernel, self.a, self.b = kernel, a, b
        self.tau_a, self.tau_b, self.eps = tau_a, tau_b, eps
        self.stabilize = stabilize
        self.log_a, self.log_b = torch.log(a), torch.log(b)
        # masks only when some weight is zero (their potentials are -inf, scalings 0)
        self.active_a = None if bool((a > 0).all()) else a > 0
        self.active_b = None if bool((b > 0).all()) else b > 0
        info = torch.finfo(a.dtype)
        # Kernel entries below negligible() are 0 (see _numerics). Products stay far above
        # that level (a rebuild makes them >= 1) and below overflow; a scaling may grow by
        # e^L, L = log(max) / 4 (22 in float32), before absorption, so entries dropped at the
        # last reference carry at most negligible x e^(2L) of mass relative to the largest.
        self.low, self.high = negligible(a.dtype) * 2.0 ** 30, info.max * 2.0 ** -20
        growth = math.exp(math.log(info.max) / 4)
        self.cap_u = growth * max(1.0, float(a.max()))
        self.cap_v = growth * max(1.0, float(b.max()))
        e = eps[:, None]
        if stabilize:
            self.f_ref = torch.where(torch.isfinite(f), f, 0.0)
            self.u = self._unit(self.active_a, f)
            self.g_ref = kernel.build(self._masked(f, self.active_a), axis=0)
            self.v = torch.exp((g - self.g_ref) / e)
        else:
            kernel.build_plain()
            self.f_ref, self.g_ref = torch.zeros_like(f), torch.zeros_like(g)
            self.u, self.v = torch.exp(f / e), torch.exp(g / e)
        self._shift_log_weights()

    @staticmethod
    def _unit(active: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(like)
        return ones if active is None else torch.where(active, ones, 0.0)

    @staticmethod
    def _masked(potential: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        return potential if active is None else torch.where(active, potential, -math.inf)

    def _shift_log_weights(self) -> None:
        # unbalanced updates: log v = log b - (1 - tau_b) g_ref / eps - tau_b log(K^T u)
        e = self.eps[:, None]
        self.shifted_log_b = self.log_b - (1 - self.tau_b) * self.g_ref / e
        self.shifted_log_a = self.log_a - (1 - self.tau_a) * self.f_ref / e

    # ------------------------------------------------------------------ potentials
    def f(self) -> torch.Tensor:
        return self.f_ref + self.eps[:, None] * torch.log(self.u)

    def g(self) -> torch.Tensor:
        return self.g_ref + self.eps[:, None] * torch.log(self.v)

    def set_g(self, g: torch.Tensor) -> None:
        self.v = torch.exp((g - self.g_ref) / self.eps[:, None])

    def set_f(self, f: torch.Tensor) -> None:
        self.u = torch.exp((f - self.f_ref) / self.eps[:, None])

    # ------------------------------------------------------------------ products
    def _in_range(self, product: torch.Tensor, active: torch.Tensor | None,
                  scaling: torch.Tensor, cap: float) -> bool:
        if active is not None:
            product = torch.where(active, product, 1.0)
        low, high = torch.aminmax(product)
        # one host sync for the three numbers
        low, high, top = torch.stack((low, high, scaling.max())).tolist()
        return low > self.low and high < self.high and top < cap

    def columns(self) -> torch.Tensor:
        """K^T u at the current references, absorbing and rebuilding first if needed."""
        product = self.kernel.columns(self.u)
        if self.stabilize and not self._in_range(product, self.active_b, self.u,
                                                 self.cap_u):
            self._absorb(axis=0)
            product = self.kernel.columns(self.u)
        return product

    def rows(self) -> torch.Tensor:
        """K v at the current references, absorbing and rebuilding first if needed."""
        product = self.kernel.rows(self.v)
        if self.stabilize and not self._in_range(product, self.active_a, self.v,
                                                 self.cap_v):
            self._absorb(axis=1)
            product = self.kernel.rows(self.v)
        return product

    def _absorb(self, axis: int) -> None:
        """Move the scalings into the references and rebuild K around the side that the
        next product reads (axis 0: f, for K^T u; axis 1: g, for K v). The potentials do
        not change."""
        f, g = self.f(), self.g()
        if axis == 0:
            self.f_ref = torch.where(torch.isfinite(f), f, 0.0)
            self.u = self._unit(self.active_a, f)
            self.g_ref = self.kernel.build(self._masked(f, self.active_a), axis=0)
            self.set_g(g)
        else:
            self.g_ref = torch.where(torch.isfinite(g), g, 0.0)
            self.v = self._unit(self.active_b, g)
            self.f_ref = self.kernel.build(self._masked(g, self.active_b), axis=1)
            self.set_f(f)
        self._shift_log_weights()

    # ------------------------------------------------------------------ updates
    def g_update(self, columns: torch.Tensor) -> torch.Tensor:
        """The new v from K^T u (balanced: v = b / K^T u)."""
        if self.tau_b == 1.0:
            v = self.b / columns
        else:
            v = torch.exp(self.shifted_log_b - self.tau_b * torch.log(columns))
        return v if self.active_b is None else torch.where(self.active_b, v, 0.0)

    def f_update(self, rows: torch.Tensor) -> torch.Tensor:
        """The new u from K v (balanced: u = a / K v)."""
        if self.tau_a == 1.0:
            u = self.a / rows
        else:
            u = torch.exp(self.shifted_log_a - self.tau_a * torch.log(rows))
        return u if self.active_a is None else torch.where(self.active_a, u, 0.0)

    def column_marginal(self, columns: torch.Tensor) -> torch.Tensor:
        """P^T 1 = v * K^T u at the current references."""
        return self.v * columns
