"""Unregularized optimal transport by POT's network simplex (``ot.emd``, Bonneel et al. 2011),
a mature C++ solver we depend on rather than rewrite, with gradients attached."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..._validation import check_finite, check_floating, check_tensor

__all__ = ["exact_ot", "ExactOTOutput"]


@dataclass
class ExactOTOutput:
    """``cost``: <C, P*>, () or (B,), differentiable w.r.t. the cost matrix (gradient P*) and
    the weights (gradients f, g: the dual potentials, centred so that <f, a> = <g, b>, as
    POT's ``emd2``); ``plan``: P*, (n, m) or (B, n, m); ``f``, ``g``: dual potentials with
    f_i + g_j <= C_ij and equality on the support of P*. ``plan``, ``f`` and ``g`` carry no
    gradient (they are piecewise constant in the inputs)."""

    cost: torch.Tensor
    plan: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor


class _ExactCost(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cost_matrix, a, b, plan, f, g):  # type: ignore[override]
        ctx.save_for_backward(plan, f, g)
        return (plan * cost_matrix).sum((-2, -1))

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        plan, f, g = ctx.saved_tensors
        scale = grad[..., None]
        return (grad[..., None, None] * plan, scale * f, scale * g, None, None, None)


def _solve_one(a: np.ndarray, b: np.ndarray, cost: np.ndarray, max_iterations: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import ot  # POT: a core dependency, imported lazily because it is slow to import

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        try:
            plan, log = ot.emd(a, b, cost, numItermax=max_iterations, log=True)
        except UserWarning as warning:
            raise RuntimeError(f"exact_ot: POT's network simplex did not finish: {warning}; "
                               "raise max_iterations") from None
    return plan, log["u"], log["v"]


def exact_ot(a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor, *,
             max_iterations: int = 100_000) -> ExactOTOutput:
    """Exact (unregularized) optimal transport: min_P <C, P> s.t. P 1 = a, P^T 1 = b.

    Args:
        a: (n,) or (B, n) non-negative weights; b: (m,) or (B, m), with sum a = sum b.
        cost: (n, m) or (B, n, m) cost matrix.
        max_iterations: network simplex iterations (POT's ``numItermax``).

    Solved on the CPU in float64 (one call per problem of a batch), returned in the cost's
    dtype and device.
    """
    fn = "exact_ot"
    for name, value, ndim in (("a", a, 1), ("b", b, 1), ("cost", cost, 2)):
        check_tensor(fn, name, value, min_ndim=ndim)
        check_floating(fn, name, value)
        check_finite(fn, name, value)
    batched = cost.ndim == 3
    if cost.ndim > 3 or a.ndim != cost.ndim - 1 or b.ndim != cost.ndim - 1:
        raise ValueError(f"{fn}: expected a (n,), b (m,), cost (n, m), each with the same "
                         f"optional leading batch dimension, got shapes {tuple(a.shape)}, "
                         f"{tuple(b.shape)}, {tuple(cost.shape)}")
    if a.shape[-1] != cost.shape[-2] or b.shape[-1] != cost.shape[-1] or (
            batched and not a.shape[0] == b.shape[0] == cost.shape[0]):
        raise ValueError(f"{fn}: shapes do not match: a {tuple(a.shape)}, b {tuple(b.shape)}, "
                         f"cost {tuple(cost.shape)}")
    if bool((a < 0).any()) or bool((b < 0).any()):
        raise ValueError(f"{fn}: a and b must be >= 0")
    mass_a, mass_b = a.sum(-1), b.sum(-1)
    if not torch.allclose(mass_a.double(), mass_b.double(), rtol=1e-6, atol=1e-12):
        raise ValueError(f"{fn}: sum(a) must equal sum(b), got {mass_a.tolist()} and "
                         f"{mass_b.tolist()}")
    a3 = a.reshape(-1, a.shape[-1]).detach().cpu().double().numpy()
    b3 = b.reshape(-1, b.shape[-1]).detach().cpu().double().numpy()
    c3 = cost.reshape(-1, *cost.shape[-2:]).detach().cpu().double().numpy()
    plans, fs, gs = [], [], []
    for a_np, b_np, c_np in zip(a3, b3, c3):
        # POT wants equal sums to machine precision: rescale b onto a's mass
        b_np = b_np * (a_np.sum() / b_np.sum())
        plan, f, g = _solve_one(np.ascontiguousarray(a_np), np.ascontiguousarray(b_np),
                                np.ascontiguousarray(c_np), max_iterations)
        plans.append(plan)
        fs.append(f)
        gs.append(g)

    def back(values: list[np.ndarray], like: torch.Tensor) -> torch.Tensor:
        stacked = torch.from_numpy(np.stack(values)).to(like.device, cost.dtype)
        return stacked if batched else stacked.squeeze(0)

    plan_t, f_t, g_t = back(plans, cost), back(fs, a), back(gs, b)
    value = _ExactCost.apply(cost, a, b, plan_t, f_t, g_t)
    return ExactOTOutput(cost=value, plan=plan_t, f=f_t, g=g_t)
