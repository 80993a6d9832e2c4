"""Tests of lutece.audio.diarization.formats: round trips through files, the documented
error messages (file and 1-based line), atomic writes, and RTTM as written by
pyannote.database / EEND (9 fields)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pyannote.core import Annotation, Segment, Timeline

from lutece.audio.diarization.annotation import annotation_from_turns, turns
from lutece.audio.diarization.formats import (
    DiarizationFormatError,
    KaldiDataDir,
    check_uem_uris,
    read_kaldi_data_dir,
    read_reco2dur,
    read_rttm,
    read_segments,
    read_uem,
    read_utt2spk,
    read_wav_scp,
    resolve_wav_path,
    write_reco2dur,
    write_rttm,
    write_segments,
    write_uem,
    write_utt2spk,
    write_wav_scp,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _close(a: list[tuple[float, float, str]], b: list[tuple[float, float, str]],
           tolerance: float = 1e-3) -> bool:
    return len(a) == len(b) and all(
        sa == sb and abs(s0 - s1) <= tolerance and abs(e0 - e1) <= tolerance
        for (s0, e0, sa), (s1, e1, sb) in zip(sorted(a), sorted(b)))


# ---------------------------------------------------------------------------- RTTM


def test_rttm_round_trip_to_a_millisecond(tmp_path):
    first = annotation_from_turns([(0.1234, 1.98765, "alice"), (1.5, 3.0004, "bob"),
                                   (2.9999, 7.25, "alice"), (10.0, 10.0006, "carol")],
                                  uri="meeting_1")
    second = annotation_from_turns([(0.0, 0.5, "spk0")], uri="meeting_2")
    path = tmp_path / "out.rttm"
    write_rttm(path, [first, second])
    read = read_rttm(path)
    assert list(read) == ["meeting_1", "meeting_2"]
    assert _close(turns(read["meeting_1"]), turns(first))
    assert _close(turns(read["meeting_2"]), turns(second))
    assert read["meeting_1"].uri == "meeting_1"
    lines = path.read_text().splitlines()
    assert lines[0] == "SPEAKER meeting_1 1 0.123 1.865 <NA> <NA> alice <NA> <NA>"
    onsets = [float(line.split()[3]) for line in lines[:4]]
    assert onsets == sorted(onsets)


def test_write_rttm_accepts_annotation_and_dict(tmp_path):
    annotation = annotation_from_turns([(0, 1, "A")], uri="one")
    write_rttm(tmp_path / "a.rttm", annotation)
    assert list(read_rttm(tmp_path / "a.rttm")) == ["one"]
    unnamed = annotation_from_turns([(0, 1, "A")])
    write_rttm(tmp_path / "b.rttm", {"two": unnamed})
    assert list(read_rttm(tmp_path / "b.rttm")) == ["two"]


def test_read_rttm_nine_fields_comments_other_types_and_zero_duration(tmp_path):
    # pyannote.database / EEND style: 9 fields (no trailing <NA>)
    path = _write(tmp_path / "eend.rttm",
                  ";; a comment\n"
                  "# another\n"
                  "\n"
                  "SPKR-INFO rec 1 <NA> <NA> <NA> unknown spk1 <NA> <NA>\n"
                  "SPEAKER rec 1 0.50 1.25 <NA> <NA> spk1 <NA>\n"
                  "SPEAKER rec 1 2.00 0.00 <NA> <NA> spk2 <NA>\n"
                  "SPEAKER rec 1 1.00 2.00 <NA> <NA> spk2 <NA> <NA>\n")
    read = read_rttm(path)
    assert turns(read["rec"]) == [(0.5, 1.75, "spk1"), (1.0, 3.0, "spk2")]


@pytest.mark.parametrize("line, message", [
    ("SPEAKER rec 1 0.0 1.0 <NA> <NA>", "expected 10 or 9 fields"),
    ("SPEAKER rec 1 zero 1.0 <NA> <NA> A <NA> <NA>", "onset must be a number, got 'zero'"),
    ("SPEAKER rec 1 0.0 1.x <NA> <NA> A <NA> <NA>", "duration must be a number, got '1.x'"),
    ("SPEAKER rec 1 nan 1.0 <NA> <NA> A <NA> <NA>", "onset must be finite"),
    ("SPEAKER rec 1 -1.0 1.0 <NA> <NA> A <NA> <NA>", "onset must be >= 0, got -1.0"),
    ("SPEAKER rec 1 1.0 -0.5 <NA> <NA> A <NA> <NA>", "duration must be >= 0, got -0.5"),
])
def test_read_rttm_errors_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "sample.rttm", "SPEAKER rec 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n"
                  ";; comment\n" + line + "\n")
    with pytest.raises(DiarizationFormatError,
                       match=r"read_rttm: .*sample\.rttm line 3: " + re.escape(message)):
        read_rttm(path)


def test_read_missing_file_names_it(tmp_path):
    with pytest.raises(DiarizationFormatError, match=r"nothere\.rttm: no such file"):
        read_rttm(tmp_path / "nothere.rttm")


def test_failed_write_leaves_no_file_and_no_temporary(tmp_path):
    unnamed = annotation_from_turns([(0, 1, "A")])
    with pytest.raises(DiarizationFormatError, match="has no uri"):
        write_rttm(tmp_path / "out.rttm", [unnamed])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DiarizationFormatError, match="speaker label"):
        write_rttm(tmp_path / "out.rttm", annotation_from_turns([(0, 1, "two words")], "u"))
    assert list(tmp_path.iterdir()) == []


def test_write_interrupted_at_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.rttm"
    path.write_text("old\n")

    def broken_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_rttm(path, annotation_from_turns([(0, 1, "A")], uri="u"))
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.rttm"]


# ---------------------------------------------------------------------------- UEM


def test_uem_round_trip_and_input_kinds(tmp_path):
    path = tmp_path / "all.uem"
    write_uem(path, {"a": (0.0, 12.5), "b": [(1.0, 2.0), (3.0, 4.25)],
                     "c": Timeline([Segment(0.5, 9.0)])})
    read = read_uem(path)
    assert [(s.start, s.end) for s in read["a"]] == [(0.0, 12.5)]
    assert [(s.start, s.end) for s in read["b"]] == [(1.0, 2.0), (3.0, 4.25)]
    assert [(s.start, s.end) for s in read["c"]] == [(0.5, 9.0)]
    assert read["b"].uri == "b"
    assert path.read_text().splitlines()[0] == "a 1 0.000 12.500"


@pytest.mark.parametrize("line, message", [
    ("rec 1 0.0", "expected 4 fields"),
    ("rec 1 0.0 ten", "end must be a number, got 'ten'"),
    ("rec 1 5.0 4.0", "end must be >= start, got start 5.0 and end 4.0"),
])
def test_read_uem_errors_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "dev.uem", "rec 1 0.0 10.0\n" + line + "\n")
    with pytest.raises(DiarizationFormatError,
                       match=r"read_uem: .*dev\.uem line 2: " + re.escape(message)):
        read_uem(path)


def test_check_uem_uris_names_file_and_unknown_uri(tmp_path):
    references = {"rec1": annotation_from_turns([(0, 1, "A")], "rec1")}
    path = _write(tmp_path / "dev.uem", "rec1 1 0 10\nghost 1 0 10\n")
    with pytest.raises(DiarizationFormatError, match=r"dev\.uem: .*absent .*: ghost"):
        check_uem_uris(read_uem(path), references, path)
    check_uem_uris({"rec1": (0, 1)}, references)


# ---------------------------------------------------------------------------- Kaldi


def test_wav_scp_round_trip_keeps_pipes(tmp_path):
    mapping = {"rec2": "/data/rec 2.wav", "rec1": "audio/rec1.wav",
               "rec3": "sox in.flac -t wav - |"}
    path = tmp_path / "wav.scp"
    write_wav_scp(path, mapping)
    assert read_wav_scp(path) == mapping
    assert path.read_text().splitlines()[0] == "rec1 audio/rec1.wav"


def test_resolve_wav_path(tmp_path):
    assert resolve_wav_path("audio/x.wav", tmp_path) == tmp_path / "audio" / "x.wav"
    assert resolve_wav_path("/abs/x.wav", tmp_path) == Path("/abs/x.wav")
    with pytest.raises(DiarizationFormatError, match="pipe commands are not supported"):
        resolve_wav_path("sox in.flac -t wav - |", tmp_path)


def test_segments_utt2spk_reco2dur_round_trips(tmp_path):
    rows = [("rec1-002", "rec1", 3.5, 7.25), ("rec1-001", "rec1", 0.0, 3.5)]
    write_segments(tmp_path / "segments", rows)
    assert read_segments(tmp_path / "segments") == sorted(rows)
    utt2spk = {"rec1-002": "bob", "rec1-001": "alice"}
    write_utt2spk(tmp_path / "utt2spk", utt2spk)
    assert read_utt2spk(tmp_path / "utt2spk") == utt2spk
    reco2dur = {"rec1": 61.125, "rec0": 0.5}
    write_reco2dur(tmp_path / "reco2dur", reco2dur)
    assert read_reco2dur(tmp_path / "reco2dur") == reco2dur
    assert (tmp_path / "reco2dur").read_text() == "rec0 0.500\nrec1 61.125\n"


@pytest.mark.parametrize("reader, name, text, message", [
    (read_wav_scp, "wav.scp", "rec1 a.wav\nrec2\n", "expected 'recording-id value'"),
    (read_wav_scp, "wav.scp", "rec1 a.wav\nrec1 b.wav\n", "duplicate id 'rec1'"),
    (read_segments, "segments", "u1 r 0 1\nu2 r 1\n", "expected 4 or 5 fields"),
    (read_segments, "segments", "u1 r 0 1\nu2 r 2 1\n", "end must be >= start"),
    (read_utt2spk, "utt2spk", "u1 a\nu2 a b\n", "expected 2 fields"),
    (read_reco2dur, "reco2dur", "r1 1\nr2 -3\n", "duration must be >= 0, got -3"),
    (read_reco2dur, "reco2dur", "r1 1\nr2 long\n", "duration must be a number"),
])
def test_kaldi_reader_errors_name_file_and_line(tmp_path, reader, name, text, message):
    path = _write(tmp_path / name, text)
    with pytest.raises(DiarizationFormatError,
                       match=re.escape(f"{name} line 2: {message}")):
        reader(path)


def _data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    write_wav_scp(directory / "wav.scp", {"rec1": "wav/rec1.wav", "rec2": "/abs/rec2.wav"})
    write_rttm(directory / "rttm", {"rec1": annotation_from_turns([(0, 2, "A")]),
                                    "rec2": annotation_from_turns([(1, 3, "B")])})
    return directory


def test_read_kaldi_data_dir(tmp_path):
    directory = _data_dir(tmp_path)
    data = read_kaldi_data_dir(directory)
    assert isinstance(data, KaldiDataDir)
    assert data.wavs == {"rec1": directory / "wav" / "rec1.wav", "rec2": Path("/abs/rec2.wav")}
    assert isinstance(data.rttm["rec1"], Annotation)
    assert turns(data.rttm["rec2"]) == [(1.0, 3.0, "B")]
    assert data.uem is None and data.reco2dur is None
    write_uem(directory / "uem", {"rec1": (0, 5)})
    write_reco2dur(directory / "reco2dur", {"rec1": 5.0, "rec2": 4.0})
    data = read_kaldi_data_dir(directory)
    assert [(s.start, s.end) for s in data.uem["rec1"]] == [(0.0, 5.0)]
    assert data.reco2dur == {"rec1": 5.0, "rec2": 4.0}


@pytest.mark.parametrize("missing", ["wav.scp", "rttm"])
def test_read_kaldi_data_dir_names_missing_file(tmp_path, missing):
    directory = _data_dir(tmp_path)
    (directory / missing).unlink()
    with pytest.raises(DiarizationFormatError, match=re.escape(f"{missing} is missing")):
        read_kaldi_data_dir(directory)


def test_read_kaldi_data_dir_rejects_pipes_and_unknown_uem_uris(tmp_path):
    directory = _data_dir(tmp_path)
    write_uem(directory / "uem", {"rec9": (0, 5)})
    with pytest.raises(DiarizationFormatError, match=r"uem: .*absent.*rec9"):
        read_kaldi_data_dir(directory)
    (directory / "uem").unlink()
    write_wav_scp(directory / "wav.scp", {"rec1": "a.wav", "rec2": "sox b.flac -t wav - |"})
    with pytest.raises(DiarizationFormatError,
                       match=r"wav\.scp line 2: .*pipe commands are not supported"):
        read_kaldi_data_dir(directory)
