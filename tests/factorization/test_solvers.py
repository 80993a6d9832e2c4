"""The unrolled inner solvers: Lee-Seung NMF (monotone objective, nonnegativity, exact
recovery of a nonnegative low-rank matrix, masked entries ignored, differentiable) and
ridge ALS (exact low-rank recovery, matrix completion, differentiable)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from lutece.factorization import alternating_least_squares, nmf


def low_rank(d: int, n: int, r: int, seed: int, positive: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(d, r, generator=generator, dtype=torch.float64)
    v = torch.rand(r, n, generator=generator, dtype=torch.float64)
    if not positive:
        u, v = u - 0.5, v - 0.5
    return u @ v


def test_nmf_objective_never_increases_and_factors_stay_nonnegative():
    x = low_rank(12, 20, 3, 0, positive=True) + 0.05
    generator = torch.Generator().manual_seed(1)
    u, v = nmf(x, 3, iterations=0, generator=generator)
    previous = float((x - u @ v).pow(2).sum())
    for _ in range(30):
        u, v = nmf(x, 3, iterations=1, init=(u, v))
        value = float((x - u @ v).pow(2).sum())
        assert value <= previous * (1 + 1e-12)
        previous = value
    assert bool((u >= 0).all()) and bool((v >= 0).all())


def test_nmf_recovers_a_nonnegative_low_rank_matrix():
    x = low_rank(15, 25, 2, 2, positive=True)
    u, v = nmf(x, 2, iterations=2000, generator=torch.Generator().manual_seed(0))
    assert float((x - u @ v).norm() / x.norm()) < 1e-2


def test_nmf_ignores_unobserved_entries():
    x = low_rank(8, 10, 2, 3, positive=True)
    mask = torch.rand(8, 10, generator=torch.Generator().manual_seed(4)) > 0.3
    garbage = torch.where(mask, x, torch.full_like(x, 1e6))
    start = (torch.full((8, 2), 0.5, dtype=torch.float64),
             torch.full((2, 10), 0.5, dtype=torch.float64))
    first = nmf(x, 2, weight=mask, iterations=20, init=start)
    second = nmf(garbage, 2, weight=mask, iterations=20, init=start)
    torch.testing.assert_close(first, second)


def test_nmf_is_differentiable_through_its_updates():
    x = (low_rank(4, 5, 2, 5, positive=True) + 0.1).requires_grad_()
    start = (torch.full((4, 2), 0.7, dtype=torch.float64),
             torch.full((2, 5), 0.6, dtype=torch.float64))
    assert gradcheck(lambda x: torch.matmul(*nmf(x, 2, iterations=5, init=start)), (x,))


def test_nmf_errors():
    with pytest.raises(ValueError, match=">= 0 at observed entries"):
        nmf(-torch.ones(3, 3, dtype=torch.float64), 1)
    with pytest.raises(ValueError, match="rank must be an int >= 1"):
        nmf(torch.ones(3, 3, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="weight must be a tensor of x's shape"):
        nmf(torch.ones(3, 3, dtype=torch.float64), 1, weight=torch.ones(2, 3))


def test_als_recovers_and_completes_a_low_rank_matrix():
    x = low_rank(15, 30, 3, 6)
    u, v = alternating_least_squares(x, 3, ridge=1e-10, iterations=20)
    assert float((x - u @ v).norm() / x.norm()) < 1e-6
    mask = torch.rand(15, 30, generator=torch.Generator().manual_seed(7)) > 0.3
    observed = torch.where(mask, x, torch.zeros_like(x))
    u, v = alternating_least_squares(observed, 3, weight=mask.double(), ridge=1e-8,
                                     iterations=200)
    heldout = ~mask
    assert float((x - u @ v)[heldout].norm() / x[heldout].norm()) < 1e-3


def test_als_is_differentiable_through_its_sweeps():
    x = low_rank(4, 6, 2, 8).requires_grad_()
    start = (torch.ones(4, 2, dtype=torch.float64),
             torch.tensor([[1.0, 0.5, -0.3, 0.2, 0.9, -1.0], [0.1, -0.7, 0.4, 1.0, 0.3, 0.5]],
                          dtype=torch.float64))
    assert gradcheck(lambda x: torch.matmul(*alternating_least_squares(
        x, 2, ridge=0.1, iterations=3, init=start)), (x,))
