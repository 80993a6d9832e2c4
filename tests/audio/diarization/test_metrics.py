"""Tests of lutece.audio.diarization.metrics.

Oracles: hand-computed DERs (md-eval collar convention), and
pyannote.metrics.diarization.DiarizationErrorRate with ``collar = 2 * ours`` on random
annotations, which checks both our exact implementation and the collar conversion."""

from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from lutece.audio.diarization.annotation import annotation_from_turns
from lutece.audio.diarization.formats import (
    DiarizationFormatError,
    write_rttm,
    write_uem,
)
from lutece.audio.diarization.metrics import (
    DERReport,
    diarization_error_rate,
    evaluate,
    evaluate_files,
    pyannote_der,
)

KEYS = ("missed detection", "false alarm", "confusion", "correct", "total")


def _random_annotation(rng: np.random.Generator, uri: str, duration_ms: int = 20_000
                       ) -> Annotation:
    """1-4 speakers, turns on a millisecond grid; speakers overlap each other but a speaker
    never overlaps itself (the case where pyannote.metrics and md-eval agree)."""
    items = []
    for speaker in range(rng.integers(1, 5)):
        count = 2 * rng.integers(1, 5)
        points = np.sort(rng.choice(duration_ms, size=count, replace=False)) / 1000
        items += [(s, e, f"S{speaker}") for s, e in zip(points[::2], points[1::2])]
    return annotation_from_turns(sorted(items), uri=uri)


def _random_uem(rng: np.random.Generator, duration_ms: int = 20_000
                ) -> list[tuple[float, float]]:
    points = np.sort(rng.choice(duration_ms, size=2 * rng.integers(1, 3), replace=False))
    return [(s / 1000, e / 1000) for s, e in zip(points[::2], points[1::2])]


def _assert_same(ours: dict, theirs: dict) -> None:
    for key in KEYS:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6), key
    if theirs["total"] > 1e-9:
        assert ours["diarization error rate"] == pytest.approx(
            theirs["diarization error rate"], abs=1e-6)


# ---------------------------------------------------------------------------- hand-computed


def test_confusion_example():
    reference = annotation_from_turns([(0, 10, "A")], uri="x")
    hypothesis = annotation_from_turns([(0, 5, "B"), (5, 10, "C")], uri="x")
    detail = diarization_error_rate(reference, hypothesis, detailed=True)
    assert detail["confusion"] == pytest.approx(5.0)
    assert detail["correct"] == pytest.approx(5.0)
    assert detail["missed detection"] == detail["false alarm"] == 0.0
    assert detail["total"] == pytest.approx(10.0)
    assert detail["diarization error rate"] == pytest.approx(0.5)


def test_collar_is_md_eval_convention():
    # reference boundaries at 2, 5 and 8 s; md-eval -c 0.25 removes [t - .25, t + .25]
    # (0.5 s of scored time per boundary) from the uem [0, 10]: 8.5 s stay scored.
    reference = annotation_from_turns([(2, 5, "A"), (5, 8, "B")], uri="x")
    late_switch = annotation_from_turns([(2, 5.2, "X"), (5.2, 8, "Y")], uri="x")
    uem = [(0.0, 10.0)]
    plain = diarization_error_rate(reference, late_switch, uem=uem, detailed=True)
    assert plain["confusion"] == pytest.approx(0.2)
    assert plain["diarization error rate"] == pytest.approx(0.2 / 6)
    collared = diarization_error_rate(reference, late_switch, uem=uem, collar=0.25,
                                      detailed=True)
    assert collared["total"] == pytest.approx(6.0 - 4 * 0.25)   # 0.25 s each side, 4 sides
    assert collared["diarization error rate"] == 0.0
    # speech on silence: inside a collar it is free, outside it is a false alarm; the
    # scored silence is 10 - 6 - 2 * 0.25 = 3.5 s, and a system that speaks all of it
    # (with the correct speakers) pays exactly that
    covered = annotation_from_turns([(0, 5, "X"), (5, 10, "Y")], uri="x")
    detail = diarization_error_rate(reference, covered, uem=uem, collar=0.25, detailed=True)
    assert detail["false alarm"] == pytest.approx(3.5)
    edge = annotation_from_turns([(2, 5, "X"), (5, 8.2, "Y")], uri="x")
    assert diarization_error_rate(reference, edge, uem=uem, collar=0.25) == 0.0
    beyond = annotation_from_turns([(2, 5, "X"), (5, 8, "Y"), (8.3, 8.5, "Y")], uri="x")
    detail = diarization_error_rate(reference, beyond, uem=uem, collar=0.25, detailed=True)
    assert detail["false alarm"] == pytest.approx(0.2)
    # pyannote's collar is the total width: 0.5 there is 0.25 here
    metric = DiarizationErrorRate(collar=0.5)
    assert metric(reference, beyond, uem=Timeline([Segment(0, 10)]), detailed=True)[
        "false alarm"] == pytest.approx(0.2)


def test_skip_overlap_and_uem():
    reference = annotation_from_turns([(0, 6, "A"), (4, 10, "B")], uri="x")
    hypothesis = annotation_from_turns([(0, 10, "A")], uri="x")
    full = diarization_error_rate(reference, hypothesis, detailed=True)
    assert full["total"] == pytest.approx(12.0)
    assert full["missed detection"] == pytest.approx(2.0)
    assert full["confusion"] == pytest.approx(4.0)
    skipped = diarization_error_rate(reference, hypothesis, skip_overlap=True, detailed=True)
    assert skipped["total"] == pytest.approx(10.0 - 2.0)
    assert skipped["missed detection"] == 0.0
    assert skipped["confusion"] == pytest.approx(4.0)
    assert diarization_error_rate(reference, hypothesis, uem=[(0, 4)]) == 0.0
    assert diarization_error_rate(reference, hypothesis,
                                  uem=Timeline([Segment(0, 4), Segment(8, 10)])) == (
        pytest.approx(2 / 6))


def test_empty_cases():
    empty = Annotation(uri="x")
    speech = annotation_from_turns([(0, 1, "A")], uri="x")
    assert diarization_error_rate(empty, empty) == 0.0
    assert diarization_error_rate(speech, empty) == 1.0
    assert math.isinf(diarization_error_rate(empty, speech))
    with pytest.raises(ValueError, match="collar"):
        diarization_error_rate(speech, speech, collar=-1)


@pytest.mark.parametrize("collar", [0.0, 0.25])
@pytest.mark.parametrize("skip_overlap", [False, True])
def test_reference_against_itself_is_zero(collar, skip_overlap):
    rng = np.random.default_rng(7)
    for index in range(5):
        reference = _random_annotation(rng, f"r{index}")
        relabelled = annotation_from_turns(
            [(s.start, s.end, f"h{label}") for s, _, label
             in reference.itertracks(yield_label=True)], uri=reference.uri)
        assert diarization_error_rate(reference, relabelled, collar=collar,
                                      skip_overlap=skip_overlap) == 0.0


def test_large_input_is_fast():
    rng = np.random.default_rng(0)
    starts = np.round(rng.uniform(0, 3000, 1000), 3)
    reference = annotation_from_turns(
        [(s, s + 2.0, f"S{k % 4}") for k, s in enumerate(np.sort(starts))], uri="x")
    hypothesis = annotation_from_turns(
        [(s + 0.1, s + 1.9, f"H{k % 5}") for k, s in enumerate(np.sort(starts))], uri="x")
    detail = diarization_error_rate(reference, hypothesis, collar=0.25, skip_overlap=True,
                                    detailed=True)
    assert 0.0 <= detail["diarization error rate"] <= 1.0


# ---------------------------------------------------------------------------- pyannote oracle


@pytest.mark.parametrize("collar", [0.0, 0.25])
@pytest.mark.parametrize("skip_overlap", [False, True])
def test_matches_pyannote_on_random_annotations(collar, skip_overlap):
    rng = np.random.default_rng(2024 + int(100 * collar) + skip_overlap)
    for index in range(25):
        reference = _random_annotation(rng, f"r{index}")
        hypothesis = _random_annotation(rng, f"r{index}")
        uem = _random_uem(rng) if index % 2 else None
        ours = diarization_error_rate(reference, hypothesis, uem=uem, collar=collar,
                                      skip_overlap=skip_overlap, detailed=True)
        theirs = pyannote_der(reference, hypothesis, uem=uem, collar=collar,
                              skip_overlap=skip_overlap, detailed=True)
        _assert_same(ours, theirs)


def _speaker_turns(points: list[int]) -> list[tuple[float, float]]:
    points = sorted(points)
    return [(s / 100, e / 100) for s, e in zip(points[::2], points[1::2])]


_speakers = st.lists(st.lists(st.integers(0, 2000), min_size=2, max_size=8, unique=True),
                     min_size=1, max_size=4)


@settings(max_examples=40, deadline=None)
@given(reference=_speakers, hypothesis=_speakers, collar=st.sampled_from([0.0, 0.25]),
       skip_overlap=st.booleans())
def test_matches_pyannote_hypothesis(reference, hypothesis, collar, skip_overlap):
    # times on a 10 ms grid make boundaries coincide with collar edges often
    ref = annotation_from_turns([(s, e, f"R{k}") for k, points in enumerate(reference)
                                 for s, e in _speaker_turns(points)], uri="x")
    hyp = annotation_from_turns([(s, e, f"H{k}") for k, points in enumerate(hypothesis)
                                 for s, e in _speaker_turns(points)], uri="x")
    _assert_same(diarization_error_rate(ref, hyp, collar=collar, skip_overlap=skip_overlap,
                                        detailed=True),
                 pyannote_der(ref, hyp, collar=collar, skip_overlap=skip_overlap,
                              detailed=True))


# ---------------------------------------------------------------------------- evaluate


def _corpus(rng: np.random.Generator, uris: list[str]) -> dict[str, Annotation]:
    return {uri: _random_annotation(rng, uri) for uri in uris}


def test_evaluate_matches_direct_pyannote():
    rng = np.random.default_rng(8)
    references = _corpus(rng, ["a", "b", "c"])
    hypotheses = _corpus(rng, ["a", "b", "c"])
    uems = {"b": [(0.0, 12.0), (13.0, 20.0)]}
    report = evaluate(references, hypotheses, uems=uems, collar=0.25, skip_overlap=False)
    assert isinstance(report, DERReport)
    metric = DiarizationErrorRate(collar=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # pyannote warns when it approximates the uem
        for row in report.rows:
            uem = Timeline([Segment(*pair) for pair in uems["b"]]) if row.uri == "b" else None
            expected = metric(references[row.uri], hypotheses[row.uri], uem=uem,
                              detailed=True)
            assert row.missed == pytest.approx(expected["missed detection"])
            assert row.false_alarm == pytest.approx(expected["false alarm"])
            assert row.confusion == pytest.approx(expected["confusion"])
            assert row.total == pytest.approx(expected["total"])
            assert row.der == pytest.approx(expected["diarization error rate"])
            ours = diarization_error_rate(references[row.uri], hypotheses[row.uri],
                                          uem=uems.get(row.uri), collar=0.25, detailed=True)
            assert row.total > 1.0
            assert ours["diarization error rate"] == pytest.approx(row.der)
    assert [row.uri for row in report.rows] == ["a", "b", "c"]
    assert report.overall.der == pytest.approx(abs(metric))
    assert report.overall.total == pytest.approx(sum(row.total for row in report.rows))
    text = report.to_text()
    for row in (*report.rows, report.overall):
        assert any(line.startswith(row.uri) and f"{row.der_percent:.2f}" in line
                   and f"{row.total:.2f}" in line for line in text.splitlines())


def test_missing_hypothesis_counts_as_missed_and_unknown_is_an_error(tmp_path):
    rng = np.random.default_rng(4)
    references = _corpus(rng, ["a", "b"])
    report = evaluate(references, {"a": references["a"]}, collar=0.0)
    assert report.missing_hypotheses == ("b",)
    row_a, row_b = report.rows
    assert row_a.der == 0.0
    assert row_b.missed == pytest.approx(row_b.total) and row_b.der == pytest.approx(1.0)
    assert report.overall.der == pytest.approx(row_b.total / (row_a.total + row_b.total))
    assert "no hypothesis" in report.to_text() and "b *" in report.to_text()
    report.to_csv(tmp_path / "der.csv")
    with open(tmp_path / "der.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [line["uri"] for line in table] == ["a", "b", "OVERALL"]
    assert float(table[1]["der_percent"]) == pytest.approx(100.0)
    assert table[1]["hypothesis_missing"] == "1"
    with pytest.raises(ValueError, match="absent from the references: zz"):
        evaluate(references, {"zz": references["a"]})


def test_evaluate_files(tmp_path):
    rng = np.random.default_rng(5)
    references = _corpus(rng, ["a", "b"])
    hypotheses = _corpus(rng, ["a", "b"])
    write_rttm(tmp_path / "ref.rttm", references)
    write_rttm(tmp_path / "sys.rttm", hypotheses)
    write_uem(tmp_path / "all.uem", {"a": (0.0, 20.0), "b": (0.0, 20.0)})
    report = evaluate_files(tmp_path / "ref.rttm", tmp_path / "sys.rttm",
                            tmp_path / "all.uem", collar=0.25)
    direct = evaluate(references, hypotheses, uems={"a": (0.0, 20.0), "b": (0.0, 20.0)},
                      collar=0.25)
    assert report.overall.der == pytest.approx(direct.overall.der, abs=1e-4)
    write_uem(tmp_path / "bad.uem", {"a": (0.0, 20.0), "ghost": (0.0, 1.0)})
    with pytest.raises(DiarizationFormatError, match=r"bad\.uem: .*ghost"):
        evaluate_files(tmp_path / "ref.rttm", tmp_path / "sys.rttm", tmp_path / "bad.uem")
    write_rttm(tmp_path / "extra.rttm", {"c": hypotheses["a"]})
    with pytest.raises(DiarizationFormatError, match=r"extra\.rttm has recordings .*: c"):
        evaluate_files(tmp_path / "ref.rttm", tmp_path / "extra.rttm")
