"""Entropic optimal transport by Sinkhorn iterations (Cuturi 2013), log domain by default.

Problem (see :class:`~lutece.ot.problems.LinearProblem`): min_P <C, P> + eps KL(P | a b^T)
(+ KL marginal penalties when unbalanced). Its solution is P_ij = exp((f_i + g_j - C_ij) / eps)
for potentials f, g that satisfy (Peyre & Cuturi 2019, eq. 4.43; Sejourne et al. 2019 for
tau < 1)

    g_j = eps log b_j - tau_b eps log sum_i exp((f_i - C_ij) / eps),
    f_i = eps log a_i - tau_a eps log sum_j exp((g_j - C_ij) / eps).

Each iteration updates g then f (as OTT and POT do), so after it the row marginal P 1 is
exact and the error reported every ``inner_iterations`` is the ``norm_error``-norm of the
column-marginal residual (P^T 1 - b in the balanced case).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..._validation import data_checks_enabled
from ..geometry import Geometry, Grid, PointCloud
from ..problems import LinearProblem
from ._implicit import ImplicitOptions, attach_implicit_gradient
from ._kernel_cache import KernelCache

__all__ = ["sinkhorn", "SinkhornOutput"]


@dataclass
class SinkhornOutput:
    """The result of :func:`sinkhorn`.

    ``f``, ``g``: dual potentials, (n,) and (m,) (or (B, n), (B, m)), in the convention
    P_ij = exp((f_i + g_j - C_ij) / eps) (they include eps log a and eps log b).
    ``errors``: the marginal error at every check, (num_checks,) or (B, num_checks).
    ``converged``: bool tensor, () or (B,): the last error is below ``threshold`` and nothing
    is NaN. ``n_iters``: iterations run (the whole batch runs the same number).
    """

    f: torch.Tensor
    g: torch.Tensor
    errors: torch.Tensor
    converged: torch.Tensor
    n_iters: int
    problem: LinearProblem
    threshold: float
    _eps: torch.Tensor = field(repr=False)

    @property
    def geom(self) -> Geometry:
        return self.problem.geom

    @property
    def epsilon(self) -> float | torch.Tensor:
        return self._eps if self.geom.batched else float(self._eps[0])

    def _batch(self, value: torch.Tensor) -> torch.Tensor:
        return value if self.geom.batched else value.unsqueeze(0)

    def _out(self, value: torch.Tensor) -> torch.Tensor:
        return value if self.geom.batched else value.squeeze(0)

    @property
    def matrix(self) -> torch.Tensor:
        """The transport plan, (n, m) or (B, n, m), materialized on each access."""
        return self._out(self.geom.plan_matrix(self._batch(self.f), self._batch(self.g),
                                               self._eps))

    def apply(self, v: torch.Tensor, axis: int = 1) -> torch.Tensor:
        """Transport ``v`` without materializing the plan.

        axis = 1: sum_j P_ij v_j, v of shape (m,) or (m, k) (batched: (B, m[, k])) -> n rows;
        axis = 0: sum_i P_ij v_i, v on the n rows -> m columns.
        """
        if axis not in (0, 1):
            raise ValueError(f"SinkhornOutput.apply: axis must be 0 or 1, got {axis!r}")
        expected = self.geom.shape[1] if axis == 1 else self.geom.shape[0]
        batched_v = self._batch(v)
        if batched_v.ndim not in (2, 3) or batched_v.shape[1] != expected:
            raise ValueError(f"SinkhornOutput.apply: v must have {expected} entries along its "
                             f"first (non-batch) dimension for axis={axis}, got shape "
                             f"{tuple(v.shape)}")
        out = self.geom.apply_plan(self._batch(self.f), self._batch(self.g), self._eps,
                                   batched_v.to(self.f.dtype), axis)
        return self._out(out)

    def marginal(self, axis: int) -> torch.Tensor:
        """P 1 (axis=1, on the rows) or P^T 1 (axis=0, on the columns)."""
        n, m = self.geom.shape
        ones = torch.ones((self.geom.num_problems, m if axis == 1 else n),
                          dtype=self.f.dtype, device=self.f.device)
        return self.apply(self._out(ones), axis=axis)

    @property
    def primal_cost(self) -> torch.Tensor:
        """<C, P>, the transport cost of the plan (no entropy), () or (B,)."""
        return self._out(self.geom.plan_cost(self._batch(self.f), self._batch(self.g),
                                             self._eps))

    @property
    def reg_ot_cost(self) -> torch.Tensor:
        """The regularized OT cost: the dual objective at (f, g), which at convergence equals
        <C, P> + eps KL(P | a b^T) + rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b). () or (B,)."""
        problem = self.problem
        a, b, eps = problem.a, problem.b, self._eps
        f, g = self._batch(self.f), self._batch(self.g)
        e = eps[:, None]
        f_hat = torch.where(a > 0, f - e * torch.log(a), 0.0)
        g_hat = torch.where(b > 0, g - e * torch.log(b), 0.0)
        mass_a, mass_b = a.sum(-1), b.sum(-1)
        if problem.is_balanced:
            value = (a * f_hat).sum(-1) + (b * g_hat).sum(-1) - eps * mass_a * (1 - mass_b)
            return self._out(value)
        terms = []
        for weights, hat, which in ((a, f_hat, "a"), (b, g_hat, "b")):
            rho = problem.rho(eps, which)[:, None]
            if math.isinf(float(rho[0, 0])):
                terms.append((weights * hat).sum(-1))
            else:
                terms.append(-(rho * weights * torch.expm1(-hat / rho)).sum(-1))
        total_mass = torch.exp((f + self.geom.lse(g, 1, eps)) / e).sum(-1)
        return self._out(terms[0] + terms[1] - eps * (total_mass - mass_a * mass_b))

    def transport_map(self, x: torch.Tensor) -> torch.Tensor:
        """The entropic map T(x) = sum_j y_j softmax_j((g_j - c(x, y_j)) / eps) at new source
        points x, (k, d) or (B, k, d) (Pooladian & Niles-Weed 2021); at the problem's own
        source points it is the barycentric projection of the plan. Point clouds only."""
        geom = self.geom
        if not isinstance(geom, PointCloud):
            raise TypeError("SinkhornOutput.transport_map: needs a PointCloud geometry, got "
                            f"{type(geom).__name__}")
        points = self._batch(x).to(geom.dtype)
        if points.ndim != 3 or points.shape[-1] != geom.x.shape[-1]:
            raise ValueError(f"SinkhornOutput.transport_map: x must be (k, {geom.x.shape[-1]})"
                             f"{' with a batch dimension' if geom.batched else ''}, got "
                             f"{tuple(x.shape)}")
        cost = geom.cost_fn(points, geom.y) / geom.cost_scale[:, None, None]
        logits = (self._batch(self.g)[:, None, :] - cost) / self._eps[:, None, None]
        return self._out(torch.softmax(logits, dim=-1) @ geom.y)


def _check_options(threshold: object, max_iterations: object, min_iterations: object,
                   inner_iterations: object, norm_error: object, momentum: object,
                   anderson: object, epsilon_schedule: object) -> None:
    fn = "sinkhorn"
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not threshold > 0:
        raise ValueError(f"{fn}: threshold must be > 0, got {threshold!r}")
    for name, value, low in (("max_iterations", max_iterations, 1),
                             ("min_iterations", min_iterations, 0),
                             ("inner_iterations", inner_iterations, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    if min_iterations > max_iterations:  # type: ignore[operator]
        raise ValueError(f"{fn}: min_iterations ({min_iterations}) must be <= max_iterations "
                         f"({max_iterations})")
    if isinstance(norm_error, bool) or not isinstance(norm_error, (int, float)) \
            or not norm_error >= 1:
        raise ValueError(f"{fn}: norm_error must be a number >= 1 (or inf), got {norm_error!r}")
    if momentum is not None and (isinstance(momentum, bool)
                                 or not isinstance(momentum, (int, float))
                                 or not 0 < momentum < 2):
        raise ValueError(f"{fn}: momentum must be None or in (0, 2), got {momentum!r}")
    if anderson is not None and (isinstance(anderson, bool) or not isinstance(anderson, int)
                                 or anderson < 1):
        raise ValueError(f"{fn}: anderson must be None or a memory size >= 1, got "
                         f"{anderson!r}")
    if epsilon_schedule is not None:
        ok = (isinstance(epsilon_schedule, tuple) and len(epsilon_schedule) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in epsilon_schedule)
              and epsilon_schedule[0] >= 1 and 0 < epsilon_schedule[1] <= 1)
        if not ok:
            raise ValueError(f"{fn}: epsilon_schedule must be (init, decay) with init >= 1 "
                             f"and 0 < decay <= 1, got {epsilon_schedule!r}")


class _Anderson:
    """Type-II Anderson acceleration of the fixed-point map g -> T(g) (Anderson 1965;
    Walker & Ni 2011), with a ridge on the least-squares system as in OTT."""

    def __init__(self, memory: int, ridge: float = 1e-2) -> None:
        self.memory, self.ridge = memory, ridge
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def step(self, g_in: torch.Tensor, g_out: torch.Tensor) -> torch.Tensor:
        finite = torch.isfinite(g_in).all(0)  # coordinates with zero weight stay out
        self.inputs.append(torch.where(finite, g_in, 0.0))
        self.outputs.append(torch.where(finite, g_out, 0.0))
        if len(self.inputs) > self.memory + 1:
            self.inputs.pop(0)
            self.outputs.pop(0)
        if len(self.inputs) < 2:
            return g_out
        residuals = torch.stack([o - i for i, o in zip(self.inputs, self.outputs)], dim=1)
        gram = residuals @ residuals.transpose(1, 2)   # (B, k, k)
        k = gram.shape[-1]
        scale = gram.diagonal(dim1=1, dim2=2).mean(-1).clamp_min(1e-30)
        gram = gram + self.ridge * scale[:, None, None] * torch.eye(k, dtype=gram.dtype,
                                                                    device=gram.device)
        ones = torch.ones(gram.shape[0], k, 1, dtype=gram.dtype, device=gram.device)
        weights = torch.linalg.solve(gram, ones).squeeze(-1)
        weights = weights / weights.sum(-1, keepdim=True)
        mixed = (weights.unsqueeze(-1) * torch.stack(self.outputs, dim=1)).sum(1)
        if not bool(torch.isfinite(mixed).all()):
            self.inputs.clear()
            self.outputs.clear()
            return g_out
        return torch.where(finite, mixed, g_out)


def sinkhorn(problem: LinearProblem, *, threshold: float = 1e-3, max_iterations: int = 2000,
             min_iterations: int = 0, inner_iterations: int = 10, norm_error: float = 1.0,
             lse_mode: bool = True, momentum: float | None = None, anderson: int | None = None,
             epsilon_schedule: tuple[float, float] | None = None,
             init: tuple[torch.Tensor, torch.Tensor] | None = None,
             implicit_diff: bool = True, implicit_options: ImplicitOptions | None = None,
             progress: bool = False, warn: bool = True) -> SinkhornOutput:
    """Solve an entropic OT problem by Sinkhorn iterations.

    Args:
        problem: the :class:`LinearProblem` (geometry, weights, tau_a, tau_b).
        threshold: stop once the marginal error, checked every ``inner_iterations``, is
            below it for every problem of the batch (after ``min_iterations``).
        max_iterations, min_iterations: bounds on the iterations. ``min_iterations ==
            max_iterations`` is the fixed-iteration mode: no data-dependent control flow, the
            path to batch many problems or run under ``torch.compile``.
        norm_error: p of the p-norm of the error (1 as in OTT; 2 as POT's L2 rule).
        lse_mode: log-domain updates (default). Dense geometries compute them at the cost of
            a matrix-vector product through a re-referenced kernel (see ``_kernel_cache``).
            False runs the classic scaling iterations u = a / K v on K = exp(-C / eps), which
            underflow for small eps (reported as non-convergence).
        momentum: over-relaxation weight omega in (0, 2) (Thibault et al. 2021):
            g <- (1 - omega) g + omega T(g), likewise for f.
        anderson: memory of Anderson acceleration on the g iterates (None: off).
        epsilon_schedule: (init, decay): iteration t uses eps_t = max(init decay^t, 1) eps
            (OTT's ``Epsilon`` scheduler); errors are checked once eps_t reaches eps.
        init: initial potentials (f, g) shaped like the output's; default zeros.
        implicit_diff: gradients by implicit differentiation of the fixed point (default);
            False differentiates through the iterations (unrolled; memory grows with them).
        implicit_options: conjugate-gradient settings of the implicit backward.
        progress: show a progress bar with the current error.
        warn: warn when the problem did not converge.

    Returns:
        A :class:`SinkhornOutput`. Gradients of its potentials and of everything computed
        from them (reg_ot_cost, matrix, apply, transport_map) flow to the cost's tensors
        (cost matrix, point positions, factors), to a and to b. In a balanced problem the
        potentials are defined up to (f + t, g - t) and the implicit gradient is that of
        quantities invariant to t (all of the above; a function of f alone that is not
        invariant has no well-defined gradient). Zero weights get a zero gradient.
    """
    if not isinstance(problem, LinearProblem):
        raise TypeError(f"sinkhorn: problem must be a LinearProblem, got "
                        f"{type(problem).__name__}")
    _check_options(threshold, max_iterations, min_iterations, inner_iterations, norm_error,
                   momentum, anderson, epsilon_schedule)
    geom = problem.geom
    eps = geom.epsilon_
    fixed = min_iterations == max_iterations
    differentiable = (not implicit_diff) and torch.is_grad_enabled()
    init_pair = _initial_potentials(problem, init)
    options = implicit_options or ImplicitOptions()

    with torch.set_grad_enabled(differentiable):
        solve_geom = geom if differentiable else geom._with_tensors(
            tuple(t.detach() for t in geom._tensors()))
        a = problem.a if differentiable else problem.a.detach()
        b = problem.b if differentiable else problem.b.detach()
        loop = _Loop(solve_geom, a, b, problem.tau_a, problem.tau_b, eps, norm_error,
                     lse_mode and not differentiable and not fixed)
        f, g = init_pair
        if not lse_mode:
            f, g, errors, n_iters = loop.run_kernel(f, g, threshold, max_iterations,
                                                    min_iterations, inner_iterations, fixed,
                                                    progress)
        else:
            f, g, errors, n_iters = loop.run(f, g, threshold, max_iterations, min_iterations,
                                             inner_iterations, fixed, momentum, anderson,
                                             epsilon_schedule, progress)
    last = errors[:, -1]
    converged = (last < threshold) & ~torch.isnan(f).any(-1) & ~torch.isnan(g).any(-1)
    if warn and not fixed and data_checks_enabled() and not bool(converged.all()):
        worst = float(last.nan_to_num(nan=math.inf).max())
        warnings.warn(
            f"sinkhorn: did not converge in {n_iters} iterations (marginal error "
            f"{worst:.3g} > threshold {threshold:g}); raise max_iterations or epsilon"
            + ("" if lse_mode else ", or use lse_mode=True"), RuntimeWarning, stacklevel=2)
    if not differentiable:
        f, g = attach_implicit_gradient(f.detach(), g.detach(), geom, problem.a, problem.b,
                                        eps, problem.tau_a, problem.tau_b, options) \
            if implicit_diff and torch.is_grad_enabled() else (f.detach(), g.detach())
    squeeze = (lambda t: t) if geom.batched else (lambda t: t.squeeze(0))
    return SinkhornOutput(f=squeeze(f), g=squeeze(g), errors=squeeze(errors),
                          converged=squeeze(converged), n_iters=n_iters, problem=problem,
                          threshold=float(threshold), _eps=eps)


def _initial_potentials(problem: LinearProblem, init: object
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    geom = problem.geom
    n, m = geom.shape
    zeros = (torch.zeros_like(problem.a), torch.zeros_like(problem.b))
    if init is None:
        return zeros
    if not (isinstance(init, tuple) and len(init) == 2
            and all(isinstance(t, torch.Tensor) for t in init)):
        raise TypeError("sinkhorn: init must be a pair of tensors (f, g)")
    out = []
    for name, value, size in (("f", init[0], n), ("g", init[1], m)):
        expected = (geom.num_problems, size) if geom.batched else (size,)
        if tuple(value.shape) != expected:
            raise ValueError(f"sinkhorn: init {name} must have shape {expected}, got "
                             f"{tuple(value.shape)}")
        value = value.detach().to(geom.dtype)
        out.append(value if geom.batched else value.unsqueeze(0))
    return out[0], out[1]


class _Loop:
    """The iterations, with the state they share."""

    def __init__(self, geom: Geometry, a: torch.Tensor, b: torch.Tensor, tau_a: float,
                 tau_b: float, eps: torch.Tensor, norm_error: float, use_cache: bool) -> None:
        self.geom, self.a, self.b = geom, a, b
        self.tau_a, self.tau_b, self.eps = tau_a, tau_b, eps
        self.log_a, self.log_b = torch.log(a), torch.log(b)
        self.norm_error = norm_error
        self.rho_b = eps * tau_b / (1 - tau_b) if tau_b < 1 else None
        dense = not geom.is_online and not isinstance(geom, Grid)
        self.cache = KernelCache(geom, geom._full_cost().detach(), eps) \
            if use_cache and dense else None

    def _lse(self, h: torch.Tensor, axis: int, other: torch.Tensor, eps: torch.Tensor,
             final_eps: bool) -> torch.Tensor:
        if self.cache is not None and final_eps:
            return self.cache.lse(h, axis, other)
        return self.geom.lse(h, axis, eps)

    def error(self, g: torch.Tensor, lse_rows: torch.Tensor) -> torch.Tensor:
        """(B,) p-norm of the column residual P^T 1 - target, from lse_rows = lse(f, 0)."""
        e = self.eps[:, None]
        column = torch.exp((g + lse_rows) / e)
        target = self.b
        if self.rho_b is not None:
            g_hat = torch.where(self.b > 0, g - e * self.log_b, 0.0)
            target = self.b * torch.exp(-g_hat / self.rho_b[:, None])
        residual = (column - target).nan_to_num(nan=math.inf)
        if math.isinf(self.norm_error):
            return residual.abs().amax(-1)
        return residual.abs().pow(self.norm_error).sum(-1).pow(1 / self.norm_error)

    def run(self, f, g, threshold, max_iterations, min_iterations, inner_iterations, fixed,
            momentum, anderson, epsilon_schedule, progress):
        errors = []
        accelerator = _Anderson(anderson) if anderson else None
        bar = tqdm(total=max_iterations, desc="sinkhorn", disable=not progress, leave=False)

        def eps_at(iteration: int) -> tuple[torch.Tensor, bool]:
            if epsilon_schedule is None:
                return self.eps, True
            init, decay = epsilon_schedule
            factor = max(init * decay ** iteration, 1.0)
            return self.eps * factor, factor == 1.0

        eps_t, final = eps_at(0)
        lse_rows = self._lse(f, 0, g, eps_t, final)
        iteration = 0
        while True:
            if iteration > 0 and (iteration % inner_iterations == 0
                                  or iteration == max_iterations):
                error = self.error(g, lse_rows) if final else \
                    torch.full_like(self.eps, math.inf)
                errors.append(error)
                if not fixed:
                    bar.update(iteration - bar.n)
                    worst = float(error.detach().max())
                    bar.set_postfix(error=f"{worst:.2e}")
                    if iteration >= min_iterations and (worst < threshold
                                                        or math.isnan(worst)):
                        break
            if iteration == max_iterations:
                break
            e = eps_t[:, None]
            g_new = e * self.log_b - self.tau_b * lse_rows
            if momentum is not None and iteration > 0:
                g_new = torch.where(torch.isfinite(g), (1 - momentum) * g + momentum * g_new,
                                    g_new)
            if accelerator is not None and final and iteration > 0:
                g_new = accelerator.step(g, g_new)
            g = g_new
            lse_cols = self._lse(g, 1, f, eps_t, final)
            f_new = e * self.log_a - self.tau_a * lse_cols
            if momentum is not None and iteration > 0:
                f_new = torch.where(torch.isfinite(f), (1 - momentum) * f + momentum * f_new,
                                    f_new)
            f = f_new
            iteration += 1
            eps_t, final = eps_at(iteration)
            lse_rows = self._lse(f, 0, g, eps_t, final)
        bar.close()
        if not errors:
            errors.append(self.error(g, lse_rows))
        return f, g, torch.stack(errors, dim=-1), iteration

    def run_kernel(self, f, g, threshold, max_iterations, min_iterations, inner_iterations,
                   fixed, progress):
        """Scaling iterations u = (a / K v)^tau_a, v = (b / K^T u)^tau_b on K = exp(-C/eps)."""
        geom, eps = self.geom, self.eps
        e = eps[:, None]
        dense = not geom.is_online and not isinstance(geom, Grid)
        kernel = torch.exp(-geom._full_cost() / eps[:, None, None]) if dense else None
        zeros_n, zeros_m = torch.zeros_like(self.a), torch.zeros_like(self.b)

        def kernel_rows(v: torch.Tensor) -> torch.Tensor:   # K v
            if kernel is not None:
                return (kernel @ v.unsqueeze(-1)).squeeze(-1)
            return geom.apply_plan(zeros_n, zeros_m, eps, v, axis=1)

        def kernel_cols(u: torch.Tensor) -> torch.Tensor:   # K^T u
            if kernel is not None:
                return (kernel.transpose(1, 2) @ u.unsqueeze(-1)).squeeze(-1)
            return geom.apply_plan(zeros_n, zeros_m, eps, u, axis=0)

        u, v = torch.exp(f / e), torch.exp(g / e)
        errors = []
        bar = tqdm(total=max_iterations, desc="sinkhorn", disable=not progress, leave=False)
        kt_u = kernel_cols(u)
        iteration = 0
        while True:
            if iteration > 0 and (iteration % inner_iterations == 0
                                  or iteration == max_iterations):
                error = self.error(e * torch.log(v), e * torch.log(kt_u))
                errors.append(error)
                if not fixed:
                    bar.update(iteration - bar.n)
                    worst = float(error.detach().max())
                    bar.set_postfix(error=f"{worst:.2e}")
                    if iteration >= min_iterations and (worst < threshold
                                                        or math.isnan(worst)):
                        break
            if iteration == max_iterations:
                break
            v = (self.b / kt_u).pow(self.tau_b)
            u = (self.a / kernel_rows(v)).pow(self.tau_a)
            kt_u = kernel_cols(u)
            iteration += 1
        bar.close()
        if not errors:
            errors.append(self.error(e * torch.log(v), e * torch.log(kt_u)))
        return e * torch.log(u), e * torch.log(v), torch.stack(errors, dim=-1), iteration
