"""Learning a perturbed model without labels: perturbed maximum likelihood.

Berthet et al., NeurIPS 2020, Section 4 (unsupervised learning). Observations are optimal
decisions of a perturbed model, Y_i = y*(theta_0 + sigma Z_i), with theta_0 unknown. The
empirical Fenchel-Young loss sum_i L(theta; Y_i) is convex in theta with gradient
n (y_sigma(theta) - mean_i Y_i), so its minimizer matches the model's mean decision to the
observed one, y_sigma(theta_hat) = mean(Y). For Gumbel noise and an argmax solver this is
exactly maximum likelihood of the softmax (Gibbs) model; in general it is the perturbed
analogue, consistent for theta_0 (up to the invariances of the solver, e.g. a constant
shift for argmax and ranks). No features or labels are needed: only the decisions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .losses import FenchelYoungLoss

__all__ = ["perturbed_maximum_likelihood"]


def perturbed_maximum_likelihood(
    solver: Callable[[torch.Tensor], torch.Tensor],
    observations: torch.Tensor,
    *,
    sigma: float = 1.0,
    noise: str = "gaussian",
    maximize: bool = True,
    event_ndim: int = 1,
    num_samples: int = 100,
    steps: int = 500,
    lr: float = 0.1,
    theta_init: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, list[float]]:
    """Estimate theta_0 from observed decisions by minimizing the mean Fenchel-Young loss.

    Args:
        solver: the model's solver (see :mod:`lutece.perturbed.solvers`).
        observations: (num_observations, *event) decisions y*(theta_0 + sigma Z_i).
        sigma, noise, maximize, event_ndim, num_samples, generator: of the perturbed model
            (sigma and the noise must be the ones that generated the data; theta is only
            identified at that scale).
        steps, lr: Adam iterations and initial learning rate (decayed linearly to 0).
        theta_init: (*event) starting point; zeros by default.
        progress: show a tqdm bar.

    Returns:
        (theta_hat of shape (*event), the loss at each step).
    """
    fn = "perturbed_maximum_likelihood"
    if not isinstance(observations, torch.Tensor) or observations.ndim < event_ndim + 1:
        raise ValueError(f"{fn}: observations must be a tensor (num_observations, *event) "
                         f"with event_ndim = {event_ndim}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{fn}: steps must be an int >= 1, got {steps!r}")
    dtype = observations.dtype if observations.is_floating_point() else torch.float32
    mean_decision = observations.to(dtype).mean(dim=0)
    theta = (torch.zeros_like(mean_decision) if theta_init is None
             else theta_init.detach().to(dtype).clone()).requires_grad_()
    # The mean loss over observations equals the loss at the mean decision (L is affine in
    # y), so one evaluation per step suffices.
    loss_fn = FenchelYoungLoss(solver, num_samples=num_samples, sigma=sigma, noise=noise,
                               maximize=maximize, event_ndim=event_ndim, generator=generator)
    optimizer = torch.optim.Adam([theta], lr=lr)
    # The gradient is a Monte Carlo estimate: a learning rate decaying linearly to 0 averages
    # its noise away instead of leaving the iterate to jitter at the scale of lr.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    history = []
    for _ in tqdm(range(steps), disable=not progress, desc=fn):
        optimizer.zero_grad()
        loss = loss_fn(theta, mean_decision)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
    return theta.detach(), history
