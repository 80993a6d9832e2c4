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

from ..._validation import data_checks_enabled
from ..geometry import Geometry, PointCloud
from ..problems import LinearProblem
from ._compiled import solve_compiled
from ._implicit import ImplicitOptions, attach_implicit_gradient
from ._iterations import iterate

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
    _danskin: bool = field(default=False, repr=False)

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
        <C, P> + eps KL(P | a b^T) + rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b). () or (B,).

        With ``use_danskin`` (the default, as in OTT) its gradient is the partial derivative
        of the dual objective at fixed potentials (Danskin's envelope theorem: P for the
        cost, the potentials for the weights), which needs no linear solve; it is exact to
        first order only, so second derivatives need ``implicit_diff=False``."""
        problem, geom = self.problem, self.geom
        a, b, eps = problem.a, problem.b, self._eps
        f, g = self._batch(self.f), self._batch(self.g)
        if self._danskin:
            f, g = f.detach(), g.detach()
        e = eps[:, None]
        f_hat = torch.where(a > 0, f - e * torch.log(a), 0.0)
        g_hat = torch.where(b > 0, g - e * torch.log(b), 0.0)
        mass_a, mass_b = a.sum(-1), b.sum(-1)
        terms = []
        for weights, hat, which, tau in ((a, f_hat, "a", problem.tau_a),
                                         (b, g_hat, "b", problem.tau_b)):
            rho = problem.rho(eps, which)[:, None]
            if tau == 1.0:
                terms.append((weights * hat).sum(-1))
            else:
                terms.append(-(rho * weights * torch.expm1(-hat / rho)).sum(-1))
        cost_needs_grad = torch.is_grad_enabled() and any(
            t.requires_grad for t in geom._tensors())
        if problem.is_balanced and not (self._danskin and cost_needs_grad):
            # the last update was f's, so the plan's mass is exactly sum(a)
            total_mass = mass_a
        else:
            total_mass = torch.exp((f + geom.lse(g, 1, eps)) / e).sum(-1)
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


def sinkhorn(problem: LinearProblem, *, threshold: float = 1e-3, max_iterations: int = 2000,
             min_iterations: int = 0, inner_iterations: int = 10, norm_error: float = 1.0,
             lse_mode: bool = True, momentum: float | None = None, anderson: int | None = None,
             epsilon_schedule: tuple[float, float] | None = None,
             init: tuple[torch.Tensor, torch.Tensor] | None = None,
             implicit_diff: bool = True, implicit_options: ImplicitOptions | None = None,
             use_danskin: bool = True, progress: bool = False,
             warn: bool = True) -> SinkhornOutput:
    """Solve an entropic OT problem by Sinkhorn iterations.

    Args:
        problem: the :class:`LinearProblem` (geometry, weights, tau_a, tau_b).
        threshold: stop once the marginal error, checked every ``inner_iterations``, is
            below it for every problem of the batch (after ``min_iterations``).
        max_iterations, min_iterations: bounds on the iterations. ``min_iterations ==
            max_iterations`` is the fixed-iteration mode: no early stop, the same work for
            every problem of a batch, and under ``torch.compile`` one opaque operator (no
            graph break; gradients by implicit differentiation) for the geometries of
            :mod:`lutece.ot.geometry` with built-in costs. Otherwise, and for custom cost
            callables, compiled code traces the exact log-domain iterations.
        norm_error: p of the p-norm of the error (1 as in OTT; 2 as POT's L2 rule).
        lse_mode: log-domain updates (default), computed at the cost of a matrix-vector
            product on a kernel re-referenced at recent potentials and rebuilt when the
            dtype's range requires it (see ``_scaling``): the results of the log-sum-exp
            iteration at the speed of the kernel one. False runs the classic kernel
            iterations u = a / K v on K = exp(-C / eps), which underflow for small eps
            (reported as non-convergence). Unrolled differentiation and compiled
            fixed-iteration runs always use the exact log-sum-exp updates.
        momentum: over-relaxation weight omega in (0, 2) (Thibault et al. 2021):
            g <- (1 - omega) g + omega T(g), likewise for f.
        anderson: memory of Anderson acceleration on the g iterates (None: off).
        epsilon_schedule: (init, decay): iteration t uses eps_t = max(init decay^t, 1) eps
            (OTT's ``Epsilon`` scheduler); errors are checked once eps_t reaches eps.
        init: initial potentials (f, g) shaped like the output's; default zeros.
        implicit_diff: gradients by implicit differentiation of the fixed point (default);
            False differentiates through the iterations (unrolled; memory grows with them).
        implicit_options: conjugate-gradient settings of the implicit backward.
        use_danskin: differentiate ``reg_ot_cost`` by the envelope theorem (no linear
            solve; first order only). False sends it through the potentials' gradient.
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
    if geom.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"sinkhorn: the geometry's dtype must be float32 or float64 (the "
                        f"kernel's range needs them), got {geom.dtype}; convert the inputs "
                        "with .float()")
    eps = geom.epsilon_
    fixed = min_iterations == max_iterations
    differentiable = (not implicit_diff) and torch.is_grad_enabled()
    compiling = torch.compiler.is_compiling()
    f, g = _initial_potentials(problem, init)
    options = implicit_options or ImplicitOptions()

    # Under torch.compile the fixed-iteration solve is one opaque operator (see _compiled)
    spec = geom.compile_spec() if compiling and fixed and not differentiable \
        and epsilon_schedule is None else None
    if spec is not None:
        f, g, errors = solve_compiled(
            geom, spec, problem.a, problem.b, problem.tau_a, problem.tau_b, eps, f, g,
            iterations=max_iterations, inner_iterations=inner_iterations,
            norm_error=norm_error, lse_mode=lse_mode, momentum=momentum, anderson=anderson,
            implicit=options)
        n_iters = max_iterations
    else:
        f, g, errors, n_iters = _solve(problem, f, g, differentiable, compiling, threshold,
                                       max_iterations, min_iterations, inner_iterations,
                                       norm_error, lse_mode, momentum, anderson,
                                       epsilon_schedule, fixed, progress)
    last = errors[:, -1]
    converged = (last < threshold) & ~torch.isnan(f).any(-1) & ~torch.isnan(g).any(-1)
    if warn and not fixed and data_checks_enabled() and not bool(converged.all()):
        worst = float(last.nan_to_num(nan=math.inf).max())
        warnings.warn(
            f"sinkhorn: did not converge in {n_iters} iterations (marginal error "
            f"{worst:.3g} > threshold {threshold:g}); raise max_iterations or epsilon"
            + ("" if lse_mode else ", or use lse_mode=True"), RuntimeWarning, stacklevel=2)
    if not differentiable and spec is None:
        inputs = (*geom._tensors(), problem.a, problem.b)
        wanted = implicit_diff and torch.is_grad_enabled() and any(
            t.requires_grad for t in inputs)
        f, g = attach_implicit_gradient(f.detach(), g.detach(), geom, problem.a, problem.b,
                                        eps, problem.tau_a, problem.tau_b, options) \
            if wanted else (f.detach(), g.detach())
    squeeze = (lambda t: t) if geom.batched else (lambda t: t.squeeze(0))
    return SinkhornOutput(f=squeeze(f), g=squeeze(g), errors=squeeze(errors),
                          converged=squeeze(converged), n_iters=n_iters, problem=problem,
                          threshold=float(threshold), _eps=eps,
                          _danskin=use_danskin and not differentiable)


def _solve(problem: LinearProblem, f: torch.Tensor, g: torch.Tensor, differentiable: bool,
           compiling: bool, threshold: float, max_iterations: int, min_iterations: int,
           inner_iterations: int, norm_error: float, lse_mode: bool, momentum: float | None,
           anderson: int | None, epsilon_schedule: tuple[float, float] | None, fixed: bool,
           progress: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The iterations on detached inputs, or on the inputs themselves when unrolled."""
    geom = problem.geom
    with torch.set_grad_enabled(differentiable):
        solve_geom = geom if differentiable else geom._with_tensors(
            tuple(t.detach() for t in geom._tensors()))
        a = problem.a if differentiable else problem.a.detach()
        b = problem.b if differentiable else problem.b.detach()
        return iterate(
            solve_geom, a, b, problem.tau_a, problem.tau_b, geom.epsilon_, f, g,
            threshold=threshold, max_iterations=max_iterations, min_iterations=min_iterations,
            inner_iterations=inner_iterations, norm_error=norm_error, momentum=momentum,
            anderson=anderson, epsilon_schedule=epsilon_schedule,
            # unrolled autograd and compiled graphs go through the exact log-domain steps
            scaling=not differentiable and not compiling, stabilize=lse_mode,
            early_stop=not fixed, progress=progress and not compiling)


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
