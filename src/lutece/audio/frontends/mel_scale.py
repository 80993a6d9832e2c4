"""The mel scale, triangular mel filters and the mel-initialized Gabor parameters of LEAF.

The filters follow TensorFlow's ``tf.signal.linear_to_mel_weight_matrix`` (HTK mel scale
m = 1127 ln(1 + f / 700); triangles whose slopes are linear in mel; the DC bin zeroed), which
is what both the LEAF paper's mel baseline and LEAF's initialization use (Zeghidour et al.,
"LEAF: A Learnable Frontend for Audio Classification", ICLR 2021, Sec. 3.1 and its reference
code's ``GaborInit``). Everything here is computed in float64 numpy once, at construction.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["hz_to_mel", "mel_to_hz", "mel_filter_matrix", "gabor_parameters_from_mel"]


def hz_to_mel(frequency_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: m = 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(frequency_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`: f = 700 (exp(m / 1127) - 1)."""
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def mel_filter_matrix(n_filters: int, n_fft: int, sample_rate: int, min_freq: float,
                      max_freq: float) -> np.ndarray:
    """Triangular mel filters over the bins of an ``n_fft``-point real FFT.

    Returns ``(n_fft // 2 + 1, n_filters)`` float64 weights: filter j rises linearly in mel
    from edge j to its peak at edge j + 1 and falls to edge j + 2, the ``n_filters + 2``
    edges being equally spaced in mel between ``min_freq`` and ``max_freq`` (Hz). Bin k sits
    at k * sample_rate / n_fft Hz; the DC bin gets no weight.
    """
    n_bins = n_fft // 2 + 1
    bin_mel = hz_to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins)[1:])[:, None]
    edges = np.linspace(hz_to_mel(min_freq), hz_to_mel(max_freq), n_filters + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (center - lower)
    falling = (upper - bin_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, n_filters)), weights], axis=0)


def gabor_parameters_from_mel(n_filters: int, sample_rate: int, min_freq: float,
                              max_freq: float, n_fft: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """LEAF's mel initialization of the Gabor filters: (eta, sigma), each ``(n_filters,)``.

    For each mel filter (square-rooted, so that the Gabor filter's *power* response follows
    the triangle), the center frequency is the peak bin, eta = 2 pi k_peak / n_fft rad/sample,
    and the time width follows from the full width at half maximum (in bins) of the filter,
    sigma = sqrt(2 ln 2) n_fft / (pi fwhm) samples (a Gaussian's FWHM in frequency is
    2 sqrt(2 ln 2) / sigma rad/sample). With the LEAF defaults (40 filters, 60-7800 Hz,
    16 kHz) eta spans 93.75 Hz to 7312.5 Hz and sigma 95.94 to 8.34 samples.
    """
    root = np.sqrt(mel_filter_matrix(n_filters, n_fft, sample_rate, min_freq, max_freq)).T
    peak_bin = root.argmax(axis=1)
    fwhm_bins = (root >= root.max(axis=1, keepdims=True) / 2.0).sum(axis=1)
    eta = peak_bin * 2.0 * math.pi / n_fft
    sigma = math.sqrt(2.0 * math.log(2.0)) * n_fft / (math.pi * fwhm_bins)
    return eta.astype(np.float64), sigma.astype(np.float64)
