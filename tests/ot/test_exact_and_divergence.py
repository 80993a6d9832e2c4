"""exact_ot against an assignment oracle, and the Sinkhorn divergence's properties."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from lutece.ot import Euclidean, PointCloud, SqEuclidean, exact_ot, sinkhorn_divergence

from .helpers import random_problem


def test_exact_ot_with_uniform_weights_is_an_assignment():
    # with n = m and uniform weights an optimal plan is a permutation / n (Birkhoff)
    x, y, _, _ = random_problem(12, 12)
    cost = PointCloud(x, y).cost_matrix
    uniform = torch.full((12,), 1 / 12, dtype=cost.dtype)
    out = exact_ot(uniform, uniform, cost)
    rows, cols = linear_sum_assignment(cost.numpy())
    assert np.isclose(float(out.cost), cost.numpy()[rows, cols].sum() / 12, rtol=1e-12)
    torch.testing.assert_close(out.plan.sum(1), uniform)
    # dual feasibility and complementary slackness
    slack = cost - out.f[:, None] - out.g[None, :]
    assert float(slack.min()) > -1e-10
    assert float((slack * out.plan).abs().max()) < 1e-12


def test_exact_ot_batched_and_dtype():
    x, y, a, b = random_problem(5, 7, batch=3, dtype=torch.float32)
    cost = PointCloud(x, y).cost_matrix
    out = exact_ot(a, b, cost)
    assert out.cost.shape == (3,) and out.plan.shape == (3, 5, 7)
    assert out.plan.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(out.cost[i], exact_ot(a[i], b[i], cost[i]).cost)


@pytest.mark.parametrize(("args", "message"), [
    ((torch.ones(3) / 3, torch.ones(4) / 4, torch.rand(3, 5)), "shapes do not match"),
    ((torch.ones(3) / 3, torch.ones(4) / 2, torch.rand(3, 4)), "sum\\(a\\) must equal"),
    ((-torch.ones(3) / 3, -torch.ones(4) / 4, torch.rand(3, 4)), ">= 0"),
    ((torch.ones(3) / 3, torch.ones(4) / 4, torch.full((3, 4), float("nan"))), "NaN"),
    ((torch.ones(3) / 3, torch.ones(4) / 4, torch.rand(4)), "at least 2 dimension"),
])
def test_exact_ot_errors(args, message):
    with pytest.raises(ValueError, match=message):
        exact_ot(*args)


@pytest.mark.parametrize("cost_fn", [SqEuclidean(), Euclidean()])
def test_divergence_is_zero_for_equal_measures_and_positive_otherwise(cost_fn):
    x, y, a, b = random_problem(20, 25)
    same = sinkhorn_divergence(x, x, a, a, cost_fn=cost_fn, epsilon=0.05, threshold=1e-9)
    assert abs(float(same)) < 1e-8
    different = sinkhorn_divergence(x, y, a, b, cost_fn=cost_fn, epsilon=0.05,
                                    threshold=1e-9)
    assert float(different) > 1e-3


@settings(max_examples=15, deadline=None)
@given(shift=st.floats(0.01, 2.0), epsilon=st.floats(0.05, 1.0), seed=st.integers(0, 100))
def test_divergence_is_non_negative_and_grows_with_a_translation(shift, epsilon, seed):
    x, _, a, _ = random_problem(10, 10, seed=seed)
    options = {"epsilon": epsilon, "threshold": 1e-8, "max_iterations": 20_000}
    near = sinkhorn_divergence(x, x + shift, a, a, **options)
    far = sinkhorn_divergence(x, x + 2 * shift, a, a, **options)
    assert float(near) > 0
    assert float(far) > float(near)


def test_divergence_of_a_translation_is_the_squared_shift():
    # for the squared-Euclidean cost, translating a measure by t gives S = |t|^2 exactly
    # (the cross problem is the self problem plus <C shift> terms that add |t|^2)
    x, _, a, _ = random_problem(15, 15)
    shift = torch.tensor([0.3, -0.2], dtype=x.dtype)
    value = sinkhorn_divergence(x, x + shift, a, a, epsilon=0.05, threshold=1e-10)
    torch.testing.assert_close(value, shift.pow(2).sum(), rtol=1e-6, atol=1e-9)


def test_divergence_gradient_flow_step_decreases_it():
    x, y, _, _ = random_problem(30, 30)
    x = x.clone().requires_grad_(True)
    value = sinkhorn_divergence(x, y, epsilon=0.01)
    (gradient,) = torch.autograd.grad(value, x)
    moved = sinkhorn_divergence(x.detach() - 10 * gradient, y, epsilon=0.01)
    assert float(moved) < float(value.detach())


def test_divergence_batched_and_outputs():
    x, y, a, b = random_problem(8, 9, batch=2)
    value, outputs = sinkhorn_divergence(x, y, a, b, epsilon=0.1, threshold=1e-10,
                                         return_outputs=True)
    assert value.shape == (2,) and len(outputs) == 3
    for i in range(2):
        torch.testing.assert_close(value[i], sinkhorn_divergence(x[i], y[i], a[i], b[i],
                                                                 epsilon=0.1, threshold=1e-10))
