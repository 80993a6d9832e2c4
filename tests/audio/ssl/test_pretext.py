"""The pretext: zero soft-rank loss (up to the regularization bias) for a perfect scorer,
gradients reach the encoder for every ranking, a tiny pre-training run lowers the loss, the
fixed-set baseline classifies among its set, and bad arguments are refused."""

import pytest
import scipy.stats
import torch
from torch import nn

from lutece.audio.ssl import (
    ConvEncoder,
    PatchShuffler,
    PermutationPretext,
    pretrain,
    spearman_correlation,
)
from lutece.perturbed import ranks as hard_ranks


class _PatchMean(nn.Module):
    """A one-number embedding: the patch's mean (a perfect scorer when each patch is filled
    with its original position)."""

    embedding_dim = 1

    def forward(self, patches):
        return patches.mean(dim=(-2, -1)).unsqueeze(-1)


def _position_spectrograms(batch, grid, size=(2, 3)):
    """Spectrograms whose patch at position p is filled with p (row-major)."""
    rows, cols = grid
    positions = torch.arange(rows * cols, dtype=torch.float64).reshape(rows, cols)
    cells = positions.repeat_interleave(size[0], 0).repeat_interleave(size[1], 1)
    return cells.expand(batch, -1, -1).clone()


def _perfect(ranking, scale, **kwargs):
    grid = (2, 3)
    pretext = PermutationPretext(_PatchMean(), ranking,
                                 shuffler=PatchShuffler("time_frequency", grid,
                                                        generator=torch.Generator()
                                                        .manual_seed(0)), **kwargs).double()
    with torch.no_grad():
        pretext.head.weight.fill_(scale)
        pretext.head.bias.zero_()
    return pretext, _position_spectrograms(16, grid)


def test_soft_rank_loss_is_zero_for_a_perfect_scorer_up_to_the_regularization_bias():
    losses = []
    for strength in (0.1, 1.0, 10.0, 100.0):
        pretext, spectrograms = _perfect("soft_rank", 1.0, regularization_strength=strength)
        out = pretext(spectrograms)
        assert torch.equal(out.predicted_ranks, out.true_ranks)
        assert out.metrics() == {"exact": 1.0, "spearman": 1.0}
        losses.append(float(out.loss.detach()))
    # scores one apart: exact ranks while eps <= 1, then shrinking toward the mean rank
    assert losses[0] == 0.0 and losses[1] < 1e-20
    assert 0 < losses[2] < losses[3]
    # eps -> infinity: every soft rank tends to (n + 1) / 2, the loss to Var of 1..n
    assert losses[3] < (6 ** 2 - 1) / 12


def test_perturbed_loss_gradient_vanishes_for_a_confident_perfect_scorer():
    pretext, spectrograms = _perfect("perturbed", 50.0, sigma=1.0, num_samples=200)
    pretext.head.weight.requires_grad_(True)
    out = pretext(spectrograms)
    scores = out.scores
    grad, = torch.autograd.grad(out.loss, scores)
    assert grad.abs().max() < 1e-12  # E[ranks(theta + Z)] = r* when gaps are 50 sigma
    # an anti-correlated scorer is pushed toward the true order: <grad, r*> < 0
    pretext, spectrograms = _perfect("perturbed", -1.0, sigma=1.0, num_samples=200)
    out = pretext(spectrograms)
    grad, = torch.autograd.grad(out.loss, out.scores)
    assert float((grad * (out.true_ranks - 3.5)).sum()) < 0


@pytest.mark.parametrize("ranking", ["soft_rank", "perturbed", "fixed_set"])
def test_gradients_reach_every_encoder_parameter(ranking):
    torch.manual_seed(0)
    pretext = PermutationPretext(ConvEncoder(channels=(4, 8), embedding_dim=8), ranking,
                                 shuffler=PatchShuffler("time_frequency", (2, 2)),
                                 num_fixed_permutations=6, num_samples=20, hidden_dim=16)
    out = pretext(torch.randn(6, 8, 12))
    out.loss.backward()
    for name, parameter in pretext.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert out.predicted_ranks.shape == out.true_ranks.shape == (6, 4)


def test_fixed_set_draws_and_predicts_permutations_of_its_set():
    pretext = PermutationPretext(ConvEncoder(channels=(4,), embedding_dim=4), "fixed_set",
                                 shuffler=PatchShuffler("time", 4),
                                 num_fixed_permutations=5, hidden_dim=8)
    assert pretext.permutations.shape == (5, 4)
    out = pretext(torch.randn(32, 4, 8))
    assert out.scores.shape == (32, 5)
    members = {tuple(p) for p in (pretext.permutations + 1).tolist()}
    assert {tuple(r) for r in out.true_ranks.long().tolist()} <= members
    assert {tuple(r) for r in out.predicted_ranks.long().tolist()} <= members
    assert "num_fixed_permutations=5" in repr(pretext)


def test_spearman_matches_scipy():
    generator = torch.Generator().manual_seed(0)
    first = torch.rand(5, 7, generator=generator).argsort(1) + 1
    second = torch.rand(5, 7, generator=generator).argsort(1) + 1
    expected = [scipy.stats.spearmanr(a, b).statistic for a, b in zip(first, second)]
    assert spearman_correlation(first, second).tolist() == pytest.approx(expected)
    assert torch.equal(hard_ranks(torch.tensor([[0.3, -1.0, 2.0]])),
                       torch.tensor([[2.0, 1.0, 3.0]]))


@pytest.mark.parametrize("ranking", ["soft_rank", "perturbed", "fixed_set"])
def test_a_tiny_pretraining_run_decreases_the_loss(ranking):
    torch.manual_seed(0)
    # patches of noise plus a position-dependent level: learnable order, not trivial
    spectrograms = torch.randn(64, 8, 12) + torch.linspace(0, 3, 8).reshape(1, 8, 1)
    pretext = PermutationPretext(ConvEncoder(channels=(4, 8), embedding_dim=8), ranking,
                                 shuffler=PatchShuffler("frequency", 4),
                                 num_fixed_permutations=8, num_samples=20, hidden_dim=16)
    history = []
    encoder = pretrain(pretext, spectrograms, steps=40, batch_size=16, lr=3e-3, seed=0,
                       device="cpu", progress=False,
                       callbacks=[lambda step, metrics: history.append(metrics)])
    assert encoder is pretext.encoder and not encoder.training
    first = sum(h["loss"] for h in history[:5]) / 5
    last = sum(h["loss"] for h in history[-5:]) / 5
    assert last < 0.7 * first
    assert history[-1]["spearman"] > history[0]["spearman"]


def test_pretraining_resumes_bit_identically(tmp_path):
    spectrograms = torch.randn(32, 4, 8)

    def run(steps, directory):
        torch.manual_seed(0)
        pretext = PermutationPretext(ConvEncoder(channels=(4,), embedding_dim=4), "soft_rank",
                                     shuffler=PatchShuffler("time", 4))
        pretrain(pretext, spectrograms, steps=steps, batch_size=8, seed=1, device="cpu",
                 progress=False, checkpoint_dir=directory)
        return torch.cat([p.detach().flatten() for p in pretext.parameters()])

    straight = run(6, None)
    run(3, str(tmp_path))  # interrupted after 3 steps, then resumed to 6
    assert torch.equal(run(6, str(tmp_path)), straight)


def test_bad_arguments_are_refused():
    encoder = ConvEncoder(channels=(4,), embedding_dim=4)
    with pytest.raises(ValueError, match="ranking"):
        PermutationPretext(encoder, "sinkhorn")
    with pytest.raises(TypeError, match="encoder must be a torch.nn.Module"):
        PermutationPretext(lambda x: x, "soft_rank")
    with pytest.raises(ValueError, match="pass embedding_dim"):
        PermutationPretext(nn.Identity(), "soft_rank")
    with pytest.raises(ValueError, match="regularization_strength must be a positive"):
        PermutationPretext(encoder, "soft_rank", regularization_strength=0.0)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        PermutationPretext(encoder, "perturbed", sigma=-1.0)
    with pytest.raises(ValueError, match=r"size must be in 1..24"):
        PermutationPretext(encoder, "fixed_set", shuffler=PatchShuffler("time", 4),
                           num_fixed_permutations=25)
    with pytest.raises(TypeError, match="shuffler must be a PatchShuffler"):
        PermutationPretext(encoder, "soft_rank", shuffler="time")
    pretext = PermutationPretext(encoder, "fixed_set", shuffler=PatchShuffler("time", 3),
                                 num_fixed_permutations=6)
    with pytest.raises(ValueError, match="do not tile"):
        pretext(torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match="do not tile"):
        pretrain(pretext, torch.randn(4, 4, 8), steps=1, progress=False)
    with pytest.raises(TypeError, match="pretext must be a PermutationPretext"):
        pretrain(encoder, torch.randn(4, 4, 9), steps=1)
    with pytest.raises(ValueError, match=r"must be \(n, freq, time\)"):
        pretrain(pretext, torch.randn(4, 9), steps=1)
    with pytest.raises(ValueError, match="empty"):
        pretrain(pretext, torch.randn(0, 4, 9), steps=1)
    with pytest.raises(ValueError, match="channels must be positive ints"):
        ConvEncoder(channels=())
    with pytest.raises(ValueError, match="input must be"):
        encoder(torch.randn(2, 3, 4, 8))
