"""Diarizing recordings of any length: :func:`diarize` and :func:`diarize_file`.

With a DIVE model, a long recording is cut into overlapping windows (``window`` seconds
every ``step``), each diarized on its own; the windows' local speakers are then linked into
global speakers (*speaker linking*): each new window's speakers are matched (Hungarian) to
the speakers found so far by the cosine similarity of DIVE's speaker vectors plus their
agreement on the frames the windows share, and a local speaker that matches nobody well
enough becomes a new global speaker. Activities are averaged where windows overlap
(triangular weights, so each window's edges count least), then binarised. Memory holds one
window's activations plus a ``(frames, speakers)`` array at 50 Hz for the whole recording,
so it grows by ~4 bytes per speaker per 20 ms, not with the model.

Without a model, the default offline pipeline (:func:`.clustering.default_pipeline`: VAD +
pretrained d-vectors + spectral clustering + resegmentation) is used; a
:class:`.clustering.ClusteringDiarizer` can also be passed as ``model``.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from tqdm.auto import tqdm

from ._waves import check_speaker_bounds, mono_float32
from .annotation import Annotation, frames_to_annotation
from .dive import DIVE, PITDiarizer

__all__ = ["diarize", "diarize_file", "check_speaker_bounds", "LinkingConfig"]


@dataclass(frozen=True)
class LinkingConfig:
    """How window-level speakers become recording-level speakers.

    Attributes:
        window, step: seconds; windows overlap by ``window - step``.
        link_threshold: a local speaker joins a global speaker when cosine similarity +
            overlap agreement exceeds this; otherwise it starts a new speaker.
        min_speech: local speakers with less speech (seconds) in their window are dropped.
        threshold: activity probability above which a frame counts as speech.
        min_duration_on, min_duration_off: seconds, binarisation (pyannote's names).
    """

    window: float = 16.0
    step: float = 12.0
    link_threshold: float = 0.6
    min_speech: float = 0.3
    threshold: float = 0.5
    min_duration_on: float = 0.1
    min_duration_off: float = 0.1


def _window_starts(total: int, window: int, step: int) -> list[int]:
    if total <= window:
        return [0]
    starts = list(range(0, total - window, step))
    return starts + [total - window]


def _triangle(length: int) -> np.ndarray:
    ramp = np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)).astype(np.float32)
    return ramp / ramp.max()


def _diarize_windows(wave: np.ndarray, model: torch.nn.Module, config: LinkingConfig,
                     num_speakers: int | None, min_speakers: int, max_speakers: int | None,
                     progress: bool) -> np.ndarray:
    model_config = model.config
    hop = model_config.samples_per_frame
    frame_rate = model_config.frame_rate
    total_frames = int(math.ceil(len(wave) / hop))
    window_frames = int(round(config.window * frame_rate))
    step_frames = max(int(round(config.step * frame_rate)), 1)
    starts = _window_starts(total_frames, window_frames, step_frames)
    single = len(starts) == 1
    local_max = min(model_config.max_speakers, max_speakers or model_config.max_speakers,
                    num_speakers or model_config.max_speakers)
    sums = np.zeros((total_frames, 0), np.float32)
    weights = np.zeros(total_frames, np.float32)
    centroids: list[np.ndarray] = []
    min_frames = config.min_speech * frame_rate
    bar = tqdm(starts, desc="diarize", unit="window", disable=not progress or single,
               leave=False)
    for start in bar:
        piece = wave[start * hop:(start + window_frames) * hop]
        with torch.inference_mode():
            if isinstance(model, DIVE):
                output = model(torch.from_numpy(np.ascontiguousarray(piece))[None],
                               num_speakers=num_speakers if single else None,
                               min_speakers=min_speakers if single else 1,
                               max_speakers=local_max)
                count = int(output.count[0])
                probabilities = torch.sigmoid(output.activity_logits[0, :count]).numpy()
                vectors = output.speaker_vectors[0, :count].numpy()
            else:  # PIT: tracks without speech are not speakers
                probabilities = torch.sigmoid(model(torch.from_numpy(
                    np.ascontiguousarray(piece))[None])[0]).numpy()
                vectors = None
        frames = probabilities.shape[1]
        keep = (probabilities > config.threshold).sum(axis=1) >= min(min_frames, frames)
        probabilities = probabilities[keep]
        vectors = None if vectors is None else vectors[keep]
        taper = np.ones(frames, np.float32) if single else _triangle(frames)
        shared = weights[start:start + frames] > 0  # frames earlier windows already cover
        assignment = _link(probabilities, vectors, sums[start:start + frames],
                           weights[start:start + frames], shared, centroids,
                           config.link_threshold)
        needed = max(assignment, default=-1) + 1
        if needed > sums.shape[1]:
            sums = np.pad(sums, ((0, 0), (0, needed - sums.shape[1])))
        for local, global_index in enumerate(assignment):
            sums[start:start + frames, global_index] += probabilities[local] * taper
            if vectors is not None:
                vector = vectors[local]
                if global_index < len(centroids):
                    merged = centroids[global_index] + vector
                    centroids[global_index] = merged / max(np.linalg.norm(merged), 1e-8)
                else:
                    centroids.append(vector)
        weights[start:start + frames] += taper
    bar.close()
    activity = sums / np.maximum(weights, 1e-8)[:, None]
    return _reduce_speakers(activity, centroids, num_speakers, max_speakers)


def _link(probabilities: np.ndarray, vectors: np.ndarray | None, sums: np.ndarray,
          weights: np.ndarray, shared: np.ndarray, centroids: list[np.ndarray],
          threshold: float) -> list[int]:
    """Global index of each local speaker of a window (new ones numbered after the known)."""
    known = sums.shape[1]
    local = probabilities.shape[0]
    if known == 0 or local == 0:
        return list(range(known, known + local))
    score = np.zeros((local, known), np.float32)
    if vectors is not None and centroids:
        score += vectors @ np.stack(centroids).T
    if shared.any():
        mine = probabilities[:, shared]  # (local, shared frames)
        theirs = (sums[shared] / np.maximum(weights[shared], 1e-8)[:, None]).T
        both = np.minimum(mine[:, None], theirs[None]).sum(axis=-1)
        either = np.maximum(mine[:, None], theirs[None]).sum(axis=-1)
        score += np.where(either > 1.0, both / np.maximum(either, 1e-8), 0.0)
    rows, cols = linear_sum_assignment(-score)
    assignment = [-1] * local
    for row, col in zip(rows, cols):
        if score[row, col] > threshold:
            assignment[row] = int(col)
    next_index = known
    for row in range(local):
        if assignment[row] < 0:
            assignment[row] = next_index
            next_index += 1
    return assignment


def _reduce_speakers(activity: np.ndarray, centroids: list[np.ndarray],
                     num_speakers: int | None, max_speakers: int | None) -> np.ndarray:
    """Merge the most similar global speakers (by centroid) until at most
    ``num_speakers`` or ``max_speakers`` remain; merged activities add (clipped at 1)."""
    limit = num_speakers if num_speakers is not None else max_speakers
    if limit is None or activity.shape[1] <= limit:
        return activity
    columns = [activity[:, k] for k in range(activity.shape[1])]
    vectors = list(centroids) if len(centroids) == len(columns) else None
    while len(columns) > limit:
        if vectors is not None:
            matrix = np.stack(vectors)
            similarity = matrix @ matrix.T
        else:  # PIT: merge the speakers that overlap most
            stacked = np.stack(columns)
            similarity = stacked @ stacked.T
        np.fill_diagonal(similarity, -np.inf)
        first, second = np.unravel_index(np.argmax(similarity), similarity.shape)
        first, second = sorted((int(first), int(second)))
        columns[first] = np.clip(columns[first] + columns.pop(second), 0, 1)
        if vectors is not None:
            merged = vectors[first] + vectors.pop(second)
            vectors[first] = merged / max(np.linalg.norm(merged), 1e-8)
    return np.stack(columns, axis=1)


def diarize(wave, sample_rate: int, model: torch.nn.Module | object | None = None, *,
            num_speakers: int | None = None, min_speakers: int | None = None,
            max_speakers: int | None = None, uri: str | None = None,
            linking: LinkingConfig | None = None, progress: bool = True) -> Annotation:
    """Who spoke when in ``wave``.

    Args:
        wave: ``(samples,)`` or ``(channels, samples)`` float array or tensor (channels are
            averaged).
        sample_rate: Hz of ``wave``; a rate other than the model's is resampled (libsoxr)
            with a warning.
        model: a trained :class:`~.dive.DIVE` or :class:`~.dive.PITDiarizer` (see
            :func:`~.training.load_diarizer`), a :class:`~.clustering.ClusteringDiarizer`,
            or None for the default offline pipeline.
        num_speakers: the exact number of speakers, when known; else ``min_speakers`` /
            ``max_speakers`` bound the estimate.
        uri: the recording's name, carried by the returned annotation (RTTM ``uri``).
        linking: windowing, linking and binarisation settings (:class:`LinkingConfig`).
        progress: a progress bar over windows for long recordings.

    Returns:
        A :class:`pyannote.core.Annotation`, speakers labelled ``SPEAKER_00``, ... in
        order of first speech; overlapping turns allowed.
    """
    fn = "diarize"
    num_speakers, low, high = check_speaker_bounds(fn, num_speakers, min_speakers,
                                                   max_speakers)
    wave = mono_float32(fn, wave, mix_channels=True)
    if model is None:
        from .clustering import default_pipeline

        model = default_pipeline()
    if not isinstance(model, (DIVE, PITDiarizer)):
        if not callable(model):
            raise TypeError(f"{fn}: model must be a DIVE or PITDiarizer module, a "
                            f"ClusteringDiarizer or None, got {type(model).__name__}")
        return model(wave, sample_rate, num_speakers=num_speakers, min_speakers=low,
                     max_speakers=high, uri=uri)
    expected = model.config.sample_rate
    if sample_rate != expected:
        from ..io import resample

        warnings.warn(f"diarize: resampling from {sample_rate} Hz to the model's {expected} Hz",
                      stacklevel=2)
        wave = resample(torch.from_numpy(wave)[None], sample_rate, expected)[0].numpy()
    linking = linking or LinkingConfig()
    if len(wave) < model.config.samples_per_frame * 8:
        raise ValueError(f"{fn}: the recording is too short ({len(wave) / expected:.3f} s); "
                         f"at least {8 / model.config.frame_rate:.2f} s are needed")
    model.eval()
    activity = _diarize_windows(wave, model, linking, num_speakers, low, high, progress)
    if activity.shape[1]:
        first_speech = [int(np.argmax(activity[:, k] > linking.threshold))
                        if (activity[:, k] > linking.threshold).any() else activity.shape[0]
                        for k in range(activity.shape[1])]
        activity = activity[:, np.argsort(first_speech, kind="stable")]
    return frames_to_annotation(activity > linking.threshold, model.config.frame_rate,
                                uri=uri, min_duration_on=linking.min_duration_on,
                                min_duration_off=linking.min_duration_off)


def diarize_file(path: str | os.PathLike, model=None, **options) -> Annotation:
    """:func:`diarize` on an audio file (``uri`` defaults to the file's stem). Unreadable
    or empty files raise :class:`lutece.audio.io.AudioFileError`/``ValueError`` naming
    the file."""
    from ..io import load

    path = Path(path)
    wave, sample_rate = load(path)
    if wave.shape[-1] == 0:
        raise ValueError(f"diarize_file: '{path}' contains no audio samples")
    options.setdefault("uri", path.stem)
    return diarize(wave[0].numpy(), sample_rate, model, **options)
