"""Timing helpers shared by experiments and benchmarks: medians of torch.utils.benchmark."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.utils import benchmark


def median_seconds(fn: Callable[[], object], min_run_time: float = 0.2) -> float:
    """Median wall-clock seconds of one call of ``fn`` (after one warm-up call)."""
    fn()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    return timer.blocked_autorange(min_run_time=min_run_time).median


def forward_backward(op: Callable[[torch.Tensor], torch.Tensor],
                     x: torch.Tensor) -> Callable[[], object]:
    """A closure running ``op`` forward and backward (``autograd.grad`` of the sum)."""
    leaf = x.detach().requires_grad_()

    def run():
        return torch.autograd.grad(op(leaf).sum(), leaf)

    return run


def fitted_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """Slope of log(time) against log(n): ~1 for linear, ~1.1 for n log n over our ranges,
    ~2 for quadratic."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((a - mean_x) * (b - mean_y) for a, b in zip(xs, ys))
    variance = sum((a - mean_x) ** 2 for a in xs)
    return covariance / variance
