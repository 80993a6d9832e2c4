"""Low-rank Sinkhorn: optimal transport restricted to plans of nonnegative rank r.

Scetbon, Cuturi & Peyre 2021, "Low-Rank Sinkhorn Factorization" (ICML). The plan is
parametrized as

    P = Q diag(1 / g) R^T,   Q: (n, r), R: (m, r), g: (r,) > 0,
    Q 1_r = a,  R 1_r = b,  Q^T 1_n = R^T 1_m = g,

and <C, P> - epsilon H(Q, R, g) is minimized by mirror descent on (Q, R, g) (the paper's
Algorithm 3): at step size gamma_k, with the gradients

    grad_Q = C R diag(1/g),   grad_R = C^T Q diag(1/g),   grad_g = -diag(Q^T C R) / g^2,

the kernels K_Q = exp(-gamma_k grad_Q - (gamma_k epsilon - 1) log Q) (and likewise K_R, K_g)
are projected, in Kullback-Leibler divergence, onto the constraint set above. That projection
is the paper's Algorithm 2 (LR-Dykstra), run here in the log domain. With the lower bound
alpha of Algorithm 2 only used as a safeguard (g >= 1e-10 sum(a)), both constraint sets are
affine, so Dykstra's correction terms vanish and the projection reduces to alternating Bregman
projections (Benamou et al. 2015): row scalings for Q 1 = a and R 1 = b, then column scalings
with g the geometric mean of (g, Q^T 1, R^T 1).

The step size follows OTT's ``gamma_rescale`` (Scetbon & Cuturi 2022): gamma_k = gamma /
max(|grad_Q|_inf^2, |grad_R|_inf^2, |grad_g|_inf^2), which makes ``gamma`` independent of the
scale of the cost. Convergence is OTT's criterion: every ``inner_iterations`` steps, the
symmetric KL divergence between consecutive iterates (Q, R, g), divided by gamma_k^2.

Cost: the gradients need C R and C^T Q. For a squared-Euclidean :class:`PointCloud`
(C = A B^T with A = [|x|^2, 1, -2x], B = [1, |y|^2, y], rank d + 2) and for
:class:`LRCGeometry` they are computed through the cost's factors, so an iteration costs
O((n + m) r d) time and O((n + m) r) memory, and no n x m array is ever formed. Every other
geometry uses its dense cost matrix: O(n m) memory and O(n m r) time per iteration.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..._validation import check_choice, check_tensor, data_checks_enabled
from ..costs import SqEuclidean
from ..geometry import Geometry, LRCGeometry, PointCloud
from ..problems import LinearProblem

__all__ = ["low_rank_sinkhorn", "LRSinkhornOutput", "LowRankCoupling"]

_INITS = ("random", "rank2", "kmeans")


class _CostOperator:
    """Multiplication by a cost C = sum_k left_k right_k^T (+ a dense (n, m) part).

    Squared-Euclidean point clouds and :class:`LRCGeometry` are held as factors (never an
    n x m array); every other geometry as its dense (scaled) cost matrix.
    """

    def __init__(self, factors: tuple[tuple[torch.Tensor, torch.Tensor], ...] = (),
                 dense: torch.Tensor | None = None) -> None:
        self.factors = factors
        self.dense = dense

    @classmethod
    def from_geometry(cls, geom: Geometry) -> _CostOperator:
        scale = geom.cost_scale[0]
        if isinstance(geom, LRCGeometry):
            fn = geom.cost_fn
            x, y = geom.x[0], geom.y[0]
            left = torch.cat([fn.scale_factor * x, torch.full_like(x[:, :1], fn.bias)], 1)
            right = torch.cat([y, torch.ones_like(y[:, :1])], 1)
            return cls(factors=((left / scale, right),))
        if isinstance(geom, PointCloud) and isinstance(geom.cost_fn, SqEuclidean):
            # |x - y|^2 = |x|^2 + |y|^2 - 2 <x, y>, on points centred at y's mean (as
            # SqEuclidean does) to limit cancellation
            center = geom.y[0].mean(0, keepdim=True)
            x, y = geom.x[0] - center, geom.y[0] - center
            x_norm = x.pow(2).sum(1, keepdim=True)
            y_norm = y.pow(2).sum(1, keepdim=True)
            left = torch.cat([x_norm, torch.ones_like(x_norm), -2 * x], 1)
            right = torch.cat([torch.ones_like(y_norm), y_norm, y], 1)
            return cls(factors=((left / scale, right),))
        return cls(dense=geom.cost_matrix)

    def __add__(self, other: _CostOperator) -> _CostOperator:
        if self.dense is None or other.dense is None:
            dense = self.dense if other.dense is None else other.dense
        else:
            dense = self.dense + other.dense
        return _CostOperator(self.factors + other.factors, dense)

    def scaled(self, factor: float) -> _CostOperator:
        return _CostOperator(tuple((factor * left, right) for left, right in self.factors),
                             None if self.dense is None else factor * self.dense)

    def detach(self) -> _CostOperator:
        return _CostOperator(tuple((left.detach(), right.detach())
                                   for left, right in self.factors),
                             None if self.dense is None else self.dense.detach())

    def apply(self, v: torch.Tensor, axis: int) -> torch.Tensor:
        """C v (axis=1, v: (m, k) -> (n, k)) or C^T v (axis=0, v: (n, k) -> (m, k))."""
        out = None
        if self.dense is not None:
            out = self.dense @ v if axis == 1 else self.dense.T @ v
        for left, right in self.factors:
            term = left @ (right.T @ v) if axis == 1 else right @ (left.T @ v)
            out = term if out is None else out + term
        assert out is not None
        return out


@dataclass(frozen=True)
class LowRankCoupling:
    """A coupling of nonnegative rank r in factors: P = Q diag(1/g) R^T.

    ``q``: (n, r), ``r``: (m, r), ``g``: (r,), with Q 1 = a, R 1 = b, Q^T 1 = R^T 1 = g (up to
    the projection tolerance).
    """

    q: torch.Tensor
    r: torch.Tensor
    g: torch.Tensor

    @property
    def rank(self) -> int:
        return self.g.shape[0]

    @property
    def matrix(self) -> torch.Tensor:
        """The plan P = Q diag(1/g) R^T, (n, m). Materializing it costs O(n m) memory."""
        return (self.q / self.g) @ self.r.T

    def apply(self, v: torch.Tensor, axis: int = 1) -> torch.Tensor:
        """Transport ``v`` through the factors in O((n + m) r k), never forming P.

        axis = 1: P v = Q diag(1/g) R^T v, v of shape (m,) or (m, k) -> (n,) or (n, k);
        axis = 0: P^T v = R diag(1/g) Q^T v, v of shape (n,) or (n, k) -> (m,) or (m, k).
        """
        fn = f"{type(self).__name__}.apply"
        if axis not in (0, 1):
            raise ValueError(f"{fn}: axis must be 0 or 1, got {axis!r}")
        v = check_tensor(fn, "v", v, min_ndim=1)
        inner, outer = (self.r, self.q) if axis == 1 else (self.q, self.r)
        if v.ndim > 2 or v.shape[0] != inner.shape[0]:
            raise ValueError(f"{fn}: v must be ({inner.shape[0]},) or ({inner.shape[0]}, k) "
                             f"for axis={axis}, got shape {tuple(v.shape)}")
        vector = v.ndim == 1
        columns = v.to(self.q.dtype).reshape(v.shape[0], -1)
        out = outer @ ((inner.T @ columns) / self.g[:, None])
        return out.squeeze(1) if vector else out

    def marginal(self, axis: int) -> torch.Tensor:
        """P 1 (axis=1, (n,)) or P^T 1 (axis=0, (m,)), through the factors."""
        size = self.r.shape[0] if axis == 1 else self.q.shape[0]
        return self.apply(torch.ones(size, dtype=self.q.dtype, device=self.q.device), axis)


@dataclass(frozen=True)
class LRSinkhornOutput(LowRankCoupling):
    """The result of :func:`low_rank_sinkhorn`: the plan P = Q diag(1/g) R^T in factors.

    ``costs``: <C, P> at every check, (num_checks,). ``errors``: the convergence criterion at
    every check, (num_checks,). ``converged``: the last error is below ``threshold`` and
    nothing is NaN. ``n_iters``: mirror-descent steps run.
    """

    costs: torch.Tensor
    errors: torch.Tensor
    converged: bool
    n_iters: int
    problem: LinearProblem = field(repr=False)
    _cost: _CostOperator = field(repr=False, compare=False)

    @property
    def primal_cost(self) -> torch.Tensor:
        """<C, P> = tr(Q^T C R diag(1/g)), (), through the cost's factors when it has them.

        Differentiable w.r.t. the geometry's tensors (points, cost factors or matrix) with
        the factors held fixed: the envelope (Danskin) gradient, exact at a minimizer since
        the feasible set does not depend on the cost.
        """
        return _primal_cost(self._cost, self.q, self.r, self.g)

    @property
    def cost(self) -> torch.Tensor:
        """Alias of :attr:`primal_cost`."""
        return self.primal_cost


def _primal_cost(cost: _CostOperator, q: torch.Tensor, r: torch.Tensor,
                 g: torch.Tensor) -> torch.Tensor:
    return ((q * cost.apply(r, axis=1)).sum(0) / g).sum()


def _check_number(fn: str, name: str, value: object, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{fn}: {name} must be a finite number {bound}, got {value!r}")
    return float(value)


def _check_int(fn: str, name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    return value


def _exp(x: torch.Tensor) -> torch.Tensor:
    """exp(x), flushed to 0 below tiny^(3/4) (about 1e-29 in float32, 1e-231 in float64).

    Subnormal floats make CPU arithmetic tens of times slower, and the factors of a
    low-rank plan drift toward them as mirror descent sparsifies Q and R; the margin keeps
    products of a flushed-level entry with moderate numbers normal too.
    """
    floor = 0.75 * math.log(torch.finfo(x.dtype).tiny)
    return torch.where(x > floor, x.clamp_min(floor).exp(),
                       torch.zeros((), dtype=x.dtype, device=x.device))


@dataclass(frozen=True)
class _DescentOptions:
    gamma: float
    epsilon: float
    threshold: float
    max_iterations: int
    inner_iterations: int
    seed: int


def _check_options(fn: str, n: int, m: int, rank: object, gamma: object, epsilon: object,
                   threshold: object, max_iterations: object, inner_iterations: object,
                   init: object, inits: tuple[str, ...], seed: object) -> _DescentOptions:
    """The options shared by the low-rank solvers, checked once."""
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(n, m):
        raise ValueError(f"{fn}: rank must be an int in [1, min(n, m)] = [1, {min(n, m)}], "
                         f"got {rank!r}")
    check_choice(fn, "init", init, inits)
    return _DescentOptions(
        gamma=_check_number(fn, "gamma", gamma, positive=True),
        epsilon=_check_number(fn, "epsilon", epsilon, positive=False),
        threshold=_check_number(fn, "threshold", threshold, positive=True),
        max_iterations=_check_int(fn, "max_iterations", max_iterations, 1),
        inner_iterations=_check_int(fn, "inner_iterations", inner_iterations, 1),
        seed=_check_int(fn, "seed", seed, 0))


def _lse(x: torch.Tensor, dim: int) -> torch.Tensor:
    """log sum exp along ``dim``; -inf (not NaN) for an all -inf slice."""
    top = x.amax(dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return _exp(x - top).sum(dim).log() + top.squeeze(dim)


def _project(log_kq: torch.Tensor, log_kr: torch.Tensor, log_kg: torch.Tensor,
             log_a: torch.Tensor, log_b: torch.Tensor, h_q: torch.Tensor, h_r: torch.Tensor,
             log_alpha: float, tolerance: float, max_steps: int
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """KL projection of the kernels (K_Q (n, r), K_R (m, r), K_g (r,)), given as logs, onto
    {Q 1 = a, R 1 = b, Q^T 1 = R^T 1 = g} (Algorithm 2 of Scetbon et al. 2021, log domain).

    The solution is Q = diag(e^{f_Q}) K_Q diag(e^{h_Q}), R = diag(e^{f_R}) K_R diag(e^{h_R}),
    log g = log K_g - h_Q - h_R. Starting column scalings (h_Q, h_R) (r,) may be warm; the
    invariant log g + h_Q + h_R = log K_g then fixes the starting g. Returns log Q, log R,
    log g and the final (h_Q, h_R).
    """
    a, b = log_a.exp(), log_b.exp()
    on_a, on_b = log_a > -math.inf, log_b > -math.inf
    log_g = log_kg - h_q - h_r
    f_q = f_r = None
    for step in range(max_steps):
        rows_q = _lse(log_kq + h_q, 1)
        rows_r = _lse(log_kr + h_r, 1)
        # the error costs as much as a step: checked every 4th step
        if f_q is not None and f_r is not None and step % 4 == 1:
            error = (_exp(rows_q + f_q) - a).abs().sum() \
                + (_exp(rows_r + f_r) - b).abs().sum()
            if not bool(error > tolerance):  # also stops on NaN
                break
        # rows: Q 1 = a and R 1 = b
        f_q = torch.where(on_a, log_a - rows_q, log_a)
        f_r = torch.where(on_b, log_b - rows_r, log_b)
        # columns: Q^T 1 = R^T 1 = g, g the geometric mean of (g, Q^T 1, R^T 1)
        cols_q = _lse(log_kq + f_q[:, None], 0) + h_q
        cols_r = _lse(log_kr + f_r[:, None], 0) + h_r
        new_log_g = ((log_g + cols_q + cols_r) / 3).clamp_min(log_alpha)
        h_q = h_q + new_log_g - cols_q
        h_r = h_r + new_log_g - cols_r
        log_g = new_log_g
    assert f_q is not None and f_r is not None
    log_q = log_kq + f_q[:, None] + h_q
    log_r = log_kr + f_r[:, None] + h_r
    return log_q, log_r, log_g, h_q, h_r


def _initial_kernels(a: torch.Tensor, b: torch.Tensor, rank: int, init: str, seed: int,
                     points: tuple[torch.Tensor, torch.Tensor] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log K_Q (n, r), log K_R (m, r)) of the starting point before projection; ``points``
    (x (n, d), y (m, d)) for init="kmeans"."""
    n, m = a.shape[0], b.shape[0]
    dtype, device = a.dtype, a.device
    generator = torch.Generator().manual_seed(seed)
    if init == "random":
        # OTT's RandomInitializer: |N(0, 1)| entries
        log_kq = torch.randn(n, rank, generator=generator, dtype=dtype).abs().log()
        log_kr = torch.randn(m, rank, generator=generator, dtype=dtype).abs().log()
        return log_kq.to(device), log_kr.to(device)
    if init == "rank2":
        # Scetbon et al. 2021, Sec. 3.2: Q = lambda x g1^T + (1 - lambda) y g2^T, a feasible
        # point of nonnegative rank 2 (x, g1 increasing profiles, y, g2 the remainders)
        g = torch.full((rank,), float(a.sum()) / rank, dtype=dtype, device=device)
        profile_g = torch.arange(1, rank + 1, dtype=dtype, device=device)
        profile_g = profile_g / profile_g.sum() * a.sum()
        factors = []
        for marginal in (a, b):
            profile = torch.arange(1, marginal.shape[0] + 1, dtype=dtype, device=device)
            profile = profile / profile.sum() * a.sum()
            weight = 0.5 * float(torch.minimum(marginal.min(), g.min()) / a.sum())
            rest = (marginal - weight * profile) / (1 - weight)
            rest_g = (g - weight * profile_g) / (1 - weight)
            factor = (weight * profile[:, None] * profile_g[None, :]
                      + (1 - weight) * rest[:, None] * rest_g[None, :]) / a.sum()
            factors.append(factor.log())
        return factors[0], factors[1]
    # kmeans: soft assignments of x and of y to r centroids of the pooled points
    assert points is not None
    points = torch.cat(points, 0)
    weights = torch.cat([a, b], 0)
    start = torch.randperm(points.shape[0], generator=generator)[:rank].to(device)
    centers = points[start]
    for _ in range(10):
        labels = torch.cdist(points, centers).argmin(1)
        mass = torch.zeros(rank, dtype=dtype, device=device).index_add_(0, labels, weights)
        sums = torch.zeros_like(centers).index_add_(0, labels, weights[:, None] * points)
        keep = mass > 0
        centers = torch.where(keep[:, None], sums / mass.clamp_min(1e-300)[:, None], centers)
    distances = torch.cdist(points, centers).pow(2)
    spread = distances.amin(1).mean().clamp_min(torch.finfo(dtype).tiny)
    logits = -distances / spread
    return logits[:n], logits[n:]


def low_rank_sinkhorn(problem: LinearProblem, rank: int, *, gamma: float = 10.0,
                      epsilon: float = 0.0, max_iterations: int = 2000,
                      threshold: float = 1e-3, inner_iterations: int = 10,
                      init: str = "random", seed: int = 0,
                      warn: bool = True) -> LRSinkhornOutput:
    """Solve balanced OT over plans P = Q diag(1/g) R^T of nonnegative rank ``rank``.

    Mirror descent (Scetbon et al. 2021, Algorithm 3) on min <C, P> - epsilon H(Q, R, g),
    each step projected by log-domain LR-Dykstra (Algorithm 2); see the module docstring.

    Args:
        problem: a balanced, unbatched :class:`LinearProblem`; weights a (n,), b (m,). Its
            geometry's ``epsilon`` is not used (``epsilon`` below is this solver's own).
        rank: r, 1 <= r <= min(n, m).
        gamma: base mirror-descent step, > 0, rescaled at each step by the squared sup norm
            of the gradients (OTT's ``gamma_rescale``).
        epsilon: entropic regularization on the factors, >= 0 (0: plain low-rank OT).
        max_iterations: mirror-descent steps at most.
        threshold: stop once the criterion (symmetric KL between consecutive iterates over
            gamma_k^2), checked every ``inner_iterations`` steps, falls below it.
        inner_iterations: steps between two checks.
        init: "random" (|N(0, 1)| kernels, OTT's default), "rank2" (the paper's rank-2
            feasible point) or "kmeans" (soft assignments to k-means centroids of the pooled
            points; :class:`PointCloud` only). Each is projected onto the constraints.
        seed: seed of the random and k-means initializations.
        warn: warn (RuntimeWarning) when the criterion did not fall below ``threshold``.

    Returns:
        :class:`LRSinkhornOutput`. Squared-Euclidean point clouds and :class:`LRCGeometry`
        run in O((n + m) r) memory; other geometries use their dense (n, m) cost. The
        iterations run under ``torch.no_grad``; ``primal_cost`` is differentiable w.r.t. the
        geometry's tensors at the returned factors (the envelope gradient).
    """
    fn = "low_rank_sinkhorn"
    if not isinstance(problem, LinearProblem):
        raise TypeError(f"{fn}: problem must be a LinearProblem, got {type(problem).__name__}")
    geom = problem.geom
    if geom.batched:
        raise NotImplementedError(f"{fn}: batched geometries are not supported yet; solve "
                                  "each problem of the batch separately")
    if not problem.is_balanced:
        raise NotImplementedError(
            f"{fn}: unbalanced problems (tau_a = {problem.tau_a:g}, tau_b = "
            f"{problem.tau_b:g}) are not supported yet; use tau_a = tau_b = 1 or sinkhorn()")
    n, m = geom.shape
    options = _check_options(fn, n, m, rank, gamma, epsilon, threshold, max_iterations,
                             inner_iterations, init, _INITS, seed)
    if init == "kmeans" and (not isinstance(geom, PointCloud) or isinstance(geom, LRCGeometry)):
        raise ValueError(f"{fn}: init='kmeans' needs point coordinates (a PointCloud), got "
                         f"{type(geom).__name__}; use init='random' or 'rank2'")
    live = _CostOperator.from_geometry(geom)
    cost = live.detach()
    a, b = problem.a[0], problem.b[0]
    points = (geom.x[0], geom.y[0]) if init == "kmeans" else None  # type: ignore[attr-defined]
    with torch.no_grad():
        log_kq, log_kr = _initial_kernels(a, b, rank, init, options.seed, points)
        state = _mirror_descent(a, b, log_kq, log_kr, options, lambda q, r, g: cost,
                                lambda q, r, g: _primal_cost(cost, q, r, g))
    if warn:
        state.warn_if_not_converged(fn, options.threshold)
    return LRSinkhornOutput(q=state.q, r=state.r, g=state.g, costs=state.costs,
                            errors=state.errors, converged=state.converged,
                            n_iters=state.n_iters, problem=problem, _cost=live)


def _symmetric_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p | q) + KL(q | p) = sum (p - q)(log p - log q), zero where both vanish."""
    difference = torch.where(torch.isfinite(log_p) | torch.isfinite(log_q), log_p - log_q,
                             torch.zeros_like(log_p))
    return ((_exp(log_p) - _exp(log_q)) * difference).sum()


@dataclass(frozen=True)
class _DescentState:
    q: torch.Tensor
    r: torch.Tensor
    g: torch.Tensor
    costs: torch.Tensor
    errors: torch.Tensor
    converged: bool
    n_iters: int

    def warn_if_not_converged(self, fn: str, threshold: float) -> None:
        if data_checks_enabled() and not self.converged:
            warnings.warn(
                f"{fn}: did not converge in {self.n_iters} iterations (criterion "
                f"{float(self.errors[-1]):.3g} > threshold {threshold:g}); raise "
                "max_iterations or threshold, or lower gamma", RuntimeWarning, stacklevel=3)


CostAt = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], _CostOperator]
ObjectiveAt = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _mirror_descent(a: torch.Tensor, b: torch.Tensor, log_kq: torch.Tensor,
                    log_kr: torch.Tensor, options: _DescentOptions, cost_at: CostAt,
                    objective_at: ObjectiveAt, unit_first_step: bool = False
                    ) -> _DescentState:
    """Mirror descent on (Q, R, g) (Scetbon et al. 2021, Algorithm 3).

    ``cost_at(Q, R, g)`` is the gradient of the objective with respect to the plan P at the
    current iterate, as a cost operator (the fixed cost C for linear OT; the linearization
    of the quadratic energy for Gromov-Wasserstein, Scetbon, Peyre & Cuturi 2022), so that
    grad_Q = C_k R diag(1/g), grad_R = C_k^T Q diag(1/g), grad_g = -diag(Q^T C_k R) / g^2.
    ``objective_at`` is recorded at every check. With ``unit_first_step``, the objective
    (gradients and epsilon) is divided by the sup norm of the first step's gradients: the
    fixed points are unchanged and ``gamma`` then means the same at every scale of the cost
    (used by low-rank GW, whose gradients scale like the square of the costs).
    """
    gamma, epsilon, threshold = options.gamma, options.epsilon, options.threshold
    max_iterations, inner_iterations = options.max_iterations, options.inner_iterations
    dtype, device = a.dtype, a.device
    rank = log_kq.shape[1]
    mass = float(a.sum())
    log_a, log_b = a.log(), b.log()
    # LR-Dykstra stops at an l1 error of the row marginals below this fraction of the mass
    tolerance = max(1e-6, 100 * torch.finfo(dtype).eps) * mass
    log_alpha = math.log(1e-10 * mass)
    max_steps = 200

    log_kq = torch.where(log_a[:, None] > -math.inf, log_kq, -math.inf)
    log_kr = torch.where(log_b[:, None] > -math.inf, log_kr, -math.inf)
    log_kg = torch.full((rank,), math.log(mass / rank), dtype=dtype, device=device)
    h_q = torch.zeros(rank, dtype=dtype, device=device)
    h_r = torch.zeros_like(h_q)
    log_q, log_r, log_g, h_q, h_r = _project(log_kq, log_kr, log_kg, log_a, log_b, h_q, h_r,
                                             log_alpha, tolerance, max_steps)
    costs: list[torch.Tensor] = []
    errors: list[torch.Tensor] = []
    n_iters = 0
    scale = None if unit_first_step else 1.0
    for iteration in range(1, max_iterations + 1):
        previous = (log_q, log_r, log_g)
        q, r, g = _exp(log_q), _exp(log_r), _exp(log_g)
        cost = cost_at(q, r, g)
        grad_q = cost.apply(r, axis=1) / g          # C R diag(1/g)
        grad_r = cost.apply(q, axis=0) / g          # C^T Q diag(1/g)
        grad_g = -(q * grad_q).sum(0) / g           # -diag(Q^T C R) / g^2
        largest = max(float(grad_q.abs().max()), float(grad_r.abs().max()),
                      float(grad_g.abs().max()))
        if scale is None:
            scale = largest if largest > 0 else 1.0
        grad_q, grad_r, grad_g, largest = (grad_q / scale, grad_r / scale, grad_g / scale,
                                           largest / scale)
        step = gamma / largest**2 if largest > 0 else gamma
        decay = 1 - step * epsilon / scale
        log_kq = torch.where(log_q > -math.inf, decay * log_q - step * grad_q, -math.inf)
        log_kr = torch.where(log_r > -math.inf, decay * log_r - step * grad_r, -math.inf)
        log_kg = decay * log_g - step * grad_g
        log_q, log_r, log_g, h_q, h_r = _project(log_kq, log_kr, log_kg, log_a, log_b,
                                                 h_q, h_r, log_alpha, tolerance, max_steps)
        n_iters = iteration
        if iteration % inner_iterations == 0 or iteration == max_iterations:
            # criterion between the last two iterates (Q_k, R_k, g_k) and (Q_k-1, ...)
            error = sum(_symmetric_kl(new, old) for new, old in
                        zip((log_q, log_r, log_g), previous, strict=True)) / step**2
            errors.append(error)
            costs.append(objective_at(_exp(log_q), _exp(log_r), _exp(log_g)))
            if not bool(torch.isfinite(error)) or bool(error < threshold):
                break
    q, r, g = _exp(log_q), _exp(log_r), _exp(log_g)
    error_values = torch.stack(errors)
    finite = all(bool(torch.isfinite(t).all()) for t in (q, r, g))
    converged = finite and bool(error_values[-1] < threshold)
    return _DescentState(q=q, r=r, g=g, costs=torch.stack(costs), errors=error_values,
                         converged=converged, n_iters=n_iters)
