"""soft_rank / soft_sort / soft_topk_mask against independent oracles: convex programs
solved by scipy from the definitions (n <= 5), hard operators, finite differences
(gradcheck), hypothesis invariants, and torchsort when it is installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata

from lutece.sorting import soft_rank, soft_sort, soft_topk_mask

from .oracles import oracle_rank, oracle_sort, oracle_topk

REGS = ["l2", "kl"]


def _random_rows(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=n) for _ in range(3)]


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("eps", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("n", [2, 4, 5])
def test_rank_and_sort_match_convex_program(regularization, eps, descending, n):
    for theta in _random_rows(n, n):
        x = torch.tensor(theta, dtype=torch.float64)
        ours_rank = soft_rank(x, regularization_strength=eps, regularization=regularization,
                              descending=descending).numpy()
        ours_sort = soft_sort(x, regularization_strength=eps, regularization=regularization,
                              descending=descending).numpy()
        np.testing.assert_allclose(
            ours_rank, oracle_rank(theta, eps, regularization, descending), atol=2e-5)
        np.testing.assert_allclose(
            ours_sort, oracle_sort(theta, eps, regularization, descending), atol=2e-5)


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("eps", [0.2, 1.0])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_topk_matches_convex_program(regularization, eps, k):
    for theta in _random_rows(k, 5):
        x = torch.tensor(theta, dtype=torch.float64)
        ours = soft_topk_mask(x, k, regularization_strength=eps,
                              regularization=regularization).numpy()
        np.testing.assert_allclose(ours, oracle_topk(theta, k, eps, regularization), atol=2e-5)
        assert ours.sum() == pytest.approx(k)
        assert ours.min() >= -1e-12 and ours.max() <= 1 + 1e-12


def test_published_examples():
    # fast-soft-sort's README values.
    x = torch.tensor([[5.0, 1.0, 2.0], [2.0, 1.0, 5.0]])
    torch.testing.assert_close(soft_sort(x), torch.tensor([[5 / 3, 8 / 3, 11 / 3]] * 2))
    torch.testing.assert_close(soft_sort(x, regularization_strength=0.1),
                               torch.tensor([[1.0, 2.0, 5.0]] * 2))
    torch.testing.assert_close(soft_rank(x, regularization_strength=2.0),
                               torch.tensor([[3.0, 1.25, 1.75], [1.75, 1.25, 3.0]]))
    torch.testing.assert_close(soft_rank(x), torch.tensor([[3.0, 1.0, 2.0], [2.0, 1.0, 3.0]]))


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("descending", [False, True])
def test_hard_limit_is_reached(regularization, descending):
    x = torch.randn(8, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    hard_ranks = torch.tensor(
        np.stack([rankdata(-r if descending else r) for r in x.numpy()]))
    hard_sorted = torch.sort(x, descending=descending).values
    ranks = soft_rank(x, regularization_strength=1e-6, regularization=regularization,
                      descending=descending)
    # soft_sort pools neighbours whose gap exceeds 1 / eps: tiny eps means hard.
    ordered = soft_sort(x, regularization_strength=1e-6, regularization=regularization,
                        descending=descending)
    torch.testing.assert_close(ranks, hard_ranks, rtol=0, atol=1e-9)
    torch.testing.assert_close(ordered, hard_sorted, rtol=0, atol=1e-9)
    mask = soft_topk_mask(x, 7, regularization_strength=1e-6, regularization=regularization)
    hard_mask = torch.zeros_like(x).scatter_(1, x.topk(7).indices, 1.0)
    torch.testing.assert_close(mask, hard_mask, rtol=0, atol=1e-9)


def test_strength_zero_returns_hard_operators_with_documented_gradients():
    x = torch.tensor([[0.3, -1.0, 2.0, 0.3]], dtype=torch.float64, requires_grad=True)
    ranks = soft_rank(x, regularization_strength=0)
    assert ranks.tolist() == [[2.5, 1.0, 4.0, 2.5]]
    (grad,) = torch.autograd.grad(ranks.sum() + (ranks ** 2).sum(), x)
    assert torch.equal(grad, torch.zeros_like(x))
    mask = soft_topk_mask(x, 2, regularization_strength=0.0)
    assert mask.tolist() == [[0.5, 0.0, 1.0, 0.5]]  # the tie shares the second place
    ordered = soft_sort(x, regularization_strength=0.0)
    assert ordered.tolist() == [[-1.0, 0.3, 0.3, 2.0]]
    (grad,) = torch.autograd.grad(ordered[0, 3], x)  # the permutation: d max / d x_2 = 1
    assert grad.tolist() == [[0.0, 0.0, 1.0, 0.0]]


def test_per_row_strength_and_mixed_rows():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 30, dtype=torch.float64, generator=g)
    strengths = torch.tensor([0.0, 0.1, 1.0, 10.0], dtype=torch.float64)
    for op in (soft_rank, soft_sort):
        together = op(x, regularization_strength=strengths)
        for row, eps in enumerate(strengths.tolist()):
            alone = op(x[row], regularization_strength=eps)
            torch.testing.assert_close(together[row], alone)
    # a (2, 1) tensor broadcasts over a (2, 3, n) batch
    x3 = torch.randn(2, 3, 10, dtype=torch.float64, generator=g)
    eps = torch.tensor([[0.5], [2.0]], dtype=torch.float64)
    out = soft_rank(x3, regularization_strength=eps)
    torch.testing.assert_close(out[1, 2], soft_rank(x3[1, 2], regularization_strength=2.0))


def test_rows_with_ties_and_mixed_rows_in_one_batch():
    x = torch.tensor([[1.0, 1.0, 1.0, 2.0], [4.0, 3.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    ranks = soft_rank(x, regularization_strength=1e-3)
    torch.testing.assert_close(ranks, torch.tensor(
        [[2.0, 2.0, 2.0, 4.0], [4.0, 3.0, 2.0, 1.0], [2.5, 2.5, 2.5, 2.5]]))
    ordered = soft_sort(x, regularization_strength=1e-3)
    torch.testing.assert_close(ordered, torch.sort(x).values)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_dim_argument_on_nd_input(dim):
    x = torch.randn(5, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for op in (soft_rank, soft_sort):
        out = op(x, regularization_strength=0.5, dim=dim)
        expected = op(x.movedim(dim, -1), regularization_strength=0.5).movedim(-1, dim)
        torch.testing.assert_close(out, expected)
    mask = soft_topk_mask(x, 3, dim=dim)
    torch.testing.assert_close(mask.sum(dim=dim), torch.full_like(mask.sum(dim=dim), 3.0))


def test_non_contiguous_input():
    x = torch.randn(20, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(soft_rank(x.t()), soft_rank(x.t().contiguous()))


@pytest.mark.parametrize("op", [soft_rank, soft_sort])
@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("eps", [1e-3, 0.1, 1.0, 10.0])
@pytest.mark.parametrize("descending", [False, True])
def test_gradcheck(op, regularization, eps, descending):
    x = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5),
                    requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: op(t, regularization_strength=eps, regularization=regularization,
                     descending=descending), (x,))


@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("eps", [0.1, 1.0, 10.0])
def test_gradcheck_topk_and_per_row_strength(regularization, eps):
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: soft_topk_mask(t, 2, regularization_strength=eps,
                                 regularization=regularization), (x,))
    strengths = torch.tensor([eps, 2 * eps, eps / 2], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda t: soft_rank(t, regularization_strength=strengths,
                            regularization=regularization), (x,))


def test_kl_is_stable_at_tiny_strength():
    # torchsort returns all-NaN gradients here (its issue #63).
    x = torch.rand(4, 100, generator=torch.Generator().manual_seed(7), requires_grad=True)
    for op in (soft_rank, soft_sort):
        out = op(x, regularization="kl", regularization_strength=1e-4)
        (grad,) = torch.autograd.grad((out * torch.arange(100.0)).sum(), x)
        assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    x64 = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    ranks = soft_rank(x64 * 1e3, regularization="kl", regularization_strength=1e-6)
    torch.testing.assert_close(ranks, torch.tensor(np.stack([rankdata(r) for r in x64])))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype):
    # torchsort returns NaN at n = 2000 in float16 and hangs above 2100.
    x = torch.randn(2, 3000, generator=torch.Generator().manual_seed(9))
    ranks = soft_rank(x.to(dtype), regularization_strength=1e-3)
    assert ranks.dtype == dtype and torch.isfinite(ranks).all()
    reference = soft_rank(x.to(dtype).float(), regularization_strength=1e-3)
    torch.testing.assert_close(ranks.float(), reference.to(dtype).float())
    ordered = soft_sort(x.to(dtype), regularization_strength=1e-3)
    assert ordered.dtype == dtype and torch.isfinite(ordered).all()


def test_float32_matches_float64():
    x = torch.randn(16, 500, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    for op in (soft_rank, soft_sort):
        torch.testing.assert_close(op(x.float()).double(), op(x), rtol=1e-5, atol=1e-4)


def test_small_and_empty_rows():
    assert soft_rank(torch.tensor([3.0])).tolist() == [1.0]
    assert soft_sort(torch.tensor([3.0])).tolist() == [3.0]
    assert soft_topk_mask(torch.tensor([3.0]), 1).tolist() == [1.0]
    empty = torch.empty(4, 0)
    for op in (soft_rank, soft_sort):
        out = op(empty)
        assert out.shape == (4, 0) and out.dtype == empty.dtype
    assert soft_topk_mask(empty, 0).shape == (4, 0)
    assert soft_topk_mask(torch.randn(2, 5), 0).abs().sum() == 0
    torch.testing.assert_close(soft_topk_mask(torch.randn(2, 5), 5), torch.ones(2, 5))


def test_large_n():
    x = torch.randn(1, 100_000, generator=torch.Generator().manual_seed(11), requires_grad=True)
    ranks = soft_rank(x, regularization_strength=1e-3)
    assert ranks.sum().item() == pytest.approx(100_000 * 100_001 / 2, rel=1e-6)
    ranks.sum().backward()
    assert torch.isfinite(x.grad).all()


finite_floats = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, width=64)
rows = st.lists(finite_floats, min_size=1, max_size=25)
strengths = st.sampled_from([1e-2, 0.3, 1.0, 5.0])
regs = st.sampled_from(REGS)


@settings(max_examples=60, deadline=None)
@given(values=rows, eps=strengths, regularization=regs)
def test_soft_ranks_sum_and_are_translation_invariant(values, eps, regularization):
    x = torch.tensor(values, dtype=torch.float64)
    n = len(values)
    ranks = soft_rank(x, regularization_strength=eps, regularization=regularization)
    assert ranks.sum().item() == pytest.approx(n * (n + 1) / 2, rel=1e-9)
    shifted = soft_rank(x + 17.0, regularization_strength=eps, regularization=regularization)
    torch.testing.assert_close(shifted, ranks, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(values=rows, eps=strengths, regularization=regs, data=st.data())
def test_soft_rank_is_permutation_equivariant(values, eps, regularization, data):
    x = torch.tensor(values, dtype=torch.float64)
    perm = torch.tensor(data.draw(st.permutations(range(len(values)))))
    ranks = soft_rank(x, regularization_strength=eps, regularization=regularization)
    torch.testing.assert_close(
        soft_rank(x[perm], regularization_strength=eps, regularization=regularization),
        ranks[perm], rtol=1e-7, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(values=rows, eps=strengths, regularization=regs, descending=st.booleans())
def test_soft_sort_is_monotone(values, eps, regularization, descending):
    x = torch.tensor(values, dtype=torch.float64)
    ordered = soft_sort(x, regularization_strength=eps, regularization=regularization,
                        descending=descending)
    steps = ordered.diff()
    assert (steps <= 1e-9).all() if descending else (steps >= -1e-9).all()


@settings(max_examples=60, deadline=None)
@given(values=rows, eps=strengths, shift=finite_floats)
def test_soft_sort_is_translation_equivariant(values, eps, shift):
    x = torch.tensor(values, dtype=torch.float64)
    ordered = soft_sort(x, regularization_strength=eps)
    torch.testing.assert_close(soft_sort(x + shift, regularization_strength=eps),
                               ordered + shift, rtol=1e-9, atol=1e-9)
    assert ordered.sum().item() == pytest.approx(x.sum().item(), abs=1e-8)



@pytest.mark.parametrize("regularization", REGS)
@pytest.mark.parametrize("eps", [0.1, 1.0, 10.0])
def test_matches_torchsort(regularization, eps):
    ts = pytest.importorskip("torchsort")
    x = torch.randn(16, 300, dtype=torch.float64, generator=torch.Generator().manual_seed(12),
                    requires_grad=True)
    for ours_op, their_op in ((soft_rank, ts.soft_rank), (soft_sort, ts.soft_sort)):
        ours = ours_op(x, regularization_strength=eps, regularization=regularization)
        theirs = their_op(x, regularization_strength=eps, regularization=regularization)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
        weights = torch.randn(16, 300, dtype=torch.float64)
        (ours_grad,) = torch.autograd.grad((ours * weights).sum(), x)
        (their_grad,) = torch.autograd.grad((theirs * weights).sum(), x)
        torch.testing.assert_close(ours_grad, their_grad, rtol=0, atol=1e-5)
