"""Conversions between diarization annotations and frame-level activity matrices.

An annotation is a :class:`pyannote.core.Annotation` (the field's type: labelled
``Segment(start, end)`` turns in seconds, overlap allowed), so results plug into
pyannote.metrics and pyannote.audio tooling unchanged. Models work on frames: an activity
matrix ``(num_frames, num_speakers)`` whose frame ``t`` covers
``[t / frame_rate, (t + 1) / frame_rate)`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pyannote.core import Annotation, Segment

__all__ = ["Annotation", "Segment", "annotation_from_turns", "turns", "annotation_to_frames",
           "frames_to_annotation", "relabel"]


def annotation_from_turns(items: Iterable[tuple[float, float, str]], uri: str | None = None
                          ) -> Annotation:
    """Build an annotation from ``(start, end, speaker)`` triples in seconds (``end > start``;
    empty turns are dropped). Turns of one speaker that overlap are kept as given."""
    annotation = Annotation(uri=uri)
    for index, (start, end, speaker) in enumerate(items):
        if end > start:
            annotation[Segment(float(start), float(end)), f"_{index}"] = str(speaker)
    return annotation


def turns(annotation: Annotation) -> list[tuple[float, float, str]]:
    """``(start, end, speaker)`` triples of ``annotation``, sorted by start time."""
    return [(segment.start, segment.end, str(label))
            for segment, _, label in annotation.itertracks(yield_label=True)]


def annotation_to_frames(annotation: Annotation, num_frames: int, frame_rate: float,
                         labels: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Rasterise ``annotation`` at ``frame_rate`` frames per second.

    A frame is active for a speaker when the frame's centre lies inside one of the
    speaker's turns. Returns ``(activity, labels)``: ``activity`` is ``(num_frames,
    len(labels))`` float32 in {0, 1}; ``labels`` defaults to the annotation's speakers in
    order of first appearance (ties by name)."""
    if labels is None:
        first: dict[str, float] = {}
        for start, _, speaker in turns(annotation):
            first.setdefault(speaker, start)
        labels = sorted(first, key=lambda s: (first[s], s))
    labels = list(labels)
    column = {label: k for k, label in enumerate(labels)}
    activity = np.zeros((num_frames, len(labels)), dtype=np.float32)
    for start, end, speaker in turns(annotation):
        if speaker not in column:
            continue
        # frame t's centre (t + 0.5) / rate lies in [start, end)
        first_frame = max(int(np.ceil(start * frame_rate - 0.5)), 0)
        last_frame = min(int(np.ceil(end * frame_rate - 0.5)), num_frames)
        activity[first_frame:last_frame, column[speaker]] = 1.0
    return activity, labels


def frames_to_annotation(activity: np.ndarray, frame_rate: float,
                         labels: Sequence[str] | None = None, *, uri: str | None = None,
                         min_duration_on: float = 0.0, min_duration_off: float = 0.0,
                         offset: float = 0.0) -> Annotation:
    """Turn a binary ``(num_frames, num_speakers)`` activity matrix back into turns.

    Frame ``t`` covers ``[offset + t / frame_rate, offset + (t + 1) / frame_rate)``. Gaps
    shorter than ``min_duration_off`` seconds inside one speaker's speech are filled first,
    then turns shorter than ``min_duration_on`` seconds are dropped (pyannote.audio's
    binarisation order). ``labels`` default to ``"SPEAKER_00"``, ``"SPEAKER_01"``, ...
    """
    activity = np.asarray(activity) > 0.5
    if activity.ndim != 2:
        raise ValueError(f"frames_to_annotation: activity must be (num_frames, num_speakers), "
                         f"got shape {activity.shape}")
    num_speakers = activity.shape[1]
    if labels is None:
        labels = [f"SPEAKER_{k:02d}" for k in range(num_speakers)]
    if len(labels) != num_speakers:
        raise ValueError(f"frames_to_annotation: {len(labels)} labels for {num_speakers} "
                         f"speakers")
    items = []
    for k in range(num_speakers):
        column = np.concatenate([[False], activity[:, k], [False]])
        changes = np.flatnonzero(column[1:] != column[:-1])
        runs = [[s / frame_rate, e / frame_rate] for s, e in zip(changes[::2], changes[1::2])]
        merged: list[list[float]] = []
        for run in runs:
            if merged and run[0] - merged[-1][1] < min_duration_off:
                merged[-1][1] = run[1]
            else:
                merged.append(run)
        items += [(offset + s, offset + e, labels[k]) for s, e in merged
                  if e - s >= min_duration_on]
    items.sort()
    return annotation_from_turns(items, uri=uri)


def relabel(annotation: Annotation, mapping: dict[str, str]) -> Annotation:
    """A copy of ``annotation`` with speakers renamed by ``mapping`` (others unchanged)."""
    return annotation_from_turns(((s, e, mapping.get(k, k)) for s, e, k in turns(annotation)),
                                 uri=annotation.uri)
