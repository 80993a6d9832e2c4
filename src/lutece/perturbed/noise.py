"""Noise distributions for perturbed optimizers (Berthet et al., NeurIPS 2020, Section 2).

A noise Z has density mu(z) proportional to exp(-nu(z)); the perturbed optimizer's Jacobian
uses the score grad nu(Z) (Prop. 3.1):

* Gaussian: nu(z) = ||z||^2 / 2,               grad nu(z) = z;
* Gumbel:   nu(z) = sum_i z_i + exp(-z_i),      grad nu(z) = 1 - exp(-z).

Both scores have mean zero, which is what makes the control variate unbiased.
"""

from __future__ import annotations

import torch

__all__ = ["NOISES", "sample_noise", "noise_score"]

NOISES = ("gaussian", "gumbel")


def sample_noise(
    noise: str,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Draw Z of ``shape``; sampled on the generator's device, returned on ``device``."""
    sample_device = generator.device if generator is not None else device
    if noise == "gaussian":
        z = torch.randn(shape, dtype=dtype, device=sample_device, generator=generator)
    else:
        # -log(E) with E ~ Exp(1) is a standard Gumbel variable.
        exponential = torch.empty(shape, dtype=dtype, device=sample_device)
        z = -torch.log(exponential.exponential_(generator=generator))
    return z.to(device)


def noise_score(noise: str, z: torch.Tensor) -> torch.Tensor:
    """grad nu(z), elementwise."""
    if noise == "gaussian":
        return z
    return 1.0 - torch.exp(-z)
