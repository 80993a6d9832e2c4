"""The stabilized scaling iterations against the exact log-sum-exp iterations.

The oracle is the same algorithm computed the slow way: ``implicit_diff=False`` runs the
exact log-domain updates (``LogDomainSteps``), the default runs matrix-vector products on a
re-referenced kernel (``ScalingSteps``). Iterate by iterate they must agree to rounding,
including on problems that force many absorptions, in float32 and float64.
"""

import math

import pytest
import torch

from lutece.ot import Geometry, LinearProblem, PointCloud, sinkhorn
from lutece.ot._numerics import negligible, stable_exp, stable_logsumexp
from lutece.ot.costs import Euclidean
from lutece.ot.solvers import _scaling

from .helpers import random_problem


def _both(problem, **kwargs):
    """(default scaling solve, exact log-domain solve) with the same options."""
    kwargs.setdefault("warn", False)
    fast = sinkhorn(problem, **kwargs)
    geom = problem.geom
    leaves = tuple(t.detach().clone().requires_grad_(True) for t in geom._tensors())
    exact_geom = geom._with_tensors(leaves)
    exact_problem = LinearProblem(exact_geom, problem.a if geom.batched else problem.a[0],
                                  problem.b if geom.batched else problem.b[0],
                                  tau_a=problem.tau_a, tau_b=problem.tau_b)
    exact = sinkhorn(exact_problem, implicit_diff=False, **kwargs)
    return fast, exact


def _far_apart(dtype, n=60, m=50, shift=3.0):
    x, y, a, b = random_problem(n, m, dtype=dtype, seed=3)
    return x, y + shift, a, b


def _count_builds(monkeypatch):
    counter = {"builds": 0}
    original = _scaling.DenseKernel.build

    def counting(self, *args, **kwargs):
        counter["builds"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_scaling.DenseKernel, "build", counting)
    return counter


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_many_absorptions_give_the_log_domain_iterates(dtype, monkeypatch):
    # clouds far apart and a small epsilon: potentials move by thousands of epsilons, so the
    # kernel has to be rebuilt many times; fixed iterations make the two runs comparable
    counter = _count_builds(monkeypatch)
    x, y, a, b = _far_apart(dtype)
    problem = LinearProblem(PointCloud(x, y, epsilon=2e-3), a, b)
    fast, exact = _both(problem, min_iterations=300, max_iterations=300)
    assert counter["builds"] > (10 if dtype == torch.float32 else 2)
    assert torch.isfinite(fast.f).all() and torch.isfinite(fast.g).all()
    tolerance = 1e-3 if dtype == torch.float32 else 1e-9
    # potentials are of order |shift|^2 = 9: compare them in units of epsilon
    scale = 2e-3
    torch.testing.assert_close(fast.f / scale, exact.f.detach() / scale, rtol=0,
                               atol=tolerance * 100)
    torch.testing.assert_close(fast.errors, exact.errors.detach(), rtol=1e-2 if
                               dtype == torch.float32 else 1e-7, atol=1e-7)


def test_converged_solutions_agree_for_unbalanced_zero_weights_and_accelerations():
    x, y, a, b = random_problem(30, 40)
    a, b = a.clone(), 1.5 * b
    a[[2, 7]] = 0
    b[5] = 0
    for tau_a, tau_b, options in ((1.0, 0.8, {}), (0.7, 0.9, {"momentum": 1.2}),
                                  (0.9, 0.9, {"anderson": 3})):
        problem = LinearProblem(PointCloud(x, y, epsilon=0.01), a, b, tau_a=tau_a,
                                tau_b=tau_b)
        fast, exact = _both(problem, threshold=1e-10, max_iterations=50_000, **options)
        assert bool(fast.converged) and bool(exact.converged)
        assert fast.f[2] == -math.inf and fast.g[5] == -math.inf
        torch.testing.assert_close(fast.matrix, exact.matrix.detach(), rtol=1e-6, atol=1e-12)


def test_batched_problems_with_different_epsilons():
    x, y, a, b = random_problem(20, 25, batch=3)
    cost = PointCloud(x, y).cost_matrix * torch.tensor([1.0, 30.0, 400.0],
                                                        dtype=x.dtype)[:, None, None]
    problem = LinearProblem(Geometry(cost, relative_epsilon="mean", epsilon=0.01), a, b)
    fast, exact = _both(problem, threshold=1e-9, max_iterations=20_000)
    assert bool(fast.converged.all())
    torch.testing.assert_close(fast.matrix, exact.matrix.detach(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("batch_size", [12, None])
def test_online_and_non_fused_kernels(batch_size):
    # online point clouds go through LazyKernel (soft c-transform references); a Euclidean
    # cost through the generic log-kernel blocks
    x, y, a, b = _far_apart(torch.float64, n=33, m=29, shift=1.0)
    problem = LinearProblem(PointCloud(x, y, epsilon=5e-3, cost_fn=Euclidean(),
                                       batch_size=batch_size), a, b)
    fast, exact = _both(problem, min_iterations=100, max_iterations=100)
    torch.testing.assert_close(fast.f, exact.f.detach(), rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(fast.g, exact.g.detach(), rtol=1e-9, atol=1e-10)


def test_kernel_mode_equals_log_mode_without_underflow():
    x, y, a, b = random_problem(25, 30)
    problem = LinearProblem(PointCloud(x, y, epsilon=0.1), a, b)
    kernel = sinkhorn(problem, lse_mode=False, threshold=1e-10)
    log = sinkhorn(problem, threshold=1e-10)
    torch.testing.assert_close(kernel.matrix, log.matrix)
    assert kernel.n_iters == log.n_iters


def test_stable_exp_and_logsumexp():
    for dtype in (torch.float32, torch.float64):
        floor = math.log(negligible(dtype))
        values = torch.tensor([-1e6, floor - 1.0, floor + 2.0, -3.0, 0.0, 2.5], dtype=dtype)
        out = stable_exp(values)
        assert out[0] == 0 and out[1] == 0
        torch.testing.assert_close(out[2:], torch.exp(values[2:]))
        torch.testing.assert_close(stable_exp(values.clone(), inplace=True), out)
        matrix = torch.randn(4, 9, dtype=dtype) * 300
        matrix[1] = -math.inf
        expected = torch.logsumexp(matrix, dim=1)
        torch.testing.assert_close(stable_logsumexp(matrix, 1), expected)
        with torch.no_grad():
            torch.testing.assert_close(stable_logsumexp(matrix, 1), expected)
