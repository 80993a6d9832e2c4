"""Fixed normalizations: each inverse undoes its forward map on the data it was fitted on
(so every method is scored in the original space), tf-idf against its textbook formula,
and the held-out score."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lutece.factorization import BASELINES, fit_baseline, heldout_error, make_normalizer


@pytest.fixture
def counts() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.poisson(torch.full((6, 40), 3.0, dtype=torch.float64), generator) \
        * torch.logspace(-2, 3, 6, dtype=torch.float64)[:, None]
    mask = torch.rand(6, 40, generator=generator) > 0.2
    return x, mask


@pytest.mark.parametrize("name", list(BASELINES))
def test_inverse_undoes_forward(counts, name):
    x, mask = counts
    normalizer = make_normalizer(name).fit(x, mask)
    before = x.clone()
    roundtrip = normalizer.inverse(normalizer.forward(x))
    torch.testing.assert_close(x, before)
    torch.testing.assert_close(roundtrip[mask], x[mask], atol=1e-6, rtol=1e-6)


def test_zscore_and_tfidf_follow_their_formulas(counts):
    x, mask = counts
    z = make_normalizer("zscore").fit(x, torch.ones_like(mask)).forward(x)
    torch.testing.assert_close(z.mean(1), torch.zeros(6, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    tfidf = make_normalizer("tfidf").fit(x, torch.ones_like(mask)).forward(x)
    n = x.shape[1]
    for i, j in [(0, 0), (3, 7), (5, 39)]:
        df = int((x[i] > 0).sum())
        expected = x[i, j] / x[:, j].sum() * (math.log((1 + n) / (1 + df)) + 1)
        assert float(tfidf[i, j]) == pytest.approx(float(expected), rel=1e-12)


def test_tfidf_rejects_negative_values():
    x = torch.tensor([[1.0, -2.0], [3.0, 4.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=">= 0"):
        make_normalizer("tfidf").fit(x, torch.ones(2, 2, dtype=torch.bool))


def test_fit_baseline_predicts_every_entry_in_data_units(counts):
    x, mask = counts
    prediction = fit_baseline("log1p", x, mask, 2, epochs=5)
    assert prediction.shape == x.shape and bool(torch.isfinite(prediction).all())
    # same order of magnitude as each row
    ratio = prediction.mean(1) / x.mean(1)
    assert bool(((ratio > 0.3) & (ratio < 3)).all())


def test_heldout_error():
    truth = torch.tensor([[0.0, 2.0, 4.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    prediction = truth + torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]],
                                      dtype=torch.float64)
    heldout = torch.tensor([[True, True, False], [False, False, True]])
    # row 0 std = 2, row 1 has std 0 -> scale 1
    assert heldout_error(prediction, truth, heldout) == pytest.approx((1 + 0 + 9) / 3)
    assert heldout_error(prediction, truth, heldout, metric="mae") == pytest.approx(
        (1 + 0 + 3) / 3)
    assert np.isfinite(heldout_error(prediction, truth, heldout))
    with pytest.raises(ValueError, match="name must be one of"):
        make_normalizer("sqrt")
