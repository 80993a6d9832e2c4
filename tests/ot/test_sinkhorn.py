"""Sinkhorn against POT (an independent implementation) on seeded problems, float64."""

import math
import warnings

import ot
import pytest
import torch

from lutece.ot import Geometry, LinearProblem, PointCloud, exact_ot, sinkhorn

from .helpers import random_problem

EPS = 0.05


def _solve(x, y, a, b, **kwargs):
    geom = PointCloud(x, y, epsilon=kwargs.pop("epsilon", EPS),
                      batch_size=kwargs.pop("batch_size", None))
    tau_a = kwargs.pop("tau_a", 1.0)
    tau_b = kwargs.pop("tau_b", 1.0)
    kwargs.setdefault("threshold", 1e-11)
    kwargs.setdefault("max_iterations", 20_000)
    return geom, sinkhorn(LinearProblem(geom, a, b, tau_a=tau_a, tau_b=tau_b), **kwargs)


def _kl(p, q):
    return (p * torch.log(p / q)).sum() - p.sum() + q.sum()


@pytest.mark.parametrize("lse_mode", [True, False])
def test_balanced_matches_pot_sinkhorn_log(lse_mode):
    x, y, a, b = random_problem(40, 55)
    geom, out = _solve(x, y, a, b, lse_mode=lse_mode)
    cost = geom.cost_matrix
    plan, log = ot.sinkhorn(a, b, cost, EPS, method="sinkhorn_log", stopThr=1e-11,
                            numItermax=20_000, log=True)
    assert bool(out.converged)
    torch.testing.assert_close(out.matrix, plan, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(out.f, EPS * log["log_u"], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(out.g, EPS * log["log_v"], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(out.primal_cost, (plan * cost).sum(), rtol=1e-5, atol=0)
    regularized = (plan * cost).sum() + EPS * _kl(plan, a[:, None] * b[None])
    torch.testing.assert_close(out.reg_ot_cost, regularized, rtol=1e-5, atol=0)


def test_unbalanced_matches_pot():
    x, y, a, b = random_problem(30, 45)
    b = 1.7 * b
    rho = 0.3
    tau = rho / (rho + EPS)
    geom, out = _solve(x, y, a, b, tau_a=tau, tau_b=tau)
    cost = geom.cost_matrix
    plan = ot.unbalanced.sinkhorn_unbalanced(a, b, cost, EPS, rho, reg_type="kl",
                                             stopThr=1e-12, numItermax=50_000)
    torch.testing.assert_close(out.matrix, plan, rtol=1e-5, atol=1e-12)
    primal = (plan * cost).sum() + EPS * _kl(plan, a[:, None] * b[None]) \
        + rho * _kl(plan.sum(1), a) + rho * _kl(plan.sum(0), b)
    torch.testing.assert_close(out.reg_ot_cost, primal, rtol=1e-5, atol=0)
    torch.testing.assert_close(out.primal_cost, (plan * cost).sum(), rtol=1e-5, atol=0)


def test_semi_relaxed_problem_keeps_the_hard_marginal():
    x, y, a, b = random_problem(20, 25)
    _, out = _solve(x, y, a, 2 * b, tau_b=0.5)
    torch.testing.assert_close(out.marginal(1), a)


def test_entropic_cost_tends_to_exact_ot():
    x, y, a, b = random_problem(30, 30)
    cost = PointCloud(x, y).cost_matrix
    exact = float(ot.emd2(a, b, cost))
    gaps, primal_gaps = [], []
    for epsilon in (1e-1, 1e-2, 1e-3):
        _, out = _solve(x, y, a, b, epsilon=epsilon, threshold=1e-9, max_iterations=100_000)
        gaps.append(abs(float(out.reg_ot_cost) - exact))
        primal_gaps.append(float(out.primal_cost) - exact)
    # the regularized cost's bias is about eps log(n); the plan's own cost converges faster
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 2e-3 * math.log(30)
    assert primal_gaps[0] > primal_gaps[1] > primal_gaps[2] >= -1e-9
    assert primal_gaps[2] < 1e-3 * exact
    assert math.isclose(float(exact_ot(a, b, cost).cost), exact, rel_tol=1e-10)


def test_online_mode_equals_dense_mode():
    x, y, a, b = random_problem(33, 21, d=3)
    _, dense = _solve(x, y, a, b)
    _, online = _solve(x, y, a, b, batch_size=8)
    torch.testing.assert_close(online.f, dense.f)
    torch.testing.assert_close(online.g, dense.g)
    torch.testing.assert_close(online.reg_ot_cost, dense.reg_ot_cost)
    torch.testing.assert_close(online.primal_cost, dense.primal_cost)
    assert online.n_iters == dense.n_iters


def test_batched_equals_looped():
    x, y, a, b = random_problem(15, 20, batch=3)
    geom = PointCloud(x, y, epsilon=EPS)
    out = sinkhorn(LinearProblem(geom, a, b), threshold=1e-10)
    assert out.f.shape == (3, 15) and out.matrix.shape == (3, 15, 20)
    assert out.converged.shape == (3,) and out.errors.shape[0] == 3
    for i in range(3):
        _, single = _solve(x[i], y[i], a[i], b[i], threshold=1e-10)
        torch.testing.assert_close(out.matrix[i], single.matrix, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(out.reg_ot_cost[i], single.reg_ot_cost)


@pytest.mark.parametrize("options", [{"momentum": 1.3}, {"anderson": 3},
                                     {"epsilon_schedule": (20.0, 0.8)}])
def test_accelerations_reach_the_same_solution(options):
    x, y, a, b = random_problem(30, 30)
    _, plain = _solve(x, y, a, b, epsilon=0.01, threshold=1e-9)
    _, fast = _solve(x, y, a, b, epsilon=0.01, threshold=1e-9, **options)
    assert bool(fast.converged)
    torch.testing.assert_close(fast.matrix, plain.matrix, rtol=1e-5, atol=1e-10)
    if "momentum" in options or "anderson" in options:
        assert fast.n_iters < plain.n_iters


def test_warm_start_converges_immediately():
    x, y, a, b = random_problem(25, 25)
    _, cold = _solve(x, y, a, b, threshold=1e-8)
    _, warm = _solve(x, y, a, b, threshold=1e-8, init=(cold.f, cold.g))
    assert warm.n_iters <= 10 < cold.n_iters


def test_fixed_iteration_mode_runs_exactly_that_many_iterations():
    x, y, a, b = random_problem(20, 20)
    _, out = _solve(x, y, a, b, min_iterations=35, max_iterations=35, threshold=1e-3)
    assert out.n_iters == 35 and out.errors.shape == (4,)
    _, reference = _solve(x, y, a, b, min_iterations=35, max_iterations=35, lse_mode=False)
    torch.testing.assert_close(out.f, reference.f)


def test_error_is_the_column_marginal_norm():
    x, y, a, b = random_problem(20, 24)
    for norm in (1, 2, math.inf):
        _, out = _solve(x, y, a, b, threshold=1e-30, max_iterations=30, norm_error=norm,
                        warn=False)
        residual = out.marginal(0) - b
        expected = residual.abs().max() if norm == math.inf else residual.norm(p=norm)
        torch.testing.assert_close(out.errors[-1], expected, rtol=1e-6, atol=1e-14)
        torch.testing.assert_close(out.marginal(1), a)  # the row marginal is exact


def test_non_convergence_is_reported_and_warned():
    x, y, a, b = random_problem(20, 20)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        _, out = _solve(x, y, a, b, epsilon=1e-3, threshold=1e-12, max_iterations=20)
    assert not bool(out.converged) and out.n_iters == 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _solve(x, y, a, b, epsilon=1e-3, threshold=1e-12, max_iterations=20, warn=False)


def test_kernel_mode_underflow_is_reported_not_silent():
    x, y, a, b = random_problem(20, 20)
    with pytest.warns(RuntimeWarning, match="lse_mode=True"):
        _, out = _solve(x * 30, y * 30, a, b, epsilon=1e-3, lse_mode=False,
                        max_iterations=50)
    assert not bool(out.converged)
    _, log_domain = _solve(x * 30, y * 30, a, b, epsilon=1e-1, max_iterations=50_000,
                           threshold=1e-6)
    assert bool(log_domain.converged)


def test_small_epsilon_in_float32_stays_finite():
    x, y, a, b = random_problem(200, 200, dtype=torch.float32)
    geom = PointCloud(x, y, epsilon=1e-3, relative_epsilon="mean")
    out = sinkhorn(LinearProblem(geom, a, b), threshold=1e-2, max_iterations=20_000)
    assert torch.isfinite(out.f).all() and torch.isfinite(out.reg_ot_cost)
    assert bool(out.converged)


def test_zero_weights_are_allowed():
    x, y, a, b = random_problem(10, 12)
    a = a.clone()
    a[3] = 0
    a = a / a.sum()
    _, out = _solve(x, y, a, b)
    assert out.f[3] == -math.inf and bool(out.converged)
    assert (out.matrix[3] == 0).all() and torch.isfinite(out.reg_ot_cost)
    plan = ot.sinkhorn(a, b, PointCloud(x, y).cost_matrix, EPS, method="sinkhorn_log",
                       stopThr=1e-11, numItermax=20_000)
    torch.testing.assert_close(out.matrix, plan, rtol=1e-5, atol=1e-12)


def test_apply_and_transport_map():
    x, y, a, b = random_problem(15, 18, d=3)
    _, out = _solve(x, y, a, b)
    v = torch.randn(18, 2, dtype=x.dtype)
    torch.testing.assert_close(out.apply(v), out.matrix @ v)
    torch.testing.assert_close(out.apply(v[:, 0]), out.matrix @ v[:, 0])
    w = torch.randn(15, dtype=x.dtype)
    torch.testing.assert_close(out.apply(w, axis=0), out.matrix.T @ w)
    barycentric = (out.matrix @ y) / out.matrix.sum(1, keepdim=True)
    torch.testing.assert_close(out.transport_map(x), barycentric)
    new_points = torch.rand(4, 3, dtype=x.dtype)
    assert out.transport_map(new_points).shape == (4, 3)


@pytest.mark.parametrize(("call", "message"), [
    (lambda p: sinkhorn(p, threshold=0), "threshold must be > 0"),
    (lambda p: sinkhorn(p, threshold=-1e-3), "threshold must be > 0"),
    (lambda p: sinkhorn(p, max_iterations=0), "max_iterations"),
    (lambda p: sinkhorn(p, min_iterations=20, max_iterations=10), "min_iterations"),
    (lambda p: sinkhorn(p, inner_iterations=0), "inner_iterations"),
    (lambda p: sinkhorn(p, norm_error=0.5), "norm_error"),
    (lambda p: sinkhorn(p, momentum=2.5), "momentum"),
    (lambda p: sinkhorn(p, anderson=0), "anderson"),
    (lambda p: sinkhorn(p, epsilon_schedule=(0.5, 0.9)), "epsilon_schedule"),
    (lambda p: sinkhorn(p, init=(torch.zeros(3), torch.zeros(4))), "init f must have shape"),
    (lambda p: sinkhorn("problem"), "LinearProblem"),
    (lambda p: sinkhorn(LinearProblem(Geometry(torch.rand(4, 5).half(), epsilon=0.1))),
     "float32 or float64"),
    (lambda p: sinkhorn(p).apply(torch.zeros(3)), "entries along"),
    (lambda p: sinkhorn(p).apply(torch.zeros(4), axis=2), "axis must be 0 or 1"),
    (lambda p: sinkhorn(LinearProblem(Geometry(torch.rand(4, 5)))).transport_map(
        torch.zeros(1, 2)), "needs a PointCloud"),
])
def test_sinkhorn_errors(call, message):
    x, y, a, b = random_problem(4, 5)
    problem = LinearProblem(PointCloud(x, y, epsilon=0.5), a, b)
    with pytest.raises((ValueError, TypeError), match=message):
        call(problem)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"a": -torch.ones(4) / 4}, "a must be >= 0"),
    ({"a": torch.tensor([0.5, float("nan"), 0.25, 0.25])}, "NaN"),
    ({"a": torch.ones(3) / 3}, r"a must have shape \(4,\)"),
    ({"b": torch.ones(5)}, "sum\\(a\\) == sum\\(b\\)"),
    ({"b": torch.zeros(5)}, "positive total mass"),
    ({"tau_a": 0.0}, "tau_a must be in"),
    ({"tau_b": 1.5}, "tau_b must be in"),
])
def test_problem_errors(kwargs, message):
    x, y, _, _ = random_problem(4, 5)
    with pytest.raises((ValueError, TypeError), match=message):
        LinearProblem(PointCloud(x.float(), y.float(), epsilon=0.5), **kwargs)
    with pytest.raises(TypeError, match="geom must be"):
        LinearProblem(torch.rand(3, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("batch_size", [None, 16])
def test_cuda_matches_cpu(batch_size):
    x, y, a, b = random_problem(40, 50, d=3)
    x = x.clone().requires_grad_(True)
    results = []
    for device in ("cpu", "cuda"):
        leaf = x.detach().to(device).requires_grad_(True)
        geom = PointCloud(leaf, y.to(device), epsilon=0.02, batch_size=batch_size)
        out = sinkhorn(LinearProblem(geom, a.to(device), b.to(device)), threshold=1e-9)
        (gradient,) = torch.autograd.grad(out.reg_ot_cost + out.matrix.pow(2).sum(), leaf)
        assert out.f.device.type == device
        results.append((out.f.cpu(), out.reg_ot_cost.cpu(), gradient.cpu()))
    for cpu, cuda in zip(*results):
        torch.testing.assert_close(cuda, cpu)


def test_progress_bar_reports_the_error(capsys):
    x, y, a, b = random_problem(10, 12)
    _solve(x, y, a, b, threshold=1e-8, progress=True)
    assert "sinkhorn" in capsys.readouterr().err
