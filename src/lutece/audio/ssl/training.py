"""Pre-training the permutation pretext on :mod:`lutece.train`, and the log-mel input.

The pretext draws its permutations from torch's global generator, which
:func:`lutece.train.train` seeds and stores with every checkpoint, so an interrupted
pre-training run resumes bit-identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from ..._validation import check_floating, check_tensor
from ...train import StepCallback, TrainConfig, seed_everything, train
from ..frontends import MelFilterbank
from .pretext import PermutationPretext

__all__ = ["log_mel_spectrograms", "pretrain", "SpectrogramDataset"]


def log_mel_spectrograms(waves: torch.Tensor, sample_rate: int, *, n_filters: int = 64,
                         window_len: float = 25.0, window_stride: float = 10.0,
                         batch_size: int = 256) -> torch.Tensor:
    """Log-mel spectrograms of a batch of clips (the pretext's input).

    Args:
        waves: (batch, samples) or (batch, 1, samples), float.
        sample_rate: Hz.
        n_filters: mel bands (from 60 Hz to min(7800 Hz, 0.4875 x sample_rate)).
        window_len, window_stride: ms (25 / 10: 100 frames per second).
        batch_size: clips per filterbank call (bounds memory).

    Returns:
        (batch, n_filters, ceil(samples / hop)) float32, log(mel energy + 1e-5).
    """
    fn = "log_mel_spectrograms"
    waves = check_floating(fn, "waves", check_tensor(fn, "waves", waves))
    if waves.ndim == 3 and waves.shape[1] == 1:
        waves = waves[:, 0]
    if waves.ndim != 2:
        raise ValueError(f"{fn}: waves must be (batch, samples) or (batch, 1, samples), got "
                         f"shape {tuple(waves.shape)}")
    filterbank = MelFilterbank(n_filters=n_filters, sample_rate=sample_rate,
                               window_len=window_len, window_stride=window_stride,
                               max_freq=min(7800.0, 0.4875 * sample_rate))
    with torch.no_grad():
        return torch.cat([filterbank(waves[start: start + batch_size].float())
                          for start in range(0, len(waves), batch_size)])


class SpectrogramDataset(Dataset):
    """Spectrograms for pre-training: item i is ``(spectrogram (freq, time),)``.

    Built from a (n, freq, time) tensor, or from any dataset whose items are a spectrogram
    or a tuple starting with one (labels after it are ignored: pre-training uses none).
    """

    def __init__(self, source: torch.Tensor | Dataset) -> None:
        if isinstance(source, torch.Tensor):
            source = check_floating("pretrain", "dataset", source)
            if source.ndim != 3:
                raise ValueError(f"pretrain: a dataset tensor must be (n, freq, time), got "
                                 f"shape {tuple(source.shape)}")
        elif not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
            raise TypeError(f"pretrain: dataset must be a (n, freq, time) tensor or a "
                            f"map-style dataset, got {type(source).__name__}")
        if len(source) == 0:
            raise ValueError("pretrain: the dataset is empty")
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor]:
        item = self.source[index]
        if isinstance(item, (tuple, list)):
            item = item[0]
        return (item,)


def _pretext_loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    output = model(batch[0])
    return output.loss, output.metrics()


def pretrain(pretext: PermutationPretext, dataset: torch.Tensor | Dataset, *,
             steps: int = 1000, batch_size: int = 32, lr: float = 1e-3,
             weight_decay: float = 0.0, seed: int = 0, device: str = "auto",
             checkpoint_dir: str | None = None, progress: bool = True,
             callbacks: Sequence[StepCallback] = ()) -> nn.Module:
    """Train the pretext (encoder and head) with Adam; return the trained encoder.

    Args:
        pretext: a :class:`~.pretext.PermutationPretext`.
        dataset: unlabelled spectrograms (see :class:`SpectrogramDataset`), all of one
            shape that the pretext's patch grid tiles.
        steps, batch_size: optimizer steps and spectrograms per step.
        lr, weight_decay: Adam's.
        seed: data order and permutations (the model's initialization is the caller's).
        device, checkpoint_dir, progress: as in :class:`lutece.train.TrainConfig`;
            with a ``checkpoint_dir`` an interrupted run resumes where it stopped.
        callbacks: ``callback(step, metrics)`` after each step; metrics hold ``loss``,
            ``exact`` (exact-permutation accuracy) and ``spearman``.

    Returns:
        ``pretext.encoder``, trained, in eval mode.
    """
    if not isinstance(pretext, PermutationPretext):
        raise TypeError(f"pretrain: pretext must be a PermutationPretext, got "
                        f"{type(pretext).__name__}")
    data = SpectrogramDataset(dataset)
    pretext.shuffler.check(data[0][0].unsqueeze(0))
    seed_everything(seed)
    optimizer = torch.optim.Adam(pretext.parameters(), lr=lr, weight_decay=weight_decay)
    train(pretext, optimizer, data, _pretext_loss,
          TrainConfig(max_steps=steps, batch_size=min(batch_size, len(data)), seed=seed,
                      device=device, checkpoint_dir=checkpoint_dir, progress=progress,
                      log_every=max(1, min(50, steps))),
          callbacks=callbacks)
    return pretext.encoder.eval()
