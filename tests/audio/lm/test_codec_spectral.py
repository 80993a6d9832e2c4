"""Tests of SoundStream's spectral architecture (lutece.audio.lm.codec_spectral).

Oracles: perfect reconstruction of the STFT analysis / overlap-add pair away from the ends,
the analysis against torch.stft, the synthesis against torch.istft, the look-ahead bound by
perturbing the input, float64 finite differences through the synthesis, length arithmetic,
and a tiny training run whose mel loss must fall.
"""

import math

import pytest
import torch

from lutece.audio.lm import (
    CodecConfig,
    CodecTrainConfig,
    SoundStream,
    SpectralDecoder,
    SpectralEncoder,
    load_preset,
    train_codec,
)
from lutece.audio.lm.codec_spectral import centred_stft, overlap_add, spectral_lookahead

HOP = 8
TINY = CodecConfig(channels=2, strides=(2, 4), latent_dim=8, num_levels=3, codebook_size=16,
                   causal=False, architecture="spectral", spectral_blocks=2)


def _tiny(**changes) -> SoundStream:
    return SoundStream(CodecConfig(**{**TINY.to_dict(), **changes}))


@pytest.mark.parametrize("hop, fft_hops", [(8, 4), (8, 3), (10, 4), (160, 4)])
def test_analysis_then_overlap_add_reconstructs_away_from_the_ends(hop, fft_hops, generator):
    n_fft = fft_hops * hop
    window = torch.hann_window(n_fft, dtype=torch.float64)
    wave = torch.randn(2, 30 * hop, generator=generator, dtype=torch.float64)
    spectrum = centred_stft(wave, hop, window)
    assert spectrum.shape == (2, 30, n_fft // 2 + 1)
    rebuilt = overlap_add(spectrum, hop, window)
    assert rebuilt.shape == wave.shape
    torch.testing.assert_close(rebuilt[:, n_fft:-n_fft], wave[:, n_fft:-n_fft])


def test_analysis_and_synthesis_match_torch_stft_and_istft(generator):
    hop, n_fft = 8, 32
    lead = (n_fft - hop) // 2
    window = torch.hann_window(n_fft, dtype=torch.float64)
    wave = torch.randn(1, 20 * hop, generator=generator, dtype=torch.float64)
    ours = centred_stft(wave, hop, window)
    padded = torch.nn.functional.pad(wave, (lead, n_fft - hop - lead))
    reference = torch.stft(padded, n_fft, hop, window=window, center=False,
                           return_complex=True).transpose(1, 2)[:, :20]
    torch.testing.assert_close(ours, reference)
    # any spectrum: ours at m is torch.istft's (frame k centred at k hop) at m - hop / 2,
    # wherever the window overlap sum is the constant of the interior
    spectrum = torch.randn(1, 20, n_fft // 2 + 1, generator=generator, dtype=torch.complex128)
    theirs = torch.istft(spectrum.transpose(1, 2), n_fft, hop, window=window, center=True,
                         length=20 * hop)
    mine = overlap_add(spectrum, hop, window)
    torch.testing.assert_close(mine[:, n_fft:-n_fft], theirs[:, n_fft - hop // 2:-n_fft - hop // 2])


def test_bad_arguments_are_rejected():
    window = torch.hann_window(32)
    wave, spectrum = torch.randn(1, 64), torch.randn(1, 8, 17, dtype=torch.complex64)
    with pytest.raises(ValueError, match="hop must be a positive int"):
        centred_stft(wave, 0, window)
    with pytest.raises(ValueError, match="at least 3 hops"):
        centred_stft(wave, 16, window)
    with pytest.raises(TypeError, match="floating-point"):
        centred_stft(wave.long(), 8, window)
    with pytest.raises(ValueError, match=r"\(batch, samples >= hop = 8\)"):
        centred_stft(torch.randn(64), 8, window)
    with pytest.raises(ValueError, match="complex with shape"):
        overlap_add(spectrum.real, 8, window)
    with pytest.raises(ValueError, match="n_fft / 2 \\+ 1 = 17"):
        overlap_add(spectrum[..., :16], 8, window)
    with pytest.raises(ValueError, match="at least 3 hops"):
        overlap_add(spectrum, 8, window[:16])
    with pytest.raises(TypeError, match="torch.Tensor"):
        overlap_add([1.0], 8, window)
    with pytest.raises(ValueError, match="fft_hops"):
        spectral_lookahead(8, 0, 2)
    with pytest.raises(ValueError, match="blocks"):
        spectral_lookahead(8, 4, -1)
    with pytest.raises(ValueError, match="SpectralEncoder: fft_hops must be an int >= 3"):
        SpectralEncoder(8, 2, 16, 2, 8)
    with pytest.raises(ValueError, match="SpectralDecoder: width must be a positive int"):
        SpectralDecoder(8, 4, 0, 2, 8)


def test_overlap_add_gradients_by_finite_differences(generator):
    window = torch.hann_window(16, dtype=torch.float64)
    spectrum = torch.randn(1, 5, 9, generator=generator, dtype=torch.complex128,
                           requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: overlap_add(s, 4, window), (spectrum,))
    wave = torch.randn(1, 20, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: centred_stft(w, 4, window).abs(), (wave,))


def test_shapes_levels_and_output_length(generator):
    codec = _tiny().eval()
    wave = torch.randn(2, 10 * HOP, generator=generator)
    output = codec(wave)
    assert output.reconstruction.shape == wave.shape
    assert output.codes.shape == (2, 10, 3)
    torch.testing.assert_close(codec.decode(codec.encode(wave)), output.reconstruction)
    assert codec(wave[:, :10 * HOP - 3]).reconstruction.shape == (2, 10 * HOP - 3)
    one = codec.decode(output.codes, levels=1)
    assert one.shape == (2, 10 * HOP) and not torch.allclose(one, output.reconstruction)
    assert "architecture=spectral" in repr(codec)


@pytest.mark.parametrize("head, expected", [
    ({}, 2 * 4 * HOP + 4 * HOP),
    ({"spectral_output": "magnitude", "griffin_lim_iterations": 3},
     (2 * 4 + 3 * 3) * HOP + 4 * HOP),
])
def test_future_input_beyond_the_lookahead_never_changes_the_output(head, expected, generator):
    codec = _tiny(**head).double().eval()
    lookahead = codec.lookahead_samples
    assert lookahead == expected
    wave = torch.randn(1, 40 * HOP, generator=generator, dtype=torch.float64)

    def autoencode(x):  # the continuous path: codes could hide a change by rounding
        return codec.decoder(codec.encoder(x[:, None]))[:, 0]

    before = autoencode(wave)
    for n in (3, 5 * HOP + 3):
        changed = wave.clone()
        changed[:, n + lookahead:] += 1.0
        after = autoencode(changed)
        torch.testing.assert_close(after[:, :n], before[:, :n], rtol=0, atol=1e-10)
        assert not torch.allclose(after[:, n:], before[:, n:])
    # the look-ahead is real: a change right after n reaches back before n
    changed = wave.clone()
    changed[:, 10 * HOP:] += 1.0
    assert not torch.allclose(autoencode(changed)[:, :10 * HOP], before[:, :10 * HOP])
    # the waveform codec: one hop when causal, not computed otherwise
    assert SoundStream(CodecConfig(channels=2, strides=(2, 4), latent_dim=8, num_levels=2,
                                   codebook_size=8)).lookahead_samples == HOP
    assert SoundStream(CodecConfig(channels=2, strides=(2, 4), latent_dim=8, num_levels=2,
                                   codebook_size=8, causal=False)).lookahead_samples is None


def test_config_errors_and_checkpoints(tmp_path, generator):
    with pytest.raises(ValueError, match="not causal.*causal=False"):
        CodecConfig(architecture="spectral")
    with pytest.raises(ValueError, match="architecture must be one of"):
        CodecConfig(architecture="mdct", causal=False)
    for name in ("fft_hops", "spectral_blocks"):
        with pytest.raises(ValueError, match=name):
            CodecConfig(**{name: 0})
    with pytest.raises(ValueError, match="fft_hops must be >= 3"):
        CodecConfig(fft_hops=2)
    codec = _tiny().eval()
    path = codec.save(tmp_path / "spectral.pt")
    loaded = SoundStream.from_checkpoint(path)
    wave = torch.randn(1, 6 * HOP, generator=generator)
    torch.testing.assert_close(loaded(wave).reconstruction, codec(wave).reconstruction)
    with pytest.raises(ValueError, match="architecture: 'spectral' vs 'waveform'"):
        SoundStream.from_checkpoint(path, config=CodecConfig(**{**TINY.to_dict(),
                                                                "architecture": "waveform"}))
    # a checkpoint written before the architecture fields existed is a waveform codec
    waveform = SoundStream(CodecConfig(channels=2, strides=(2, 4), latent_dim=8,
                                       num_levels=2, codebook_size=8)).eval()
    payload = torch.load(waveform.save(tmp_path / "old.pt"), weights_only=False)
    for name in ("architecture", "fft_hops", "spectral_blocks", "spectral_output",
                 "griffin_lim_iterations"):
        del payload["config"][name]
    torch.save(payload, tmp_path / "old.pt")
    old = SoundStream.from_checkpoint(tmp_path / "old.pt")
    assert old.config.architecture == "waveform"
    torch.testing.assert_close(old(wave).reconstruction, waveform(wave).reconstruction)


def test_tiny_training_run_lowers_the_mel_loss(one_thread):
    torch.manual_seed(0)
    t = torch.arange(2048) / 16000
    waves = [0.3 * torch.sin(2 * math.pi * f * t) * torch.exp(-2.0 * t)
             for f in (180.0, 260.0, 330.0, 410.0)]
    codec = _tiny(channels=4)
    result = train_codec(codec, waves, CodecTrainConfig(
        steps=40, batch_size=4, segment_samples=512, learning_rate=3e-3, adversarial=False,
        mel_scales=(64, 256), log_floor=0.1, seed=0, device="cpu", progress=False))
    mel = [entry["mel"] for entry in result.history]
    assert all(math.isfinite(value) for value in mel)
    assert sum(mel[-5:]) / 5 < 0.75 * sum(mel[:5]) / 5, mel


def test_a_preset_selects_the_spectral_codec_through_its_config():
    preset = load_preset("tiny", {"codec": {"architecture": "spectral", "causal": False}})
    codec = SoundStream(preset.codec)
    assert isinstance(codec.encoder, SpectralEncoder)
    assert isinstance(codec.decoder, SpectralDecoder)
    with pytest.raises(ValueError, match="causal=False"):
        load_preset("tiny", {"codec": {"architecture": "spectral"}})
