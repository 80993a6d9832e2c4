"""Codec quality metrics: SI-SNR, log-mel distance and (when installed) PESQ.

- SI-SNR: Le Roux et al., "SDR - half-baked or well done?" (ICASSP 2019), Eq. (the
  scale-invariant SNR): with zero-mean ``s`` (reference) and ``s_hat`` (estimate),
  ``s_t = (<s_hat, s> / ||s||^2) s``, ``e = s_hat - s_t`` and
  ``SI-SNR = 10 log10(||s_t||^2 / ||e||^2)`` dB.
- Log-mel distance: the mean absolute difference of natural-log mel spectrograms (64 HTK
  bands, 1024-point STFT, hop 256), the spectral distance codec papers report next to
  SI-SNR.
- PESQ (ITU-T P.862): from the ``pesq`` PyPI package, imported only when called.
"""

from __future__ import annotations

import torch

from ..._validation import check_finite, check_floating, check_tensor
from .codec_losses import LOG_FLOOR, mel_spectrogram

__all__ = ["si_snr", "log_mel_distance", "pesq_score"]


def _check_pair(fn: str, estimate: object, reference: object) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    for name, value in (("estimate", estimate), ("reference", reference)):
        check_tensor(fn, name, value, min_ndim=1)
        check_floating(fn, name, value)
        check_finite(fn, name, value)
    if estimate.shape != reference.shape:
        raise ValueError(f"{fn}: estimate and reference must have the same shape, got "
                         f"{tuple(estimate.shape)} and {tuple(reference.shape)}")
    return estimate, reference


def si_snr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8
           ) -> torch.Tensor:
    """Scale-invariant signal-to-noise ratio in dB, ``(...,)`` for inputs ``(..., samples)``.

    Both signals are made zero-mean; ``eps`` keeps silent references and perfect estimates
    finite. Invariant to rescaling the estimate by any positive factor.
    """
    estimate, reference = _check_pair("si_snr", estimate, reference)
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (
        reference.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * reference
    noise = estimate - target
    return 10.0 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def log_mel_distance(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int,
                     n_fft: int = 1024, hop_length: int = 256, n_mels: int = 64
                     ) -> torch.Tensor:
    """``mean |log S(estimate) - log S(reference)|`` per signal, ``(batch,)``, for inputs
    ``(batch, samples)``; ``S`` is :func:`~lutece.audio.lm.codec_losses.mel_spectrogram`
    (log floored at 1e-5). 0 for identical signals."""
    fn = "log_mel_distance"
    estimate, reference = _check_pair(fn, estimate, reference)
    if estimate.ndim != 2:
        raise ValueError(f"{fn}: inputs must have shape (batch, samples), got "
                         f"{tuple(estimate.shape)}")
    log_estimate = torch.log(mel_spectrogram(estimate, sample_rate, n_fft, hop_length,
                                             n_mels).clamp(min=LOG_FLOOR))
    log_reference = torch.log(mel_spectrogram(reference, sample_rate, n_fft, hop_length,
                                              n_mels).clamp(min=LOG_FLOOR))
    return (log_estimate - log_reference).abs().mean(dim=(1, 2))


def pesq_score(estimate: torch.Tensor, reference: torch.Tensor, sample_rate: int,
               mode: str | None = None) -> torch.Tensor:
    """PESQ (ITU-T P.862) of each estimate against its reference: ``(...,)`` float64 for
    inputs ``(..., samples)``.

    Needs the ``pesq`` package (``pip install pesq``); only 8000 Hz (narrow band) and
    16000 Hz (wide band by default) are defined. ``mode``: ``"wb"`` or ``"nb"``.
    """
    fn = "pesq_score"
    try:
        from pesq import pesq
    except ImportError as error:
        raise ImportError(f"{fn} needs the optional `pesq` package; install it with "
                          f"`pip install pesq`") from error
    estimate, reference = _check_pair(fn, estimate, reference)
    if sample_rate not in (8000, 16000):
        raise ValueError(f"{fn}: PESQ is defined at 8000 or 16000 Hz, got {sample_rate}; "
                         f"resample first (lutece.audio.resample)")
    mode = mode or ("wb" if sample_rate == 16000 else "nb")
    if mode not in ("wb", "nb") or (mode == "wb" and sample_rate != 16000):
        raise ValueError(f"{fn}: mode must be 'nb', or 'wb' at 16000 Hz, got {mode!r} at "
                         f"{sample_rate} Hz")
    batch_shape = estimate.shape[:-1]
    estimate = estimate.reshape(-1, estimate.shape[-1]).detach().cpu().double().numpy()
    reference = reference.reshape(-1, reference.shape[-1]).detach().cpu().double().numpy()
    scores = [pesq(sample_rate, ref, est, mode) for ref, est in zip(reference, estimate)]
    return torch.tensor(scores, dtype=torch.float64).reshape(batch_shape)
