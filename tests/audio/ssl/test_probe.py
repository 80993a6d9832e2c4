"""Linear probe and the log-mel input: a frozen encoder's embeddings, a linear model on
them, scored on held-out data; bad inputs refused."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from torch import nn

from lutece.audio.frontends import MelFilterbank
from lutece.audio.ssl import ConvEncoder, ProbeResult, embed, linear_probe, log_mel_spectrograms


class _FirstColumn(nn.Module):
    """Embedding = the spectrogram's first time frame (a linear, label-revealing feature)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, spectrograms):
        return self.scale * spectrograms[..., 0]


def _separable(n, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    spectrograms = 0.1 * torch.randn(n, 4, 5, generator=generator)
    spectrograms[torch.arange(n), labels, 0] += 2.0
    return spectrograms, labels


def test_probe_classifies_separable_embeddings_perfectly():
    result = linear_probe(_FirstColumn(), _separable(60, 0), _separable(30, 1))
    assert isinstance(result, ProbeResult) and result.metric == "accuracy"
    assert result.test == 1.0 and result.train == 1.0 and float(result) == 1.0


def test_regression_probe_reports_the_mean_absolute_error_of_a_ridge_fit():
    train_x, _ = _separable(60, 0)
    test_x, _ = _separable(30, 1)
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])
    train_y, test_y = train_x[..., 0] @ weights, test_x[..., 0] @ weights
    result = linear_probe(_FirstColumn(), (train_x, train_y), (test_x, test_y), "regression",
                          regularization=1e-6)
    assert result.metric == "mean_absolute_error" and result.test < 1e-4
    # with a strong ridge the error is that of scikit-learn's ridge on standardized features
    result = linear_probe(_FirstColumn(), (train_x, train_y), (test_x, test_y), "regression",
                          regularization=50.0)
    features = train_x[..., 0].double().numpy()
    mean, std = features.mean(0), features.std(0)
    ridge = Ridge(alpha=50.0).fit((features - mean) / std, train_y.numpy())
    expected = np.abs(ridge.predict((test_x[..., 0].double().numpy() - mean) / std)
                      - test_y.numpy()).mean()
    assert result.test == pytest.approx(expected, rel=1e-6)


def test_embed_uses_eval_mode_and_restores_the_training_flag():
    torch.manual_seed(0)
    encoder = ConvEncoder(channels=(4,), embedding_dim=6)
    spectrograms = torch.randn(10, 8, 12)
    encoder.train()
    first = embed(encoder, spectrograms, batch_size=3)
    assert encoder.training and first.shape == (10, 6)
    encoder.eval()
    with torch.no_grad():
        assert torch.allclose(first, encoder(spectrograms), atol=1e-6)


def test_log_mel_spectrograms_match_the_filterbank():
    generator = torch.Generator().manual_seed(0)
    waves = 0.1 * torch.randn(5, 1, 3200, generator=generator)
    spectrograms = log_mel_spectrograms(waves, 16000, n_filters=32, batch_size=2)
    expected = MelFilterbank(n_filters=32, sample_rate=16000)(waves[:, 0])
    assert spectrograms.shape == (5, 32, 20)
    assert torch.allclose(spectrograms, expected, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        log_mel_spectrograms(torch.randn(3200), 16000)


def test_bad_probe_inputs_are_refused():
    data = _separable(12, 0)
    with pytest.raises(ValueError, match="task"):
        linear_probe(_FirstColumn(), data, data, "ranking")
    with pytest.raises(TypeError, match=r"\(spectrograms, targets\) pair"):
        linear_probe(_FirstColumn(), data[0], data)
    with pytest.raises(ValueError, match="one per spectrogram"):
        linear_probe(_FirstColumn(), (data[0], data[1][:5]), data)
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe(_FirstColumn(), (data[0], torch.zeros(12)), data)
    with pytest.raises(ValueError, match="regularization must be a positive"):
        linear_probe(_FirstColumn(), data, data, regularization=0)
    with pytest.raises(ValueError, match="non-empty"):
        embed(_FirstColumn(), torch.randn(0, 4, 5))
