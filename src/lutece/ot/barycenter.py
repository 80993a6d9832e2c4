"""Entropic Wasserstein barycenters, on a fixed support and with a free support.

Fixed support (Benamou et al. 2015, "Iterative Bregman projections for regularized
transportation problems", sec. 3.2; debiasing by Janati et al. 2020, "Debiased Sinkhorn
barycenters", Alg. 1): given histograms b_1..b_K on the n points of a geometry with cost C and
convex weights w, find

    a* = argmin_a sum_k w_k OT_eps(a, b_k),   OT_eps(a, b) = min_{P 1 = a, P^T 1 = b}
                                                            <C, P> + eps KL(P | K),

K = exp(-C / eps) the Gibbs kernel. Its solution couples K plans P_k = diag(u_k) K diag(v_k)
through their common row marginal, and iterative Bregman (KL) projections alternate

    v_k = b_k / (K^T u_k),   a = d * prod_k (K v_k)^{w_k},   u_k = a / (K v_k),

with d = 1 for the plain (biased) barycenter. The entropic term blurs a* (the barycenter of a
single measure is not the measure itself). The debiased barycenter (Janati et al. 2020)
subtracts the barycenter's own self-transport, minimizing sum_k w_k OT_eps(a, b_k) -
OT_eps(a, a) / 2, and adds the fixed point d of d * (K d) = a, updated each iteration by
d <- sqrt(d * a / (K d)). Here every update is written in the log domain, through the
geometry's log-sum-exp (stable for small eps, and on a :class:`~lutece.ot.geometry.Grid`
separable: nothing of size n x n is ever formed, which makes image barycenters cheap).

Free support (Cuturi & Doucet 2014, "Fast computation of Wasserstein barycenters", Alg. 2
with the barycenter's weights fixed to uniform): the support X (N, d) of the barycenter moves
to the barycentric projection of the entropic plans to the clouds Y_k,
x_i <- sum_k w_k (P_k Y_k)_i / a_i.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validation import (
    check_finite,
    check_floating,
    check_tensor,
    data_checks_enabled,
)
from .costs import SqEuclidean
from .geometry import Geometry, Grid, PointCloud
from .geometry.base import DEFAULT_EPSILON_SCALE
from .problems import LinearProblem
from .solvers.sinkhorn import sinkhorn

__all__ = [
    "BarycenterOutput",
    "FreeSupportOutput",
    "fixed_support_barycenter",
    "free_support_barycenter",
]

#: how far from 1 the sum of a histogram or of the weights may be
_MASS_TOLERANCE = 1e-4


@dataclass(frozen=True)
class BarycenterOutput:
    """The result of :func:`fixed_support_barycenter`.

    ``histogram``: (n,) the barycenter, non-negative, summing to 1 at convergence.
    ``errors``: (n_iters,) the marginal error after each iteration: max_k ||P_k 1 - a||_1
    (plus ||d * K d - a||_1 when debiased).
    ``converged``: () bool tensor, the last error is below the threshold and finite.
    ``n_iters``: the iterations run. ``epsilon``: the entropic regularization used.
    """

    histogram: torch.Tensor
    errors: torch.Tensor
    converged: torch.Tensor
    n_iters: int
    epsilon: float


@dataclass(frozen=True)
class FreeSupportOutput:
    """The result of :func:`free_support_barycenter`.

    ``points``: (num_points, d) the barycenter's support (uniform weights 1 / num_points).
    ``history``: (n_iters + 1, num_points, d) the support before the first and after every
    iteration. ``displacements``: (n_iters,) max_i ||x_i^new - x_i||_2 at each iteration.
    ``converged``: the last displacement is below the tolerance and every Sinkhorn solve
    of the last iteration reached its threshold. ``epsilon``: the entropic
    regularization of every Sinkhorn solve.
    """

    points: torch.Tensor
    history: torch.Tensor
    displacements: torch.Tensor
    converged: bool
    n_iters: int
    epsilon: float

    @property
    def weights(self) -> torch.Tensor:
        """(num_points,) the barycenter's (uniform) weights."""
        count = self.points.shape[0]
        return torch.full((count,), 1.0 / count, dtype=self.points.dtype,
                          device=self.points.device)


# ---------------------------------------------------------------------- validation
def _check_number(fn: str, name: str, value: object, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{fn}: {name} must be > 0 and finite, got {value!r}")
    return float(value)


def _check_count(fn: str, name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    return value


def _check_simplex(fn: str, name: str, value: torch.Tensor) -> None:
    """``value`` (n,) or its rows (K, n) must be >= 0 and sum to 1."""
    if not data_checks_enabled():
        return
    if bool((value < 0).any()):
        raise ValueError(f"{fn}: {name} must be >= 0, got a minimum of {float(value.min()):.6g}")
    sums = value.detach().sum(-1).reshape(-1)
    bad = ((sums - 1).abs() > _MASS_TOLERANCE).nonzero()
    if bad.numel():
        index = int(bad[0, 0])
        where = f"row {index} of {name}" if value.ndim > 1 else name
        raise ValueError(f"{fn}: {where} must sum to 1, got {float(sums[index]):.6g}; "
                         "normalize it first")


def _check_weights(fn: str, weights: torch.Tensor | None, count: int, dtype: torch.dtype,
                   device: torch.device, name: str = "weights") -> torch.Tensor:
    """Convex weights (count,), uniform when ``None``."""
    if weights is None:
        return torch.full((count,), 1.0 / count, dtype=dtype, device=device)
    weights = check_tensor(fn, name, weights)
    check_floating(fn, name, weights)
    if tuple(weights.shape) != (count,):
        raise ValueError(f"{fn}: {name} must have shape ({count},), one per measure, got "
                         f"{tuple(weights.shape)}")
    check_finite(fn, name, weights)
    _check_simplex(fn, name, weights)
    return weights.to(dtype)


# ---------------------------------------------------------------------- fixed support
def _per_measure(operation: Callable[[torch.Tensor], torch.Tensor],
                 values: torch.Tensor) -> torch.Tensor:
    """Apply a geometry operation on (1, n) vectors to each row of ``values`` (K, n): the
    geometry holds one problem, and not every kind broadcasts a stack of vectors."""
    return torch.cat([operation(values[k:k + 1]) for k in range(values.shape[0])])


def _stacked_lse(geom: Geometry, values: torch.Tensor, axis: int,
                 eps: torch.Tensor) -> torch.Tensor:
    """geom.lse on each row of ``values`` (K, n). A dense cost matrix and a grid broadcast
    their single problem against the K rows, so they take the stack in one call; point
    clouds (whose fused kernel blocks do not broadcast) take one row at a time."""
    if type(geom) is Geometry or isinstance(geom, Grid):
        return geom.lse(values, axis, eps)
    return _per_measure(lambda row: geom.lse(row, axis, eps), values)


def _log_domain_barycenter(geom: Geometry, log_b: torch.Tensor, weights: torch.Tensor,
                           eps: torch.Tensor, debiased: bool, threshold: float,
                           max_iterations: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Iterative Bregman projections on potentials: u_k = exp(f_k / eps),
    v_k = exp(g_k / eps), d = exp(phi / eps). With lse_1(h)_i = eps log sum_j
    exp((h_j - C_ij) / eps) and lse_0 its transpose, one iteration is

        g_k = eps log b_k - lse_0(f_k)                                      (P_k^T 1 = b_k)
        h_k = lse_1(g_k)                                  (eps log K v_k; P_k 1 = e^{(f_k+h_k)/eps})
        eps log a = phi + sum_k w_k h_k
        f_k = eps log a - h_k                                                 (P_k 1 = a)
        phi = (phi + eps log a - lse_1(phi)) / 2                   (debiased only; d K d = a)

    Returns log a (n,) and the error of every iteration."""
    e = eps[:, None]
    f = torch.zeros_like(log_b)
    phi = torch.zeros((1, log_b.shape[1]), dtype=log_b.dtype, device=log_b.device)
    errors = []
    for _ in range(max_iterations):
        g = e * log_b - _stacked_lse(geom, f, 0, eps)
        h = _stacked_lse(geom, g, 1, eps)
        log_a = (phi[0] + (weights[:, None] * h).sum(0)) / eps
        marginals = torch.exp((f + h) / e)                  # (K, n), P_k 1 before projecting
        a = torch.exp(log_a)
        error = (marginals - a).abs().sum(-1).amax()
        f = e * log_a - h
        if debiased:
            soft_min = geom.lse(phi, 1, eps)
            error = torch.maximum(error, (torch.exp((phi[0] + soft_min[0]) / eps) - a)
                                  .abs().sum())
            phi = 0.5 * (phi + e * log_a - soft_min)
        errors.append(error.detach())
        if not float(errors[-1]) >= threshold:   # also stops on NaN
            break
    return log_a, errors


def _kernel_barycenter(geom: Geometry, b: torch.Tensor, weights: torch.Tensor,
                       eps: torch.Tensor, debiased: bool, threshold: float,
                       max_iterations: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The same projections on the scalings u_k, v_k, d (Benamou et al. 2015, sec. 3.2),
    through products with the Gibbs kernel K = exp(-C / eps): materialized once, except on
    a grid, whose separable kernel is applied axis by axis. Its entries underflow for small
    eps (reported as non-convergence)."""
    n = b.shape[1]
    if isinstance(geom, Grid):
        def kernel(values: torch.Tensor, axis: int) -> torch.Tensor:
            return geom.apply_plan(None, None, eps, values, axis)
    else:
        zeros = torch.zeros((1, n), dtype=b.dtype, device=b.device)
        gibbs = geom.plan_matrix(zeros, zeros, eps)[0]          # (n, n)

        def kernel(values: torch.Tensor, axis: int) -> torch.Tensor:
            return values @ (gibbs if axis == 0 else gibbs.T)

    u = torch.ones_like(b)
    d = torch.ones((1, n), dtype=b.dtype, device=b.device)
    errors = []
    for _ in range(max_iterations):
        v = b / kernel(u, 0)                                   # b_k / K^T u_k
        kernel_v = kernel(v, 1)                                # K v_k
        a = d[0] * torch.exp((weights[:, None] * torch.log(kernel_v)).sum(0))
        error = (u * kernel_v - a).abs().sum(-1).amax()
        u = a / kernel_v
        if debiased:
            kernel_d = kernel(d, 1)
            error = torch.maximum(error, (d * kernel_d - a).abs().sum())
            d = torch.sqrt(d * a / kernel_d)
        errors.append(error.detach())
        if not float(errors[-1]) >= threshold:
            break
    return torch.log(a), errors


def fixed_support_barycenter(histograms: torch.Tensor, geom: Geometry,
                             weights: torch.Tensor | None = None, *,
                             epsilon: float | None = None, debiased: bool = False,
                             threshold: float = 1e-4, max_iterations: int = 1000,
                             lse_mode: bool = True, warn: bool = True) -> BarycenterOutput:
    """Entropic Wasserstein barycenter of histograms on a common support.

    Solves a* = argmin_a sum_k w_k OT_eps(a, b_k) by iterative Bregman projections
    (Benamou et al. 2015), or its debiased version sum_k w_k OT_eps(a, b_k) - OT_eps(a, a) / 2
    (Janati et al. 2020, Alg. 1); see the module docstring for the updates.

    Args:
        histograms: (num_measures, n) non-negative, each row summing to 1, on the n points
            of ``geom``.
        geom: an unbatched square geometry (n, n) whose rows and columns are the same n
            points: a :class:`~lutece.ot.geometry.Geometry` from a cost matrix, a
            :class:`~lutece.ot.geometry.PointCloud` with y = x, or a
            :class:`~lutece.ot.geometry.Grid` (whose separable kernel keeps the cost
            O(n sum_k n_k) per iteration, never forming n x n). The debiased barycenter
            assumes a symmetric cost.
        weights: (num_measures,) convex weights w (>= 0, summing to 1); uniform by default.
        epsilon: the absolute entropic regularization; ``None`` takes the geometry's
            (``geom.epsilon``).
        debiased: add the debiasing potential of Janati et al. (2020): the barycenter is
            sharper (the entropic blur is removed to first order; a single measure is close
            to its own barycenter).
        threshold: stop once the marginal error max_k ||P_k 1 - a||_1 (and, debiased,
            ||d * K d - a||_1) is below it; it is checked every iteration.
        max_iterations: at most this many iterations (one Bregman projection of each kind).
        lse_mode: log-domain updates (default, stable for small eps); False runs the
            scaling updates of Benamou et al. on the Gibbs kernel, materialized once as an
            (n, n) matrix except on a Grid: faster per iteration on small dense problems,
            but underflowing for small eps.
        warn: warn when the iterations did not converge.

    Returns:
        A :class:`BarycenterOutput`; ``histogram`` is (n,). When gradients are enabled and
        ``histograms``, ``weights`` or the geometry's tensors require them, they flow back by
        unrolling the iterations (autograd through every update; memory grows with the
        iterations, so cap ``max_iterations`` for that use). Otherwise the iterations run
        without a graph.
    """
    fn = "fixed_support_barycenter"
    if not isinstance(geom, Geometry):
        raise TypeError(f"{fn}: geom must be a lutece.ot geometry, got {type(geom).__name__}")
    if geom.batched:
        raise ValueError(f"{fn}: geom must hold one problem, got a batch of "
                         f"{geom.num_problems}")
    n, m = geom.shape
    if n != m:
        raise ValueError(f"{fn}: geom must be square (the barycenter and the histograms share "
                         f"its n points), got shape ({n}, {m})")
    if geom.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: the geometry's dtype must be float32 or float64, got "
                        f"{geom.dtype}")
    histograms = check_tensor(fn, "histograms", histograms)
    check_floating(fn, "histograms", histograms)
    if histograms.ndim != 2 or histograms.shape[0] < 1 or histograms.shape[1] != n:
        raise ValueError(f"{fn}: histograms must be (num_measures, {n}) to match the "
                         f"geometry {geom!r}, got shape {tuple(histograms.shape)}")
    check_finite(fn, "histograms", histograms)
    _check_simplex(fn, "histograms", histograms)
    count = histograms.shape[0]
    weights = _check_weights(fn, weights, count, geom.dtype, geom.device)
    if epsilon is None:
        eps = geom.epsilon_
    else:
        eps = torch.full((1,), _check_number(fn, "epsilon", epsilon), dtype=geom.dtype,
                         device=geom.device)
    threshold = _check_number(fn, "threshold", threshold)
    max_iterations = _check_count(fn, "max_iterations", max_iterations)

    b = histograms.to(geom.dtype)
    differentiable = torch.is_grad_enabled() and any(
        t.requires_grad for t in (b, weights, *geom._tensors()))
    with torch.set_grad_enabled(differentiable):
        if lse_mode:
            # log 0 = -inf, through a clamp so that a zero entry gets a zero gradient
            log_b = torch.where(b > 0, torch.log(b.clamp_min(torch.finfo(b.dtype).tiny)),
                                -math.inf)
            log_a, errors = _log_domain_barycenter(geom, log_b, weights, eps, debiased,
                                                   threshold, max_iterations)
        else:
            log_a, errors = _kernel_barycenter(geom, b, weights, eps, debiased, threshold,
                                               max_iterations)
        histogram = torch.exp(log_a)
    error_tensor = torch.stack(errors)
    last = error_tensor[-1]
    converged = (last < threshold) & ~torch.isnan(histogram).any()
    if warn and data_checks_enabled() and not bool(converged):
        worst = float(last.nan_to_num(nan=math.inf))
        warnings.warn(
            f"{fn}: did not converge in {len(errors)} iterations (marginal error "
            f"{worst:.3g} > threshold {threshold:g}); raise max_iterations or epsilon"
            + ("" if lse_mode else ", or use lse_mode=True"), RuntimeWarning, stacklevel=2)
    return BarycenterOutput(histogram=histogram, errors=error_tensor, converged=converged,
                            n_iters=len(errors), epsilon=float(eps[0]))


# ---------------------------------------------------------------------- free support
def _check_clouds(fn: str, point_clouds: object) -> list[torch.Tensor]:
    if isinstance(point_clouds, torch.Tensor) or not isinstance(point_clouds, Sequence) \
            or not len(point_clouds):
        raise TypeError(f"{fn}: point_clouds must be a non-empty list of (n_k, d) tensors")
    clouds = []
    for k, cloud in enumerate(point_clouds):
        cloud = check_tensor(fn, f"point_clouds[{k}]", cloud)
        check_floating(fn, f"point_clouds[{k}]", cloud)
        if cloud.ndim != 2 or cloud.shape[0] == 0:
            raise ValueError(f"{fn}: point_clouds[{k}] must be a non-empty (n_k, d) tensor, "
                             f"got shape {tuple(cloud.shape)}")
        check_finite(fn, f"point_clouds[{k}]", cloud)
        clouds.append(cloud)
    dims = {cloud.shape[1] for cloud in clouds}
    if len(dims) > 1:
        raise ValueError(f"{fn}: all point clouds must have the same dimension d, got "
                         f"{sorted(dims)}")
    if len({cloud.dtype for cloud in clouds}) > 1:
        raise TypeError(f"{fn}: all point clouds must have the same dtype")
    if clouds[0].dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{fn}: point clouds must be float32 or float64, got "
                        f"{clouds[0].dtype}")
    return clouds


def _initial_support(clouds: list[torch.Tensor], num_points: int, seed: int) -> torch.Tensor:
    """num_points points drawn from the pooled clouds (without replacement when there are
    enough), moved by a Gaussian jitter of 1e-3 x the pooled standard deviation: points that
    coincide would otherwise stay together forever (their plan rows are equal)."""
    pooled = torch.cat(clouds)
    generator = torch.Generator().manual_seed(seed)
    if num_points <= pooled.shape[0]:
        index = torch.randperm(pooled.shape[0], generator=generator)[:num_points]
    else:
        index = torch.randint(pooled.shape[0], (num_points,), generator=generator)
    noise = torch.randn(num_points, pooled.shape[1], generator=generator, dtype=pooled.dtype)
    spread = pooled.std(0, correction=0).clamp_min(torch.finfo(pooled.dtype).eps)
    return pooled[index.to(pooled.device)] + 1e-3 * spread * noise.to(pooled.device)


def free_support_barycenter(point_clouds: Sequence[torch.Tensor],
                            weights: torch.Tensor | None = None, num_points: int = 100, *,
                            measure_weights: Sequence[torch.Tensor | None] | None = None,
                            epsilon: float | None = None, max_iterations: int = 100,
                            tolerance: float = 1e-5, init: torch.Tensor | None = None,
                            seed: int = 0, warn: bool = True,
                            sinkhorn_options: dict[str, Any] | None = None
                            ) -> FreeSupportOutput:
    """Free-support entropic Wasserstein barycenter of point clouds (squared Euclidean cost).

    Cuturi & Doucet (2014), Alg. 2 with the barycenter's weights a fixed to uniform
    (a_i = 1 / num_points) and a full step (theta = 1): each iteration solves, for every
    cloud k, the entropic OT problem between the support X and Y_k (:func:`~lutece.ot.sinkhorn`
    on a :class:`~lutece.ot.geometry.PointCloud`, warm-started from the previous potentials),
    then moves every point to the weighted barycentric projection of the plans,

        x_i <- sum_k w_k (P_k Y_k)_i / a_i,

    the minimizer in X of sum_k w_k <C(X, Y_k), P_k> at fixed plans. It stops when no point
    moves by more than ``tolerance`` (Euclidean norm).

    Args:
        point_clouds: K tensors (n_k, d), the n_k may differ.
        weights: (K,) convex weights w; uniform by default.
        num_points: N, the size of the barycenter's support.
        measure_weights: K weight vectors (n_k,) (each >= 0, summing to 1) or ``None``
            entries for uniform ones; ``None`` makes all uniform.
        epsilon: the absolute entropic regularization of every solve. ``None`` resolves it
            once: 0.05 x the std of the squared-Euclidean cost between the initial support
            and the clouds (averaged over the clouds), kept for all iterations.
        max_iterations: at most this many support updates.
        tolerance: > 0, the displacement under which the iterations stop.
        init: (N, d) initial support; ``None`` draws N points from the pooled clouds with
            ``seed`` (plus a tiny jitter, see ``_initial_support``).
        seed: the seed of that draw.
        warn: warn (once each) when the support did not settle within ``max_iterations``
            or when Sinkhorn solves did not converge.
        sinkhorn_options: keyword arguments of :func:`~lutece.ot.sinkhorn` for every solve
            (default threshold 1e-6, max_iterations 5000; its warning is replaced by the
            one above).

    Returns:
        A :class:`FreeSupportOutput`. The iterations run without gradient.
    """
    fn = "free_support_barycenter"
    clouds = _check_clouds(fn, point_clouds)
    count, dim = len(clouds), clouds[0].shape[1]
    dtype, device = clouds[0].dtype, clouds[0].device
    weights = _check_weights(fn, weights, count, dtype, device)
    num_points = _check_count(fn, "num_points", num_points)
    if measure_weights is None:
        measure_weights = [None] * count
    if isinstance(measure_weights, torch.Tensor) or len(measure_weights) != count:
        raise ValueError(f"{fn}: measure_weights must be a list of {count} weight vectors "
                         "(or None entries), one per point cloud")
    masses = [_check_weights(fn, value, cloud.shape[0], dtype, device,
                             name=f"measure_weights[{k}]")
              for k, (value, cloud) in enumerate(zip(measure_weights, clouds))]
    if epsilon is not None:
        epsilon = _check_number(fn, "epsilon", epsilon)
    max_iterations = _check_count(fn, "max_iterations", max_iterations)
    tolerance = _check_number(fn, "tolerance", tolerance)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{fn}: seed must be an int, got {type(seed).__name__}")
    if init is None:
        support = _initial_support(clouds, num_points, seed)
    else:
        init = check_tensor(fn, "init", init)
        check_floating(fn, "init", init)
        if tuple(init.shape) != (num_points, dim):
            raise ValueError(f"{fn}: init must have shape ({num_points}, {dim}) "
                             f"(num_points, d), got {tuple(init.shape)}")
        check_finite(fn, "init", init)
        support = init.to(dtype)
    if sinkhorn_options is not None and not isinstance(sinkhorn_options, dict):
        raise TypeError(f"{fn}: sinkhorn_options must be a dict of sinkhorn keyword "
                        f"arguments or None, got {type(sinkhorn_options).__name__}")
    if sinkhorn_options and "init" in sinkhorn_options:
        raise ValueError(f"{fn}: sinkhorn_options cannot set init (every solve is warm-"
                         "started from the previous iteration)")
    sinkhorn_kwargs = {"threshold": 1e-6, "max_iterations": 5000, **(sinkhorn_options or {}),
                       "warn": False}   # non-convergence is reported once, below

    with torch.no_grad():
        support = support.detach().clone()
        clouds = [cloud.detach() for cloud in clouds]
        if epsilon is None:
            epsilon = DEFAULT_EPSILON_SCALE * sum(
                float(PointCloud(support, cloud, cost_fn=SqEuclidean())._scaled_statistics(
                    "std")[0]) for cloud in clouds) / count
            if not epsilon > 0:
                raise ValueError(f"{fn}: the cost between the initial support and the clouds "
                                 "is constant, so epsilon cannot be resolved from it; pass "
                                 "epsilon= explicitly")
        uniform = torch.full((num_points,), 1.0 / num_points, dtype=dtype, device=device)
        history, displacements = [support], []
        starts: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * count
        for _ in range(max_iterations):
            moved = torch.zeros_like(support)
            solves_converged = True
            for k, (cloud, mass) in enumerate(zip(clouds, masses)):
                geom = PointCloud(support, cloud, cost_fn=SqEuclidean(), epsilon=epsilon)
                out = sinkhorn(LinearProblem(geom, uniform, mass), init=starts[k],
                               **sinkhorn_kwargs)
                starts[k] = (out.f, out.g)
                solves_converged = solves_converged and bool(out.converged)
                moved += weights[k] * out.apply(cloud, axis=1)       # (P_k Y_k), (N, d)
            new_support = moved / uniform[:, None]
            displacements.append((new_support - support).norm(dim=-1).amax())
            support = new_support
            history.append(support)
            if not float(displacements[-1]) >= tolerance:
                break
    last = float(displacements[-1])
    settled = last < tolerance
    if warn and not settled:
        warnings.warn(
            f"{fn}: the support did not settle in {len(displacements)} iterations (largest "
            f"displacement {last:.3g} > tolerance {tolerance:g}); raise max_iterations or "
            "tolerance", RuntimeWarning, stacklevel=2)
    if warn and not solves_converged:
        warnings.warn(
            f"{fn}: Sinkhorn solves of the last iteration did not reach their threshold "
            f"({sinkhorn_kwargs['threshold']:g}) in {sinkhorn_kwargs['max_iterations']} "
            "iterations; raise epsilon or pass a larger max_iterations= (a sinkhorn option)",
            RuntimeWarning, stacklevel=2)
    converged = settled and solves_converged
    return FreeSupportOutput(points=support, history=torch.stack(history),
                             displacements=torch.stack(displacements), converged=converged,
                             n_iters=len(displacements), epsilon=float(epsilon))
