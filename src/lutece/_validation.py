"""Input checks shared by every public function of lutece.

Public functions validate once, at the boundary, and raise errors whose message names the
function, the argument, what was expected and what was given, e.g.
``soft_rank: regularization_strength must be >= 0, got -1.0``. Internals do not re-check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "check_tensor",
    "check_floating",
    "check_finite",
    "check_choice",
    "check_dim",
    "check_int",
    "check_nonnegative_strength",
    "data_checks_enabled",
]


def data_checks_enabled() -> bool:
    """Whether value-dependent checks (NaN, sign) run: not while torch.compile traces, where
    reading a tensor's values on the host would break the graph. Shape and type checks
    always run."""
    return not torch.compiler.is_compiling()


def check_tensor(fn: str, name: str, value: object, *, min_ndim: int = 0) -> torch.Tensor:
    """Require ``value`` to be a tensor with at least ``min_ndim`` dimensions."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim < min_ndim:
        raise ValueError(
            f"{fn}: {name} must have at least {min_ndim} dimension(s), "
            f"got a {value.ndim}-d tensor of shape {tuple(value.shape)}"
        )
    return value


def check_floating(fn: str, name: str, value: torch.Tensor) -> torch.Tensor:
    """Require a floating-point dtype (float16, bfloat16, float32 or float64)."""
    if not value.is_floating_point():
        raise TypeError(
            f"{fn}: {name} must have a floating-point dtype, got {value.dtype}; "
            f"convert it first, e.g. {name}.float()"
        )
    return value


def check_finite(fn: str, name: str, value: torch.Tensor) -> torch.Tensor:
    """Reject NaN and infinite entries (lutece never passes NaN through silently)."""
    if not data_checks_enabled() or not value.numel():
        return value
    # A NaN or inf anywhere makes the sum NaN or inf, and one reduction is far cheaper than
    # isfinite + all (7 us vs 250 us at 128 x 1000 on CPU); the exact count runs only when
    # the sum is not finite, which an overflowing sum of finite values can also cause.
    total = value.detach().sum(dtype=torch.float64 if value.dtype == torch.float64
                                else torch.float32)
    if not math.isfinite(float(total)) and not bool(torch.isfinite(value).all()):
        num_bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{fn}: {name} contains {num_bad} NaN or infinite value(s)")
    return value


def check_int(fn: str, name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``, else a ValueError naming it:
    "a positive int" (minimum 1), "a non-negative int" (0) or "an int >= minimum"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = {1: "a positive int", 0: "a non-negative int"}.get(minimum,
                                                                   f"an int >= {minimum}")
        raise ValueError(f"{fn}: {name} must be {wanted}, got {value!r}")
    return value


def check_choice(fn: str, name: str, value: object, choices: Sequence[object]) -> None:
    """Require ``value`` to be one of ``choices``."""
    if value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: {name} must be one of {expected}, got {value!r}")


def check_dim(fn: str, dim: object, ndim: int) -> int:
    """Return ``dim`` as a non-negative axis of a tensor with ``ndim`` dimensions."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{fn}: dim must be an int, got {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise ValueError(
            f"{fn}: dim must be in [{-ndim}, {ndim - 1}] for a {ndim}-d input, got {dim}"
        )
    return dim % ndim


def check_nonnegative_strength(
    fn: str, name: str, value: object, batch_shape: torch.Size
) -> float | torch.Tensor:
    """Validate a regularization strength given as a number or a per-row tensor.

    A tensor must broadcast to ``batch_shape`` (the input's shape without the operated
    dimension). Returns a Python float, or a tensor broadcast to ``batch_shape``.
    """
    if isinstance(value, torch.Tensor):
        if value.is_complex() or not (value.is_floating_point() or value.dtype.is_signed
                                      or value.dtype == torch.uint8):
            raise TypeError(f"{fn}: {name} must be a real tensor, got dtype {value.dtype}")
        try:
            expanded = value.expand(batch_shape) if value.ndim <= len(batch_shape) else None
        except RuntimeError:
            expanded = None
        if expanded is None:
            raise ValueError(
                f"{fn}: {name} of shape {tuple(value.shape)} does not broadcast to the "
                f"batch shape {tuple(batch_shape)} (the input's shape without the operated "
                f"dimension)"
            )
        if not data_checks_enabled() or not value.numel():
            return expanded
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{fn}: {name} contains NaN or infinite value(s)")
        if bool((value < 0).any()):
            raise ValueError(
                f"{fn}: {name} must be >= 0 everywhere, got a minimum of {float(value.min())}"
            )
        return expanded
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{fn}: {name} must be a float or a tensor, got {type(value).__name__}"
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{fn}: {name} must be finite, got {value}")
    if value < 0:
        raise ValueError(f"{fn}: {name} must be >= 0, got {value}")
    return value
