"""Supervised quantile normalization for low-rank matrix factorization.

Cuturi, Teboul, Niles-Weed & Vert, "Supervised Quantile Normalization for Low-rank Matrix
Factorization", ICML 2020 (arXiv 2002.03229). Instead of fixing a normalization of a
(d, n) matrix (log, tf-idf, z-score) before factorizing it, learn row-wise quantile
normalization operators, built on the OT soft quantiles of
:mod:`lutece.ot.tools.soft_sort`, jointly with the factorization X ~ U V.

* :class:`QuantileNormalization`: the differentiable row-wise operator (nn.Module) onto
  learned, monotone-by-construction targets; :func:`hard_quantile_normalization` is its
  epsilon -> 0 limit; :func:`masked_quantile_normalization` fits it on observed entries.
* :class:`QuantileNormalizedFactorization`: the estimator (``normalize`` = "output" (the
  paper's QMF), "input", "both" (QMFQ) or "none"), ``fit`` / ``transform`` /
  ``reconstruct`` / ``normalized``.
* :func:`nmf` (unrolled Lee-Seung) and :func:`alternating_least_squares` (unrolled ridge
  ALS): the differentiable inner solvers of the "input" and "both" models.
* :func:`distorted_low_rank`: the paper's synthetic data (and smooth random monotone
  maps, heavy-tailed outliers), with ground truth.
* :mod:`.baselines`: fixed normalizations with inverses (none, log1p, z-score,
  scikit-learn's QuantileTransformer, tf-idf) and :func:`heldout_error`.
* :mod:`.io` / :mod:`.commands`: labelled CSV matrices and ``lutece factorize``.
"""

from .als import alternating_least_squares
from .baselines import BASELINES, fit_baseline, heldout_error, make_normalizer
from .io import LabelledMatrix, read_matrix_csv, write_matrix_csv
from .models import QuantileNormalizedFactorization
from .nmf import nmf
from .quantile_normalization import (
    QuantileNormalization,
    hard_quantile_normalization,
    masked_quantile_normalization,
    monotone_targets,
)
from .synthetic import DistortedLowRank, distorted_low_rank

__all__ = [
    "QuantileNormalization",
    "QuantileNormalizedFactorization",
    "hard_quantile_normalization",
    "masked_quantile_normalization",
    "monotone_targets",
    "nmf",
    "alternating_least_squares",
    "distorted_low_rank",
    "DistortedLowRank",
    "BASELINES",
    "make_normalizer",
    "fit_baseline",
    "heldout_error",
    "LabelledMatrix",
    "read_matrix_csv",
    "write_matrix_csv",
]
