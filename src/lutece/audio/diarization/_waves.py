"""The one input check every diarization entry point runs on a wave."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["mono_float32"]


def mono_float32(fn: str, wave: np.ndarray | torch.Tensor, *, mix_channels: bool = False
                 ) -> np.ndarray:
    """``wave`` as a float32 numpy ``(samples,)``.

    Accepts ``(samples,)`` or ``(1, samples)`` arrays or tensors; ``(channels, samples)``
    too when ``mix_channels`` (the channels are averaged). Raises ``ValueError`` for other
    shapes, no samples or NaN/inf values, ``TypeError`` for a non-floating dtype; messages
    start with ``fn``."""
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    wave = np.asarray(wave)
    if wave.ndim == 2 and (wave.shape[0] == 1 or mix_channels):
        wave = wave.mean(axis=0) if wave.shape[0] > 1 else wave[0]
    if wave.ndim != 1:
        shapes = "(samples,) or (channels, samples)" if mix_channels else \
            "mono (samples,) or (1, samples)"
        raise ValueError(f"{fn}: wave must be {shapes}, got shape {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating):
        raise TypeError(f"{fn}: wave must be floating point, got {wave.dtype}")
    if wave.size == 0:
        raise ValueError(f"{fn}: wave is empty")
    if not np.all(np.isfinite(wave)):
        raise ValueError(f"{fn}: wave contains NaN or infinite values")
    return wave.astype(np.float32, copy=False)
