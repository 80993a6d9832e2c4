"""perturbed() and FenchelYoungLoss against closed forms (softmax, cross-entropy, normal
CDFs), finite differences of exact expectations computed by quadrature, the control
variate's variance, and every error path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from lutece.perturbed import (
    FenchelYoungLoss,
    argmax_one_hot,
    perturbed,
    perturbed_maximum_likelihood,
    ranks,
    topk_mask,
)

EULER_GAMMA = 0.5772156649015329


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("num_samples", [1_000, 10_000, 100_000])
def test_gumbel_argmax_is_softmax_within_monte_carlo_error(num_samples):
    theta = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, 0.0, 3.0, 1.0]], dtype=torch.float64)
    estimate = perturbed(argmax_one_hot, noise="gumbel", num_samples=num_samples,
                         generator=_gen())(theta)
    p = torch.softmax(theta, dim=-1)
    standard_error = torch.sqrt(p * (1 - p) / num_samples)
    assert ((estimate - p).abs() <= 4.5 * standard_error + 1e-12).all()


@pytest.mark.parametrize("num_samples", [1_000, 10_000, 100_000])
def test_gumbel_fenchel_young_is_cross_entropy_plus_euler_gamma(num_samples):
    theta = torch.tensor([[1.0, 2.0, 0.5], [0.3, -1.0, 2.5]], dtype=torch.float64)
    target = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    loss = FenchelYoungLoss(argmax_one_hot, noise="gumbel", num_samples=num_samples,
                            generator=_gen(1), reduction="none")(theta, target)
    cross_entropy = torch.nn.functional.cross_entropy(theta, target.argmax(-1),
                                                      reduction="none")
    # max_i (theta_i + Z_i) is Gumbel(logsumexp(theta)): standard deviation pi / sqrt(6).
    standard_error = math.pi / math.sqrt(6) / math.sqrt(num_samples)
    assert ((loss - cross_entropy - EULER_GAMMA).abs() < 4.5 * standard_error).all()


def test_fenchel_young_gradient_is_expectation_minus_target():
    theta = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    loss = FenchelYoungLoss(argmax_one_hot, noise="gumbel", num_samples=200_000,
                            generator=_gen(2), reduction="sum")(theta, target)
    (grad,) = torch.autograd.grad(loss, theta)
    expected = torch.softmax(theta.detach(), -1) - target
    torch.testing.assert_close(grad, expected, atol=5e-3, rtol=0)


def _gaussian_argmax_probabilities(theta: np.ndarray, sigma: float) -> np.ndarray:
    """Exact P(argmax(theta + sigma Z) = i) by one-dimensional quadrature."""
    probabilities = []
    for i in range(len(theta)):
        def integrand(z, i=i):
            others = [norm.cdf((theta[i] - theta[j]) / sigma + z)
                      for j in range(len(theta)) if j != i]
            return norm.pdf(z) * np.prod(others)
        probabilities.append(integrate.quad(integrand, -12, 12, epsabs=1e-12)[0])
    return np.array(probabilities)


def test_gaussian_jacobian_matches_finite_differences_of_exact_expectation():
    theta = np.array([0.3, -0.2, 0.5])
    sigma = 0.7
    exact = _gaussian_argmax_probabilities(theta, sigma)
    step = 1e-5
    jacobian = np.zeros((3, 3))
    for j in range(3):
        shift = np.zeros(3)
        shift[j] = step
        jacobian[:, j] = (_gaussian_argmax_probabilities(theta + shift, sigma)
                          - _gaussian_argmax_probabilities(theta - shift, sigma)) / (2 * step)
    op = perturbed(argmax_one_hot, sigma=sigma, num_samples=400_000, generator=_gen(3),
                   control_variate=True)
    x = torch.tensor(theta, requires_grad=True)
    value = op(x)
    np.testing.assert_allclose(value.detach().numpy(), exact, atol=4e-3)
    estimate = torch.stack([torch.autograd.grad(op(x)[i], x)[0] for i in range(3)]).numpy()
    np.testing.assert_allclose(estimate, jacobian, atol=1.5e-2)


def test_minimizing_solver_sign_convention():
    # argmin with Gumbel noise on costs: E[argmin(c - Z)] = softmax(-c).
    costs = torch.tensor([1.0, 0.2, 2.0], dtype=torch.float64, requires_grad=True)
    def argmin_one_hot(c):
        return argmax_one_hot(-c)
    op = perturbed(argmin_one_hot, noise="gumbel", maximize=False, num_samples=200_000,
                   generator=_gen(4))
    value = op(costs)
    p = torch.softmax(-costs.detach(), -1)
    torch.testing.assert_close(value, p, atol=5e-3, rtol=0)
    (grad,) = torch.autograd.grad(value[1], costs)
    expected = -(p[1] * (torch.eye(3, dtype=torch.float64)[1] - p))
    torch.testing.assert_close(grad, expected, atol=1e-2, rtol=0)
    # The minimizing Fenchel-Young loss decreases toward the right decision.
    target = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    loss = FenchelYoungLoss(argmin_one_hot, noise="gumbel", maximize=False,
                            num_samples=200_000, generator=_gen(5))
    (grad,) = torch.autograd.grad(loss(costs, target), costs)
    # gradient y - y_sigma(c): descent lowers the target's cost and raises the others'
    assert grad[2] > 0 and grad[0] < 0 and grad[1] < 0


def test_normal_sign_closed_form():
    theta = torch.tensor([-0.5, 0.0, 0.8], dtype=torch.float64)
    op = perturbed(torch.sign, sigma=0.5, num_samples=200_000, generator=_gen(6),
                   event_ndim=0)
    expected = 2 * torch.tensor(norm.cdf(theta.numpy() / 0.5)) - 1
    torch.testing.assert_close(op(theta), expected, atol=6e-3, rtol=0)


@pytest.mark.parametrize("solver, reduction", [(ranks, 0.4), (argmax_one_hot, 0.9)])
def test_control_variate_lowers_variance_without_changing_the_mean(solver, reduction):
    # Ranks take large values (1..n), so centering them removes most of the variance;
    # one-hot vectors gain less, but still gain.
    theta = torch.tensor([0.2, 0.1, -0.3, 0.4], dtype=torch.float64)
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    gradients = {False: [], True: []}
    for control_variate in (False, True):
        for seed in range(60):
            x = theta.clone().requires_grad_()
            op = perturbed(solver, sigma=0.5, num_samples=200, generator=_gen(seed),
                           control_variate=control_variate)
            (grad,) = torch.autograd.grad((op(x) * weights).sum(), x)
            gradients[control_variate].append(grad)
    plain, controlled = (torch.stack(gradients[key]) for key in (False, True))
    assert controlled.var(dim=0).sum() < reduction * plain.var(dim=0).sum()
    difference = (plain.mean(dim=0) - controlled.mean(dim=0)).abs()
    standard_error = torch.sqrt(plain.var(dim=0) / 60 + controlled.var(dim=0) / 60)
    assert (difference < 4 * standard_error + 1e-9).all()


def test_samples_chunking_generator_and_devices():
    theta = torch.randn(3, 5, dtype=torch.float64)
    full = perturbed(ranks, num_samples=50, generator=_gen(7))(theta)
    chunked = perturbed(ranks, num_samples=50, chunk_size=7, generator=_gen(7))(theta)
    torch.testing.assert_close(full, chunked)
    assert full.dtype == torch.float64 and full.shape == (3, 5)
    again = perturbed(ranks, num_samples=50, generator=_gen(7))(theta)
    torch.testing.assert_close(full, again)
    assert torch.allclose(full.sum(-1), torch.full((3,), 15.0, dtype=torch.float64))
    float32 = perturbed(topk_mask(2), num_samples=10, generator=_gen(8))(theta.float())
    assert float32.dtype == torch.float32


def test_grid_event_and_solver_never_differentiated():
    calls = []

    def grid_solver(scores):
        calls.append(scores.requires_grad)
        flat = scores.flatten(-2)
        return argmax_one_hot(flat).reshape(scores.shape)

    theta = torch.randn(2, 3, 4, requires_grad=True)
    out = perturbed(grid_solver, event_ndim=2, num_samples=20, generator=_gen(9))(theta)
    assert out.shape == (2, 3, 4)
    torch.autograd.grad(out.sum(), theta)
    assert calls == [False]


def test_perturbed_maximum_likelihood_recovers_theta():
    theta_true = torch.tensor([0.5, -1.0, 1.5, 0.0], dtype=torch.float64)
    generator = _gen(10)
    z = torch.randn(4000, 4, dtype=torch.float64, generator=generator)
    observations = ranks(theta_true + z)
    estimate, history = perturbed_maximum_likelihood(
        ranks, observations, num_samples=200, steps=300, lr=0.05, generator=_gen(11))
    centered = estimate - estimate.mean()
    torch.testing.assert_close(centered, theta_true - theta_true.mean(), atol=0.12, rtol=0)
    assert history[-1] < history[0]


def _identity(x):
    return x


@pytest.mark.parametrize(
    "kwargs, error, message",
    [({"num_samples": 0}, ValueError, "num_samples must be an int >= 1, got 0"),
     ({"sigma": 0.0}, ValueError, "sigma must be a finite number > 0, got 0.0"),
     ({"sigma": -1}, ValueError, "sigma must be"),
     ({"noise": "cauchy"}, ValueError, "noise must be one of 'gaussian', 'gumbel'"),
     ({"chunk_size": 0}, ValueError, "chunk_size must be None or an int >= 1"),
     ({"event_ndim": -1}, ValueError, "event_ndim must be an int >= 0")],
)
def test_configuration_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        perturbed(_identity, **kwargs)
    with pytest.raises(error, match=message):
        FenchelYoungLoss(_identity, **kwargs)


def test_input_and_solver_errors():
    op = perturbed(argmax_one_hot, num_samples=4)
    with pytest.raises(ValueError, match="perturbed: theta contains 1 NaN"):
        op(torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="theta must have a floating-point dtype"):
        op(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="solver must be callable"):
        perturbed(3)
    with pytest.raises(ValueError, match="control_variate needs num_samples >= 2"):
        perturbed(argmax_one_hot, num_samples=1, control_variate=True)
    wrong = perturbed(lambda s: s.sum(dim=(0, -1)), num_samples=4)
    with pytest.raises(ValueError, match="perturbed: the solver returned shape"):
        wrong(torch.randn(2, 3))
    chunked_wrong = perturbed(lambda s: s[:1], num_samples=5, chunk_size=2)
    with pytest.raises(ValueError, match="for a chunk of 2 samples; expected \\(2, 3\\)"):
        chunked_wrong(torch.randn(3))
    not_tensor = perturbed(lambda s: s.tolist(), num_samples=2)
    with pytest.raises(TypeError, match="the solver must return a tensor"):
        not_tensor(torch.randn(3))
    loss = FenchelYoungLoss(argmax_one_hot, num_samples=4)
    with pytest.raises(ValueError, match="y_true must have theta's shape"):
        loss(torch.randn(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction must be one of"):
        FenchelYoungLoss(argmax_one_hot, reduction="avg")
    shaped = FenchelYoungLoss(lambda s: s[..., :1], num_samples=2)
    with pytest.raises(ValueError, match="needs decisions shaped like the scores"):
        shaped(torch.randn(2, 3), torch.zeros(2, 3))


def test_reductions_and_repr():
    theta = torch.randn(4, 3)
    target = argmax_one_hot(torch.randn(4, 3))
    values = FenchelYoungLoss(argmax_one_hot, num_samples=5, generator=_gen(12),
                              reduction="none")(theta, target)
    assert values.shape == (4,)
    total = FenchelYoungLoss(argmax_one_hot, num_samples=5, generator=_gen(12),
                             reduction="sum")(theta, target)
    torch.testing.assert_close(total, values.sum())
    assert "argmax_one_hot" in repr(FenchelYoungLoss(argmax_one_hot))
    assert "topk_mask(k=2)" in repr(perturbed(topk_mask(2)))


def test_perturbed_maximum_likelihood_errors():
    with pytest.raises(ValueError, match="observations must be a tensor"):
        perturbed_maximum_likelihood(ranks, torch.zeros(4))
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        perturbed_maximum_likelihood(ranks, torch.zeros(5, 4), steps=0)
    with pytest.raises(ValueError, match="sigma must be"):
        perturbed_maximum_likelihood(ranks, torch.zeros(5, 4), sigma=-1.0)
