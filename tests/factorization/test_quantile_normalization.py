"""QuantileNormalization and its helpers against independent references: the epsilon -> 0
limit against numpy's "sort, then map to the targets", the masked operator against the
operator on the observed entries alone, gradients against finite differences
(gradcheck), monotone targets by construction (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch.autograd import gradcheck
from torch.func import functional_call

from lutece.factorization import (
    QuantileNormalization,
    hard_quantile_normalization,
    masked_quantile_normalization,
    monotone_targets,
)
from lutece.factorization.quantile_normalization import interpolate_rows
from lutece.ot import ImplicitOptions
from lutece.ot.tools.soft_sort import quantile_normalization

TIGHT = {"threshold": 1e-12, "max_iterations": 10_000,
         "implicit_options": ImplicitOptions(tolerance=1e-12, max_iterations=1000)}


def numpy_hard_qn(x: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Sort each row, give its k-th smallest entry the targets' mean over the entry's
    quantile window: with n m slots, entry k owns slots [k m, (k+1) m), target j owns
    [j n, (j+1) n)."""
    d, n = x.shape
    m = targets.shape[1]
    out = np.empty_like(x)
    for i in range(d):
        per_slot = np.repeat(targets[i], n)                     # n m slots
        by_rank = per_slot.reshape(n, m).mean(axis=1)
        out[i, np.argsort(x[i], kind="stable")] = by_rank
    return out


def separated_rows(rng: np.random.Generator, d: int, n: int) -> np.ndarray:
    return np.stack([rng.permutation(n) + 0.1 * rng.standard_normal(n) for _ in range(d)])


@pytest.mark.parametrize("n, m", [(12, 4), (12, 12), (10, 4), (7, 3)])
def test_hard_quantile_normalization_matches_numpy(n, m):
    rng = np.random.default_rng(n + m)
    x = rng.standard_normal((3, n))
    targets = np.sort(3 * rng.standard_normal((3, m)), axis=1)
    ours = hard_quantile_normalization(torch.from_numpy(x), torch.from_numpy(targets))
    np.testing.assert_allclose(ours.numpy(), numpy_hard_qn(x, targets), atol=1e-12)
    if n % m == 0:   # the textbook rule: the k-th smallest entry takes f_{floor(k m / n)}
        simple = np.empty_like(x)
        for i in range(3):
            simple[i, np.argsort(x[i])] = targets[i][np.arange(n) * m // n]
        np.testing.assert_allclose(ours.numpy(), simple, atol=1e-12)


@pytest.mark.parametrize("n, m", [(12, 4), (9, 9)])
def test_soft_operator_tends_to_hard_quantile_normalization(n, m):
    rng = np.random.default_rng(0)
    x = separated_rows(rng, 4, n)
    targets = np.sort(3 * rng.standard_normal((4, m)), axis=1)
    reference = numpy_hard_qn(x, targets)
    gaps = []
    for epsilon in (1e-1, 1e-2, 1e-4):
        module = QuantileNormalization(4, m, epsilon=epsilon, epsilon_schedule=(100.0, 0.9))
        module.set_targets(torch.from_numpy(targets))
        with torch.no_grad():
            out = module(torch.from_numpy(x)).numpy()
        gaps.append(np.abs(out - reference).max())
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-6


def test_masked_operator_is_the_operator_on_observed_entries():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((3, 9)))
    targets = torch.from_numpy(np.sort(rng.standard_normal((3, 4)), axis=1))
    everything = torch.ones(3, 9, dtype=torch.bool)
    full = masked_quantile_normalization(x, targets, everything, epsilon=0.05, **TIGHT)
    reference = quantile_normalization(x, targets, epsilon=0.05, warn=False, **TIGHT)
    torch.testing.assert_close(full, reference, atol=1e-9, rtol=0)
    mask = torch.from_numpy(rng.random((3, 9)) > 0.3)
    mask[:, 0] = True
    masked = masked_quantile_normalization(x, targets, mask, epsilon=0.05, **TIGHT)
    for i in range(3):
        alone = quantile_normalization(x[i][mask[i]], targets[i], epsilon=0.05, warn=False,
                                       **TIGHT)
        torch.testing.assert_close(masked[i][mask[i]], alone, atol=1e-9, rtol=0)
        # unobserved entries are mapped monotonically with the observed ones
        order = torch.argsort(x[i])
        assert bool((masked[i][order].diff() >= -1e-12).all())


def test_module_with_mask_ignores_nan_at_unobserved_entries():
    x = torch.tensor([[0.3, float("nan"), 2.0, -1.0], [1.0, 2.0, 3.0, 4.0]],
                     dtype=torch.float64)
    mask = ~torch.isnan(x)
    module = QuantileNormalization(2, 3)
    out = module(x, mask)
    assert bool(torch.isfinite(out).all())
    with pytest.raises(ValueError, match="NaN"):
        module(x)


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    first = torch.randn(3, 1, dtype=torch.float64, requires_grad=True)
    gaps = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    module = QuantileNormalization(3, 3, epsilon=0.1, **TIGHT)

    def through_module(x, first, gaps):
        return functional_call(module, {"first": first, "gap_logits": gaps}, (x,))

    assert gradcheck(through_module, (x, first, gaps))
    mask = torch.tensor([[1, 1, 0, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]], dtype=torch.bool)

    def masked(x, first, gaps):
        return functional_call(module, {"first": first, "gap_logits": gaps}, (x, mask))

    assert gradcheck(masked, (x, first, gaps))


@settings(max_examples=80, deadline=None)
@given(first=arrays(np.float64, (3, 1), elements=st.floats(-100, 100)),
       gaps=arrays(np.float64, (3, 6), elements=st.floats(-20, 20)),
       nonnegative=st.booleans())
def test_parameterization_is_strictly_increasing(first, gaps, nonnegative):
    targets = monotone_targets(torch.from_numpy(first), torch.from_numpy(gaps),
                               nonnegative=nonnegative)
    assert bool((targets.diff(dim=-1) > 0).all())
    if nonnegative:
        assert bool((targets > 0).all())


def test_learned_targets_stay_monotone_under_adversarial_training():
    """An objective that rewards reversing the targets cannot break their order."""
    torch.manual_seed(0)
    module = QuantileNormalization(4, 6, epsilon=0.05)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.5)
    x = torch.randn(4, 20, dtype=torch.float64)
    for _ in range(50):
        optimizer.zero_grad()
        out = module(x)
        targets = module.targets
        loss = (targets[:, -1] - targets[:, 0]).sum() + (out * x).sum()
        loss.backward()
        optimizer.step()
        assert bool((module.targets.diff(dim=-1) > 0).all())


def test_set_targets_and_initializations():
    values = torch.tensor([[1.0, 2.0, 4.0], [-3.0, -3.0, 10.0]], dtype=torch.float64)
    module = QuantileNormalization(2, 3)
    module.set_targets(values)
    torch.testing.assert_close(module.targets, values, atol=1e-6, rtol=0)
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]] * 2, dtype=torch.float64) \
        * torch.tensor([[1.0], [100.0]], dtype=torch.float64)
    data_init = QuantileNormalization(2, 4, init="data")
    with pytest.raises(RuntimeError, match="reset_parameters"):
        data_init(x)
    data_init.reset_parameters(x)
    expected = torch.quantile(x, torch.tensor([0.125, 0.375, 0.625, 0.875],
                                              dtype=torch.float64), dim=1).T
    torch.testing.assert_close(data_init.targets, expected, atol=1e-6, rtol=0)
    uniform = QuantileNormalization(2, 3)
    torch.testing.assert_close(uniform.targets[0], torch.tensor([0.0, 0.5, 1.0],
                                                                dtype=torch.float64))
    uniform.reset_parameters(x)
    torch.testing.assert_close(uniform.targets[1], torch.tensor([0.0, 350.0, 700.0],
                                                                dtype=torch.float64))
    positive = QuantileNormalization(2, 3, nonnegative=True)
    positive.set_targets(torch.tensor([[-1.0, 0.0, 1.0], [0.0, 2.0, 3.0]],
                                      dtype=torch.float64))
    assert bool((positive.targets > 0).all())
    assert "num_quantiles=3" in repr(positive)


def test_interpolate_rows_is_the_monotone_piecewise_linear_map():
    knots = torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64)
    values = torch.tensor([[10.0, 20.0, 40.0]], dtype=torch.float64)
    points = torch.tensor([[-1.0, 0.0, 0.5, 2.0, 3.0, 9.0]], dtype=torch.float64)
    expected = torch.tensor([[10.0, 10.0, 15.0, 30.0, 40.0, 40.0]], dtype=torch.float64)
    torch.testing.assert_close(interpolate_rows(points, knots, values), expected)
    tied = torch.tensor([[0.0, 1.0, 1.0, 2.0]], dtype=torch.float64)
    mapped = interpolate_rows(points, tied, torch.tensor([[0.0, 1.0, 2.0, 3.0]],
                                                         dtype=torch.float64))
    assert bool(torch.isfinite(mapped).all())
    assert bool((mapped.diff(dim=-1) >= 0).all())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"num_rows": 0}, ValueError, "num_rows must be >= 1"),
    ({"num_rows": 2, "num_quantiles": 1}, ValueError, "num_quantiles must be >= 2"),
    ({"num_rows": 2, "epsilon": 0.0}, ValueError, "epsilon must be > 0"),
    ({"num_rows": 2, "init": "random"}, ValueError, "init must be one of"),
    ({"num_rows": 2.5}, TypeError, "num_rows must be an int"),
])
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        QuantileNormalization(**kwargs)


def test_input_errors():
    module = QuantileNormalization(3, 4)
    with pytest.raises(ValueError, match="num_rows = 3 rows"):
        module(torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        module(torch.zeros(3, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="mask must have x's shape"):
        module(torch.zeros(3, 5, dtype=torch.float64), torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool tensor"):
        module(torch.zeros(3, 5, dtype=torch.float64), torch.ones(3, 5))
    with pytest.raises(ValueError, match="at least one observed"):
        mask = torch.ones(3, 5, dtype=torch.bool)
        mask[1] = False
        module(torch.zeros(3, 5, dtype=torch.float64), mask)
    with pytest.raises(ValueError, match="nondecreasing"):
        module.set_targets(torch.tensor([[3.0, 2.0, 1.0, 0.0]] * 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="nondecreasing"):
        hard_quantile_normalization(torch.zeros(2, 4, dtype=torch.float64),
                                    torch.tensor([2.0, 1.0], dtype=torch.float64))
