"""DiffStride's complexity regularizer and a report of the learned strides.

Riad et al. (ICLR 2022), Sec. 3.3: with learnable strides, a network's cost is a
differentiable function of them. A convolution l whose output is downsampled by the layers
j <= l before it runs on H W / prod_j (S_h^j S_w^j) positions, so

    cost(S) = sum_l C_l prod_{j <= l} 1 / (S_h^j S_w^j)

with C_l the convolution's multiply-accumulates per output position (k^d C_in C_out) is its
multiply-accumulate count per input position at full resolution: H W cost(S) is the exact
count at integer strides that divide the sizes (strided convolutions and spectral pooling
output exactly N / S), and a smooth estimate in between, to be weighted and added to the
loss. DiffStride's own outputs keep the mask's ramp and are a little larger than N / S
(the paper's estimate, like this one, ignores that).
"""

from __future__ import annotations

import torch
from torch import nn

from .diffstride import DiffStride1d

__all__ = ["complexity_regularizer", "learned_strides", "count_conv_macs"]


def _stride_product(layer: nn.Module, like: torch.Tensor) -> torch.Tensor:
    """prod over axes of a downsampling layer's strides: differentiable for DiffStride
    (found as the layer or its ``pool``), a constant for anything else with ``strides``."""
    for candidate in (layer, getattr(layer, "pool", None)):
        if isinstance(candidate, DiffStride1d):
            return candidate.stride.prod()
    value = 1.0
    for s in layer.strides:
        value *= float(s)
    return like.new_tensor(value)


def complexity_regularizer(model: nn.Module) -> torch.Tensor:
    """sum_l C_l prod_{j <= l} 1 / (S_h^j S_w^j) over ``model``'s convolutions (see the
    module docstring): multiply-accumulates per input position, differentiable in every
    DiffStride stride. ``model`` must provide ``complexity_terms()`` (as
    :class:`~lutece.nn.ResNet18` does): a list of (C_l, [downsampling layers before conv
    l's output]).

    Returns a 0-d float32 tensor on the model's device.
    """
    terms = getattr(model, "complexity_terms", None)
    if not callable(terms):
        raise TypeError(f"complexity_regularizer: {type(model).__name__} has no "
                        "complexity_terms(); it must list (cost per output position, the "
                        "downsampling layers before that output) for each convolution, as "
                        "lutece.nn.ResNet18 does")
    parameter = next(model.parameters(), None)
    like = (parameter.detach().new_zeros((), dtype=torch.float32) if parameter is not None
            else torch.zeros(()))
    total = like.clone()
    for cost, layers in terms():
        factor = like.new_ones(())
        for layer in layers:
            factor = factor / _stride_product(layer, like).to(like.dtype)
        total = total + cost * factor
    return total


def learned_strides(model: nn.Module) -> dict[str, tuple[float, ...]]:
    """{module name: strides} for every DiffStride layer of ``model``, in module order."""
    return {name: module.strides for name, module in model.named_modules()
            if isinstance(module, DiffStride1d)}


def count_conv_macs(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-accumulates of every convolution of ``model`` on one example of ``x``
    (batch first), counted from the output sizes the forward pass actually produces (so
    DiffStride's ramp-enlarged outputs count as they are). Runs ``model`` under no_grad."""
    total = [0.0]

    def hook(module, _inputs, output):
        kernel = 1
        for k in module.kernel_size:
            kernel *= k
        per_position = kernel * module.in_channels * module.out_channels // module.groups
        total[0] += output[0, 0].numel() * per_position

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    return total[0]
