"""Low-rank (fused) Gromov-Wasserstein: GW over couplings of nonnegative rank r.

Scetbon, Peyre & Cuturi 2022, "Linear-Time Gromov Wasserstein Distances using Low Rank
Couplings and Costs" (ICML). The coupling is P = Q diag(1/g) R^T as in low-rank Sinkhorn
(:mod:`lutece.ot.solvers.low_rank`) and the objective is that of
:func:`~lutece.ot.gromov_wasserstein` at epsilon -> 0,

    F(P) = Q(P) / 2 + fused_penalty <M, P> - epsilon H(Q, R, g),
    Q(P) = sum_{i,j,k,l} (C1_ik - C2_jl)^2 P_ij P_kl,

minimized by the same mirror descent on (Q, R, g), each step projected by LR-Dykstra. The
gradient of Q(P)/2 with respect to P is the linearization (Peyre, Cuturi & Solomon 2016)

    L(C1, C2) (x) P = ((C1 o C1) a) 1^T + 1 ((C2 o C2) b)^T - 2 C1 P C2^T,

and with P in factors C1 P C2^T = (C1 Q) diag(1/g) (C2 R)^T has rank r: the linearized cost
is itself a low-rank matrix [u, 1, -2 C1 Q diag(1/g)] [1, v, C2 R]^T (u = (C1 o C1) a,
v = (C2 o C2) b, fixed since P 1 = a and P^T 1 = b), so the solver never forms it. The
energy needs only r x r products: <C1 P C2^T, P> = tr(diag(1/g) (R^T C2 R)^T diag(1/g)
(Q^T C1 Q)).

Cost in n. With squared-Euclidean point clouds (C = A B^T of rank d + 2) or low-rank costs,
C1 Q and C2 R cost O(n r d) and (C o C) a costs O(n d^2): one iteration is O((n + m) r d)
time and memory, linear in the number of points (the paper's Algorithm 3 with the cost
factorizations of its Section 3). Other geometries use their dense cost matrices: O(n^2 r)
per iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry import Geometry
from .gromov import _check_geometries, _check_weights, _IntraCost
from .low_rank import (
    LowRankCoupling,
    _check_number,
    _check_options,
    _CostOperator,
    _initial_kernels,
    _mirror_descent,
)

__all__ = ["low_rank_gromov_wasserstein", "LRGWOutput"]

_FN = "low_rank_gromov_wasserstein"
_INITS = ("random", "rank2")


@dataclass(frozen=True)
class LRGWOutput(LowRankCoupling):
    """The result of :func:`low_rank_gromov_wasserstein`: P = Q diag(1/g) R^T in factors.

    Attributes (beyond ``q`` (n, r), ``r`` (m, r), ``g`` (r,), ``matrix``, ``apply`` and
    ``marginal`` of :class:`LowRankCoupling`):
        cost: () Q(P) + fused_penalty <M, P>, the same quantity as
            :attr:`GWOutput.cost <lutece.ot.GWOutput>`; differentiable w.r.t. the
            geometries' tensors at fixed factors (the envelope gradient).
        quadratic_cost: () Q(P).
        linear_cost: () <M, P> for fused GW, None otherwise.
        costs: (num_checks,) the cost at every convergence check.
        errors: (num_checks,) the criterion at every check (symmetric KL between
            consecutive iterates over the squared step, as in low-rank Sinkhorn).
        converged: the last error is below ``threshold`` and nothing is NaN.
        n_iters: mirror-descent steps run.
    """

    cost: torch.Tensor
    quadratic_cost: torch.Tensor
    linear_cost: torch.Tensor | None
    costs: torch.Tensor
    errors: torch.Tensor
    converged: bool
    n_iters: int


@dataclass(frozen=True)
class _Energy:
    """The GW energy and its linearization at a factored coupling, for costs C1, C2 (and M).

    ``u`` = (C1 o C1) a (n,) and ``v`` = (C2 o C2) b (m,); ``constant`` = <u, a> + <v, b>, the
    part of Q(P) fixed by the marginals.
    """

    cost_xx: _IntraCost
    cost_yy: _IntraCost
    cost_xy: _CostOperator | None
    fused_penalty: float
    u: torch.Tensor
    v: torch.Tensor
    constant: torch.Tensor

    @classmethod
    def build(cls, cost_xx: _IntraCost, cost_yy: _IntraCost, cost_xy: _CostOperator | None,
              fused_penalty: float, a: torch.Tensor, b: torch.Tensor) -> _Energy:
        u, v = cost_xx.squared_matvec(a), cost_yy.squared_matvec(b)
        return cls(cost_xx, cost_yy, cost_xy, fused_penalty, u, v, u @ a + v @ b)

    def detach(self) -> _Energy:
        """The same energy without autograd history (u, v reused, not recomputed)."""
        return _Energy(self.cost_xx.detach(), self.cost_yy.detach(),
                       None if self.cost_xy is None else self.cost_xy.detach(),
                       self.fused_penalty, self.u.detach(), self.v.detach(),
                       self.constant.detach())

    def linearization(self, q: torch.Tensor, r: torch.Tensor, g: torch.Tensor
                      ) -> _CostOperator:
        """L (x) P + fused_penalty M as a cost operator of rank r + 2 (+ M's)."""
        c1q = self.cost_xx.matmul(q) / g                         # C1 Q diag(1/g), (n, r)
        c2r = self.cost_yy.matmul(r)                             # C2 R, (m, r)
        ones_n, ones_m = self.u.new_ones(self.u.shape[0], 1), self.v.new_ones(self.v.shape[0], 1)
        left = torch.cat([self.u[:, None], ones_n, -2 * c1q], 1)
        right = torch.cat([ones_m, self.v[:, None], c2r], 1)
        linear = _CostOperator(factors=((left, right),))
        if self.cost_xy is not None:
            linear = linear + self.cost_xy.scaled(self.fused_penalty)
        return linear

    def quadratic(self, q: torch.Tensor, r: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Q(P) = <u, a> + <v, b> - 2 <C1 P C2^T, P>, through r x r products."""
        inner_x = q.T @ self.cost_xx.matmul(q)                  # Q^T C1 Q, (r, r)
        inner_y = r.T @ self.cost_yy.matmul(r)                  # R^T C2 R, (r, r)
        cross = torch.trace((inner_y.T / g) @ (inner_x / g))      # tr(D A2^T D A1)
        return self.constant - 2 * cross

    def linear(self, q: torch.Tensor, r: torch.Tensor, g: torch.Tensor) -> torch.Tensor | None:
        if self.cost_xy is None:
            return None
        return ((q * self.cost_xy.apply(r, axis=1)).sum(0) / g).sum()

    def total(self, q: torch.Tensor, r: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        linear = self.linear(q, r, g)
        quadratic = self.quadratic(q, r, g)
        return quadratic if linear is None else quadratic + self.fused_penalty * linear


def low_rank_gromov_wasserstein(geom_xx: Geometry, geom_yy: Geometry, rank: int, *,
                                geom_xy: Geometry | None = None, fused_penalty: float = 1.0,
                                a: torch.Tensor | None = None, b: torch.Tensor | None = None,
                                gamma: float = 10.0, epsilon: float = 0.0,
                                max_iterations: int = 2000, threshold: float = 1e-6,
                                inner_iterations: int = 10, init: str = "random",
                                seed: int = 0, warn: bool = True) -> LRGWOutput:
    """(Fused) Gromov-Wasserstein over couplings of nonnegative rank ``rank``.

    Minimizes Q(P)/2 + fused_penalty <M, P> - epsilon H(Q, R, g) over P = Q diag(1/g) R^T with
    P 1 = a, P^T 1 = b by mirror descent (Scetbon, Peyre & Cuturi 2022; see the module
    docstring). The objective is non-convex: the result is a stationary point that depends
    on ``init`` and ``seed``.

    Args:
        geom_xx: the source space, (n, n), cost C1 (its scaled cost matrix). Squared-Euclidean
            :class:`~lutece.ot.PointCloud` and :class:`~lutece.ot.LRCGeometry` are used
            through their factors: linear time and memory in n.
        geom_yy: the target space, (m, m), cost C2.
        rank: r, 1 <= r <= min(n, m).
        geom_xy: for fused GW, an (n, m) geometry whose cost is M; None for GW.
        fused_penalty: weight of <M, P>, > 0 (as in :func:`~lutece.ot.gromov_wasserstein`).
        a, b: (n,), (m,) non-negative weights with equal sums; None is uniform.
        gamma, epsilon, max_iterations, threshold, inner_iterations: as for
            :func:`~lutece.ot.low_rank_sinkhorn` (epsilon is the entropy on the factors,
            0 by default). The objective is divided by the sup norm of the first step's
            gradients (which scale like the square of the costs), so that ``gamma`` is
            scale-free; the criterion then needs a smaller ``threshold`` (1e-6 by default)
            than low-rank Sinkhorn's.
        init: "random" (|N(0, 1)| kernels) or "rank2" (the rank-2 feasible point of
            Scetbon et al. 2021), each projected onto the constraints.
        seed: seed of the random initialization.
        warn: warn (RuntimeWarning) when the criterion did not fall below ``threshold``.

    Returns:
        :class:`LRGWOutput`.
    """
    n, m = _check_geometries(geom_xx, geom_yy, geom_xy, _FN)
    options = _check_options(_FN, n, m, rank, gamma, epsilon, threshold, max_iterations,
                             inner_iterations, init, _INITS, seed)
    fused_penalty = _check_number(_FN, "fused_penalty", fused_penalty, positive=True)
    a = _check_weights("a", a, n, geom_xx, fn=_FN)
    b = _check_weights("b", b, m, geom_xx, fn=_FN)
    if abs(float(a.sum()) - float(b.sum())) > 1e-4 * max(float(a.sum()), float(b.sum())):
        raise ValueError(f"{_FN}: a and b must have the same total mass, got "
                         f"{float(a.sum()):.6g} and {float(b.sum()):.6g}; normalize them")

    # live costs (autograd history kept for the final cost), detached ones for the loop
    live = _Energy.build(_IntraCost.from_geometry(geom_xx), _IntraCost.from_geometry(geom_yy),
                         None if geom_xy is None else _CostOperator.from_geometry(geom_xy),
                         fused_penalty, a, b)
    energy = live.detach()
    with torch.no_grad():
        log_kq, log_kr = _initial_kernels(a, b, rank, init, options.seed)
        state = _mirror_descent(a, b, log_kq, log_kr, options, energy.linearization,
                                energy.total, unit_first_step=True)
    if warn:
        state.warn_if_not_converged(_FN, options.threshold)
    q, r, g = state.q, state.r, state.g
    quadratic = live.quadratic(q, r, g)
    linear = live.linear(q, r, g)
    cost = quadratic if linear is None else quadratic + fused_penalty * linear
    return LRGWOutput(q=q, r=r, g=g, cost=cost, quadratic_cost=quadratic, linear_cost=linear,
                      costs=state.costs, errors=state.errors, converged=state.converged,
                      n_iters=state.n_iters)
