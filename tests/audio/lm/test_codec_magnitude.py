"""Tests of the spectral codec's magnitude head: Griffin-Lim, the magnitude loss and
``spectral_output="magnitude"`` in SoundStream and train_codec.

Oracles: a consistent magnitude (the STFT magnitude of a real signal) that Griffin-Lim must
approach, more closely with more iterations; the loss written again in numpy; float64 finite
differences through the zero-phase synthesis; the look-ahead bound by perturbing the input;
a tiny training run whose magnitude loss must fall.
"""

import math

import numpy as np
import pytest
import torch

from lutece.audio.frontends.mel_scale import mel_filter_matrix
from lutece.audio.lm import (
    CodecConfig,
    CodecTrainConfig,
    SoundStream,
    SpectralDecoder,
    centred_stft,
    griffin_lim,
    spectral_lookahead,
    spectral_magnitude_loss,
    train_codec,
)

HOP = 8
TINY = CodecConfig(channels=2, strides=(2, 4), latent_dim=8, num_levels=3, codebook_size=16,
                   causal=False, architecture="spectral", spectral_blocks=2,
                   spectral_output="magnitude", griffin_lim_iterations=4)


def _tiny(**changes) -> SoundStream:
    return SoundStream(CodecConfig(**{**TINY.to_dict(), **changes}))


def _inconsistency(wave: torch.Tensor, magnitude: torch.Tensor, hop: int,
                   window: torch.Tensor, margin: int) -> float:
    """Relative distance between the wave's STFT magnitude and the target, away from the ends
    (where the overlap-add is not an exact inverse)."""
    rebuilt = centred_stft(wave, hop, window).abs()[:, margin:-margin]
    target = magnitude[:, margin:-margin]
    return float(torch.linalg.norm(rebuilt - target) / torch.linalg.norm(target))


def test_griffin_lim_approaches_a_consistent_magnitude():
    hop, window = 40, torch.hann_window(160, dtype=torch.float64)
    t = torch.arange(4000, dtype=torch.float64) / 8000
    chirp = torch.sin(2 * math.pi * (200 * t + 600 * t ** 2))
    tones = 0.5 * torch.sin(2 * math.pi * 330 * t) + 0.3 * torch.sin(2 * math.pi * 1250 * t)
    wave = torch.stack((chirp, tones * torch.exp(-3 * t)))
    magnitude = centred_stft(wave, hop, window).abs()
    errors = {n: _inconsistency(griffin_lim(magnitude, hop, window, n), magnitude, hop, window, 4)
              for n in (0, 4, 16, 64)}
    assert errors[0] > errors[4] > errors[16] > errors[64], errors
    assert errors[64] < 0.1, errors
    # the original algorithm (no momentum) also converges, more slowly
    slow = _inconsistency(griffin_lim(magnitude, hop, window, 64, momentum=0.0), magnitude,
                          hop, window, 4)
    assert errors[64] < slow < errors[0]
    # deterministic, float32 as well
    once = griffin_lim(magnitude.float(), hop, window.float(), 8)
    torch.testing.assert_close(once, griffin_lim(magnitude.float(), hop, window.float(), 8))
    assert once.dtype == torch.float32 and once.shape == (2, 4000)


def test_griffin_lim_passes_gradients_to_the_magnitude(generator):
    window = torch.hann_window(16, dtype=torch.float64)
    magnitude = torch.rand(1, 5, 9, generator=generator, dtype=torch.float64,
                           requires_grad=True)
    # zero phase: the synthesis is linear in the magnitude, so finite differences apply
    assert torch.autograd.gradcheck(lambda m: griffin_lim(m, 4, window, 0), (magnitude,))
    # with iterations, the phase is held fixed: the gradient is that of a fixed-phase
    # overlap-add, hence linear: grad of <y, v> does not depend on the magnitude's scale
    v = torch.randn(1, 20, generator=generator, dtype=torch.float64)
    (grad,) = torch.autograd.grad((griffin_lim(magnitude, 4, window, 8) * v).sum(), magnitude)
    scaled = (3.0 * magnitude.detach()).requires_grad_()
    (grad3,) = torch.autograd.grad((griffin_lim(scaled, 4, window, 8) * v).sum(), scaled)
    torch.testing.assert_close(grad, grad3)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_griffin_lim_and_magnitude_loss_errors():
    window = torch.hann_window(32)
    magnitude = torch.rand(1, 6, 17)
    with pytest.raises(ValueError, match="iterations must be a non-negative int"):
        griffin_lim(magnitude, 8, window, -1)
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\)"):
        griffin_lim(magnitude, 8, window, 2, momentum=1.0)
    with pytest.raises(ValueError, match="n_fft / 2 \\+ 1 = 17"):
        griffin_lim(magnitude[..., :16], 8, window)
    with pytest.raises(TypeError, match="floating-point"):
        griffin_lim(magnitude.long(), 8, window)
    with pytest.raises(ValueError, match="same shape"):
        spectral_magnitude_loss(magnitude, magnitude[:, :5], 8000)
    with pytest.raises(ValueError, match=r"estimate must be a floating-point tensor"):
        spectral_magnitude_loss(magnitude[0], magnitude[0], 8000)
    with pytest.raises(ValueError, match="mel_floor must be a finite number > 0"):
        spectral_magnitude_loss(magnitude, magnitude, 8000, mel_floor=0.0)


def test_magnitude_loss_matches_its_formula(generator):
    estimate = torch.rand(2, 7, 33, generator=generator, dtype=torch.float64) * 5
    reference = torch.rand(2, 7, 33, generator=generator, dtype=torch.float64) * 5
    loss = spectral_magnitude_loss(estimate, reference, 8000, n_mels=12, mel_floor=0.2,
                                   linear_floor=0.05)
    e, r = estimate.numpy(), reference.numpy()
    filters = np.asarray(mel_filter_matrix(12, 64, 8000, 0.0, 4000.0))
    expected = (np.abs(np.log(e @ filters + 0.2) - np.log(r @ filters + 0.2)).mean()
                + np.abs(np.log(e + 0.05) - np.log(r + 0.05)).mean())
    assert float(loss) == pytest.approx(expected, rel=1e-10)
    assert float(spectral_magnitude_loss(reference, reference, 8000)) == 0.0


def test_magnitude_codec_shapes_decoding_and_synthesis_switch(generator):
    codec = _tiny().eval()
    wave = torch.randn(2, 10 * HOP, generator=generator)
    output = codec(wave)
    assert output.reconstruction.shape == wave.shape
    assert output.magnitude.shape == (2, 10, 4 * HOP // 2 + 1)
    assert bool((output.magnitude >= 0).all())
    torch.testing.assert_close(codec.decode(codec.encode(wave)), output.reconstruction)
    quiet = codec(wave, synthesize=False)
    assert quiet.reconstruction is None
    torch.testing.assert_close(quiet.magnitude, output.magnitude)
    assert codec(wave[:, :10 * HOP - 3]).reconstruction.shape == (2, 10 * HOP - 3)
    # a complex head has no magnitudes to give, and ignores synthesize
    complex_codec = _tiny(spectral_output="complex").eval()
    assert complex_codec(wave).magnitude is None
    assert complex_codec(wave, synthesize=False).reconstruction.shape == wave.shape
    with pytest.raises(ValueError, match="output='magnitude'"):
        complex_codec.decoder.magnitude(torch.randn(1, 8, 4))
    with pytest.raises(ValueError, match="output must be one of"):
        SpectralDecoder(8, 4, 16, 2, 8, output="phase")


def test_magnitude_config_errors_and_old_checkpoints(tmp_path, generator):
    with pytest.raises(ValueError, match="spectral_output must be one of"):
        CodecConfig(architecture="spectral", causal=False, spectral_output="phase")
    with pytest.raises(ValueError, match="needs architecture='spectral'"):
        CodecConfig(spectral_output="magnitude")
    with pytest.raises(ValueError, match="griffin_lim_iterations must be a non-negative int"):
        CodecConfig(griffin_lim_iterations=-1)
    codec = _tiny().eval()
    path = codec.save(tmp_path / "magnitude.pt")
    wave = torch.randn(1, 6 * HOP, generator=generator)
    torch.testing.assert_close(SoundStream.from_checkpoint(path)(wave).reconstruction,
                               codec(wave).reconstruction)
    with pytest.raises(ValueError, match="spectral_output: 'magnitude' vs 'complex'"):
        SoundStream.from_checkpoint(path, config=CodecConfig(
            **{**TINY.to_dict(), "spectral_output": "complex"}))
    # a spectral checkpoint from before the magnitude head is a complex one
    old = _tiny(spectral_output="complex").eval()
    payload = torch.load(old.save(tmp_path / "old.pt"), weights_only=False)
    for name in ("spectral_output", "griffin_lim_iterations"):
        del payload["config"][name]
    torch.save(payload, tmp_path / "old.pt")
    loaded = SoundStream.from_checkpoint(tmp_path / "old.pt")
    assert loaded.config.spectral_output == "complex"
    torch.testing.assert_close(loaded(wave).reconstruction, old(wave).reconstruction)


def test_the_lookahead_grows_with_the_griffin_lim_iterations():
    # the bound itself is checked by perturbation in test_codec_spectral.py
    assert spectral_lookahead(HOP, 4, 2, 3) == (2 * 4 + 3 * 3) * HOP + 4 * HOP
    assert _tiny(griffin_lim_iterations=3).lookahead_samples == spectral_lookahead(HOP, 4, 2, 3)
    assert _tiny(spectral_output="complex").lookahead_samples == spectral_lookahead(HOP, 4, 2)
    with pytest.raises(ValueError, match="griffin_lim_iterations must be a non-negative int"):
        spectral_lookahead(HOP, 4, 2, -1)


def test_tiny_magnitude_training_lowers_its_loss_and_runs_adversarially(one_thread):
    torch.manual_seed(0)
    t = torch.arange(2048) / 16000
    waves = [0.3 * torch.sin(2 * math.pi * f * t) * torch.exp(-2.0 * t)
             for f in (180.0, 260.0, 330.0, 410.0)]
    codec = _tiny(channels=4)
    result = train_codec(codec, waves, CodecTrainConfig(
        steps=40, batch_size=4, segment_samples=512, learning_rate=3e-3, betas=(0.9, 0.99),
        adversarial=False, n_mels=16, seed=0, device="cpu", progress=False))
    loss = [entry["magnitude"] for entry in result.history]
    assert "mel" not in result.history[0]
    assert all(math.isfinite(value) for value in loss)
    assert sum(loss[-5:]) / 5 < 0.75 * sum(loss[:5]) / 5, loss
    # the discriminators see the Griffin-Lim wave and their gradients reach the magnitudes
    result = train_codec(_tiny(channels=4), waves, CodecTrainConfig(
        steps=3, batch_size=2, segment_samples=512, adversarial=True, discriminator_warmup=1,
        n_mels=16, discriminator_channels=2, stft_window=64, stft_hop=16, seed=0,
        device="cpu", progress=False))
    last = result.history[-1]
    assert {"magnitude", "adversarial", "feature_matching", "discriminator"} <= set(last)
    assert all(math.isfinite(value) for value in last.values())
