"""Linear evaluation of a frozen encoder: the downstream protocol of self-supervised
learning. Embeddings of whole spectrograms are standardized (statistics of the training
split) and fed to a multinomial logistic regression (classification, reported as accuracy)
or a ridge regression (reported as mean absolute error in the target's unit, e.g.
semitones for MIDI pitch), both from scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..._validation import check_choice, check_floating, check_tensor

__all__ = ["PROBE_TASKS", "ProbeResult", "embed", "linear_probe"]

PROBE_TASKS = ("classification", "regression")


@dataclass(frozen=True)
class ProbeResult:
    """What :func:`linear_probe` measured.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        metric: ``"accuracy"`` (fraction correct) or ``"mean_absolute_error"`` (target
            units).
        test: the metric on the test split.
        train: the metric on the training split (the gap shows over-fitting).
    """

    task: str
    metric: str
    test: float
    train: float

    def __float__(self) -> float:
        return self.test


def embed(encoder: nn.Module, spectrograms: torch.Tensor, *, batch_size: int = 256
          ) -> torch.Tensor:
    """(n, freq, time) -> (n, d) embeddings of the frozen encoder (eval mode, no
    gradient); the encoder's training flag is restored afterwards."""
    fn = "embed"
    spectrograms = check_floating(fn, "spectrograms", check_tensor(fn, "spectrograms",
                                                                   spectrograms))
    if spectrograms.ndim != 3 or len(spectrograms) == 0:
        raise ValueError(f"{fn}: spectrograms must be a non-empty (n, freq, time) tensor, got "
                         f"shape {tuple(spectrograms.shape)}")
    was_training = encoder.training
    encoder.eval()
    device = next(iter(encoder.parameters()), spectrograms).device
    try:
        with torch.no_grad():
            return torch.cat([encoder(spectrograms[start: start + batch_size].to(device)).cpu()
                              for start in range(0, len(spectrograms), batch_size)])
    finally:
        encoder.train(was_training)


def _split(name: str, split: object) -> tuple[torch.Tensor, np.ndarray]:
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise TypeError(f"linear_probe: {name} must be a (spectrograms, targets) pair, got "
                        f"{type(split).__name__}")
    spectrograms, targets = split
    targets = np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets)
    if targets.ndim != 1 or len(targets) != len(spectrograms):
        raise ValueError(f"linear_probe: {name}'s targets must be one per spectrogram "
                         f"({len(spectrograms)}), got shape {targets.shape}")
    return spectrograms, targets


def linear_probe(encoder: nn.Module, train_set: tuple, test_set: tuple,
                 task: str = "classification", *, regularization: float = 1.0,
                 batch_size: int = 256) -> ProbeResult:
    """Fit a linear model on frozen embeddings and score it on held-out data.

    Args:
        encoder: (n, freq, time) -> (n, d).
        train_set, test_set: ``(spectrograms (n, freq, time), targets (n,))`` pairs; integer
            class labels for classification, numbers for regression.
        task: ``"classification"`` or ``"regression"``.
        regularization: L2 weight: 1 / C of the logistic regression, alpha of the ridge.
        batch_size: spectrograms per encoder call.

    Returns:
        A :class:`ProbeResult` (``float(result)`` is the test metric).
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    check_choice("linear_probe", "task", task, PROBE_TASKS)
    if isinstance(regularization, bool) or not isinstance(
            regularization, (int, float)) or not regularization > 0:
        raise ValueError(f"linear_probe: regularization must be a positive number, got "
                         f"{regularization!r}")
    train_x, train_y = _split("train_set", train_set)
    test_x, test_y = _split("test_set", test_set)
    scaler = StandardScaler()
    train_features = scaler.fit_transform(embed(encoder, train_x, batch_size=batch_size)
                                          .double().numpy())
    test_features = scaler.transform(embed(encoder, test_x, batch_size=batch_size)
                                     .double().numpy())
    if task == "classification":
        if len(np.unique(train_y)) < 2:
            raise ValueError("linear_probe: classification needs at least 2 classes in "
                             "train_set")
        model = LogisticRegression(C=1.0 / regularization, max_iter=2000)
        model.fit(train_features, train_y)
        return ProbeResult(task, "accuracy", float(model.score(test_features, test_y)),
                           float(model.score(train_features, train_y)))
    model = Ridge(alpha=regularization)
    model.fit(train_features, train_y.astype(np.float64))

    def error(features: np.ndarray, targets: np.ndarray) -> float:
        return float(np.abs(model.predict(features) - targets).mean())

    return ProbeResult(task, "mean_absolute_error", error(test_features, test_y),
                       error(train_features, train_y))
