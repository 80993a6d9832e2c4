"""Sinkhorn under ``torch.compile``: the fixed-iteration solve as one opaque operator.

Traced op by op, a solve of k iterations unrolls into a graph of about 10 k nodes (minutes
of compilation for a few hundred iterations, measured) and loses the stabilized kernel
iterations, whose absorptions depend on values. As a ``torch.library`` custom op the solve is
one node of the graph (no graph break, compiled in seconds) that runs the eager solver, and
its gradient is the implicit one, through a second custom op. The geometry travels as its
tensors plus a spec string (:meth:`Geometry.compile_spec`); options travel as a string too.
"""

from __future__ import annotations

import math

import torch

from ..geometry import Geometry
from ..geometry.spec import geometry_from_spec
from ._implicit import ImplicitOptions, implicit_vjp
from ._iterations import iterate

__all__ = ["solve_compiled"]

_OPTION_NAMES = ("tau_a", "tau_b", "iterations", "inner_iterations", "norm_error", "lse_mode",
                 "momentum", "anderson", "cg_iterations", "cg_tolerance", "cg_ridge")


def _encode(values: dict[str, float]) -> str:
    return ";".join(f"{name}={values[name]!r}" for name in _OPTION_NAMES)


def _decode(text: str) -> dict[str, float]:
    pairs = (item.split("=", 1) for item in text.split(";"))
    return {name: float(value) for name, value in pairs}


def _num_checks(iterations: int, inner: int) -> int:
    """How many errors a fixed-iteration run records (every ``inner`` and at the end)."""
    return iterations // inner + (1 if iterations % inner else 0)


@torch.library.custom_op("lutece::sinkhorn_fixed", mutates_args=())
def _solve_op(spec: str, options: str, tensors: list[torch.Tensor], a: torch.Tensor,
              b: torch.Tensor, eps: torch.Tensor, scale: torch.Tensor, f: torch.Tensor,
              g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    values = _decode(options)
    geom = geometry_from_spec(spec, [t.detach() for t in tensors], eps, scale)
    iterations = int(values["iterations"])
    momentum = None if math.isnan(values["momentum"]) else values["momentum"]
    f_out, g_out, errors, _ = iterate(
        geom, a.detach(), b.detach(), values["tau_a"], values["tau_b"], eps, f, g,
        threshold=math.inf, max_iterations=iterations, min_iterations=iterations,
        inner_iterations=int(values["inner_iterations"]), norm_error=values["norm_error"],
        momentum=momentum, anderson=int(values["anderson"]) or None, epsilon_schedule=None,
        scaling=True, stabilize=bool(values["lse_mode"]), early_stop=False, progress=False)
    return f_out, g_out, errors


@_solve_op.register_fake
def _(spec, options, tensors, a, b, eps, scale, f, g):
    values = _decode(options)
    checks = _num_checks(int(values["iterations"]), int(values["inner_iterations"]))
    return torch.empty_like(f), torch.empty_like(g), a.new_empty((a.shape[0], checks))


@torch.library.custom_op("lutece::sinkhorn_fixed_backward", mutates_args=())
def _backward_op(spec: str, options: str, tensors: list[torch.Tensor], a: torch.Tensor,
                 b: torch.Tensor, eps: torch.Tensor, scale: torch.Tensor, f: torch.Tensor,
                 g: torch.Tensor, grad_f: torch.Tensor, grad_g: torch.Tensor
                 ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    values = _decode(options)
    geom = geometry_from_spec(spec, [t.detach() for t in tensors], eps, scale)
    implicit = ImplicitOptions(max_iterations=int(values["cg_iterations"]),
                               tolerance=values["cg_tolerance"], ridge=values["cg_ridge"])
    grad_a, grad_b, grad_geom = implicit_vjp(
        geom, geom._tensors(), f, g, a, b, eps, values["tau_a"], values["tau_b"], implicit,
        grad_f, grad_g, True, True, tuple(True for _ in tensors))
    assert grad_a is not None and grad_b is not None
    # a tensor the cost does not depend on (e.g. a grid axis with a constant cost) gets 0
    geometry = [torch.zeros_like(t) if part is None else part.to(t.dtype)
                for t, part in zip(tensors, grad_geom)]
    return geometry, grad_a, grad_b


@_backward_op.register_fake
def _(spec, options, tensors, a, b, eps, scale, f, g, grad_f, grad_g):
    return [torch.empty_like(t) for t in tensors], torch.empty_like(a), torch.empty_like(b)


def _setup_context(ctx, inputs, output) -> None:
    spec, options, tensors, a, b, eps, scale, _, _ = inputs
    f, g, _ = output
    ctx.spec, ctx.options = spec, options
    ctx.num_tensors = len(tensors)
    ctx.save_for_backward(a, b, eps, scale, f, g, *tensors)


def _backward(ctx, grad_f, grad_g, grad_errors):
    a, b, eps, scale, f, g, *tensors = ctx.saved_tensors
    grad_f = torch.zeros_like(f) if grad_f is None else grad_f
    grad_g = torch.zeros_like(g) if grad_g is None else grad_g
    grad_tensors, grad_a, grad_b = _backward_op(ctx.spec, ctx.options, tensors, a, b, eps,
                                                scale, f, g, grad_f, grad_g)
    return None, None, list(grad_tensors), grad_a, grad_b, None, None, None, None


_solve_op.register_autograd(_backward, setup_context=_setup_context)


def solve_compiled(geom: Geometry, spec: str, a: torch.Tensor, b: torch.Tensor,
                   tau_a: float, tau_b: float, eps: torch.Tensor, f: torch.Tensor,
                   g: torch.Tensor, *, iterations: int, inner_iterations: int,
                   norm_error: float, lse_mode: bool, momentum: float | None,
                   anderson: int | None, implicit: ImplicitOptions
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(f, g, errors) of a fixed-iteration solve, through the custom op."""
    options = _encode({
        "tau_a": tau_a, "tau_b": tau_b, "iterations": iterations,
        "inner_iterations": inner_iterations, "norm_error": norm_error,
        "lse_mode": float(lse_mode), "momentum": math.nan if momentum is None else momentum,
        "anderson": anderson or 0, "cg_iterations": implicit.max_iterations,
        "cg_tolerance": implicit.tolerance, "cg_ridge": implicit.ridge})
    return _solve_op(spec, options, list(geom._tensors()), a, b, eps, geom.cost_scale, f, g)
