"""A small convolutional encoder of spectrogram patches (or whole spectrograms).

The same encoder serves the pretext (one embedding per patch) and the downstream probe (one
embedding per spectrogram), so its pooling accepts any input size: convolution blocks, then
an average over time and over ``frequency_cells`` equal frequency bands (coarse frequency
position survives, which pitch needs), then a linear map to the embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from ..._validation import check_floating, check_tensor

__all__ = ["ConvEncoder"]


class ConvEncoder(nn.Module):
    """``(batch, freq, time)`` or ``(batch, 1, freq, time)`` -> ``(batch, embedding_dim)``.

    Args:
        channels: output channels of the 3x3 convolution blocks (each conv -> batch norm ->
            ReLU -> 2x2 max pooling while both axes are at least 2 long).
        embedding_dim: size of the output embedding.
        frequency_cells: frequency bands kept by the final pooling (1 pools globally).

    The input first goes through a one-channel batch norm (the log-mel scale need not be
    standardized beforehand).
    """

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), embedding_dim: int = 128,
                 frequency_cells: int = 4) -> None:
        super().__init__()
        if not channels or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                               for c in channels):
            raise ValueError(f"ConvEncoder: channels must be positive ints, got {channels!r}")
        for name, value in (("embedding_dim", embedding_dim),
                            ("frequency_cells", frequency_cells)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ConvEncoder: {name} must be a positive int, got {value!r}")
        self.embedding_dim = embedding_dim
        self.frequency_cells = frequency_cells
        self.input_norm = nn.BatchNorm2d(1)
        blocks = []
        previous = 1
        for width in channels:
            blocks.append(nn.Sequential(nn.Conv2d(previous, width, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(width), nn.ReLU()))
            previous = width
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d((frequency_cells, 1))
        self.project = nn.Linear(previous * frequency_cells, embedding_dim)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        fn = "ConvEncoder"
        x = check_floating(fn, "spectrogram", check_tensor(fn, "spectrogram", spectrogram))
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"{fn}: input must be (batch, freq, time) or (batch, 1, freq, "
                             f"time), got shape {tuple(spectrogram.shape)}")
        x = self.input_norm(x)
        for block in self.blocks:
            x = block(x)
            if min(x.shape[-2:]) >= 2:
                x = nn.functional.max_pool2d(x, 2, ceil_mode=True)
        return self.project(self.pool(x).flatten(1))
