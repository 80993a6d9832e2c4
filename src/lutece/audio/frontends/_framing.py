"""Frame geometry and waveform checks shared by every frontend.

Frame convention (one for all lutece frontends, so their outputs line up frame for frame):
a clip of T samples gives ceil(T / hop) frames and frame i is centered on sample
hop * i + hop // 2, the middle of the hop interval it summarizes; samples outside the clip
count as zeros. For T a multiple of the hop this is exactly where TensorFlow's ``SAME``
padding puts LEAF's reference frames (16 000 samples, hop 160, 401 taps: 120 samples of
padding on the left, frame centers at 160 i + 80); the PyTorch ports pad symmetrically and
sit half a hop (80 samples) earlier. Unlike ``SAME``, the alignment does not move with
T mod hop.
"""

from __future__ import annotations

import math

import torch

from ..._validation import check_finite, check_floating, check_tensor

__all__ = ["window_samples", "hop_samples", "num_frames", "frame_padding", "as_waveform_batch",
           "check_positive_int", "check_frontend_config"]


def window_samples(sample_rate: int, window_ms: float) -> int:
    """Window length in samples, ``int(sample_rate * window_ms // 1000 + 1)`` as in LEAF's
    reference (25 ms at 16 kHz -> 401 taps, an odd length with a center tap)."""
    return int(sample_rate * window_ms // 1000 + 1)


def hop_samples(sample_rate: int, hop_ms: float) -> int:
    """Hop in samples, ``int(sample_rate * hop_ms // 1000)`` (10 ms at 16 kHz -> 160)."""
    return int(sample_rate * hop_ms // 1000)


def num_frames(num_samples: int, hop: int) -> int:
    """ceil(num_samples / hop): 16 000 samples at hop 160 -> 100 frames."""
    return -(-num_samples // hop)


def frame_padding(num_samples: int, window: int, hop: int) -> tuple[int, int]:
    """(left, right) zero padding after which a stride-``hop`` sliding window of ``window``
    taps yields :func:`num_frames` frames centered on hop * i + hop // 2 (the window's center
    tap is (window - 1) // 2). A negative value crops."""
    left = (window - 1) // 2 - hop // 2
    right = (num_frames(num_samples, hop) - 1) * hop + window - left - num_samples
    return left, right


def as_waveform_batch(fn: str, waveform: object, *, min_samples: int,
                      sample_rate: int | None, expected_sample_rate: int) -> torch.Tensor:
    """Check a frontend's input and return it as ``(batch, samples)``.

    Accepts ``(batch, samples)`` or ``(batch, 1, samples)`` floating tensors without NaN or
    inf, at least ``min_samples`` long (one analysis window). ``sample_rate``, when the caller
    states it, must equal the rate the frontend was built for.
    """
    x = check_tensor(fn, "waveform", waveform)
    check_floating(fn, "waveform", x)
    if sample_rate is not None and sample_rate != expected_sample_rate:
        raise ValueError(
            f"{fn}: this frontend was built for {expected_sample_rate} Hz audio, got "
            f"sample_rate={sample_rate}; resample first (lutece.audio.io.resample) or build "
            f"the frontend with sample_rate={sample_rate}"
        )
    if x.ndim == 3:
        if x.shape[1] != 1:
            raise ValueError(
                f"{fn}: waveform must be mono, (batch, 1, samples), got {x.shape[1]} channels "
                f"in shape {tuple(x.shape)}; average or select a channel first"
            )
        x = x[:, 0]
    elif x.ndim != 2:
        hint = "; add a batch dimension with waveform.unsqueeze(0)" if x.ndim == 1 else ""
        raise ValueError(
            f"{fn}: waveform must be (batch, samples) or (batch, 1, samples), got shape "
            f"{tuple(x.shape)}{hint}"
        )
    if x.shape[-1] < min_samples:
        raise ValueError(
            f"{fn}: waveform is shorter than one analysis window: got {x.shape[-1]} samples, "
            f"need at least {min_samples} ({1000.0 * min_samples / expected_sample_rate:.1f} ms "
            f"at {expected_sample_rate} Hz)"
        )
    check_finite(fn, "waveform", x)
    return x


def check_positive_int(fn: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{fn}: {name} must be > 0, got {value}")
    return value


def check_frontend_config(fn: str, *, n_filters: int, sample_rate: int, window_len: float,
                          window_stride: float, min_freq: float, max_freq: float) -> None:
    """Checks shared by the constructors of every frontend (times in ms, frequencies in Hz)."""
    check_positive_int(fn, "n_filters", n_filters)
    check_positive_int(fn, "sample_rate", sample_rate)
    for name, value in (("window_len", window_len), ("window_stride", window_stride)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{fn}: {name} must be a positive number of ms, got {value!r}")
    if hop_samples(sample_rate, window_stride) < 1:
        raise ValueError(
            f"{fn}: window_stride={window_stride} ms is less than one sample at {sample_rate} Hz"
        )
    if window_len < window_stride:
        raise ValueError(
            f"{fn}: window_len ({window_len} ms) must be >= window_stride ({window_stride} ms), "
            f"or frames would skip samples"
        )
    if not 0 <= min_freq < max_freq <= sample_rate / 2:
        raise ValueError(
            f"{fn}: need 0 <= min_freq < max_freq <= sample_rate / 2 = {sample_rate / 2:g} Hz, "
            f"got min_freq={min_freq}, max_freq={max_freq}"
        )
