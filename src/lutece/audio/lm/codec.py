"""SoundStream: a causal convolutional audio codec with a residual-vector-quantized bottleneck,
the acoustic tokenizer of AudioLM, and its GAN training loop.

Zeghidour et al., "SoundStream: An End-to-End Neural Audio Codec" (2021, arXiv 2107.03312),
Sec. 3 and Fig. 3; Borsos et al., "AudioLM" (2022, arXiv 2209.03143) Sec. 3 for the preset.
The block structure below is our reading of SoundStream's Fig. 3 (the research notes verify
the strides, rates and RVQ sizes, not every kernel size); all widths are configurable.

- **Encoder**: a kernel-7 conv to ``C`` channels, then one block per stride ``s``: three
  residual units (kernel-7 conv with dilation 1, 3, 9, then a kernel-1 conv, ELU before each,
  with a skip connection) and a strided conv (kernel ``2 s``, stride ``s``) that doubles the
  width; a kernel-3 conv to the latent dimension ``D``. ``(batch, samples)`` ->
  ``(batch, frames, D)`` with ``frames = samples / hop``, ``hop = prod(strides)``.
- **Bottleneck**: :class:`~lutece.audio.lm.quantizers.ResidualVectorQuantizer`.
- **Decoder**: the mirror image, with transposed convs (kernel ``2 s``, stride ``s``)
  trimmed to ``s`` times their input length.
- **Causality** (``causal=True``): every conv is padded on the left only and every transposed
  conv is trimmed on the right, so output sample ``n`` depends only on input samples
  ``< (floor(n / hop) + 1) hop``: a frame's output depends on that frame's samples and the
  past, never on later frames (a streaming codec then has one hop of latency).
- **Spectral architecture** (``architecture="spectral"``, not causal): the same codec
  (bottleneck, losses, training, checkpoints) with an STFT encoder and an inverse-STFT
  decoder whose learned layers all run at the frame rate, Vocos-style
  (:mod:`lutece.audio.lm.codec_spectral`): about 3x cheaper per step and, in our CPU runs,
  faster to learn; ``fft_hops`` and ``spectral_blocks`` size it, ``C 2^len(strides)`` is
  its width (the waveform encoder's widest layer). Its decoder predicts either complex STFT
  frames (``spectral_output="complex"``) or magnitudes whose phase Griffin-Lim finds
  (``"magnitude"``, trained on the magnitude loss
  :func:`~lutece.audio.lm.codec_losses.spectral_magnitude_loss` instead of the mel loss):
  the latter learns far faster on a CPU (the module doc of ``codec_spectral`` has the numbers).
- **Preset**: AudioLM's acoustic tokenizer runs at 16 kHz with strides (2, 4, 5, 8) -> hop
  320 -> 50 Hz and ``Q = 12`` levels of ``N = 1024`` codes, i.e. 6000 bit/s
  (:class:`CodecConfig` defaults). ``C = 32`` and ``D = 128`` are our defaults; use small
  widths on a CPU.

:func:`train_codec` trains it with SoundStream's losses
(:mod:`lutece.audio.lm.codec_losses`): multi-scale mel reconstruction + RVQ commitment,
and, unless ``adversarial=False``, hinge adversarial and feature-matching losses from the
multi-scale wave and STFT discriminators. Stability guards (unstable GAN training of
SoundStream is a recurring complaint of audiolm-pytorch users: its issues #16, #61, #64,
#184, #221):
gradient clipping, a discriminator warm-up during which the generator ignores the
adversarial terms, and a NaN/inf check of every loss term and gradient norm that stops with
the step and the term named, before any optimizer step, so the last checkpoint on disk
(written atomically) is the last good one. Runs resume from ``checkpoint_dir``. Under
``torchrun`` it trains data-parallel (gradients averaged over ranks, rank 0 writes).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..._validation import (
    check_choice,
    check_finite,
    check_floating,
    check_int,
    check_tensor,
)
from ...train import (
    _truncate_log,
    atomic_save,
    distributed_context,
    load_tagged,
    resolve_device,
    seed_everything,
)
from . import codec_losses
from .codec_losses import (
    MEL_SCALES,
    CodecDiscriminator,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
)
from .codec_spectral import (
    SPECTRAL_OUTPUTS,
    SpectralDecoder,
    SpectralEncoder,
    centred_stft,
    spectral_lookahead,
)
from .quantizers import QuantizerOutput, ResidualVectorQuantizer

__all__ = ["CodecConfig", "SoundStream", "CodecOutput", "CodecTrainConfig",
           "CodecTrainResult", "train_codec", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "lutece.audio.lm.soundstream/1"
ARCHITECTURES = ("waveform", "spectral")
CHECKPOINT_NAME = "last.pt"
METRICS_NAME = "metrics.jsonl"


# ------------------------------------------------------------------------------ config
@dataclass
class CodecConfig:
    """Everything that defines a :class:`SoundStream`; stored in its checkpoints.

    Attributes:
        sample_rate: Hz of the waves it codes (16000, AudioLM).
        channels: ``C``, the width after the first conv; doubled by each encoder block (32).
        strides: the encoder's downsampling factors, in order ((2, 4, 5, 8): hop 320).
        latent_dim: ``D``, the size of a latent frame and of each codeword (128).
        num_levels: ``Q`` RVQ levels (12, AudioLM).
        codebook_size: ``N`` codes per level (1024, AudioLM).
        causal: left-only padding (True, SoundStream's streamable codec).
        architecture: ``"waveform"`` (SoundStream's, the default) or ``"spectral"``
            (frame-rate STFT encoder / iSTFT decoder; needs ``causal=False``).
        fft_hops, spectral_blocks: of the spectral architecture: STFT window of
            ``fft_hops`` hops (4) and residual blocks in each of its encoder and decoder (4).
        spectral_output, griffin_lim_iterations: of the spectral architecture: its decoder
            predicts ``"complex"`` STFT frames (the default) or ``"magnitude"``s, turned into
            a wave by ``griffin_lim_iterations`` (32) fast Griffin-Lim steps.
        dilations: of the three residual units of each block ((1, 3, 9), SoundStream).
        kernel_size: of the residual units' dilated convs and of the outer convs (7).
        commitment_weight, ema_decay, dead_code_threshold, quantizer_dropout, kmeans_init,
        kmeans_iterations: passed to :class:`ResidualVectorQuantizer` (its defaults).
    """

    sample_rate: int = 16000
    channels: int = 32
    strides: tuple[int, ...] = (2, 4, 5, 8)
    latent_dim: int = 128
    num_levels: int = 12
    codebook_size: int = 1024
    causal: bool = True
    architecture: str = "waveform"
    fft_hops: int = 4
    spectral_blocks: int = 4
    spectral_output: str = "complex"
    griffin_lim_iterations: int = 32
    dilations: tuple[int, ...] = (1, 3, 9)
    kernel_size: int = 7
    commitment_weight: float = 1.0
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0
    quantizer_dropout: bool = True
    kmeans_init: bool = True
    kmeans_iterations: int = 10

    def __post_init__(self) -> None:
        self.strides = tuple(self.strides)
        self.dilations = tuple(self.dilations)
        for name in ("sample_rate", "channels", "latent_dim", "num_levels", "codebook_size",
                     "kernel_size", "kmeans_iterations", "fft_hops", "spectral_blocks"):
            check_int("CodecConfig", name, getattr(self, name))
        for name in ("strides", "dilations"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                 for v in values):
                raise ValueError(f"CodecConfig: {name} must be a non-empty tuple of positive "
                                 f"ints, got {values!r}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"CodecConfig: architecture must be one of {ARCHITECTURES}, "
                             f"got {self.architecture!r}")
        if self.fft_hops < 3:
            raise ValueError(f"CodecConfig: fft_hops must be >= 3 (a Hann window's squared "
                             f"overlap sum is constant only from 3 hops per window), got "
                             f"{self.fft_hops}")
        check_int("CodecConfig", "griffin_lim_iterations", self.griffin_lim_iterations, 0)
        check_choice("CodecConfig", "spectral_output", self.spectral_output, SPECTRAL_OUTPUTS)
        if self.spectral_output != "complex" and self.architecture != "spectral":
            raise ValueError(f"CodecConfig: spectral_output={self.spectral_output!r} needs "
                             f"architecture='spectral' (the waveform decoder has no STFT head)")
        if self.architecture == "spectral" and self.causal:
            raise ValueError("CodecConfig: the spectral architecture is not causal (its "
                             "windows and convolutions look ahead); pass causal=False")

    @property
    def hop_length(self) -> int:
        """Samples per frame, the product of the strides."""
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        """Frames (RVQ code vectors) per second."""
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CodecConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"CodecConfig.from_dict: unknown field(s) {unknown}")
        return cls(**values)


def _config_differences(stored: CodecConfig, wanted: CodecConfig) -> str:
    return ", ".join(f"{f.name}: {getattr(stored, f.name)!r} vs {getattr(wanted, f.name)!r}"
                     for f in dataclasses.fields(CodecConfig)
                     if getattr(stored, f.name) != getattr(wanted, f.name))


# ------------------------------------------------------------------------------ layers
class _Conv1d(nn.Conv1d):
    """A conv with ``(kernel - 1) dilation + 1 - stride`` padding samples, all on the left
    when causal (half on each side otherwise): ``frames_out = frames_in / stride``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int = 1, dilation: int = 1, causal: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         dilation=dilation)
        total = (kernel_size - 1) * dilation + 1 - stride
        self.padding_left = total if causal else total // 2
        self.padding_right = total - self.padding_left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.padding_left, self.padding_right)))


class _ConvTranspose1d(nn.ConvTranspose1d):
    """Kernel ``2 s``, stride ``s``, trimmed from ``(T + 1) s`` to ``T s`` samples: the last
    ``s`` (causal: output ``n`` then depends on input frames ``<= n // s``) or split."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, causal: bool) -> None:
        super().__init__(in_channels, out_channels, 2 * stride, stride=stride)
        self.trim_left = 0 if causal else stride // 2
        self.trim_right = stride - self.trim_left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y[..., self.trim_left:y.shape[-1] - self.trim_right]


class _ResidualUnit(nn.Module):
    """``x + conv_1(elu(conv_k,dilated(elu(x))))`` (SoundStream Fig. 3)."""

    def __init__(self, channels: int, dilation: int, kernel_size: int, causal: bool) -> None:
        super().__init__()
        self.dilated = _Conv1d(channels, channels, kernel_size, dilation=dilation,
                               causal=causal)
        self.pointwise = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pointwise(F.elu(self.dilated(F.elu(x))))


def _encoder(config: CodecConfig) -> nn.Sequential:
    c, k, causal = config.channels, config.kernel_size, config.causal
    layers: list[nn.Module] = [_Conv1d(1, c, k, causal=causal)]
    for index, stride in enumerate(config.strides):
        width = c * 2**index
        layers.extend(_ResidualUnit(width, d, k, causal) for d in config.dilations)
        layers.extend([nn.ELU(), _Conv1d(width, 2 * width, 2 * stride, stride=stride,
                                         causal=causal)])
    layers.extend([nn.ELU(), _Conv1d(c * 2**len(config.strides), config.latent_dim, 3,
                                     causal=causal)])
    return nn.Sequential(*layers)


def _decoder(config: CodecConfig) -> nn.Sequential:
    c, k, causal, depth = config.channels, config.kernel_size, config.causal, len(config.strides)
    layers: list[nn.Module] = [_Conv1d(config.latent_dim, c * 2**depth, k, causal=causal)]
    for index, stride in enumerate(reversed(config.strides)):
        width = c * 2**(depth - index - 1)
        layers.extend([nn.ELU(), _ConvTranspose1d(2 * width, width, stride, causal)])
        layers.extend(_ResidualUnit(width, d, k, causal) for d in config.dilations)
    layers.extend([nn.ELU(), _Conv1d(c, 1, k, causal=causal)])
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class CodecOutput:
    """What :meth:`SoundStream.forward` returns.

    Attributes:
        reconstruction: the decoded wave, the input's shape (None when a magnitude head was
            asked not to synthesize it).
        codes: ``(batch, frames, n_q)`` int64 (``n_q`` levels used).
        commitment_loss: scalar, the RVQ's weighted commitment loss.
        quantizer: the full :class:`QuantizerOutput` (perplexity and usage per level).
        magnitude: ``(batch, frames, n_fft / 2 + 1)``, the decoder's predicted STFT
            magnitudes when ``spectral_output="magnitude"``, else None.
    """

    reconstruction: torch.Tensor | None
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    quantizer: QuantizerOutput
    magnitude: torch.Tensor | None = None


class SoundStream(nn.Module):
    """The codec (see the module doc). ``SoundStream(CodecConfig(...))``.

    Args:
        config: the architecture; stored as ``self.config`` and in checkpoints.
        generator: passed to the quantizer (k-means seeds, dead-code draws, dropout draws).
    """

    def __init__(self, config: CodecConfig | None = None, *,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else CodecConfig()
        if not isinstance(self.config, CodecConfig):
            raise TypeError(f"SoundStream: config must be a CodecConfig, "
                            f"got {type(self.config).__name__}")
        cfg = self.config
        if cfg.architecture == "spectral":
            width = cfg.channels * 2**len(cfg.strides)
            self.encoder = SpectralEncoder(cfg.hop_length, cfg.fft_hops, width,
                                           cfg.spectral_blocks, cfg.latent_dim)
        else:
            self.encoder = _encoder(cfg)
        self.quantizer = ResidualVectorQuantizer(
            cfg.latent_dim, cfg.num_levels, cfg.codebook_size, decay=cfg.ema_decay,
            commitment_weight=cfg.commitment_weight, kmeans_init=cfg.kmeans_init,
            kmeans_iterations=cfg.kmeans_iterations,
            dead_code_threshold=cfg.dead_code_threshold,
            quantizer_dropout=cfg.quantizer_dropout, generator=generator)
        if cfg.architecture == "spectral":
            self.decoder = SpectralDecoder(cfg.hop_length, cfg.fft_hops, width,
                                           cfg.spectral_blocks, cfg.latent_dim,
                                           cfg.spectral_output, cfg.griffin_lim_iterations)
        else:
            self.decoder = _decoder(cfg)

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"sample_rate={cfg.sample_rate}, strides={cfg.strides}, hop={self.hop_length}, "
                f"frame_rate={self.frame_rate:g} Hz, levels={cfg.num_levels}x"
                f"{cfg.codebook_size}, causal={cfg.causal}, architecture={cfg.architecture}")

    @property
    def hop_length(self) -> int:
        """Samples per frame (``prod(strides)``; 320 for the AudioLM preset)."""
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        """Frames per second (50.0 Hz for the AudioLM preset)."""
        return self.config.frame_rate

    @property
    def lookahead_samples(self) -> int | None:
        """``L`` such that output sample ``n`` never depends on input samples ``>= n + L``:
        one hop when causal (a frame's output waits for its last sample), the bound of
        :func:`~lutece.audio.lm.codec_spectral.spectral_lookahead` for the spectral
        architecture, None for a non-causal waveform codec (not computed)."""
        cfg = self.config
        if cfg.architecture == "spectral":
            iterations = cfg.griffin_lim_iterations if cfg.spectral_output == "magnitude" else 0
            return spectral_lookahead(cfg.hop_length, cfg.fft_hops, cfg.spectral_blocks,
                                      iterations)
        return cfg.hop_length if cfg.causal else None

    def bitrate(self, levels: int | None = None) -> float:
        """Bits per second with the first ``levels`` levels (all by default):
        ``levels * log2(codebook_size) * frame_rate`` (6000 for the AudioLM preset)."""
        if levels is None:
            levels = self.config.num_levels
        self.quantizer._check_levels("SoundStream.bitrate", levels, self.config.num_levels)
        return levels * math.log2(self.config.codebook_size) * self.frame_rate

    # --------------------------------------------------------------------- checks
    def _check_wave(self, fn: str, wave: object) -> torch.Tensor:
        check_tensor(fn, "wave", wave)
        if not (wave.ndim == 2 or (wave.ndim == 3 and wave.shape[1] == 1)):
            raise ValueError(f"{fn}: wave must have shape (batch, samples) or "
                             f"(batch, 1, samples), got {tuple(wave.shape)}")
        check_floating(fn, "wave", wave)
        check_finite(fn, "wave", wave)
        samples = wave.shape[-1]
        if samples < self.hop_length:
            raise ValueError(
                f"{fn}: wave has {samples} samples, fewer than one hop ({self.hop_length} "
                f"samples = {1000 * self.hop_length / self.config.sample_rate:g} ms at "
                f"{self.config.sample_rate} Hz), the shortest input the codec can code")
        return wave.reshape(wave.shape[0], samples)

    def _latent(self, fn: str, wave: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, D)`` latents; the wave is zero-padded to whole frames."""
        pad = (-wave.shape[-1]) % self.hop_length
        latent = self.encoder(F.pad(wave, (0, pad))[:, None]).transpose(1, 2)
        if not bool(torch.isfinite(latent).all()):
            raise FloatingPointError(f"{fn}: the encoder output contains NaN or inf (the "
                                     f"codec's weights have diverged)")
        return latent

    # ----------------------------------------------------------------- public API
    def encode(self, wave: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Codes ``(batch, frames, levels)`` int64 of ``wave (batch, samples)`` (or
        ``(batch, 1, samples)``) at ``config.sample_rate``; ``frames = ceil(samples / hop)``
        (the last frame is zero-padded). Never updates the codebooks."""
        fn = "SoundStream.encode"
        wave = self._check_wave(fn, wave)
        with torch.no_grad():
            return self.quantizer.encode(self._latent(fn, wave), levels)

    def decode(self, codes: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Wave ``(batch, frames * hop)`` from ``codes (batch, frames, L)``, with the first
        ``levels`` (default ``L``) levels: the bitrate-scalable decoder."""
        quantized = self.quantizer.decode(codes, levels)
        return self.decoder(quantized.transpose(1, 2))[:, 0]

    def forward(self, wave: torch.Tensor, levels: int | None = None, *,
                synthesize: bool = True) -> CodecOutput:
        """Encode, quantize (with quantizer dropout in training when ``levels`` is None) and
        decode ``wave (batch, samples)`` or ``(batch, 1, samples)``; the reconstruction has
        the input's shape. ``synthesize=False`` skips a magnitude head's Griffin-Lim (its
        ``reconstruction`` is then None; :func:`train_codec` needs no wave on its steps
        without a discriminator); other decoders ignore it."""
        fn = "SoundStream.forward"
        shape = wave.shape if isinstance(wave, torch.Tensor) else None
        wave = self._check_wave(fn, wave)
        quantized = self.quantizer(self._latent(fn, wave), levels)
        latent = quantized.quantized.transpose(1, 2)
        magnitude = None
        if self.config.spectral_output == "magnitude":
            magnitude = self.decoder.magnitude(latent)
            decoded = self.decoder.synthesize(magnitude) if synthesize else None
        else:
            decoded = self.decoder(latent)
        if decoded is not None:
            decoded = decoded[:, 0, :wave.shape[-1]].reshape(shape)
        return CodecOutput(reconstruction=decoded, codes=quantized.codes,
                           commitment_loss=quantized.commitment_loss, quantizer=quantized,
                           magnitude=magnitude)

    def reconstruction_loss(self, output: CodecOutput, wave: torch.Tensor,
                            config: CodecTrainConfig) -> tuple[str, torch.Tensor]:
        """``(name, scalar)``: the reconstruction term of :func:`train_codec` for ``output``
        of :meth:`forward` on ``wave (batch, samples)``: SoundStream's multi-scale mel loss
        on the decoded wave (``"mel"``), or, for a magnitude-predicting spectral decoder,
        :func:`~lutece.audio.lm.codec_losses.spectral_magnitude_loss` between its magnitudes
        and the input's own STFT magnitudes (``"magnitude"``, ``config.n_mels`` bands)."""
        wave = wave.reshape(wave.shape[0], wave.shape[-1])
        if output.magnitude is None:
            return "mel", codec_losses.multiscale_mel_loss(
                output.reconstruction, wave, self.config.sample_rate, config.mel_scales,
                config.n_mels, config.log_floor)
        pad = (-wave.shape[-1]) % self.hop_length
        target = centred_stft(F.pad(wave, (0, pad)), self.hop_length, self.decoder.window).abs()
        return "magnitude", codec_losses.spectral_magnitude_loss(
            output.magnitude, target, self.config.sample_rate, config.n_mels)

    # ---------------------------------------------------------------- checkpoints
    def save(self, path: str | Path, **extra: Any) -> Path:
        """Write the config and weights (plus ``extra``) atomically to ``path``."""
        atomic_save({"format": CHECKPOINT_FORMAT, "config": self.config.to_dict(),
                     "state_dict": self.state_dict(), **extra}, path)
        return Path(path)

    @staticmethod
    def _read(fn: str, path: str | Path) -> dict[str, Any]:
        return load_tagged(fn, path, CHECKPOINT_FORMAT, "SoundStream checkpoint")

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: CodecConfig | None = None
                        ) -> SoundStream:
        """The codec stored at ``path`` (by :meth:`save` or :func:`train_codec`), in eval
        mode on CPU. When ``config`` is given, a checkpoint of another configuration is an
        error that lists the differing fields."""
        fn = "SoundStream.from_checkpoint"
        payload = cls._read(fn, path)
        stored = CodecConfig.from_dict(payload["config"])
        if config is not None and stored != config:
            raise ValueError(f"{fn}: '{path}' holds a codec of another configuration "
                             f"(stored vs expected: {_config_differences(stored, config)})")
        model = cls(stored)
        model.load_state_dict(payload["state_dict"])
        return model.eval()

    def load_checkpoint(self, path: str | Path) -> SoundStream:
        """Load the weights stored at ``path`` into this codec; the checkpoint's config must
        equal ``self.config`` (else a ValueError lists the differing fields)."""
        fn = "SoundStream.load_checkpoint"
        payload = self._read(fn, path)
        stored = CodecConfig.from_dict(payload["config"])
        if stored != self.config:
            raise ValueError(f"{fn}: '{path}' holds a codec of another configuration "
                             f"(stored vs this codec: {_config_differences(stored, self.config)})")
        self.load_state_dict(payload["state_dict"])
        return self


# ---------------------------------------------------------------------------- training
@dataclass
class CodecTrainConfig:
    """Everything that defines a :func:`train_codec` run; stored in its checkpoints.

    Attributes:
        steps: generator steps to reach (a resumed run continues up to it).
        batch_size: crops per step and per process (under ``torchrun``, ``W`` processes
            make a step of ``W batch_size`` crops).
        segment_samples: crop length (a multiple of the codec's hop; shorter waves are
            zero-padded).
        learning_rate, discriminator_learning_rate: Adam step sizes (2e-4: audiolm-pytorch
            lowered its SoundStream default to this after GAN collapse, its issue #64).
        betas: Adam's (0.5, 0.9), a usual GAN choice (EnCodec's, as we recall it).
        grad_clip: max global gradient norm of each network, or None (1.0).
        adversarial: train with the discriminators (False: mel + commitment only, the
            quick mode).
        discriminator_warmup: steps during which the discriminator trains but the
            generator ignores the adversarial and feature-matching terms (1000: our choice,
            not a published value).
        discriminator_start: steps of reconstruction only, before the discriminator is
            even run (0; at most ``discriminator_warmup``): the discriminator trains on
            steps ``> discriminator_start``, the generator uses it on steps
            ``> discriminator_warmup``. A discriminator step costs several codec steps on a
            CPU, so a long reconstruction-only phase is cheap only with it (Parallel
            WaveGAN's ``discriminator_train_start_steps``, Yamamoto et al., 2020).
        reconstruction_weight, adversarial_weight, feature_matching_weight: 1, 1, 100
            (audiolm-pytorch's defaults for SoundStream; the paper's exact lambda values
            are not verified in our research notes).
        mel_scales, n_mels, log_floor: of the reconstruction loss (2^6..2^11, 64 bins,
            mel magnitudes floored at 1e-5 before the log; see
            :func:`~lutece.audio.lm.codec_losses.multiscale_mel_loss` for when to raise it).
            A magnitude-predicting spectral codec uses
            :func:`~lutece.audio.lm.codec_losses.spectral_magnitude_loss` with ``n_mels``
            instead (:meth:`SoundStream.reconstruction_loss`); it is about 100 times
            smaller than the mel loss, so raise ``reconstruction_weight`` with it when
            training adversarially.
        discriminator_channels, stft_window, stft_hop: of :class:`CodecDiscriminator`.
        seed: seeds the crops of each step (and rank) and the global RNG (quantizer
            dropout, k-means seeds, dead-code draws; the same on every rank).
        device, checkpoint_dir, checkpoint_every, log_every, progress: as
            :class:`lutece.train.TrainConfig`.
    """

    steps: int = 1000
    batch_size: int = 8
    segment_samples: int = 8000
    learning_rate: float = 2e-4
    discriminator_learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    grad_clip: float | None = 1.0
    adversarial: bool = True
    discriminator_warmup: int = 1000
    discriminator_start: int = 0
    reconstruction_weight: float = 1.0
    adversarial_weight: float = 1.0
    feature_matching_weight: float = 100.0
    mel_scales: tuple[int, ...] = MEL_SCALES
    n_mels: int = 64
    log_floor: float = codec_losses.LOG_FLOOR
    discriminator_channels: int = 16
    stft_window: int = 1024
    stft_hop: int = 256
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str | None = None
    checkpoint_every: int = 100
    log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.mel_scales = tuple(self.mel_scales)
        for name in ("steps", "batch_size", "segment_samples", "checkpoint_every", "log_every",
                     "n_mels", "discriminator_channels", "stft_window", "stft_hop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CodecTrainConfig: {name} must be a positive int, "
                                 f"got {value!r}")
        if self.discriminator_warmup < 0:
            raise ValueError(f"CodecTrainConfig: discriminator_warmup must be >= 0, "
                             f"got {self.discriminator_warmup}")
        if not 0 <= self.discriminator_start <= self.discriminator_warmup:
            raise ValueError(f"CodecTrainConfig: discriminator_start must be in [0, "
                             f"discriminator_warmup = {self.discriminator_warmup}], got "
                             f"{self.discriminator_start}")
        for name in ("learning_rate", "discriminator_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"CodecTrainConfig: {name} must be > 0, "
                                 f"got {getattr(self, name)}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"CodecTrainConfig: grad_clip must be > 0 or None, "
                             f"got {self.grad_clip}")
        if not self.mel_scales:
            raise ValueError("CodecTrainConfig: mel_scales must name at least one window")
        codec_losses._check_log_floor("CodecTrainConfig", self.log_floor)


@dataclass
class CodecTrainResult:
    """What :func:`train_codec` returns: the trained codec (and discriminator, None when not
    adversarial) and one metrics dict per step of this run."""

    codec: SoundStream
    discriminator: CodecDiscriminator | None
    steps: int
    resumed_from: int | None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _wave_at(waves: Any, index: int) -> torch.Tensor:
    item = waves[index]
    if isinstance(item, (tuple, list)):  # e.g. AudioFolder's (wave, label)
        item = item[0]
    wave = torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item)
    if wave.ndim == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if wave.ndim != 1 or not wave.is_floating_point():
        raise ValueError(f"train_codec: example {index} must be a mono floating-point wave "
                         f"(samples,), got shape {tuple(wave.shape)} and dtype {wave.dtype}")
    return wave


def _crop_seed(seed: int, step: int, rank: int) -> int:
    """The seed of rank ``rank``'s crops at step ``step``: ``seed * 1_000_003 + step`` on rank
    0 (so a one-process run draws the crops it always drew), a 64-bit hash of ``(seed, step,
    rank)`` on the others."""
    if rank == 0:
        return seed * 1_000_003 + step
    sequence = np.random.SeedSequence([seed % 2**64, step, rank])
    return int(sequence.generate_state(1, np.uint64)[0])


def _crops(waves: Any, step: int, config: CodecTrainConfig, rank: int = 0) -> torch.Tensor:
    """The batch of step ``step`` on rank ``rank``: random crops drawn from a generator seeded
    by (seed, step, rank), so a resumed run sees exactly the crops of an uninterrupted one."""
    generator = torch.Generator().manual_seed(_crop_seed(config.seed, step, rank))
    picks = torch.randint(len(waves), (config.batch_size,), generator=generator)
    length = config.segment_samples
    batch = []
    for index in picks.tolist():
        wave = _wave_at(waves, index).float()
        if wave.shape[0] >= length:
            start = int(torch.randint(wave.shape[0] - length + 1, (1,), generator=generator))
            batch.append(wave[start:start + length])
        else:
            batch.append(F.pad(wave, (0, length - wave.shape[0])))
    return torch.stack(batch)


class _Guard:
    """Stops a run on the first non-finite loss term or gradient norm, naming both.

    In one process :meth:`check` raises at once. Under ``torchrun`` it only notes the
    failure, and :meth:`agree` (called by every rank at the same points, before each backward
    and each optimizer step) raises on every rank when any rank noted one, naming the lowest
    such rank's: no rank is left waiting in a collective for one that stopped.
    """

    def __init__(self, checkpoint_path: Path | None, world_size: int = 1,
                 device: torch.device | None = None) -> None:
        self.checkpoint_path = checkpoint_path
        self.saved_step: int | None = None
        self.world_size = world_size
        self.device = device
        self.failure: tuple[int, str, float] | None = None

    def where(self) -> str:
        if self.checkpoint_path is None:
            return "no checkpoint_dir was given, so nothing was saved"
        if self.saved_step is None:
            return "no checkpoint had been written yet"
        return (f"the last good checkpoint (step {self.saved_step}) is kept at "
                f"'{self.checkpoint_path}'")

    def error(self, step: int, name: str, value: float, rank: int | None = None
              ) -> FloatingPointError:
        on = "" if rank is None else f" on rank {rank}"
        return FloatingPointError(
            f"train_codec: the {name} is {value} at step {step}{on}; stopped before the "
            f"optimizer step; {self.where()}. Lower the learning rate, clip gradients "
            f"(grad_clip) or lengthen discriminator_warmup, then resume")

    def check(self, step: int, name: str, value: torch.Tensor) -> None:
        """Note (in one process: raise) ``value`` if it is NaN or inf."""
        if self.failure is None and not bool(torch.isfinite(value)):
            self.failure = (step, name, float(value.detach()))
            if self.world_size == 1:
                raise self.error(*self.failure)

    def agree(self) -> None:
        """Under torchrun, raise on every rank if any rank noted a failure (a collective)."""
        if self.world_size == 1:
            return
        flag = torch.tensor([float(self.failure is not None)], device=self.device)
        dist.all_reduce(flag)
        if not float(flag):
            return
        failures: list[Any] = [None] * self.world_size
        dist.all_gather_object(failures, self.failure)
        rank, failure = next((r, f) for r, f in enumerate(failures) if f is not None)
        raise self.error(*failure, rank=rank)


# Gradients are averaged by an explicit all-reduce rather than DistributedDataParallel: the
# discriminator runs three forwards per step and also receives (then drops) gradients from
# the generator's loss, which DDP's one-forward-one-backward reducer does not support; and
# DDP would broadcast the codec's buffers from rank 0 at every forward, while the quantizer
# keeps its codebooks equal on all ranks itself (lutece.audio.lm.quantizers). (The
# CodecOutput dataclass the codec returns would not be the obstacle: DDP walks dataclasses.)
# One flat all-reduce per network and step is what DDP's bucketing would amount to here.
def _average_gradients(parameters: Any, world_size: int) -> None:
    """Replace each ``.grad`` by its mean over the ``world_size`` ranks (one flat all-reduce;
    a parameter without a gradient on some ranks counts as zero there, one without a
    gradient on every rank keeps none). Every rank then holds bitwise the same gradients."""
    parameters = [p for p in parameters if p.requires_grad]
    if world_size == 1 or not parameters:
        return
    has_grad = torch.tensor([float(p.grad is not None) for p in parameters],
                            device=parameters[0].device)
    dist.all_reduce(has_grad)
    used = [p for p, count in zip(parameters, has_grad.tolist()) if count > 0]
    if not used:
        return
    for parameter in used:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    flat = torch.cat([p.grad.reshape(-1) for p in used])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for parameter in used:
        parameter.grad.copy_(flat[offset:offset + parameter.numel()].view_as(parameter))
        offset += parameter.numel()


def _average_metrics(metrics: dict[str, Any], world_size: int, device: torch.device) -> None:
    """Average the loss values of ``metrics`` over ranks, in place (``step`` and ``levels``
    are the same on every rank)."""
    if world_size == 1:
        return
    names = [name for name in metrics if name not in ("step", "levels")]
    values = torch.tensor([metrics[name] for name in names], dtype=torch.float64,
                          device=device)
    dist.all_reduce(values)
    metrics.update(zip(names, (values / world_size).tolist()))


def _broadcast_module(module: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (the ranks may have built or
    initialized the module differently)."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.dtype == torch.bool:  # not every backend broadcasts bools
                carrier = tensor.to(torch.uint8)
                dist.broadcast(carrier, src=0)
                tensor.copy_(carrier.bool())
            else:
                dist.broadcast(tensor, src=0)


def _same_on_every_rank(fn: str, flag: bool, what: str, world_size: int,
                        device: torch.device) -> bool:
    """``flag``, after checking that every rank has the same one."""
    if world_size == 1:
        return flag
    count = torch.tensor([float(flag)], device=device)
    dist.all_reduce(count)
    if int(count) not in (0, world_size):
        raise ValueError(f"{fn}: {what} on {int(count)} of {world_size} ranks; under "
                         f"torchrun every rank must see the same checkpoint_dir (a shared "
                         f"folder)")
    return flag


def train_codec(codec: SoundStream, waves: Any, config: CodecTrainConfig, *,
                callbacks: Sequence[Callable[[int, dict[str, float]], None]] = ()
                ) -> CodecTrainResult:
    """Train ``codec`` on random crops of ``waves`` for ``config.steps`` steps, resuming from
    ``config.checkpoint_dir/last.pt`` if it exists.

    Args:
        codec: a :class:`SoundStream`, moved to the run's device.
        waves: a map-style collection of mono waves at ``codec.config.sample_rate``
            (``(samples,)`` tensors or arrays, or ``(wave, anything)`` pairs such as
            :class:`lutece.audio.AudioFolder` items), or a ``(count, samples)`` tensor.
        config: see :class:`CodecTrainConfig`.
        callbacks: ``callback(step, metrics)`` after each step (on every rank).

    Each step: the generator loss ``rec_w * L_mel + L_commit`` (``+ adv_w * L_G + feat_w *
    L_feat`` once ``step >= discriminator_warmup``) is checked for NaN/inf term by term,
    back-propagated, clipped and applied; then (adversarial runs) the discriminator's hinge
    loss on the real crop and the detached reconstruction, likewise. The logged metrics are
    ``mel``, ``commitment``, ``generator``, ``levels`` and, when adversarial,
    ``adversarial``, ``feature_matching``, ``discriminator``.

    Distributed: launched by ``torchrun --nproc_per_node=W`` (a process group is joined as
    by :func:`lutece.train.train`, gloo on CPU, nccl on GPU), rank ``r`` draws its own
    ``batch_size`` crops per step (seeded by (seed, step, r); rank 0's are those of a
    one-process run), rank 0's codec and discriminator weights are broadcast at the start,
    and both networks' gradients are averaged over the ranks before clipping, so every rank
    holds the same weights, codebooks (see :mod:`~lutece.audio.lm.quantizers`) and optimizer
    states after every step. The metrics (history, callbacks, log) are averaged over the
    ranks. Only rank 0 writes the checkpoint and ``metrics.jsonl`` and shows the progress
    bar; every rank resumes from the checkpoint. A non-finite value on any rank stops every
    rank with the same error. The process group is destroyed at the end only if this call
    created it.

    A loop of its own (two optimizers do not fit :func:`lutece.train.train`); it reuses
    its ``seed_everything``, ``resolve_device``, ``distributed_context`` and
    ``atomic_save``.
    """
    fn = "train_codec"
    if not isinstance(codec, SoundStream):
        raise TypeError(f"{fn}: codec must be a SoundStream, got {type(codec).__name__}")
    if not isinstance(config, CodecTrainConfig):
        raise TypeError(f"{fn}: config must be a CodecTrainConfig, got {type(config).__name__}")
    if not hasattr(waves, "__len__") or not hasattr(waves, "__getitem__") or not len(waves):
        raise ValueError(f"{fn}: waves must be a non-empty map-style collection of waves")
    if config.segment_samples % codec.hop_length:
        raise ValueError(f"{fn}: segment_samples must be a multiple of the codec's hop "
                         f"({codec.hop_length}), got {config.segment_samples}")
    device = resolve_device(config.device)
    dist_info = distributed_context(device)
    try:
        return _codec_loop(codec, waves, config, callbacks, device, dist_info.rank,
                           dist_info.world_size)
    finally:
        if dist_info.initialized_here:
            dist.destroy_process_group()


def _codec_loop(codec: SoundStream, waves: Any, config: CodecTrainConfig,
                callbacks: Sequence[Callable[[int, dict[str, float]], None]],
                device: torch.device, rank: int, world_size: int) -> CodecTrainResult:
    """The loop of :func:`train_codec`, as rank ``rank`` of ``world_size`` (the process
    group, if any, is up)."""
    fn = "train_codec"
    is_main = rank == 0
    if world_size > 1 and device.type == "cuda":
        torch.cuda.set_device(device)  # nccl's object collectives use the current device
    # The same seed on every rank (lutece.train uses seed + rank): the global RNG drives the
    # quantizer's draws, which the ranks must share (and which it broadcasts from rank 0).
    seed_everything(config.seed)
    codec.to(device)
    discriminator = None
    discriminator_optimizer = None
    if config.adversarial:
        discriminator = CodecDiscriminator(config.discriminator_channels,
                                           stft_window=config.stft_window,
                                           stft_hop=config.stft_hop).to(device)
        discriminator_optimizer = torch.optim.Adam(discriminator.parameters(),
                                                   config.discriminator_learning_rate,
                                                   betas=config.betas)
    optimizer = torch.optim.Adam(codec.parameters(), config.learning_rate, betas=config.betas)
    checkpoint_dir = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    checkpoint_path = checkpoint_dir / CHECKPOINT_NAME if checkpoint_dir else None
    log_path = checkpoint_dir / METRICS_NAME if checkpoint_dir else None
    guard = _Guard(checkpoint_path, world_size, device)

    start_step, resumed_from = 0, None
    if checkpoint_path is not None and _same_on_every_rank(
            fn, checkpoint_path.exists(), f"'{checkpoint_path}' exists", world_size, device):
        payload = SoundStream._read(fn, checkpoint_path)
        stored = CodecConfig.from_dict(payload["config"])
        if stored != codec.config:
            raise ValueError(f"{fn}: '{checkpoint_path}' holds a codec of another "
                             f"configuration (stored vs given: "
                             f"{_config_differences(stored, codec.config)}); use another "
                             f"checkpoint_dir or the stored configuration")
        codec.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(payload["optimizer"])
        if discriminator is not None and payload.get("discriminator") is not None:
            discriminator.load_state_dict(payload["discriminator"])
            discriminator_optimizer.load_state_dict(payload["discriminator_optimizer"])
        torch.set_rng_state(payload["rng"])
        if payload.get("quantizer_rng") is not None and codec.quantizer.generator is not None:
            codec.quantizer.generator.set_state(payload["quantizer_rng"])
        start_step = resumed_from = guard.saved_step = int(payload["step"])
        if log_path is not None and is_main:
            _truncate_log(log_path, start_step)
    if world_size > 1:
        _broadcast_module(codec)
        if discriminator is not None:
            _broadcast_module(discriminator)

    def save(step: int) -> None:
        if checkpoint_path is None or step == guard.saved_step:
            return
        if is_main:  # the state is the same on every rank
            generator = codec.quantizer.generator
            atomic_save({
                "format": CHECKPOINT_FORMAT, "config": codec.config.to_dict(),
                "state_dict": codec.state_dict(), "optimizer": optimizer.state_dict(),
                "discriminator": discriminator.state_dict() if discriminator else None,
                "discriminator_optimizer": (discriminator_optimizer.state_dict()
                                            if discriminator_optimizer else None),
                "step": step, "rng": torch.get_rng_state(),
                "quantizer_rng": generator.get_state() if generator is not None else None,
                "train_config": dataclasses.asdict(config), "world_size": world_size,
            }, checkpoint_path)
        guard.saved_step = step

    def clip(parameters: Any, step: int, name: str) -> None:
        parameters = list(parameters)
        _average_gradients(parameters, world_size)
        norm = torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip or math.inf)
        guard.check(step, f"gradient norm of the {name} loss", norm)
        guard.agree()

    history: list[dict[str, float]] = []
    started = time.perf_counter()
    finished_step, in_step = start_step, False
    bar = tqdm(total=config.steps, initial=start_step, desc="train_codec", dynamic_ncols=True,
               disable=not (config.progress and is_main))
    log_file = None
    if log_path is not None and is_main:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log_path, "a")  # noqa: SIM115 - closed in the finally below
    codec.train()
    if discriminator is not None:
        discriminator.train()
    try:
        for step in range(start_step + 1, config.steps + 1):  # 1-based, as logged
            in_step = True
            real = _crops(waves, step - 1, config, rank).to(device)
            try:
                # Under torchrun a rank that fails here leaves the others in the quantizer's
                # collectives until torchrun ends them; the weights are the same on every
                # rank, so a diverged encoder fails on all of them at once.
                discriminating = discriminator is not None and step > config.discriminator_start
                output = codec(real, synthesize=discriminating)
            except FloatingPointError as error:
                raise FloatingPointError(f"{fn}: step {step}: {error}; {guard.where()}") \
                    from error
            fake = output.reconstruction
            term, reconstruction = codec.reconstruction_loss(output, real, config)
            guard.check(step, f"{term} reconstruction loss", reconstruction)
            guard.check(step, "commitment loss", output.commitment_loss)
            generator_loss = (config.reconstruction_weight * reconstruction
                              + output.commitment_loss)
            metrics = {"step": step, term: float(reconstruction.detach()),
                       "commitment": float(output.commitment_loss.detach()),
                       "levels": output.codes.shape[-1]}
            real_outputs = None
            if discriminating:
                real_outputs = discriminator(real)
                if step > config.discriminator_warmup:
                    fake_outputs = discriminator(fake)
                    adversarial = generator_hinge_loss(fake_outputs)
                    matching = feature_matching_loss(real_outputs, fake_outputs)
                    guard.check(step, "adversarial (generator hinge) loss", adversarial)
                    guard.check(step, "feature-matching loss", matching)
                    generator_loss = (generator_loss + config.adversarial_weight * adversarial
                                      + config.feature_matching_weight * matching)
                    metrics.update(adversarial=float(adversarial.detach()),
                                   feature_matching=float(matching.detach()))
            guard.check(step, "generator loss", generator_loss)
            guard.agree()
            optimizer.zero_grad(set_to_none=True)
            generator_loss.backward()
            clip(codec.parameters(), step, "generator")
            if discriminating:
                discriminator_loss = discriminator_hinge_loss(real_outputs,
                                                              discriminator(fake.detach()))
                guard.check(step, "discriminator (hinge) loss", discriminator_loss)
                guard.agree()
                discriminator_optimizer.zero_grad(set_to_none=True)
                discriminator_loss.backward()
                clip(discriminator.parameters(), step, "discriminator")
                discriminator_optimizer.step()
                metrics["discriminator"] = float(discriminator_loss.detach())
            optimizer.step()
            metrics["generator"] = float(generator_loss.detach())
            finished_step, in_step = step, False
            _average_metrics(metrics, world_size, device)
            history.append(metrics)
            bar.update(1)
            bar.set_postfix({term: f"{metrics[term]:.4g}"})
            if log_file is not None and (step % config.log_every == 0 or step == config.steps):
                log_file.write(json.dumps({**metrics,
                                           "seconds": time.perf_counter() - started}) + "\n")
                log_file.flush()
            if step % config.checkpoint_every == 0:
                save(step)
            for callback in callbacks:
                callback(step, metrics)
        save(finished_step)
        if world_size > 1:
            dist.barrier()  # the checkpoint is on disk when any rank returns
    except KeyboardInterrupt:
        if not in_step:  # mid-step the weights or EMA codebooks may be half-updated
            save(finished_step)  # no collective: rank 0 writes the state every rank holds
        raise
    finally:
        bar.close()
        if log_file is not None:
            log_file.close()
    return CodecTrainResult(codec=codec, discriminator=discriminator, steps=finished_step,
                            resumed_from=resumed_from, history=history,
                            seconds=time.perf_counter() - started)
