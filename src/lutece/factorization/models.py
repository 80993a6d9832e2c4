"""Low-rank factorization with learned row-wise quantile normalizations.

Cuturi, Teboul, Niles-Weed & Vert, "Supervised Quantile Normalization for Low-rank Matrix
Factorization", ICML 2020 (arXiv 2002.03229). A (d, n) matrix X (d features in rows, n
individuals in columns) is fitted by a rank-r product U V (U: (d, r), V: (r, n)) seen
through learned quantile normalizations (:class:`QuantileNormalization`, one monotone set
of m targets per row), all trained jointly by Adam on a loss scored in the data space:

``normalize="none"``
    prediction = U V, free factors. The plain low-rank baseline.
``normalize="output"`` (the paper's QMF)
    prediction = QN_out(U V): each row of U V is quantile-normalized onto learned targets
    t_out (data units). U V only has to get each row's *order* right; t_out carries the
    values. A held-out entry is predicted by its place in its row of U V.
``normalize="input"``
    X' = QN_in(X) onto learned targets t_in; (U, V) = an unrolled factorization of X' (a
    differentiable function of X', see below); the prediction is U V mapped back to data
    units by the monotone inverse of QN_in: per row, the piecewise-linear map sending
    t_in_j to S_j, the soft-sorted values of the row of X in bin j (the data values QN_in
    sends to t_in_j), constant beyond the first and last bins. Without a data-space loss
    the targets would collapse (a constant X' is fitted perfectly), hence this inverse.
``normalize="both"`` (the paper's QMFQ)
    X' = QN_in(X); (U, V) = unrolled factorization of X'; prediction = QN_out(U V).

The unrolled factorization is the paper's 100 Lee-Seung NMF updates when ``nonnegative``
(:func:`.nmf.nmf`; then t_in > 0) and ridge alternating least squares otherwise
(:func:`.als.alternating_least_squares`); its entry weights are the observation mask
times 1 / variance of each observed row of X'. In "none" and "output" the factors are
free parameters: U = exp(U_hat), V = exp(V_hat) when ``nonnegative`` (the paper's QMF),
else U, V themselves.

Loss, over the observed entries only (``mask``), each row weighted so that every feature
counts alike whatever its units:

* ``loss="squared"`` (default): mean_ij (X_ij - Xhat_ij)^2 / var_i, var_i the variance of
  row i's observed entries;
* ``loss="kl"``: the generalized Kullback-Leibler divergence of the paper,
  mean_ij (X_ij log((X_ij + delta) / (Xhat_ij + delta)) - X_ij + Xhat_ij) / mean_i, with
  delta = 1e-20 and mean_i row i's observed mean (needs X >= 0; targets then stay > 0);

plus ``regularization`` * (mean(U_hat^2) + mean(V_hat^2)) / 2 on free factors (the
paper's lambda; default 0). Unobserved entries of X never enter the loss and may be NaN.
Every quantile normalization is fitted on the observed entries of its row only (the mass
of the transport problem sits on them, :func:`.masked_quantile_normalization`); the other
entries are mapped by the plan's out-of-sample extension, so a held-out entry of U V takes
no mass from the observed ones and is predicted by its place among them. The inverse
knots S_j of "input" are the soft-sorted observed entries. (Unobserved entries of X are
given their row's observed median before QN_in, which maps them but leaves them unused.)

Initialization: targets from the rows' empirical quantiles (``init="data"``) or evenly
over each row's range (``init="uniform"``). Free factors start from a low-rank fit of a
scale-free view of X: for "output", the rows' empirical CDF levels (the output operator
only sees each row's order), by truncated SVD (or NMF, logged, when ``nonnegative``); for
"none", of X itself by 10 ALS sweeps (or 50 NMF updates).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._validation import check_choice
from ..ot.tools import soft_sort
from .als import alternating_least_squares, svd_initialization
from .nmf import nmf, nmf_initialization
from .quantile_normalization import (
    DEFAULT_EPSILON,
    QuantileNormalization,
    _positive_float,
    _positive_int,
    interpolate_rows,
    masked_soft_sort,
)

__all__ = ["QuantileNormalizedFactorization", "as_matrix"]

NORMALIZE = ("input", "output", "both", "none")
LOSSES = ("squared", "kl")
_KL_DELTA = 1e-20


def as_matrix(fn: str, name: str, value: object, dtype: torch.dtype = torch.float64
              ) -> torch.Tensor:
    """A (d, n) real matrix (tensor, numpy array or nested lists) as a new float tensor."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{fn}: {name} must be a (d, n) numeric matrix, got "
                            f"{type(value).__name__} ({error})") from None
        if array.dtype == object or array.dtype.kind not in "biuf":
            raise TypeError(f"{fn}: {name} must hold numbers, got numpy dtype {array.dtype}; "
                            "convert non-numeric cells first")
        tensor = torch.from_numpy(array.astype(np.float64, copy=True))
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{fn}: {name} must be real-valued, got dtype {tensor.dtype}")
    if tensor.ndim != 2:
        raise ValueError(f"{fn}: {name} must be a (d, n) matrix, got shape "
                         f"{tuple(tensor.shape)}")
    return tensor.to(dtype=dtype, copy=True)


class QuantileNormalizedFactorization:
    """Rank-r factorization of a (d, n) matrix through learned row-wise quantile
    normalizations (Cuturi, Teboul, Niles-Weed & Vert, ICML 2020); see the module
    docstring for what each ``normalize`` mode computes.

    Args:
        rank: r >= 1 (at most min(d, n), checked by :meth:`fit`).
        normalize: "both" (QMFQ, default), "output" (QMF), "input" or "none".
        nonnegative: nonnegative factors: exp-parameterized free factors, NMF as the
            unrolled solver (its input targets kept > 0).
        loss: "squared" (row-variance weighted, default) or "kl" (generalized KL).
        num_quantiles: m >= 2 targets per row and per normalization.
        epsilon: entropic regularization of the soft quantile normalizations.
        init: targets' initialization, "data" (rows' empirical quantiles) or "uniform".
        regularization: lambda >= 0 on the free factors' parameters.
        solver_iterations: steps of the unrolled solver ("input", "both"); default 100
            NMF updates, or 10 ALS sweeps.
        ridge: rho > 0 of the unrolled ALS.
        seed: seeds every random initialization.
        sinkhorn_kwargs: options of :func:`~lutece.ot.sinkhorn` for the soft operators.

    Cost per epoch: a few Sinkhorn solves on d rows of n entries against m targets plus,
    for "input"/"both", the unrolled solver. On small matrices many tiny operations
    dominate, and ``torch.set_num_threads(1)`` is often faster than several threads.

    Attributes (after :meth:`fit`):
        U_: (d, r) row factors; V_: (r, n) column factors of the training matrix (for
            "input"/"both", those the unrolled solver returns at the learned targets).
        input_targets_, output_targets_: (d, m) learned targets (None when unused).
        targets_: the output targets if any, else the input targets (None for "none").
        reconstruction_: (d, n) the prediction in data space, every entry (held-out too).
        loss_history_: the training loss after each epoch.
        n_features_, n_samples_: d and n.
    """

    def __init__(self, rank: int, *, normalize: str = "both", nonnegative: bool = False,
                 loss: str = "squared", num_quantiles: int = 16,
                 epsilon: float = DEFAULT_EPSILON, init: str = "data",
                 regularization: float = 0.0, solver_iterations: int | None = None,
                 ridge: float = 1e-3, seed: int = 0,
                 sinkhorn_kwargs: dict[str, Any] | None = None) -> None:
        fn = "QuantileNormalizedFactorization"
        self.rank = _positive_int(fn, "rank", rank, 1)
        check_choice(fn, "normalize", normalize, NORMALIZE)
        check_choice(fn, "loss", loss, LOSSES)
        check_choice(fn, "init", init, ("data", "uniform"))
        if not isinstance(nonnegative, bool):
            raise TypeError(f"{fn}: nonnegative must be a bool, got {type(nonnegative).__name__}")
        if loss == "kl" and normalize == "none" and not nonnegative:
            raise ValueError(f"{fn}: loss='kl' needs a positive prediction: with "
                             "normalize='none' pass nonnegative=True")
        self.normalize = normalize
        self.nonnegative = nonnegative
        self.loss = loss
        self.num_quantiles = _positive_int(fn, "num_quantiles", num_quantiles, 2)
        self.epsilon = _positive_float(fn, "epsilon", epsilon)
        self.init = init
        if isinstance(regularization, bool) or not isinstance(regularization, (int, float)) \
                or not (math.isfinite(regularization) and regularization >= 0):
            raise ValueError(f"{fn}: regularization must be a number >= 0, got "
                             f"{regularization!r}")
        self.regularization = float(regularization)
        default_steps = 100 if nonnegative else 10
        self.solver_iterations = default_steps if solver_iterations is None else \
            _positive_int(fn, "solver_iterations", solver_iterations, 1)
        self.ridge = _positive_float(fn, "ridge", ridge)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"{fn}: seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        if sinkhorn_kwargs is not None and not isinstance(sinkhorn_kwargs, dict):
            raise TypeError(f"{fn}: sinkhorn_kwargs must be a dict or None, got "
                            f"{type(sinkhorn_kwargs).__name__}")
        self.sinkhorn_kwargs = dict(sinkhorn_kwargs or {})

    # ------------------------------------------------------------------ public API
    def fit(self, X: object, mask: object = None, epochs: int = 300, lr: float = 1e-2,
            progress: bool = True) -> QuantileNormalizedFactorization:
        """Learn the factors and the targets on the observed entries of X.

        Args:
            X: (d, n) real matrix (tensor, numpy array). Finite at observed entries;
                unobserved ones are ignored (may be NaN). Never modified.
            mask: (d, n) bool, True where X is observed (default: all). Every row needs
                at least 2 observed entries.
            epochs: full-batch Adam steps (>= 1).
            lr: Adam's learning rate (> 0).
            progress: show a tqdm bar with the loss.

        Returns:
            self, with the learned attributes set.
        """
        fn = "QuantileNormalizedFactorization.fit"
        epochs = _positive_int(fn, "epochs", epochs, 1)
        lr = _positive_float(fn, "lr", lr)
        if not isinstance(progress, bool):
            raise TypeError(f"{fn}: progress must be a bool, got {type(progress).__name__}")
        x, observed = self._check_data(fn, X, mask)
        d, n = x.shape
        if self.rank > min(d, n):
            raise ValueError(f"{fn}: rank must be <= min(d, n) = {min(d, n)} for X of shape "
                             f"({d}, {n}), got {self.rank}")
        generator = torch.Generator().manual_seed(self.seed)
        self._x = x
        self._mask = observed
        self._weight_row = _row_weights(x, observed, self.loss)
        self._filled = _fill_missing(x, observed)
        self._observed_or_none = None if bool(observed.all()) else observed
        self._build(generator)
        parameters = list(self._parameters())
        optimizer = torch.optim.Adam(parameters, lr=lr)
        history: list[float] = []
        bar = tqdm(range(epochs), desc=f"factorize ({self.normalize})", disable=not progress,
                   leave=False)
        for _ in bar:
            optimizer.zero_grad()
            prediction, _, _ = self._forward()
            value = self._objective(prediction)
            value.backward()
            optimizer.step()
            history.append(float(value.detach()))
            if progress:
                bar.set_postfix(loss=f"{history[-1]:.4g}")
        with torch.no_grad():
            prediction, u, v = self._forward()
        self.U_, self.V_ = u.detach().clone(), v.detach().clone()
        self.reconstruction_ = prediction.detach().clone()
        self.input_targets_ = None if self._input is None else \
            self._input.targets.detach().clone()
        self.output_targets_ = None if self._output is None else \
            self._output.targets.detach().clone()
        self.targets_ = self.output_targets_ if self.output_targets_ is not None else \
            self.input_targets_
        if self.normalize == "output":
            with torch.no_grad():
                self._output_knots = self._sorted_values(self.U_ @ self.V_, observed)
        self.loss_history_ = history
        self.n_features_, self.n_samples_ = d, n
        return self

    def reconstruct(self) -> torch.Tensor:
        """(d, n) the fitted prediction of the training matrix in data space (every entry,
        held-out ones included): see the module docstring for each mode."""
        self._check_fitted("reconstruct")
        return self.reconstruction_.clone()

    def normalized(self, X: object, mask: object = None) -> torch.Tensor:
        """X (d, n') expressed in the space where it is factorized, row by row:

        * "input", "both": QN_in(X) onto the learned input targets;
        * "output": the inverse of the learned output operator, the monotone
          piecewise-linear map per row sending t_out_j to the soft-sorted values of the
          fitted U V row in bin j (constant beyond the first and last targets);
        * "none": X itself.

        Unobserved entries (``mask`` False; may be NaN) are replaced by their row's
        observed median first. Returns a new (d, n') float64 tensor."""
        fn = "QuantileNormalizedFactorization.normalized"
        self._check_fitted("normalized")
        x, observed = self._check_data(fn, X, mask, rows=self.n_features_)
        filled = _fill_missing(x, observed)
        with torch.no_grad():
            return self._normalize(filled, observed)

    def transform(self, X: object, mask: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(U_, V) with V (r, n') the column factors of X (d, n') for the learned row
        factors U_: V fits :meth:`normalized` (X) on the observed entries, by one ridge
        least-squares solve per column (rows weighted as in training), or by 200
        multiplicative NMF updates of V alone when ``nonnegative``."""
        fn = "QuantileNormalizedFactorization.transform"
        self._check_fitted("transform")
        x, observed = self._check_data(fn, X, mask, rows=self.n_features_)
        with torch.no_grad():
            target = self._normalize(_fill_missing(x, observed), observed)
            weight = observed.to(x.dtype) * _row_weights(target, observed, "squared")
            u = self.U_
            if self.nonnegative:
                v = torch.ones(self.rank, x.shape[1], dtype=x.dtype)
                target = target.clamp_min(0)
                for _ in range(200):
                    v = v * (u.T @ (weight * target)) / (u.T @ (weight * (u @ v)) + 1e-12)
            else:
                identity = self.ridge * torch.eye(self.rank, dtype=x.dtype)
                gram = torch.einsum("ij,ia,ib->jab", weight, u, u) + identity
                rhs = (u.T @ (weight * target)).T.unsqueeze(-1)
                v = torch.linalg.solve(gram, rhs).squeeze(-1).T
        return self.U_.clone(), v

    # ------------------------------------------------------------------ internals
    def _check_data(self, fn: str, X: object, mask: object, rows: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = as_matrix(fn, "X", X)
        if rows is not None and x.shape[0] != rows:
            raise ValueError(f"{fn}: X must have the {rows} rows (features) of the fitted "
                             f"matrix, got shape {tuple(x.shape)}")
        if mask is None:
            observed = torch.ones_like(x, dtype=torch.bool)
            bad = ~torch.isfinite(x)
            if bool(bad.any()):
                raise ValueError(f"{fn}: X contains {int(bad.sum())} NaN or infinite "
                                 "value(s); to treat NaN as missing, pass "
                                 "mask=~torch.isnan(X)")
        else:
            if isinstance(mask, np.ndarray):
                mask = torch.from_numpy(mask)
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise TypeError(f"{fn}: mask must be a bool tensor (True = observed), got "
                                f"{got}")
            if mask.shape != x.shape:
                raise ValueError(f"{fn}: mask must have X's shape {tuple(x.shape)}, got "
                                 f"{tuple(mask.shape)}")
            observed = mask.clone()
            bad = observed & ~torch.isfinite(x)
            if bool(bad.any()):
                raise ValueError(f"{fn}: X has {int(bad.sum())} NaN or infinite value(s) at "
                                 "observed entries (mask True); mark them False in mask")
        counts = observed.sum(-1)
        if bool((counts < 2).any()):
            row = int(torch.nonzero(counts < 2)[0])
            raise ValueError(f"{fn}: every row needs at least 2 observed entries; row {row} "
                             f"has {int(counts[row])}")
        if self.loss == "kl" and bool((x[observed] < 0).any()):
            raise ValueError(f"{fn}: loss='kl' needs X >= 0 at observed entries, got a "
                             f"minimum of {float(x[observed].min())}; use loss='squared'")
        return x, observed

    def _check_fitted(self, method: str) -> None:
        if not hasattr(self, "U_"):
            raise RuntimeError(f"QuantileNormalizedFactorization.{method}: call fit(X) first")

    def _build(self, generator: torch.Generator) -> None:
        x, mask, m = self._x, self._mask, self.num_quantiles
        d, n = x.shape
        options = dict(epsilon=self.epsilon, init=self.init, **self.sinkhorn_kwargs)
        self._input = self._output = None
        self._factors: nn.ParameterList | None = None
        self._inverse_knots = None
        if self.normalize in ("input", "both"):
            self._input = QuantileNormalization(d, m, nonnegative=self.nonnegative, **options)
            self._input.reset_parameters(x, mask)
        if self.normalize in ("output", "both"):
            self._output = QuantileNormalization(d, m, nonnegative=self.loss == "kl",
                                                 **options)
            self._output.reset_parameters(x, mask)
        if self.normalize == "input":
            # the data values QN_in sends to its j-th target: soft-sorted rows, bin means
            self._inverse_knots = self._sorted_values(self._filled, self._mask)
        if self.normalize in ("input", "both"):
            self._nmf_init = nmf_initialization(torch.ones_like(x), self.rank,
                                                generator=generator) \
                if self.nonnegative else None
            return
        u, v = self._initial_factors(generator)
        if self.nonnegative:
            u, v = u.clamp_min(1e-8).log(), v.clamp_min(1e-8).log()
        self._factors = nn.ParameterList([nn.Parameter(u.contiguous()),
                                          nn.Parameter(v.contiguous())])

    def _initial_factors(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask, r = self._x, self._mask, self.rank
        if self.normalize == "output":
            target = _row_levels(x, mask)
        else:
            target = torch.where(mask, x, 0.0)
        weight = mask.to(x.dtype) * _row_weights(target, mask, "squared")
        if self.nonnegative:
            target = target.clamp_min(0)
            start = nmf_initialization(target, r, mask, generator=generator)
            return nmf(target, r, weight=weight, iterations=50, init=start)
        if self.normalize == "output":
            return svd_initialization(target, r, mask)
        return alternating_least_squares(target, r, weight=weight, ridge=self.ridge,
                                         iterations=10)

    def _parameters(self) -> Iterator[nn.Parameter]:
        for module in (self._input, self._output, self._factors):
            if module is not None:
                yield from module.parameters()

    def _factorize(self, normalized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unrolled solver on X' = normalized (d, n) ("input", "both")."""
        mask = self._mask
        weight = mask.to(normalized.dtype) * _row_weights(normalized.detach(), mask,
                                                          "squared")
        observed = torch.where(mask, normalized, torch.zeros_like(normalized))
        if self.nonnegative:
            scale = (observed.detach().sum() / mask.sum() / self.rank).clamp_min(1e-12).sqrt()
            start = (self._nmf_init[0] * scale, self._nmf_init[1] * scale)
            return nmf(observed, self.rank, weight=weight, iterations=self.solver_iterations,
                       init=start)
        return alternating_least_squares(observed, self.rank, weight=weight, ridge=self.ridge,
                                         iterations=self.solver_iterations)

    def _forward(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prediction in data space (d, n), U, V) at the current parameters."""
        if self._factors is not None:
            u, v = self._factors[0], self._factors[1]
            if self.nonnegative:
                u, v = u.exp(), v.exp()
        else:
            u, v = self._factorize(self._input(self._filled, self._observed_or_none))
        product = u @ v
        if self._output is not None:
            prediction = self._output(product, self._observed_or_none)
        elif self._input is not None:
            prediction = interpolate_rows(product, self._input.targets, self._inverse_knots)
        else:
            prediction = product
        return prediction, u, v

    def _objective(self, prediction: torch.Tensor) -> torch.Tensor:
        x, mask = self._x, self._mask
        target = torch.where(mask, x, torch.zeros_like(x))
        if self.loss == "squared":
            entries = (target - prediction).pow(2)
        else:
            entries = target * torch.log((target + _KL_DELTA) / (prediction + _KL_DELTA)) \
                - target + prediction
        value = (entries * self._weight_row)[mask].mean()
        if self.regularization and self._factors is not None:
            u, v = self._factors[0], self._factors[1]
            value = value + self.regularization * (u.pow(2).mean() + v.pow(2).mean()) / 2
        return value

    def _normalize(self, filled: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        if self.normalize in ("input", "both"):
            return self._input(filled, None if bool(observed.all()) else observed).detach()
        if self.normalize == "output":
            return interpolate_rows(filled, self.output_targets_, self._output_knots)
        return filled.clone()

    def _sorted_values(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(d, m) soft-sorted values of each row's observed entries, bin by bin."""
        options = {"warn": False, **self.sinkhorn_kwargs}
        if bool(mask.all()):
            return soft_sort.sort(x, num_targets=self.num_quantiles, epsilon=self.epsilon,
                                  **options)
        return masked_soft_sort(x, mask, self.num_quantiles, epsilon=self.epsilon, **options)

    def __repr__(self) -> str:
        return (f"QuantileNormalizedFactorization(rank={self.rank}, "
                f"normalize={self.normalize!r}, nonnegative={self.nonnegative}, "
                f"loss={self.loss!r}, num_quantiles={self.num_quantiles}, "
                f"epsilon={self.epsilon:g}, init={self.init!r})")


def _row_weights(x: torch.Tensor, mask: torch.Tensor, loss: str) -> torch.Tensor:
    """(d, 1) per-row loss weights: 1 / variance of the observed entries ("squared") or
    1 / their mean ("kl"); 1 where that is 0."""
    weight = mask.to(x.dtype)
    values = torch.where(mask, x, torch.zeros_like(x))
    count = weight.sum(-1, keepdim=True).clamp_min(1)
    mean = values.sum(-1, keepdim=True) / count
    if loss == "kl":
        spread = mean
    else:
        spread = ((values - mean).pow(2) * weight).sum(-1, keepdim=True) / count
    return torch.where(spread > 0, 1.0 / spread, torch.ones_like(spread))


def _fill_missing(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x with unobserved entries replaced by their row's observed median (a new tensor)."""
    if bool(mask.all()):
        return x.clone()
    median = torch.nanmedian(torch.where(mask, x, torch.nan), dim=-1, keepdim=True).values
    return torch.where(mask, x, median)


def _row_levels(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each observed entry's empirical CDF level in its row, (rank + 1/2) / count, with
    unobserved entries at 1/2: a scale-free view of X."""
    keyed = torch.where(mask, x, torch.inf)
    ranks = keyed.argsort(dim=-1, stable=True).argsort(dim=-1).to(x.dtype)
    count = mask.sum(-1, keepdim=True).to(x.dtype)
    return torch.where(mask, (ranks + 0.5) / count, torch.full_like(x, 0.5))
