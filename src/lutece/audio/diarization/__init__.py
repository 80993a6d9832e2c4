"""Speaker diarization: DIVE (Zeghidour, Teboul & Grangier, 2021), the field's formats and
metrics, conversation simulation, a long-audio pipeline and baselines."""

from .annotation import (
    Annotation,
    Segment,
    annotation_from_turns,
    annotation_to_frames,
    frames_to_annotation,
    relabel,
    turns,
)

__all__ = ["Annotation", "Segment", "annotation_from_turns", "annotation_to_frames",
           "frames_to_annotation", "relabel", "turns"]
