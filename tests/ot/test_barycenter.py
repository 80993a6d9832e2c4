"""Wasserstein barycenters against POT (an independent implementation: its log-domain Bregman
and debiased barycenters, and its exact-OT free-support barycenter) and against properties
the barycenter must have (symmetry, a single measure, translation), float64."""

import math
import warnings

import ot
import pytest
import torch

from lutece.ot import Geometry, Grid, PointCloud
from lutece.ot.barycenter import (
    BarycenterOutput,
    FreeSupportOutput,
    fixed_support_barycenter,
    free_support_barycenter,
)

DTYPE = torch.float64


def _line(n):
    """n points on [0, 1] (n, 1) and their squared-Euclidean cost (n, n)."""
    x = torch.linspace(0, 1, n, dtype=DTYPE)[:, None]
    return x, (x - x.T) ** 2


def _bump(x, center, width):
    values = torch.exp(-((x[:, 0] - center) ** 2) / (2 * width**2))
    return values / values.sum()


def _random_histograms(count, n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(count, n, generator=generator, dtype=DTYPE) + 0.05
    return values / values.sum(-1, keepdim=True)


def _entropy(a):
    return float(-(a * torch.log(a.clamp_min(1e-300))).sum())


def _w2_squared(x, y):
    a = torch.full((x.shape[0],), 1 / x.shape[0], dtype=DTYPE)
    b = torch.full((y.shape[0],), 1 / y.shape[0], dtype=DTYPE)
    return float(ot.emd2(a, b, ot.dist(x, y)))


# ---------------------------------------------------------------------- fixed support
@pytest.mark.parametrize("lse_mode", [True, False])
def test_matches_pot_log_barycenter(lse_mode):
    _, cost = _line(30)
    histograms = _random_histograms(3, 30)
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=DTYPE)
    reg = 0.1 * float(cost.mean())
    out = fixed_support_barycenter(histograms, Geometry(cost, epsilon=reg), weights,
                                   threshold=1e-11, max_iterations=3000, lse_mode=lse_mode)
    expected = ot.bregman.barycenter(histograms.T, cost, reg, weights, method="sinkhorn_log",
                                     stopThr=1e-13, numItermax=3000)
    assert isinstance(out, BarycenterOutput)
    assert bool(out.converged) and out.n_iters == out.errors.shape[0]
    assert out.epsilon == pytest.approx(reg)
    torch.testing.assert_close(out.histogram, expected, rtol=0, atol=1e-8)
    assert float(out.histogram.sum()) == pytest.approx(1.0, abs=1e-9)


def test_matches_pot_kernel_barycenter_uniform_weights():
    # POT's kernel ("sinkhorn") method starts from an unweighted geometric mean, which its
    # updates preserve, so it is only comparable with uniform weights
    _, cost = _line(25)
    histograms = _random_histograms(2, 25, seed=1)
    reg = 0.1 * float(cost.mean())
    out = fixed_support_barycenter(histograms, Geometry(cost, epsilon=reg), threshold=1e-11,
                                   max_iterations=3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # POT's x.T deprecation of torch
        expected = ot.bregman.barycenter(histograms.T, cost, reg, stopThr=1e-13,
                                         numItermax=3000)
    torch.testing.assert_close(out.histogram, expected, rtol=0, atol=1e-8)


def test_debiased_matches_pot():
    x, cost = _line(30)
    histograms = torch.stack([_bump(x, 0.3, 0.06), _bump(x, 0.6, 0.1)])
    weights = torch.tensor([0.4, 0.6], dtype=DTYPE)
    reg = 0.005 * float(cost.mean())
    out = fixed_support_barycenter(histograms, Geometry(cost, epsilon=reg), weights,
                                   debiased=True, threshold=1e-9)
    expected = ot.bregman.barycenter_debiased(histograms.T, cost, reg, weights,
                                              method="sinkhorn_log", stopThr=1e-11,
                                              numItermax=2000)
    assert bool(out.converged)
    torch.testing.assert_close(out.histogram, expected, rtol=0, atol=1e-8)


def test_single_measure_is_itself_debiased_closer():
    x, cost = _line(60)
    measure = _bump(x, 0.45, 0.08)[None]
    geom = Geometry(cost, epsilon=2e-3)
    biased = fixed_support_barycenter(measure, geom, threshold=1e-8)
    debiased = fixed_support_barycenter(measure, geom, debiased=True, threshold=1e-8)
    distance_biased = float((biased.histogram - measure[0]).abs().sum())
    distance_debiased = float((debiased.histogram - measure[0]).abs().sum())
    assert distance_debiased < 0.02
    assert distance_debiased < 0.2 * distance_biased


def test_symmetric_under_swapping_measures_and_weights():
    _, cost = _line(30)
    histograms = _random_histograms(2, 30, seed=2)
    weights = torch.tensor([0.3, 0.7], dtype=DTYPE)
    geom = Geometry(cost, epsilon=0.01)
    for debiased in (False, True):
        first = fixed_support_barycenter(histograms, geom, weights, debiased=debiased,
                                         threshold=1e-9, max_iterations=100, warn=False)
        swapped = fixed_support_barycenter(histograms.flip(0), geom, weights.flip(0),
                                           debiased=debiased, threshold=1e-9,
                                           max_iterations=100, warn=False)
        torch.testing.assert_close(first.histogram, swapped.histogram, rtol=0, atol=1e-12)
    # not trivially so: the barycenter depends on the weights
    other = fixed_support_barycenter(histograms, geom, weights.flip(0), threshold=1e-9,
                                     max_iterations=100, warn=False)
    assert float((other.histogram - first.histogram).abs().sum()) > 0.01


def test_weights_one_zero_give_the_first_measure():
    x, cost = _line(50)
    histograms = torch.stack([_bump(x, 0.3, 0.07), _bump(x, 0.7, 0.05)])
    geom = Geometry(cost, epsilon=2e-3)
    weights = torch.tensor([1.0, 0.0], dtype=DTYPE)
    out = fixed_support_barycenter(histograms, geom, weights, debiased=True, threshold=1e-9)
    alone = fixed_support_barycenter(histograms[:1], geom, debiased=True, threshold=1e-9)
    torch.testing.assert_close(out.histogram, alone.histogram, rtol=0, atol=1e-7)
    assert float((out.histogram - histograms[0]).abs().sum()) < 0.02


def test_grid_and_point_cloud_match_dense_geometry():
    grid = Grid(grid_size=[12, 12], dtype=DTYPE, epsilon=0.01)
    points = torch.cartesian_prod(grid.x[0], grid.x[1])
    centers = torch.tensor([[0.3, 0.3], [0.7, 0.6]], dtype=DTYPE)
    histograms = torch.exp(-((points[None] - centers[:, None]) ** 2).sum(-1) / 0.02)
    histograms = histograms / histograms.sum(-1, keepdim=True)
    weights = torch.tensor([0.4, 0.6], dtype=DTYPE)
    # the same iterations on every geometry, converged or not, give the same result
    options = dict(threshold=1e-10, max_iterations=50, warn=False)
    dense = fixed_support_barycenter(histograms, Geometry(grid.cost_matrix, epsilon=0.01),
                                     weights, **options)
    for geom in (grid, PointCloud(points, epsilon=0.01)):
        for debiased in (False, True):
            reference = dense if not debiased else fixed_support_barycenter(
                histograms, Geometry(grid.cost_matrix, epsilon=0.01), weights, debiased=True,
                **options)
            out = fixed_support_barycenter(histograms, geom, weights, debiased=debiased,
                                           **options)
            torch.testing.assert_close(out.histogram, reference.histogram, rtol=0,
                                       atol=1e-11)


def _two_bumps():
    grid = Grid(grid_size=[101], dtype=DTYPE, epsilon=1e-3)
    x = grid.x[0][:, None]
    return grid, x, torch.stack([_bump(x, 0.25, 0.03), _bump(x, 0.75, 0.03)])


def test_barycenter_of_translated_bumps_is_centred_between_them():
    grid, x, histograms = _two_bumps()
    out = fixed_support_barycenter(histograms, grid, threshold=1e-6)
    barycenter = out.histogram
    assert float((barycenter * x[:, 0]).sum()) == pytest.approx(0.5, abs=1e-6)
    assert int(barycenter.argmax()) == 50
    # a displaced bump, not the Euclidean average's two bumps
    assert float(barycenter[(x[:, 0] > 0.4) & (x[:, 0] < 0.6)].sum()) > 0.95


def test_grid_never_forms_the_cost_matrix(monkeypatch):
    grid, _, histograms = _two_bumps()

    def refuse(*args, **kwargs):
        raise AssertionError("the n x n cost was formed")

    monkeypatch.setattr(Grid, "_unscaled_block", refuse)
    for lse_mode in (True, False):
        fixed_support_barycenter(histograms, grid, debiased=True, lse_mode=lse_mode,
                                 max_iterations=5, warn=False)


def test_debiased_is_sharper():
    grid, x, histograms = _two_bumps()
    biased = fixed_support_barycenter(histograms, grid, threshold=1e-6)
    debiased = fixed_support_barycenter(histograms, grid, debiased=True, threshold=1e-6)
    assert _entropy(debiased.histogram) < _entropy(biased.histogram) - 0.05
    # and closer to the exact barycenter, the same bump at 0.5
    exact = _bump(x, 0.5, 0.03)
    assert float((debiased.histogram - exact).abs().sum()) \
        < float((biased.histogram - exact).abs().sum())


def test_zero_entries_are_allowed():
    x, cost = _line(30)
    histograms = torch.stack([_bump(x, 0.3, 0.05), _bump(x, 0.7, 0.05)])
    histograms[:, :3] = 0
    histograms = histograms / histograms.sum(-1, keepdim=True)
    out = fixed_support_barycenter(histograms, Geometry(cost, epsilon=0.005), threshold=1e-8)
    assert bool(out.converged) and bool(torch.isfinite(out.histogram).all())


@pytest.mark.parametrize("debiased", [False, True])
def test_gradient_by_unrolling_matches_finite_differences(debiased):
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(5, 1, generator=generator, dtype=DTYPE)
    geom = Geometry((points - points.T) ** 2, epsilon=0.1)
    raw = torch.rand(2, 5, generator=generator, dtype=DTYPE) + 0.2
    raw.requires_grad_(True)
    target = torch.rand(5, generator=generator, dtype=DTYPE)

    def loss(values):
        histograms = values / values.sum(-1, keepdim=True)
        out = fixed_support_barycenter(histograms, geom, debiased=debiased, threshold=1e-300,
                                       max_iterations=25, warn=False)
        return (out.histogram * target).sum()

    assert torch.autograd.gradcheck(loss, (raw,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_non_convergence_is_reported():
    _, cost = _line(30)
    histograms = _random_histograms(2, 30)
    with pytest.warns(RuntimeWarning, match="fixed_support_barycenter: did not converge in 3 "
                                            "iterations"):
        out = fixed_support_barycenter(histograms, Geometry(cost, epsilon=0.01),
                                       max_iterations=3)
    assert not bool(out.converged) and out.n_iters == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fixed_support_barycenter(histograms, Geometry(cost, epsilon=0.01), max_iterations=3,
                                 warn=False)


def test_kernel_mode_underflow_is_reported():
    _, cost = _line(30)
    histograms = _random_histograms(2, 30)
    with pytest.warns(RuntimeWarning, match="or use lse_mode=True"):
        out = fixed_support_barycenter(histograms, Geometry(cost, epsilon=1e-4),
                                       lse_mode=False, max_iterations=50)
    assert not bool(out.converged)


def _geometry_and_histograms():
    _, cost = _line(6)
    return Geometry(cost, epsilon=0.1), _random_histograms(2, 6)


@pytest.mark.parametrize(("change", "error", "match"), [
    (lambda g, h: (g, h * 2, {}), ValueError, r"row 0 of histograms must sum to 1"),
    (lambda g, h: (g, h - h.mean(), {}), ValueError, r"histograms must be >= 0"),
    (lambda g, h: (g, h[:, :5], {}), ValueError, r"histograms must be \(num_measures, 6\)"),
    (lambda g, h: (g, h[0], {}), ValueError, r"histograms must be \(num_measures, 6\)"),
    (lambda g, h: (g, h.long(), {}), TypeError, r"histograms must have a floating-point"),
    (lambda g, h: (g, h.tolist(), {}), TypeError, r"histograms must be a torch.Tensor"),
    (lambda g, h: (g, h, {"weights": torch.tensor([0.7, 0.7], dtype=DTYPE)}), ValueError,
     r"weights must sum to 1"),
    (lambda g, h: (g, h, {"weights": torch.tensor([1.5, -0.5], dtype=DTYPE)}), ValueError,
     r"weights must be >= 0"),
    (lambda g, h: (g, h, {"weights": torch.ones(3, dtype=DTYPE) / 3}), ValueError,
     r"weights must have shape \(2,\)"),
    (lambda g, h: (Geometry(torch.rand(6, 7, dtype=DTYPE)), h, {}), ValueError,
     r"geom must be square"),
    (lambda g, h: (Geometry(torch.rand(2, 6, 6, dtype=DTYPE)), h, {}), ValueError,
     r"geom must hold one problem"),
    (lambda g, h: (g.cost_matrix, h, {}), TypeError, r"geom must be a lutece.ot geometry"),
    (lambda g, h: (g, h, {"epsilon": -1.0}), ValueError, r"epsilon must be > 0"),
    (lambda g, h: (g, h, {"threshold": 0}), ValueError, r"threshold must be > 0"),
    (lambda g, h: (g, h, {"max_iterations": 0}), ValueError, r"max_iterations must be an int"),
])
def test_fixed_support_errors(change, error, match):
    geom, histograms = _geometry_and_histograms()
    geom, histograms, kwargs = change(geom, histograms)
    with pytest.raises(error, match=f"fixed_support_barycenter: {match}"):
        fixed_support_barycenter(histograms, geom, **kwargs)


# ---------------------------------------------------------------------- free support
def _gaussian_clouds():
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(40, 2, generator=generator, dtype=DTYPE) \
        * torch.tensor([0.5, 0.15], dtype=DTYPE) + torch.tensor([-1.0, 0.0], dtype=DTYPE)
    second = torch.randn(50, 2, generator=generator, dtype=DTYPE) \
        * torch.tensor([0.15, 0.5], dtype=DTYPE) + torch.tensor([1.0, 0.5], dtype=DTYPE)
    return first, second


def test_free_support_matches_pot_exact_barycenter():
    first, second = _gaussian_clouds()
    weights = torch.tensor([0.5, 0.5], dtype=DTYPE)
    # the entropic fixed point drifts slowly away from the exact one: compare early iterates
    out = free_support_barycenter([first, second], weights, num_points=30, epsilon=0.01,
                                  max_iterations=8, warn=False,
                                  sinkhorn_options={"threshold": 1e-5})
    assert isinstance(out, FreeSupportOutput)
    assert out.points.shape == (30, 2) and out.n_iters == 8
    assert out.history.shape == (out.n_iters + 1, 30, 2)
    torch.testing.assert_close(out.history[-1], out.points)
    torch.testing.assert_close(out.points.mean(0), (first.mean(0) + second.mean(0)) / 2,
                               rtol=0, atol=1e-5)
    expected = ot.lp.free_support_barycenter(
        [first, second], [torch.full((40,), 1 / 40, dtype=DTYPE),
                          torch.full((50,), 1 / 50, dtype=DTYPE)],
        out.history[0].clone(), weights=weights, numItermax=100, stopThr=1e-9)
    # close to each other, far from the inputs
    assert _w2_squared(out.points, expected) < 0.01 * _w2_squared(out.points, first)


def test_free_support_of_identical_clouds_is_the_cloud():
    cloud, _ = _gaussian_clouds()
    out = free_support_barycenter([cloud, cloud.clone()], num_points=40, epsilon=0.01,
                                  max_iterations=15, warn=False,
                                  sinkhorn_options={"threshold": 1e-4})
    shifted = cloud + torch.tensor([0.2, 0.0], dtype=DTYPE)
    assert _w2_squared(out.points, cloud) < 0.1 * _w2_squared(shifted, cloud)
    assert _w2_squared(out.history[0], cloud) > 2 * _w2_squared(out.points, cloud)


def test_free_support_measure_weights_and_default_epsilon():
    first, second = _gaussian_clouds()
    mass = torch.rand(50, generator=torch.Generator().manual_seed(1), dtype=DTYPE) + 0.1
    mass = mass / mass.sum()
    weights = torch.tensor([0.25, 0.75], dtype=DTYPE)
    out = free_support_barycenter([first, second], weights, num_points=20,
                                  measure_weights=[None, mass], max_iterations=3, tolerance=10.0)
    assert out.epsilon > 0 and out.converged and out.n_iters == 1
    torch.testing.assert_close(out.weights, torch.full((20,), 0.05, dtype=DTYPE))
    expected_mean = 0.25 * first.mean(0) + 0.75 * (mass[:, None] * second).sum(0)
    torch.testing.assert_close(out.points.mean(0), expected_mean, rtol=0, atol=1e-5)


def test_free_support_non_convergence_is_reported():
    first, second = _gaussian_clouds()
    with pytest.warns(RuntimeWarning, match="free_support_barycenter: the support did not "
                                            "settle in 1 iterations"):
        out = free_support_barycenter([first, second], num_points=10, max_iterations=1)
    assert not out.converged


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"point_clouds": torch.zeros(3, 2)}, TypeError, r"point_clouds must be a non-empty list"),
    ({"point_clouds": []}, TypeError, r"point_clouds must be a non-empty list"),
    ({"point_clouds": [torch.zeros(3, 2, dtype=DTYPE), torch.zeros(3, 3, dtype=DTYPE)]},
     ValueError, r"all point clouds must have the same dimension d"),
    ({"point_clouds": [torch.zeros(3, dtype=DTYPE)]}, ValueError,
     r"point_clouds\[0\] must be a non-empty \(n_k, d\)"),
    ({"num_points": 0}, ValueError, r"num_points must be an int >= 1"),
    ({"num_points": 2.5}, ValueError, r"num_points must be an int >= 1"),
    ({"weights": torch.tensor([0.2, 0.2], dtype=DTYPE)}, ValueError,
     r"weights must sum to 1"),
    ({"measure_weights": [None]}, ValueError, r"measure_weights must be a list of 2"),
    ({"measure_weights": [None, torch.ones(5, dtype=DTYPE)]}, ValueError,
     r"measure_weights\[1\] must have shape \(4,\)"),
    ({"init": torch.zeros(3, 2, dtype=DTYPE)}, ValueError, r"init must have shape \(5, 2\)"),
    ({"epsilon": 0.0}, ValueError, r"epsilon must be > 0"),
    ({"tolerance": -1.0}, ValueError, r"tolerance must be > 0"),
    ({"sinkhorn_options": {"init": None}}, ValueError, r"sinkhorn_options cannot set init"),
])
def test_free_support_errors(kwargs, error, match):
    generator = torch.Generator().manual_seed(0)
    clouds = [torch.rand(3, 2, generator=generator, dtype=DTYPE),
              torch.rand(4, 2, generator=generator, dtype=DTYPE)]
    arguments = {"point_clouds": clouds, "num_points": 5, **kwargs}
    with pytest.raises(error, match=f"free_support_barycenter: {match}"):
        free_support_barycenter(**arguments)


def test_inputs_are_not_modified():
    _, cost = _line(10)
    histograms = _random_histograms(2, 10)
    before = histograms.clone()
    fixed_support_barycenter(histograms, Geometry(cost, epsilon=0.05))
    torch.testing.assert_close(histograms, before, rtol=0, atol=0)
    assert math.isclose(float(histograms.sum()), 2.0)
