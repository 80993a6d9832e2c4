"""Tests of lutece.ot.solvers.low_rank (Scetbon, Cuturi & Peyre 2021, low-rank Sinkhorn).

Oracles: the constraints of the factorization (Q 1 = a, R 1 = b, Q^T 1 = R^T 1 = g), the
exact OT cost from POT's network simplex (``ot.emd2``), which lower-bounds every feasible plan,
and POT's own low-rank solver (``ot.lowrank.lowrank_sinkhorn``).
"""

import numpy as np
import pytest
import torch

from lutece.ot import Geometry, LinearProblem, LRCGeometry, PointCloud
from lutece.ot.solvers.low_rank import LRSinkhornOutput, low_rank_sinkhorn

ot = pytest.importorskip("ot")


def _clouds(n=60, m=50, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    y = torch.randn(m, 2, generator=generator, dtype=torch.float64) + 1.0
    a = torch.rand(n, generator=generator, dtype=torch.float64) + 0.5
    b = torch.rand(m, generator=generator, dtype=torch.float64) + 0.5
    return x, y, a / a.sum(), b / b.sum()


@pytest.mark.parametrize("init", ["random", "rank2", "kmeans"])
def test_marginals_of_factors_and_plan(init):
    x, y, a, b = _clouds()
    out = low_rank_sinkhorn(LinearProblem(PointCloud(x, y), a, b), 4, init=init, threshold=1e-12,
                            max_iterations=50, warn=False)
    assert isinstance(out, LRSinkhornOutput)
    assert out.q.shape == (60, 4) and out.r.shape == (50, 4) and out.g.shape == (4,)
    assert (out.q >= 0).all() and (out.r >= 0).all() and (out.g > 0).all()
    torch.testing.assert_close(out.q.sum(1), a, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.r.sum(1), b, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.q.sum(0), out.g, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(out.r.sum(0), out.g, atol=1e-12, rtol=1e-9)
    plan = out.matrix
    torch.testing.assert_close(plan.sum(1), a, atol=1e-6, rtol=0)
    torch.testing.assert_close(plan.sum(0), b, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.marginal(1), a, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.marginal(0), b, atol=1e-6, rtol=0)
    assert out.costs.shape == out.errors.shape and out.n_iters == 50


def test_primal_cost_bounds_and_decreases_with_rank():
    n = 40
    ranks = (2, 5, n)
    mean_costs = []
    exact_costs = []
    for seed in range(2):
        x, y, _, _ = _clouds(n, n, seed)
        geom = PointCloud(x, y)
        cost = geom.cost_matrix
        exact = ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n), cost.numpy())
        exact_costs.append(exact)
        row = []
        for rank in ranks:
            out = low_rank_sinkhorn(LinearProblem(geom), rank, max_iterations=300, seed=seed,
                                    warn=False)
            value = float(out.primal_cost)
            # the factored cost is <C, P> and P is feasible: never below the exact optimum
            assert value == pytest.approx(float((cost * out.matrix).sum()), rel=1e-9)
            assert value >= exact - 1e-6
            row.append(value)
        mean_costs.append(row)
    mean = np.mean(mean_costs, 0)
    exact = np.mean(exact_costs)
    assert mean[0] > mean[1] > mean[2] >= exact - 1e-6
    assert mean[2] - exact < 0.5 * (mean[0] - exact)


def test_factored_and_dense_paths_agree():
    x, y, a, b = _clouds(30, 25)
    factored = PointCloud(x, y)
    dense = Geometry(factored.cost_matrix.clone())
    kwargs = dict(init="random", seed=3, max_iterations=40, warn=False)
    out_f = low_rank_sinkhorn(LinearProblem(factored, a, b), 3, **kwargs)
    out_d = low_rank_sinkhorn(LinearProblem(dense, a, b), 3, **kwargs)
    torch.testing.assert_close(out_f.q, out_d.q, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(out_f.r, out_d.r, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(out_f.primal_cost, out_d.primal_cost)
    # and an LRCGeometry with explicit factors of the same cost
    center = y.mean(0)
    xc, yc = x - center, y - center
    left = torch.cat([xc.pow(2).sum(1, keepdim=True), torch.ones(30, 1, dtype=x.dtype),
                      -2 * xc], 1)
    right = torch.cat([torch.ones(25, 1, dtype=x.dtype), yc.pow(2).sum(1, keepdim=True),
                       yc], 1)
    out_l = low_rank_sinkhorn(LinearProblem(LRCGeometry(left, right), a, b), 3, **kwargs)
    torch.testing.assert_close(out_l.q, out_d.q, atol=1e-8, rtol=1e-6)


def test_lrc_geometry_bias_and_scale():
    generator = torch.Generator().manual_seed(1)
    left = torch.rand(20, 3, generator=generator, dtype=torch.float64)
    right = torch.rand(15, 3, generator=generator, dtype=torch.float64)
    geom = LRCGeometry(left, right, bias=0.5, scale_factor=2.0)
    dense = Geometry(geom.cost_matrix.clone())
    kwargs = dict(max_iterations=20, warn=False)
    out_l = low_rank_sinkhorn(LinearProblem(geom), 2, **kwargs)
    out_d = low_rank_sinkhorn(LinearProblem(dense), 2, **kwargs)
    torch.testing.assert_close(out_l.primal_cost, out_d.primal_cost)


def test_apply_matches_matrix():
    x, y, a, b = _clouds(30, 20)
    out = low_rank_sinkhorn(LinearProblem(PointCloud(x, y), a, b), 3, max_iterations=10,
                            warn=False)
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(20, 4, generator=generator, dtype=torch.float64)
    w = torch.randn(30, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(out.apply(v, axis=1), out.matrix @ v)
    torch.testing.assert_close(out.apply(v[:, 0]), out.matrix @ v[:, 0])
    torch.testing.assert_close(out.apply(w, axis=0), out.matrix.T @ w)


def test_close_to_pot_low_rank():
    n = 40
    x, y, _, _ = _clouds(n, n, seed=5)
    cost = PointCloud(x, y).cost_matrix.numpy()
    q, r, g = ot.lowrank.lowrank_sinkhorn(x.numpy(), y.numpy(), reg=0, rank=4,
                                          rescale_cost=False, numItermax=300, warn=False)[:3]
    pot_cost = float(np.sum(cost * ((q / g) @ r.T)))
    ours = float(low_rank_sinkhorn(LinearProblem(PointCloud(x, y)), 4, max_iterations=300,
                                   warn=False).primal_cost)
    exact = ot.emd2(np.full(n, 1 / n), np.full(n, 1 / n), cost)
    # both are local solutions of a non-convex problem: compare loosely
    assert ours >= exact - 1e-6
    assert ours <= 1.5 * pot_cost


def test_linear_memory_large_point_cloud():
    n = 100_000
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=generator)
    y = torch.randn(n, 2, generator=generator) + 1
    out = low_rank_sinkhorn(LinearProblem(PointCloud(x, y)), 5, max_iterations=3, threshold=1e-12,
                            inner_iterations=1, warn=False)
    assert out.q.shape == (n, 5) and out.r.shape == (n, 5) and out.g.shape == (5,)
    assert out.n_iters == 3
    assert torch.isfinite(out.primal_cost)
    assert torch.allclose(out.q.sum(0), out.g, rtol=1e-4)
    assert out.apply(torch.ones(n), axis=1).shape == (n,)


def test_warns_when_not_converged():
    x, y, a, b = _clouds(20, 20)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        low_rank_sinkhorn(LinearProblem(PointCloud(x, y), a, b), 3, max_iterations=2,
                          threshold=1e-12)


def test_errors():
    x, y, a, b = _clouds(10, 8)
    problem = LinearProblem(PointCloud(x, y), a, b)
    with pytest.raises(TypeError, match="problem must be a LinearProblem"):
        low_rank_sinkhorn(PointCloud(x, y), 2)
    for rank in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match=r"rank must be an int in \[1, min\(n, m\)\]"):
            low_rank_sinkhorn(problem, rank)
    for gamma in (0.0, -1.0, float("inf"), "10"):
        with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
            low_rank_sinkhorn(problem, 2, gamma=gamma)
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        low_rank_sinkhorn(problem, 2, epsilon=-0.1)
    with pytest.raises(ValueError, match="threshold must be a finite number > 0"):
        low_rank_sinkhorn(problem, 2, threshold=0)
    with pytest.raises(ValueError, match="max_iterations must be an int >= 1"):
        low_rank_sinkhorn(problem, 2, max_iterations=0)
    with pytest.raises(ValueError, match="inner_iterations must be an int >= 1"):
        low_rank_sinkhorn(problem, 2, inner_iterations=0)
    with pytest.raises(ValueError, match="init"):
        low_rank_sinkhorn(problem, 2, init="spectral")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        low_rank_sinkhorn(problem, 2, seed=-1)
    with pytest.raises(ValueError, match="init='kmeans' needs point coordinates"):
        low_rank_sinkhorn(LinearProblem(Geometry(problem.geom.cost_matrix)), 2, init="kmeans")
    unbalanced = LinearProblem(PointCloud(x, y), a, b, tau_a=0.9)
    with pytest.raises(NotImplementedError, match="unbalanced problems .* not supported yet"):
        low_rank_sinkhorn(unbalanced, 2)
    batched = LinearProblem(PointCloud(x[None], y[None]))
    with pytest.raises(NotImplementedError, match="batched geometries are not supported"):
        low_rank_sinkhorn(batched, 2)
    out = low_rank_sinkhorn(problem, 2, max_iterations=2, warn=False)
    with pytest.raises(ValueError, match="axis must be 0 or 1"):
        out.apply(torch.ones(8), axis=2)
    with pytest.raises(ValueError, match=r"v must be \(8,\) or \(8, k\)"):
        out.apply(torch.ones(10), axis=1)


def test_entropic_regularization_runs():
    x, y, a, b = _clouds(20, 20)
    out = low_rank_sinkhorn(LinearProblem(PointCloud(x, y), a, b), 3, epsilon=0.01,
                            max_iterations=30, warn=False)
    assert torch.isfinite(out.primal_cost)
    torch.testing.assert_close(out.q.sum(1), a, atol=1e-6, rtol=0)


def test_primal_cost_gradient_is_the_envelope_gradient():
    """Danskin: at a minimizer over a feasible set that does not depend on the points, the
    derivative of the optimal cost is that of <C(y), P> at fixed P. Checked against central
    finite differences of re-solved problems along random directions."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=generator, dtype=torch.float64)
    y = torch.randn(6, 2, generator=generator, dtype=torch.float64) + 1
    kwargs = dict(threshold=1e-8, max_iterations=3000, warn=False, init="rank2")

    def solve(points):
        return low_rank_sinkhorn(LinearProblem(PointCloud(x, points)), 2, **kwargs)

    live = y.clone().requires_grad_()
    out = solve(live)
    assert out.converged
    grad, = torch.autograd.grad(out.primal_cost, live)
    h = 1e-5
    for _ in range(2):
        direction = torch.randn(y.shape, generator=generator, dtype=torch.float64)
        finite_difference = (float(solve(y + h * direction).primal_cost)
                             - float(solve(y - h * direction).primal_cost)) / (2 * h)
        assert float((grad * direction).sum()) == pytest.approx(finite_difference, rel=1e-3)
