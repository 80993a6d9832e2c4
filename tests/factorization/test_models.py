"""QuantileNormalizedFactorization: on low-rank data distorted by a known monotone map per
row, the learned normalization recovers the inverse distortion's values (R^2 after an
affine fit per row against the clean matrix) and the held-out fit beats the unnormalized
one in the original data space; every mode runs; every documented error is raised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lutece.factorization import (
    QuantileNormalizedFactorization,
    distorted_low_rank,
    heldout_error,
)


def row_r2(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per row, R^2 of ``estimate`` against the best affine function of ``truth``."""
    scores = []
    for est, tru in zip(estimate, truth):
        design = np.stack([tru, np.ones_like(tru)], axis=1)
        coefficients, *_ = np.linalg.lstsq(design, est, rcond=None)
        scores.append(1 - ((est - design @ coefficients) ** 2).sum()
                      / ((est - est.mean()) ** 2).sum())
    return np.asarray(scores)


@pytest.fixture(scope="module")
def distorted_fit():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # module scope: set up before the autouse fixture runs
    try:
        data = distorted_low_rank(20, 80, 3, distortion="random", seed=3)
        mask = torch.rand(20, 80, generator=torch.Generator().manual_seed(13)) > 0.2
        learned = QuantileNormalizedFactorization(3, normalize="input", seed=0)
        learned.fit(data.X, mask, epochs=200, progress=False)
        plain = QuantileNormalizedFactorization(3, normalize="none", seed=0)
        plain.fit(data.X, mask, epochs=50, progress=False)
    finally:
        torch.set_num_threads(threads)
    return data, mask, learned, plain


def test_learned_normalization_recovers_the_inverse_distortion_values(distorted_fit):
    data, _, learned, _ = distorted_fit
    raw = row_r2(data.X.numpy(), data.clean.numpy())
    recovered = row_r2(learned.normalized(data.X).numpy(), data.clean.numpy())
    assert raw.min() < 0.8                    # some rows are far from an affine map of L
    assert recovered.mean() >= 0.95
    assert recovered.min() >= 0.9
    assert 1 - recovered.mean() < 0.5 * (1 - raw.mean())   # unexplained variance halved


def test_learned_fit_beats_unnormalized_fit_on_heldout_entries(distorted_fit):
    data, mask, learned, plain = distorted_fit
    ours = heldout_error(learned.reconstruct(), data.X, ~mask)
    theirs = heldout_error(plain.reconstruct(), data.X, ~mask)
    assert ours < 0.6 * theirs
    assert bool((learned.targets_.diff(dim=-1) > 0).all())
    assert learned.loss_history_[-1] < learned.loss_history_[0]


@pytest.mark.parametrize("normalize, nonnegative, loss", [
    ("output", False, "squared"), ("output", True, "kl"), ("input", True, "squared"),
    ("both", False, "kl"), ("both", True, "squared"), ("none", True, "kl"),
    ("none", False, "squared"),
])
def test_every_mode_fits_and_exposes_its_state(normalize, nonnegative, loss):
    data = distorted_low_rank(8, 24, 2, seed=1)
    x = data.X.clone()
    mask = torch.rand(8, 24, generator=torch.Generator().manual_seed(2)) > 0.25
    x[~mask] = float("nan")
    before = x.clone()
    model = QuantileNormalizedFactorization(2, normalize=normalize, nonnegative=nonnegative,
                                            loss=loss, num_quantiles=5, solver_iterations=5)
    assert model.fit(x, mask, epochs=5, progress=False) is model
    torch.testing.assert_close(x, before, equal_nan=True)          # input untouched
    assert model.U_.shape == (8, 2) and model.V_.shape == (2, 24)
    reconstruction = model.reconstruct()
    assert reconstruction.shape == (8, 24) and bool(torch.isfinite(reconstruction).all())
    if nonnegative:
        assert bool((model.U_ >= 0).all()) and bool((model.V_ >= 0).all())
    if normalize == "none":
        assert model.targets_ is None
    else:
        assert model.targets_.shape == (8, 5)
        assert bool((model.targets_.diff(dim=-1) > 0).all())
    if normalize == "both":
        assert model.input_targets_.shape == model.output_targets_.shape == (8, 5)
    normalized = model.normalized(x, mask)
    assert normalized.shape == (8, 24) and bool(torch.isfinite(normalized).all())
    u, v = model.transform(data.X[:, :10])
    assert u.shape == (8, 2) and v.shape == (2, 10)


def test_fit_accepts_numpy_and_leaves_it_unchanged():
    array = distorted_low_rank(6, 15, 2, seed=0).X.numpy().copy()
    before = array.copy()
    model = QuantileNormalizedFactorization(2, normalize="output", num_quantiles=4)
    model.fit(array, epochs=3, progress=False)
    np.testing.assert_array_equal(array, before)
    assert model.reconstruct().dtype == torch.float64


def test_transform_of_the_training_matrix_matches_its_factors():
    data = distorted_low_rank(10, 30, 2, distortion="none", seed=4)
    model = QuantileNormalizedFactorization(2, normalize="none").fit(data.X, epochs=30,
                                                                     progress=False)
    u, v = model.transform(data.X)
    torch.testing.assert_close(u @ v, model.U_ @ model.V_, atol=1e-3, rtol=1e-3)


X = torch.arange(24, dtype=torch.float64).reshape(4, 6)


@pytest.mark.parametrize("arguments, fit_arguments, error, match", [
    ({"rank": 5}, {}, ValueError, r"rank must be <= min\(d, n\) = 4"),
    ({"rank": 0}, {}, ValueError, "rank must be >= 1"),
    ({"rank": 2, "normalize": "rows"}, {}, ValueError, "normalize must be one of"),
    ({"rank": 2, "loss": "l1"}, {}, ValueError, "loss must be one of"),
    ({"rank": 2, "loss": "kl", "normalize": "none"}, {}, ValueError, "nonnegative=True"),
    ({"rank": 2, "epsilon": -1.0}, {}, ValueError, "epsilon must be > 0"),
    ({"rank": 2, "num_quantiles": 1}, {}, ValueError, "num_quantiles must be >= 2"),
    ({"rank": 2, "regularization": -1.0}, {}, ValueError, "regularization must be"),
    ({"rank": 2}, {"mask": torch.ones(4, 5, dtype=torch.bool)}, ValueError,
     r"mask must have X's shape \(4, 6\)"),
    ({"rank": 2}, {"mask": torch.ones(4, 6)}, TypeError, "mask must be a bool tensor"),
    ({"rank": 2}, {"epochs": 0}, ValueError, "epochs must be >= 1"),
    ({"rank": 2}, {"lr": 0.0}, ValueError, "lr must be > 0"),
])
def test_configuration_and_argument_errors(arguments, fit_arguments, error, match):
    with pytest.raises(error, match=match):
        QuantileNormalizedFactorization(**arguments).fit(X, progress=False, **fit_arguments)


def test_data_errors():
    model = QuantileNormalizedFactorization(2)
    with_nan = X.clone()
    with_nan[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"pass mask=~torch.isnan\(X\)"):
        model.fit(with_nan, progress=False)
    with pytest.raises(ValueError, match="at observed entries"):
        model.fit(with_nan, torch.ones(4, 6, dtype=torch.bool), progress=False)
    sparse = torch.ones(4, 6, dtype=torch.bool)
    sparse[2, 1:] = False
    with pytest.raises(ValueError, match="row 2 has 1"):
        model.fit(X, sparse, progress=False)
    with pytest.raises(ValueError, match="X >= 0"):
        QuantileNormalizedFactorization(2, loss="kl").fit(X - 10, progress=False)
    with pytest.raises(TypeError, match="must hold numbers"):
        model.fit(np.array([["a", "b"], ["c", "d"]]), progress=False)
    with pytest.raises(ValueError, match=r"\(d, n\) matrix"):
        model.fit(torch.zeros(3, dtype=torch.float64), progress=False)
    with pytest.raises(RuntimeError, match="call fit"):
        QuantileNormalizedFactorization(2).reconstruct()
