"""Sinkhorn under torch.compile (fixed-iteration mode): one graph (fullgraph=True), eager
values and gradients. The oracle is the eager call of the same function."""

import pytest
import torch

from lutece.ot import Geometry, Grid, LinearProblem, PointCloud, sinkhorn

from .helpers import random_problem


def _regularized_cost(build):
    def solve(x, y, a):
        out = sinkhorn(LinearProblem(build(x, y), a, None, tau_a=0.9),
                       min_iterations=40, max_iterations=40)
        return out.reg_ot_cost + out.apply(y[:, 0]).pow(2).sum()
    return solve


@pytest.mark.parametrize("build", [
    lambda x, y: PointCloud(x, y, epsilon=0.05),
    lambda x, y: Geometry(torch.cdist(x, y), epsilon=0.05),
], ids=["pointcloud", "dense"])
def test_compiled_fixed_iterations_match_eager(build):
    torch._dynamo.reset()
    x, y, a, _ = random_problem(12, 15)
    solve = _regularized_cost(build)
    # aot_eager traces what Inductor would (Dynamo graph, AOTAutograd with the custom
    # op's autograd formula) without generating C++, which keeps the test fast
    compiled = torch.compile(solve, fullgraph=True, backend="aot_eager")
    inputs = [x.clone().requires_grad_(True), a.clone().requires_grad_(True)]
    value = compiled(inputs[0], y, inputs[1])
    gradients = torch.autograd.grad(value, inputs)
    eager_inputs = [x.clone().requires_grad_(True), a.clone().requires_grad_(True)]
    eager = solve(eager_inputs[0], y, eager_inputs[1])
    eager_gradients = torch.autograd.grad(eager, eager_inputs)
    torch.testing.assert_close(value, eager)
    for compiled_gradient, eager_gradient in zip(gradients, eager_gradients):
        torch.testing.assert_close(compiled_gradient, eager_gradient)


def test_compiled_grid_and_errors_shape():
    torch._dynamo.reset()

    def solve(coordinates):
        out = sinkhorn(LinearProblem(Grid(x=[coordinates, coordinates], epsilon=0.1)),
                       min_iterations=25, max_iterations=25)
        return out.reg_ot_cost, out.errors

    coordinates = torch.linspace(0, 1, 5, dtype=torch.float64)
    value, errors = torch.compile(solve, fullgraph=True)(coordinates)
    eager_value, eager_errors = solve(coordinates)
    torch.testing.assert_close(value, eager_value)
    assert errors.shape == eager_errors.shape == (3,)
    torch.testing.assert_close(errors, eager_errors)
