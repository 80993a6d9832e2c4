"""The losses SoundStream trains with, and its two discriminators.

Zeghidour et al., "SoundStream: An End-to-End Neural Audio Codec" (2021, arXiv 2107.03312),
its discriminators and training objective:

- **Multi-scale mel reconstruction** (after Gritsenko et al. 2020)::

      L_rec = sum_{s in 2^6..2^11} ( mean_t ||S^s_t(x) - S^s_t(x_hat)||_1
                                     + alpha_s mean_t ||log S^s_t(x) - log S^s_t(x_hat)||_2 )

  where ``S^s`` is a 64-bin mel spectrogram (of the STFT magnitude) with window ``s`` and hop
  ``s / 4``, and ``alpha_s = sqrt(s / 2)`` (the scales are in our research notes; the
  64 bins, hop and ``alpha_s`` are our reading of the paper, unverified there). We average
  over frames and mel bins where the paper sums (the weights between terms then do not
  depend on the crop length).
- **Discriminators**: a multi-scale waveform discriminator (MelGAN, Kumar et al. 2019: the
  same small strided-conv network on the wave and on 2x and 4x average-pooled copies) and an
  STFT discriminator (2-D convolutions over the real and imaginary parts of a single STFT,
  window 1024 and hop 256 as SoundStream). Widths are configurable and small by default; the
  STFT network is a simplified SoundStream one (see :class:`STFTDiscriminator`).
- **Hinge adversarial losses**:
  ``L_D = mean_k [ mean relu(1 - D_k(x)) + mean relu(1 + D_k(x_hat)) ]`` and
  ``L_G = mean_k mean relu(1 - D_k(x_hat))``.
- **Feature matching**: ``L_feat = mean_{k,l} mean |D_k^l(x) - D_k^l(x_hat)|``, the L1
  distance between the discriminators' internal feature maps, normalized per layer by its
  number of entries (SoundStream's ``1 / (K L)`` and ``1 / T_{k,l}`` factors).

The mel filters are :func:`lutece.audio.frontends.mel_scale.mel_filter_matrix` (HTK mel
scale, 0 Hz to Nyquist).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from ..frontends.mel_scale import mel_filter_matrix

__all__ = ["mel_spectrogram", "multiscale_mel_loss", "DiscriminatorOutput",
           "WaveDiscriminator", "MultiScaleWaveDiscriminator", "STFTDiscriminator",
           "CodecDiscriminator", "discriminator_hinge_loss", "generator_hinge_loss",
           "feature_matching_loss", "spectral_magnitude_loss", "MEL_SCALES"]

MEL_SCALES = (64, 128, 256, 512, 1024, 2048)  # SoundStream: window sizes 2^6 .. 2^11
LOG_FLOOR = 1e-5


@functools.lru_cache(maxsize=64)
def _mel_matrix(n_fft: int, n_mels: int, sample_rate: int) -> np.ndarray:
    return mel_filter_matrix(n_mels, n_fft, sample_rate, 0.0, sample_rate / 2.0)


def _as_batch(fn: str, name: str, wave: object) -> torch.Tensor:
    if not isinstance(wave, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(wave).__name__}")
    if wave.ndim == 3 and wave.shape[1] == 1:
        wave = wave[:, 0]
    if wave.ndim != 2:
        raise ValueError(f"{fn}: {name} must have shape (batch, samples) or "
                         f"(batch, 1, samples), got {tuple(wave.shape)}")
    if not wave.is_floating_point():
        raise TypeError(f"{fn}: {name} must have a floating-point dtype, got {wave.dtype}")
    return wave


def mel_spectrogram(wave: torch.Tensor, sample_rate: int, n_fft: int = 1024,
                    hop_length: int | None = None, n_mels: int = 64) -> torch.Tensor:
    """Mel spectrogram of the STFT magnitude: ``(batch, frames, n_mels)``.

    ``wave (batch, samples)`` or ``(batch, 1, samples)``; Hann window of ``n_fft`` samples,
    hop ``n_fft // 4`` by default, centered frames with zero padding (any length works),
    ``frames = 1 + samples // hop_length``. ``S = |STFT(x)| @ M`` with ``M`` the HTK mel
    filters from 0 Hz to ``sample_rate / 2``.
    """
    wave = _as_batch("mel_spectrogram", "wave", wave)
    hop_length = hop_length or max(1, n_fft // 4)
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spectrum = torch.stft(wave, n_fft, hop_length=hop_length, window=window, center=True,
                          pad_mode="constant", return_complex=True).abs()
    filters = torch.as_tensor(_mel_matrix(n_fft, n_mels, int(sample_rate)),
                              dtype=wave.dtype, device=wave.device)
    return spectrum.transpose(1, 2) @ filters


def _check_log_floor(fn: str, log_floor: object, name: str = "log_floor") -> None:
    """Raise a ValueError naming ``fn`` unless ``log_floor`` is a finite number > 0."""
    if not (isinstance(log_floor, (int, float)) and not isinstance(log_floor, bool)
            and math.isfinite(log_floor) and log_floor > 0):
        raise ValueError(f"{fn}: {name} must be a finite number > 0, got {log_floor!r}")


def multiscale_mel_loss(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int,
                        scales: Sequence[int] = MEL_SCALES, n_mels: int = 64,
                        log_floor: float = LOG_FLOOR) -> torch.Tensor:
    """SoundStream's multi-scale spectral reconstruction loss (see the module doc): a scalar,
    the sum over ``scales`` of the mean L1 mel distance plus ``sqrt(s / 2)`` times the mean
    per-frame L2 norm of the log-mel difference, the mel magnitudes floored at ``log_floor``
    before the log.

    ``estimate`` and ``reference``: ``(batch, samples)`` or ``(batch, 1, samples)``, same
    shape. Gradients flow to ``estimate`` (and to ``reference`` if it requires them).

    ``log_floor`` (1e-5; the paper gives no value) sets how much near-silent bins count: the
    gradient of ``log S`` is ``1 / S``, so with a low floor the bins a model cannot yet make
    quiet enough (silence, the empty top of the spectrum) dominate the loss. A small codec
    trained for a few thousand steps learns the audible content faster with a floor near the
    quiet end of what it must reproduce (0.1 in ``lutece reproduce audiolm``).
    """
    fn = "multiscale_mel_loss"
    _check_log_floor(fn, log_floor)
    estimate = _as_batch(fn, "estimate", estimate)
    reference = _as_batch(fn, "reference", reference)
    if estimate.shape != reference.shape:
        raise ValueError(f"{fn}: estimate and reference must have the same shape, got "
                         f"{tuple(estimate.shape)} and {tuple(reference.shape)}")
    if not scales:
        raise ValueError(f"{fn}: scales must name at least one window size")
    total = estimate.new_zeros(())
    for scale in scales:
        mel_estimate = mel_spectrogram(estimate, sample_rate, scale, scale // 4, n_mels)
        mel_reference = mel_spectrogram(reference, sample_rate, scale, scale // 4, n_mels)
        linear = (mel_estimate - mel_reference).abs().mean()
        log_difference = (torch.log(mel_estimate.clamp(min=log_floor))
                          - torch.log(mel_reference.clamp(min=log_floor)))
        # sqrt of (sum + tiny): finite gradient where the two spectra agree exactly
        log_term = torch.sqrt(log_difference.pow(2).sum(-1) + 1e-12).mean()
        total = total + linear + math.sqrt(scale / 2.0) * log_term
    return total


def spectral_magnitude_loss(estimate: torch.Tensor, reference: torch.Tensor,
                            sample_rate: int, n_mels: int = 64, mel_floor: float = 0.1,
                            linear_floor: float = 0.01) -> torch.Tensor:
    """The reconstruction loss of a magnitude-predicting spectral decoder
    (:class:`~lutece.audio.lm.codec_spectral.SpectralDecoder` with ``output="magnitude"``):
    a scalar, ``mean |log(M e + mel_floor) - log(M r + mel_floor)| + mean |log(e +
    linear_floor) - log(r + linear_floor)|``, with ``M`` the ``n_mels`` HTK mel filters of
    the STFT size.

    ``estimate`` and ``reference``: STFT magnitudes ``(batch, frames, n_fft / 2 + 1)`` of the
    same shape (``reference`` usually the input's own ``centred_stft(...).abs()``). Comparing
    magnitudes directly spares the Griffin-Lim phase search inside the loss; the mel term
    weighs the bands as the ear does, the linear one keeps the harmonics (pitch) sharp. The
    floors are in the STFT's magnitude units (a Hann window of ``n_fft`` samples has gain
    ``n_fft / 2`` for a unit sinusoid); the defaults are those of ``lutece reproduce audiolm``
    (``n_fft = 640``), where they keep near-silent bins from dominating, as the 0.1 floor of
    :func:`multiscale_mel_loss` does.
    """
    fn = "spectral_magnitude_loss"
    for name, value in (("estimate", estimate), ("reference", reference)):
        if not isinstance(value, torch.Tensor) or value.ndim != 3 or not value.is_floating_point():
            raise ValueError(f"{fn}: {name} must be a floating-point tensor (batch, frames, "
                             f"bins), got {getattr(value, 'shape', type(value).__name__)}")
    if estimate.shape != reference.shape:
        raise ValueError(f"{fn}: estimate and reference must have the same shape, got "
                         f"{tuple(estimate.shape)} and {tuple(reference.shape)}")
    for name, value in (("mel_floor", mel_floor), ("linear_floor", linear_floor)):
        _check_log_floor(fn, value, name)
    n_fft = 2 * (estimate.shape[-1] - 1)
    filters = torch.as_tensor(_mel_matrix(n_fft, int(n_mels), int(sample_rate)),
                              dtype=estimate.dtype, device=estimate.device)
    mel = (torch.log(estimate @ filters + mel_floor)
           - torch.log(reference @ filters + mel_floor)).abs().mean()
    linear = (torch.log(estimate + linear_floor) - torch.log(reference + linear_floor)).abs()
    return mel + linear.mean()


# ----------------------------------------------------------------------- discriminators
@dataclass(frozen=True)
class DiscriminatorOutput:
    """One (sub-)discriminator's answer: ``logits`` (real > 0 > fake under the hinge loss)
    and the ``features`` (each layer's activation) used by feature matching."""

    logits: torch.Tensor
    features: tuple[torch.Tensor, ...]


class WaveDiscriminator(nn.Module):
    """MelGAN's waveform discriminator (Kumar et al. 2019, Appendix A), at configurable width:
    conv k15 -> one grouped conv (kernel ``10 s + 1``, stride ``s``) per entry of
    ``downsampling``, channels growing by ``s`` up to ``max_channels`` -> conv k5 -> conv k3
    to one logit per position; LeakyReLU(0.2) and weight normalization throughout.
    MelGAN uses ``channels=16, max_channels=1024, downsampling=(4, 4, 4, 4)``.

    ``forward(wave (batch, 1, samples))`` -> :class:`DiscriminatorOutput` with logits
    ``(batch, 1, positions)``.
    """

    def __init__(self, channels: int = 16, max_channels: int = 256,
                 downsampling: Sequence[int] = (4, 4, 4, 4)) -> None:
        super().__init__()
        layers = [weight_norm(nn.Conv1d(1, channels, 15, padding=7))]
        width = channels
        for stride in downsampling:
            out = min(width * stride, max_channels)
            groups = max(1, math.gcd(width, out) // 4)
            layers.append(weight_norm(nn.Conv1d(width, out, 10 * stride + 1, stride=stride,
                                                padding=5 * stride, groups=groups)))
            width = out
        layers.append(weight_norm(nn.Conv1d(width, width, 5, padding=2)))
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv1d(width, 1, 3, padding=1))

    def forward(self, wave: torch.Tensor) -> DiscriminatorOutput:
        features = []
        x = wave
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return DiscriminatorOutput(self.output(x), tuple(features))


class MultiScaleWaveDiscriminator(nn.Module):
    """``num_scales`` :class:`WaveDiscriminator` s on the wave and its 2x, 4x, ... average-
    pooled copies (MelGAN's ``AvgPool1d(4, stride=2, padding=1)``; 3 scales as MelGAN and
    SoundStream). ``forward(wave (batch, samples) or (batch, 1, samples))`` -> one
    :class:`DiscriminatorOutput` per scale."""

    def __init__(self, num_scales: int = 3, channels: int = 16, max_channels: int = 256,
                 downsampling: Sequence[int] = (4, 4, 4, 4)) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            WaveDiscriminator(channels, max_channels, downsampling) for _ in range(num_scales))

    def forward(self, wave: torch.Tensor) -> list[DiscriminatorOutput]:
        x = _as_batch("MultiScaleWaveDiscriminator", "wave", wave)[:, None]
        outputs = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs


class STFTDiscriminator(nn.Module):
    """A small version of SoundStream's STFT discriminator.

    Input: the complex STFT (Hann window ``window``, hop ``hop``; 1024 and 256 in SoundStream)
    as two channels (real, imaginary) over (time, frequency). A 7x7 conv to ``channels``, then
    one block per entry of ``strides`` (a 3x3 conv, then a conv with kernel
    ``(s_t + 2, s_f + 2)`` and stride ``(s_t, s_f)`` that doubles the width up to
    ``max_channels``), then a 3x3 conv to one logit per (time, frequency) cell. SoundStream
    alternates strides (1, 2) and (2, 2) over six residual blocks and ends with a full-
    frequency conv; we keep the strides, drop the residual connections and keep a logit map.

    ``forward(wave (batch, samples) or (batch, 1, samples))`` -> a one-element list of
    :class:`DiscriminatorOutput` with logits ``(batch, 1, time', frequency')``.
    """

    def __init__(self, channels: int = 16, max_channels: int = 128, window: int = 1024,
                 hop: int = 256,
                 strides: Sequence[tuple[int, int]] = ((1, 2), (2, 2), (1, 2), (2, 2))
                 ) -> None:
        super().__init__()
        self.window, self.hop = int(window), int(hop)
        self.register_buffer("window_function", torch.hann_window(self.window),
                             persistent=False)
        layers = [weight_norm(nn.Conv2d(2, channels, 7, padding=3))]
        width = channels
        for stride_time, stride_frequency in strides:
            out = min(2 * width, max_channels)
            layers.append(weight_norm(nn.Conv2d(width, width, 3, padding=1)))
            layers.append(weight_norm(nn.Conv2d(width, out, (stride_time + 2, stride_frequency + 2),
                                                stride=(stride_time, stride_frequency),
                                                padding=1)))
            width = out
        self.layers = nn.ModuleList(layers)
        self.output = weight_norm(nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, wave: torch.Tensor) -> list[DiscriminatorOutput]:
        wave = _as_batch("STFTDiscriminator", "wave", wave)
        spectrum = torch.stft(wave, self.window, hop_length=self.hop,
                              window=self.window_function.to(wave.dtype), center=True,
                              pad_mode="constant", return_complex=True)  # (batch, freq, time)
        x = torch.stack([spectrum.real, spectrum.imag], dim=1).transpose(2, 3)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return [DiscriminatorOutput(self.output(x), tuple(features))]


class CodecDiscriminator(nn.Module):
    """SoundStream's pair: :class:`MultiScaleWaveDiscriminator` (3 scales) and
    :class:`STFTDiscriminator`. ``forward(wave)`` -> the 4 :class:`DiscriminatorOutput` s
    (wave scales 1, 1/2, 1/4, then STFT)."""

    def __init__(self, channels: int = 16, max_channels: int = 256, stft_window: int = 1024,
                 stft_hop: int = 256, num_scales: int = 3) -> None:
        super().__init__()
        self.wave = MultiScaleWaveDiscriminator(num_scales, channels, max_channels)
        self.stft = STFTDiscriminator(channels, max_channels, stft_window, stft_hop)

    def forward(self, wave: torch.Tensor) -> list[DiscriminatorOutput]:
        return [*self.wave(wave), *self.stft(wave)]


# ----------------------------------------------------------------------------- losses
def _check_pairs(fn: str, real: Sequence, fake: Sequence) -> None:
    if len(real) != len(fake) or not real:
        raise ValueError(f"{fn}: real and fake must hold the same, non-zero number of "
                         f"discriminator outputs, got {len(real)} and {len(fake)}")


def discriminator_hinge_loss(real: Sequence[DiscriminatorOutput],
                             fake: Sequence[DiscriminatorOutput]) -> torch.Tensor:
    """``mean_k [ mean relu(1 - D_k(x)) + mean relu(1 + D_k(x_hat)) ]`` (scalar)."""
    _check_pairs("discriminator_hinge_loss", real, fake)
    terms = [F.relu(1.0 - r.logits).mean() + F.relu(1.0 + f.logits).mean()
             for r, f in zip(real, fake)]
    return torch.stack(terms).mean()


def generator_hinge_loss(fake: Sequence[DiscriminatorOutput]) -> torch.Tensor:
    """``mean_k mean relu(1 - D_k(x_hat))`` (scalar; SoundStream's generator loss)."""
    if not fake:
        raise ValueError("generator_hinge_loss: fake must hold at least one output")
    return torch.stack([F.relu(1.0 - f.logits).mean() for f in fake]).mean()


def feature_matching_loss(real: Sequence[DiscriminatorOutput],
                          fake: Sequence[DiscriminatorOutput]) -> torch.Tensor:
    """``mean_{k,l} mean |D_k^l(x) - D_k^l(x_hat)|`` over every discriminator ``k`` and
    layer ``l`` (scalar). The real features are detached: only the generator learns."""
    _check_pairs("feature_matching_loss", real, fake)
    terms = []
    for r, f in zip(real, fake):
        if len(r.features) != len(f.features):
            raise ValueError("feature_matching_loss: real and fake outputs have different "
                             "numbers of feature maps")
        terms.extend((a.detach() - b).abs().mean() for a, b in zip(r.features, f.features))
    return torch.stack(terms).mean()
