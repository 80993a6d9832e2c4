"""Sample loops of the synthesizers (numba, compiled once and cached).

Two kernels carry nearly all the per-sample work: a cascade of time-varying two-pole
resonators (the vocal tract of Klatt 1980) and a sum of sinusoidal partials with exponential
attacks and decays (additive synthesis of notes and tonal events). Everything else is
vectorized numpy on whole signals.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["resonator_coefficients", "resonator_cascade", "glottal_source", "sum_partials",
           "schroeder_reverb", "SINE_TABLE"]

# One period of a sine, with the first sample repeated at the end so that linear
# interpolation never reads past the table. 4096 points: interpolation error < 3e-7
# (-130 dB), far below anything a 16- or 24-bit signal holds.
SINE_TABLE = np.sin(2 * np.pi * np.arange(4097) / 4096)


def resonator_coefficients(
    frequency: np.ndarray, bandwidth: np.ndarray, sample_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients B, C of Klatt's (1980, eq. 2) digital resonator
    y[n] = A x[n] + B y[n-1] + C y[n-2], with C = -exp(-2 pi bw T), B = 2 exp(-pi bw T)
    cos(2 pi f T) and A = 1 - B - C (unit gain at 0 Hz). ``frequency`` and ``bandwidth`` in
    Hz, any shape; T = 1 / sample_rate. A resonance at or above 0.45 x sample_rate is
    turned into a pass-through (B = C = 0, A = 1), since it cannot be represented."""
    radius = np.exp(-np.pi * bandwidth / sample_rate)
    b = 2 * radius * np.cos(2 * np.pi * frequency / sample_rate)
    c = -radius * radius
    above = frequency >= 0.45 * sample_rate
    return np.where(above, 0.0, b), np.where(above, 0.0, c)


@njit(cache=True)
def resonator_cascade(x, b, c, hop):  # pragma: no cover - compiled
    """Run x (n,) through resonators in series; b, c: (resonators, frames) coefficients,
    resonator k uses frame i // hop at sample i. Returns y (n,) float64."""
    n = x.shape[0]
    y = x.astype(np.float64)
    for k in range(b.shape[0]):
        y1 = 0.0
        y2 = 0.0
        for i in range(n):
            j = i // hop
            bk = b[k, j]
            ck = c[k, j]
            value = (1.0 - bk - ck) * y[i] + bk * y1 + ck * y2
            y2 = y1
            y1 = value
            y[i] = value
    return y


@njit(cache=True)
def _at(track, i, hop):  # pragma: no cover - compiled
    """Linear interpolation of a control-rate track (one value per ``hop`` samples)."""
    j = i // hop
    fraction = (i - j * hop) / hop
    return track[j] + fraction * (track[j + 1] - track[j])


@njit(cache=True)
def glottal_source(f0, voicing, aspiration, hop, n, sample_rate, open_quotient, tilt_pole,
                   breathiness, jitter_noise, shimmer_noise, noise):  # pragma: no cover
    """Glottal flow (Rosenberg 1971, pulse B) + aspiration, n samples.

    f0 (Hz), voicing (AV) and aspiration (AH) are control-rate tracks, one value per
    ``hop`` samples, at least n // hop + 2 long, linearly interpolated. Each glottal period
    p draws its f0 factor 1 + jitter_noise[p] and its amplitude 1 + shimmer_noise[p] (the
    last entries repeat once they run out). Within a period of phase phi in [0, 1) the flow
    is 0.5 - 0.5 cos(pi phi / Tp) for phi < Tp, cos(pi (phi - Tp) / (2 Tn)) for
    Tp <= phi < Tp + Tn, else 0, with Tp = 0.7 OQ and Tn = 0.3 OQ (OQ: open quotient). The
    voiced flow goes through the one-pole tilt filter (1 - a) / (1 - a z^-1); noise[i]
    (standard normal) is added with level 0.08 (AH + breathiness AV g(phi)), g = 1 in the
    open phase and 0.3 in the closed one (aspiration is pulsed by the glottis)."""
    out = np.empty(n)
    opening = 0.7 * open_quotient
    closing = 0.3 * open_quotient
    last_period = min(jitter_noise.shape[0], shimmer_noise.shape[0]) - 1
    period = 0
    phase = 0.0
    factor = 1.0 + jitter_noise[0]
    gain = 1.0 + shimmer_noise[0]
    tilted = 0.0
    for i in range(n):
        phase += _at(f0, i, hop) * factor / sample_rate
        if phase >= 1.0:
            phase -= math.floor(phase)
            period = min(period + 1, last_period)
            factor = 1.0 + jitter_noise[period]
            gain = 1.0 + shimmer_noise[period]
        if phase < opening:
            flow = 0.5 - 0.5 * math.cos(math.pi * phase / opening)
        elif phase < open_quotient:
            flow = math.cos(0.5 * math.pi * (phase - opening) / closing)
        else:
            flow = 0.0
        voiced = _at(voicing, i, hop)
        tilted = (1.0 - tilt_pole) * flow * gain * voiced + tilt_pole * tilted
        pulsed = 1.0 if phase < open_quotient else 0.3
        out[i] = tilted + 0.08 * (_at(aspiration, i, hop) + breathiness * voiced * pulsed) \
            * noise[i]
    return out


@njit(cache=True)
def sum_partials(cycles, ratios, phases, amplitudes, attack, decay, table):  # pragma: no cover
    """Sum of partials: out[i] = sum_k amplitudes[k] (1 - attack[k]^(i+1)) decay[k]^i
    sin(2 pi (ratios[k] cycles[i] + phases[k])).

    cycles: (n,) running phase of the fundamental in cycles (the integral of f0 / fs, >= 0);
    ratios, phases (in cycles, >= 0), amplitudes: (partials,); attack[k] = exp(-1 / (tau_k
    fs)) (0 for an instant attack), decay[k] = exp(-d_k / fs) per-sample factors. The sine
    is read from ``table`` (one period of 2^m points, closed by a repeated first point)
    with linear interpolation. A partial stops once its amplitude is below 1e-10."""
    n = cycles.shape[0]
    out = np.zeros(n)
    size = table.shape[0] - 1
    wrap = size - 1  # size is a power of two: index & wrap == index mod size
    for k in range(ratios.shape[0]):
        ratio = ratios[k] * size
        offset = phases[k] * size
        a = attack[k]
        d = decay[k]
        fall = amplitudes[k]
        rise = a
        for i in range(n):
            position = ratio * cycles[i] + offset
            whole = int(position)
            fraction = position - whole
            index = whole & wrap
            sine = table[index] + fraction * (table[index + 1] - table[index])
            if a > 0.0:
                out[i] += (1.0 - rise) * fall * sine
                rise = rise * a if rise > 1e-30 else 0.0  # no subnormals (slow on x86)
            else:
                out[i] += fall * sine
            fall *= d
            if fall < 1e-10:  # decayed below -200 dB: the rest is silence
                break
    return out


@njit(cache=True)
def schroeder_reverb(x, comb_delays, comb_gains, damping, allpass_delays, allpass_gain
                     ):  # pragma: no cover - compiled
    """Reverberated part of x (n,): parallel feedback combs, each with a one-pole low-pass
    in its loop (Moorer 1979, "About this reverberation business": highs die faster), then
    all-passes in series (Schroeder 1962, "Natural sounding artificial reverberation").

    Comb c: y[n] = x[n - D] + g_c lp(y)[n - D], lp(v)[n] = (1 - damping) v[n] + damping
    lp[n-1]; all-pass: y[n] = -g u[n] + u[n - D] + g y[n - D]. Delays in samples."""
    n = x.shape[0]
    wet = np.zeros(n)
    for c in range(comb_delays.shape[0]):
        delay = comb_delays[c]
        gain = comb_gains[c]
        line = np.zeros(n)
        low = 0.0
        for i in range(delay, n):
            low = (1.0 - damping) * line[i - delay] + damping * low
            line[i] = x[i - delay] + gain * low
        for i in range(n):
            wet[i] += line[i]
    for a in range(allpass_delays.shape[0]):
        delay = allpass_delays[a]
        out = np.empty(n)
        for i in range(n):
            delayed_in = wet[i - delay] if i >= delay else 0.0
            delayed_out = out[i - delay] if i >= delay else 0.0
            out[i] = -allpass_gain * wet[i] + delayed_in + allpass_gain * delayed_out
        wet = out
    return wet
