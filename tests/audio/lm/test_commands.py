"""Tests of ``lutece audiolm ...`` (lutece.audio.lm.commands) and the size presets.

Oracles: the requested output length (``--seconds`` x the sample rate), the files each
command says it writes, and one exit status + message per documented error (empty folder,
audio too short, mismatched sample rate, unaligned frame rates, a checkpoint of the wrong
kind or of another configuration, a run that would be overwritten). One module-scoped run of
the whole recipe with the ``tiny`` preset on a folder of generated tones is shared by the
tests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from lutece.audio.io import info, load
from lutece.audio.lm import CodecConfig, SoundStream
from lutece.audio.lm.presets import AudioLMPreset, load_preset, preset_names
from lutece.cli import main

RATE = 16000
REPO = Path(__file__).resolve().parents[3]



def _tone(path, seconds, rate=RATE, frequency=220.0):
    t = np.arange(round(seconds * rate)) / rate
    vibrato = 1 + 0.02 * np.sin(2 * np.pi * 3 * t)
    wave = 0.3 * np.sin(2 * np.pi * frequency * t * vibrato)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave, rate)
    return path


def _run(capsys, *argv):
    status = main(["audiolm", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The whole tiny recipe, run once: codec, tokenizer, three stages."""
    root = tmp_path_factory.mktemp("audiolm")
    data = root / "data"
    for index, (seconds, rate) in enumerate([(1.6, RATE), (1.2, RATE), (1.4, 22050),
                                             (0.3, RATE)]):
        _tone(data / ("sub" if index % 2 else "") / f"clip{index}.wav", seconds, rate,
              180.0 + 90 * index)
    out = root / "models"
    paths = {name: out / f"{name}.pt" for name in
             ("codec", "tokenizer", "semantic", "coarse", "fine")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(*argv):
        assert main(["audiolm", *map(str, argv), "--no-progress"]) == 0, argv

    run("train-codec", data, "--out", paths["codec"], "--steps", 2)
    run("train-semantic", data, "--out", paths["tokenizer"])
    for stage in ("semantic", "coarse", "fine"):
        run("train-stage", stage, data, "--tokenizer", paths["tokenizer"], "--codec",
            paths["codec"], "--out", paths[stage], "--steps", 2)
    torch.set_num_threads(threads)
    return {"root": root, "data": data, **paths}


def _models(trained, **changes):
    args = ["--tokenizer", trained["tokenizer"], "--codec", trained["codec"], "--semantic",
            trained["semantic"], "--coarse", trained["coarse"], "--fine", trained["fine"]]
    for option, value in changes.items():
        args[args.index(f"--{option}") + 1] = value
    return args


# ------------------------------------------------------------------------- recipe
def test_the_recipe_writes_every_model_checkpoints_and_a_shared_token_cache(trained):
    for name in ("codec", "tokenizer", "semantic", "coarse", "fine"):
        assert trained[name].is_file()
    models = trained["root"] / "models"
    for name in ("codec", "semantic", "coarse", "fine"):
        assert (models / f"{name}.checkpoints" / "last.pt").is_file()
    assert len(list((models / "audiolm_tokens").glob("tokens-*.pt"))) == 1


def test_continue_writes_the_requested_seconds(trained, tmp_path, capsys):
    prompt = _tone(tmp_path / "prompt.wav", 1.0, frequency=300.0)
    out = tmp_path / "out" / "continued.wav"
    status, stdout, _ = _run(capsys, "continue", prompt, "--seconds", 4, "-o", out,
                             *_models(trained), "--seed", 1, "--temperature", "0.6,0.8,0.6",
                             "--top-k", "none,8,none")
    assert status == 0 and str(out) in stdout
    wave, rate = load(out)
    assert rate == RATE and wave.shape == (1, 4 * RATE)
    assert torch.isfinite(wave).all()
    again = tmp_path / "again.wav"
    assert _run(capsys, "continue", prompt, "--seconds", 0.5, "-o", again, *_models(trained),
                "--include-prompt")[0] == 0
    assert info(again).num_frames == RATE + RATE // 2


def test_a_resumed_stage_continues_from_its_checkpoint(trained, capsys):
    out = trained["root"] / "models" / "semantic.pt"
    argv = ["train-stage", "semantic", trained["data"], "--tokenizer", trained["tokenizer"],
            "--codec", trained["codec"], "--out", out, "--no-progress"]
    status, _, stderr = _run(capsys, *argv, "--steps", 3)
    assert status == 2 and "--resume" in stderr and "--restart" in stderr
    status, stdout, _ = _run(capsys, *argv, "--steps", 3, "--resume")
    assert status == 0 and "resuming from" in stdout and "3 steps" in stdout
    status, _, stderr = _run(capsys, *argv, "--resume", "--batch-size", 2)
    assert status == 2 and "another configuration" in stderr and "batch_size" in stderr


def test_train_semantic_on_a_masked_encoder(trained, tmp_path, capsys):
    from lutece.audio.lm import KMeansTokenizer

    out = tmp_path / "ssl.pt"
    argv = ["train-semantic", trained["data"], "--out", out, "--features", "ssl",
            "--ssl-steps", 2, "--clusters", 8, "--layer", 1, "--no-progress"]
    status, stdout, _ = _run(capsys, *argv)
    assert status == 0 and str(out) in stdout and "ssl.checkpoints" in stdout
    tokenizer = KMeansTokenizer.load(out)
    assert tokenizer.feature_kind == "masked_encoder" and tokenizer.vocab_size == 8
    tokens = tokenizer.tokenize(torch.zeros(1, RATE))
    assert tokens.shape == (1, 25)
    status, _, stderr = _run(capsys, *argv)
    assert status == 2 and "--resume" in stderr
    # K and the layer are refit after the encoder: a resume may change them
    status, _, _ = _run(capsys, *argv[:-5], "--clusters", 6, "--resume", "--no-progress")
    assert status == 0 and KMeansTokenizer.load(out).vocab_size == 6


def test_train_semantic_with_mean_normalization(trained, tmp_path, capsys):
    from lutece.audio.lm import KMeansTokenizer

    out = tmp_path / "cmn.pt"
    status, _, _ = _run(capsys, "train-semantic", trained["data"], "--out", out,
                        "--clusters", 8, "--mean-normalization", "--no-progress")
    assert status == 0
    tokenizer = KMeansTokenizer.load(out)
    assert tokenizer.features.log_mel.mean_normalization
    # a gain changes no token: CMN removes it from every frame
    wave = torch.sin(torch.arange(RATE) * 0.2)[None] * torch.linspace(0.2, 1.0, RATE)
    assert torch.equal(tokenizer.tokenize(wave), tokenizer.tokenize(3.0 * wave))
    status, _, stderr = _run(capsys, "train-semantic", trained["data"], "--out", out,
                             "--config", _json(tmp_path, {"tokenizer": {
                                 "mean_normalization": "yes"}}))
    assert status == 2 and "mean_normalization" in stderr


def test_train_semantic_on_chroma(trained, tmp_path, capsys):
    from lutece.audio.lm import KMeansTokenizer

    out = tmp_path / "chroma.pt"
    status, stdout, _ = _run(capsys, "train-semantic", trained["data"], "--out", out,
                             "--clusters", 8, "--features", "mfcc_chroma",
                             "--mean-normalization", "--no-progress")
    assert status == 0 and "mfcc_chroma features" in stdout
    tokenizer = KMeansTokenizer.load(out)
    assert tokenizer.feature_kind == "mfcc_chroma"
    mfcc, chroma = tokenizer.features.extractors
    assert mfcc.log_mel.mean_normalization and chroma.dim == 12
    status, _, stderr = _run(capsys, "train-semantic", trained["data"], "--out", out,
                             "--features", "chroma", "--mean-normalization")
    assert status == 2 and "not to chroma" in stderr


def test_train_codec_restart_and_resume(trained, tmp_path, capsys):
    out = tmp_path / "codec.pt"
    argv = ["train-codec", trained["data"], "--out", out, "--steps", 1, "--no-progress"]
    assert _run(capsys, *argv)[0] == 0
    status, stdout, _ = _run(capsys, *argv, "--restart")
    assert status == 0 and "resuming" not in stdout
    status, stdout, _ = _run(capsys, *argv[:-3], "--steps", 2, "--resume", "--no-progress")
    assert status == 0 and "resuming from" in stdout and "codec (2 steps" in stdout
    status, _, stderr = _run(capsys, *argv, "--resume", "--config", _json(
        tmp_path, {"codec": {"num_levels": 3}}))
    assert status == 2 and "codec.num_levels" in stderr
    assert SoundStream.from_checkpoint(out).config.num_levels == 4


def test_train_codec_with_the_magnitude_head_through_config(trained, tmp_path, capsys):
    out = tmp_path / "magnitude.pt"
    config = _json(tmp_path, {"codec": {"architecture": "spectral", "causal": False,
                                        "spectral_output": "magnitude",
                                        "griffin_lim_iterations": 4}})
    status, stdout, _ = _run(capsys, "train-codec", trained["data"], "--out", out, "--steps",
                             2, "--config", config, "--no-progress")
    assert status == 0 and "last magnitude loss" in stdout
    codec = SoundStream.from_checkpoint(out)
    assert codec.config.spectral_output == "magnitude"
    assert codec.config.griffin_lim_iterations == 4


def _json(tmp_path, values):
    path = tmp_path / "override.json"
    path.write_text(json.dumps(values))
    return path


# ------------------------------------------------------------------------- errors
def test_an_empty_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio")
    status, _, stderr = _run(capsys, "train-codec", tmp_path / "empty", "--out",
                             tmp_path / "c.pt")
    assert status == 2 and "found no audio files" in stderr and "empty" in stderr
    status, _, stderr = _run(capsys, "train-semantic", tmp_path / "missing", "--out",
                             tmp_path / "t.pt")
    assert status == 2 and "no such folder" in stderr


def test_audio_too_short(trained, tmp_path, capsys):
    prompt = tmp_path / "short.wav"
    soundfile.write(prompt, np.zeros(300), RATE)
    status, _, stderr = _run(capsys, "continue", prompt, "-o", tmp_path / "o.wav",
                             *_models(trained))
    assert status == 2 and "shorter than one semantic frame (640 samples" in stderr
    short = tmp_path / "short_data"
    _tone(short / "a.wav", 0.2)
    status, _, stderr = _run(capsys, "train-stage", "semantic", short, "--tokenizer",
                             trained["tokenizer"], "--codec", trained["codec"], "--out",
                             tmp_path / "s.pt", "--cache-dir", tmp_path / "cache")
    assert status == 2 and "audio too short" in stderr


def test_a_prompt_at_another_sample_rate(trained, tmp_path, capsys):
    prompt = _tone(tmp_path / "p8k.wav", 1.0, rate=8000)
    out = tmp_path / "o.wav"
    status, _, stderr = _run(capsys, "continue", prompt, "-o", out, *_models(trained))
    assert status == 2 and "8000 Hz but the models read 16000 Hz" in stderr
    assert "--resample" in stderr and not out.exists()
    status, _, _ = _run(capsys, "continue", prompt, "-o", out, "--seconds", 0.5,
                        "--resample", *_models(trained))
    assert status == 0 and info(out).num_frames == RATE // 2


@pytest.mark.parametrize("option, source, message", [
    ("semantic", "codec", "holds a SoundStream codec, not a SemanticStage; pass it as --codec"),
    ("semantic", "coarse", "holds a CoarseStage, not a SemanticStage; pass it as --coarse"),
    ("codec", "tokenizer", "holds a KMeansTokenizer, not a SoundStream codec"),
    ("tokenizer", "fine", "holds a FineStage, not a KMeansTokenizer"),
])
def test_a_checkpoint_of_the_wrong_kind(trained, tmp_path, capsys, option, source, message):
    status, _, stderr = _run(capsys, "continue", _tone(tmp_path / "p.wav", 1.0), "-o",
                             tmp_path / "o.wav", *_models(trained, **{option: trained[source]}))
    assert status == 2 and f"--{option}: '{trained[source]}' {message}" in stderr


def test_a_training_checkpoint_or_a_non_checkpoint_is_refused(trained, tmp_path, capsys):
    prompt = _tone(tmp_path / "p.wav", 1.0)
    last = trained["root"] / "models" / "fine.checkpoints" / "last.pt"
    status, _, stderr = _run(capsys, "continue", prompt, "-o", tmp_path / "o.wav",
                             *_models(trained, fine=last))
    assert status == 2 and "resumable training checkpoint" in stderr
    status, _, stderr = _run(capsys, "continue", prompt, "-o", tmp_path / "o.wav",
                             *_models(trained, coarse=prompt))
    assert status == 2 and "--coarse" in stderr and "is not a lutece checkpoint" in stderr
    status, _, stderr = _run(capsys, "continue", prompt, "-o", tmp_path / "o.wav",
                             *_models(trained, codec=tmp_path / "missing.pt"))
    assert status == 2 and "--codec: no such file" in stderr


def test_stages_trained_on_another_codec_are_refused(trained, tmp_path, capsys):
    other = SoundStream(CodecConfig(channels=4, latent_dim=16, num_levels=4,
                                    codebook_size=16)).save(tmp_path / "other.pt")
    status, _, stderr = _run(capsys, "continue", _tone(tmp_path / "p.wav", 1.0), "-o",
                             tmp_path / "o.wav", *_models(trained, codec=other))
    assert status == 2 and "--semantic" in stderr and "another codec" in stderr
    bigger = SoundStream(CodecConfig(channels=2, latent_dim=4, num_levels=6,
                                     codebook_size=8)).save(tmp_path / "bigger.pt")
    status, _, stderr = _run(capsys, "continue", _tone(tmp_path / "p.wav", 1.0), "-o",
                             tmp_path / "o.wav", *_models(trained, codec=bigger))
    assert status == 2 and "fingerprint" in stderr


@pytest.mark.parametrize("config, message", [
    ({"sample_rate": 8000}, "reads 16000 Hz audio but the codec"),
    ({"strides": [2, 4, 5, 6]}, "do not align"),  # 66.7 Hz vs 25 Hz
])
def test_a_tokenizer_and_codec_that_do_not_fit(trained, tmp_path, capsys, config, message):
    codec = SoundStream(CodecConfig(channels=2, latent_dim=4, num_levels=3, codebook_size=8,
                                    **config)).save(tmp_path / "codec.pt")
    status, _, stderr = _run(capsys, "train-stage", "coarse", trained["data"], "--tokenizer",
                             trained["tokenizer"], "--codec", codec, "--out",
                             tmp_path / "coarse.pt")
    assert status == 2 and message in stderr


def test_train_codec_under_torchrun_writes_once_and_resumes_in_one_process(tmp_path, capsys):
    data = tmp_path / "data"
    for index in range(2):
        _tone(data / f"clip{index}.wav", 0.5, frequency=200.0 + 100 * index)
    out = tmp_path / "codec.pt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "lutece", "audiolm", "train-codec", str(data),
               "--out", str(out), "--steps", "2", "--no-progress"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    # rank 0 alone speaks and writes --out and the checkpoint (of both ranks' run)
    assert completed.stdout.count("codec (2 steps") == 1, completed.stdout
    assert "4 x 0.2 s crops per process x 2 processes" in completed.stdout
    assert SoundStream.from_checkpoint(out).config.num_levels == 4
    checkpoints = tmp_path / "codec.checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["last.pt", "metrics.jsonl",
                                                                   "run.json"]
    checkpoint = torch.load(checkpoints / "last.pt", weights_only=False)
    assert checkpoint["step"] == 2 and checkpoint["world_size"] == 2
    # a torchrun run resumes in one process (and the other way round)
    status, stdout, _ = _run(capsys, "train-codec", data, "--out", out, "--steps", 3,
                             "--resume", "--no-progress")
    assert status == 0 and "resuming from" in stdout and "codec (3 steps" in stdout


def test_bad_options_name_themselves(trained, tmp_path, capsys):
    status, _, stderr = _run(capsys, "train-codec", trained["data"], "--out",
                             tmp_path / "c.pt", "--steps", 0)
    assert status == 2 and "--steps must be > 0" in stderr
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"codec": {"channelz": 4}}))
    status, _, stderr = _run(capsys, "train-codec", trained["data"], "--out",
                             tmp_path / "c.pt", "--config", config)
    assert status == 2 and "unknown key 'channelz'" in stderr
    status, _, stderr = _run(capsys, "continue", _tone(tmp_path / "p.wav", 1.0), "-o",
                             tmp_path / "o.mp3", *_models(trained))
    assert status == 2 and "-o/--out must end in" in stderr


def test_help_lists_the_actions(capsys):
    with pytest.raises(SystemExit):
        main(["audiolm", "--help"])
    text = capsys.readouterr().out
    for action in ("train-codec", "train-semantic", "train-stage", "continue"):
        assert action in text
    with pytest.raises(SystemExit):
        main(["audiolm", "train-codec", "--help"])
    assert "Runs under torchrun too" in capsys.readouterr().out


# ------------------------------------------------------------------------- presets
@pytest.mark.parametrize("name", preset_names())
def test_presets_round_trip_through_json(name):
    preset = load_preset(name)
    assert AudioLMPreset.from_dict(json.loads(preset.to_json())) == preset


def test_the_paper_preset_has_audiolms_sizes():
    paper = load_preset("paper")
    assert paper.codec.strides == (2, 4, 5, 8) and paper.codec.hop_length == 320
    assert (paper.codec.num_levels, paper.codec.codebook_size) == (12, 1024)
    assert paper.tokenizer.num_clusters == 1024 and paper.tokenizer.frame_rate == 25.0
    assert paper.coarse.coarse_levels == 4 and paper.fine.chunk_frames == 150
    assert (paper.semantic.temperature, paper.coarse.temperature,
            paper.fine.temperature) == (0.6, 0.8, 0.6)
    transformer = paper.coarse.transformer
    assert (transformer.dim, transformer.num_layers, transformer.num_heads,
            transformer.hidden_dim) == (1024, 12, 16, 4096)
    assert paper.semantic_training.crop_seconds == 30.0
    assert paper.coarse_training.crop_seconds == 10.0
    assert paper.coarse_training.batch_size == 256


def test_a_config_file_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"codec": {"num_levels": 6},
                                "coarse": {"transformer": {"dim": 64}}}))
    preset = load_preset("tiny", path)
    tiny = load_preset("tiny")
    assert preset.codec.num_levels == 6 and preset.coarse.transformer.dim == 64
    assert preset.coarse.transformer.num_layers == tiny.coarse.transformer.num_layers
    assert preset.fine == tiny.fine
    with pytest.raises(ValueError, match="unknown preset"):
        load_preset("huge")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_preset("tiny", path)
