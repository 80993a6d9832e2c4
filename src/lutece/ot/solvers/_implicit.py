"""Implicit differentiation of the Sinkhorn fixed point (Luise et al. 2018; Cuturi et al.
2020, "Supervised quantile normalization", appendix; OTT's ``ImplicitDiff``).

At convergence the potentials satisfy R(f, g; C, a, b) = 0 with

    R_f = f - eps log a + tau_a eps LSE_j((g_j - C_ij) / eps),
    R_g = g - eps log b + tau_b eps LSE_i((f_i - C_ij) / eps).

Scaling the rows of dR/d(f, g) by diag(r / tau_a, c / tau_b) (r = P 1, c = P^T 1) gives the
symmetric matrix M = [[diag(r) / tau_a, P], [P^T, diag(c) / tau_b]]. For cotangents (v_f, v_g)
of (f, g), the vector-Jacobian products are, with M mu = (v_f, v_g):

    dL/dC_ij = P_ij (mu_f_i + mu_g_j),   dL/da = eps r mu_f / (tau_a a),
    dL/db = eps c mu_g / (tau_b b).

M is solved through its Schur complement on the g block,
S = diag(c) / tau_b - tau_a P^T diag(1 / r) P, by conjugate gradient with a Jacobi
preconditioner. In the balanced case S 1 = 0 (the potentials are defined up to
f + t, g - t): the right-hand side is projected onto 1^T x = 0 and so is the solution, which
leaves every gauge-invariant quantity's gradient unchanged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..geometry import Geometry

__all__ = ["ImplicitOptions", "attach_implicit_gradient", "implicit_vjp"]


@dataclass(frozen=True)
class ImplicitOptions:
    """Conjugate-gradient settings of the backward solve."""

    max_iterations: int = 500
    tolerance: float = 1e-6   # relative residual ||S x - rhs|| / ||rhs||
    ridge: float = 0.0        # added to the Schur complement's diagonal (times mean(c))


class _PlanOperator:
    """Applications of the plan P (B, n, m): materialized once for dense geometries, block by
    block for online ones."""

    def __init__(self, geom: Geometry, f: torch.Tensor, g: torch.Tensor, eps: torch.Tensor):
        self.geom, self.f, self.g, self.eps = geom, f, g, eps
        self.plan = None if geom.is_online else geom.plan_matrix(f, g, eps)

    def rows(self, v: torch.Tensor) -> torch.Tensor:
        """P v: (B, m) -> (B, n)."""
        if self.plan is not None:
            return (self.plan @ v.unsqueeze(-1)).squeeze(-1)
        return self.geom.apply_plan(self.f, self.g, self.eps, v, axis=1)

    def cols(self, v: torch.Tensor) -> torch.Tensor:
        """P^T v: (B, n) -> (B, m)."""
        if self.plan is not None:
            return (self.plan.transpose(1, 2) @ v.unsqueeze(-1)).squeeze(-1)
        return self.geom.apply_plan(self.f, self.g, self.eps, v, axis=0)

    def squared_col_sums(self, inv_r: torch.Tensor) -> torch.Tensor:
        """sum_i P_ij^2 / r_i, the Jacobi diagonal of the Schur complement's second term."""
        if self.plan is not None:
            return (self.plan.pow(2) * inv_r.unsqueeze(-1)).sum(1)
        out = torch.zeros_like(self.g)
        for rows, cols in self.geom._blocks():
            block = self.geom.plan_block(self.f, self.g, self.eps, rows, cols)
            out[:, cols] += (block.pow(2) * inv_r[:, rows, None]).sum(1)
        return out


def _conjugate_gradient(apply, rhs: torch.Tensor, diagonal: torch.Tensor, project: bool,
                        options: ImplicitOptions) -> torch.Tensor:
    """Batched preconditioned CG for a symmetric positive semi-definite operator."""

    def centre(x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(-1, keepdim=True) if project else x

    inverse_diagonal = torch.where(diagonal > 0, 1 / diagonal, torch.ones_like(diagonal))
    rhs = centre(rhs)
    x = torch.zeros_like(rhs)
    residual = rhs.clone()
    z = centre(residual * inverse_diagonal)
    direction = z.clone()
    rz = (residual * z).sum(-1)
    target = options.tolerance * rhs.norm(dim=-1)
    for _ in range(options.max_iterations):
        if bool((residual.norm(dim=-1) <= target).all()):
            return centre(x)
        image = apply(direction)
        curvature = (direction * image).sum(-1)
        step = torch.where(curvature > 0, rz / curvature.clamp_min(1e-300),
                           torch.zeros_like(rz))
        x = x + step[:, None] * direction
        residual = residual - step[:, None] * image
        z = centre(residual * inverse_diagonal)
        rz_next = (residual * z).sum(-1)
        beta = torch.where(rz > 0, rz_next / rz.clamp_min(1e-300), torch.zeros_like(rz))
        direction = z + beta[:, None] * direction
        rz = rz_next
    if not bool((residual.norm(dim=-1) <= 10 * target).all()):
        warnings.warn(
            f"sinkhorn: the implicit-differentiation solve did not reach a relative residual "
            f"of {options.tolerance:g} in {options.max_iterations} conjugate-gradient "
            "iterations; gradients may be inaccurate (raise implicit_options max_iterations, "
            "or use a larger epsilon)", RuntimeWarning, stacklevel=4)
    return centre(x)


def _solve_adjoint(plan: _PlanOperator, v_f: torch.Tensor, v_g: torch.Tensor,
                   tau_a: float, tau_b: float, options: ImplicitOptions
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """mu = M^{-1} (v_f, v_g); also returns the marginals r and c."""
    ones_m = torch.ones_like(plan.g)
    ones_n = torch.ones_like(plan.f)
    r = plan.rows(ones_m)
    c = plan.cols(ones_n)
    inv_r = torch.where(r > 0, 1 / r, torch.zeros_like(r))
    active_c = c > 0

    def schur(x: torch.Tensor) -> torch.Tensor:
        x = torch.where(active_c, x, 0.0)
        out = c * x / tau_b - tau_a * plan.cols(inv_r * plan.rows(x))
        if options.ridge:
            out = out + options.ridge * c.mean(-1, keepdim=True) * x
        return torch.where(active_c, out, x)

    rhs = v_g - tau_a * plan.cols(inv_r * v_f)
    diagonal = c / tau_b - tau_a * plan.squared_col_sums(inv_r)
    diagonal = torch.where(active_c, diagonal.clamp_min(0), torch.ones_like(diagonal))
    balanced = tau_a == 1.0 and tau_b == 1.0
    mu_g = _conjugate_gradient(schur, torch.where(active_c, rhs, 0.0), diagonal, balanced,
                               options)
    mu_f = tau_a * inv_r * (v_f - plan.rows(mu_g))
    return mu_f, mu_g, r, c


def implicit_vjp(geom: Geometry, geom_tensors: tuple[torch.Tensor, ...], f: torch.Tensor,
                 g: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: torch.Tensor,
                 tau_a: float, tau_b: float, options: ImplicitOptions,
                 grad_f: torch.Tensor, grad_g: torch.Tensor, needs_a: bool, needs_b: bool,
                 needs_geom: tuple[bool, ...]
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None,
                            list[torch.Tensor | None]]:
    """Vector-Jacobian products of the converged potentials (f, g) with (grad_f, grad_g):
    the gradients w.r.t. a, b and the geometry's tensors (those flagged as needed)."""
    detached = geom._with_tensors(tuple(t.detach() for t in geom_tensors))
    plan = _PlanOperator(detached, f, g, eps)
    mu_f, mu_g, r, c = _solve_adjoint(plan, grad_f, grad_g, tau_a, tau_b, options)
    e = eps[:, None]
    grad_a = grad_b = None
    if needs_a:
        grad_a = torch.where(a > 0, e * r * mu_f / (tau_a * a.clamp_min(1e-300)), 0.0)
    if needs_b:
        grad_b = torch.where(b > 0, e * c * mu_g / (tau_b * b.clamp_min(1e-300)), 0.0)
    grad_geom: list[torch.Tensor | None] = [None] * len(geom_tensors)
    wanted = [i for i, flag in enumerate(needs_geom) if flag]
    if wanted:
        # dL/dC_ij = P_ij (mu_f_i + mu_g_j), pulled back to the tensors the cost is made of.
        # torch.func.vjp rather than autograd.grad: it also runs inside a custom op (the
        # compiled path), whose implementation executes below the autograd dispatch keys.
        fixed = [t.detach() for t in geom_tensors]

        def weighted_cost(weight: torch.Tensor, rows: slice, cols: slice, *chosen):
            tensors = list(fixed)
            for i, tensor in zip(wanted, chosen):
                tensors[i] = tensor
            return (geom._with_tensors(tuple(tensors))._block(rows, cols) * weight).sum()

        for rows, cols in detached._blocks():
            with torch.no_grad():
                weight = detached.plan_block(f, g, eps, rows, cols) * (
                    mu_f[:, rows, None] + mu_g[:, None, cols])
            with torch.enable_grad():
                value, pullback = torch.func.vjp(
                    lambda *chosen, w=weight, r=rows, c=cols: weighted_cost(w, r, c, *chosen),
                    *[fixed[i] for i in wanted])
                parts = pullback(torch.ones_like(value))
            for i, part in zip(wanted, parts):
                grad_geom[i] = part if grad_geom[i] is None else grad_geom[i] + part
    return grad_a, grad_b, grad_geom


class _ImplicitSinkhorn(torch.autograd.Function):
    """Identity on the converged (f, g) in the forward pass; implicit VJP in the backward."""

    @staticmethod
    def forward(ctx, f, g, context, a, b, *geom_tensors):  # type: ignore[override]
        ctx.context = context
        ctx.save_for_backward(f, g, a, b, *geom_tensors)
        return f.clone(), g.clone()

    @staticmethod
    def backward(ctx, grad_f, grad_g):  # type: ignore[override]
        f, g, a, b, *geom_tensors = ctx.saved_tensors
        geom, eps, tau_a, tau_b, options = ctx.context
        needs = ctx.needs_input_grad
        grad_f = torch.zeros_like(f) if grad_f is None else grad_f
        grad_g = torch.zeros_like(g) if grad_g is None else grad_g
        grad_a, grad_b, grad_geom = implicit_vjp(
            geom, tuple(geom_tensors), f, g, a, b, eps, tau_a, tau_b, options, grad_f, grad_g,
            needs[3], needs[4], tuple(needs[5:]))
        return (None, None, None, grad_a, grad_b, *grad_geom)


def attach_implicit_gradient(f: torch.Tensor, g: torch.Tensor, geom: Geometry,
                             a: torch.Tensor, b: torch.Tensor, eps: torch.Tensor,
                             tau_a: float, tau_b: float, options: ImplicitOptions
                             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (f, g) whose gradient w.r.t. the cost's tensors, a and b is the implicit one.
    ``f`` and ``g`` must be the converged, detached potentials."""
    context = (geom, eps, tau_a, tau_b, options)
    return _ImplicitSinkhorn.apply(f, g, context, a, b, *geom._tensors())
