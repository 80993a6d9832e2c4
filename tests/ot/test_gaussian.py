"""Gaussian and Gaussian-mixture OT (lutece.ot.gaussian).

Oracles: POT's ``ot.gaussian.bures_wasserstein_distance`` (which returns W2, not W2^2) and
``bures_wasserstein_mapping``; the explicit 1-D formula (m0 - m1)^2 + (s0 - s1)^2 and its
sum over the axes for diagonal covariances; POT's exact ``ot.emd2`` between samples (with
Gelbrich's lower bound); scipy's ``multivariate_normal``; POT's ``ot.emd2`` on the Bures
cost for the mixture distance; finite differences (``torch.autograd.gradcheck``).
"""

import warnings

import numpy as np
import ot
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from lutece.ot.gaussian import (
    GaussianMixture,
    apply_gaussian_map,
    gaussian_map,
    gaussian_w2,
    gmm_w2,
)

DOUBLE = torch.float64


def random_gaussian(d, *, batch=(), seed=0, dtype=DOUBLE, ridge=0.1):
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(*batch, d, generator=generator, dtype=dtype)
    factor = torch.randn(*batch, d, d, generator=generator, dtype=dtype)
    return mean, factor @ factor.mT + ridge * torch.eye(d, dtype=dtype)


def pot_w2(m0, C0, m1, C1):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        distance = ot.gaussian.bures_wasserstein_distance(m0.numpy(), m1.numpy(), C0.numpy(),
                                                          C1.numpy())
    return float(distance) ** 2


# --------------------------------------------------------------------------- gaussian_w2


@pytest.mark.parametrize("d", [1, 2, 5])
def test_w2_matches_pot(d):
    m0, C0 = random_gaussian(d, seed=1)
    m1, C1 = random_gaussian(d, seed=2)
    assert np.isclose(float(gaussian_w2(m0, C0, m1, C1)), pot_w2(m0, C0, m1, C1),
                      rtol=1e-10)


def test_w2_batched_broadcasts_and_matches_pot_pairwise():
    m0, C0 = random_gaussian(3, batch=(4,), seed=3)
    m1, C1 = random_gaussian(3, batch=(5,), seed=4)
    values = gaussian_w2(m0[:, None], C0[:, None], m1[None], C1[None])
    assert values.shape == (4, 5)
    for i, j in [(0, 0), (1, 3), (3, 4)]:
        assert np.isclose(float(values[i, j]), pot_w2(m0[i], C0[i], m1[j], C1[j]),
                          rtol=1e-10)
    # a single covariance broadcast against a batch of means
    shared = gaussian_w2(m0, C0[0], m1[0], C1[0])
    assert shared.shape == (4,)
    assert np.isclose(float(shared[2]), pot_w2(m0[2], C0[0], m1[0], C1[0]), rtol=1e-10)


def test_w2_one_dimensional_formula():
    m0, m1, s0, s1 = 0.3, -1.2, 0.7, 2.5
    value = gaussian_w2(torch.tensor([m0]), torch.tensor([[s0 ** 2]]), torch.tensor([m1]),
                        torch.tensor([[s1 ** 2]]))
    assert value.dtype == torch.float32
    assert np.isclose(float(value), (m0 - m1) ** 2 + (s0 - s1) ** 2, rtol=1e-5)


def test_w2_commuting_covariances_are_a_sum_of_one_dimensional_terms():
    generator = torch.Generator().manual_seed(5)
    m0, m1 = torch.randn(2, 4, generator=generator, dtype=DOUBLE)
    s0, s1 = torch.rand(2, 4, generator=generator, dtype=DOUBLE) + 0.2
    expected = ((m0 - m1) ** 2 + (s0 - s1) ** 2).sum()
    value = gaussian_w2(m0, torch.diag(s0 ** 2), m1, torch.diag(s1 ** 2))
    torch.testing.assert_close(value, expected)
    # rotating both by the same orthogonal matrix keeps them commuting and W2 unchanged
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=DOUBLE))
    rotated = gaussian_w2(rotation @ m0, rotation @ torch.diag(s0 ** 2) @ rotation.T,
                          rotation @ m1, rotation @ torch.diag(s1 ** 2) @ rotation.T)
    torch.testing.assert_close(rotated, expected)


def test_w2_is_zero_on_the_diagonal_and_symmetric():
    m0, C0 = random_gaussian(4, seed=6)
    m1, C1 = random_gaussian(4, seed=7)
    assert float(gaussian_w2(m0, C0, m0, C0)) < 1e-10
    torch.testing.assert_close(gaussian_w2(m0, C0, m1, C1), gaussian_w2(m1, C1, m0, C0))


def test_w2_singular_covariances_value_and_finite_gradient():
    # a degenerate Gaussian on a line, C0 = u u^T, against a full one: C0^{1/2} = u u^T / |u|
    # and tr (C0^{1/2} C1 C0^{1/2})^{1/2} = sqrt(u^T C1 u) (POT's eigh gives NaN here)
    u = torch.tensor([1.0, 2.0, -1.0], dtype=DOUBLE)
    C0 = torch.outer(u, u).requires_grad_()
    m1, C1 = random_gaussian(3, seed=8)
    m0 = torch.zeros(3, dtype=DOUBLE)
    value = gaussian_w2(m0, C0, m1, C1)
    expected = (m1 ** 2).sum() + (u ** 2).sum() + C1.trace() - 2 * (u @ C1 @ u).sqrt()
    # (square roots of round-off-sized eigenvalues: accurate to ~sqrt(eps), not eps)
    assert np.isclose(float(value.detach()), float(expected), rtol=1e-6)
    value.backward()
    assert bool(torch.isfinite(C0.grad).all())
    # both zero: W2 is the squared mean distance, and the gradient is still finite
    zero = torch.zeros(2, 2, dtype=DOUBLE, requires_grad=True)
    value = gaussian_w2(torch.zeros(2, dtype=DOUBLE), zero, torch.ones(2, dtype=DOUBLE), zero)
    assert np.isclose(float(value.detach()), 2.0)
    value.backward()
    assert bool(torch.isfinite(zero.grad).all())


def test_w2_against_exact_ot_between_samples():
    # Gelbrich's bound: W2^2 between any two measures >= the Gaussian formula at their means
    # and covariances; between 600-point samples the gap is a few percent.
    m0, m1 = torch.tensor([0.0, 0.0], dtype=DOUBLE), torch.tensor([2.0, 1.0], dtype=DOUBLE)
    C0 = torch.tensor([[1.0, 0.5], [0.5, 1.0]], dtype=DOUBLE)
    C1 = torch.tensor([[2.0, -0.3], [-0.3, 0.5]], dtype=DOUBLE)
    generator = torch.Generator().manual_seed(0)
    n = 600
    x = m0 + torch.randn(n, 2, generator=generator, dtype=DOUBLE) @ torch.linalg.cholesky(C0).T
    y = m1 + torch.randn(n, 2, generator=generator, dtype=DOUBLE) @ torch.linalg.cholesky(C1).T
    empirical = ot.emd2([], [], ot.dist(x.numpy(), y.numpy()))
    plug_in = float(gaussian_w2(x.mean(0), torch.cov(x.T, correction=0), y.mean(0),
                                torch.cov(y.T, correction=0)))
    assert plug_in <= empirical <= plug_in + 0.02 * empirical
    exact = float(gaussian_w2(m0, C0, m1, C1))
    assert abs(empirical - exact) < 0.05 * exact


def test_w2_gradcheck_float64():
    def w2(m0, L0, m1, L1):
        eye = torch.eye(3, dtype=DOUBLE)
        return gaussian_w2(m0, L0 @ L0.mT + 0.3 * eye, m1, L1 @ L1.mT + 0.3 * eye)

    m0, _ = random_gaussian(3, batch=(2,), seed=9)
    m1, _ = random_gaussian(3, batch=(2,), seed=10)
    generator = torch.Generator().manual_seed(11)
    L0, L1 = torch.randn(2, 2, 3, 3, generator=generator, dtype=DOUBLE)
    inputs = tuple(t.clone().requires_grad_() for t in (m0, L0, m1, L1))
    assert torch.autograd.gradcheck(w2, inputs)
    # repeated eigenvalues (isotropic covariances): the Sylvester backward stays exact
    identity = torch.eye(3, dtype=DOUBLE).expand(2, 3, 3).clone().requires_grad_()
    assert torch.autograd.gradcheck(
        w2, (inputs[0], identity, inputs[2], (2 * torch.eye(3, dtype=DOUBLE)).requires_grad_()))


# --------------------------------------------------------------------------- gaussian_map


def test_map_matches_pot_and_is_a_symmetric_psd_push_forward():
    m0, C0 = random_gaussian(3, seed=12)
    m1, C1 = random_gaussian(3, seed=13)
    A, b = gaussian_map(m0, C0, m1, C1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        A_pot, b_pot = ot.gaussian.bures_wasserstein_mapping(m0.numpy(), m1.numpy(),
                                                             C0.numpy(), C1.numpy())
    np.testing.assert_allclose(A.numpy(), A_pot, atol=1e-9)
    np.testing.assert_allclose(b.numpy(), np.ravel(b_pot), atol=1e-9)
    # the gradient of the convex x^T A x / 2 + b^T x: A symmetric PSD, and A C0 A = C1
    torch.testing.assert_close(A, A.T)
    assert float(torch.linalg.eigvalsh(A).min()) > 0
    torch.testing.assert_close(A @ C0 @ A, C1)
    # the transport cost of the map is W2^2
    cost = ((A - torch.eye(3, dtype=DOUBLE)) @ C0 @ (A - torch.eye(3, dtype=DOUBLE))).trace() \
        + ((A @ m0 + b - m0) ** 2).sum()
    torch.testing.assert_close(cost, gaussian_w2(m0, C0, m1, C1))


def test_map_pushes_samples_to_the_target():
    m0, C0 = random_gaussian(2, seed=14, dtype=torch.float32)
    m1, C1 = random_gaussian(2, seed=15, dtype=torch.float32)
    A, b = gaussian_map(m0, C0, m1, C1)
    generator = torch.Generator().manual_seed(16)
    x = m0 + torch.randn(50_000, 2, generator=generator) @ torch.linalg.cholesky(C0).T
    y = apply_gaussian_map(x, A, b)
    assert y.shape == (50_000, 2)
    scale = float(C1.diagonal().max().sqrt())
    torch.testing.assert_close(y.mean(0), m1, atol=0.03 * scale, rtol=0)
    torch.testing.assert_close(torch.cov(y.T), C1, atol=0.05 * scale ** 2, rtol=0)
    torch.testing.assert_close(apply_gaussian_map(x[0], A, b), y[0])


def test_map_batched_and_differentiable():
    m0, C0 = random_gaussian(2, batch=(3,), seed=17)
    m1, C1 = random_gaussian(2, seed=18)
    A, b = gaussian_map(m0, C0, m1, C1)
    assert A.shape == (3, 2, 2) and b.shape == (3, 2)
    for i in range(3):
        A_i, b_i = gaussian_map(m0[i], C0[i], m1, C1)
        torch.testing.assert_close(A[i], A_i)
        torch.testing.assert_close(b[i], b_i)
    points = torch.zeros(3, 5, 2, dtype=DOUBLE)
    assert apply_gaussian_map(points, A, b).shape == (3, 5, 2)

    def map_entries(L0, m1):
        A, b = gaussian_map(m0[0], L0 @ L0.T + 0.5 * torch.eye(2, dtype=DOUBLE), m1, C1)
        return A, b

    L0 = torch.tensor([[1.0, 0.0], [0.4, 0.8]], dtype=DOUBLE, requires_grad=True)
    assert torch.autograd.gradcheck(map_entries, (L0, m1.clone().requires_grad_()))


# --------------------------------------------------------------------------- mixtures


def three_clusters(n_per=200, seed=0, dtype=DOUBLE):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-6.0, 0.0], [0.0, 6.0], [6.0, -1.0]], dtype=dtype)
    scales = torch.tensor([0.5, 1.0, 0.8], dtype=dtype)
    x = torch.cat([c + s * torch.randn(n_per, 2, generator=generator, dtype=dtype)
                   for c, s in zip(centres, scales)])
    return x, centres, scales


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_fit_recovers_well_separated_clusters(covariance_type, init_params):
    x, centres, scales = three_clusters()
    model = GaussianMixture(3, covariance_type=covariance_type, init_params=init_params,
                            seed=1).fit(x)
    assert model.converged_ and 1 <= model.n_iter_ <= 100
    order = torch.argsort(model.means_[:, 0])
    torch.testing.assert_close(model.means_[order], centres, atol=0.15, rtol=0)
    torch.testing.assert_close(model.weights_[order], torch.full((3,), 1 / 3, dtype=DOUBLE),
                               atol=1e-3, rtol=0)
    variances = model.covariances_[order].diagonal(dim1=-2, dim2=-1)
    torch.testing.assert_close(variances, (scales ** 2)[:, None].expand(3, 2), rtol=0.25,
                               atol=0)
    assert model.covariances_.shape == (3, 2, 2)
    if covariance_type != "full":
        off_diagonal = model.covariances_[order] - torch.diag_embed(variances)
        assert float(off_diagonal.abs().max()) == 0
    assert np.isfinite(model.lower_bound_)


def test_fit_float32_and_reset():
    x, centres, _ = three_clusters(n_per=100, dtype=torch.float32)
    model = GaussianMixture(3)
    assert model.means_ is None
    model.fit(x)
    assert model.means_.dtype == torch.float32
    torch.testing.assert_close(torch.sort(model.means_[:, 0]).values, centres[:, 0],
                               atol=0.2, rtol=0)
    assert "n_components=3" in repr(model)
    model.reset_parameters()
    assert model.means_ is None and not model.converged_ and model.n_iter_ == 0


def test_fit_warns_when_not_converged():
    x, _, _ = three_clusters(n_per=50)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        model = GaussianMixture(3, max_iter=1, tol=0.0).fit(x)
    assert not model.converged_ and model.n_iter_ == 1


def mixture_parameters(seed=0, K=3, d=2):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.rand(K, generator=generator, dtype=DOUBLE) + 0.2
    means, covariances = random_gaussian(d, batch=(K,), seed=seed + 100, ridge=0.3)
    return weights / weights.sum(), 2 * means, covariances


def test_log_prob_matches_scipy():
    weights, means, covariances = mixture_parameters()
    model = GaussianMixture.from_parameters(weights, means, covariances)
    x = torch.randn(4, 7, 2, generator=torch.Generator().manual_seed(1), dtype=DOUBLE)
    expected = logsumexp(np.stack([
        np.log(w) + multivariate_normal(m, C).logpdf(x.numpy())
        for w, m, C in zip(weights.numpy(), means.numpy(), covariances.numpy())]), axis=0)
    log_prob = model.log_prob(x)
    assert log_prob.shape == (4, 7)
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-10)
    torch.testing.assert_close(model(x), log_prob)


def test_sample_moments():
    weights, means, covariances = mixture_parameters(seed=2)
    model = GaussianMixture.from_parameters(weights, means, covariances)
    samples = model.sample(40_000, generator=torch.Generator().manual_seed(3))
    assert samples.shape == (40_000, 2) and samples.dtype == DOUBLE
    mean = weights @ means
    second = (weights[:, None, None] * (covariances + means[:, :, None] * means[:, None, :]))
    covariance = second.sum(0) - torch.outer(mean, mean)
    torch.testing.assert_close(samples.mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(samples.T), covariance, atol=0.1, rtol=0.05)


def test_gmm_w2_one_component_is_gaussian_w2():
    m0, C0 = random_gaussian(3, seed=20)
    m1, C1 = random_gaussian(3, seed=21)
    one = torch.ones(1, dtype=DOUBLE)
    gmm0 = GaussianMixture.from_parameters(one, m0[None], C0[None])
    gmm1 = GaussianMixture.from_parameters(one, m1[None], C1[None])
    value, coupling = gmm_w2(gmm0, gmm1, return_coupling=True)
    torch.testing.assert_close(value, gaussian_w2(m0, C0, m1, C1))
    torch.testing.assert_close(coupling, torch.ones(1, 1, dtype=DOUBLE))


def test_gmm_w2_matches_emd_on_the_bures_cost_and_is_a_distance():
    gmm0 = GaussianMixture.from_parameters(*mixture_parameters(seed=4, K=3))
    gmm1 = GaussianMixture.from_parameters(*mixture_parameters(seed=5, K=4))
    value, coupling = gmm_w2(gmm0, gmm1, return_coupling=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        bures = ot.gaussian.bures_wasserstein_distance(
            gmm0.means_.numpy(), gmm1.means_.numpy(), gmm0.covariances_.numpy(),
            gmm1.covariances_.numpy()) ** 2
    expected = ot.emd2(gmm0.weights_.numpy(), gmm1.weights_.numpy(), bures)
    assert np.isclose(float(value), expected, rtol=1e-9)
    assert coupling.shape == (3, 4)
    torch.testing.assert_close(coupling.sum(1), gmm0.weights_)
    torch.testing.assert_close(coupling.sum(0), gmm1.weights_)
    assert float(gmm_w2(gmm0, gmm0)) < 1e-10
    assert np.isclose(float(gmm_w2(gmm1, gmm0)), float(value), rtol=1e-10)


def test_gmm_w2_gradient_and_fitted_mixtures():
    weights, means, covariances = mixture_parameters(seed=6)
    means = means.clone().requires_grad_()
    weights = weights.clone().requires_grad_()
    gmm0 = GaussianMixture.from_parameters(weights, means, covariances)
    x, _, _ = three_clusters(n_per=60)
    gmm1 = GaussianMixture(3).fit(x)
    value = gmm_w2(gmm0, gmm1)
    value.backward()
    assert bool(torch.isfinite(means.grad).all()) and float(means.grad.abs().sum()) > 0
    assert bool(torch.isfinite(weights.grad).all())
    # the gradient w.r.t. the means is sum_kl w_kl d||m0_k - m1_l||^2 / dm0_k
    _, coupling = gmm_w2(gmm0, gmm1, return_coupling=True)
    expected = 2 * (coupling.sum(1)[:, None] * means.detach() - coupling @ gmm1.means_)
    torch.testing.assert_close(means.grad, expected)


# --------------------------------------------------------------------------- errors


def _gaussians():
    m, C = random_gaussian(2, seed=30)
    return m, C


@pytest.mark.parametrize(("change", "error", "message"), [
    (lambda m, C: (m, C + torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=DOUBLE)),
     ValueError, "gaussian_w2: C0 must be symmetric, got"),
    (lambda m, C: (m, -C), ValueError,
     "gaussian_w2: C0 must be symmetric positive semi-definite, got"),
    (lambda m, C: (m[:1], C), ValueError, "same d"),
    (lambda m, C: (m, C[:, :1]), ValueError, "same d"),
    (lambda m, C: (m, C.float()), TypeError, "share a dtype"),
    (lambda m, C: (m.half(), C), TypeError, "m0 must be float32 or float64"),
    (lambda m, C: (m.numpy(), C), TypeError, "m0 must be a torch.Tensor"),
    (lambda m, C: (m, C * float("nan")), ValueError, "C0 contains 4 NaN"),
    (lambda m, C: (m.expand(3, 2), C.expand(4, 2, 2)), ValueError, "do not broadcast"),
])
def test_gaussian_w2_errors(change, error, message):
    m, C = _gaussians()
    m0, C0 = change(m, C)
    with pytest.raises(error, match=message):
        gaussian_w2(m0, C0, m, C)


def test_gaussian_map_errors():
    m, C = _gaussians()
    singular = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=DOUBLE)
    with pytest.raises(ValueError, match="gaussian_map: C0 must be positive definite"):
        gaussian_map(m, singular, m, C)
    gaussian_map(m, C, m, singular)  # a singular target is fine
    with pytest.raises(ValueError, match="gaussian_map: C1 must be symmetric positive semi"):
        gaussian_map(m, C, m, -C)
    with pytest.raises(ValueError, match="apply_gaussian_map: expected x"):
        apply_gaussian_map(torch.zeros(5, 3, dtype=DOUBLE), C, m)
    with pytest.raises(TypeError, match="apply_gaussian_map: A must be a torch.Tensor"):
        apply_gaussian_map(torch.zeros(5, 2), None, m)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"n_components": 0}, ValueError, "n_components must be an int >= 1, got 0"),
    ({"n_components": 2.0}, ValueError, "n_components must be an int"),
    ({"n_components": 2, "covariance_type": "tied"}, ValueError, "covariance_type must be"),
    ({"n_components": 2, "init_params": "kmeans"}, ValueError, "init_params must be"),
    ({"n_components": 2, "reg_covar": -1.0}, ValueError, "reg_covar must be"),
    ({"n_components": 2, "tol": float("nan")}, ValueError, "tol must be"),
    ({"n_components": 2, "max_iter": 0}, ValueError, "max_iter must be an int >= 1"),
    ({"n_components": 2, "seed": None}, TypeError, "seed must be an int"),
])
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=f"GaussianMixture: {message}"):
        GaussianMixture(**kwargs)


def test_fit_and_inference_errors():
    model = GaussianMixture(5)
    with pytest.raises(ValueError, match="fit: x has 3 samples, fewer than n_components=5"):
        model.fit(torch.randn(3, 2))
    with pytest.raises(ValueError, match="fit: x must be \\(n, d\\)"):
        model.fit(torch.randn(2, 10, 2))
    with_nan = torch.randn(10, 2)
    with_nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="fit: x contains 1 NaN"):
        model.fit(with_nan)
    with pytest.raises(RuntimeError, match="log_prob: the mixture is not fitted"):
        model.log_prob(torch.randn(3, 2))
    with pytest.raises(RuntimeError, match="sample: the mixture is not fitted"):
        model.sample(3)
    fitted = GaussianMixture.from_parameters(*mixture_parameters())
    with pytest.raises(ValueError, match="log_prob: x must be \\(..., 2\\)"):
        fitted.log_prob(torch.randn(3, 4, dtype=DOUBLE))
    with pytest.raises(ValueError, match="sample: n must be an int >= 0"):
        fitted.sample(-1)


@pytest.mark.parametrize(("change", "error", "message"), [
    (lambda w, m, C: (2 * w, m, C), ValueError, "weights must sum to 1, got 2"),
    (lambda w, m, C: (w * torch.tensor([-1.0, 1.0, 1.0], dtype=DOUBLE), m, C), ValueError,
     "weights must be >= 0"),
    (lambda w, m, C: (w[:2], m, C), ValueError, "expected weights \\(K,\\)"),
    (lambda w, m, C: (w, m, C[:, :1]), ValueError, "expected weights"),
    (lambda w, m, C: (w, m, C.float()), TypeError,
     "weights, means, covariances must share a dtype"),
    (lambda w, m, C: (w, m, C - 10 * torch.eye(2, dtype=DOUBLE)), ValueError,
     "covariances must be symmetric positive semi-definite"),
    (lambda w, m, C: (w, m, C * torch.tensor([1.0, 0.0], dtype=DOUBLE)[:, None]
                      * torch.tensor([1.0, 0.0], dtype=DOUBLE)), ValueError,
     "covariances must be positive definite"),
])
def test_from_parameters_errors(change, error, message):
    with pytest.raises(error, match=f"from_parameters: {message}"):
        GaussianMixture.from_parameters(*change(*mixture_parameters()))


def test_gmm_w2_errors():
    fitted = GaussianMixture.from_parameters(*mixture_parameters())
    with pytest.raises(TypeError, match="gmm_w2: gmm1 must be a GaussianMixture"):
        gmm_w2(fitted, (1, 2, 3))
    with pytest.raises(RuntimeError, match="gmm_w2: gmm1: the mixture is not fitted"):
        gmm_w2(fitted, GaussianMixture(2))
    other = GaussianMixture.from_parameters(*mixture_parameters(d=3))
    with pytest.raises(ValueError, match="gmm_w2: the mixtures live in different dim"):
        gmm_w2(fitted, other)
    single = GaussianMixture.from_parameters(*(t.float() for t in mixture_parameters()))
    with pytest.raises(TypeError, match="gmm_w2: the mixtures have different dtypes"):
        gmm_w2(fitted, single)
