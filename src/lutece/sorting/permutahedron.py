"""Projection onto the permutahedron, as a differentiable torch operator.

Blondel, Teboul, Berthet & Djolonga, ICML 2020, Sections 3-5. For ``w`` sorted in
decreasing order, the permutahedron P(w) is the convex hull of the permutations of ``w``:

* ``regularization="l2"``:  P_Q(z, w) = argmin_{mu in P(w)} 1/2 ||mu - z||^2            (eq. 5)
* ``regularization="kl"``:  P_E(z, w) = log argmin_{mu in P(exp w)} KL(mu, exp z)        (eq. 6)

Both are computed exactly by one sort and one isotonic regression (Prop. 3), and both are
differentiated exactly through the block-diagonal Jacobian of the isotonic solution
(Lemma 3); autograd never unrolls the solver loop.

Eagerly the operator is a ``torch.autograd.Function``; under ``torch.compile`` it is a
``torch.library`` custom op, which the compiler treats as one opaque node (no graph break).
On CPU tensors it runs the numba kernels; on any other device the vectorized torch kernels.
Double backward is not supported and raises.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .._validation import (
    check_choice,
    check_finite,
    check_floating,
    check_tensor,
    data_checks_enabled,
)
from . import _torch_kernels

try:  # numba is a declared dependency; the torch kernels keep lutece usable without it.
    from . import _numba_kernels
except ImportError:  # pragma: no cover - exercised only on installs without numba
    _numba_kernels = None

__all__ = ["permutahedron_projection", "use_numba"]

_FORCE_TORCH_KERNELS = False


def use_numba(enabled: bool) -> None:
    """Choose the CPU kernels: numba (default, fast) or the pure-torch ones (for testing)."""
    global _FORCE_TORCH_KERNELS
    _FORCE_TORCH_KERNELS = not enabled


def _numba_available(t: torch.Tensor) -> bool:
    return _numba_kernels is not None and not _FORCE_TORCH_KERNELS and t.device.type == "cpu"


def _forward_kernel(
    z: torch.Tensor, w: torch.Tensor, kl: bool, sort_w: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, perm, segments) of the projection, on the kernel that fits the device."""
    if not _numba_available(z):
        return _torch_kernels.project_forward(z, w, kl, sort_w)
    z, w = z.contiguous(), w.contiguous()
    z_array, w_array = z.numpy(), w.numpy()
    presorted = z.shape[1] < _numba_kernels.SMALL_ROW
    if presorted:
        perm = torch.from_numpy(np.argsort(w_array if sort_w else z_array, axis=1))
    else:
        perm = torch.empty(z.shape, dtype=torch.int64)
    out = torch.empty_like(z)
    segments = torch.empty(z.shape, dtype=torch.int64)
    _numba_kernels.project_forward(
        z_array, w_array, kl, sort_w, presorted, out.numpy(), perm.numpy(), segments.numpy()
    )
    return out, perm, segments


def _backward_kernel(
    grad: torch.Tensor,
    z: torch.Tensor,
    w: torch.Tensor,
    perm: torch.Tensor,
    segments: torch.Tensor,
    kl: bool,
    sort_w: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_z, grad_w): the vector-Jacobian product of the projection."""
    if not _numba_available(grad):
        return _torch_kernels.project_backward(grad, z, w, perm, segments, kl, sort_w)
    grad, z, w = grad.contiguous(), z.contiguous(), w.contiguous()
    grad_z = torch.empty_like(z)
    grad_w = torch.empty_like(w)
    _numba_kernels.project_backward(
        grad.numpy(), z.numpy(), w.numpy(), perm.numpy(), segments.numpy(), kl, sort_w,
        grad_z.numpy(), grad_w.numpy(),
    )
    return grad_z, grad_w


class _Projection(torch.autograd.Function):
    """Eager path: a plain autograd.Function (old-style ``forward(ctx, ...)``, which skips
    the signature binding of ``setup_context``), a few microseconds cheaper per call than
    the custom op below, which exists for torch.compile."""

    @staticmethod
    def forward(ctx, z, w, kl, sort_w):
        out, perm, segments = _forward_kernel(z, w, kl, sort_w)
        ctx.save_for_backward(z, w, perm, segments)
        ctx.kl = kl
        ctx.sort_w = sort_w
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        z, w, perm, segments = ctx.saved_tensors
        grad_z, grad_w = _backward_kernel(grad_out, z, w, perm, segments, ctx.kl, ctx.sort_w)
        return grad_z, grad_w, None, None


def _setup_context(ctx, inputs, output):
    z, w, kl, sort_w = inputs
    _, perm, segments = output
    ctx.save_for_backward(z, w, perm, segments)
    ctx.mark_non_differentiable(perm, segments)
    ctx.kl = kl
    ctx.sort_w = sort_w


# torch.compile path: the same kernels as opaque custom ops, so tracing never breaks.
@torch.library.custom_op("lutece::permutahedron_projection", mutates_args=())
def _projection_op(
    z: torch.Tensor, w: torch.Tensor, kl: bool, sort_w: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _forward_kernel(z, w, kl, sort_w)


@_projection_op.register_fake
def _(z, w, kl, sort_w):
    index = torch.empty(z.shape, dtype=torch.int64, device=z.device)
    return torch.empty_like(z), index, torch.empty_like(index)


@torch.library.custom_op("lutece::permutahedron_projection_backward", mutates_args=())
def _projection_backward_op(
    grad: torch.Tensor,
    z: torch.Tensor,
    w: torch.Tensor,
    perm: torch.Tensor,
    segments: torch.Tensor,
    kl: bool,
    sort_w: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    return _backward_kernel(grad, z, w, perm, segments, kl, sort_w)


@_projection_backward_op.register_fake
def _(grad, z, w, perm, segments, kl, sort_w):
    return torch.empty_like(z), torch.empty_like(w)


def _backward_op(ctx, grad_out, grad_perm, grad_segments):
    z, w, perm, segments = ctx.saved_tensors
    grad_z, grad_w = _projection_backward_op(
        grad_out.contiguous(), z, w, perm, segments, ctx.kl, ctx.sort_w
    )
    return grad_z, grad_w, None, None


_projection_op.register_autograd(_backward_op, setup_context=_setup_context)


def project(z: torch.Tensor, w: torch.Tensor, regularization: str, sort_w: bool) -> torch.Tensor:
    """:func:`permutahedron_projection` without input checks, for the operators' hot path."""
    kl = regularization == "kl"
    if torch.compiler.is_compiling():
        return _projection_op(z, w, kl, sort_w)[0]
    return _Projection.apply(z, w, kl, sort_w)


def permutahedron_projection(
    z: torch.Tensor, w: torch.Tensor, *, regularization: str = "l2", sort_w: bool = False
) -> torch.Tensor:
    """Project each row of ``z`` onto the permutahedron of the matching row of ``w``.

    Args:
        z: (B, n) float32/float64, the point to project.
        w: (B, n) same dtype and device; its rows must be sorted in decreasing order unless
            ``sort_w`` is True, in which case ``z``'s rows must be sorted decreasingly.
        regularization: ``"l2"`` (eq. 5) or ``"kl"`` (eq. 6, result in log space).
        sort_w: which argument the kernel sorts (see the module docstring).

    Returns:
        (B, n): P(z, w), differentiable with respect to both ``z`` and ``w``.

    Raises:
        TypeError / ValueError naming the argument for non-float or mismatched tensors, a
        shape other than (B, n), NaN/inf in ``z`` (``w`` may hold -inf: log-weights of 0) or
        an unknown regularization. The order of the sorted argument is not checked (an
        O(n) pass the operators do not need); unsorted rows give a wrong projection.
    """
    fn = "permutahedron_projection"
    for name, value in (("z", z), ("w", w)):
        check_tensor(fn, name, value, min_ndim=2)
        check_floating(fn, name, value)
        if value.ndim != 2:
            raise ValueError(f"{fn}: {name} must be (B, n), got shape {tuple(value.shape)}")
    if z.shape != w.shape or z.dtype != w.dtype or z.device != w.device:
        raise ValueError(f"{fn}: z and w must share shape, dtype and device, got "
                         f"{tuple(z.shape)} {z.dtype} {z.device} and "
                         f"{tuple(w.shape)} {w.dtype} {w.device}")
    check_finite(fn, "z", z)
    if data_checks_enabled() and w.numel() and bool((torch.isnan(w) | (w == torch.inf)).any()):
        raise ValueError(f"{fn}: w contains NaN or +inf")
    check_choice(fn, "regularization", regularization, ("l2", "kl"))
    return project(z, w, regularization, sort_w)
