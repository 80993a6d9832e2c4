"""Solvers: Sinkhorn (entropic) and the exact network simplex."""

from ._implicit import ImplicitOptions
from .exact import ExactOTOutput, exact_ot
from .sinkhorn import SinkhornOutput, sinkhorn

__all__ = ["sinkhorn", "SinkhornOutput", "ImplicitOptions", "exact_ot", "ExactOTOutput"]
