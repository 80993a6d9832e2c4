"""Neural optimal transport maps: input convex neural networks (ICNNs) and Monge maps fitted
as gradients of convex potentials.

* :class:`ICNN`: f(x) convex in x by construction (Amos, Xu & Kolter 2017, "Input Convex
  Neural Networks", ICML, eq. 2)::

      z_1     = act_1(W_0 x + b_0)
      z_{k+1} = act(softplus(U_k) z_k + W_k x + b_k)            (weights on z are >= 0)
      f(x)    = softplus(u_L) . z_L + w . x + ||Q x||^2 / 2 + strong_convexity ||x||^2 / 2

  act is convex and non-decreasing (softplus, or leaky ReLU after a squared leaky ReLU first
  layer as in Makkuva, Taghvaei, Oh & Lee 2020, "Optimal transport mapping via input convex
  neural networks", ICML), so each z_k is convex in x. The learnable quadratic ||Q x||^2 / 2
  (a positive semi-definite term, as the quadratic layers of Bunne et al. 2022) gives f
  quadratic growth, hence a finite conjugate everywhere, and makes affine maps (Gaussian to
  Gaussian) exactly representable. ``ICNN.transport(x)`` is grad f(x), the Brenier map.
* :func:`fit_monge_map`: fits the Brenier potential between two distributions (samples or
  samplers) by the **semi-dual** of W2 (Villani 2003, Thm 2.9; Makkuva et al. 2020, eq. 5)::

      min_f  E_x[f(x)] + E_y[f*(y)],    f*(y) = max_x <x, y> - f(x),

  whose minimizer f gives the optimal map T = grad f. The conjugate is computed exactly (to
  solver tolerance) per batch by L-BFGS on the strictly concave inner problem, and by
  Danskin's theorem its parameter gradient is -grad_theta f(x_hat(y)) at the maximizer
  x_hat(y), so no second network and no min-max game are needed.

  Trade-off (``method="semi_dual"``): compared with Makkuva et al.'s min-max with a second
  ICNN g (x_hat = grad g(y)), each step costs an inner L-BFGS solve (cheap in low dimension,
  a few dozen gradient evaluations), but training is a plain minimization that is stable and
  unbiased; compared with regressing grad f onto the barycentric projection of an entropic
  plan, it carries no entropic blur bias. It needs f to grow quadratically (the learnable Q
  term or ``strong_convexity > 0``) so the inner problem has a maximizer.

Training runs through :func:`lutece.train.train` (seeding, device choice, progress bar).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from lutece._validation import check_choice, check_finite, check_floating, check_tensor
from lutece.train import TrainConfig, train

__all__ = ["ICNN", "MongeMap", "fit_monge_map"]

# sample(n, generator) -> (n, d) tensor.
Sampler = Callable[[int, torch.Generator], torch.Tensor]
Data = torch.Tensor | Sampler

_ACTIVATIONS = ("softplus", "leaky_relu_squared")
_METHODS = ("semi_dual",)
_LEAKY_SLOPE = 0.2


def _inverse_softplus(value: torch.Tensor) -> torch.Tensor:
    return value + torch.log(-torch.expm1(-value))


class ICNN(nn.Module):
    """Input convex neural network f: (..., dim) -> (...), convex in x (Amos et al. 2017).

    Args:
        dim: input dimension d.
        hidden: widths of the hidden layers, a non-empty sequence of positive ints.
        activation: ``"softplus"`` (smooth everywhere), or ``"leaky_relu_squared"`` (squared
            leaky ReLU on the first layer, leaky ReLU after; Makkuva et al. 2020).
        strong_convexity: alpha >= 0; adds alpha ||x||^2 / 2, so f is alpha-strongly convex.

    Non-negativity of the weights on the z-path is a reparametrization: the stored
    ``raw`` weights pass through softplus, so any optimizer step keeps f convex.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64),
                 activation: str = "softplus", strong_convexity: float = 0.0) -> None:
        super().__init__()
        fn = "ICNN"
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{fn}: dim must be a positive int, got {dim!r}")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"{fn}: hidden must be a sequence of positive ints, got {hidden!r}")
        hidden = tuple(hidden)
        if not hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                             for h in hidden):
            raise ValueError(
                f"{fn}: hidden must be a non-empty sequence of positive ints, got {hidden!r}"
            )
        check_choice(fn, "activation", activation, _ACTIVATIONS)
        if (isinstance(strong_convexity, bool) or not isinstance(strong_convexity, (int, float))
                or not math.isfinite(strong_convexity) or strong_convexity < 0):
            raise ValueError(
                f"{fn}: strong_convexity must be a finite float >= 0, got {strong_convexity!r}"
            )
        self.dim = dim
        self.hidden = hidden
        self.activation = activation
        self.strong_convexity = float(strong_convexity)
        # x-path (unconstrained): one affine map of x per layer, the output's included.
        self.input_layers = nn.ModuleList(
            [nn.Linear(dim, width) for width in hidden] + [nn.Linear(dim, 1)]
        )
        # z-path (non-negative after softplus): hidden[k] -> hidden[k + 1], and -> output.
        widths = list(hidden) + [1]
        self.raw_z_weights = nn.ParameterList(
            [nn.Parameter(torch.empty(widths[k + 1], widths[k])) for k in range(len(hidden))]
        )
        self.quadratic = nn.Parameter(torch.empty(dim, dim))  # Q in ||Q x||^2 / 2
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default init: Q = I (so grad f starts near the identity map), small positive
        z-path weights, PyTorch's default for the x-path."""
        for layer in self.input_layers:
            layer.reset_parameters()
        with torch.no_grad():
            self.input_layers[-1].weight.zero_()
            self.input_layers[-1].bias.zero_()
            for raw in self.raw_z_weights:
                fan_in = raw.shape[1]
                positive = torch.empty_like(raw).uniform_(0.1, 1.0) / fan_in
                raw.copy_(_inverse_softplus(positive))
            self.quadratic.copy_(torch.eye(self.dim))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, hidden={self.hidden}, activation={self.activation!r}, "
                f"strong_convexity={self.strong_convexity}")

    def _act(self, value: torch.Tensor, first: bool) -> torch.Tensor:
        if self.activation == "softplus":
            return F.softplus(value)
        value = F.leaky_relu(value, _LEAKY_SLOPE)
        return value.square() if first else value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for x: (..., dim) -> (...)."""
        z = self._act(self.input_layers[0](x), first=True)
        for raw, layer in zip(self.raw_z_weights[:-1], self.input_layers[1:-1], strict=True):
            z = self._act(z @ F.softplus(raw).mT + layer(x), first=False)
        out = z @ F.softplus(self.raw_z_weights[-1]).mT + self.input_layers[-1](x)
        quadratic = (x @ self.quadratic.mT).square().sum(-1) / 2
        if self.strong_convexity:
            quadratic = quadratic + self.strong_convexity * x.square().sum(-1) / 2
        return out.squeeze(-1) + quadratic

    def transport(self, x: torch.Tensor, *, create_graph: bool | None = None) -> torch.Tensor:
        """The Brenier map grad f(x), x: (..., dim) -> (..., dim).

        ``create_graph`` (default: whether grad mode is on and f has trainable parameters)
        keeps the graph so the result can be differentiated again (training)."""
        if create_graph is None:
            create_graph = torch.is_grad_enabled() and any(
                p.requires_grad for p in self.parameters())
        with torch.enable_grad():
            point = x if x.requires_grad else x.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self(point).sum(), point,
                                              create_graph=create_graph)
        return gradient


@dataclass
class MongeMap:
    """A fitted Monge map T = grad f. ``potential`` is the ICNN f, ``history`` the
    per-step metrics from :func:`lutece.train.train` (``loss`` is the semi-dual value
    E f(x) + E f*(y), an upper bound on E <x, T(x)> once fitted)."""

    potential: ICNN
    history: list[dict[str, float]] = field(default_factory=list)

    def transport(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) for x: (..., d) -> (..., d), detached."""
        return self.potential.transport(x, create_graph=False).detach()


def _conjugate_argmax(potential: ICNN, y: torch.Tensor, *, max_iter: int = 20,
                      tolerance: float = 1e-5) -> torch.Tensor:
    """x_hat(y) = argmax_x <x, y> - f(x) for y: (n, d), by L-BFGS on the separable sum.

    Starts from the maximizer for the quadratic and linear part of f alone,
    (Q^T Q + alpha I)^{-1} (y - w), exact when f is quadratic (Gaussian to Gaussian).
    Gradients are taken with respect to x only, so the parameters' ``.grad`` are left
    untouched."""
    with torch.no_grad():
        module = getattr(potential, "module", potential)  # unwrap DistributedDataParallel
        curvature = module.quadratic.mT @ module.quadratic + module.strong_convexity * torch.eye(
            module.dim, dtype=y.dtype, device=y.device)
        shifted = y - module.input_layers[-1].weight.squeeze(0)
        start = torch.linalg.lstsq(curvature, shifted.mT).solution.mT
    x = start.detach().clone().requires_grad_(True)
    solver = torch.optim.LBFGS([x], lr=1.0, max_iter=max_iter, tolerance_grad=tolerance,
                               tolerance_change=1e-12, history_size=10,
                               line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        objective = (potential(x) - (x * y).sum(-1)).sum()
        (x.grad,) = torch.autograd.grad(objective, x)
        return objective.detach()

    solver.step(closure)
    return x.detach()


class _DrawDataset(Dataset):
    """Item k: one (source batch, target batch) pair, drawn with a generator seeded by
    (seed, k), so step k sees the same data in any run with that seed."""

    def __init__(self, source: Data, target: Data, steps: int, batch_size: int,
                 seed: int) -> None:
        self.source, self.target = source, target
        self.steps, self.batch_size, self.seed = steps, batch_size, seed

    def __len__(self) -> int:
        return self.steps

    def _draw(self, data: Data, generator: torch.Generator) -> torch.Tensor:
        if isinstance(data, torch.Tensor):
            index = torch.randint(len(data), (self.batch_size,), generator=generator)
            return data[index]
        return data(self.batch_size, generator)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + k)
        return self._draw(self.source, generator), self._draw(self.target, generator)


def _check_data(fn: str, name: str, data: object) -> tuple[int, torch.dtype]:
    """Validate samples (n, d) or a sampler; return (d, dtype)."""
    if isinstance(data, torch.Tensor):
        check_tensor(fn, name, data)
        if data.ndim != 2 or data.shape[0] < 1:
            raise ValueError(f"{fn}: {name} must be a non-empty (n, d) tensor, got shape "
                             f"{tuple(data.shape)}")
        check_floating(fn, name, data)
        check_finite(fn, name, data)
        return data.shape[1], data.dtype
    if not callable(data):
        raise TypeError(f"{fn}: {name} must be an (n, d) tensor or a sampler "
                        f"sample(n, generator) -> (n, d), got {type(data).__name__}")
    probe = data(2, torch.Generator().manual_seed(0))
    if not isinstance(probe, torch.Tensor) or probe.ndim != 2 or probe.shape[0] != 2:
        shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
        raise ValueError(f"{fn}: {name}(2, generator) must return a (2, d) tensor, got {shape}")
    check_floating(fn, f"{name}'s samples", probe)
    check_finite(fn, f"{name}'s samples", probe)
    return probe.shape[1], probe.dtype


def _check_positive_int(fn: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")


def fit_monge_map(source: Data, target: Data, *, model: ICNN | None = None, steps: int = 500,
                  batch_size: int = 256, learning_rate: float = 1e-2, seed: int = 0,
                  progress: bool = False, method: str = "semi_dual",
                  device: str = "cpu") -> MongeMap:
    """Fit the W2-optimal map T = grad f from ``source`` to ``target`` (module docstring).

    Args:
        source, target: samples (n, d) / (m, d), floating and finite, or samplers
            ``sample(n, generator) -> (n, d)``. Each step draws ``batch_size`` points of each
            (with replacement from samples), seeded by (seed, step).
        model: the ICNN potential to train (default ``ICNN(d)`` built after seeding); its
            ``dim`` must equal d.
        steps: optimizer steps (Adam, learning rate on a cosine decay to 0).
        batch_size: points of each distribution per step.
        learning_rate: Adam's step size.
        seed: seeds the draws and (for the default model) the init.
        progress: show a progress bar.
        method: ``"semi_dual"`` (the only one: exact conjugate by inner L-BFGS + Danskin).
        device: passed to :class:`lutece.train.TrainConfig` (``"auto"`` picks CUDA).

    Returns:
        :class:`MongeMap` with ``potential`` (the trained ICNN, on ``device``) and
        ``history``.

    Raises:
        ValueError / TypeError: non-tensor or non-finite data, a dimension mismatch between
        source, target and model, bad steps / batch_size / learning_rate / method.
    """
    fn = "fit_monge_map"
    source_dim, dtype = _check_data(fn, "source", source)
    target_dim, _ = _check_data(fn, "target", target)
    if source_dim != target_dim:
        raise ValueError(f"{fn}: source and target must have the same dimension, got "
                         f"source d={source_dim} and target d={target_dim}")
    _check_positive_int(fn, "steps", steps)
    _check_positive_int(fn, "batch_size", batch_size)
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate)
            and learning_rate > 0):
        raise ValueError(f"{fn}: learning_rate must be a finite float > 0, got "
                         f"{learning_rate!r}")
    check_choice(fn, "method", method, _METHODS)
    if model is None:
        torch.manual_seed(seed)
        model = ICNN(source_dim).to(dtype)
    elif not isinstance(model, ICNN):
        raise TypeError(f"{fn}: model must be an ICNN or None, got {type(model).__name__}")
    elif model.dim != source_dim:
        raise ValueError(f"{fn}: model.dim is {model.dim} but the data have d={source_dim}")

    def semi_dual_loss(potential: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
                       ) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch
        x_hat = _conjugate_argmax(potential, y)
        conjugate = (x_hat * y).sum(-1) - potential(x_hat)  # Danskin: x_hat held fixed
        return potential(x).mean() + conjugate.mean(), {}

    config = TrainConfig(max_steps=steps, batch_size=1, seed=seed, device=device,
                         progress=progress, log_every=max(1, steps // 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    result = train(model, optimizer, _DrawDataset(source, target, steps, batch_size, seed),
                   semi_dual_loss, config, scheduler=scheduler,
                   collate_fn=lambda items: items[0])
    return MongeMap(potential=result.model.eval(), history=result.history)
