"""Diarization error rate (DER), exact and with a named collar convention.

DER (NIST RT-09 evaluation plan; md-eval.pl) is, over the scored region,

    DER = (missed detection + false alarm + speaker confusion) / total reference speech,

where, on every elementary segment of duration ``d`` (between consecutive boundaries of
the reference, the hypothesis, the UEM and the collars) with ``N_ref`` reference and
``N_hyp`` hypothesis speakers and ``N_correct`` of them matched under the optimal
one-to-one speaker mapping,

    missed    += d * max(0, N_ref - N_hyp)
    false al. += d * max(0, N_hyp - N_ref)
    confusion += d * (min(N_ref, N_hyp) - N_correct)
    total     += d * N_ref.

The mapping maximises the total time the mapped speakers talk together (Hungarian
algorithm on the reference x hypothesis co-occurrence durations of the scored region).

**Collar convention.** ``collar`` here follows md-eval: ``collar = c`` removes ``[t - c,
t + c]`` around every reference turn boundary ``t`` from scoring, so md-eval ``-c 0.25``
(the DIHARD / dscore setting) is ``collar=0.25``. pyannote.metrics' ``collar`` is the
*total* width of the removed region (``t ± collar / 2``), so the same evaluation there is
``DiarizationErrorRate(collar=0.5)`` (pyannote-metrics issue #33, maintainer's answer).
:func:`pyannote_der` and :func:`evaluate` do this conversion (``2 * collar``) for you.

:func:`diarization_error_rate` is an independent numpy implementation;
:func:`pyannote_der`, :func:`evaluate` and :func:`evaluate_files` use pyannote.metrics.
Times are in seconds throughout. A speaker's own overlapping turns count once (a speaker
talks or does not); pyannote.metrics counts them twice, so the two agree on annotations
where no speaker overlaps itself.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate
from scipy.optimize import linear_sum_assignment

from .formats import (
    DiarizationFormatError,
    _atomic_write_text,
    _regions,
    check_uem_uris,
    read_rttm,
    read_uem,
)

__all__ = ["diarization_error_rate", "pyannote_der", "DERRow", "DERReport", "evaluate",
           "evaluate_files"]

UEMLike = Timeline | Iterable[tuple[float, float]]

_COMPONENTS = ("missed detection", "false alarm", "confusion", "correct", "total")


def _turn_arrays(annotation: Annotation) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(starts, ends, speaker_index, num_speakers)`` of the turns, times in seconds."""
    starts, ends, speakers = [], [], []
    index: dict = {}
    for segment, _, label in annotation.itertracks(yield_label=True):
        if segment.end > segment.start:
            starts.append(segment.start)
            ends.append(segment.end)
            speakers.append(index.setdefault(label, len(index)))
    return (np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64),
            np.asarray(speakers, dtype=np.int64), len(index))


def _coverage(points: np.ndarray, starts: np.ndarray, ends: np.ndarray, columns: np.ndarray,
              num_columns: int) -> np.ndarray:
    """``(len(points) - 1, num_columns)`` count of intervals ``[starts, ends)`` of each
    column covering each elementary segment ``[points[i], points[i + 1])``. Every start and
    end must be one of ``points`` (exact float equality)."""
    counts = np.zeros((len(points), num_columns), dtype=np.int64)
    np.add.at(counts, (np.searchsorted(points, starts), columns), 1)
    np.add.at(counts, (np.searchsorted(points, ends), columns), -1)
    return np.cumsum(counts, axis=0)[:-1]


def _default_uem(reference: Annotation, hypothesis: Annotation) -> list[tuple[float, float]]:
    """pyannote.metrics' default scored region: the extent (first start to last end) of the
    reference and hypothesis turns together; empty when both are empty."""
    extent = reference.get_timeline().extent() | hypothesis.get_timeline().extent()
    return [(extent.start, extent.end)] if extent else []


def _der_value(errors: float, total: float) -> float:
    if total > 0:
        return errors / total
    return 0.0 if errors == 0 else math.inf


def diarization_error_rate(reference: Annotation, hypothesis: Annotation, *,
                           uem: UEMLike | None = None, collar: float = 0.0,
                           skip_overlap: bool = False, detailed: bool = False
                           ) -> float | dict[str, float]:
    """Exact DER of ``hypothesis`` against ``reference`` (see the module docstring).

    ``uem``: scored regions (a :class:`Timeline` or ``(start, end)`` pairs, seconds);
    defaults to the extent of reference and hypothesis turns together. ``collar``: seconds
    removed on *each side* of every reference turn boundary (md-eval convention;
    ``collar=0.25`` is md-eval ``-c 0.25``). ``skip_overlap``: do not score where the
    reference has two or more speakers.

    Returns the DER as a fraction (``0.0`` when nothing is to be scored and nothing is
    wrong, ``inf`` when the scored reference is empty but the hypothesis speaks), or with
    ``detailed=True`` a dict with ``"missed detection"``, ``"false alarm"``,
    ``"confusion"``, ``"correct"``, ``"total"`` (seconds of speaker time) and
    ``"diarization error rate"``. Runs in ``O(S (K_ref + K_hyp) + K_ref K_hyp^2)`` for
    ``S`` elementary segments and ``K`` speakers."""
    if collar < 0 or not math.isfinite(collar):
        raise ValueError(f"diarization_error_rate: collar must be a finite number >= 0 "
                         f"(seconds), got {collar}")
    ref_starts, ref_ends, ref_speakers, num_ref = _turn_arrays(reference)
    hyp_starts, hyp_ends, hyp_speakers, num_hyp = _turn_arrays(hypothesis)
    regions = np.asarray(_regions(uem) if uem is not None
                         else _default_uem(reference, hypothesis), dtype=np.float64)
    regions = regions.reshape(-1, 2)
    regions = regions[regions[:, 1] > regions[:, 0]]
    boundaries = np.concatenate([ref_starts, ref_ends])
    collars = np.stack([boundaries - collar, boundaries + collar], axis=1)
    if collar == 0:
        collars = collars[:0]
    points = np.unique(np.concatenate([ref_starts, ref_ends, hyp_starts, hyp_ends,
                                       regions.ravel(), collars.ravel()]))
    components = dict.fromkeys(_COMPONENTS, 0.0)
    if len(points) >= 2:
        durations = np.diff(points)
        ref_active = _coverage(points, ref_starts, ref_ends, ref_speakers, num_ref) > 0
        hyp_active = _coverage(points, hyp_starts, hyp_ends, hyp_speakers, num_hyp) > 0
        zeros = np.zeros(len(regions), dtype=np.int64)
        scored = _coverage(points, regions[:, 0], regions[:, 1], zeros, 1)[:, 0] > 0
        if len(collars):
            zeros = np.zeros(len(collars), dtype=np.int64)
            scored &= _coverage(points, collars[:, 0], collars[:, 1], zeros, 1)[:, 0] == 0
        num_ref_active = ref_active.sum(axis=1)
        num_hyp_active = hyp_active.sum(axis=1)
        if skip_overlap:
            scored &= num_ref_active < 2
        weight = durations * scored
        # co-occurrence[i, j]: seconds reference speaker i and hypothesis speaker j overlap
        cooccurrence = ref_active.T.astype(np.float64) @ (hyp_active * weight[:, None])
        rows, cols = linear_sum_assignment(cooccurrence, maximize=True)
        # N_correct per segment: mapped pairs speaking together there
        num_correct = (ref_active[:, rows] & hyp_active[:, cols]).sum(axis=1)
        num_matched = np.minimum(num_ref_active, num_hyp_active)
        components = {
            "missed detection": float(weight @ np.maximum(num_ref_active - num_hyp_active, 0)),
            "false alarm": float(weight @ np.maximum(num_hyp_active - num_ref_active, 0)),
            "confusion": float(weight @ (num_matched - num_correct)),
            "correct": float(weight @ num_correct),
            "total": float(weight @ num_ref_active),
        }
    errors = (components["missed detection"] + components["false alarm"]
              + components["confusion"])
    der = _der_value(errors, components["total"])
    if detailed:
        return {**components, "diarization error rate": der}
    return der


def _as_timeline(uem: UEMLike | None, reference: Annotation, hypothesis: Annotation
                 ) -> Timeline:
    regions = _regions(uem) if uem is not None else _default_uem(reference, hypothesis)
    return Timeline(segments=[Segment(start, end) for start, end in regions],
                    uri=reference.uri)


def pyannote_der(reference: Annotation, hypothesis: Annotation, *, uem: UEMLike | None = None,
                 collar: float = 0.0, skip_overlap: bool = False, detailed: bool = False
                 ) -> float | dict[str, float]:
    """DER by ``pyannote.metrics.diarization.DiarizationErrorRate``, same arguments and
    result as :func:`diarization_error_rate`.

    ``collar`` is in the md-eval convention (seconds on each side of a reference boundary)
    and is passed to pyannote as ``2 * collar``, pyannote's collar being the total width
    (pyannote-metrics issue #33). The default ``uem`` (extent of reference and hypothesis)
    is passed explicitly, which is what pyannote does by default, minus its warning. When
    the scored reference is empty but the hypothesis speaks, pyannote returns ``1.0``."""
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    result = metric(reference, hypothesis, uem=_as_timeline(uem, reference, hypothesis),
                    detailed=detailed)
    if detailed:
        return {key: float(value) for key, value in result.items()}
    return float(result)


@dataclass(frozen=True)
class DERRow:
    """DER of one recording (or of all, ``uri="OVERALL"``); durations in seconds of speaker
    time, ``der`` a fraction."""

    uri: str
    missed: float
    false_alarm: float
    confusion: float
    correct: float
    total: float
    der: float

    @property
    def der_percent(self) -> float:
        """DER in percent."""
        return 100.0 * self.der

    @classmethod
    def from_components(cls, uri: str, components: Mapping[str, float], der: float
                        ) -> DERRow:
        return cls(uri=uri, missed=float(components["missed detection"]),
                   false_alarm=float(components["false alarm"]),
                   confusion=float(components["confusion"]),
                   correct=float(components["correct"]), total=float(components["total"]),
                   der=float(der))


@dataclass(frozen=True)
class DERReport:
    """Per-recording and overall DER of an evaluation.

    ``rows``: one :class:`DERRow` per reference recording, in the references' order;
    ``overall``: accumulated over all recordings (sums of seconds, then the ratio);
    ``missing_hypotheses``: reference uris with no hypothesis (scored as all missed);
    ``collar`` in the md-eval convention (seconds each side)."""

    rows: tuple[DERRow, ...]
    overall: DERRow
    collar: float
    skip_overlap: bool
    missing_hypotheses: tuple[str, ...] = ()

    def to_text(self) -> str:
        """An aligned table: uri, DER (%), missed, false alarm, confusion and total
        (seconds), two decimals, the overall row last, then notes."""
        header = ("uri", "DER %", "missed (s)", "false alarm (s)", "confusion (s)",
                  "total (s)")
        table = [header] + [
            (row.uri + (" *" if row.uri in self.missing_hypotheses else ""),
             f"{row.der_percent:.2f}", f"{row.missed:.2f}", f"{row.false_alarm:.2f}",
             f"{row.confusion:.2f}", f"{row.total:.2f}")
            for row in (*self.rows, self.overall)]
        widths = [max(len(line[k]) for line in table) for k in range(len(header))]

        def render(line: tuple[str, ...]) -> str:
            cells = [line[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:])]
            return "  ".join(cells).rstrip()

        rule = "-" * len(render(header))
        lines = [f"DER, collar ±{self.collar:g} s around reference boundaries (md-eval), "
                 f"overlap {'skipped' if self.skip_overlap else 'scored'}",
                 render(header), rule, *map(render, table[1:-1]), rule, render(table[-1])]
        if self.missing_hypotheses:
            lines.append(f"* no hypothesis, scored as all missed: "
                         f"{', '.join(self.missing_hypotheses)}")
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the rows and the overall row as CSV (seconds and DER in percent, full
        precision), atomically."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["uri", "missed_s", "false_alarm_s", "confusion_s", "correct_s",
                         "total_s", "der_percent", "hypothesis_missing"])
        for row in (*self.rows, self.overall):
            writer.writerow([row.uri, repr(row.missed), repr(row.false_alarm),
                             repr(row.confusion), repr(row.correct), repr(row.total),
                             repr(row.der_percent), int(row.uri in self.missing_hypotheses)])
        _atomic_write_text(path, buffer.getvalue())


def evaluate(references: Mapping[str, Annotation], hypotheses: Mapping[str, Annotation], *,
             uems: Mapping[str, UEMLike] | None = None, collar: float = 0.25,
             skip_overlap: bool = False) -> DERReport:
    """Score ``{uri: hypothesis}`` against ``{uri: reference}`` with pyannote.metrics.

    One ``DiarizationErrorRate(collar=2 * collar, skip_overlap=...)`` accumulates over the
    recordings, so the overall DER is total errors over total reference speech (not a
    mean of per-file DERs). ``collar`` is md-eval's (seconds on each side; the default
    0.25 is the DIHARD/dscore setting). A reference uri missing from ``hypotheses`` is
    scored against an empty hypothesis (all missed) and listed in
    ``missing_hypotheses``; a hypothesis uri absent from ``references`` raises
    ``ValueError``. ``uems`` maps uris to scored regions; recordings without one are
    scored over the extent of their reference and hypothesis."""
    unknown = [uri for uri in hypotheses if uri not in references]
    if unknown:
        raise ValueError(f"evaluate: hypotheses for recordings absent from the references: "
                         f"{', '.join(map(str, unknown))}")
    uems = dict(uems or {})
    check_uem_uris(uems, references)
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    rows, missing = [], []
    for uri, reference in references.items():
        hypothesis = hypotheses.get(uri)
        if hypothesis is None:
            missing.append(uri)
            hypothesis = Annotation(uri=uri)
        components = metric(reference, hypothesis,
                            uem=_as_timeline(uems.get(uri), reference, hypothesis),
                            detailed=True)
        rows.append(DERRow.from_components(str(uri), components,
                                           components["diarization error rate"]))
    overall = DERRow.from_components("OVERALL", metric[:], abs(metric) if rows else 0.0)
    return DERReport(rows=tuple(rows), overall=overall, collar=collar,
                     skip_overlap=skip_overlap, missing_hypotheses=tuple(missing))


def evaluate_files(reference_rttm: str | os.PathLike, hypothesis_rttm: str | os.PathLike,
                   uem_path: str | os.PathLike | None = None, collar: float = 0.25,
                   skip_overlap: bool = False) -> DERReport:
    """:func:`evaluate` on RTTM files (and an optional UEM file), the way md-eval / dscore
    are run: ``evaluate_files("ref.rttm", "sys.rttm", "all.uem", collar=0.25)``. Raises
    :class:`~lutece.audio.diarization.formats.DiarizationFormatError` naming the file for
    hypothesis or UEM recordings absent from the reference."""
    references = read_rttm(reference_rttm)
    hypotheses = read_rttm(hypothesis_rttm)
    unknown = [uri for uri in hypotheses if uri not in references]
    if unknown:
        raise DiarizationFormatError(f"evaluate_files: {hypothesis_rttm} has recordings "
                                     f"absent from {reference_rttm}: {', '.join(unknown)}")
    uems = None
    if uem_path is not None:
        uems = read_uem(uem_path)
        check_uem_uris(uems, references, uem_path)
    return evaluate(references, hypotheses, uems=uems, collar=collar,
                    skip_overlap=skip_overlap)
