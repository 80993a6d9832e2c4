"""Per-channel energy normalization (PCEN) with learnable parameters (sPCEN).

Wang, Getreuer, Hughes, Lyon & Saurous, "Trainable frontend for robust and far-field keyword
spotting" (ICASSP 2017), as used by LEAF (Zeghidour et al., ICLR 2021, Eq. 6):

    M[t] = s E[t] + (1 - s) M[t - 1],   M[0] = E[0]
    PCEN(E)[t] = (E[t] / (floor + M[t])^alpha + delta)^(1 / r) - delta^(1 / r)

with per-channel alpha, delta, r and s. LEAF's initial values: alpha 0.96, s 0.04, delta 2,
r 2, floor 1e-12. Departures from the reference code, each for numerical safety: alpha is
kept in [0, 1] (the reference only caps it at 1), delta >= 0 (the reference leaves it free,
and a negative delta makes the root NaN: the crashes EfficientLEAF reports on long inputs),
r >= 1 as in the reference, s in [0, 1]; and the smoother is a chunked parallel scan, not a
Python loop over frames, whose powers (1 - s)^k never exceed one chunk, so long inputs do
not underflow.
"""

from __future__ import annotations

import torch
from torch import nn

from ..._validation import check_finite, check_floating, check_tensor
from ._framing import check_positive_int

__all__ = ["PCEN", "exponential_moving_average"]

_CHUNK = 64


def exponential_moving_average(energies: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
    """M[t] = s E[t] + (1 - s) M[t - 1] with M[0] = E[0], along the last dimension.

    Args:
        energies: ``(..., channels, frames)``.
        smooth: ``(channels,)`` or a scalar tensor, values in [0, 1].

    Returns:
        ``(..., channels, frames)``. Computed in chunks of 64 frames: inside a chunk
        M = E A^T + p M_prev with A[k, j] = s (1 - s)^(k - j) (j <= k) and p[k] = (1 - s)^(k + 1);
        the carries between chunks follow the same recursion with (1 - s)^64, a loop over
        frames / 64 steps. Differentiable in both arguments.
    """
    frames = energies.shape[-1]
    chunk = min(_CHUNK, frames)
    pad = (-frames) % chunk
    x = nn.functional.pad(energies, (0, pad)) if pad else energies
    n_chunks = x.shape[-1] // chunk
    s = smooth.to(energies.dtype).reshape(-1, 1, 1)  # (C or 1, 1, 1)
    keep = (1.0 - s).clamp(min=torch.finfo(energies.dtype).tiny)
    k = torch.arange(chunk, device=energies.device, dtype=energies.dtype)
    lag = k[:, None] - k[None, :]
    lower = lag >= 0
    # (C, chunk, chunk): s (1 - s)^(k - j) below the diagonal, 0 above
    mix = torch.where(lower, s * keep.pow(lag.clamp(min=0)), torch.zeros((), dtype=x.dtype))
    carry_gain = keep.pow(k + 1).squeeze(-2)  # (C, chunk): (1 - s)^(k + 1)
    blocks = x.unflatten(-1, (n_chunks, chunk))  # (..., C, n_chunks, chunk)
    local = torch.einsum("...cnj,ckj->...cnk", blocks, mix)
    carry = energies[..., :1]  # M[-1] := E[0] makes M[0] = E[0]
    out = []
    for c in range(n_chunks):
        block = local[..., c, :] + carry_gain * carry
        out.append(block)
        carry = block[..., -1:]
    result = torch.cat(out, dim=-1)
    return result[..., :frames] if pad else result


def _safe_root(value: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """value ** exponent for value >= 0, with a finite (zero) gradient where value is 0."""
    positive = value > 0
    safe = torch.where(positive, value, torch.ones_like(value))
    return torch.where(positive, safe.pow(exponent), torch.zeros_like(value))


class PCEN(nn.Module):
    """Learnable per-channel energy normalization: ``(batch, channels, frames)`` -> same.

    Args:
        n_channels: number of channels (filters).
        alpha: initial gain-normalization exponent (kept in [0, 1]).
        smooth_coef: initial smoothing coefficient s of the moving average (kept in [0, 1]).
        delta: initial bias (kept >= 0).
        root: initial root r, the output is raised to 1 / r (kept >= 1).
        floor: added to the moving average before the power, avoids division by zero.
        trainable: learn alpha, delta and root.
        learn_smooth_coef: learn s.
        per_channel_smooth_coef: one s per channel (else one shared s).

    Inputs are non-negative energies; LEAF floors them at 1e-5 before this layer.
    """

    def __init__(self, n_channels: int, alpha: float = 0.96, smooth_coef: float = 0.04,
                 delta: float = 2.0, root: float = 2.0, floor: float = 1e-12,
                 trainable: bool = True, learn_smooth_coef: bool = True,
                 per_channel_smooth_coef: bool = True) -> None:
        super().__init__()
        check_positive_int("PCEN", "n_channels", n_channels)
        checks = {"alpha": (alpha, 0.0, 1.0), "smooth_coef": (smooth_coef, 0.0, 1.0),
                  "delta": (delta, 0.0, float("inf")), "root": (root, 1.0, float("inf")),
                  "floor": (floor, 0.0, float("inf"))}
        for name, (value, low, high) in checks.items():
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"PCEN: {name} must be in [{low}, {high}], got {value!r}")
        self.n_channels = n_channels
        self.floor = float(floor)
        self._init = (float(alpha), float(smooth_coef), float(delta), float(root))
        n_smooth = n_channels if per_channel_smooth_coef else 1
        self.alpha = nn.Parameter(torch.empty(n_channels), requires_grad=trainable)
        self.delta = nn.Parameter(torch.empty(n_channels), requires_grad=trainable)
        self.root = nn.Parameter(torch.empty(n_channels), requires_grad=trainable)
        self.smooth_coef = nn.Parameter(torch.empty(n_smooth), requires_grad=learn_smooth_coef)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        alpha, smooth, delta, root = self._init
        with torch.no_grad():
            self.alpha.fill_(alpha)
            self.smooth_coef.fill_(smooth)
            self.delta.fill_(delta)
            self.root.fill_(root)

    def constrained_parameters(self) -> dict[str, torch.Tensor]:
        """The values the forward pass uses: alpha, smooth_coef, delta, root after clamping."""
        return {"alpha": self.alpha.clamp(0.0, 1.0),
                "smooth_coef": self.smooth_coef.clamp(0.0, 1.0),
                "delta": self.delta.clamp(min=0.0), "root": self.root.clamp(min=1.0)}

    def forward(self, energies: torch.Tensor) -> torch.Tensor:
        x = check_tensor("PCEN", "energies", energies, min_ndim=2)
        check_floating("PCEN", "energies", x)
        if x.shape[-2] != self.n_channels:
            raise ValueError(
                f"PCEN: energies must be (..., {self.n_channels}, frames), got shape "
                f"{tuple(x.shape)}"
            )
        check_finite("PCEN", "energies", x)
        return self._normalize(x)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        p = {name: value.to(x.dtype)[:, None] for name, value in
             self.constrained_parameters().items()}
        smoothed = exponential_moving_average(x, p["smooth_coef"][:, 0])
        gain = torch.exp(-p["alpha"] * torch.log(self.floor + smoothed))
        inverse_root = 1.0 / p["root"]
        return (x * gain + p["delta"]).pow(inverse_root) - _safe_root(p["delta"], inverse_root)

    def extra_repr(self) -> str:
        alpha, smooth, delta, root = self._init
        return (f"{self.n_channels}, alpha={alpha}, smooth_coef={smooth}, delta={delta}, "
                f"root={root}, floor={self.floor}")
