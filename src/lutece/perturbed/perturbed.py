"""Perturbed optimizers: differentiable versions of any discrete solver.

Berthet, Blondel, Teboul, Cuturi, Vert & Bach, "Learning with Differentiable Perturbed
Optimizers", NeurIPS 2020. For a solver y*(theta) = argmax_{y in C} <y, theta> and a noise Z
with density proportional to exp(-nu(z)),

    y_sigma(theta) = E[ y*(theta + sigma Z) ]                                  (eq. 1)
    J_theta y_sigma(theta) = E[ y*(theta + sigma Z) grad nu(Z)^T ] / sigma     (Prop. 3.1)

so the derivative needs only solver calls, never the solver's own derivative. For a solver
that minimizes (``maximize=False``: y*(c) = argmin <y, c>, e.g. shortest paths on costs),
the perturbation is c - sigma Z, so that E[argmin(c - Z)] with Gumbel noise is softmax(-c),
and the Jacobian changes sign accordingly.

What is cached between forward and backward: the solver's outputs for every sample and the
noise scores grad nu(Z), 2 x num_samples x |theta| numbers, so the backward pass calls the
solver no more (``chunk_size`` bounds the memory of each solver call, not of this cache).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._validation import check_choice, check_finite, check_floating, check_tensor
from .noise import NOISES, noise_score, sample_noise

__all__ = ["perturbed", "PerturbedOptimizer", "Perturbation"]

Solver = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Perturbation:
    """How a solver is perturbed: the configuration :func:`perturbed` and
    :class:`~lutece.perturbed.FenchelYoungLoss` share (see :func:`perturbed` for each field).
    Build it with :meth:`validated`, which checks every field once."""

    solver: Solver
    num_samples: int
    sigma: float
    noise: str
    maximize: bool
    event_ndim: int
    chunk_size: int | None
    generator: torch.Generator | None
    caller: str  # the public name that error messages start with

    @classmethod
    def validated(cls, caller: str, solver: object, *, num_samples: object, sigma: object,
                  noise: object, maximize: object, event_ndim: object, chunk_size: object,
                  generator: torch.Generator | None) -> Perturbation:
        if not callable(solver):
            raise TypeError(f"{caller}: solver must be callable, got {type(solver).__name__}")
        if (isinstance(num_samples, bool) or not isinstance(num_samples, int)
                or num_samples < 1):
            raise ValueError(f"{caller}: num_samples must be an int >= 1, got {num_samples!r}")
        if (isinstance(sigma, bool) or not isinstance(sigma, (int, float))
                or not math.isfinite(sigma) or sigma <= 0):
            raise ValueError(f"{caller}: sigma must be a finite number > 0, got {sigma!r}")
        check_choice(caller, "noise", noise, NOISES)
        if isinstance(event_ndim, bool) or not isinstance(event_ndim, int) or event_ndim < 0:
            raise ValueError(f"{caller}: event_ndim must be an int >= 0, got {event_ndim!r}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
                chunk_size, int) or chunk_size < 1):
            raise ValueError(
                f"{caller}: chunk_size must be None or an int >= 1, got {chunk_size!r}")
        return cls(solver, num_samples, float(sigma), noise, bool(maximize), event_ndim,
                   chunk_size, generator, caller)

    @property
    def sign(self) -> float:
        """+1 for argmax solvers (theta + sigma Z), -1 for argmin ones (theta - sigma Z)."""
        return 1.0 if self.maximize else -1.0

    def check_scores(self, theta: object) -> torch.Tensor:
        theta = check_tensor(self.caller, "theta", theta, min_ndim=self.event_ndim)
        check_floating(self.caller, "theta", theta)
        return check_finite(self.caller, "theta", theta)

    def solve(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw Z (num_samples, *theta.shape) and solve at theta + sign * sigma * Z, in
        batched solver calls of at most ``chunk_size`` samples. Returns (solutions, Z),
        solutions of shape (num_samples, *batch, *decision) in theta's dtype."""
        z = sample_noise(self.noise, (self.num_samples, *theta.shape), dtype=theta.dtype,
                         device=theta.device, generator=self.generator)
        chunk = self.num_samples if self.chunk_size is None else self.chunk_size
        y = None
        with torch.no_grad():
            for start in range(0, self.num_samples, chunk):
                stop = min(start + chunk, self.num_samples)
                solution = self.solver(torch.add(theta.detach(), z[start:stop],
                                                 alpha=self.sign * self.sigma))
                if not isinstance(solution, torch.Tensor):
                    raise TypeError(f"{self.caller}: the solver must return a tensor, got "
                                    f"{type(solution).__name__}")
                if chunk >= self.num_samples:
                    return solution.to(theta.dtype), z
                if y is None:  # filled chunk by chunk: no second copy as torch.cat would make
                    y = solution.new_empty((self.num_samples, *solution.shape[1:]),
                                           dtype=theta.dtype)
                if solution.shape[1:] != y.shape[1:] or solution.shape[0] != stop - start:
                    raise ValueError(
                        f"{self.caller}: the solver returned shape {tuple(solution.shape)} "
                        f"for a chunk of {stop - start} samples; expected "
                        f"({stop - start}, {', '.join(map(str, y.shape[1:]))})")
                y[start:stop] = solution
        return y, z

    def check_solution_shape(self, y: torch.Tensor, expected_leading: tuple[int, ...],
                             what: str) -> None:
        if tuple(y.shape[:len(expected_leading)]) != tuple(expected_leading):
            raise ValueError(
                f"{self.caller}: the solver returned shape {tuple(y.shape)} for {what}; its "
                f"leading dimensions must be the batch dimensions {tuple(expected_leading)}")

    def describe(self) -> str:
        name = getattr(self.solver, "__name__", type(self.solver).__name__)
        return (f"solver={name}, num_samples={self.num_samples}, sigma={self.sigma}, "
                f"noise={self.noise!r}, maximize={self.maximize}, "
                f"event_ndim={self.event_ndim}, chunk_size={self.chunk_size}")


class _PerturbedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, optimizer):
        p: Perturbation = optimizer.perturbation
        batch_shape = theta.shape[:theta.ndim - p.event_ndim]
        y, z = p.solve(theta)
        p.check_solution_shape(y, (p.num_samples, *batch_shape),
                               f"perturbed scores of shape {tuple(theta.shape)}")
        if optimizer.control_variate:
            # Leave-one-out baseline: y_n minus the mean of the other samples, which is
            # independent of Z_n, so the estimate stays unbiased (E[grad nu(Z)] = 0).
            # y_n - mean_{m != n} y_m = N / (N - 1) (y_n - mean_m y_m).
            n = p.num_samples
            centered = (y - y.mean(dim=0, keepdim=True)) * (n / (n - 1))
        else:
            centered = y
        ctx.save_for_backward(centered, noise_score(p.noise, z))
        ctx.batch_ndim = len(batch_shape)
        ctx.scale = p.sign / (p.sigma * p.num_samples)
        return y.mean(dim=0)

    @staticmethod
    def backward(ctx, grad_output):
        centered, score = ctx.saved_tensors
        # <y_n, g> over the decision dimensions: (num_samples, *batch)
        decision_dims = tuple(range(1 + ctx.batch_ndim, centered.ndim))
        inner = (centered * grad_output.unsqueeze(0)).sum(dim=decision_dims)
        # sum_n inner_n * score_n as one contraction (no num_samples x |theta| temporary)
        flat_score = score.reshape(score.shape[0], inner[0].numel(), -1)
        grad = torch.einsum("nb,nbd->bd", inner.reshape(inner.shape[0], -1), flat_score)
        return grad.reshape(score.shape[1:]) * ctx.scale, None


class PerturbedOptimizer:
    """Callable returned by :func:`perturbed`; see there. Holds only configuration."""

    def __init__(self, perturbation: Perturbation, control_variate: bool) -> None:
        if control_variate and perturbation.num_samples < 2:
            raise ValueError("perturbed: control_variate needs num_samples >= 2, got "
                             f"{perturbation.num_samples}")
        self.perturbation = perturbation
        self.control_variate = bool(control_variate)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return _PerturbedFunction.apply(self.perturbation.check_scores(theta), self)

    def __repr__(self) -> str:
        return (f"PerturbedOptimizer({self.perturbation.describe()}, "
                f"control_variate={self.control_variate})")


def perturbed(
    solver: Solver,
    *,
    num_samples: int = 1000,
    sigma: float = 1.0,
    noise: str = "gaussian",
    maximize: bool = True,
    event_ndim: int = 1,
    chunk_size: int | None = None,
    control_variate: bool = False,
    generator: torch.Generator | None = None,
) -> PerturbedOptimizer:
    """Make ``solver`` differentiable: theta -> E[solver(theta + sigma Z)] (eq. 1).

    Args:
        solver: maps scores (..., *event) to decisions (..., *decision) with the same
            leading batch dimensions (any of ``lutece.perturbed.solvers`` or your own); it is
            called on (num_samples, ...) at once, never differentiated, and runs under
            ``torch.no_grad``.
        num_samples: Monte Carlo samples per call (the paper's default is 1000; training
            often works with 3-10).
        sigma: noise amplitude; larger is smoother (and more biased).
        noise: ``"gaussian"`` or ``"gumbel"``.
        maximize: True for argmax solvers; False for argmin solvers (perturbs theta - sigma Z).
        event_ndim: trailing dimensions of ``theta`` forming one decision's scores (1 for a
            vector, 2 for a grid or a matrix).
        chunk_size: solve at most this many samples per solver call (bounds its memory).
        control_variate: center each sample's decision on the mean of the other samples
            in the Jacobian estimate. Unbiased (that mean is independent of the sample's
            noise and E[grad nu(Z)] = 0), it lowers the variance at any sigma and costs no
            solver call; needs num_samples >= 2. (jaxopt's baseline, solver(theta), only
            helps when sigma is small enough that most samples equal it.)
        generator: a ``torch.Generator`` for reproducible noise; None uses torch's global
            generator, like ``torch.randn``.

    Returns:
        A callable ``f(theta)`` returning the Monte Carlo estimate of y_sigma(theta), shape
        (..., *decision) in theta's dtype and device, with the Prop. 3.1 backward.

    Example:
        >>> soft_argmax = perturbed(argmax_one_hot, noise="gumbel", num_samples=10_000)
        >>> soft_argmax(torch.tensor([1.0, 2.0, 0.5]))  # ~ softmax([1, 2, 0.5])
    """
    perturbation = Perturbation.validated(
        "perturbed", solver, num_samples=num_samples, sigma=sigma, noise=noise,
        maximize=maximize, event_ndim=event_ndim, chunk_size=chunk_size, generator=generator)
    return PerturbedOptimizer(perturbation, control_variate)
