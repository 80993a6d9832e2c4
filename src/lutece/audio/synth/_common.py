"""Argument checks and small signal helpers shared by the synthesizers.

Messages follow lutece's convention: they name the function, the argument, what was expected
and what was given (``play_note: pitch must be an integer MIDI note in 21..108, got 17``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import signal as sps

__all__: list[str] = []

MIN_SAMPLE_RATE = 4000


def check_sample_rate(fn: str, sample_rate: object) -> int:
    """An integer rate in Hz, at least ``MIN_SAMPLE_RATE``."""
    if (isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer))
            or sample_rate < MIN_SAMPLE_RATE):
        raise ValueError(f"{fn}: sample_rate must be an integer number of Hz >= "
                         f"{MIN_SAMPLE_RATE}, got {sample_rate!r}")
    return int(sample_rate)


def check_positive(fn: str, name: str, value: object, unit: str = "seconds") -> float:
    """A finite real number > 0."""
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{fn}: {name} must be a finite number of {unit} > 0, got {value!r}")
    return float(value)


def check_int(fn: str, name: str, value: object, low: int, high: int | None = None,
              what: str = "an integer") -> int:
    """An integer in [low, high] (no upper bound when ``high`` is None)."""
    bad = isinstance(value, bool) or not isinstance(value, (int, np.integer))
    if not bad and (value < low or (high is not None and value > high)):
        bad = True
    if bad:
        expected = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{fn}: {name} must be {what} in {expected}, got {value!r}")
    return int(value)


def check_rng(fn: str, rng: object) -> np.random.Generator:
    """A numpy Generator (lutece's synthesizers never read global random state)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{fn}: rng must be a numpy.random.Generator (e.g. "
                        f"numpy.random.default_rng(0)), got {type(rng).__name__}")
    return rng


def num_samples(seconds: float, sample_rate: int) -> int:
    """round(seconds x sample_rate), at least 1."""
    return max(1, int(round(seconds * sample_rate)))


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average over ``width`` points along the last axis, same length (edges
    averaged over the points that exist)."""
    if width <= 1:
        return x
    kernel = np.ones(width) / width
    if x.ndim == 1:
        total = np.convolve(x, kernel, mode="same")
        weight = np.convolve(np.ones_like(x), kernel, mode="same")
        return total / weight
    return np.stack([smooth(row, width) for row in x])


def band_limits(centre: float, bandwidth: float, sample_rate: int) -> tuple[float, float]:
    """Band edges for a (centre, bandwidth) band in Hz, kept inside (20 Hz, 0.45 fs)."""
    top = 0.45 * sample_rate
    low = min(max(centre - bandwidth / 2, 20.0), top * 0.8)
    high = min(max(centre + bandwidth / 2, low * 1.25), top)
    return low, high


def _repeat_biquad(b: list[float], a: list[float], order: int) -> tuple[np.ndarray, np.ndarray]:
    """Transfer function of ``order`` identical biquads in series (polynomial powers)."""
    numerator, denominator = np.ones(1), np.ones(1)
    for _ in range(order):
        numerator, denominator = np.convolve(numerator, b), np.convolve(denominator, a)
    return numerator, denominator


def bandpass(x: np.ndarray, centre: float, bandwidth: float, sample_rate: int,
             order: int = 2) -> np.ndarray:
    """Band-pass of ``x``: ``order`` identical biquads (R. Bristow-Johnson's "Audio EQ
    cookbook" band-pass, 0 dB peak gain) at the geometric centre of the band edges
    (:func:`band_limits`) with Q = centre / (high - low). Closed-form coefficients and one
    ``lfilter`` call: no filter design per call."""
    low, high = band_limits(centre, bandwidth, sample_rate)
    omega = 2 * math.pi * math.sqrt(low * high) / sample_rate
    alpha = math.sin(omega) * (high - low) / (2 * math.sqrt(low * high))
    b, a = _repeat_biquad([alpha, 0.0, -alpha], [1 + alpha, -2 * math.cos(omega), 1 - alpha],
                          order)
    return sps.lfilter(b, a, x)


def lowpass(x: np.ndarray, cutoff: float, sample_rate: int, order: int = 1) -> np.ndarray:
    """Low-pass of ``x``: ``order`` identical Butterworth-Q (1/sqrt 2) biquads from the
    "Audio EQ cookbook" at ``cutoff`` Hz (kept inside 20 Hz..0.45 fs)."""
    cutoff = min(max(cutoff, 20.0), 0.45 * sample_rate)
    omega = 2 * math.pi * cutoff / sample_rate
    alpha = math.sin(omega) / math.sqrt(2)
    cosine = math.cos(omega)
    b, a = _repeat_biquad([(1 - cosine) / 2, 1 - cosine, (1 - cosine) / 2],
                          [1 + alpha, -2 * cosine, 1 - alpha], order)
    return sps.lfilter(b, a, x)


@lru_cache(maxsize=32)
def _spectral_weights(n: int, exponent: float) -> np.ndarray:
    frequency = np.arange(n // 2 + 1, dtype=np.float64)
    frequency[0] = np.inf  # no DC
    return (frequency ** (-exponent / 2)).astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise of power spectrum 1 / f^exponent (0 white, 1 pink, 2 brown), shaped
    in the frequency domain (the DC bin is zeroed; computed in float32), unit RMS, (n,)
    float64."""
    if exponent == 0:
        return rng.standard_normal(n)
    bins = n // 2 + 1
    parts = rng.standard_normal(2 * bins, dtype=np.float32)
    spectrum = (parts[:bins] + 1j * parts[bins:]).astype(np.complex64)
    noise = scipy.fft.irfft(spectrum * _spectral_weights(n, float(exponent)), n)
    noise = noise.astype(np.float64)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


def smooth_random(rng: np.random.Generator, n: int, points: int) -> np.ndarray:
    """A slowly varying random curve over n samples: ``points`` standard normal values
    spread evenly and joined by cosine interpolation, (n,) float64."""
    knots = rng.standard_normal(max(points, 2))
    position = np.linspace(0, len(knots) - 1, n)
    index = np.minimum(position.astype(np.int64), len(knots) - 2)
    fraction = position - index
    weight = 0.5 - 0.5 * np.cos(np.pi * fraction)
    return knots[index] * (1 - weight) + knots[index + 1] * weight


def peak(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def fade(x: np.ndarray, samples: int) -> np.ndarray:
    """Raised-cosine fade-in and fade-out of ``samples`` at each end (in place)."""
    samples = min(samples, len(x) // 2)
    if samples > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(samples) / samples)
        x[:samples] *= ramp
        x[-samples:] *= ramp[::-1]
    return x
