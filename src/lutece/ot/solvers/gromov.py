"""Entropic Gromov-Wasserstein (GW) and fused GW by iterated linearization.

GW compares two metric-measure spaces that share no ground cost (Memoli 2011): given the
intra-domain costs C1 (n, n) of ``geom_xx`` and C2 (m, m) of ``geom_yy`` and weights a (n,),
b (m,), the square-loss GW energy of a coupling T (n, m) is

    Q(T) = sum_{i,j,k,l} (C1_ik - C2_jl)^2 T_ij T_kl = <L(C1, C2) (x) T, T>,

where the tensor-matrix product has the closed form (Peyre, Cuturi & Solomon 2016, Prop. 1)

    L(C1, C2) (x) T = ((C1 o C1) p) 1_m^T + 1_n ((C2 o C2) q)^T - 2 C1 T C2^T,
    p = T 1_m, q = T^T 1_n    (o: entrywise product),

which costs matrix products instead of the O(n^2 m^2) sum. Fused GW (Vayer et al. 2019) adds
a linear term <M, T> on a cross-domain cost M (n, m) of ``geom_xy``.

Solver (Peyre et al. 2016, Prop. 2: mirror descent with step 1 / eps; OTT's
``GromovWasserstein``): from T_0 (a b^T by default),

    T_{k+1} = argmin_{T 1 = a, T^T 1 = b} <L(C1, C2) (x) T_k + fused_penalty M, T>
                                             + eps KL(T | a b^T),

each step an entropic linear problem solved by :func:`~lutece.ot.sinkhorn`, warm-started
from the previous step's potentials. Since grad Q = 2 L (x) T for symmetric costs, the fixed
points are the stationary points of

    F(T) = Q(T) / 2 + fused_penalty <M, T> + eps KL(T | a b^T).

GW is not convex: the result depends on T_0 and is a stationary point, not a certified
optimum.

Conventions (checked in ``tests/ot/test_gromov.py``). The reported ``cost`` is OTT's
``primal_cost``, Q(T) + fused_penalty <M, T>, without entropy. POT's
``entropic_gromov_wasserstein(C1, C2, a, b, epsilon=e)`` linearizes with the gradient
2 L (x) T, so its iterates are ours at ``epsilon = e / 2``. POT's
``entropic_fused_gromov_wasserstein(M, C1, C2, a, b, alpha=alpha, epsilon=e)`` linearizes with
(1 - alpha) M + 2 alpha L (x) T: its iterates are ours at
``fused_penalty = (1 - alpha) / (2 alpha)`` and ``epsilon = e / (2 alpha)`` (conversely
alpha = 1 / (1 + 2 fused_penalty), e = 2 alpha epsilon), and its objective
alpha Q + (1 - alpha) <M, T> equals alpha (quadratic_cost + 2 fused_penalty linear_cost).

Cost in n. A squared-Euclidean :class:`~lutece.ot.PointCloud` has a cost of rank r = d + 2,
C = U V^T with U = [|x|^2, 1, -2 x], V = [1, |y|^2, y] (an :class:`~lutece.ot.LRCGeometry`
has rank r + 1); then C1 T C2^T = U1 ((V1^T T) V2) U2^T costs O(n m (r1 + r2)) and
(C o C) p = (U * U)((V * V)^T p) (row-wise Kronecker products) O(n r^2), so nothing larger
than n x m is formed. Other geometries use their cost matrices: O(n^2 m + n m^2) per
iteration and O(n^2 + m^2) memory. Each iteration adds one Sinkhorn solve, O(n m) per
Sinkhorn iteration.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..._validation import check_finite, check_floating, check_tensor, data_checks_enabled
from ..costs import SqEuclidean
from ..geometry import DEFAULT_EPSILON_SCALE, Geometry, LRCGeometry, PointCloud
from ..problems import LinearProblem
from .sinkhorn import SinkhornOutput, sinkhorn

__all__ = ["gromov_wasserstein", "GWOutput"]

_FN = "gromov_wasserstein"


@dataclass(frozen=True)
class GWOutput:
    """The result of :func:`gromov_wasserstein`.

    Attributes:
        matrix: (n, m) the coupling T of the last iteration.
        cost: () Q(T) + fused_penalty <M, T> (OTT's ``primal_cost``; no entropy), where
            Q(T) = sum_ijkl (C1_ik - C2_jl)^2 T_ij T_kl. Differentiable w.r.t. the
            geometries' tensors with T held fixed (the envelope / Danskin approximation).
        quadratic_cost: () Q(T) alone.
        linear_cost: () <M, T> for fused GW, None without ``geom_xy``.
        reg_gw_cost: () cost + eps KL(T | a b^T) (+ rho_a KL(T 1 | a) + rho_b KL(T^T 1 | b)
            when unbalanced), with the generalized KL(P | Q) = sum P log(P / Q) - P + Q:
            the objective of the linear problem at the final linearization, evaluated at T
            (OTT's ``reg_gw_cost``).
        epsilon: the entropic regularization used by every linear problem.
        errors: (n_iters,) the relative L1 change sum_ij |T_{k+1} - T_k| / sum(a) of each
            outer iteration.
        converged: the last change is below ``threshold`` and the last Sinkhorn solve
            converged.
        n_iters: outer iterations run.
        linear_output: the :class:`~lutece.ot.SinkhornOutput` of the last linear problem;
            its potentials are those of ``matrix``.
    """

    matrix: torch.Tensor
    cost: torch.Tensor
    quadratic_cost: torch.Tensor
    linear_cost: torch.Tensor | None
    reg_gw_cost: torch.Tensor
    epsilon: float
    errors: torch.Tensor
    converged: bool
    n_iters: int
    linear_output: SinkhornOutput


class _IntraCost:
    """An intra-domain cost C (n, n') held densely or as factors C = left @ right^T."""

    def __init__(self, dense: torch.Tensor | None = None, left: torch.Tensor | None = None,
                 right: torch.Tensor | None = None) -> None:
        self.dense, self.left, self.right = dense, left, right

    @classmethod
    def from_geometry(cls, geom: Geometry) -> _IntraCost:
        """Factors for squared-Euclidean point clouds and low-rank costs whose rank is below
        the number of points, the (scaled) cost matrix otherwise."""
        scale = geom.cost_scale[0]
        if isinstance(geom, LRCGeometry):
            x, y = geom.x[0], geom.y[0]
            ones_x, ones_y = x.new_ones(x.shape[0], 1), y.new_ones(y.shape[0], 1)
            left = torch.cat([geom.cost_fn.scale_factor * x, geom.cost_fn.bias * ones_x], 1)
            right = torch.cat([y, ones_y], 1)
        elif isinstance(geom, PointCloud) and type(geom.cost_fn) is SqEuclidean:
            # |x - y|^2 = |x|^2 + |y|^2 - 2 <x, y>, on points centred at y's mean (the cost is
            # translation invariant; centring limits the cancellation of the expansion)
            center = geom.y[0].mean(0, keepdim=True)
            x, y = geom.x[0] - center, geom.y[0] - center
            ones_x, ones_y = x.new_ones(x.shape[0], 1), y.new_ones(y.shape[0], 1)
            left = torch.cat([x.pow(2).sum(1, keepdim=True), ones_x, -2 * x], 1)
            right = torch.cat([ones_y, y.pow(2).sum(1, keepdim=True), y], 1)
        else:
            return cls(dense=geom.cost_matrix)
        if left.shape[1] >= min(geom.shape):
            return cls(dense=geom.cost_matrix)
        return cls(left=left / scale, right=right)

    def detach(self) -> _IntraCost:
        return _IntraCost(*(None if t is None else t.detach()
                            for t in (self.dense, self.left, self.right)))

    def matmul(self, v: torch.Tensor) -> torch.Tensor:
        """C v for v (n', k) -> (n, k)."""
        if self.dense is not None:
            return self.dense @ v
        assert self.left is not None and self.right is not None
        return self.left @ (self.right.T @ v)

    def squared_matvec(self, p: torch.Tensor) -> torch.Tensor:
        """(C o C) p for p (n',) -> (n,)."""
        if self.dense is not None:
            return self.dense.pow(2) @ p
        assert self.left is not None and self.right is not None
        left, right = self.left, self.right
        rank = left.shape[1]
        if rank * rank < left.shape[0]:
            # (U V^T) o (U V^T) = (U * U)(V * V)^T with row-wise Kronecker products
            left_kron = (left[:, :, None] * left[:, None, :]).reshape(left.shape[0], -1)
            right_kron = (right[:, :, None] * right[:, None, :]).reshape(right.shape[0], -1)
            return left_kron @ (right_kron.T @ p)
        # high rank: rebuild the cost in blocks of rows, never all of it at once
        rows = max(1, (1 << 22) // max(1, right.shape[0]))
        return torch.cat([(left[start:start + rows] @ right.T).pow(2) @ p
                          for start in range(0, left.shape[0], rows)])


def _linearization(cost_xx: _IntraCost, cost_yy: _IntraCost, coupling: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """L(C1, C2) (x) T (n, m) and Q(T) = <L (x) T, T> (), Peyre et al. 2016, Prop. 1."""
    p, q = coupling.sum(1), coupling.sum(0)
    marginal_x, marginal_y = cost_xx.squared_matvec(p), cost_yy.squared_matvec(q)
    cross = cost_yy.matmul(cost_xx.matmul(coupling).T).T            # C1 T C2^T, (n, m)
    tensor_product = marginal_x[:, None] + marginal_y[None, :] - 2 * cross
    quadratic = marginal_x @ p + marginal_y @ q - 2 * (cross * coupling).sum()
    return tensor_product, quadratic


def _check_geometry(name: str, geom: object, fn: str = _FN) -> Geometry:
    if not isinstance(geom, Geometry):
        raise TypeError(f"{fn}: {name} must be a lutece.ot geometry, got "
                        f"{type(geom).__name__}")
    if geom.batched:
        raise ValueError(f"{fn}: {name} must hold one problem, got a batch of "
                         f"{geom.num_problems}; solve the problems one by one")
    if geom.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {geom.dtype}")
    return geom


def _check_geometries(geom_xx: object, geom_yy: object, geom_xy: object,
                      fn: str = _FN) -> tuple[int, int]:
    """Two square intra-domain geometries (and an optional (n, m) cross one) of one dtype
    and device; returns (n, m)."""
    geom_xx = _check_geometry("geom_xx", geom_xx, fn)
    geom_yy = _check_geometry("geom_yy", geom_yy, fn)
    for name, geom in (("geom_xx", geom_xx), ("geom_yy", geom_yy)):
        rows, cols = geom.shape
        if rows != cols:
            raise ValueError(f"{fn}: {name} must be square (the cost within one space), got "
                             f"shape ({rows}, {cols})")
    n, m = geom_xx.shape[0], geom_yy.shape[0]
    dtype, device = geom_xx.dtype, geom_xx.device
    if geom_yy.dtype != dtype or geom_yy.device != device:
        raise TypeError(f"{fn}: geom_xx and geom_yy must share dtype and device, got "
                        f"{dtype}/{device} and {geom_yy.dtype}/{geom_yy.device}")
    if geom_xy is not None:
        geom_xy = _check_geometry("geom_xy", geom_xy, fn)
        if geom_xy.shape != (n, m):
            raise ValueError(f"{fn}: geom_xy must have shape ({n}, {m}) (geom_xx's points by "
                             f"geom_yy's), got {geom_xy.shape}")
        if geom_xy.dtype != dtype or geom_xy.device != device:
            raise TypeError(f"{fn}: geom_xy must have geom_xx's dtype and device, got "
                            f"{geom_xy.dtype}/{geom_xy.device}")
    return n, m


def _check_weights(name: str, value: object, size: int, geom: Geometry, fn: str = _FN
                   ) -> torch.Tensor:
    if value is None:
        return torch.full((size,), 1.0 / size, dtype=geom.dtype, device=geom.device)
    value = check_tensor(fn, name, value, min_ndim=1)
    check_floating(fn, name, value)
    if tuple(value.shape) != (size,):
        raise ValueError(f"{fn}: {name} must have shape ({size},) to match the geometry, "
                         f"got {tuple(value.shape)}")
    check_finite(fn, name, value)
    if data_checks_enabled():
        if bool((value < 0).any()):
            raise ValueError(f"{fn}: {name} must be >= 0, got a minimum of "
                             f"{float(value.min())}")
        if float(value.sum()) <= 0:
            raise ValueError(f"{fn}: {name} must have positive total mass")
    return value.detach().to(device=geom.device, dtype=geom.dtype)


def _check_number(name: str, value: object, *, low: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{_FN}: {name} must be a number, got {type(value).__name__}")
    ok = math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        raise ValueError(f"{_FN}: {name} must be {'>' if strict else '>='} {low:g} and "
                         f"finite, got {value!r}")
    return float(value)


_SINKHORN_OPTIONS = frozenset(inspect.signature(sinkhorn).parameters) - {
    "problem", "init", "warn"}


def _check_sinkhorn_kwargs(value: object, threshold: float) -> dict:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{_FN}: sinkhorn_kwargs must be a mapping of sinkhorn options or "
                        f"None, got {type(value).__name__}")
    unknown = sorted(set(value) - _SINKHORN_OPTIONS)
    if unknown:
        raise ValueError(f"{_FN}: sinkhorn_kwargs has unknown or reserved key(s) {unknown}; "
                         f"allowed: {sorted(_SINKHORN_OPTIONS)} (init and warn are set by "
                         "gromov_wasserstein)")
    return {"threshold": threshold, "max_iterations": 2000, **value}


def gromov_wasserstein(geom_xx: Geometry, geom_yy: Geometry, *,
                       geom_xy: Geometry | None = None, fused_penalty: float = 1.0,
                       a: torch.Tensor | None = None, b: torch.Tensor | None = None,
                       epsilon: float | None = None, loss: str = "sqeucl",
                       max_iterations: int = 50, threshold: float = 1e-5,
                       tau_a: float = 1.0, tau_b: float = 1.0,
                       init: torch.Tensor | None = None,
                       sinkhorn_kwargs: Mapping | None = None,
                       warn: bool = True) -> GWOutput:
    """Entropic (fused) Gromov-Wasserstein coupling by iterated linearization.

    Solves for a stationary point of Q(T) / 2 + fused_penalty <M, T> + eps KL(T | a b^T)
    over couplings T (n, m) of a and b, by T_{k+1} = argmin_T <L (x) T_k + fused_penalty M,
    T> + eps KL(T | a b^T) (Peyre, Cuturi & Solomon 2016; Vayer et al. 2019 for the fused
    term; see the module docstring for the equations and the conventions of POT and OTT).

    Args:
        geom_xx: the source space, a geometry of shape (n, n) whose (scaled) cost matrix is
            C1, e.g. ``PointCloud(x)`` or ``Geometry(distances)``. Squared-Euclidean point
            clouds and low-rank costs are used through their factors (no n x n matrix).
        geom_yy: the target space, (m, m), cost C2.
        geom_xy: for fused GW, a geometry of shape (n, m) whose cost is M; None for GW.
            Its own epsilon is not used.
        fused_penalty: the weight of <M, T> in the linearized cost (OTT's ``fused_penalty``);
            > 0. POT's ``alpha`` is 1 / (1 + 2 fused_penalty) (with POT's epsilon =
            2 alpha epsilon). Ignored without geom_xy.
        a: (n,) non-negative weights of geom_xx's points; None is uniform 1 / n.
        b: (m,) non-negative weights of geom_yy's points; None is uniform 1 / m.
        epsilon: the absolute entropic regularization of every linear problem. None uses
            0.05 x std of the linearized cost at the initial coupling (lutece's Geometry
            default), frozen for all iterations. The geometries' own epsilons are not used.
        loss: "sqeucl", the square loss L(c1, c2) = (c1 - c2)^2 (the only one implemented).
        max_iterations: outer iterations at most, >= 1.
        threshold: stop once sum_ij |T_{k+1} - T_k| / sum(a) < threshold, > 0.
        tau_a, tau_b: in (0, 1], passed to every inner
            :class:`~lutece.ot.LinearProblem` (KL marginal penalties when < 1). The
            linearization then uses T's own marginals, without the mass rescaling and the
            quadratic-KL correction of Sejourne et al. 2021 (OTT with
            ``gw_unbalanced_correction=False``): an approximation of unbalanced GW.
        init: (n, m) non-negative initial coupling T_0; None is a b^T (POT's and OTT's
            default). T_0 is only linearized around, so it need not match a and b.
        sinkhorn_kwargs: options of :func:`~lutece.ot.sinkhorn` for the inner solves
            (default ``threshold`` = the outer threshold, ``max_iterations`` = 2000;
            ``init`` and ``warn`` are managed here).
        warn: warn (RuntimeWarning) when the outer loop or the last Sinkhorn solve did not
            converge.

    Returns:
        A :class:`GWOutput`. Only ``cost``, ``quadratic_cost``, ``linear_cost`` and
        ``reg_gw_cost`` carry gradients (to the geometries' tensors, at fixed T).

    Cost: O(n m (r_x + r_y) + n r_x^2 + m r_y^2) per outer iteration for factored costs of
    ranks r (d + 2 for squared-Euclidean clouds in dimension d), O(n^2 m + n m^2) for dense
    ones, plus the Sinkhorn solve.
    """
    n, m = _check_geometries(geom_xx, geom_yy, geom_xy)
    dtype, device = geom_xx.dtype, geom_xx.device
    fused_penalty = _check_number("fused_penalty", fused_penalty, low=0.0, strict=True)
    if loss != "sqeucl":
        raise ValueError(f"{_FN}: loss must be 'sqeucl' (the square loss; no other is "
                         f"implemented), got {loss!r}")
    if epsilon is not None:
        epsilon = _check_number("epsilon", epsilon, low=0.0, strict=True)
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) \
            or max_iterations < 1:
        raise ValueError(f"{_FN}: max_iterations must be an int >= 1, got {max_iterations!r}")
    threshold = _check_number("threshold", threshold, low=0.0, strict=True)
    for name, tau in (("tau_a", tau_a), ("tau_b", tau_b)):
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau <= 1:
            raise ValueError(f"{_FN}: {name} must be in (0, 1], got {tau!r}")
    a = _check_weights("a", a, n, geom_xx)
    b = _check_weights("b", b, m, geom_xx)
    balanced = tau_a == 1 and tau_b == 1
    if balanced and data_checks_enabled() and not math.isclose(
            float(a.sum()), float(b.sum()), rel_tol=1e-4):
        raise ValueError(f"{_FN}: balanced GW (tau_a = tau_b = 1) needs sum(a) == sum(b), got "
                         f"{float(a.sum()):.6g} and {float(b.sum()):.6g}; normalize the "
                         "weights or use tau_a, tau_b < 1")
    if init is not None:
        init = check_tensor(_FN, "init", init, min_ndim=2)
        check_floating(_FN, "init", init)
        if tuple(init.shape) != (n, m):
            raise ValueError(f"{_FN}: init must be a coupling of shape ({n}, {m}), got "
                             f"{tuple(init.shape)}")
        check_finite(_FN, "init", init)
        if data_checks_enabled() and (bool((init < 0).any()) or float(init.sum()) <= 0):
            raise ValueError(f"{_FN}: init must be >= 0 with positive total mass")
        init = init.detach().to(device=device, dtype=dtype)
    options = _check_sinkhorn_kwargs(sinkhorn_kwargs, threshold)

    # the costs with their autograd history (for the final objective), detached for the loop
    live_xx, live_yy = _IntraCost.from_geometry(geom_xx), _IntraCost.from_geometry(geom_yy)
    live_xy = None if geom_xy is None else geom_xy.cost_matrix
    cost_xx, cost_yy = live_xx.detach(), live_yy.detach()
    fused = None if live_xy is None else fused_penalty * live_xy.detach()

    coupling = torch.outer(a, b) if init is None else init
    mass = float(a.sum())
    potentials: tuple[torch.Tensor, torch.Tensor] | None = None
    errors: list[torch.Tensor] = []
    output: SinkhornOutput | None = None
    with torch.no_grad():
        for _ in range(max_iterations):
            linear_cost, _ = _linearization(cost_xx, cost_yy, coupling)
            if fused is not None:
                linear_cost = linear_cost + fused
            if epsilon is None:
                spread = float(linear_cost.std(correction=0))
                tiny = 100 * torch.finfo(dtype).eps * float(linear_cost.abs().max())
                if not spread > tiny:
                    raise ValueError(
                        f"{_FN}: the linearized cost at the initial coupling is constant, so "
                        "epsilon cannot be set from its spread (the initial coupling is a "
                        "stationary point, e.g. of a symmetric shape); pass epsilon and a "
                        "non-product init")
                epsilon = DEFAULT_EPSILON_SCALE * spread
            problem = LinearProblem(Geometry(linear_cost, epsilon=epsilon), a, b,
                                    tau_a=tau_a, tau_b=tau_b)
            output = sinkhorn(problem, init=potentials, warn=False, **options)
            potentials = (output.f, output.g)
            new_coupling = output.matrix
            if data_checks_enabled() and not bool(torch.isfinite(new_coupling).all()):
                raise RuntimeError(
                    f"{_FN}: the Sinkhorn solve of outer iteration {len(errors) + 1} returned "
                    f"NaN or infinite values (epsilon = {epsilon:.3g} is too small for the "
                    "linearized cost); raise epsilon")
            errors.append((new_coupling - coupling).abs().sum() / mass)
            coupling = new_coupling
            if float(errors[-1]) < threshold:
                break
    assert output is not None and epsilon is not None
    error_history = torch.stack(errors)
    last_error = float(error_history[-1])
    inner_converged = bool(output.converged)
    converged = last_error < threshold and inner_converged
    if warn and not converged and data_checks_enabled():
        if not last_error < threshold:
            reason = (f"did not converge in {len(errors)} outer iterations (coupling change "
                      f"{last_error:.3g} > threshold {threshold:g}); raise max_iterations "
                      "or epsilon")
        else:
            reason = (f"the last Sinkhorn solve did not converge in {output.n_iters} "
                      "iterations; raise sinkhorn_kwargs['max_iterations'] or epsilon")
        warnings.warn(f"{_FN}: {reason}", RuntimeWarning, stacklevel=2)

    # final objective: live costs, fixed coupling (gradients by the envelope approximation)
    _, quadratic = _linearization(live_xx, live_yy, coupling)
    linear = None if live_xy is None else (live_xy * coupling).sum()
    cost = quadratic if linear is None else quadratic + fused_penalty * linear
    reg = cost + _entropy_terms(coupling, a, b, epsilon, tau_a, tau_b)
    return GWOutput(matrix=coupling, cost=cost, quadratic_cost=quadratic, linear_cost=linear,
                    reg_gw_cost=reg, epsilon=float(epsilon), errors=error_history,
                    converged=converged, n_iters=len(errors), linear_output=output)


def _generalized_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p | q) = sum p log(p / q) - p + q, with 0 log 0 = 0."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q) - p + q).sum()


def _entropy_terms(coupling: torch.Tensor, a: torch.Tensor, b: torch.Tensor, epsilon: float,
                   tau_a: float, tau_b: float) -> torch.Tensor:
    """eps KL(T | a b^T) + rho_a KL(T 1 | a) + rho_b KL(T^T 1 | b), rho = eps tau / (1 - tau)
    (the marginal terms only when unbalanced)."""
    total = epsilon * _generalized_kl(coupling, torch.outer(a, b))
    for tau, marginal, weights in ((tau_a, coupling.sum(1), a), (tau_b, coupling.sum(0), b)):
        if tau < 1:
            total = total + epsilon * tau / (1 - tau) * _generalized_kl(marginal, weights)
    return total
