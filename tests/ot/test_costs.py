"""Costs against scipy's cdist, and their gradients where the norm is not differentiable."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from lutece.ot import Cosine, Euclidean, PNorm, SqEuclidean

from .helpers import random_problem


@pytest.mark.parametrize(("cost", "metric", "kwargs"), [
    (SqEuclidean(), "sqeuclidean", {}),
    (Euclidean(), "euclidean", {}),
    (PNorm(1), "minkowski", {"p": 1}),
    (PNorm(3), "minkowski", {"p": 3}),
    (PNorm(float("inf")), "chebyshev", {}),
    (Cosine(), "cosine", {}),
])
def test_costs_match_scipy_cdist(cost, metric, kwargs):
    x, y, _, _ = random_problem(7, 9, d=4)
    expected = cdist(x.numpy(), y.numpy(), metric=metric, **kwargs)
    np.testing.assert_allclose(cost(x, y).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_costs_are_batched():
    x, y, _, _ = random_problem(5, 6, d=3, batch=2)
    for cost in (SqEuclidean(), Euclidean(), PNorm(3), Cosine()):
        batched = cost(x, y)
        assert batched.shape == (2, 5, 6)
        torch.testing.assert_close(batched[1], cost(x[1], y[1]))


@pytest.mark.parametrize("cost", [Euclidean(), PNorm(3)])
def test_norm_costs_have_zero_gradient_at_coincident_points(cost):
    x = torch.tensor([[0.5, 0.2]], dtype=torch.float64, requires_grad=True)
    value = cost(x, x.detach().clone()).sum()
    (gradient,) = torch.autograd.grad(value, x)
    assert torch.isfinite(gradient).all() and (gradient == 0).all()


def test_costs_gradcheck():
    x, y, _, _ = random_problem(4, 5, d=3)
    x.requires_grad_(True)
    y.requires_grad_(True)
    for cost in (SqEuclidean(), Euclidean(), PNorm(3), Cosine()):
        assert torch.autograd.gradcheck(lambda p, q, c=cost: c(p, q), (x, y))


def test_pnorm_rejects_p_below_one():
    with pytest.raises(ValueError, match="p must be a number >= 1"):
        PNorm(0.5)


def test_cost_equality_and_repr():
    assert PNorm(2) == PNorm(2.0) and PNorm(2) != PNorm(3) and SqEuclidean() != Euclidean()
    assert repr(PNorm(3)) == "PNorm(p=3)"
