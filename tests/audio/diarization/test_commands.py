"""``lutece diarize`` and ``lutece diarization simulate|train|evaluate`` end to end."""

import numpy as np
import pytest
import torch

from lutece.audio.diarization.formats import read_rttm, write_rttm
from lutece.audio.diarization.metrics import diarization_error_rate
from lutece.audio.diarization.simulate import simulate_conversations
from lutece.audio.diarization.training import load_diarizer, save_diarizer
from lutece.audio.io import save
from lutece.cli import main


@pytest.fixture
def recordings(tmp_path, held_out_voices):
    conversations = simulate_conversations(held_out_voices, 2, num_speakers=2,
                                           utterances_per_speaker=3, seed=11)
    paths = []
    for conversation in conversations:
        path = tmp_path / f"{conversation.uri}.wav"
        save(path, torch.from_numpy(conversation.wave), 16000)
        paths.append(path)
    write_rttm(tmp_path / "ref.rttm", {c.uri: c.annotation for c in conversations})
    return conversations, paths


def test_diarize_with_a_checkpoint_writes_one_rttm_per_file(tmp_path, tiny_dive, recordings,
                                                            capsys):
    conversations, paths = recordings
    checkpoint = save_diarizer(tiny_dive, tmp_path / "dive.pt")
    out = tmp_path / "out"
    code = main(["diarize", *map(str, paths), "-o", str(out), "--model", str(checkpoint),
                 "--no-progress"])
    assert code == 0
    for conversation in conversations:
        hypothesis = read_rttm(out / f"{conversation.uri}.rttm")[conversation.uri]
        assert diarization_error_rate(conversation.annotation, hypothesis, collar=0.25) < 0.5
    assert "speaker(s)" in capsys.readouterr().out
    # the per-file RTTMs concatenated are a hypothesis file for `evaluate`
    (tmp_path / "hyp.rttm").write_text("".join(
        (out / f"{c.uri}.rttm").read_text() for c in conversations))
    assert main(["diarization", "evaluate", str(tmp_path / "ref.rttm"),
                 str(tmp_path / "hyp.rttm"), "--collar", "0.25",
                 "--csv", str(tmp_path / "der.csv")]) == 0
    printed = capsys.readouterr().out
    assert "OVERALL" in printed and conversations[0].uri in printed
    assert (tmp_path / "der.csv").read_text().count("\n") >= 3


def test_diarize_without_a_model_uses_the_offline_pipeline(tmp_path, recordings):
    conversations, paths = recordings
    out = tmp_path / "default"
    assert main(["diarize", str(paths[0]), "-o", str(out), "--num-speakers", "2",
                 "--no-progress"]) == 0
    hypothesis = read_rttm(out / f"{conversations[0].uri}.rttm")[conversations[0].uri]
    assert len(hypothesis.labels()) == 2


def test_diarize_errors(tmp_path, recordings, capsys):
    _, paths = recordings
    assert main(["diarize", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["diarize", str(paths[0]), "-o", str(tmp_path / "o"), "--num-speakers", "4",
                 "--max-speakers", "2"]) == 2
    assert "outside" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_text("junk")
    assert main(["diarize", str(paths[0]), "-o", str(tmp_path / "o"),
                 "--model", str(tmp_path / "junk.pt")]) == 2
    assert "not a readable diarization checkpoint" in capsys.readouterr().err
    # an unreadable file among good ones: the others are still written, exit status 1
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    out = tmp_path / "partial"
    code = main(["diarize", str(broken), str(paths[0]), "-o", str(out), "--num-speakers",
                 "2", "--no-progress"])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == [f"{paths[0].stem}.rttm"]


def test_simulate_then_train_then_load(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["diarization", "simulate", str(data), "--conversations", "3",
                 "--speakers", "1-2", "--utterances", "2", "--voices", "4"]) == 0
    assert {"rttm", "uem", "wav.scp", "segments", "utt2spk", "reco2dur"} <= {
        p.name for p in data.iterdir()}
    checkpoint = tmp_path / "model.pt"
    assert main(["diarization", "train", str(data), "--out", str(checkpoint), "--steps", "3",
                 "--batch-size", "2", "--channels", "8", "--chunk-seconds", "2",
                 "--no-progress"]) == 0
    model = load_diarizer(checkpoint)
    assert model.config.channels == 8
    assert main(["diarization", "train", "--out", str(checkpoint)]) == 2
    assert "--quick" in capsys.readouterr().err
    assert main(["diarization", "train", str(tmp_path / "nowhere"), "--out",
                 str(checkpoint)]) == 2


def test_evaluate_errors(tmp_path, capsys):
    (tmp_path / "bad.rttm").write_text("SPEAKER a 1 0.0 -1.0 <NA> <NA> s <NA> <NA>\n")
    (tmp_path / "ok.rttm").write_text("SPEAKER a 1 0.0 1.0 <NA> <NA> s <NA> <NA>\n")
    assert main(["diarization", "evaluate", str(tmp_path / "ok.rttm"),
                 str(tmp_path / "bad.rttm")]) == 2
    assert "line 1" in capsys.readouterr().err
    assert main(["diarization", "evaluate", str(tmp_path / "ok.rttm"),
                 str(tmp_path / "ok.rttm"), "--collar", "-1"]) == 2
    with pytest.raises(SystemExit):
        main(["diarization", "simulate", str(tmp_path / "x"), "--speakers", "3-1"])


def test_checkpoint_keeps_the_model_exactly(tmp_path, tiny_dive):
    path = save_diarizer(tiny_dive, tmp_path / "m.pt")
    loaded = load_diarizer(path)
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal(32000).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(loaded(wave[None]).activity_logits,
                                   tiny_dive(wave[None]).activity_logits)
