"""Linear optimal transport problems: a geometry, two weight vectors, marginal penalties."""

from __future__ import annotations

import math

import torch

from .._validation import check_finite, check_floating, check_tensor, data_checks_enabled
from .geometry import Geometry

__all__ = ["LinearProblem"]


class LinearProblem:
    """min_P <C, P> + epsilon KL(P | a b^T) + rho_a KL(P 1 | a) + rho_b KL(P^T 1 | b).

    Args:
        geom: a :mod:`lutece.ot.geometry` geometry (cost and epsilon).
        a: (n,) or (B, n) non-negative source weights; ``None`` means uniform 1/n.
        b: (m,) or (B, m) non-negative target weights; ``None`` means uniform 1/m.
        tau_a, tau_b: in (0, 1]. 1 keeps the marginal as a hard constraint (balanced OT,
            which needs sum a = sum b); tau < 1 relaxes it with a KL penalty of weight
            rho = epsilon tau / (1 - tau), i.e. tau = rho / (rho + epsilon) (OTT's convention,
            Sejourne et al. 2019).
    """

    def __init__(self, geom: Geometry, a: torch.Tensor | None = None,
                 b: torch.Tensor | None = None, tau_a: float = 1.0, tau_b: float = 1.0) -> None:
        fn = "LinearProblem"
        if not isinstance(geom, Geometry):
            raise TypeError(f"{fn}: geom must be a lutece.ot geometry, got "
                            f"{type(geom).__name__}")
        n, m = geom.shape
        self.geom = geom
        self.a = self._weights(fn, "a", a, n)
        self.b = self._weights(fn, "b", b, m)
        for name, tau in (("tau_a", tau_a), ("tau_b", tau_b)):
            if isinstance(tau, bool) or not isinstance(tau, (int, float)) \
                    or not 0 < tau <= 1:
                raise ValueError(f"{fn}: {name} must be in (0, 1], got {tau!r}")
        self.tau_a = float(tau_a)
        self.tau_b = float(tau_b)
        if self.is_balanced and data_checks_enabled():
            mass_a, mass_b = self.a.sum(-1), self.b.sum(-1)
            if not torch.allclose(mass_a, mass_b, rtol=1e-4, atol=0):
                raise ValueError(
                    f"{fn}: a balanced problem (tau_a = tau_b = 1) needs sum(a) == sum(b), "
                    f"got {_show(mass_a)} and {_show(mass_b)}; normalize the weights or "
                    "use tau_a, tau_b < 1 for unbalanced transport")

    def _weights(self, fn: str, name: str, value: torch.Tensor | None, size: int
                 ) -> torch.Tensor:
        geom = self.geom
        shape = (geom.num_problems, size)
        if value is None:
            return torch.full(shape, 1.0 / size, dtype=geom.dtype, device=geom.device)
        value = check_tensor(fn, name, value, min_ndim=1)
        check_floating(fn, name, value)
        expected = (geom.num_problems, size) if geom.batched else (size,)
        if tuple(value.shape) != expected:
            raise ValueError(f"{fn}: {name} must have shape {expected} to match the geometry "
                             f"{geom!r}, got {tuple(value.shape)}")
        check_finite(fn, name, value)
        if data_checks_enabled() and bool((value < 0).any()):
            raise ValueError(f"{fn}: {name} must be >= 0, got a minimum of "
                             f"{float(value.min())}")
        if data_checks_enabled() and bool((value.sum(-1) <= 0).any()):
            raise ValueError(f"{fn}: {name} must have positive total mass")
        value = value.to(geom.dtype)
        return value if geom.batched else value.unsqueeze(0)

    @property
    def is_balanced(self) -> bool:
        return self.tau_a == 1.0 and self.tau_b == 1.0

    def rho(self, eps: torch.Tensor, which: str) -> torch.Tensor:
        """(B,) the KL penalty weight of marginal ``which`` ("a" or "b"); inf if balanced."""
        tau = self.tau_a if which == "a" else self.tau_b
        if tau == 1.0:
            return torch.full_like(eps, math.inf)
        return eps * tau / (1 - tau)

    def __repr__(self) -> str:
        return (f"LinearProblem({self.geom!r}, tau_a={self.tau_a:g}, tau_b={self.tau_b:g})")


def _show(values: torch.Tensor) -> str:
    return f"{float(values[0]):.6g}" if values.numel() == 1 else str(values.tolist())
