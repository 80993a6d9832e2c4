"""Ground costs between point clouds: c(x_i, y_j) for every pair, batched.

A cost is any callable ``cost(x, y) -> (..., n, m)`` for ``x`` of shape (..., n, d) and ``y``
of shape (..., m, d); the classes below are the usual ones. They are evaluated in blocks by
online geometries, so a user callable must work on any sub-blocks of rows of x and of y.
"""

from __future__ import annotations

import torch

__all__ = ["CostFn", "SqEuclidean", "Euclidean", "PNorm", "Cosine"]


class CostFn:
    """Base class: subclasses implement ``pairwise(x, y)``; ``cost(x, y)`` calls it."""

    def spec(self) -> str | None:
        """A string that rebuilds this cost through :func:`cost_from_spec` (None if none)."""
        return None

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.pairwise(x, y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


class SqEuclidean(CostFn):
    """c(x, y) = ||x - y||_2^2, computed as |x|^2 + |y|^2 - 2 <x, y> (one matrix product)
    on points centred at y's mean, and clamped at 0 against the cancellation of that
    expansion."""

    def spec(self) -> str | None:
        return "sqeuclidean"

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # translation invariant: centring limits the cancellation of the expansion
        center = y.mean(-2, keepdim=True)
        x, y = x - center, y - center
        x_norm = x.pow(2).sum(-1, keepdim=True)
        y_norm = y.pow(2).sum(-1).unsqueeze(-2)
        # In place on the fresh product: one (..., n, m) buffer instead of four.
        inner = x @ y.transpose(-1, -2)
        return inner.mul_(-2).add_(x_norm).add_(y_norm).clamp_min_(0)


class Euclidean(CostFn):
    """c(x, y) = ||x - y||_2, with a zero gradient where x = y (the norm is not
    differentiable there; a plain sqrt would give NaN, ott-jax PR #411)."""

    def spec(self) -> str | None:
        return "euclidean"

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        squared = SqEuclidean().pairwise(x, y)
        positive = squared > 0
        safe = torch.where(positive, squared, torch.ones_like(squared))
        return torch.where(positive, safe.sqrt(), torch.zeros_like(squared))


class PNorm(CostFn):
    """c(x, y) = ||x - y||_p = (sum_k |x_k - y_k|^p)^(1/p), p >= 1 (p = inf allowed).

    Materializes an (..., n, m, d) difference tensor, so prefer SqEuclidean or Euclidean for
    p = 2. Zero gradient where x = y, as for Euclidean.
    """

    def __init__(self, p: float) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 1:
            raise ValueError(f"PNorm: p must be a number >= 1, got {p!r}")
        self.p = float(p)

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        difference = (x.unsqueeze(-2) - y.unsqueeze(-3)).abs()
        if self.p == float("inf"):
            return difference.amax(-1)
        if self.p == 1:
            return difference.sum(-1)
        powered = difference.pow(self.p).sum(-1)
        positive = powered > 0
        safe = torch.where(positive, powered, torch.ones_like(powered))
        return torch.where(positive, safe.pow(1 / self.p), torch.zeros_like(powered))

    def __repr__(self) -> str:
        return f"PNorm(p={self.p:g})"

    def spec(self) -> str | None:
        return f"pnorm:{self.p!r}"


class Cosine(CostFn):
    """c(x, y) = 1 - <x, y> / (|x| |y|), in [0, 2]; zero vectors are rejected by the
    geometry (their direction is undefined)."""

    def spec(self) -> str | None:
        return "cosine"

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x_unit = x / x.norm(dim=-1, keepdim=True)
        y_unit = y / y.norm(dim=-1, keepdim=True)
        return (1 - x_unit @ y_unit.transpose(-1, -2)).clamp(0, 2)


def cost_from_spec(spec: str) -> CostFn:
    """The cost whose :meth:`CostFn.spec` is ``spec``."""
    if spec.startswith("pnorm:"):
        return PNorm(float(spec.split(":", 1)[1]))
    return {"sqeuclidean": SqEuclidean, "euclidean": Euclidean, "cosine": Cosine}[spec]()
