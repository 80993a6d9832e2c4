"""Tests of lutece.audio.lm.codec (SoundStream, train_codec), codec_losses and metrics.

Oracles: length arithmetic of the strided convs, causality by perturbing the future, the
bitrate formula (AudioLM: 12 x 1024 codes at 50 Hz = 6000 bit/s), closed-form hinge and
SI-SNR values, a tiny training run whose mel loss must fall, and under torchrun (2 processes,
gloo) identical states on both ranks and one process's step on the union of their crops.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lutece.audio.lm import (
    CodecConfig,
    CodecDiscriminator,
    CodecTrainConfig,
    DiscriminatorOutput,
    MultiScaleWaveDiscriminator,
    SoundStream,
    STFTDiscriminator,
    codec_losses,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
    log_mel_distance,
    mel_spectrogram,
    multiscale_mel_loss,
    pesq_score,
    si_snr,
    train_codec,
)
from lutece.audio.lm import codec as codec_module

REPO = Path(__file__).resolve().parents[3]
TINY = CodecConfig(channels=4, strides=(2, 4), latent_dim=8, num_levels=3, codebook_size=16)
HOP = 8



def _tiny(**changes) -> SoundStream:
    return SoundStream(CodecConfig(**{**TINY.to_dict(), **changes}))


def _tones(count=6, samples=4096, sample_rate=16000, seed=0):
    """Decaying harmonic tones: structured audio a tiny codec can learn quickly."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / sample_rate
    waves = []
    for _ in range(count):
        f0 = 150.0 + 300.0 * float(torch.rand((), generator=generator))
        wave = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in (1, 2, 3))
        waves.append(0.3 * wave * torch.exp(-2.0 * t))
    return waves


# ------------------------------------------------------------------------------ codec
def test_config_presets_and_bitrate():
    config = CodecConfig()
    assert config.hop_length == 320 and config.frame_rate == 50.0
    codec = _tiny()
    assert codec.hop_length == HOP and codec.frame_rate == 16000 / HOP
    assert codec.bitrate() == pytest.approx(3 * 4 * 2000.0)  # levels * log2(16) * 2000 Hz
    assert codec.bitrate(1) == pytest.approx(4 * 2000.0)
    # AudioLM's acoustic tokens: 12 levels of 1024 codes at 50 Hz = 6000 bit/s (2000 at 4)
    audiolm = 12 * math.log2(1024) * CodecConfig().frame_rate
    assert audiolm == 6000.0
    with pytest.raises(ValueError, match="levels"):
        codec.bitrate(4)


@pytest.mark.parametrize("causal", [True, False])
def test_output_length_and_code_shapes(causal, generator):
    codec = _tiny(causal=causal).eval()
    wave = torch.randn(2, 10 * HOP, generator=generator)
    output = codec(wave)
    assert output.reconstruction.shape == wave.shape
    assert output.codes.shape == (2, 10, 3) and output.codes.dtype == torch.int64
    codes = codec.encode(wave)
    torch.testing.assert_close(codes, output.codes)
    decoded = codec.decode(codes)
    assert decoded.shape == (2, 10 * HOP)
    torch.testing.assert_close(decoded, output.reconstruction)
    # channels-first (batch, 1, samples) keeps its shape; any length >= one hop works
    assert codec(wave[:, None]).reconstruction.shape == (2, 1, 10 * HOP)
    assert codec(wave[:, :10 * HOP - 3]).reconstruction.shape == (2, 10 * HOP - 3)
    assert codec.encode(wave[:, :10 * HOP - 3]).shape == (2, 10, 3)


def test_decode_with_fewer_levels(generator):
    codec = _tiny().eval()
    wave = torch.randn(1, 6 * HOP, generator=generator)
    codes = codec.encode(wave)
    one = codec.decode(codes, levels=1)
    assert one.shape == (1, 6 * HOP)
    torch.testing.assert_close(one, codec.decode(codes[..., :1]))
    torch.testing.assert_close(codec(wave, levels=1).reconstruction, one)
    assert not torch.allclose(one, codec.decode(codes))
    assert codec.encode(wave, levels=2).shape == (1, 6, 2)


def test_causal_codec_ignores_the_future(generator):
    codec = _tiny().eval()
    wave = torch.randn(1, 12 * HOP, generator=generator)
    for t in (5 * HOP, 5 * HOP + 3):
        changed = wave.clone()
        changed[:, t:] = torch.randn(1, 12 * HOP - t, generator=generator)
        before, after = codec(wave).reconstruction, codec(changed).reconstruction
        frame_start = (t // HOP) * HOP
        torch.testing.assert_close(before[:, :frame_start], after[:, :frame_start],
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(codec.encode(wave)[:, :t // HOP],
                                   codec.encode(changed)[:, :t // HOP])
        assert not torch.allclose(before[:, t:], after[:, t:])
    # the non-causal codec, by contrast, lets the future leak into the past
    acausal = _tiny(causal=False).eval()
    changed = wave.clone()
    changed[:, 6 * HOP:] = 0.0
    assert not torch.allclose(acausal(wave).reconstruction[:, :5 * HOP],
                              acausal(changed).reconstruction[:, :5 * HOP])


@pytest.mark.parametrize("wave, error, match", [
    (torch.randn(1, HOP - 1), ValueError, "fewer than one hop"),
    (torch.randn(2, 2, 64), ValueError, "shape"),
    (torch.randn(64), ValueError, "shape"),
    (torch.ones(1, 64, dtype=torch.int64), TypeError, "floating-point"),
    (torch.full((1, 64), float("nan")), ValueError, "NaN"),
])
def test_bad_waves_are_rejected(wave, error, match):
    codec = _tiny()
    for method in (codec, codec.encode):
        with pytest.raises(error, match=match):
            method(wave)
    with pytest.raises(TypeError, match="torch.Tensor"):
        codec([0.0] * 64)


def test_bad_codes_and_configs_are_rejected():
    codec = _tiny()
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        codec.decode(torch.full((1, 4, 3), 16))
    with pytest.raises(ValueError, match="levels"):
        codec.decode(torch.zeros(1, 4, 2, dtype=torch.int64), levels=3)
    with pytest.raises(ValueError, match="strides"):
        CodecConfig(strides=())
    with pytest.raises(ValueError, match="channels"):
        CodecConfig(channels=0)
    with pytest.raises(ValueError, match="unknown"):
        CodecConfig.from_dict({"hop": 3})


def test_checkpoints_round_trip_and_reject_other_configurations(tmp_path, generator):
    codec = _tiny().eval()
    path = codec.save(tmp_path / "codec.pt")
    loaded = SoundStream.from_checkpoint(path)
    assert loaded.config == codec.config
    wave = torch.randn(1, 4 * HOP, generator=generator)
    torch.testing.assert_close(loaded(wave).reconstruction, codec(wave).reconstruction)
    other = CodecConfig(**{**TINY.to_dict(), "latent_dim": 6, "num_levels": 2})
    with pytest.raises(ValueError, match="latent_dim: 8 vs 6.*num_levels: 3 vs 2"):
        SoundStream.from_checkpoint(path, config=other)
    with pytest.raises(ValueError, match="another configuration"):
        SoundStream(other).load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        SoundStream.from_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a lutece SoundStream checkpoint"):
        SoundStream.from_checkpoint(tmp_path / "foreign.pt")


# --------------------------------------------------------------------------- training
def _train_config(tmp_path=None, **changes) -> CodecTrainConfig:
    values = dict(steps=25, batch_size=4, segment_samples=1024, learning_rate=3e-3,
                  adversarial=False, mel_scales=(64, 256, 1024), seed=0, device="cpu",
                  progress=False, checkpoint_every=2,
                  checkpoint_dir=str(tmp_path) if tmp_path is not None else None)
    return CodecTrainConfig(**{**values, **changes})


def test_tiny_training_run_lowers_the_mel_loss():
    torch.manual_seed(0)
    codec = _tiny()
    result = train_codec(codec, _tones(), _train_config(steps=40, learning_rate=5e-3))
    mel = [entry["mel"] for entry in result.history]
    assert len(mel) == 40 and all(math.isfinite(value) for value in mel)
    assert sum(mel[-5:]) / 5 < 0.75 * sum(mel[:5]) / 5, mel
    assert {entry["levels"] for entry in result.history} == {1, 2, 3}  # quantizer dropout
    assert result.discriminator is None and result.steps == 40


def test_adversarial_training_resumes_exactly(tmp_path):
    config = dict(steps=4, batch_size=2, segment_samples=512, adversarial=True,
                  discriminator_warmup=1, discriminator_channels=4, stft_window=64,
                  stft_hop=16, mel_scales=(64, 128), log_every=1)
    waves = torch.stack(_tones(count=3, samples=2048))  # a (count, samples) tensor works
    torch.manual_seed(0)
    straight = train_codec(_tiny(), waves, _train_config(tmp_path / "a", **config))
    assert "discriminator" in straight.history[0] and "adversarial" not in straight.history[0]
    assert "adversarial" in straight.history[1] and "feature_matching" in straight.history[1]
    assert all(math.isfinite(v) for entry in straight.history for v in entry.values())
    torch.manual_seed(0)
    train_codec(_tiny(), waves, _train_config(tmp_path / "b", **{**config, "steps": 2}))
    torch.manual_seed(123)  # the resumed run must not depend on the state before it
    resumed = train_codec(_tiny(), waves, _train_config(tmp_path / "b", **config))
    assert resumed.resumed_from == 2 and len(resumed.history) == 2
    for a, b in zip(straight.codec.state_dict().values(), resumed.codec.state_dict().values()):
        torch.testing.assert_close(a, b)
    for a, b in zip(straight.discriminator.state_dict().values(),
                    resumed.discriminator.state_dict().values()):
        torch.testing.assert_close(a, b)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4
    with pytest.raises(ValueError, match="another configuration"):
        train_codec(_tiny(latent_dim=6), waves, _train_config(tmp_path / "b", **config))


def test_discriminator_start_delays_the_discriminator_then_the_warmup_its_use():
    config = dict(steps=4, batch_size=2, segment_samples=512, adversarial=True,
                  discriminator_start=2, discriminator_warmup=3, discriminator_channels=4,
                  stft_window=64, stft_hop=16, mel_scales=(64, 128))
    torch.manual_seed(0)
    result = train_codec(_tiny(), _tones(count=3, samples=2048), _train_config(**config))
    keys = [set(entry) for entry in result.history]
    assert not keys[0] & {"discriminator", "adversarial"}
    assert not keys[1] & {"discriminator", "adversarial"}
    assert "discriminator" in keys[2] and "adversarial" not in keys[2]
    assert {"discriminator", "adversarial", "feature_matching"} <= keys[3]
    with pytest.raises(ValueError, match=r"discriminator_start must be in \[0, "
                                         r"discriminator_warmup = 3\], got 4"):
        CodecTrainConfig(discriminator_start=4, discriminator_warmup=3)
    with pytest.raises(ValueError, match="discriminator_start"):
        CodecTrainConfig(discriminator_start=-1)


def test_nan_guard_stops_with_a_clear_message_and_keeps_the_last_checkpoint(
        tmp_path, monkeypatch):
    real_loss = codec_losses.multiscale_mel_loss
    calls = []

    def failing_loss(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(codec_losses, "multiscale_mel_loss", failing_loss)
    torch.manual_seed(0)
    codec = _tiny()
    with pytest.raises(FloatingPointError,
                       match=r"mel reconstruction loss is nan at step 3.*step 2"):
        train_codec(codec, _tones(count=3, samples=2048),
                    _train_config(tmp_path, steps=5, segment_samples=512))
    loaded = SoundStream.from_checkpoint(tmp_path / "last.pt")
    for name, parameter in codec.named_parameters():  # no optimizer step after step 2
        torch.testing.assert_close(loaded.state_dict()[name], parameter.detach())
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 2


def test_crops_of_rank_zero_are_the_one_process_crops_and_other_ranks_differ():
    waves, config = _ddp_waves(), _train_config(batch_size=3, segment_samples=256)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + 5)  # as ever
    picks = torch.randint(len(waves), (3,), generator=generator)
    start = int(torch.randint(1024 - 256 + 1, (1,), generator=generator))
    crops = codec_module._crops(waves, 5, config)
    torch.testing.assert_close(crops[0], waves[int(picks[0])][start:start + 256])
    torch.testing.assert_close(codec_module._crops(waves, 5, config, 0), crops)
    assert not torch.equal(codec_module._crops(waves, 5, config, 1), crops)
    torch.testing.assert_close(codec_module._crops(waves, 5, config, 1),
                               codec_module._crops(waves, 5, config, 1))


def test_training_rejects_bad_arguments():
    with pytest.raises(ValueError, match="multiple of the codec's hop"):
        train_codec(_tiny(), _tones(count=1), _train_config(segment_samples=1001))
    with pytest.raises(ValueError, match="mono"):
        train_codec(_tiny(), [torch.zeros(2, 1024)], _train_config(steps=1))
    with pytest.raises(ValueError, match="non-empty"):
        train_codec(_tiny(), [], _train_config())
    with pytest.raises(ValueError, match="steps"):
        CodecTrainConfig(steps=0)


# -------------------------------------------------------------------------- torchrun
def _ddp_waves():
    """The waves codec_ddp_script.py trains on."""
    return _tones(count=4, samples=1024)


def _equivalence_config(**changes) -> CodecTrainConfig:
    """One step of 2 crops per rank (k-means, quantizer dropout and dead codes all on)."""
    return _train_config(**{**dict(steps=1, batch_size=2, segment_samples=256,
                                   mel_scales=(64, 128)), **changes})


def _assert_identical(a, b, where="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}[{index}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    else:
        assert a == b, where


def test_torchrun_two_processes_stay_identical_and_match_one_process(tmp_path, monkeypatch):
    import soundfile

    data = tmp_path / "data"
    data.mkdir()
    for index, wave in enumerate(_tones(count=2, samples=8000)):
        soundfile.write(data / f"tone{index}.wav", wave.numpy(), 16000)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(REPO / "tests" / "audio" / "lm" / "codec_ddp_script.py"),
               str(tmp_path), str(data)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt", weights_only=False)
                    for rank in (0, 1))

    # 1. both ranks hold the same averaged gradients, weights and codebooks, which are one
    # process's on the union of the two ranks' crops (k-means on the gathered rows, the
    # shared dropout draw, dead codes drawn from both ranks' rows), up to float rounding
    _assert_identical(rank0["equivalence"], rank1["equivalence"])
    assert rank0["destroyed_its_group"] and rank1["destroyed_its_group"]
    real_crops = codec_module._crops
    per_rank = _equivalence_config()

    def union_of_rank_crops(waves, step, config, rank=0):
        return torch.cat([real_crops(waves, step, per_rank, r) for r in (0, 1)])

    monkeypatch.setattr(codec_module, "_crops", union_of_rank_crops)
    kept = {}
    torch.manual_seed(0)  # rank 0's initial weights, broadcast to rank 1
    single = _tiny()
    train_codec(single, _ddp_waves(), _equivalence_config(batch_size=4), callbacks=[
        lambda step, metrics: kept.update(grads=[p.grad.clone() for p in single.parameters()],
                                          metrics=metrics)])
    for got, expected in zip(rank0["equivalence"]["grads"], kept["grads"]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    for name, value in single.state_dict().items():
        torch.testing.assert_close(rank0["equivalence"]["state"][name], value, rtol=1e-4,
                                   atol=1e-5, msg=name)
    for name in ("mel", "commitment", "generator"):  # averaged over the ranks
        assert rank0["equivalence"]["metrics"][name] == pytest.approx(kept["metrics"][name],
                                                                      rel=1e-4)
    assert rank0["equivalence"]["metrics"]["levels"] == kept["metrics"]["levels"]

    # 2. a NaN on rank 1 only stops both ranks, naming it
    for rank in (rank0, rank1):
        assert "mel reconstruction loss is nan at step 2 on rank 1" in rank["nan"]
        assert "stopped before the optimizer step" in rank["nan"]

    # 3. adversarial and resumed: weights, buffers and both optimizers' states are the same;
    # rank 0 alone wrote the checkpoint and the log; the caller's process group is kept
    _assert_identical(rank0["gan"], rank1["gan"])
    assert rank0["gan"]["resumed_from"] == 2 and rank0["gan"]["kept_the_group"]
    assert sorted(path.name for path in (tmp_path / "gan").iterdir()) == ["last.pt",
                                                                          "metrics.jsonl"]
    checkpoint = torch.load(tmp_path / "gan" / "last.pt", weights_only=False)
    assert checkpoint["step"] == 3 and checkpoint["world_size"] == 2
    _assert_identical(checkpoint["state_dict"], rank0["gan"]["codec"])
    lines = (tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]

    # 4. lutece audiolm train-codec under torchrun: rank 0 writes --out, both succeed
    assert rank0["cli"] == 0 and rank1["cli"] == 0
    assert rank0["cli_kept_the_group"] and rank1["cli_kept_the_group"]
    assert SoundStream.from_checkpoint(tmp_path / "codec.pt").config.num_levels == 4
    assert completed.stdout.count("codec (2 steps") == 1, completed.stdout
    assert "per process x 2 processes" in completed.stdout


# ----------------------------------------------------------------- losses, discriminators
def test_mel_loss_is_zero_on_identical_signals_and_positive_otherwise(generator):
    wave = torch.randn(2, 2048, generator=generator)
    assert mel_spectrogram(wave, 16000, 256).shape == (2, 1 + 2048 // 64, 64)
    assert float(multiscale_mel_loss(wave, wave, 16000)) == pytest.approx(0.0, abs=1e-4)
    noisy = (wave + 0.1 * torch.randn(2, 2048, generator=generator)).requires_grad_()
    loss = multiscale_mel_loss(noisy, wave, 16000)
    assert float(loss.detach()) > 0
    loss.backward()
    assert torch.isfinite(noisy.grad).all()
    with pytest.raises(ValueError, match="same shape"):
        multiscale_mel_loss(wave, wave[:, :100], 16000)


def test_mel_loss_matches_its_formula_at_any_log_floor(generator):
    estimate = 0.1 * torch.randn(2, 2048, generator=generator)
    reference = torch.randn(2, 2048, generator=generator)
    for floor in (1e-5, 0.1, 10.0):
        a = mel_spectrogram(estimate, 8000, 256, 64, 32)
        b = mel_spectrogram(reference, 8000, 256, 64, 32)
        log_norm = (a.clamp(min=floor).log() - b.clamp(min=floor).log()).pow(2).sum(-1).sqrt()
        expected = (a - b).abs().mean() + math.sqrt(128) * log_norm.mean()
        got = multiscale_mel_loss(estimate, reference, 8000, (256,), 32, log_floor=floor)
        assert float(got) == pytest.approx(float(expected), rel=1e-5)
    # a floor above every mel magnitude leaves only the linear term
    huge = multiscale_mel_loss(estimate, reference, 8000, (256,), 32, log_floor=1e6)
    assert float(huge) == pytest.approx(float((a - b).abs().mean()), rel=1e-5)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="log_floor"):
            multiscale_mel_loss(estimate, reference, 8000, log_floor=bad)
        with pytest.raises(ValueError, match="log_floor"):
            CodecTrainConfig(log_floor=bad)


def test_discriminator_output_shapes(generator):
    wave = torch.randn(2, 2048, generator=generator)
    multi = MultiScaleWaveDiscriminator(channels=4, max_channels=16)(wave)
    assert [o.logits.shape for o in multi] == [(2, 1, 8), (2, 1, 4), (2, 1, 2)]
    assert all(len(o.features) == 6 for o in multi)
    stft = STFTDiscriminator(channels=4, max_channels=16, window=64, hop=16)(wave[:, None])
    assert len(stft) == 1 and stft[0].logits.shape == (2, 1, (1 + 2048 // 16) // 4, 2)
    both = CodecDiscriminator(channels=4, max_channels=16, stft_window=64, stft_hop=16)(wave)
    assert len(both) == 4 and all(isinstance(o, DiscriminatorOutput) for o in both)


def test_hinge_and_feature_matching_losses_closed_form():
    def output(value, feature):
        return DiscriminatorOutput(torch.full((1, 1, 3), value), (feature,))

    real = [output(1.0, torch.ones(2)), output(2.0, torch.zeros(2))]
    fake = [output(-1.0, torch.ones(2)), output(-3.0, torch.zeros(2))]
    assert float(discriminator_hinge_loss(real, fake)) == 0.0  # both margins met
    assert float(generator_hinge_loss(fake)) == pytest.approx((2.0 + 4.0) / 2)
    confused = [output(0.0, torch.ones(2))]
    assert float(discriminator_hinge_loss(confused, confused)) == pytest.approx(2.0)
    fake_feature = torch.full((2,), 3.0, requires_grad=True)
    matching = feature_matching_loss(
        [output(0.0, torch.ones(2).requires_grad_())],
        [DiscriminatorOutput(torch.zeros(1), (fake_feature,))])
    assert float(matching.detach()) == pytest.approx(2.0)
    matching.backward()
    torch.testing.assert_close(fake_feature.grad, torch.full((2,), 0.5))
    with pytest.raises(ValueError, match="same, non-zero number"):
        feature_matching_loss(real, fake[:1])


# ---------------------------------------------------------------------------- metrics
def test_si_snr_closed_form_and_scale_invariance(generator):
    reference = torch.randn(3, 4000, generator=generator, dtype=torch.float64)
    reference -= reference.mean(-1, keepdim=True)
    noise = torch.randn(3, 4000, generator=generator, dtype=torch.float64)
    noise -= noise.mean(-1, keepdim=True)
    # make the noise orthogonal to the reference, then give it power ||s||^2 / 10^(snr/10)
    noise -= (noise * reference).sum(-1, keepdim=True) / reference.pow(2).sum(
        -1, keepdim=True) * reference
    target_db = torch.tensor([0.0, 10.0, 25.0], dtype=torch.float64)
    power = reference.pow(2).sum(-1) / 10 ** (target_db / 10)
    noise *= (power / noise.pow(2).sum(-1)).sqrt()[:, None]
    estimate = reference + noise
    torch.testing.assert_close(si_snr(estimate, reference), target_db, atol=1e-6, rtol=0)
    torch.testing.assert_close(si_snr(7.5 * estimate + 2.0, reference), target_db,
                               atol=1e-6, rtol=0)
    assert float(si_snr(reference, reference)[0]) > 100
    with pytest.raises(ValueError, match="same shape"):
        si_snr(estimate, reference[:, :10])


def test_log_mel_distance(generator):
    wave = torch.randn(2, 4000, generator=generator)
    assert log_mel_distance(wave, wave, 16000).tolist() == [0.0, 0.0]
    other = log_mel_distance(wave + 0.5 * torch.randn(2, 4000, generator=generator), wave,
                             16000)
    assert other.shape == (2,) and bool((other > 0).all())


def test_pesq_score_explains_how_to_install_pesq(monkeypatch):
    monkeypatch.setitem(sys.modules, "pesq", None)  # importing it now raises ImportError
    with pytest.raises(ImportError, match="pip install pesq"):
        pesq_score(torch.zeros(1, 16000), torch.zeros(1, 16000), 16000)


def test_pesq_score_when_installed(generator):
    pesq_module = pytest.importorskip("pesq")
    # two seconds of syllable-rate modulated noise: speech-like energy for PESQ's VAD
    t = torch.arange(32000, dtype=torch.float64) / 16000
    noise = torch.randn(32000, generator=generator, dtype=torch.float64)
    reference = 0.1 * noise * (1 + torch.sin(2 * math.pi * 4 * t))
    score = pesq_score(reference[None], reference[None], 16000)
    assert score.shape == (1,) and float(score[0]) > 4.0
    # batched, and the package's own wide-band score for each pair
    degraded = reference + 0.05 * torch.randn(32000, generator=generator, dtype=torch.float64)
    both = pesq_score(torch.stack((reference, degraded)), torch.stack((reference, reference)),
                      16000)
    direct = pesq_module.pesq(16000, reference.numpy(), degraded.numpy(), "wb")
    assert float(both[1]) == pytest.approx(direct, abs=1e-6) and float(both[1]) < float(both[0])
    with pytest.raises(ValueError, match="8000 or 16000"):
        pesq_score(reference[None], reference[None], 22050)
