"""Perturbed Fenchel-Young losses (Berthet et al., NeurIPS 2020, Section 4).

With F(theta) = E[max_{y'} <y', theta + sigma Z>] (convex, gradient y_sigma(theta)), the
Fenchel-Young loss of scores theta against a target decision y is

    L(theta; y) = F(theta) + Omega(y) - <theta, y>,     grad_theta L = y_sigma(theta) - y,

where Omega is the Fenchel dual of F. Omega(y) does not depend on theta and has no closed
form in general, so the value returned here is F(theta) - <theta, y>, estimated from the
same samples that give the gradient: the true loss up to the constant Omega(y). It is
therefore not 0 at a perfect prediction (with Gumbel noise and an argmax solver it equals
cross-entropy + Euler's gamma), but its gradient is exact in expectation and training
decreases it toward its minimum. For solvers that minimize (``maximize=False``),
L(c; y) = <c, y> - E[min_{y'} <y', c - sigma Z>], with gradient y - y_sigma(c).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validation import check_choice, check_finite, check_tensor
from .perturbed import Perturbation

__all__ = ["FenchelYoungLoss"]

REDUCTIONS = ("mean", "sum", "none")


class _FenchelYoungFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, y_true, p: Perturbation):
        y, z = p.solve(theta)
        p.check_solution_shape(y, (p.num_samples, *theta.shape),
                               f"scores of shape {tuple(theta.shape)} (a Fenchel-Young loss "
                               f"needs decisions shaped like the scores)")
        decision_dims = tuple(range(theta.ndim - p.event_ndim, theta.ndim))
        perturbed_theta = theta.unsqueeze(0) + (p.sign * p.sigma) * z
        optimal_value = (y * perturbed_theta).sum(dim=tuple(d + 1 for d in decision_dims))
        target_value = (theta * y_true).sum(dim=decision_dims)
        values = p.sign * (optimal_value.mean(dim=0) - target_value)
        ctx.save_for_backward(y.mean(dim=0), y_true, theta)
        ctx.sign = p.sign
        ctx.event_ndim = p.event_ndim
        return values

    @staticmethod
    def backward(ctx, grad_values):
        y_mean, y_true, theta = ctx.saved_tensors
        grad = grad_values.reshape(grad_values.shape + (1,) * ctx.event_ndim)
        grad_theta = ctx.sign * (y_mean - y_true) * grad
        grad_target = -ctx.sign * theta * grad if ctx.needs_input_grad[1] else None
        return grad_theta, grad_target, None


class FenchelYoungLoss(torch.nn.Module):
    """Perturbed Fenchel-Young loss ``loss(theta, y_true)``; see the module docstring.

    Args:
        solver: as in :func:`lutece.perturbed.perturbed`; it must return decisions shaped
            like its scores (one-hot vectors, masks, ranks, permutation matrices, paths).
        num_samples, sigma, noise, maximize, event_ndim, chunk_size, generator: as in
            :func:`lutece.perturbed.perturbed`.
        reduction: ``"mean"`` or ``"sum"`` over the leading (example) dimensions, or
            ``"none"`` for one value per example.

    Shapes: ``theta`` and ``y_true`` are (*batch, *event); the loss is (*batch) for
    ``"none"`` and a scalar otherwise. The gradient is y_sigma(theta) - y_true (signs flip
    for ``maximize=False``), computed without any Jacobian.
    """

    def __init__(self, solver: Callable[[torch.Tensor], torch.Tensor], *,
                 num_samples: int = 1000, sigma: float = 1.0, noise: str = "gaussian",
                 maximize: bool = True, event_ndim: int = 1, chunk_size: int | None = None,
                 generator: torch.Generator | None = None, reduction: str = "mean") -> None:
        super().__init__()
        self.perturbation = Perturbation.validated(
            "FenchelYoungLoss", solver, num_samples=num_samples, sigma=sigma, noise=noise,
            maximize=maximize, event_ndim=event_ndim, chunk_size=chunk_size,
            generator=generator)
        check_choice("FenchelYoungLoss", "reduction", reduction, REDUCTIONS)
        self.reduction = reduction

    def forward(self, theta: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        theta = self.perturbation.check_scores(theta)
        y_true = check_tensor("FenchelYoungLoss", "y_true", y_true)
        if y_true.shape != theta.shape:
            raise ValueError(
                f"FenchelYoungLoss: y_true must have theta's shape {tuple(theta.shape)}, "
                f"got {tuple(y_true.shape)}")
        y_true = check_finite("FenchelYoungLoss", "y_true", y_true.to(theta.dtype))
        values = _FenchelYoungFunction.apply(theta, y_true, self.perturbation)
        if self.reduction == "mean":
            return values.mean()
        if self.reduction == "sum":
            return values.sum()
        return values

    def extra_repr(self) -> str:
        return f"{self.perturbation.describe()}, reduction={self.reduction!r}"
