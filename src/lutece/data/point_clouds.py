"""Seeded point-cloud pairs for entropic OT benchmarks (the data of OTT's "OTT & POT"
tutorial), as numpy arrays so that every library (torch, POT, JAX) gets the same numbers."""

from __future__ import annotations

import numpy as np

__all__ = ["ot_benchmark_clouds", "mean_squared_distance"]


def ot_benchmark_clouds(n: int, d: int, seed: int = 0
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x ~ U[0, 1]^d and y = (N(0, I) + 0.5) / 5, n points each, with weights U[0, 1) + 0.1
    normalized to 1; all float32. Returns (x (n, d), y (n, d), a (n,), b (n,))."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d)).astype(np.float32)
    y = ((rng.normal(size=(n, d)) + 0.5) / 5).astype(np.float32)
    a = rng.uniform(size=n) + 0.1
    b = rng.uniform(size=n) + 0.1
    return x, y, (a / a.sum()).astype(np.float32), (b / b.sum()).astype(np.float32)


def mean_squared_distance(x: np.ndarray, y: np.ndarray) -> float:
    """mean over all pairs of |x_i - y_j|^2 in float64, in closed form without the n x m
    matrix: mean |x|^2 + mean |y|^2 - 2 <mean x, mean y>."""
    x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float((x64 ** 2).sum(1).mean() + (y64 ** 2).sum(1).mean()
                 - 2 * x64.mean(0) @ y64.mean(0))
