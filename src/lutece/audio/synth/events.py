"""Acoustic events, background noises and mixing at a signal-to-noise ratio.

Events are built from a few physical recipes, in the spirit of procedural sound design
(A. Farnell, "Designing Sound", MIT Press 2010):

- noise textures: coloured noise (power ~ 1 / f^alpha) shaped by band-passes and slow
  random modulation ("rain": a dense train of droplet clicks over hiss, "wind": low-passed
  noise with gusts and a moving whistle resonance, "engine": a harmonic series at the firing
  rate with rpm drift, plus noise modulated by the firing);
- tones and sweeps: "chirp_up" and "chirp_down" (exponential sweeps with a few harmonics,
  repeated 1-4 times), "siren" (a tone whose pitch oscillates, wail or yelp), "beeps"
  (on/off pure tones of an alarm);
- impacts: damped modes, a sum of exponentially decaying sinusoids at the struck object's
  mode frequencies plus a contact click ("knock": wood, low modes, short; "bell": metal or
  glass, high inharmonic modes, long ring);
- "clicks": a train of short band-passed clicks (a clock, a Geiger counter).

Background noises are white, pink (1/f), brown (1/f^2) and babble (several quiet synthetic
voices talking at once, from :mod:`lutece.audio.synth.speech`).

:func:`mix_at_snr` defines the SNR by power over an *active* part (by default the whole
clip): SNR = 10 log10(mean(s^2) / mean(n^2)), both means over the same samples.
"""

from __future__ import annotations

import math

import numpy as np

from ..._validation import check_choice
from ._common import (
    bandpass,
    check_int,
    check_positive,
    check_rng,
    check_sample_rate,
    coloured_noise,
    fade,
    lowpass,
    num_samples,
    peak,
    rms,
    smooth_random,
)
from ._kernels import SINE_TABLE, resonator_cascade, resonator_coefficients, sum_partials
from .speech import random_speaker, random_word, speak

__all__ = ["EVENT_CLASSES", "NOISE_KINDS", "make_event", "background_noise", "babble",
           "mix_at_snr"]

EVENT_CLASSES: tuple[str, ...] = ("rain", "wind", "engine", "chirp_up", "chirp_down", "siren",
                                  "beeps", "knock", "bell", "clicks")
"""The event classes of :func:`make_event`, in label order."""
NOISE_KINDS: tuple[str, ...] = ("white", "pink", "brown", "babble")
"""The kinds of :func:`background_noise`."""

# Natural duration range (seconds) of each event class.
_DURATIONS = {"rain": (0.5, 1.0), "wind": (0.5, 1.0), "engine": (0.5, 1.0),
              "chirp_up": (0.1, 0.6), "chirp_down": (0.1, 0.6), "siren": (0.5, 1.0),
              "beeps": (0.3, 0.9), "knock": (0.15, 0.7), "bell": (0.4, 1.0),
              "clicks": (0.3, 0.9)}


def _tones(cycles: np.ndarray, ratios: np.ndarray, gains: np.ndarray,
           rng: np.random.Generator, decay: np.ndarray | None = None) -> np.ndarray:
    """Partials at ``ratios`` x the running phase ``cycles`` (see ``sum_partials``)."""
    count = len(ratios)
    return sum_partials(cycles, np.asarray(ratios, dtype=np.float64), rng.random(count),
                        np.asarray(gains, dtype=np.float64), np.zeros(count),
                        np.ones(count) if decay is None else decay, SINE_TABLE)


def _harmonics(top_frequency: float, sample_rate: int, count: int, slope_db: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` harmonic ratios below 0.45 fs at ``top_frequency``, with gains
    falling by ``slope_db`` per octave."""
    ratios = np.arange(1, count + 1, dtype=np.float64)
    ratios = ratios[ratios * top_frequency < 0.45 * sample_rate]
    return ratios, 10.0 ** (-slope_db * np.log2(ratios) / 20)


def _rain(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    hiss = bandpass(coloured_noise(rng, n, 0.5), rng.uniform(3000, 5000), 5000, sr)
    rate = rng.uniform(150, 600)  # drops per second
    drops = np.zeros(n)
    count = rng.poisson(rate * n / sr)
    drops[rng.integers(0, n, count)] = rng.pareto(2.5, count) + 0.2
    ring = int(0.004 * sr)
    kernel = rng.standard_normal(ring) * np.exp(-np.arange(ring) / (0.001 * sr))
    clicks = bandpass(np.convolve(drops, kernel)[:n], rng.uniform(1500, 4000), 4000, sr)
    return 0.3 * hiss / max(rms(hiss), 1e-12) + clicks / max(rms(clicks), 1e-12)


def _wind(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    gusts = np.exp(0.6 * smooth_random(rng, n, max(2, int(n / sr * rng.uniform(1, 4)))))
    body = lowpass(coloured_noise(rng, n, 1.0), rng.uniform(300, 900), sr) * gusts
    # a whistle: noise through one resonance gliding with the gusts
    hop = max(1, sr // 1000)
    frames = n // hop + 2
    centre = rng.uniform(400, 1200) * np.interp(np.arange(frames) * hop, np.arange(n),
                                                gusts) ** 0.5
    b, c = resonator_coefficients(centre[None, :], np.full((1, frames), rng.uniform(20, 60)),
                                  sr)
    whistle = resonator_cascade(rng.standard_normal(n), b, c, hop) * gusts
    return body / max(rms(body), 1e-12) + rng.uniform(0.1, 0.6) * whistle / max(
        rms(whistle), 1e-12)


def _engine(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    firing = rng.uniform(20, 70) * np.exp(0.08 * smooth_random(rng, n, 4))
    cycles = np.cumsum(firing) / sr
    ratios, gains = _harmonics(float(firing.max()), sr, 24, rng.uniform(4, 9))
    hum = _tones(cycles, ratios, gains, rng)
    rumble = lowpass(rng.standard_normal(n), rng.uniform(400, 1500), sr)
    pulse = 1 + 0.8 * np.sin(2 * np.pi * cycles) ** 8
    return hum / max(rms(hum), 1e-12) + rng.uniform(0.3, 1.0) * rumble * pulse / max(
        rms(rumble), 1e-12)


def _chirps(n: int, sr: int, rng: np.random.Generator, up: bool) -> np.ndarray:
    out = np.zeros(n)
    count = int(rng.integers(1, 5))
    length = max(n // count, 8)
    for index in range(count):
        size = int(length * rng.uniform(0.5, 0.9))
        low = rng.uniform(300, min(2000.0, 0.15 * sr))
        high = min(low * 2.0 ** rng.uniform(1, 3), 0.4 * sr)
        sweep = np.geomspace(low, high, size) if up else np.geomspace(high, low, size)
        ratios, gains = _harmonics(high, sr, 3, rng.uniform(6, 20))
        tone = _tones(np.cumsum(sweep) / sr, ratios, gains, rng)
        start = index * length + int(rng.integers(0, length - size + 1))
        out[start:start + size] += fade(tone, max(size // 8, 1))
    return out


def _siren(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    low = rng.uniform(500, 900) * min(1.0, sr / 16000)
    high = min(low * rng.uniform(1.4, 2.2), 0.4 * sr)
    rate = rng.uniform(0.4, 1.5) if rng.random() < 0.5 else rng.uniform(3.0, 6.0)
    t = np.arange(n) / sr
    sweep = low + (high - low) * (0.5 - 0.5 * np.cos(2 * np.pi * rate * t
                                                    + rng.uniform(0, 2 * np.pi)))
    ratios, gains = _harmonics(high, sr, 6, rng.uniform(6, 14))
    return _tones(np.cumsum(sweep) / sr, ratios, gains, rng)


def _beeps(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    frequency = rng.uniform(800, 3500) * min(1.0, sr / 16000)
    period = int(rng.uniform(0.1, 0.3) * sr)
    duty = rng.uniform(0.35, 0.65)
    ratios, gains = _harmonics(frequency, sr, 3, rng.uniform(15, 30))
    tone = _tones(np.full(n, frequency).cumsum() / sr, ratios, gains, rng)
    gate = (np.arange(n) % period) < duty * period
    gate = np.convolve(gate.astype(np.float64), np.ones(int(0.004 * sr) + 1), mode="same")
    return tone * gate / gate.max()


def _impacts(n: int, sr: int, rng: np.random.Generator, metal: bool) -> np.ndarray:
    out = np.zeros(n)
    hits = 1 if metal and rng.random() < 0.6 else int(rng.integers(1, 5))
    spacing = n // hits
    modes = 6
    if metal:
        base = rng.uniform(800, 3000) * min(1.0, sr / 16000)
        ratios = np.sort(np.concatenate([[1.0], rng.uniform(1.3, 4.5, modes - 1)]))
        decays = rng.uniform(2, 10) * ratios ** rng.uniform(0.5, 1.0)
    else:
        base = rng.uniform(120, 500)
        ratios = np.sort(np.concatenate([[1.0], rng.uniform(1.5, 6.0, modes - 1)]))
        decays = rng.uniform(25, 60) * ratios ** 0.5
    keep = ratios * base < 0.45 * sr
    ratios, decays = ratios[keep], decays[keep]
    gains = 10.0 ** (-rng.uniform(0, 20, len(ratios)) / 20)
    for hit in range(hits):
        start = hit * spacing + int(rng.integers(0, max(spacing // 4, 1)))
        size = n - start
        strike = _tones(np.arange(size) * (base / sr), ratios, gains, rng,
                        np.exp(-decays / sr))
        short = min(size, int(0.02 * sr))
        click = bandpass(rng.standard_normal(short), rng.uniform(2000, 5000), 4000, sr) \
            * np.exp(-np.arange(short) / (0.002 * sr))
        strike[:short] += 0.5 * click
        out[start:] += rng.uniform(0.5, 1.0) * strike
    return out


def _clicks(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    rate = rng.uniform(3, 15)
    regular = rng.random() < 0.6
    gaps = np.full(64, sr / rate) if regular else rng.exponential(sr / rate, 64)
    positions = (np.cumsum(gaps) - gaps[0] * rng.random()).astype(np.int64)
    positions = positions[(positions >= 0) & (positions < n)]
    train = np.zeros(n)
    train[positions] = rng.uniform(0.6, 1.0, len(positions))
    size = int(0.003 * sr)
    kernel = rng.standard_normal(size) * np.exp(-np.arange(size) / (0.0007 * sr))
    return bandpass(np.convolve(train, kernel)[:n], rng.uniform(1500, 5000),
                    rng.uniform(1000, 4000), sr)


_RECIPES = {
    "rain": _rain, "wind": _wind, "engine": _engine,
    "chirp_up": lambda n, sr, rng: _chirps(n, sr, rng, True),
    "chirp_down": lambda n, sr, rng: _chirps(n, sr, rng, False),
    "siren": _siren, "beeps": _beeps,
    "knock": lambda n, sr, rng: _impacts(n, sr, rng, False),
    "bell": lambda n, sr, rng: _impacts(n, sr, rng, True),
    "clicks": _clicks,
}


def make_event(name: str, *, sample_rate: int = 16000, rng: np.random.Generator,
               duration: float | None = None) -> np.ndarray:
    """Render one acoustic event of class ``name`` (one of :data:`EVENT_CLASSES`).

    Args:
        name: the event class.
        sample_rate: Hz.
        rng: all randomness (the event's parameters and noise).
        duration: seconds; None draws the class's natural duration (0.1-1 s).

    Returns:
        (samples,) float32, peak-normalised to 0.9, with 5 ms fades at both ends.
    """
    fn = "make_event"
    check_choice(fn, "name", name, EVENT_CLASSES)
    sample_rate = check_sample_rate(fn, sample_rate)
    check_rng(fn, rng)
    if duration is None:
        duration = float(rng.uniform(*_DURATIONS[name]))
    duration = check_positive(fn, "duration", duration)
    n = num_samples(duration, sample_rate)
    event = _RECIPES[name](n, sample_rate, rng)
    event = fade(event, int(0.005 * sample_rate))
    return (0.9 * event / max(peak(event), 1e-12)).astype(np.float32)


def babble(num_samples: int, *, sample_rate: int = 16000, rng: np.random.Generator,
           num_voices: int = 6) -> np.ndarray:
    """Babble noise: ``num_voices`` random speakers (:func:`random_speaker`) each saying
    random words back to back, each voice at a random offset and level (0 to -6 dB), summed.

    Returns:
        (num_samples,) float32 with RMS 0.1.
    """
    fn = "babble"
    num_samples = check_int(fn, "num_samples", num_samples, 1)
    sample_rate = check_sample_rate(fn, sample_rate)
    check_rng(fn, rng)
    num_voices = check_int(fn, "num_voices", num_voices, 1)
    return _babble(num_samples, sample_rate, rng, num_voices)


def _babble(n: int, sr: int, rng: np.random.Generator, voices: int) -> np.ndarray:
    out = np.zeros(n)
    for _ in range(voices):
        speaker = random_speaker(rng)
        words = [random_word(rng) for _ in range(int(n / sr / 0.35) + 2)]
        talk = speak(words, speaker, sample_rate=sr, rng=rng)
        offset = int(rng.integers(0, max(len(talk) - n, 0) + 1))
        talk = talk[offset:offset + n]
        out[:len(talk)] += 10 ** (-rng.uniform(0, 6) / 20) * talk / max(rms(talk), 1e-12)
    return (0.1 * out / max(rms(out), 1e-12)).astype(np.float32)


def background_noise(kind: str, num_samples: int, *, sample_rate: int = 16000,
                     rng: np.random.Generator) -> np.ndarray:
    """Background noise of ``kind``: "white", "pink" (power ~ 1/f), "brown" (~ 1/f^2,
    shaped in the frequency domain, DC removed) or "babble" (:func:`babble`, 6 voices).

    Returns:
        (num_samples,) float32 with RMS 0.1 (-20 dB re full scale).
    """
    fn = "background_noise"
    check_choice(fn, "kind", kind, NOISE_KINDS)
    num_samples = check_int(fn, "num_samples", num_samples, 1)
    sample_rate = check_sample_rate(fn, sample_rate)
    check_rng(fn, rng)
    if kind == "babble":
        return _babble(num_samples, sample_rate, rng, 6)
    noise = coloured_noise(rng, num_samples, NOISE_KINDS.index(kind))
    return (0.1 * noise / max(rms(noise), 1e-12)).astype(np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float, *,
               active: np.ndarray | None = None) -> np.ndarray:
    """signal + g x noise, with g chosen so that the signal-to-noise ratio is ``snr_db``.

    SNR = 10 log10(P_s / (g^2 P_n)) dB, where P_s = mean(signal^2) and P_n = mean(noise^2)
    are both taken over the *active* samples (``active``: a boolean mask of the signal's
    length, e.g. where an event sounds; None: the whole clip). Measuring over the active
    part keeps a short event's local SNR what was asked, however much silence surrounds it.

    Args:
        signal, noise: (samples,) arrays of the same length; neither is modified.
        snr_db: the target SNR in dB (finite).
        active: optional (samples,) bool mask with at least one True entry.

    Returns:
        (samples,) in the signals' common floating dtype (float64 inputs stay float64).
    """
    fn = "mix_at_snr"
    signal = np.asarray(signal)
    noise = np.asarray(noise)
    if signal.ndim != 1 or signal.shape != noise.shape:
        raise ValueError(f"{fn}: signal and noise must be 1-d arrays of the same length, got "
                         f"shapes {signal.shape} and {noise.shape}")
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float, np.number)) \
            or not math.isfinite(snr_db):
        raise ValueError(f"{fn}: snr_db must be a finite number of dB, got {snr_db!r}")
    if active is None:
        active = np.ones(signal.shape, dtype=bool)
    active = np.asarray(active)
    if active.dtype != bool or active.shape != signal.shape or not active.any():
        raise ValueError(f"{fn}: active must be a boolean mask of shape {signal.shape} with "
                         f"at least one True entry, got dtype {active.dtype}, shape "
                         f"{active.shape}")
    signal_power = float(np.mean(np.square(signal[active], dtype=np.float64)))
    noise_power = float(np.mean(np.square(noise[active], dtype=np.float64)))
    if noise_power <= 0 or signal_power <= 0:
        raise ValueError(f"{fn}: signal and noise must both have power > 0 over the active "
                         f"samples, got {signal_power} and {noise_power}")
    gain = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10)))
    dtype = np.result_type(signal.dtype, noise.dtype, np.float32)
    return (signal.astype(dtype) + gain * noise.astype(dtype)).astype(dtype)
