"""The Sinkhorn loop: alternate g and f updates, check the marginal error every
``inner_iterations``, stop at the threshold.

Two interchangeable ways to run the updates, both on potentials (f, g) with
P_ij = exp((f_i + g_j - C_ij) / eps):

- :class:`LogDomainSteps`: the exact log-sum-exp updates through ``geom.lse``. Differentiable
  (unrolled autograd goes through it), free of data-dependent control flow (what
  ``torch.compile`` needs in the fixed-iteration mode), and able to change epsilon at every
  iteration (the epsilon schedule's warm start).
- :class:`ScalingSteps`: the same updates as matrix-vector products on a re-referenced
  kernel (:mod:`._scaling`); the fast path, and kernel mode when not stabilized.

Updates follow Peyre & Cuturi (2019, eq. 4.43) and, for tau < 1, Sejourne et al. (2019):
g_j = eps log b_j - tau_b eps log sum_i exp((f_i - C_ij) / eps), then f likewise. Momentum is
over-relaxation (Thibault et al. 2021), Anderson acceleration is type II (Walker & Ni 2011).
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..geometry import Geometry
from ._scaling import ScalingIterations, make_kernel

__all__ = ["Anderson", "LogDomainSteps", "ScalingSteps", "iterate"]


class Anderson:
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


def _relax(old: torch.Tensor, new: torch.Tensor, momentum: float) -> torch.Tensor:
    """(1 - omega) old + omega new on potentials, leaving -inf (zero weight) entries alone."""
    return torch.where(torch.isfinite(old), (1 - momentum) * old + momentum * new, new)


class _Steps:
    """What both step kinds share: the problem and the marginal error."""

    final = True

    def __init__(self, a: torch.Tensor, b: torch.Tensor, tau_a: float, tau_b: float,
                 eps: torch.Tensor) -> None:
        self.a, self.b, self.tau_a, self.tau_b, self.eps = a, b, tau_a, tau_b, eps
        self.rho_b = eps * tau_b / (1 - tau_b) if tau_b < 1 else None
        self.log_b = torch.log(b)

    def _error(self, column: torch.Tensor, g: torch.Tensor | None, norm: float
               ) -> torch.Tensor:
        """(B,) p-norm of the column residual P^T 1 - target (target = b when balanced,
        b exp(-(g - eps log b) / rho_b) at the optimum of the relaxed problem)."""
        target = self.b
        if self.rho_b is not None:
            assert g is not None
            e = self.eps[:, None]
            g_hat = torch.where(self.b > 0, g - e * self.log_b, 0.0)
            target = self.b * torch.exp(-g_hat / self.rho_b[:, None])
        residual = (column - target).nan_to_num(nan=math.inf)
        if math.isinf(norm):
            return residual.abs().amax(-1)
        return residual.abs().pow(norm).sum(-1).pow(1 / norm)


class LogDomainSteps(_Steps):
    """Exact updates through ``geom.lse``, epsilon possibly scheduled."""

    def __init__(self, geom: Geometry, a: torch.Tensor, b: torch.Tensor, tau_a: float,
                 tau_b: float, eps: torch.Tensor, f: torch.Tensor, g: torch.Tensor,
                 epsilon_schedule: tuple[float, float] | None) -> None:
        super().__init__(a, b, tau_a, tau_b, eps)
        self.geom, self.schedule = geom, epsilon_schedule
        self.log_a = torch.log(a)
        self.f, self.g = f, g
        self.eps_t, self.final = self._eps_at(0)
        self.lse_rows = geom.lse(f, 0, self.eps_t)

    def _eps_at(self, iteration: int) -> tuple[torch.Tensor, bool]:
        if self.schedule is None:
            return self.eps, True
        init, decay = self.schedule
        factor = max(init * decay ** iteration, 1.0)
        return self.eps * factor, factor == 1.0

    def step(self, iteration: int, momentum: float | None, anderson: Anderson | None) -> None:
        e = self.eps_t[:, None]
        g = e * self.log_b - self.tau_b * self.lse_rows
        if momentum is not None and iteration > 0:
            g = _relax(self.g, g, momentum)
        if anderson is not None and self.final and iteration > 0:
            g = anderson.step(self.g, g)
        self.g = g
        f = e * self.log_a - self.tau_a * self.geom.lse(g, 1, self.eps_t)
        if momentum is not None and iteration > 0:
            f = _relax(self.f, f, momentum)
        self.f = f
        self.eps_t, self.final = self._eps_at(iteration + 1)
        self.lse_rows = self.geom.lse(f, 0, self.eps_t)

    def error(self, norm: float) -> torch.Tensor:
        column = torch.exp((self.g + self.lse_rows) / self.eps[:, None])
        return self._error(column, self.g, norm)

    def potentials(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.f, self.g


class ScalingSteps(_Steps):
    """Matrix-vector updates on a re-referenced kernel (:class:`ScalingIterations`)."""

    def __init__(self, geom: Geometry, a: torch.Tensor, b: torch.Tensor, tau_a: float,
                 tau_b: float, eps: torch.Tensor, f: torch.Tensor, g: torch.Tensor,
                 stabilize: bool) -> None:
        super().__init__(a, b, tau_a, tau_b, eps)
        self.state = ScalingIterations(make_kernel(geom, eps), a, b, tau_a, tau_b, eps,
                                       stabilize, f, g)
        self.columns = self.state.columns()

    def step(self, iteration: int, momentum: float | None, anderson: Anderson | None) -> None:
        state = self.state
        relaxed = momentum is not None and iteration > 0
        accelerated = anderson is not None and iteration > 0
        v = state.g_update(self.columns)
        if relaxed or accelerated:
            g_old = state.g()
            g = state.g_ref + self.eps[:, None] * torch.log(v)
            if relaxed:
                g = _relax(g_old, g, momentum)
            if accelerated:
                g = anderson.step(g_old, g)
            state.set_g(g)
        else:
            state.v = v
        f_old = state.f() if relaxed else None
        rows = state.rows()
        state.u = state.f_update(rows)
        if f_old is not None:
            state.set_f(_relax(f_old, state.f(), momentum))
        self.columns = state.columns()

    def error(self, norm: float) -> torch.Tensor:
        column = self.state.column_marginal(self.columns)
        g = self.state.g() if self.rho_b is not None else None
        return self._error(column, g, norm)

    def potentials(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.state.f(), self.state.g()


def iterate(geom: Geometry, a: torch.Tensor, b: torch.Tensor, tau_a: float, tau_b: float,
            eps: torch.Tensor, f: torch.Tensor, g: torch.Tensor, *, threshold: float,
            max_iterations: int, min_iterations: int, inner_iterations: int,
            norm_error: float, momentum: float | None, anderson: int | None,
            epsilon_schedule: tuple[float, float] | None, scaling: bool, stabilize: bool,
            early_stop: bool, progress: bool
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Run the iterations; returns (f, g, errors (B, num_checks), iterations run).

    ``scaling`` selects :class:`ScalingSteps` once epsilon is final (``stabilize=False``:
    kernel mode); ``early_stop=False`` runs exactly ``max_iterations`` with no
    data-dependent control flow in the log-domain steps."""
    accelerator = Anderson(anderson) if anderson else None
    steps: LogDomainSteps | ScalingSteps
    if scaling and epsilon_schedule is None:
        steps = ScalingSteps(geom, a, b, tau_a, tau_b, eps, f, g, stabilize)
    else:
        steps = LogDomainSteps(geom, a, b, tau_a, tau_b, eps, f, g, epsilon_schedule)
    bar = tqdm(total=max_iterations, desc="sinkhorn", leave=False) if progress else None
    errors = []
    iteration = 0
    while True:
        if iteration > 0 and (iteration % inner_iterations == 0
                              or iteration == max_iterations):
            error = steps.error(norm_error) if steps.final else \
                torch.full_like(eps, math.inf)
            errors.append(error)
            if early_stop:
                worst = float(error.detach().max())
                if bar is not None:
                    bar.update(iteration - bar.n)
                    bar.set_postfix(error=f"{worst:.2e}")
                if iteration >= min_iterations and (worst < threshold or math.isnan(worst)):
                    break
        if iteration == max_iterations:
            break
        steps.step(iteration, momentum, accelerator)
        iteration += 1
        if scaling and isinstance(steps, LogDomainSteps) and steps.final:
            steps = ScalingSteps(geom, a, b, tau_a, tau_b, eps, *steps.potentials(),
                                 stabilize)
    if bar is not None:
        bar.close()
    if not errors:
        errors.append(steps.error(norm_error))
    f, g = steps.potentials()
    return f, g, torch.stack(errors, dim=-1), iteration
