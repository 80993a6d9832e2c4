"""Learnable lowpass pooling of filterbank energies: LEAF's Gaussian lowpass and the
free-form (squared-Hann-initialized) pooling of time-domain filterbanks.

Both are depthwise strided convolutions over time that keep the frame convention of
:mod:`._framing` (``ceil(T / hop)`` frames centered on hop * i + hop // 2).
"""

from __future__ import annotations

import torch
from torch import nn

from ..._validation import check_floating, check_tensor
from ._framing import check_positive_int, frame_padding

__all__ = ["GaussianLowpass", "LearnablePooling", "gaussian_windows", "pool_frames"]


def gaussian_windows(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """LEAF's pooling windows, ``(channels, kernel_size)``:
    w_c(t) = exp(-1/2 ((t - (K - 1) / 2) / (sigma_c (K - 1) / 2))^2), t = 0..K-1, unnormalized
    as in the reference code (the paper's Eq. 5 normalizes it; the code does not)."""
    t = torch.arange(kernel_size, dtype=sigma.dtype, device=sigma.device)
    half = 0.5 * (kernel_size - 1)
    return torch.exp(-0.5 * ((t - half) / (sigma[:, None] * half)) ** 2)


def pool_frames(signal: torch.Tensor, windows: torch.Tensor, hop: int) -> torch.Tensor:
    """Depthwise windowed sums: ``(batch, C, T)`` with ``(C, K)`` windows -> ``(batch, C,
    ceil(T / hop))``, frame i = sum_t w_c(t) x_c(hop * i + hop // 2 - (K - 1) // 2 + t)."""
    channels, k = windows.shape
    left, right = frame_padding(signal.shape[-1], k, hop)
    padded = nn.functional.pad(signal, (left, right))
    return nn.functional.conv1d(padded, windows.unsqueeze(1).to(signal.dtype), stride=hop,
                                groups=channels)


def _check_energies(fn: str, energies: object, channels: int) -> torch.Tensor:
    x = check_tensor(fn, "energies", energies)
    check_floating(fn, "energies", x)
    if x.ndim != 3 or x.shape[1] != channels:
        raise ValueError(
            f"{fn}: energies must be (batch, {channels}, time), got shape {tuple(x.shape)}"
        )
    return x


class GaussianLowpass(nn.Module):
    """Per-channel Gaussian lowpass pooling (LEAF Eq. 5): ``(batch, C, T)`` ->
    ``(batch, C, ceil(T / stride))``.

    Args:
        n_channels: C.
        kernel_size: window taps (401 in LEAF).
        stride: hop in samples (160 in LEAF).
        init_sigma: initial width as a fraction of half the window (0.4 in LEAF); the
            forward pass clamps it to [2 / K, 0.5] as the reference does.

    No bias: the PyTorch ports add a learnable bias initialized to 1, which the paper lacks.
    """

    def __init__(self, n_channels: int, kernel_size: int = 401, stride: int = 160,
                 init_sigma: float = 0.4) -> None:
        super().__init__()
        check_positive_int("GaussianLowpass", "n_channels", n_channels)
        check_positive_int("GaussianLowpass", "kernel_size", kernel_size)
        check_positive_int("GaussianLowpass", "stride", stride)
        if not 2.0 / kernel_size <= init_sigma <= 0.5:
            raise ValueError(
                f"GaussianLowpass: init_sigma must be in [2 / kernel_size, 0.5] = "
                f"[{2.0 / kernel_size:.4f}, 0.5], got {init_sigma}"
            )
        self.n_channels = n_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.init_sigma = float(init_sigma)
        self.sigma = nn.Parameter(torch.empty(n_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.sigma.fill_(self.init_sigma)

    def constrained_sigma(self) -> torch.Tensor:
        return self.sigma.clamp(2.0 / self.kernel_size, 0.5)

    def windows(self) -> torch.Tensor:
        """``(C, kernel_size)`` pooling windows as the forward pass uses them."""
        return gaussian_windows(self.constrained_sigma(), self.kernel_size)

    def forward(self, energies: torch.Tensor) -> torch.Tensor:
        x = _check_energies("GaussianLowpass", energies, self.n_channels)
        return pool_frames(x, self.windows(), self.stride)

    def extra_repr(self) -> str:
        return (f"{self.n_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"init_sigma={self.init_sigma}")


class LearnablePooling(nn.Module):
    """Free-form per-channel lowpass pooling, initialized with a squared Hann window
    (the time-domain filterbanks of Zeghidour et al., ICASSP 2018, as in LEAF's reference
    ``LearnablePooling1D``): ``(batch, C, T)`` -> ``(batch, C, ceil(T / stride))``."""

    def __init__(self, n_channels: int, kernel_size: int = 401, stride: int = 160) -> None:
        super().__init__()
        check_positive_int("LearnablePooling", "n_channels", n_channels)
        check_positive_int("LearnablePooling", "kernel_size", kernel_size)
        check_positive_int("LearnablePooling", "stride", stride)
        self.n_channels = n_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(n_channels, kernel_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        hann = torch.hann_window(self.kernel_size, periodic=False, dtype=torch.float64)
        with torch.no_grad():
            self.weight.copy_(hann.square().expand(self.n_channels, -1))

    def forward(self, energies: torch.Tensor) -> torch.Tensor:
        x = _check_energies("LearnablePooling", energies, self.n_channels)
        return pool_frames(x, self.weight, self.stride)

    def extra_repr(self) -> str:
        return f"{self.n_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
