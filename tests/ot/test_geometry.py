"""Geometries: epsilon and scaling conventions, and every geometry against the dense one."""

import math

import pytest
import torch

from lutece.ot import Geometry, Grid, LinearProblem, LRCGeometry, PointCloud, sinkhorn
from lutece.ot.costs import Euclidean, SqEuclidean

from .helpers import random_problem


def test_default_epsilon_is_five_percent_of_the_cost_std():
    x, y, _, _ = random_problem(20, 30)
    cost = SqEuclidean()(x, y)
    assert math.isclose(PointCloud(x, y).epsilon, 0.05 * float(cost.std(correction=0)),
                        rel_tol=1e-12)
    assert math.isclose(Geometry(cost).epsilon, 0.05 * float(cost.std(correction=0)),
                        rel_tol=1e-12)


@pytest.mark.parametrize("relative", ["mean", "std"])
def test_relative_epsilon(relative):
    x, y, _, _ = random_problem(20, 30)
    cost = SqEuclidean()(x, y)
    statistic = float(cost.mean() if relative == "mean" else cost.std(correction=0))
    geom = PointCloud(x, y, epsilon=0.2, relative_epsilon=relative)
    assert math.isclose(geom.epsilon, 0.2 * statistic, rel_tol=1e-12)
    assert math.isclose(PointCloud(x, y, relative_epsilon=relative).epsilon,
                        0.05 * statistic, rel_tol=1e-12)
    assert PointCloud(x, y, epsilon=0.2).epsilon == 0.2


@pytest.mark.parametrize("scale", ["mean", "max_cost", "median", "std", 2.5])
def test_scale_cost_divides_the_cost(scale):
    x, y, _, _ = random_problem(10, 12)
    cost = SqEuclidean()(x, y)
    divisor = {"mean": cost.mean(), "max_cost": cost.max(), "median": cost.quantile(0.5),
               "std": cost.std(correction=0)}.get(scale, scale)
    geom = PointCloud(x, y, scale_cost=scale, epsilon=0.1)
    torch.testing.assert_close(geom.cost_matrix, cost / divisor)


def test_batched_epsilon_is_per_problem():
    x, y, _, _ = random_problem(10, 12, batch=3)
    geom = PointCloud(x, y * torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype)[:, None, None])
    per_problem = [PointCloud(x[i], y[i] * (i + 1)).epsilon for i in range(3)]
    torch.testing.assert_close(geom.epsilon, torch.tensor(per_problem, dtype=x.dtype))


@pytest.mark.parametrize("scale", [1.0, "mean", "std", "max_cost"])
def test_online_mode_equals_dense_mode(scale):
    x, y, _, _ = random_problem(37, 23, d=3)
    dense = PointCloud(x, y, scale_cost=scale)
    online = PointCloud(x, y, scale_cost=scale, batch_size=8)
    assert online.is_online and not dense.is_online
    torch.testing.assert_close(online.epsilon_, dense.epsilon_)
    eps = dense.epsilon_
    f = torch.randn(1, 37, dtype=x.dtype)
    g = torch.randn(1, 23, dtype=x.dtype)
    for axis, h in ((0, f), (1, g)):
        torch.testing.assert_close(online.lse(h, axis, eps), dense.lse(h, axis, eps))
    v = torch.randn(1, 23, 2, dtype=x.dtype)
    torch.testing.assert_close(online.apply_plan(f, g, eps, v, 1),
                               dense.apply_plan(f, g, eps, v, 1))
    torch.testing.assert_close(online.plan_cost(f, g, eps), dense.plan_cost(f, g, eps))


def test_online_median_scale_is_refused():
    x, y, _, _ = random_problem(5, 6)
    with pytest.raises(ValueError, match="median"):
        _ = PointCloud(x, y, scale_cost="median", batch_size=2).epsilon


def _grid_points(coordinates):
    mesh = torch.meshgrid(*coordinates, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


def test_grid_equals_the_point_cloud_of_the_grid():
    coordinates = [torch.linspace(0, 1, 5, dtype=torch.float64),
                   torch.linspace(0, 2, 4, dtype=torch.float64) ** 2,
                   torch.linspace(-1, 1, 3, dtype=torch.float64)]
    grid = Grid(x=coordinates)
    cloud = PointCloud(_grid_points(coordinates))
    torch.testing.assert_close(grid.cost_matrix, cloud.cost_matrix)
    assert math.isclose(grid.epsilon, cloud.epsilon, rel_tol=1e-10)
    generator = torch.Generator().manual_seed(1)
    n = grid.shape[0]
    a = torch.rand(n, generator=generator, dtype=torch.float64) + 0.1
    b = torch.rand(n, generator=generator, dtype=torch.float64) + 0.1
    a, b = a / a.sum(), b / b.sum()
    out_grid = sinkhorn(LinearProblem(grid, a, b), threshold=1e-10)
    out_cloud = sinkhorn(LinearProblem(cloud, a, b), threshold=1e-10)
    torch.testing.assert_close(out_grid.f, out_cloud.f)
    torch.testing.assert_close(out_grid.g, out_cloud.g)
    torch.testing.assert_close(out_grid.reg_ot_cost, out_cloud.reg_ot_cost)
    torch.testing.assert_close(out_grid.primal_cost, out_cloud.primal_cost)
    v = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(out_grid.apply(v), out_cloud.apply(v))
    torch.testing.assert_close(out_grid.apply(v, axis=0), out_cloud.apply(v, axis=0))


def test_grid_from_grid_size_and_per_axis_costs():
    grid = Grid(grid_size=(4, 3), cost_fns=[SqEuclidean(), Euclidean()], dtype=torch.float64)
    points = _grid_points([torch.linspace(0, 1, 4, dtype=torch.float64),
                           torch.linspace(0, 1, 3, dtype=torch.float64)])
    expected = (points[:, None, 0] - points[None, :, 0]) ** 2 \
        + (points[:, None, 1] - points[None, :, 1]).abs()
    torch.testing.assert_close(grid.cost_matrix, expected)


def test_low_rank_cost_geometry():
    generator = torch.Generator().manual_seed(0)
    left = torch.rand(8, 3, generator=generator, dtype=torch.float64)
    right = torch.rand(6, 3, generator=generator, dtype=torch.float64)
    geom = LRCGeometry(left, right, bias=0.5, scale_factor=2.0)
    dense = 2.0 * left @ right.T + 0.5
    torch.testing.assert_close(geom.cost_matrix, dense)
    v = torch.randn(6, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(geom.apply_cost(v), dense @ v)
    w = torch.randn(8, 2, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(geom.apply_cost(w, axis=0), dense.T @ w)
    out = sinkhorn(LinearProblem(geom), threshold=1e-9)
    reference = sinkhorn(LinearProblem(Geometry(dense, epsilon=geom.epsilon)), threshold=1e-9)
    torch.testing.assert_close(out.f, reference.f)
    online = LRCGeometry(left, right, bias=0.5, scale_factor=2.0, batch_size=3)
    torch.testing.assert_close(online.epsilon_, geom.epsilon_)


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Geometry(torch.zeros(3)), "at least 2 dimension"),
    (lambda: Geometry(torch.zeros(3, 3, dtype=torch.long)), "floating-point"),
    (lambda: Geometry(torch.tensor([[0.0, float("nan")]])), "NaN"),
    (lambda: Geometry(torch.rand(3, 3), epsilon=0.0), "epsilon must be > 0"),
    (lambda: Geometry(torch.rand(3, 3), epsilon=-1.0), "epsilon must be > 0"),
    (lambda: Geometry(torch.rand(3, 3), relative_epsilon="max"), "relative_epsilon"),
    (lambda: Geometry(torch.rand(3, 3), scale_cost="mode"), "scale_cost"),
    (lambda: Geometry(torch.rand(3, 3), scale_cost=0.0), "scale_cost must be > 0"),
    (lambda: PointCloud(torch.rand(3, 2), torch.rand(4, 3)), "same feature dimension"),
    (lambda: PointCloud(torch.rand(3, 2), torch.rand(2, 4, 2)), "both"),
    (lambda: PointCloud(torch.rand(0, 2)), "at least one point"),
    (lambda: PointCloud(torch.rand(3, 2), batch_size=0), "batch_size"),
    (lambda: PointCloud(torch.rand(3, 2), cost_fn="sqeuclidean"), "cost_fn"),
    (lambda: PointCloud(torch.zeros(3, 2), cost_fn=__import__("lutece.ot").ot.Cosine()),
     "zero vectors"),
    (lambda: Grid(), "exactly one of"),
    (lambda: Grid(grid_size=(3, 0)), "positive ints"),
    (lambda: Grid(grid_size=(3, 3), scale_cost="median"), "median"),
    (lambda: LRCGeometry(torch.rand(3, 2), torch.rand(4, 2), bias=float("nan")), "bias"),
])
def test_geometry_errors(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_constant_cost_needs_an_explicit_epsilon():
    with pytest.raises(ValueError, match="pass epsilon="):
        _ = Geometry(torch.ones(3, 4)).epsilon
    assert math.isclose(Geometry(torch.ones(3, 4), epsilon=0.1).epsilon, 0.1, rel_tol=1e-7)


def test_user_cost_with_wrong_shape_is_reported():
    geom = PointCloud(torch.rand(3, 2), torch.rand(4, 2), cost_fn=lambda x, y: x.sum(-1),
                      epsilon=0.1)
    with pytest.raises(ValueError, match="cost_fn returned shape"):
        _ = geom.cost_matrix
