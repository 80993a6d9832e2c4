"""Entropic (fused) Gromov-Wasserstein against POT's ``entropic_gromov_wasserstein`` and
``entropic_fused_gromov_wasserstein`` (an independent implementation, with its factor-2
convention converted), a brute-force O(n^2 m^2) objective, and problems with a known answer
(a cloud against a rotated, translated and shuffled copy of itself; fused GW with a large
penalty is linear OT), float64."""

import math
import warnings

import ot
import pytest
import torch

from lutece.ot import Geometry, LinearProblem, LRCGeometry, PointCloud, sinkhorn
from lutece.ot.solvers.gromov import GWOutput, gromov_wasserstein

DTYPE = torch.float64
# fixed iteration counts and tight inner solves, so that both solvers produce the same
# sequence of couplings T_1, ..., T_K from T_0 = a b^T
TIGHT = {"threshold": 1e-12, "max_iterations": 20000}
# for comparisons of two runs of ours (same iterations, so inner accuracy needs no margin)
LOOSE = {"threshold": 1e-9, "max_iterations": 5000}


def _clouds(n=12, m=10, seed=0):
    """x (n, 2) and y (m, 3) in the unit cube, positive weights a, b summing to 1."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=generator, dtype=DTYPE)
    y = torch.rand(m, 3, generator=generator, dtype=DTYPE)
    a = torch.rand(n, generator=generator, dtype=DTYPE) + 0.2
    b = torch.rand(m, generator=generator, dtype=DTYPE) + 0.2
    return x, y, a / a.sum(), b / b.sum()


def _sqdist(x, y=None):
    return torch.cdist(x, x if y is None else y) ** 2


def _brute_force_gw(c1, c2, coupling):
    """sum_ijkl (C1_ik - C2_jl)^2 T_ij T_kl by forming the (n, m, n, m) tensor."""
    loss = (c1[:, None, :, None] - c2[None, :, None, :]) ** 2
    return (loss * coupling[:, :, None, None] * coupling[None, None, :, :]).sum()


def _rotation(seed, dim=3):
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=DTYPE))
    return q * torch.sign(torch.diagonal(r))


def _fixed_iterations(inner=TIGHT, **kwargs):
    return gromov_wasserstein(threshold=1e-300, warn=False, sinkhorn_kwargs=inner, **kwargs)


# ---------------------------------------------------------------------- POT oracle
@pytest.mark.parametrize("kind", ["dense", "pointcloud"])
def test_iterates_match_pot_entropic_gw(kind):
    """POT linearizes with 2 L (x) T: its iterates at epsilon = 2 eps are ours at eps."""
    x, y, a, b = _clouds()
    c1, c2 = _sqdist(x), _sqdist(y)
    eps, iterations = 0.02, 15
    expected = ot.gromov.entropic_gromov_wasserstein(
        c1.numpy(), c2.numpy(), a.numpy(), b.numpy(), "square_loss", epsilon=2 * eps,
        max_iter=iterations, tol=0.0, numItermax=20000, stopThr=1e-13)
    geoms = (Geometry(c1), Geometry(c2)) if kind == "dense" else (PointCloud(x), PointCloud(y))
    out = _fixed_iterations(geom_xx=geoms[0], geom_yy=geoms[1], a=a, b=b, epsilon=eps,
                            max_iterations=iterations)
    assert isinstance(out, GWOutput) and out.n_iters == iterations
    torch.testing.assert_close(out.matrix, torch.from_numpy(expected), atol=1e-10, rtol=0)
    # the objective: POT's gwloss, a brute-force sum, and ours agree on the same coupling
    const, h1, h2 = ot.gromov.init_matrix(c1.numpy(), c2.numpy(), out.matrix.sum(1).numpy(),
                                          out.matrix.sum(0).numpy(), "square_loss")
    pot_loss = ot.gromov.gwloss(const, h1, h2, out.matrix.numpy())
    assert out.cost.item() == pytest.approx(pot_loss, rel=1e-10)
    assert out.cost.item() == pytest.approx(_brute_force_gw(c1, c2, out.matrix).item(),
                                            rel=1e-10)
    assert out.linear_cost is None and out.cost is out.quadratic_cost


def test_converged_objective_matches_pot():
    """Both run to convergence from the product coupling and reach the same objective."""
    x, y, a, b = _clouds(n=10, m=9, seed=3)
    c1, c2 = _sqdist(x), _sqdist(y)
    eps = 0.01
    expected, log = ot.gromov.entropic_gromov_wasserstein(
        c1.numpy(), c2.numpy(), a.numpy(), b.numpy(), "square_loss", epsilon=2 * eps,
        max_iter=2000, tol=1e-11, numItermax=20000, stopThr=1e-12, log=True)
    out = gromov_wasserstein(Geometry(c1), Geometry(c2), a=a, b=b, epsilon=eps,
                             max_iterations=2000, threshold=1e-10, sinkhorn_kwargs=TIGHT)
    assert out.converged
    assert out.cost.item() == pytest.approx(log["gw_dist"], rel=1e-6)
    torch.testing.assert_close(out.matrix, torch.from_numpy(expected), atol=1e-7, rtol=0)
    torch.testing.assert_close(out.matrix.sum(1), a, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.matrix.sum(0), b, atol=1e-10, rtol=0)


def test_fused_iterates_match_pot():
    """POT's (alpha, e) is ours at fused_penalty = (1 - alpha) / (2 alpha), eps = e / (2 alpha);
    its objective (1 - alpha) <M, T> + alpha Q(T) = alpha (Q + 2 fused_penalty <M, T>)."""
    x, y, a, b = _clouds(seed=1)
    features_x = torch.rand(12, 4, generator=torch.Generator().manual_seed(5), dtype=DTYPE)
    features_y = torch.rand(10, 4, generator=torch.Generator().manual_seed(6), dtype=DTYPE)
    c1, c2, cross = _sqdist(x), _sqdist(y), _sqdist(features_x, features_y)
    alpha, pot_eps, iterations = 0.4, 0.02, 15
    fused_penalty, eps = (1 - alpha) / (2 * alpha), pot_eps / (2 * alpha)
    expected, log = ot.gromov.entropic_fused_gromov_wasserstein(
        cross.numpy(), c1.numpy(), c2.numpy(), a.numpy(), b.numpy(), "square_loss",
        epsilon=pot_eps, alpha=alpha, max_iter=iterations, tol=0.0, numItermax=20000,
        stopThr=1e-13, log=True)
    out = _fixed_iterations(geom_xx=PointCloud(x), geom_yy=Geometry(c2),
                            geom_xy=PointCloud(features_x, features_y),
                            fused_penalty=fused_penalty, a=a, b=b, epsilon=eps,
                            max_iterations=iterations)
    torch.testing.assert_close(out.matrix, torch.from_numpy(expected), atol=1e-10, rtol=0)
    assert out.linear_cost.item() == pytest.approx((cross * out.matrix).sum().item(),
                                                   rel=1e-12)
    assert out.cost.item() == pytest.approx(
        (out.quadratic_cost + fused_penalty * out.linear_cost).item(), rel=1e-12)
    pot_objective = alpha * (out.quadratic_cost + 2 * fused_penalty * out.linear_cost)
    assert pot_objective.item() == pytest.approx(log["fgw_dist"], rel=1e-8)


# ---------------------------------------------------------------------- known answers
def _shuffled_copy(n=30, seed=1):
    """An anisotropic 3-D cloud x and y = (x R^T + t)[perm]: x_i matches y_truth[i]."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator, dtype=DTYPE)
    x = x * torch.tensor([1.0, 0.6, 0.3], dtype=DTYPE) / 3
    perm = torch.randperm(n, generator=generator)
    y = (x @ _rotation(seed).T + torch.tensor([2.0, -1.0, 0.5], dtype=DTYPE))[perm]
    return x, y, torch.argsort(perm)


def test_recovers_rotated_translated_shuffled_copy():
    x, y, truth = _shuffled_copy()
    out = gromov_wasserstein(PointCloud(x), PointCloud(y), epsilon=2e-3, max_iterations=100)
    assert out.converged
    assert bool((out.matrix.argmax(1) == truth).all())
    # most mass on the true matching; the GW energy is ~0 up to the entropic blur (the exact
    # matching has energy 0, the product coupling a b^T the scale of the problem)
    assert out.matrix[torch.arange(30), truth].sum().item() > 0.7
    exact = torch.zeros(30, 30, dtype=DTYPE)
    exact[torch.arange(30), truth] = 1 / 30
    c1, c2 = _sqdist(x), _sqdist(y)
    assert _brute_force_gw(c1, c2, exact).item() < 1e-20
    product = _brute_force_gw(c1, c2, torch.full((30, 30), 1 / 900, dtype=DTYPE)).item()
    assert out.cost.item() < 0.02 * product


def test_invariant_to_rigid_motions_of_either_cloud():
    x, y, a, b = _clouds(n=10, m=9, seed=2)
    y = y[:, :2]
    base = gromov_wasserstein(PointCloud(x), PointCloud(y), a=a, b=b, epsilon=0.005,
                              threshold=1e-9)
    rotation = _rotation(4, dim=2)
    for xx, yy in ((x @ rotation.T + 3.0, y), (x, y @ rotation.T - 1.0)):
        moved = gromov_wasserstein(PointCloud(xx), PointCloud(yy), a=a, b=b, epsilon=0.005,
                                   threshold=1e-9)
        torch.testing.assert_close(moved.matrix, base.matrix, atol=1e-8, rtol=0)
        assert moved.cost.item() == pytest.approx(base.cost.item(), rel=1e-8)


def test_large_fused_penalty_is_linear_ot():
    """With fused_penalty = lam and epsilon = lam e, each step is linear OT on M + L/lam."""
    x, y, a, b = _clouds(seed=4)
    features = torch.rand(10, 2, generator=torch.Generator().manual_seed(7), dtype=DTYPE)
    penalty = 1e5
    out = gromov_wasserstein(PointCloud(x), PointCloud(y), geom_xy=PointCloud(x, features),
                             fused_penalty=penalty, a=a, b=b, epsilon=penalty * 0.05,
                             threshold=1e-9)
    linear = sinkhorn(LinearProblem(Geometry(_sqdist(x, features), epsilon=0.05), a, b),
                      threshold=1e-12)
    torch.testing.assert_close(out.matrix, linear.matrix, atol=1e-5, rtol=0)


@pytest.mark.parametrize("tau", [1.0, 0.7])
def test_result_is_a_fixed_point_of_the_linearized_problem(tau):
    """T = Sinkhorn(L (x) T + fused_penalty M): balanced, and unbalanced (tau passed on)."""
    x, y, a, b = _clouds(seed=5)
    features = torch.rand(10, 2, generator=torch.Generator().manual_seed(8), dtype=DTYPE)
    c1, c2, cross = _sqdist(x), _sqdist(y), _sqdist(x, features)
    out = gromov_wasserstein(Geometry(c1), Geometry(c2), geom_xy=Geometry(cross),
                             fused_penalty=0.5, a=a, b=b, epsilon=0.02, tau_a=tau, tau_b=tau,
                             threshold=1e-10, max_iterations=500, sinkhorn_kwargs=TIGHT)
    assert out.converged
    coupling = out.matrix
    p, q = coupling.sum(1), coupling.sum(0)
    tensor_product = (c1**2 @ p)[:, None] + (c2**2 @ q)[None, :] - 2 * c1 @ coupling @ c2.T
    problem = LinearProblem(Geometry(tensor_product + 0.5 * cross, epsilon=0.02), a, b,
                            tau_a=tau, tau_b=tau)
    again = sinkhorn(problem, threshold=1e-12, max_iterations=20000)
    torch.testing.assert_close(again.matrix, coupling, atol=1e-8, rtol=0)
    # reg_gw_cost = cost + eps KL(T | a b^T) (+ marginal KLs when unbalanced)
    def kl(u, v):
        return (torch.xlogy(u, u / v) - u + v).sum()

    expected = out.cost + 0.02 * kl(coupling, torch.outer(a, b))
    if tau < 1:
        rho = 0.02 * tau / (1 - tau)
        expected = expected + rho * (kl(p, a) + kl(q, b))
        assert (p - a).abs().sum().item() > 1e-3   # the marginals were relaxed
    assert out.reg_gw_cost.item() == pytest.approx(expected.item(), rel=1e-12)


# ---------------------------------------------------------------------- factored costs
def test_factored_costs_match_dense_with_gradients():
    """Squared-Euclidean clouds (rank d + 2) and low-rank geometries go through their
    factors, dense geometries through the matrix: same couplings, costs and gradients."""
    x, y, a, b = _clouds(n=40, m=12, seed=6)   # n = 40 > (2 + 2)^2: Kronecker path on x
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    common = {"a": a, "b": b, "epsilon": 0.02, "max_iterations": 8, "inner": LOOSE}
    factored = _fixed_iterations(geom_xx=PointCloud(x1), geom_yy=PointCloud(y), **common)
    dense = _fixed_iterations(geom_xx=Geometry(_sqdist(x2)), geom_yy=Geometry(_sqdist(y)),
                              **common)
    torch.testing.assert_close(factored.matrix, dense.matrix, atol=1e-9, rtol=0)
    factored.cost.backward()
    dense.cost.backward()
    assert factored.matrix.grad_fn is None
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-9, rtol=1e-9)
    left = torch.rand(12, 3, generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    low_rank = LRCGeometry(left, left, bias=0.5, scale_factor=2.0)
    as_matrix = Geometry(2.0 * left @ left.T + 0.5)
    out_lr = _fixed_iterations(geom_xx=PointCloud(x), geom_yy=low_rank, **common)
    out_dense = _fixed_iterations(geom_xx=PointCloud(x), geom_yy=as_matrix, **common)
    torch.testing.assert_close(out_lr.matrix, out_dense.matrix, atol=1e-9, rtol=0)
    assert out_lr.cost.item() == pytest.approx(out_dense.cost.item(), rel=1e-10)


def test_scale_cost_of_the_geometries_is_used():
    x, y, a, b = _clouds(seed=7)
    common = {"geom_yy": Geometry(_sqdist(y)), "a": a, "b": b, "epsilon": 0.02,
              "max_iterations": 8, "inner": LOOSE}
    scaled = _fixed_iterations(geom_xx=PointCloud(x, scale_cost=2.0), **common)
    divided = _fixed_iterations(geom_xx=Geometry(_sqdist(x) / 2), **common)
    torch.testing.assert_close(scaled.matrix, divided.matrix, atol=1e-9, rtol=0)


# ---------------------------------------------------------------------- options
def test_init_default_epsilon_and_output_fields():
    x, y, truth = _shuffled_copy(n=20, seed=2)
    exact = torch.zeros(20, 20, dtype=DTYPE)
    exact[torch.arange(20), truth] = 1 / 20
    out = gromov_wasserstein(PointCloud(x), PointCloud(y), init=exact, epsilon=1e-3)
    assert out.converged and out.n_iters <= 10
    assert bool((out.matrix.argmax(1) == truth).all())
    assert out.errors.shape == (out.n_iters,) and out.errors[-1] < 1e-5
    assert out.linear_output.matrix.shape == (20, 20) and out.epsilon == 1e-3
    # epsilon=None: 0.05 x std of the linearized cost at the initial coupling a b^T
    c1, c2 = _sqdist(x), _sqdist(y)
    product = torch.full((20, 20), 1 / 400, dtype=DTYPE)
    first = (c1**2).mean(1)[:, None] + (c2**2).mean(1)[None, :] - 2 * c1 @ product @ c2.T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        default = gromov_wasserstein(PointCloud(x), PointCloud(y), max_iterations=3)
    assert default.epsilon == pytest.approx(0.05 * first.std(correction=0).item(), rel=1e-10)


def test_warns_when_not_converged():
    x, y, a, b = _clouds()
    with pytest.warns(RuntimeWarning, match="did not converge in 2 outer iterations"):
        out = gromov_wasserstein(PointCloud(x), PointCloud(y), epsilon=0.02, max_iterations=2)
    assert not out.converged
    with pytest.warns(RuntimeWarning, match="last Sinkhorn solve did not converge"):
        gromov_wasserstein(PointCloud(x), PointCloud(y), epsilon=0.02, threshold=1.0,
                           sinkhorn_kwargs={"max_iterations": 10, "threshold": 1e-12})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gromov_wasserstein(PointCloud(x), PointCloud(y), epsilon=0.02, max_iterations=2,
                           warn=False)


def test_constant_first_linearization_needs_explicit_epsilon():
    """A regular polygon: a b^T is a stationary point and the linearization is constant."""
    angles = torch.arange(6, dtype=DTYPE) * (2 * math.pi / 6)
    polygon = torch.stack([angles.cos(), angles.sin()], 1)
    with pytest.raises(ValueError, match="linearized cost at the initial coupling is const"):
        gromov_wasserstein(PointCloud(polygon), PointCloud(polygon))


def test_absurdly_small_epsilon_raises_instead_of_returning_nan():
    x, y, _, _ = _clouds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(RuntimeError, match="returned NaN or infinite values"):
            gromov_wasserstein(PointCloud(x), PointCloud(y), epsilon=1e-300, max_iterations=5,
                               sinkhorn_kwargs={"max_iterations": 20})


def _error_cases():
    x, y, a, b = _clouds()
    gx, gy = PointCloud(x), PointCloud(y)
    batched = PointCloud(x[None].expand(2, -1, -1))
    return [
        ({"geom_xx": _sqdist(x), "geom_yy": gy}, TypeError, "geom_xx must be a lutece.ot geo"),
        ({"geom_xx": PointCloud(x, x[:5]), "geom_yy": gy}, ValueError,
         r"geom_xx must be square .* got shape \(12, 5\)"),
        ({"geom_xx": batched, "geom_yy": gy}, ValueError, "must hold one problem"),
        ({"geom_xx": gx, "geom_yy": PointCloud(y.float())}, TypeError,
         "must share dtype and device"),
        ({"geom_xy": PointCloud(x[:5], y[:, :2])}, ValueError,
         r"geom_xy must have shape \(12, 10\)"),
        ({"geom_xy": PointCloud(x, y[:, :2]), "fused_penalty": 0.0}, ValueError,
         "fused_penalty must be > 0"),
        ({"geom_xy": PointCloud(x, y[:, :2]), "fused_penalty": math.nan}, ValueError,
         "fused_penalty must be > 0 and finite"),
        ({"fused_penalty": True}, TypeError, "fused_penalty must be a number"),
        ({"fused_penalty": "1"}, TypeError, "fused_penalty must be a number"),
        ({"a": a[:5]}, ValueError, r"a must have shape \(12,\)"),
        ({"b": -b}, ValueError, "b must be >= 0"),
        ({"b": torch.ones(10, dtype=torch.int64)}, TypeError, "b must have a floating"),
        ({"a": torch.full((12,), math.nan, dtype=DTYPE)}, ValueError, "a contains 12 NaN"),
        ({"b": 2 * b}, ValueError, r"needs sum\(a\) == sum\(b\)"),
        ({"epsilon": 0.0}, ValueError, "epsilon must be > 0"),
        ({"loss": "kl"}, ValueError, "loss must be 'sqeucl'"),
        ({"max_iterations": 0}, ValueError, "max_iterations must be an int >= 1"),
        ({"threshold": -1.0}, ValueError, "threshold must be > 0"),
        ({"tau_a": 0.0}, ValueError, r"tau_a must be in \(0, 1\]"),
        ({"tau_b": 1.5}, ValueError, r"tau_b must be in \(0, 1\]"),
        ({"init": torch.ones(10, 12, dtype=DTYPE)}, ValueError,
         r"init must be a coupling of shape \(12, 10\)"),
        ({"init": -torch.ones(12, 10, dtype=DTYPE)}, ValueError, "init must be >= 0"),
        ({"sinkhorn_kwargs": {"init": None}}, ValueError, r"unknown or reserved key\(s\) \['i"),
        ({"sinkhorn_kwargs": {"tolerance": 1}}, ValueError, "unknown or reserved"),
        ({"sinkhorn_kwargs": [("threshold", 1)]}, TypeError, "sinkhorn_kwargs must be a map"),
    ]


@pytest.mark.parametrize("index", range(len(_error_cases())))
def test_errors(index):
    kwargs, error, message = _error_cases()[index]
    x, y, _, _ = _clouds()
    arguments = {"geom_xx": PointCloud(x), "geom_yy": PointCloud(y), "epsilon": 0.1, **kwargs}
    geom_xx, geom_yy = arguments.pop("geom_xx"), arguments.pop("geom_yy")
    with pytest.raises(error, match=message):
        gromov_wasserstein(geom_xx, geom_yy, **arguments)
