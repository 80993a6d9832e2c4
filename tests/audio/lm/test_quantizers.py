"""Tests of lutece.audio.lm.quantizers.ResidualVectorQuantizer.

Oracles: hand-computed EMA steps (VQ-VAE Appendix A.1 with Laplace smoothing), the identity
Jacobian of the straight-through estimator, encode/decode consistency, and, when installed,
vector_quantize_pytorch.ResidualVQ with identical codebooks.
"""

import pytest
import torch
from torch.nn import functional as F

from lutece.audio.lm import QuantizerOutput, ResidualVectorQuantizer


def _clusters(generator, batch=4, frames=64, dim=4, centers=6, spread=0.3):
    """Vectors around a few well separated centers, at several scales (a structure the
    residual levels can peel off one by one)."""
    means = 4.0 * torch.randn(centers, dim, generator=generator)
    picks = torch.randint(centers, (batch * frames,), generator=generator)
    fine = spread * torch.randn(batch * frames, dim, generator=generator)
    return (means[picks] + fine).reshape(batch, frames, dim)


def test_reconstruction_error_decreases_with_each_level(generator):
    x = _clusters(generator)
    rvq = ResidualVectorQuantizer(4, num_levels=4, codebook_size=8, quantizer_dropout=False,
                                  generator=torch.Generator().manual_seed(1))
    rvq.train()
    rvq(x)  # k-means initialization on this first batch (and one EMA step)
    rvq.eval()
    codes = rvq.encode(x)
    errors = [float((rvq.decode(codes, levels=n) - x).pow(2).sum(-1).mean())
              for n in range(1, 5)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.1 * float(x.pow(2).sum(-1).mean())


def test_kmeans_initialization_is_a_seeded_lloyd_fixed_point(generator):
    x = _clusters(generator, batch=1, frames=200, dim=2, centers=5)
    books = []
    for _ in range(2):
        rvq = ResidualVectorQuantizer(2, num_levels=1, codebook_size=4, kmeans_iterations=20,
                                      dead_code_threshold=0.0,
                                      generator=torch.Generator().manual_seed(3))
        rvq._initialize(x.reshape(-1, 2))
        books.append(rvq.codebooks[0].clone())
    torch.testing.assert_close(books[0], books[1])
    # Lloyd's fixed point: each centroid is the mean of the points nearest to it
    flat = x.reshape(-1, 2)
    assignment = torch.cdist(flat, books[0]).argmin(1)
    for code in range(4):
        members = flat[assignment == code]
        assert len(members) > 0
        torch.testing.assert_close(books[0][code], members.mean(0), atol=1e-4, rtol=1e-4)
    # k-means distortion is far below that of the random initial seeds it starts from
    seeds = flat[torch.randperm(200, generator=torch.Generator().manual_seed(3))[:4]]
    distortion = torch.cdist(flat, books[0]).min(1).values.pow(2).mean()
    assert float(distortion) < float(torch.cdist(flat, seeds).min(1).values.pow(2).mean())


def test_dead_code_is_replaced_by_a_batch_vector(generator):
    x = torch.randn(2, 20, 3, generator=generator)
    books = torch.randn(1, 4, 3, generator=generator)
    books[0, 2] = 1000.0  # far from every input: never chosen
    rvq = ResidualVectorQuantizer(3, num_levels=1, codebook_size=4, kmeans_init=False,
                                  dead_code_threshold=1.5, quantizer_dropout=False,
                                  generator=torch.Generator().manual_seed(0))
    rvq.set_codebooks(books)
    rvq.train()
    before = rvq(x)
    assert not bool((before.codes == 2).any())
    replaced = rvq.codebooks[0, 2]
    assert float(replaced.abs().max()) < 100.0
    distances = (x.reshape(-1, 3) - replaced).norm(dim=1)
    assert float(distances.min()) < 1e-6  # exactly one of the batch's vectors
    assert float(rvq.cluster_size[0, 2]) == pytest.approx(1.5)
    rvq.eval()
    assert bool((rvq.encode(x) == 2).any())  # the code is now used


def test_ema_update_matches_a_hand_computed_step():
    decay, eps = 0.5, 1e-5
    rvq = ResidualVectorQuantizer(2, num_levels=1, codebook_size=2, decay=decay, epsilon=eps,
                                  kmeans_init=False, dead_code_threshold=0.0,
                                  quantizer_dropout=False).double()
    rvq.set_codebooks(torch.tensor([[[0.0, 0.0], [10.0, 10.0]]], dtype=torch.float64),
                      cluster_size=1.0)
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 10.0]]], dtype=torch.float64)
    rvq.train()
    output = rvq(x)
    assert output.codes.flatten().tolist() == [0, 0, 1]
    counts = torch.tensor([2.0, 1.0], dtype=torch.float64)
    sums = torch.tensor([[1.0, 1.0], [9.0, 10.0]], dtype=torch.float64)
    cluster_size = decay * 1.0 + (1 - decay) * counts  # [1.5, 1.0]
    embed_sum = decay * torch.tensor([[0.0, 0.0], [10.0, 10.0]], dtype=torch.float64) \
        + (1 - decay) * sums  # [[0.5, 0.5], [9.5, 10]]
    total = cluster_size.sum()
    smoothed = (cluster_size + eps) / (total + 2 * eps) * total
    torch.testing.assert_close(rvq.cluster_size[0], cluster_size)
    torch.testing.assert_close(rvq.embed_sum[0], embed_sum)
    torch.testing.assert_close(rvq.codebooks[0], embed_sum / smoothed[:, None])
    assert rvq.codebooks[0, 0].tolist() == pytest.approx([1 / 3, 1 / 3], rel=1e-4)
    # the output used the codebook as it was before the update
    torch.testing.assert_close(output.quantized,
                               torch.tensor([[[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]]],
                                            dtype=torch.float64))


def test_straight_through_jacobian_is_identity(generator):
    rvq = ResidualVectorQuantizer(3, num_levels=2, codebook_size=5).double().eval()
    x = torch.randn(1, 2, 3, generator=generator, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: rvq(v).quantized, x)
    torch.testing.assert_close(jacobian.reshape(6, 6), torch.eye(6, dtype=torch.float64))


def test_commitment_loss_is_the_weighted_mean_of_level_losses(generator):
    rvq = ResidualVectorQuantizer(3, num_levels=3, codebook_size=5,
                                  commitment_weight=0.25).eval()
    x = torch.randn(2, 7, 3, generator=generator, requires_grad=True)
    output = rvq(x)
    expected = []
    for level in range(3):
        before = rvq.decode(output.codes, levels=level) if level else torch.zeros_like(x)
        residual = x - before
        codeword = rvq.decode(output.codes, levels=level + 1) - before
        expected.append(F.mse_loss(residual, codeword))
    torch.testing.assert_close(output.level_losses, torch.stack(expected).detach())
    torch.testing.assert_close(output.commitment_loss, 0.25 * torch.stack(expected).mean())
    output.commitment_loss.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert not rvq.codebooks.requires_grad


def test_encode_decode_round_trip_equals_forward(generator):
    rvq = ResidualVectorQuantizer(4, num_levels=3, codebook_size=8).eval()
    x = torch.randn(3, 11, 4, generator=generator)
    output = rvq(x)
    assert isinstance(output, QuantizerOutput)
    codes = rvq.encode(x)
    assert codes.shape == (3, 11, 3) and codes.dtype == torch.int64
    torch.testing.assert_close(codes, output.codes)
    torch.testing.assert_close(rvq.decode(codes), output.quantized)
    assert rvq.encode(x, levels=2).shape == (3, 11, 2)
    torch.testing.assert_close(rvq.decode(codes[..., :2]), rvq(x, levels=2).quantized)


def test_eval_mode_leaves_the_codebooks_alone(generator):
    rvq = ResidualVectorQuantizer(4, num_levels=2, codebook_size=8).eval()
    state = {k: v.clone() for k, v in rvq.state_dict().items()}
    rvq(torch.randn(2, 5, 4, generator=generator))
    rvq.encode(torch.randn(2, 5, 4, generator=generator))
    for key, value in rvq.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_quantizer_dropout_draws_levels_in_range_and_is_seeded(generator):
    x = torch.randn(1, 16, 2, generator=generator)

    def draws(seed):
        rvq = ResidualVectorQuantizer(2, num_levels=4, codebook_size=4,
                                      generator=torch.Generator().manual_seed(seed))
        rvq.train()
        return [rvq(x).num_levels for _ in range(40)]

    first = draws(5)
    assert set(first) <= {1, 2, 3, 4} and len(set(first)) == 4
    assert draws(5) == first
    rvq = ResidualVectorQuantizer(2, num_levels=4, codebook_size=4).train()
    assert rvq(torch.randn(1, 8, 2), levels=3).codes.shape[-1] == 3  # explicit: no dropout
    assert rvq.eval()(torch.randn(1, 8, 2)).codes.shape[-1] == 4


def test_perplexity_and_usage_of_uniformly_used_codes():
    books = torch.eye(4)[None] * 5.0
    rvq = ResidualVectorQuantizer(4, num_levels=1, codebook_size=4).eval()
    rvq.set_codebooks(books)
    output = rvq(books.repeat(1, 3, 1))
    assert float(output.perplexity[0]) == pytest.approx(4.0)
    assert float(output.usage[0]) == 1.0
    single = rvq(books[:, :1].repeat(1, 6, 1))
    assert float(single.perplexity[0]) == pytest.approx(1.0)
    assert float(single.usage[0]) == 0.25


def test_float64_input_keeps_its_dtype(generator):
    rvq = ResidualVectorQuantizer(3, num_levels=2, codebook_size=4).eval()
    x = torch.randn(2, 3, 3, generator=generator, dtype=torch.float64)
    assert rvq(x).quantized.dtype == torch.float64


@pytest.mark.parametrize("x, match", [
    (torch.randn(4, 3), "shape"),
    (torch.randn(2, 4, 5), "dim=3"),
    (torch.ones(2, 4, 3, dtype=torch.int64), "floating-point"),
    (torch.full((1, 2, 3), float("nan")), "NaN"),
])
def test_bad_inputs_are_rejected(x, match):
    rvq = ResidualVectorQuantizer(3, num_levels=2, codebook_size=4)
    error = TypeError if x.dtype == torch.int64 else ValueError
    with pytest.raises(error, match=match):
        rvq(x)
    with pytest.raises(error, match=match):
        rvq.encode(x)


def test_bad_levels_and_codes_are_rejected():
    rvq = ResidualVectorQuantizer(3, num_levels=2, codebook_size=4)
    x = torch.randn(1, 2, 3)
    for levels in (0, 3, -1):
        with pytest.raises(ValueError, match=r"levels must be in 1\.\.2"):
            rvq(x, levels=levels)
    with pytest.raises(TypeError, match="levels"):
        rvq.encode(x, levels=True)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        rvq.decode(torch.tensor([[[0, 4]]]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        rvq.decode(torch.tensor([[[-1, 0]]]))
    with pytest.raises(TypeError, match="integer"):
        rvq.decode(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        rvq.decode(torch.zeros(1, 2, 3, dtype=torch.int64))  # more levels than the RVQ has
    with pytest.raises(ValueError, match=r"levels must be in 1\.\.1"):
        rvq.decode(torch.zeros(1, 2, 1, dtype=torch.int64), levels=2)
    with pytest.raises(ValueError, match="codebooks must have shape"):
        rvq.set_codebooks(torch.zeros(2, 4, 2))


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 0}, "dim"), ({"num_levels": 0}, "num_levels"),
    ({"codebook_size": 1.5}, "codebook_size"), ({"decay": 1.0}, "decay"),
    ({"epsilon": 0.0}, "epsilon"), ({"commitment_weight": -1.0}, "commitment_weight"),
    ({"dead_code_threshold": -1.0}, "dead_code_threshold"),
])
def test_bad_configuration_is_rejected(kwargs, match):
    arguments = {"dim": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        ResidualVectorQuantizer(**arguments)
    with pytest.raises(TypeError, match="generator"):
        ResidualVectorQuantizer(2, generator=0)


def test_matches_vector_quantize_pytorch_with_identical_codebooks(generator):
    vqp = pytest.importorskip("vector_quantize_pytorch")
    dim, levels, size = 6, 3, 16
    books = torch.randn(levels, size, dim, generator=generator)
    reference = vqp.ResidualVQ(dim=dim, num_quantizers=levels, codebook_size=size,
                               commitment_weight=1.0, decay=0.9, threshold_ema_dead_code=0)
    for level, layer in enumerate(reference.layers):
        layer._codebook.embed.copy_(books[level][None])
    ours = ResidualVectorQuantizer(dim, levels, size, decay=0.9, dead_code_threshold=0.0,
                                   quantizer_dropout=False)
    ours.set_codebooks(books, cluster_size=1.0)
    x = torch.randn(2, 25, dim, generator=generator)
    reference.eval()
    ours.eval()
    quantized, indices, _ = reference(x)
    output = ours(x)
    torch.testing.assert_close(output.codes, indices.long())
    torch.testing.assert_close(output.quantized, quantized, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.decode(output.codes),
                               reference.get_output_from_indices(indices), atol=1e-5,
                               rtol=1e-5)

    # Training steps: same commitment losses and the same EMA codebooks (VQ-VAE's EMA with
    # Laplace smoothing), when its internal EMA state is aligned with ours (N = 1, m = c).
    codebook = reference.layers[0]._codebook
    if not all(hasattr(codebook, name) for name in ("embed_avg", "cluster_size")):
        pytest.skip("this vector_quantize_pytorch keeps its EMA state under other names")
    for level, layer in enumerate(reference.layers):
        layer._codebook.embed_avg.copy_(books[level][None])
        layer._codebook.cluster_size.fill_(1.0)
    reference.train()
    ours.train()
    for _ in range(3):
        _, indices, losses = reference(x)
        output = ours(x)
        torch.testing.assert_close(output.codes, indices.long())
        torch.testing.assert_close(output.level_losses, losses.reshape(-1).detach(),
                                   atol=1e-5, rtol=1e-5)
        for level, layer in enumerate(reference.layers):
            torch.testing.assert_close(ours.codebooks[level], layer._codebook.embed[0],
                                       atol=1e-5, rtol=1e-5)
