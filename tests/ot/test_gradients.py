"""Gradients of Sinkhorn outputs: implicit = unrolled = finite differences (float64)."""

import pytest
import torch

from lutece.ot import Geometry, LinearProblem, PointCloud, exact_ot, sinkhorn
from lutece.ot.costs import Euclidean

from .helpers import random_problem

SOLVE = {"threshold": 1e-12, "max_iterations": 20_000}


def _reg_cost(x, y, a, b, implicit=True, **geom_kwargs):
    geom = PointCloud(x, y, epsilon=geom_kwargs.pop("epsilon", 0.1), **geom_kwargs)
    return sinkhorn(LinearProblem(geom, a, b), implicit_diff=implicit, **SOLVE).reg_ot_cost


def _plan_functional(x, y, a, b, implicit=True):
    out = sinkhorn(LinearProblem(PointCloud(x, y, epsilon=0.1), a, b),
                   implicit_diff=implicit, **SOLVE)
    weights = torch.linspace(0, 1, out.matrix.numel(), dtype=x.dtype).reshape(out.matrix.shape)
    return (out.matrix * weights).sum() + out.apply(y[:, 0]).pow(2).sum()


@pytest.mark.parametrize("functional", [_reg_cost, _plan_functional])
def test_implicit_equals_unrolled(functional):
    x, y, a, b = random_problem(12, 15)
    inputs = [t.clone().requires_grad_(True) for t in (x, y)]
    implicit = torch.autograd.grad(functional(*inputs, a, b, True), inputs)
    inputs = [t.clone().requires_grad_(True) for t in (x, y)]
    unrolled = torch.autograd.grad(functional(*inputs, a, b, False), inputs)
    for first, second in zip(implicit, unrolled):
        torch.testing.assert_close(first, second, rtol=1e-6, atol=1e-9)


def test_gradcheck_wrt_points():
    x, y, a, b = random_problem(6, 7)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, q: _plan_functional(p, q, a, b), (x, y),
                                    atol=1e-6, rtol=1e-4)


def test_gradcheck_wrt_weights_through_a_softmax():
    # a balanced problem's weights live on the simplex: differentiate through a softmax
    x, y, a, b = random_problem(6, 7)
    logits_a = a.log().requires_grad_(True)
    logits_b = b.log().requires_grad_(True)

    def value(la, lb):
        out = sinkhorn(LinearProblem(PointCloud(x, y, epsilon=0.1), la.softmax(0),
                                     lb.softmax(0)), **SOLVE)
        return out.reg_ot_cost + out.matrix[0].pow(2).sum()

    assert torch.autograd.gradcheck(value, (logits_a, logits_b), atol=1e-6, rtol=1e-4)


def test_gradcheck_unbalanced():
    x, y, a, b = random_problem(5, 6)
    x.requires_grad_(True)
    b = (1.5 * b).requires_grad_(True)
    a = a.requires_grad_(True)

    def value(p, wa, wb):
        problem = LinearProblem(PointCloud(p, y, epsilon=0.2), wa, wb, tau_a=0.8, tau_b=0.7)
        out = sinkhorn(problem, **SOLVE)
        return out.reg_ot_cost + out.matrix.sum(0).pow(2).sum()

    assert torch.autograd.gradcheck(value, (x, a, b), atol=1e-6, rtol=1e-4)


def test_gradcheck_wrt_cost_matrix():
    x, y, a, b = random_problem(5, 6)
    cost = PointCloud(x, y).cost_matrix.requires_grad_(True)

    def value(c):
        out = sinkhorn(LinearProblem(Geometry(c, epsilon=0.1), a, b), **SOLVE)
        # potentials are defined up to (f + t, g - t): test gauge-invariant functions of them
        return (out.f - out.f.mean()).pow(2).sum() + (out.f[0] + out.g).pow(2).sum() \
            + out.reg_ot_cost

    assert torch.autograd.gradcheck(value, (cost,), atol=1e-6, rtol=1e-4)


def test_reg_ot_cost_gradient_wrt_cost_is_the_plan():
    # envelope theorem: d reg_ot_cost / dC = P
    x, y, a, b = random_problem(8, 9)
    cost = PointCloud(x, y).cost_matrix.requires_grad_(True)
    out = sinkhorn(LinearProblem(Geometry(cost, epsilon=0.1), a, b), **SOLVE)
    (gradient,) = torch.autograd.grad(out.reg_ot_cost, cost)
    torch.testing.assert_close(gradient, out.matrix.detach(), rtol=1e-6, atol=1e-10)


def test_online_gradients_equal_dense_gradients():
    x, y, a, b = random_problem(19, 13, d=3)
    grads = []
    for batch_size in (None, 5):
        inputs = [t.clone().requires_grad_(True) for t in (x, y)]
        value = _reg_cost(*inputs, a, b, batch_size=batch_size, cost_fn=Euclidean())
        grads.append(torch.autograd.grad(value, inputs))
    for dense, online in zip(*grads):
        torch.testing.assert_close(online, dense)


def test_batched_gradients_equal_looped_gradients():
    x, y, a, b = random_problem(7, 8, batch=2)
    xb = x.clone().requires_grad_(True)
    (batched,) = torch.autograd.grad(_reg_cost(xb, y, a, b).sum(), xb)
    for i in range(2):
        xi = x[i].clone().requires_grad_(True)
        (single,) = torch.autograd.grad(_reg_cost(xi, y[i], a[i], b[i]), xi)
        torch.testing.assert_close(batched[i], single)


def test_exact_ot_gradients():
    x, y, a, b = random_problem(6, 6)
    cost = PointCloud(x, y).cost_matrix.requires_grad_(True)
    a = a.clone().requires_grad_(True)
    out = exact_ot(a, b, cost)
    grad_cost, grad_a = torch.autograd.grad(out.cost, (cost, a))
    torch.testing.assert_close(grad_cost, out.plan)
    torch.testing.assert_close(grad_a, out.f)
    # the cost is linear in C around a non-degenerate optimum: finite differences agree
    direction = torch.randn(6, 6, dtype=cost.dtype)
    step = 1e-7
    plus = exact_ot(a.detach(), b, cost.detach() + step * direction).cost
    minus = exact_ot(a.detach(), b, cost.detach() - step * direction).cost
    torch.testing.assert_close((plus - minus) / (2 * step), (grad_cost * direction).sum(),
                               rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("taus", [(1.0, 1.0), (0.8, 0.6)])
def test_danskin_gradient_equals_the_implicit_gradient(taus):
    x, y, a, b = random_problem(9, 11)
    grads = []
    for use_danskin in (True, False):
        inputs = [t.clone().requires_grad_(True) for t in (x, a.log(), b.log())]
        problem = LinearProblem(PointCloud(inputs[0], y, epsilon=0.1), inputs[1].softmax(0),
                                1.3 * inputs[2].softmax(0) if taus[0] < 1 else
                                inputs[2].softmax(0), tau_a=taus[0], tau_b=taus[1])
        out = sinkhorn(problem, use_danskin=use_danskin, **SOLVE)
        grads.append(torch.autograd.grad(out.reg_ot_cost, inputs))
    for danskin, implicit in zip(*grads):
        torch.testing.assert_close(danskin, implicit, rtol=1e-6, atol=1e-9)
