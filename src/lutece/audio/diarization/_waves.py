"""The input checks every diarization entry point shares: the wave, the speaker counts."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["mono_float32", "check_speaker_bounds"]


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


def check_speaker_bounds(fn: str, num_speakers: int | None, min_speakers: int | None,
                         max_speakers: int | None) -> tuple[int | None, int, int | None]:
    """Validate the speaker-count arguments (positive ints or None, ``min <= num <= max``);
    returns ``(num, min, max)`` as Python ints, ``min`` defaulting to 1."""
    counts = []
    for name, value in (("num_speakers", num_speakers), ("min_speakers", min_speakers),
                        ("max_speakers", max_speakers)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{fn}: {name} must be a positive int or None, got {value!r}")
        counts.append(None if value is None else int(value))
    num_speakers, low, max_speakers = counts
    low = 1 if low is None else low
    if max_speakers is not None and low > max_speakers:
        raise ValueError(f"{fn}: min_speakers={low} is larger than max_speakers={max_speakers}")
    if num_speakers is not None and (num_speakers < low or
                                     (max_speakers is not None and num_speakers > max_speakers)):
        raise ValueError(f"{fn}: num_speakers={num_speakers} is outside [min_speakers={low}, "
                         f"max_speakers={max_speakers}]")
    return num_speakers, low, max_speakers
