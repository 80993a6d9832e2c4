"""Neural Monge maps (lutece.ot.neural).

Oracles: the convexity inequality f(t x + (1 - t) y) <= t f(x) + (1 - t) f(y) and a PSD
Hessian (``torch.autograd.functional.hessian``) for the ICNN; the closed-form Gaussian
Brenier map (``lutece.ot.gaussian.gaussian_map``) for the fitted map, on held-out points;
the target's mean and covariance for the transported source samples.
"""

import pytest
import torch

from lutece.ot.gaussian import gaussian_map
from lutece.ot.neural import ICNN, MongeMap, fit_monge_map

FACTOR = torch.tensor([[1.3, 0.0], [0.4, 0.8]])  # target covariance FACTOR FACTOR^T
MEAN = torch.tensor([1.0, -0.5])


def source_sampler(n, generator):
    return torch.randn(n, 2, generator=generator)


def target_sampler(n, generator):
    return torch.randn(n, 2, generator=generator) @ FACTOR.T + MEAN


def closed_form(x):
    A, b = gaussian_map(torch.zeros(2), torch.eye(2), MEAN, FACTOR @ FACTOR.T)
    return x @ A.T + b


def held_out(n=2000, seed=12345):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def relative_error(fitted, x):
    expected = closed_form(x)
    return float((fitted.transport(x) - expected).norm() / expected.norm())


@pytest.fixture(scope="module")
def sampler_map():
    return fit_monge_map(source_sampler, target_sampler, steps=200, batch_size=256, seed=0)


@pytest.fixture(scope="module")
def tensor_map():
    generator = torch.Generator().manual_seed(7)
    return fit_monge_map(source_sampler(10000, generator), target_sampler(10000, generator),
                         steps=200, batch_size=256, seed=1)


# ICNN


@pytest.mark.parametrize("activation", ["softplus", "leaky_relu_squared"])
def test_icnn_is_convex_on_random_pairs(activation):
    torch.manual_seed(0)
    f = ICNN(3, hidden=(16, 16, 8), activation=activation)
    with torch.no_grad():  # push the z-path weights away from the init to stress convexity
        for raw in f.raw_z_weights:
            raw.normal_(0.0, 2.0)
    generator = torch.Generator().manual_seed(1)
    x = 3 * torch.randn(500, 3, generator=generator, dtype=torch.float64)
    y = 3 * torch.randn(500, 3, generator=generator, dtype=torch.float64)
    t = torch.rand(500, generator=generator, dtype=torch.float64)
    f = f.double()
    with torch.no_grad():
        middle = f(t[:, None] * x + (1 - t[:, None]) * y)
        chord = t * f(x) + (1 - t) * f(y)
    assert middle.shape == (500,)
    assert bool((middle <= chord + 1e-9).all())


def test_icnn_hessian_is_psd_and_strongly_convex():
    torch.manual_seed(0)
    f = ICNN(2, hidden=(8, 8), strong_convexity=0.5).double()
    with torch.no_grad():
        f.quadratic.zero_()  # leave only the network and the strong convexity term
    for seed in range(4):
        point = torch.randn(2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        hessian = torch.autograd.functional.hessian(f, point)
        assert torch.allclose(hessian, hessian.T, atol=1e-10)
        assert float(torch.linalg.eigvalsh(hessian).min()) >= 0.5 - 1e-8


def test_icnn_shapes_and_transport_is_gradient():
    f = ICNN(4, hidden=(8,))
    x = torch.randn(3, 5, 4)
    assert f(x).shape == (3, 5)
    gradient = f.transport(x)
    assert gradient.shape == (3, 5, 4)
    x_leaf = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(f(x_leaf).sum(), x_leaf)
    assert torch.allclose(gradient, expected)
    assert "hidden=(8,)" in repr(f)


def test_icnn_init_is_near_identity_map():
    torch.manual_seed(0)
    f = ICNN(2)
    x = torch.randn(100, 2)
    assert float((f.transport(x).detach() - x).norm() / x.norm()) < 0.5


# fit_monge_map


def test_fitted_map_matches_gaussian_closed_form(sampler_map):
    assert isinstance(sampler_map, MongeMap)
    assert isinstance(sampler_map.potential, ICNN)
    assert len(sampler_map.history) == 200
    assert relative_error(sampler_map, held_out()) < 0.05


def test_transported_samples_have_target_moments(sampler_map):
    mapped = sampler_map.transport(held_out(20000, seed=3))
    covariance = torch.cov(mapped.T)
    target_covariance = FACTOR @ FACTOR.T
    assert torch.allclose(mapped.mean(0), MEAN, atol=0.05)
    assert float((covariance - target_covariance).norm() / target_covariance.norm()) < 0.08


def test_fit_from_tensors_matches_closed_form(tensor_map):
    assert relative_error(tensor_map, held_out()) < 0.05


def test_fit_accepts_a_given_model_and_is_seeded():
    torch.manual_seed(0)
    model = ICNN(2, hidden=(8,), activation="leaky_relu_squared", strong_convexity=0.1)
    fitted = fit_monge_map(source_sampler, target_sampler, model=model, steps=3, batch_size=16)
    assert fitted.potential is model
    again = fit_monge_map(source_sampler, target_sampler, steps=3, batch_size=16, seed=4)
    once_more = fit_monge_map(source_sampler, target_sampler, steps=3, batch_size=16, seed=4)
    x = held_out(10)
    assert torch.equal(again.transport(x), once_more.transport(x))


# errors


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"hidden": ()}, "ICNN: hidden must be a non-empty"),
    ({"hidden": (8, 0)}, "ICNN: hidden must be a non-empty"),
    ({"hidden": 8}, "ICNN: hidden must be a sequence"),
    ({"activation": "relu"}, "ICNN: activation must be one of"),
    ({"strong_convexity": -1.0}, "ICNN: strong_convexity must be"),
])
def test_icnn_rejects_bad_configuration(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ICNN(2, **kwargs)


def test_icnn_rejects_bad_dim():
    with pytest.raises(ValueError, match="ICNN: dim must be a positive int"):
        ICNN(0)


def test_fit_rejects_dimension_mismatch():
    with pytest.raises(ValueError, match="fit_monge_map: source and target must have the same"):
        fit_monge_map(torch.randn(10, 2), torch.randn(10, 3), steps=1)
    with pytest.raises(ValueError, match="fit_monge_map: model.dim is 3"):
        fit_monge_map(torch.randn(10, 2), torch.randn(10, 2), model=ICNN(3), steps=1)


def test_fit_rejects_non_finite_and_malformed_data():
    bad = torch.randn(10, 2)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="fit_monge_map: source contains 1 NaN"):
        fit_monge_map(bad, torch.randn(10, 2), steps=1)
    with pytest.raises(ValueError, match="fit_monge_map: target's samples contains"):
        fit_monge_map(torch.randn(10, 2), lambda n, g: torch.full((n, 2), float("inf")),
                      steps=1)
    with pytest.raises(ValueError, match=r"fit_monge_map: target must be a non-empty \(n, d\)"):
        fit_monge_map(torch.randn(10, 2), torch.randn(10), steps=1)
    with pytest.raises(TypeError, match="fit_monge_map: source must have a floating-point"):
        fit_monge_map(torch.ones(10, 2, dtype=torch.long), torch.randn(10, 2), steps=1)
    with pytest.raises(TypeError, match="fit_monge_map: source must be an"):
        fit_monge_map([[0.0, 1.0]], torch.randn(10, 2), steps=1)
    with pytest.raises(ValueError, match=r"fit_monge_map: source\(2, generator\) must return"):
        fit_monge_map(lambda n, g: torch.randn(n), torch.randn(10, 2), steps=1)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"steps": 0}, "fit_monge_map: steps must be a positive int"),
    ({"batch_size": -2}, "fit_monge_map: batch_size must be a positive int"),
    ({"learning_rate": 0.0}, "fit_monge_map: learning_rate must be"),
    ({"method": "min_max"}, "fit_monge_map: method must be one of"),
])
def test_fit_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_monge_map(torch.randn(10, 2), torch.randn(10, 2), **kwargs)
