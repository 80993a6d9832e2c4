"""Tests of lutece.ot.low_rank_gromov_wasserstein (Scetbon, Peyre & Cuturi 2022).

Oracles: the GW energy summed over the (n, m, n, m) tensor on the materialized coupling (the
factored energy never forms it), the dense cost matrices (the factored path must agree), the
constraints of the factorization, POT's low-rank GW (``ot.gromov.lowrank_gromov_wasserstein_
samples``), the product coupling a b^T (a feasible point: the solver must improve on it) and
autograd through the brute-force energy for the envelope gradient.
"""

import math

import numpy as np
import pytest
import torch

from lutece.ot import (
    Geometry,
    LRGWOutput,
    PointCloud,
    low_rank_gromov_wasserstein,
)

ot = pytest.importorskip("ot")
DTYPE = torch.float64


def _brute_energy(c1, c2, coupling):
    """sum_ijkl (C1_ik - C2_jl)^2 T_ij T_kl over the full tensor."""
    loss = (c1[:, None, :, None] - c2[None, :, None, :]) ** 2
    return (loss * coupling[:, :, None, None] * coupling[None, None, :, :]).sum()


def _rotated_copy(n=40, seed=0):
    """A 3-D anisotropic cloud and a rotated, shuffled copy: GW's optimum is 0."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator, dtype=DTYPE) * torch.tensor([3.0, 2.0, 1.0],
                                                                         dtype=DTYPE)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=DTYPE))
    rotation = q * torch.sign(torch.diagonal(r))
    perm = torch.randperm(n, generator=generator)
    return x, x[perm] @ rotation.T, perm


def test_factored_energy_equals_the_brute_force_sum_and_marginals_hold():
    x, y, _ = _rotated_copy(12)
    y = y[:10]
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(12, generator=generator, dtype=DTYPE) + 0.5
    b = torch.rand(10, generator=generator, dtype=DTYPE) + 0.5
    a, b = a / a.sum(), b / b.sum()
    features_x = torch.randn(12, 2, generator=generator, dtype=DTYPE)
    features_y = torch.randn(10, 2, generator=generator, dtype=DTYPE)
    geom_xy = PointCloud(features_x, features_y)
    out = low_rank_gromov_wasserstein(PointCloud(x), PointCloud(y), 3, geom_xy=geom_xy,
                                      fused_penalty=0.7, a=a, b=b, max_iterations=30,
                                      warn=False)
    assert isinstance(out, LRGWOutput)
    plan = out.matrix
    torch.testing.assert_close(plan.sum(1), a, atol=1e-6, rtol=0)
    torch.testing.assert_close(plan.sum(0), b, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.q.sum(0), out.g, rtol=1e-9, atol=1e-12)
    quadratic = _brute_energy(PointCloud(x).cost_matrix, PointCloud(y).cost_matrix, plan)
    linear = (geom_xy.cost_matrix * plan).sum()
    torch.testing.assert_close(out.quadratic_cost, quadratic, rtol=1e-5, atol=0)
    torch.testing.assert_close(out.linear_cost, linear, rtol=1e-9, atol=0)
    torch.testing.assert_close(out.cost, quadratic + 0.7 * linear, rtol=1e-5, atol=0)
    assert out.costs.shape == out.errors.shape


def test_factored_and_dense_costs_follow_the_same_path():
    x, y, _ = _rotated_copy(30)
    kwargs = dict(seed=2, max_iterations=10, threshold=1e-300, warn=False)
    factored = low_rank_gromov_wasserstein(PointCloud(x), PointCloud(y), 4, **kwargs)
    dense = low_rank_gromov_wasserstein(Geometry(PointCloud(x).cost_matrix),
                                        Geometry(PointCloud(y).cost_matrix), 4, **kwargs)
    torch.testing.assert_close(factored.q, dense.q, rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(factored.r, dense.r, rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(factored.cost, dense.cost, rtol=1e-8, atol=0)


def test_improves_on_the_product_coupling_and_with_the_rank():
    x, y, _ = _rotated_copy(30)
    c1, c2 = PointCloud(x).cost_matrix, PointCloud(y).cost_matrix
    a = torch.full((30,), 1 / 30, dtype=DTYPE)
    product = float(_brute_energy(c1, c2, torch.outer(a, a)))
    costs = {}
    for rank in (2, 8):
        costs[rank] = np.mean([float(low_rank_gromov_wasserstein(
            PointCloud(x), PointCloud(y), rank, seed=seed, max_iterations=80,
            warn=False).cost) for seed in range(2)])
    assert costs[2] < 0.9 * product
    assert costs[8] < costs[2]


def test_not_worse_than_pot_low_rank_gw():
    x, y, _ = _rotated_copy(30, seed=3)
    c1, c2 = PointCloud(x).cost_matrix, PointCloud(y).cost_matrix
    rank = 6
    q, r, g = ot.gromov.lowrank_gromov_wasserstein_samples(x.numpy(), y.numpy(), rank=rank,
                                                           warn=False)[:3]
    pot = float(_brute_energy(c1, c2, torch.from_numpy((q / g) @ r.T)))
    ours = low_rank_gromov_wasserstein(PointCloud(x), PointCloud(y), rank, max_iterations=150,
                                       warn=False)
    assert float(_brute_energy(c1, c2, ours.matrix)) <= 1.05 * pot


def test_cost_gradient_is_the_envelope_gradient_of_the_energy():
    x, y, _ = _rotated_copy(10)
    x = x.clone().requires_grad_()
    out = low_rank_gromov_wasserstein(PointCloud(x), PointCloud(y), 3, max_iterations=20,
                                      warn=False)
    grad, = torch.autograd.grad(out.cost, x)
    plan = out.matrix.detach()
    x_again = x.detach().clone().requires_grad_()
    brute = _brute_energy(PointCloud(x_again).cost_matrix, PointCloud(y).cost_matrix, plan)
    expected, = torch.autograd.grad(brute, x_again)
    # up to the marginal error of the plan (l1 <= 1e-6), amplified by C^2 in (C1 o C1) a
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-3 * float(expected.abs().max()))


def test_linear_memory_large_point_clouds():
    n = 100_000  # an (n, n) float32 cost would need 40 GB
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=generator)
    y = torch.randn(n, 3, generator=generator) * 2
    out = low_rank_gromov_wasserstein(PointCloud(x), PointCloud(y), 4, max_iterations=2,
                                      inner_iterations=1, threshold=1e-300, warn=False)
    assert out.q.shape == (n, 4) and out.n_iters == 2
    assert torch.isfinite(out.cost)


def test_warns_when_not_converged():
    x, y, _ = _rotated_copy(20)
    with pytest.warns(RuntimeWarning, match="low_rank_gromov_wasserstein: did not converge"):
        low_rank_gromov_wasserstein(PointCloud(x), PointCloud(y), 3, max_iterations=2,
                                    threshold=1e-300)


def _error_cases():
    x, y, _ = _rotated_copy(12)
    return [
        ({"geom_xx": x}, TypeError, "geom_xx must be a lutece.ot geometry"),
        ({"geom_xx": PointCloud(x, x[:5])}, ValueError, r"geom_xx must be square"),
        ({"geom_yy": PointCloud(y.float())}, TypeError, "must share dtype and device"),
        ({"geom_xy": PointCloud(x[:5], y)}, ValueError, r"geom_xy must have shape \(12, 12\)"),
        ({"rank": 0}, ValueError, r"rank must be an int in \[1, min\(n, m\)\] = \[1, 12\]"),
        ({"rank": 13}, ValueError, "rank must be an int"),
        ({"fused_penalty": 0.0}, ValueError, "fused_penalty must be a finite number > 0"),
        ({"gamma": math.inf}, ValueError, "gamma must be a finite number > 0"),
        ({"epsilon": -1.0}, ValueError, "epsilon must be a finite number >= 0"),
        ({"threshold": 0.0}, ValueError, "threshold must be a finite number > 0"),
        ({"max_iterations": 0}, ValueError, "max_iterations must be an int >= 1"),
        ({"init": "kmeans"}, ValueError, "init"),
        ({"a": torch.ones(5, dtype=DTYPE)}, ValueError, r"a must have shape \(12,\)"),
        ({"b": -torch.ones(12, dtype=DTYPE)}, ValueError, "b must be >= 0"),
        ({"b": torch.full((12,), 2 / 12, dtype=DTYPE)}, ValueError, "same total mass"),
    ]


@pytest.mark.parametrize("index", range(len(_error_cases())))
def test_errors(index):
    kwargs, error, message = _error_cases()[index]
    x, y, _ = _rotated_copy(12)
    arguments = {"geom_xx": PointCloud(x), "geom_yy": PointCloud(y), "rank": 3, **kwargs}
    with pytest.raises(error, match=message):
        low_rank_gromov_wasserstein(arguments.pop("geom_xx"), arguments.pop("geom_yy"),
                                    arguments.pop("rank"), **arguments)
