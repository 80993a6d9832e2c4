"""Seeded random OT problems shared by the OT tests."""

from __future__ import annotations

import torch


def random_problem(n: int, m: int, d: int = 2, *, batch: int | None = None, seed: int = 0,
                   dtype: torch.dtype = torch.float64):
    """Points x (n, d), y (m, d) and positive weights a, b summing to 1 (with an optional
    leading batch dimension)."""
    generator = torch.Generator().manual_seed(seed)
    lead = () if batch is None else (batch,)
    x = torch.rand(*lead, n, d, generator=generator, dtype=dtype)
    y = (torch.randn(*lead, m, d, generator=generator, dtype=dtype) + 0.5) / 3
    a = torch.rand(*lead, n, generator=generator, dtype=dtype) + 0.1
    b = torch.rand(*lead, m, generator=generator, dtype=dtype) + 0.1
    return x, y, a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)
