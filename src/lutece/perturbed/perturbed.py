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

import torch

from .._validation import check_choice, check_finite, check_floating, check_tensor
from .noise import NOISES, noise_score, sample_noise

__all__ = ["perturbed", "PerturbedOptimizer"]

Solver = Callable[[torch.Tensor], torch.Tensor]


def check_perturbation_args(fn: str, num_samples: object, sigma: object, noise: object,
                            event_ndim: object, chunk_size: object = None) -> None:
    """Validate the configuration shared by perturbed() and FenchelYoungLoss."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"{fn}: num_samples must be an int >= 1, got {num_samples!r}")
    if (isinstance(sigma, bool) or not isinstance(sigma, (int, float))
            or not math.isfinite(sigma) or sigma <= 0):
        raise ValueError(f"{fn}: sigma must be a finite number > 0, got {sigma!r}")
    check_choice(fn, "noise", noise, NOISES)
    if isinstance(event_ndim, bool) or not isinstance(event_ndim, int) or event_ndim < 0:
        raise ValueError(f"{fn}: event_ndim must be an int >= 0, got {event_ndim!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
            chunk_size, int) or chunk_size < 1):
        raise ValueError(f"{fn}: chunk_size must be None or an int >= 1, got {chunk_size!r}")


def check_scores(fn: str, theta: object, event_ndim: int) -> torch.Tensor:
    theta = check_tensor(fn, "theta", theta, min_ndim=event_ndim)
    check_floating(fn, "theta", theta)
    return check_finite(fn, "theta", theta)


def solve_perturbed(
    fn: str,
    solver: Solver,
    theta: torch.Tensor,
    *,
    num_samples: int,
    sigma: float,
    noise: str,
    sign: float,
    chunk_size: int | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw Z (num_samples, *theta.shape) and solve at theta + sign * sigma * Z, in batched
    solver calls of at most ``chunk_size`` samples. Returns (solutions, Z), solutions of
    shape (num_samples, *theta.shape[:-event_ndim], *decision shape) in theta's dtype."""
    z = sample_noise(noise, (num_samples, *theta.shape), dtype=theta.dtype,
                     device=theta.device, generator=generator)
    chunk = num_samples if chunk_size is None else chunk_size
    solutions = []
    with torch.no_grad():
        for start in range(0, num_samples, chunk):
            perturbed_theta = theta.detach() + (sign * sigma) * z[start:start + chunk]
            solution = solver(perturbed_theta)
            if not isinstance(solution, torch.Tensor):
                raise TypeError(f"{fn}: the solver must return a tensor, got "
                                f"{type(solution).__name__}")
            solutions.append(solution)
    y = torch.cat(solutions) if len(solutions) > 1 else solutions[0]
    return y.to(theta.dtype), z


def check_solution_shape(fn: str, y: torch.Tensor, expected_leading: tuple[int, ...],
                         what: str) -> None:
    if tuple(y.shape[:len(expected_leading)]) != tuple(expected_leading):
        raise ValueError(
            f"{fn}: the solver returned shape {tuple(y.shape)} for {what}; its leading "
            f"dimensions must be the batch dimensions {tuple(expected_leading)}")


class _PerturbedFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, theta, config):
        optimizer: PerturbedOptimizer = config
        batch_shape = theta.shape[:theta.ndim - optimizer.event_ndim]
        y, z = solve_perturbed(
            "perturbed", optimizer.solver, theta, num_samples=optimizer.num_samples,
            sigma=optimizer.sigma, noise=optimizer.noise, sign=optimizer.sign,
            chunk_size=optimizer.chunk_size, generator=optimizer.generator)
        check_solution_shape("perturbed", y, (optimizer.num_samples, *batch_shape),
                             f"perturbed scores of shape {tuple(theta.shape)}")
        if optimizer.control_variate:
            # Leave-one-out baseline: y_n minus the mean of the other samples, which is
            # independent of Z_n, so the estimate stays unbiased (E[grad nu(Z)] = 0).
            # y_n - mean_{m != n} y_m = N / (N - 1) (y_n - mean_m y_m).
            n = optimizer.num_samples
            centered = (y - y.mean(dim=0, keepdim=True)) * (n / (n - 1))
        else:
            centered = y
        ctx.save_for_backward(centered, noise_score(optimizer.noise, z))
        ctx.batch_ndim = len(batch_shape)
        ctx.scale = optimizer.sign / (optimizer.sigma * optimizer.num_samples)
        return y.mean(dim=0)

    @staticmethod
    def backward(ctx, grad_output):
        centered, score = ctx.saved_tensors
        # <y_n, g> over the decision dimensions: (num_samples, *batch)
        decision_dims = tuple(range(1 + ctx.batch_ndim, centered.ndim))
        inner = (centered * grad_output.unsqueeze(0)).sum(dim=decision_dims)
        inner = inner.reshape(inner.shape + (1,) * (score.ndim - inner.ndim))
        return (inner * score).sum(dim=0) * ctx.scale, None


class PerturbedOptimizer:
    """Callable returned by :func:`perturbed`; see there. Holds only configuration."""

    def __init__(self, solver: Solver, *, num_samples: int, sigma: float, noise: str,
                 maximize: bool, event_ndim: int, chunk_size: int | None,
                 control_variate: bool, generator: torch.Generator | None) -> None:
        if not callable(solver):
            raise TypeError(f"perturbed: solver must be callable, got {type(solver).__name__}")
        check_perturbation_args("perturbed", num_samples, sigma, noise, event_ndim, chunk_size)
        if control_variate and num_samples < 2:
            raise ValueError("perturbed: control_variate needs num_samples >= 2, got "
                             f"{num_samples}")
        self.solver = solver
        self.num_samples = num_samples
        self.sigma = float(sigma)
        self.noise = noise
        self.maximize = bool(maximize)
        self.sign = 1.0 if maximize else -1.0
        self.event_ndim = event_ndim
        self.chunk_size = chunk_size
        self.control_variate = bool(control_variate)
        self.generator = generator

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        theta = check_scores("perturbed", theta, self.event_ndim)
        return _PerturbedFunction.apply(theta, self)

    def __repr__(self) -> str:
        name = getattr(self.solver, "__name__", type(self.solver).__name__)
        return (f"PerturbedOptimizer(solver={name}, num_samples={self.num_samples}, "
                f"sigma={self.sigma}, noise={self.noise!r}, maximize={self.maximize}, "
                f"event_ndim={self.event_ndim}, chunk_size={self.chunk_size}, "
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
    return PerturbedOptimizer(solver, num_samples=num_samples, sigma=sigma, noise=noise,
                              maximize=maximize, event_ndim=event_ndim, chunk_size=chunk_size,
                              control_variate=control_variate, generator=generator)
