"""Every documented error path of the sorting operators names the argument."""

from __future__ import annotations

import pytest
import torch

from lutece.sorting import soft_rank, soft_sort, soft_topk_mask

x = torch.randn(3, 4)


@pytest.mark.parametrize("op", [soft_rank, soft_sort])
@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((torch.tensor([1.0, float("nan")]),), {}, ValueError, "x contains 1 NaN"),
        ((torch.tensor([1.0, float("inf")]),), {}, ValueError, "x contains 1 NaN or infinite"),
        ((torch.tensor([1, 2, 3]),), {}, TypeError, "floating-point dtype, got torch.int64"),
        ((torch.tensor(1.0),), {}, ValueError, "at least 1 dimension"),
        (([1.0, 2.0],), {}, TypeError, "x must be a torch.Tensor, got list"),
        ((x,), {"regularization_strength": -1.0}, ValueError,
         "regularization_strength must be >= 0, got -1.0"),
        ((x,), {"regularization_strength": float("nan")}, ValueError, "must be finite"),
        ((x,), {"regularization_strength": "big"}, TypeError, "float or a tensor"),
        ((x,), {"regularization_strength": torch.tensor([1.0, -2.0, 1.0])}, ValueError,
         "must be >= 0 everywhere"),
        ((x,), {"regularization_strength": torch.ones(4)}, ValueError, "does not broadcast"),
        ((x,), {"regularization": "entropy"}, ValueError,
         "regularization must be one of 'l2', 'kl', got 'entropy'"),
        ((x,), {"descending": "yes"}, TypeError, "descending must be a bool"),
        ((x,), {"dim": 2}, ValueError, r"dim must be in \[-2, 1\]"),
        ((x,), {"dim": 1.0}, TypeError, "dim must be an int"),
    ],
)
def test_errors(op, args, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        op(*args, **kwargs)
    assert op.__name__ in str(info.value)


@pytest.mark.parametrize(
    "k, error, message",
    [(5, ValueError, r"k must be in \[0, n\] = \[0, 4\], got 5"),
     (-1, ValueError, "k must be in"),
     (1.5, TypeError, "k must be an int")],
)
def test_topk_k_errors(k, error, message):
    with pytest.raises(error, match=message):
        soft_topk_mask(x, k)


def test_topk_shares_input_errors():
    with pytest.raises(ValueError, match="soft_topk_mask: x contains"):
        soft_topk_mask(torch.tensor([float("nan"), 1.0]), 1)
    with pytest.raises(ValueError, match="soft_topk_mask: regularization must be"):
        soft_topk_mask(x, 1, regularization="l1")
