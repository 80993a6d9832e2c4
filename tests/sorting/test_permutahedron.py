"""The two kernels of the permutahedron projection (numba on CPU, vectorized torch for any
device) agree with each other and with the brute-force convex program, and the operator
traces under torch.compile without graph breaks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lutece.sorting import permutahedron_projection, soft_rank, soft_sort, soft_topk_mask
from lutece.sorting.permutahedron import use_numba

from .oracles import project_l2


@pytest.fixture
def torch_kernels():
    use_numba(False)
    yield
    use_numba(True)


def _inputs(seed, batch, n, sort_w, dtype=torch.float64, ties=False):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, n, dtype=dtype, generator=g)
    w = torch.randn(batch, n, dtype=dtype, generator=g)
    if ties:  # in the sorted argument only: ties in both make the gradient ambiguous
        if sort_w:
            w = w.round()
        else:
            z = z.round()
    if sort_w:
        z = z.sort(dim=1, descending=True).values
    else:
        w = w.sort(dim=1, descending=True).values
    return z.requires_grad_(), w.requires_grad_()


@pytest.mark.parametrize("regularization", ["l2", "kl"])
@pytest.mark.parametrize("sort_w", [False, True])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numba_and_torch_kernels_agree(regularization, sort_w, ties, dtype):
    # 700 > 128: the radix-sort path of the numba kernel
    z, w = _inputs(0, 32, 700, sort_w, dtype, ties)
    weights = torch.randn(32, 700, dtype=dtype, generator=torch.Generator().manual_seed(1))
    results = []
    for numba in (True, False):
        use_numba(numba)
        try:
            out = permutahedron_projection(z, w, regularization=regularization, sort_w=sort_w)
            grads = torch.autograd.grad((out * weights).sum(), (z, w))
        finally:
            use_numba(True)
        results.append((out, *grads))
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    if ties and sort_w:
        # Tied entries of w may take each other's sorted slot (the kernels sort differently):
        # their gradients may be exchanged, so compare per row totals for w.
        results = [(out, grad_z, grad_w.sum(dim=1)) for out, grad_z, grad_w in results]
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("regularization", ["l2", "kl"])
@pytest.mark.parametrize("sort_w", [False, True])
def test_gradcheck_both_arguments_both_kernels(regularization, sort_w, torch_kernels):
    z, w = _inputs(1, 3, 6, sort_w)
    for numba in (True, False):
        use_numba(numba)
        assert torch.autograd.gradcheck(
            lambda a, b: permutahedron_projection(
                a, b, regularization=regularization, sort_w=sort_w), (z, w))


def test_projection_matches_brute_force_with_arbitrary_weights():
    z, w = _inputs(2, 4, 5, sort_w=False)
    out = permutahedron_projection(z, w)
    for row in range(4):
        expected = project_l2(z[row].detach().numpy(), w[row].detach().numpy())
        np.testing.assert_allclose(out[row].detach().numpy(), expected, atol=1e-6)


def test_public_operators_on_torch_kernels(torch_kernels):
    x = torch.randn(8, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    use_numba(True)
    expected = [soft_rank(x), soft_sort(x, regularization="kl"), soft_topk_mask(x, 5)]
    use_numba(False)
    got = [soft_rank(x), soft_sort(x, regularization="kl"), soft_topk_mask(x, 5)]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


def test_double_backward_raises_a_clear_error():
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(soft_rank(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        grad.sum().backward()


def test_torch_compile_has_no_graph_break():
    def loss(x, eps):
        return (soft_rank(x, regularization_strength=eps).pow(2).sum()
                + soft_sort(x, regularization="kl").sum() + soft_topk_mask(x, 3).sum())

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 12, requires_grad=True)
    eps = torch.rand(4) + 0.1
    value = compiled(x, eps)
    (grad,) = torch.autograd.grad(value, x)
    x_eager = x.detach().clone().requires_grad_()
    eager_value = loss(x_eager, eps)
    (eager_grad,) = torch.autograd.grad(eager_value, x_eager)
    torch.testing.assert_close(value, eager_value)
    torch.testing.assert_close(grad, eager_grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x = torch.randn(16, 1000, dtype=torch.float64)
    for op in (soft_rank, soft_sort):
        torch.testing.assert_close(op(x.cuda()).cpu(), op(x))


@pytest.mark.parametrize(
    "z, w, kwargs, error, message",
    [(torch.zeros(2, 3), torch.zeros(2, 4), {}, ValueError, "share shape, dtype and device"),
     (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64), {}, ValueError, "share"),
     (torch.zeros(3), torch.zeros(3), {}, ValueError, "at least 2 dimension"),
     (torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), {}, ValueError, r"must be \(B, n\)"),
     (torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, 3), {}, TypeError, "floating"),
     (torch.tensor([[float("nan"), 0.0]]), torch.zeros(1, 2), {}, ValueError, "z contains"),
     (torch.zeros(1, 2), torch.tensor([[float("inf"), 0.0]]), {}, ValueError, r"\+inf"),
     (torch.zeros(1, 2), torch.zeros(1, 2), {"regularization": "l1"}, ValueError,
      "regularization must be one of")],
)
def test_projection_errors(z, w, kwargs, error, message):
    with pytest.raises(error, match=message) as info:
        permutahedron_projection(z, w, **kwargs)
    assert "permutahedron_projection" in str(info.value)


def test_projection_accepts_minus_inf_log_weights():
    # log of the top-k weights (1, 1, 0) for the entropic projection
    z = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    w = torch.log(torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64))
    mask = torch.exp(permutahedron_projection(z, w, regularization="kl"))
    assert mask.sum().item() == pytest.approx(2.0)
