"""Fixed row-wise normalizations with their inverses, and the held-out score.

The ad-hoc preprocessings that learned quantile normalization replaces (Cuturi, Teboul,
Niles-Weed & Vert, ICML 2020): each is fitted on the observed entries of a (d, n) matrix
(rows = features), applied before a plain low-rank fit, and inverted afterwards so that
every method is scored on the same original data scale:

* ``none``: X itself.
* ``log1p``: log(1 + X - c_i), c_i = min(0, min of row i) (so that any row is valid).
* ``zscore``: (X - mean_i) / std_i per row.
* ``quantile``: scikit-learn's ``QuantileTransformer(output_distribution="normal")``
  fitted per feature (row): the fixed, hard quantile normalization onto Gaussian
  quantiles; its inverse interpolates the empirical quantiles back.
* ``tfidf``: term frequency times inverse document frequency (Salton & Buckley, "Term-
  weighting approaches in automatic text retrieval", 1988) with rows as terms and
  columns as documents: Y_ij = X_ij / sum_k X_kj * idf_i, idf_i = log((1 + n) / (1 + df_i))
  + 1 (scikit-learn's smoothed idf), df_i the number of columns where row i is > 0;
  needs X >= 0. Column sums run over observed entries.

:func:`heldout_error` is the score: mean squared (or absolute) error on held-out entries
in units of each row's standard deviation.
"""

from __future__ import annotations

import torch

from .._validation import check_choice
from .models import QuantileNormalizedFactorization

__all__ = ["Normalizer", "Identity", "Log1p", "ZScore", "FixedQuantile", "TfIdf",
           "BASELINES", "make_normalizer", "fit_baseline", "heldout_error"]


class Normalizer:
    """A row-wise normalization of (d, n) matrices, fitted on the observed entries, with an
    inverse. ``forward`` and ``inverse`` return new tensors and accept any (d, n') matrix
    with the fitted rows (column-wise statistics, tf-idf's column sums, need n' = n)."""

    name = "base"

    def fit(self, x: torch.Tensor, mask: torch.Tensor) -> Normalizer:
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _observed(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask, x, torch.nan)


class Identity(Normalizer):
    name = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.clone()


class Log1p(Normalizer):
    name = "log1p"

    def fit(self, x: torch.Tensor, mask: torch.Tensor) -> Log1p:
        low = torch.nan_to_num(_observed(x, mask), nan=torch.inf).amin(-1, keepdim=True)
        self.shift_ = low.clamp_max(0.0)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p((x - self.shift_).clamp_min(0.0))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.expm1(y) + self.shift_


class ZScore(Normalizer):
    name = "zscore"

    def fit(self, x: torch.Tensor, mask: torch.Tensor) -> ZScore:
        observed = _observed(x, mask)
        self.mean_ = torch.nanmean(observed, -1, keepdim=True)
        std = torch.nanmean((observed - self.mean_).pow(2), -1, keepdim=True).sqrt()
        self.std_ = torch.where(std > 0, std, torch.ones_like(std))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean_) / self.std_

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std_ + self.mean_


class FixedQuantile(Normalizer):
    """scikit-learn's QuantileTransformer onto standard normal quantiles, per row."""

    name = "quantile"

    def fit(self, x: torch.Tensor, mask: torch.Tensor) -> FixedQuantile:
        from sklearn.preprocessing import QuantileTransformer

        observed = _observed(x, mask).numpy().T                      # (n, d) samples x features
        count = int(mask.sum(-1).min())
        self.transformer_ = QuantileTransformer(n_quantiles=max(2, min(1000, count)),
                                                output_distribution="normal", subsample=None)
        self.transformer_.fit(observed)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.transformer_.transform(x.numpy().T).T.copy())

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.transformer_.inverse_transform(y.numpy().T).T.copy())


class TfIdf(Normalizer):
    name = "tfidf"

    def fit(self, x: torch.Tensor, mask: torch.Tensor) -> TfIdf:
        values = torch.where(mask, x, torch.zeros_like(x))
        if bool((values < 0).any()):
            raise ValueError("tfidf: needs a matrix >= 0 (counts), got a minimum of "
                             f"{float(values.min())}; use another normalization")
        n = x.shape[1]
        document_frequency = (values > 0).sum(-1, keepdim=True).to(x.dtype)
        self.idf_ = torch.log((1 + n) / (1 + document_frequency)) + 1
        totals = values.sum(0, keepdim=True)
        self.column_sums_ = torch.where(totals > 0, totals, torch.ones_like(totals))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.column_sums_ * self.idf_

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.column_sums_ / self.idf_


BASELINES: dict[str, type[Normalizer]] = {
    "none": Identity, "log1p": Log1p, "zscore": ZScore, "quantile": FixedQuantile,
    "tfidf": TfIdf,
}


def make_normalizer(name: str) -> Normalizer:
    """A new, unfitted normalizer by name (one of :data:`BASELINES`)."""
    check_choice("make_normalizer", "name", name, tuple(BASELINES))
    return BASELINES[name]()


def fit_baseline(name: str, x: torch.Tensor, mask: torch.Tensor, rank: int, *,
                 epochs: int = 50, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """Normalize with ``name``, fit a plain rank-``rank`` factorization
    (``QuantileNormalizedFactorization(normalize="none")``: ALS start, then ``epochs``
    Adam steps) to the observed normalized entries, and map the reconstruction back.

    Returns:
        (d, n) the prediction in the original data space, every entry.
    """
    normalizer = make_normalizer(name).fit(x, mask)
    normalized = normalizer.forward(torch.where(mask, x, torch.nan))
    model = QuantileNormalizedFactorization(rank, normalize="none", seed=seed)
    model.fit(normalized, mask, epochs=epochs, progress=progress)
    return normalizer.inverse(model.reconstruct())


def heldout_error(prediction: torch.Tensor, truth: torch.Tensor, heldout: torch.Tensor,
                  scale: torch.Tensor | None = None, *, metric: str = "mse") -> float:
    """The error on held-out entries in units of each row's spread s_i:
    mean ((prediction - truth) / s_i)^2 ("mse") or mean |prediction - truth| / s_i ("mae").

    Args:
        prediction, truth: (d, n) in the original data space.
        heldout: (d, n) bool, the entries scored.
        scale: (d, 1) s_i; default each row's standard deviation of ``truth`` over all its
            entries (1 where it is 0). An MSE of 1.0 is about that of predicting row means.
        metric: "mse" or "mae" (less dominated by a few wild predictions).
    """
    check_choice("heldout_error", "metric", metric, ("mse", "mae"))
    if scale is None:
        std = truth.std(-1, keepdim=True)
        scale = torch.where(std > 0, std, torch.ones_like(std))
    errors = ((prediction - truth) / scale)[heldout]
    return float(errors.pow(2).mean() if metric == "mse" else errors.abs().mean())
