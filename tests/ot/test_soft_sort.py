"""Soft sort, ranks, quantiles, top-k masks and quantile normalization by OT
(lutece.ot.tools.soft_sort), checked against the hard operators they tend to as epsilon -> 0:
torch.sort, scipy.stats.rankdata, numpy.quantile(method="inverted_cdf") and torch.topk; the
marginal identities; permutation, scale and order symmetries; gradcheck; batching."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from lutece.ot import ImplicitOptions
from lutece.ot.tools.soft_sort import quantile, quantile_normalization, ranks, sort, topk_mask

# small epsilon: an epsilon schedule reaches the default threshold in a few hundred steps
SHARP = dict(epsilon=1e-3, epsilon_schedule=(100.0, 0.9), max_iterations=5000)
# moderate epsilon, solved tightly (for identities and symmetries, which hold at any epsilon)
TIGHT = dict(epsilon=0.05, threshold=1e-10, max_iterations=20000)
# a fixed number of iterations: the same work, whatever the convergence, for every input
FIXED = dict(min_iterations=200, max_iterations=200)
# gradcheck: moderate epsilon, converged potentials and backward solve
GRAD = dict(epsilon=0.05, threshold=1e-13, max_iterations=100000,
            implicit_options=ImplicitOptions(tolerance=1e-13, max_iterations=1000))


# These problems are tiny (n <= 15): with two OpenMP threads on a busy 2-core machine, torch's
# elementwise exp on a few hundred entries was measured at 8 ms instead of 3 us.
pytestmark = pytest.mark.usefixtures("one_thread")


def spread(rows: int, n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """(rows, n) permutations of 0..n-1 plus jitter in [0, 0.3): distinct, well separated."""
    generator = torch.Generator().manual_seed(seed)
    perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(rows)])
    return perms.to(dtype) + 0.3 * torch.rand(rows, n, generator=generator, dtype=dtype)


def hard_ranks(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(rankdata(x.numpy(), axis=-1))


# ---------------------------------------------------------------- limits epsilon -> 0
def test_sort_tends_to_torch_sort_along_any_dim():
    x = spread(6, 9).reshape(2, 3, 9).transpose(1, 2)        # (2, 9, 3), sorted along dim 1
    out = sort(x, dim=1, **SHARP)
    assert out.shape == x.shape
    torch.testing.assert_close(out, torch.sort(x, dim=1).values, atol=0.02, rtol=0)
    descending = sort(x, dim=1, descending=True, **SHARP)
    torch.testing.assert_close(descending, torch.sort(x, dim=1, descending=True).values,
                               atol=0.02, rtol=0)


def test_ranks_tend_to_rankdata():
    x = spread(4, 10, seed=1)
    torch.testing.assert_close(ranks(x, **SHARP), hard_ranks(x), atol=0.02, rtol=0)
    torch.testing.assert_close(ranks(x, descending=True, **SHARP), 11 - hard_ranks(x),
                               atol=0.02, rtol=0)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_topk_mask_tends_to_hard_topk(k):
    x = spread(4, 10, seed=2)
    hard = torch.zeros_like(x).scatter_(-1, torch.topk(x, k, dim=-1).indices, 1.0)
    torch.testing.assert_close(topk_mask(x, k, **SHARP), hard, atol=0.02, rtol=0)


def test_topk_mask_trivial_k():
    x = spread(2, 5).requires_grad_()
    assert torch.equal(topk_mask(x, 0), torch.zeros_like(x))
    full = topk_mask(x, 5)
    assert torch.equal(full, torch.ones_like(x))
    full.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_quantile_tends_to_numpy_inverted_cdf():
    # n = 10 inputs of mass 0.1; every window [q - 0.025, q + 0.025] lies inside one of them
    x = spread(3, 10, seed=3)
    levels = [0.0, 0.05, 0.35, 0.55, 0.95, 1.0]
    expected = np.quantile(x.numpy(), levels, axis=-1, method="inverted_cdf").T
    out = quantile(x, levels, **SHARP)
    assert out.shape == (3, 6)
    np.testing.assert_allclose(out.numpy(), expected, atol=0.02)
    # a scalar level drops dim; levels keep their order, duplicates included
    median = quantile(x, 0.55, **SHARP)
    assert median.shape == (3,)
    np.testing.assert_allclose(median.numpy(), expected[:, 3], atol=0.02)
    shuffled = quantile(x, torch.tensor([0.95, 0.35, 0.95]), **SHARP)
    np.testing.assert_allclose(shuffled.numpy(), expected[:, [4, 2, 4]], atol=0.02)


def test_quantile_along_dim_zero():
    x = spread(4, 10, seed=4)
    out = quantile(x.T, [0.25, 0.75], dim=0, **SHARP)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.numpy(), quantile(x, [0.25, 0.75], **SHARP).T.numpy(),
                               atol=1e-6)


def test_quantile_normalization_onto_sorted_x_gives_x():
    x = spread(3, 8, seed=5)
    out = quantile_normalization(x, torch.sort(x, dim=-1).values, **SHARP)
    torch.testing.assert_close(out, x, atol=0.02, rtol=0)


def test_quantile_normalization_tends_to_hard_quantile_normalization():
    x = spread(2, 10, seed=6)
    # uniform weights, m = n: the entry of rank r takes the r-th target
    targets = torch.cumsum(torch.rand(10, dtype=torch.float64) + 0.5, 0)
    hard = targets[hard_ranks(x).long() - 1]
    torch.testing.assert_close(quantile_normalization(x, targets, **SHARP), hard, atol=0.02,
                               rtol=0)
    # weights 0.7 / 0.3 onto (-1, 2): the 7 smallest go to -1, the 3 largest to 2
    two = torch.tensor([-1.0, 2.0], dtype=torch.float64)
    out = quantile_normalization(x, two, torch.tensor([0.7, 0.3], dtype=torch.float64),
                                 **SHARP)
    expected = torch.where(hard_ranks(x) > 7, 2.0, -1.0).to(x.dtype)
    torch.testing.assert_close(out, expected, atol=0.02, rtol=0)


def test_quantile_normalization_per_row_targets():
    x = spread(3, 6, seed=7)
    targets = torch.sort(torch.randn(3, 6, dtype=torch.float64), dim=-1).values
    weights = torch.rand(3, 6, dtype=torch.float64) + 0.1   # normalized inside
    out = quantile_normalization(x, targets, weights, **TIGHT)
    for row in range(3):
        torch.testing.assert_close(
            out[row], quantile_normalization(x[row], targets[row], weights[row], **TIGHT))
    # per-row targets broadcast along the batch, laid out like x (here with dim = 0)
    shared = targets[:1]
    torch.testing.assert_close(quantile_normalization(x.T, shared.T, dim=0, **TIGHT).T,
                               quantile_normalization(x, targets[0], **TIGHT))


def test_num_targets_smaller_than_n_gives_soft_bin_means():
    x = spread(2, 12, seed=8)
    out = sort(x, num_targets=3, **SHARP)
    assert out.shape == (2, 3)
    bins = torch.sort(x, dim=-1).values.reshape(2, 3, 4).mean(-1)
    torch.testing.assert_close(out, bins, atol=0.02, rtol=0)
    assert sort(x.T, dim=0, num_targets=3, **SHARP).shape == (3, 2)
    torch.testing.assert_close(sort(x, num_targets=1), x.mean(-1, keepdim=True))


# ---------------------------------------------------------------- identities and symmetries
def test_marginal_identities():
    x = torch.randn(5, 9, dtype=torch.float64)
    # the row marginal P 1 = a is exact after Sinkhorn's last update: mean(S) = mean(x)
    torch.testing.assert_close(sort(x).mean(-1), x.mean(-1), atol=1e-12, rtol=0)
    # the column marginal P^T 1 = b holds up to the threshold
    r = ranks(x, **TIGHT)
    torch.testing.assert_close(r.sum(-1), torch.full((5,), 45.0, dtype=x.dtype), atol=1e-6,
                               rtol=0)
    assert float(r.min()) >= 1 - 1e-9 and float(r.max()) <= 9 + 1e-9
    mask = topk_mask(x, 4, **TIGHT)
    torch.testing.assert_close(mask.sum(-1), torch.full((5,), 4.0, dtype=x.dtype), atol=1e-6,
                               rtol=0)


@pytest.mark.parametrize("num_targets", [None, 4])
def test_soft_sort_is_monotone_and_ranks_follow_x(num_targets):
    x = torch.randn(8, 15, dtype=torch.float64)
    for epsilon in (1e-2, 1e-1):
        out = sort(x, num_targets=num_targets, epsilon=epsilon)
        assert bool((out.diff(dim=-1) >= -1e-9).all())
        r = ranks(x, epsilon=epsilon)
        assert torch.equal(torch.argsort(r, dim=-1), torch.argsort(x, dim=-1))


def test_descending_matches_negated_input():
    x = torch.randn(3, 7, dtype=torch.float64)
    # the default squashing and the target grid are symmetric: z(-x) = 1 - z(x), y -> 1 - y
    torch.testing.assert_close(ranks(x, descending=True, **TIGHT), ranks(-x, **TIGHT))
    torch.testing.assert_close(sort(x, descending=True, **TIGHT), -sort(-x, **TIGHT))


def test_scale_and_shift_invariance_of_the_default_squashing():
    x = torch.randn(2, 8, dtype=torch.float64)
    torch.testing.assert_close(ranks(1e3 * x - 7, **TIGHT), ranks(x, **TIGHT))
    torch.testing.assert_close(sort(1e3 * x - 7, **TIGHT), 1e3 * sort(x, **TIGHT) - 7)


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=6,
                       unique=True),
       seed=st.integers(0, 2**16))
def test_permutation_equivariance(values, seed):
    x = torch.tensor(values, dtype=torch.float64)
    perm = torch.randperm(len(values), generator=torch.Generator().manual_seed(seed))
    # the iterations are permutation equivariant, converged or not (near-ties converge slowly)
    torch.testing.assert_close(ranks(x[perm], **FIXED), ranks(x, **FIXED)[perm], atol=1e-9,
                               rtol=0)
    torch.testing.assert_close(sort(x[perm], **FIXED), sort(x, **FIXED), atol=1e-9,
                               rtol=1e-9)


def test_batching_equals_looping():
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    batched = ranks(x, dim=1, **TIGHT)
    sorted_batched = sort(x, dim=1, num_targets=4, **TIGHT)
    for i in range(3):
        for j in range(2):
            torch.testing.assert_close(batched[i, :, j], ranks(x[i, :, j], **TIGHT),
                                       atol=1e-7, rtol=0)
            torch.testing.assert_close(sorted_batched[i, :, j],
                                       sort(x[i, :, j], num_targets=4, **TIGHT),
                                       atol=1e-7, rtol=0)


def test_degenerate_rows_dtypes_and_empty_batches():
    single = torch.tensor([[2.5], [-1.0]])
    torch.testing.assert_close(sort(single), single)
    torch.testing.assert_close(ranks(single), torch.ones_like(single))
    constant = torch.full((2, 5), 0.3, dtype=torch.float64)
    torch.testing.assert_close(sort(constant), constant)
    torch.testing.assert_close(ranks(constant), torch.full_like(constant, 3.0))
    half = spread(2, 6).half()
    out = ranks(half, **SHARP)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.double(), hard_ranks(half.double()), atol=0.02, rtol=0)
    assert sort(torch.empty(0, 5)).shape == (0, 5)
    assert quantile(torch.empty(0, 5), [0.2, 0.4]).shape == (0, 2)
    squashed = sort(spread(1, 5), squashing_fun=lambda rows: rows / 10, epsilon=0.01)
    assert bool((squashed.diff(dim=-1) > 0).all())


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ["sort", "sort_m", "ranks", "topk_mask", "quantile",
                                  "quantile_normalization"])
def test_gradcheck_implicit(name):
    x = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    targets = torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64)
    functions = {
        "sort": lambda x: sort(x, **GRAD),
        "sort_m": lambda x: sort(x, num_targets=3, **GRAD),
        "ranks": lambda x: ranks(x, **GRAD),
        "topk_mask": lambda x: topk_mask(x, 2, **{**GRAD, "epsilon": 0.2}),
        "quantile": lambda x: quantile(x, [0.3, 0.7], weight=0.2, **GRAD),
        "quantile_normalization": lambda x: quantile_normalization(x, targets, **GRAD),
    }
    assert torch.autograd.gradcheck(functions[name], (x.requires_grad_(),))


def test_gradcheck_quantile_normalization_targets_and_weights():
    x = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    targets = torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, t, w: quantile_normalization(x, t, w, **GRAD),
        (x.requires_grad_(), targets, weights))


def test_gradcheck_unrolled():
    x = torch.randn(4, dtype=torch.float64, generator=torch.Generator().manual_seed(11))
    options = dict(epsilon=0.1, threshold=1e-13, max_iterations=10000, implicit_diff=False)
    assert torch.autograd.gradcheck(lambda x: ranks(x, **options), (x.requires_grad_(),))


# ---------------------------------------------------------------- errors
X = torch.randn(2, 5)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: sort([1.0, 2.0]), TypeError, "sort: x must be a torch.Tensor"),
    (lambda: sort(torch.tensor(1.0)), ValueError, "at least 1 dimension"),
    (lambda: sort(torch.arange(5)), TypeError, "floating-point dtype"),
    (lambda: ranks(torch.tensor([1.0, float("nan")])), ValueError, "ranks: x contains 1 NaN"),
    (lambda: sort(torch.tensor([1.0, float("inf")])), ValueError, "NaN or infinite"),
    (lambda: sort(torch.empty(2, 0)), ValueError, "at least one entry along dim"),
    (lambda: ranks(X, dim=2), ValueError, "dim must be in \\[-2, 1\\]"),
    (lambda: ranks(X, dim=1.0), TypeError, "dim must be an int"),
    (lambda: ranks(X, descending="yes"), TypeError, "descending must be a bool"),
    (lambda: sort(X, epsilon=0.0), ValueError, "epsilon must be > 0"),
    (lambda: sort(X, epsilon="small"), TypeError, "epsilon must be a number"),
    (lambda: sort(X, num_targets=0), ValueError, "num_targets must be >= 1"),
    (lambda: sort(X, num_targets=2.0), TypeError, "num_targets must be an int"),
    (lambda: sort(X, squashing_fun=3), TypeError, "squashing_fun must be None or a callable"),
    (lambda: sort(X, squashing_fun=lambda r: r[:, :2]), ValueError, "same shape"),
    (lambda: topk_mask(X, 6), ValueError, "topk_mask: k must be in \\[0, 5\\], got 6"),
    (lambda: topk_mask(X, -1), ValueError, "k must be in \\[0, 5\\]"),
    (lambda: topk_mask(X, 1.5), TypeError, "k must be an int"),
    (lambda: quantile(X, 1.2), ValueError, "q must be in \\[0, 1\\], got 1.2"),
    (lambda: quantile(X, [0.5, -0.1]), ValueError, "q must be in \\[0, 1\\]"),
    (lambda: quantile(X, []), ValueError, "at least one level"),
    (lambda: quantile(X, torch.ones(2, 2) / 2), ValueError, "1-d sequence"),
    (lambda: quantile(X, "median"), TypeError, "q must be a number"),
    (lambda: quantile(X, 0.5, weight=0.0), ValueError, "weight must be in \\(0, 1\\]"),
    (lambda: quantile_normalization(X, torch.tensor([2.0, 1.0])), ValueError,
     "nondecreasing"),
    (lambda: quantile_normalization(X, torch.ones(2, 3, 1)), ValueError,
     "1-d \\(m,\\) or have x's 2 dimensions"),
    (lambda: quantile_normalization(X, torch.ones(3, 4)), ValueError, "does not broadcast"),
    (lambda: quantile_normalization(X, torch.empty(0)), ValueError, "at least one entry"),
    (lambda: quantile_normalization(X, torch.ones(3), torch.ones(4)), ValueError,
     "weights must have the shape of targets"),
    (lambda: quantile_normalization(X, torch.ones(2), torch.tensor([1.0, -1.0])), ValueError,
     "weights must be >= 0"),
    (lambda: quantile_normalization(X, torch.ones(2), torch.zeros(2)), ValueError,
     "positive sum"),
    (lambda: quantile_normalization(X, torch.tensor([0.0, float("nan")])), ValueError,
     "targets contains 1 NaN"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_sinkhorn_options_pass_through():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sort(torch.randn(3, 6), epsilon=1e-4, max_iterations=3)
    assert any("did not converge" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="sinkhorn: threshold must be > 0"):
        ranks(X, threshold=-1.0)
