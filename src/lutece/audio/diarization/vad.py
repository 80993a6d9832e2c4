"""Voice activity detection as frame masks: an adaptive energy detector and Silero VAD.

Both detectors return a boolean mask of ``ceil(samples * frame_rate / sample_rate)``
frames; frame ``t`` covers ``[t / frame_rate, (t + 1) / frame_rate)`` seconds (the
convention of :mod:`lutece.audio.diarization.annotation`).

* :func:`energy_vad` needs nothing trained: frame log-energies, a threshold set between the
  recording's noise floor and speech level (low and high percentiles), then run-length
  smoothing (fill short gaps, drop short bursts).
* :func:`silero_vad` runs Silero VAD (Silero Team, "Silero VAD: pre-trained enterprise-grade
  Voice Activity Detector", 2021-2024, MIT; the ``silero-vad`` package ships its weights) at
  16 kHz on 32 ms chunks with its own hysteresis post-processing.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..io import resample
from ._waves import mono_float32

__all__ = ["energy_vad", "silero_vad", "clean_mask", "mask_to_regions", "num_frames",
           "frame_energies_db"]


def num_frames(num_samples: int, sample_rate: int, frame_rate: float) -> int:
    """Frames of ``1 / frame_rate`` s needed to cover ``num_samples`` samples."""
    return int(math.ceil(num_samples * frame_rate / sample_rate - 1e-9))


def mask_to_regions(mask: np.ndarray) -> np.ndarray:
    """Runs of ``True`` in a ``(frames,)`` mask as ``(runs, 2)`` int64 ``[start, end)`` frame
    indices, in order."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return changes.reshape(-1, 2).astype(np.int64)


def clean_mask(mask: np.ndarray, frame_rate: float, *, min_duration_on: float = 0.0,
               min_duration_off: float = 0.0) -> np.ndarray:
    """Fill gaps shorter than ``min_duration_off`` seconds between active runs, then drop
    active runs shorter than ``min_duration_on`` seconds (pyannote.audio's binarisation
    order). ``mask``: ``(frames,)`` bool; returns a new ``(frames,)`` bool mask."""
    mask = np.asarray(mask, dtype=bool).copy()
    regions = mask_to_regions(mask)
    min_off = min_duration_off * frame_rate
    for (_, end), (start, _) in zip(regions[:-1], regions[1:]):
        if start - end < min_off:
            mask[end:start] = True
    min_on = min_duration_on * frame_rate
    for start, end in mask_to_regions(mask):
        if end - start < min_on:
            mask[start:end] = False
    return mask


def _check_rates(fn: str, sample_rate: object, frame_rate: object) -> None:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or sample_rate <= 0:
        raise ValueError(f"{fn}: sample_rate must be a positive int (Hz), got {sample_rate!r}")
    if not isinstance(frame_rate, (int, float)) or not 0 < frame_rate <= sample_rate:
        raise ValueError(f"{fn}: frame_rate must be in (0, sample_rate] frames per second, "
                         f"got {frame_rate!r}")


def frame_energies_db(wave: np.ndarray, sample_rate: int, frame_rate: float,
                      window: float = 0.025) -> np.ndarray:
    """Mean power in dB full scale (``10 log10(mean x^2)``, floored at -120 dB) of a
    ``max(window, 1 / frame_rate)``-second rectangular window centred on each frame."""
    frames = num_frames(len(wave), sample_rate, frame_rate)
    half = 0.5 * max(window, 1.0 / frame_rate) * sample_rate
    centres = (np.arange(frames) + 0.5) * sample_rate / frame_rate
    low = np.clip(np.round(centres - half), 0, len(wave)).astype(np.int64)
    high = np.clip(np.round(centres + half), 0, len(wave)).astype(np.int64)
    cumulative = np.concatenate([[0.0], np.cumsum(np.square(wave, dtype=np.float64))])
    power = (cumulative[high] - cumulative[low]) / np.maximum(high - low, 1)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def energy_vad(wave: np.ndarray | torch.Tensor, sample_rate: int, *, frame_rate: float = 100,
               threshold_db: float | None = None, min_duration_on: float = 0.2,
               min_duration_off: float = 0.3, floor_percentile: float = 10.0,
               speech_percentile: float = 95.0, relative_threshold: float = 0.4,
               silence_db: float = -60.0) -> np.ndarray:
    """Adaptive energy voice activity detection.

    Frame ``t`` is active when its log-energy (:func:`frame_energies_db`, 25 ms windows)
    exceeds the threshold ``theta``. By default ``theta = N + relative_threshold (S - N)``
    where the noise floor ``N`` and speech level ``S`` are the ``floor_percentile`` and
    ``speech_percentile`` percentiles of the recording's frame energies (dB), and never
    below ``silence_db``; a recording with less than 6 dB between ``N`` and ``S`` has no
    pauses to calibrate on and is all active if ``S > silence_db``, else all silent. The
    raw decisions are smoothed by :func:`clean_mask` with ``min_duration_on`` /
    ``min_duration_off`` seconds.

    Args:
        wave: mono ``(samples,)`` float array or tensor.
        sample_rate: Hz.
        frame_rate: output frames per second.
        threshold_db: fixed threshold in dB full scale instead of the adaptive one.

    Returns:
        ``(ceil(samples * frame_rate / sample_rate),)`` bool mask.
    """
    fn = "energy_vad"
    _check_rates(fn, sample_rate, frame_rate)
    wave = mono_float32(fn, wave)
    energy = frame_energies_db(wave, int(sample_rate), frame_rate)
    if energy.size == 0:
        return np.zeros(0, dtype=bool)
    if threshold_db is None:
        floor, level = np.percentile(energy, [floor_percentile, speech_percentile])
        if level - floor < 6.0:
            return np.full(energy.shape, level > silence_db)
        threshold_db = max(floor + relative_threshold * (level - floor), silence_db)
    mask = energy > threshold_db
    return clean_mask(mask, frame_rate, min_duration_on=min_duration_on,
                      min_duration_off=min_duration_off)


@functools.lru_cache(maxsize=1)
def _silero_model() -> torch.jit.ScriptModule:
    threads = torch.get_num_threads()
    try:
        import silero_vad as package  # sets torch's thread count on import
    except ImportError as error:
        raise ImportError("silero_vad: the 'silero-vad' package is not installed; install it "
                          "with `pip install silero-vad` (it ships its weights), or use "
                          "energy_vad") from error
    finally:
        torch.set_num_threads(threads)
    return package.load_silero_vad()


def silero_vad(wave: np.ndarray | torch.Tensor, sample_rate: int, *, frame_rate: float = 100,
               threshold: float = 0.5, min_duration_on: float = 0.25,
               min_duration_off: float = 0.1, speech_pad: float = 0.03) -> np.ndarray:
    """Silero VAD speech mask.

    The wave is resampled to 16 kHz; Silero scores each 512-sample (32 ms) chunk and its
    ``get_speech_timestamps`` post-processing keeps speech between a probability rising
    above ``threshold`` and falling below ``threshold - 0.15``, drops speech shorter than
    ``min_duration_on`` s, ends speech only after ``min_duration_off`` s below, and pads each
    segment by ``speech_pad`` s (Silero's defaults). A frame is active when its centre lies
    in a speech segment.

    Returns:
        ``(ceil(samples * frame_rate / sample_rate),)`` bool mask.

    Raises:
        ImportError: the ``silero-vad`` package is missing.
    """
    fn = "silero_vad"
    _check_rates(fn, sample_rate, frame_rate)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"{fn}: threshold must be a probability in (0, 1), got {threshold!r}")
    samples = mono_float32(fn, wave)
    frames = num_frames(len(samples), int(sample_rate), frame_rate)
    model = _silero_model()
    from silero_vad import get_speech_timestamps

    audio = torch.from_numpy(np.ascontiguousarray(samples))
    if sample_rate != 16000:
        audio = resample(audio, int(sample_rate), 16000)
    # Silero's per-chunk network is tiny: intra-op threads only add synchronisation, and on a
    # busy machine they cost 50x (measured: 0.3 s vs 19 s for 30 s of audio on 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            segments = get_speech_timestamps(
                audio, model, threshold=threshold, sampling_rate=16000,
                min_speech_duration_ms=int(round(1000 * min_duration_on)),
                min_silence_duration_ms=int(round(1000 * min_duration_off)),
                speech_pad_ms=int(round(1000 * speech_pad)))
    finally:
        torch.set_num_threads(threads)
    mask = np.zeros(frames, dtype=bool)
    centres = (np.arange(frames) + 0.5) / frame_rate
    for segment in segments:
        start, end = segment["start"] / 16000.0, segment["end"] / 16000.0
        mask[(centres >= start) & (centres < end)] = True
    return mask
