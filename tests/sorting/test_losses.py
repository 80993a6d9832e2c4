"""spearman_loss against scipy.stats.spearmanr, soft least trimmed squares against brute
force trimmed means and least squares, gradients by finite differences, error paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from lutece.sorting import soft_least_trimmed_squares, spearman_loss


def test_spearman_hard_limit_matches_scipy():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(6, 30, dtype=torch.float64, generator=g)
    target = pred + torch.randn(6, 30, dtype=torch.float64, generator=g)
    loss = spearman_loss(pred, target, regularization_strength=1e-6)
    expected = [1 - spearmanr(p, t).statistic for p, t in zip(pred.numpy(), target.numpy())]
    np.testing.assert_allclose(loss.numpy(), expected, atol=1e-9)
    assert spearman_loss(target, target, regularization_strength=1e-6).abs().max() < 1e-9
    reversed_loss = spearman_loss(-target, target, regularization_strength=1e-6)
    torch.testing.assert_close(reversed_loss, torch.full((6,), 2.0, dtype=torch.float64))


def test_spearman_shape_dim_and_integer_target():
    pred = torch.randn(3, 7, 5, dtype=torch.float64)
    target = torch.randint(0, 100, (3, 7, 5))
    loss = spearman_loss(pred, target, dim=1)
    assert loss.shape == (3, 5)
    expected = spearman_loss(pred.movedim(1, -1), target.movedim(1, -1).double())
    torch.testing.assert_close(loss, expected)


def test_spearman_gradcheck():
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    target = torch.randn(3, 6, dtype=torch.float64, generator=g)
    for regularization in ("l2", "kl"):
        assert torch.autograd.gradcheck(
            lambda p, r=regularization: spearman_loss(p, target, regularization=r), (pred,))


def test_lts_limits():
    g = torch.Generator().manual_seed(2)
    residuals = torch.randn(4, 20, dtype=torch.float64, generator=g)
    residuals[:, :3] *= 30  # outliers
    squares = residuals.pow(2)
    hard = soft_least_trimmed_squares(residuals, 0.2, regularization_strength=1e-9)
    expected = squares.sort(dim=1).values[:, :16].mean(dim=1)
    torch.testing.assert_close(hard, expected)
    least_squares = soft_least_trimmed_squares(residuals, 0.2, regularization_strength=1e9)
    torch.testing.assert_close(least_squares, squares.mean(dim=1))
    untrimmed = soft_least_trimmed_squares(residuals, 0.0, regularization_strength=1.0)
    torch.testing.assert_close(untrimmed, squares.mean(dim=1))


def test_lts_gradcheck():
    x = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda r: soft_least_trimmed_squares(r, 0.25, regularization_strength=0.5), (x,))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: spearman_loss(torch.randn(3), torch.randn(4)), ValueError, "target must have"),
        (lambda: spearman_loss(torch.randn(1), torch.randn(1)), ValueError, "at least 2"),
        (lambda: spearman_loss(torch.randn(3), [1, 2, 3]), TypeError, "target must be a"),
        (lambda: spearman_loss(torch.tensor([1.0, float("nan")]), torch.randn(2)), ValueError,
         "pred contains"),
        (lambda: spearman_loss(torch.randn(3), torch.tensor([1.0, float("inf"), 2.0])),
         ValueError, "target contains"),
        (lambda: soft_least_trimmed_squares(torch.randn(5), 1.0), ValueError, "trim must be"),
        (lambda: soft_least_trimmed_squares(torch.randn(5), -0.1), ValueError, "trim must be"),
        (lambda: soft_least_trimmed_squares(torch.randn(5), "x"), TypeError, "trim must be"),
        (lambda: soft_least_trimmed_squares(torch.randn(2, 0), 0.1), ValueError, "no entries"),
    ],
)
def test_loss_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_pairwise_baseline_and_its_errors():
    from lutece.sorting.baselines import pairwise_soft_rank

    x = torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(pairwise_soft_rank(x, temperature=1e-3),
                               torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        pairwise_soft_rank(x, temperature=0.0)
    with pytest.raises(ValueError, match="pairwise_soft_rank: x contains"):
        pairwise_soft_rank(torch.tensor([float("nan")]))
