"""Low-rank matrices distorted row by row by monotone maps: data with known ground truth.

The generator of Cuturi, Teboul, Niles-Weed & Vert (ICML 2020, "Supervised Quantile
Normalization for Low-rank Matrix Factorization"; reference code ``data.py``):

    U ~ Poisson(lambda = 2)^(d x r),  V_:,j ~ Dirichlet(0.5 * 1_r),  L = U V   (d, n)

and then each row of L is hard quantile-normalized onto its own increasing values
q^(i) = cumsum(exp(2 N(0, 1))) (n of them, one per entry): the entry of rank k in row i
becomes q^(i)_k. That monotone map per row is the *distortion*; a method that undoes it
recovers L up to an affine map per row.

``distortion="random"`` uses smooth random increasing maps instead, on the standardized
row z = (L_i - mean) / std:

    g_i(z) = h_i(beta_i z) + sum_{k=1..3} w_ik sigmoid(s_ik (z - c_ik)),
    h_i one of exp (convex), -exp(-.) (concave), sinh (heavy both tails), at random,
    beta ~ U(0.5, 1.5), w ~ Exp(1), s ~ U(2, 8), c ~ N(0, 1),

then shifted so that each row's minimum is 5% of its range above 0 (so the data suit
log1p, tf-idf and the KL loss). No single fixed transform (log, z-score) undoes all three
shapes. Optional heavy-tailed
outliers then add, to a fraction of the entries, outlier_scale * std(row) * |T|, T
a Student t with 3 degrees of freedom (finite variance, heavy tails).
A row of U with all entries equal (zero included) is redrawn: V's columns sum to 1, so it
would make L_i constant, with no order to recover (hence also rank >= 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_choice

__all__ = ["DistortedLowRank", "distorted_low_rank"]

DISTORTIONS = ("quantile", "random", "none")


@dataclass(frozen=True)
class DistortedLowRank:
    """A synthetic matrix and its ground truth (all (d, n) float64 unless said).

    Attributes:
        X: the observed matrix: distorted, plus outliers.
        clean: L = U V, the low-rank matrix before distortion.
        distorted: g_i(L_i) row by row, before outliers (the values to predict).
        outliers: bool, the entries that received an outlier.
        U: (d, r) and V: (r, n), the factors of ``clean``.
    """

    X: torch.Tensor
    clean: torch.Tensor
    distorted: torch.Tensor
    outliers: torch.Tensor
    U: torch.Tensor
    V: torch.Tensor


def distorted_low_rank(d: int, n: int, rank: int, *, distortion: str = "quantile",
                       poisson_lam: float = 2.0, dirichlet_alpha: float = 0.5,
                       log_quantile_gap_std: float = 2.0, outlier_fraction: float = 0.0,
                       outlier_scale: float = 3.0, seed: int = 0) -> DistortedLowRank:
    """A (d, n) rank-``rank`` matrix distorted by a monotone map per row (see the module).

    Args:
        d, n: rows (features) and columns (individuals), >= 2.
        rank: r >= 2 (with r = 1, Dirichlet columns are all ones and L has constant rows).
        distortion: "quantile" (the paper's: hard quantile normalization onto
            cumsum(exp(log_quantile_gap_std N(0, 1)))), "random" (smooth random maps) or
            "none".
        poisson_lam, dirichlet_alpha: of U's entries and V's columns (paper: 2.0, 0.5).
        log_quantile_gap_std: std of the log-gaps of the "quantile" targets (paper: 2.0).
        outlier_fraction: in [0, 1), the fraction of entries that get an outlier.
        outlier_scale: outliers are outlier_scale * std(row) * |Student-t(3)|, added.
        seed: seeds the only source of randomness (numpy's default_rng).

    Returns:
        A :class:`DistortedLowRank`; every entry of X is >= 0 for "quantile" and "random".
    """
    fn = "distorted_low_rank"
    for name, value, low in (("d", d, 2), ("n", n, 2), ("rank", rank, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    check_choice(fn, "distortion", distortion, DISTORTIONS)
    for name, value in (("poisson_lam", poisson_lam), ("dirichlet_alpha", dirichlet_alpha),
                        ("log_quantile_gap_std", log_quantile_gap_std),
                        ("outlier_scale", outlier_scale)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{fn}: {name} must be > 0, got {value!r}")
    if not (isinstance(outlier_fraction, (int, float)) and 0 <= outlier_fraction < 1):
        raise ValueError(f"{fn}: outlier_fraction must be in [0, 1), got {outlier_fraction!r}")
    rng = np.random.default_rng(seed)
    u = rng.poisson(poisson_lam, size=(d, rank)).astype(np.float64)
    # V's columns sum to 1, so a row of U with equal entries gives a constant row of L
    while (flat := (u == u[:, :1]).all(-1)).any():
        u[flat] = rng.poisson(poisson_lam, size=(int(flat.sum()), rank))
    v = rng.dirichlet(np.full(rank, float(dirichlet_alpha)), size=n).T        # (r, n)
    clean = u @ v
    if distortion == "quantile":
        values = np.cumsum(np.exp(log_quantile_gap_std * rng.standard_normal((d, n))), -1)
        ranks = np.argsort(np.argsort(clean, axis=-1, kind="stable"), axis=-1)
        distorted = np.take_along_axis(values, ranks, axis=-1)
    elif distortion == "random":
        std = clean.std(-1, keepdims=True)
        z = (clean - clean.mean(-1, keepdims=True)) / np.where(std > 0, std, 1.0)
        beta = rng.uniform(0.5, 1.5, size=(d, 1))
        shape = rng.integers(0, 3, size=(d, 1))
        base = np.where(shape == 0, np.exp(beta * z),
                        np.where(shape == 1, -np.exp(-beta * z), np.sinh(beta * z)))
        weights = rng.exponential(1.0, size=(d, 1, 3))
        slopes = rng.uniform(2.0, 8.0, size=(d, 1, 3))
        centers = rng.standard_normal((d, 1, 3))
        bumps = weights / (1 + np.exp(-slopes * (z[..., None] - centers)))
        mapped = base + bumps.sum(-1)
        low, high = mapped.min(-1, keepdims=True), mapped.max(-1, keepdims=True)
        distorted = mapped - low + 0.05 * (high - low)
    else:
        distorted = clean.copy()
    outliers = rng.random((d, n)) < outlier_fraction
    heavy = outlier_scale * distorted.std(-1, keepdims=True) * np.abs(rng.standard_t(3, (d, n)))
    x = distorted + np.where(outliers, heavy, 0.0)
    tensor = torch.from_numpy
    return DistortedLowRank(X=tensor(x), clean=tensor(clean), distorted=tensor(distorted),
                            outliers=tensor(outliers), U=tensor(u), V=tensor(v))
