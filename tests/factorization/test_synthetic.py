"""The synthetic generator: the paper's recipe (Poisson U, Dirichlet V, rows hard
quantile-normalized onto cumsum(exp(2 N(0, 1)))), random monotone maps, outliers, seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lutece.factorization import distorted_low_rank


def test_paper_generator_is_a_monotone_map_of_a_low_rank_matrix():
    data = distorted_low_rank(20, 50, 4, seed=0)
    assert data.X.shape == data.clean.shape == (20, 50)
    assert int(torch.linalg.matrix_rank(data.clean)) == 4
    torch.testing.assert_close(data.clean, data.U @ data.V)
    assert bool((data.U == data.U.round()).all()) and bool((data.U >= 0).all())
    torch.testing.assert_close(data.V.sum(0), torch.ones(50, dtype=torch.float64))
    for i in range(20):
        order = torch.argsort(data.clean[i])
        assert bool((data.X[i][order].diff() > 0).all())   # same order, distinct values
    assert not bool(data.outliers.any())
    torch.testing.assert_close(data.X, data.distorted)


def test_random_maps_are_increasing_positive_and_outliers_are_added():
    data = distorted_low_rank(30, 60, 3, distortion="random", outlier_fraction=0.1, seed=1)
    for i in range(30):
        order = torch.argsort(data.clean[i])
        assert bool((data.distorted[i][order].diff() >= 0).all())
    assert bool((data.distorted > 0).all())
    assert 0.05 < float(data.outliers.double().mean()) < 0.15
    assert bool((data.X[data.outliers] > data.distorted[data.outliers]).all())
    torch.testing.assert_close(data.X[~data.outliers], data.distorted[~data.outliers])


def test_seed_reproduces_and_changes_the_matrix():
    first = distorted_low_rank(5, 8, 2, distortion="random", seed=3)
    again = distorted_low_rank(5, 8, 2, distortion="random", seed=3)
    other = distorted_low_rank(5, 8, 2, distortion="random", seed=4)
    torch.testing.assert_close(first.X, again.X)
    assert not np.allclose(first.X.numpy(), other.X.numpy())


@pytest.mark.parametrize("kwargs, match", [
    ({"rank": 1}, "rank must be an int >= 2"),
    ({"distortion": "log"}, "distortion must be one of"),
    ({"outlier_fraction": 1.0}, r"outlier_fraction must be in \[0, 1\)"),
    ({"poisson_lam": 0.0}, "poisson_lam must be > 0"),
])
def test_generator_errors(kwargs, match):
    arguments = {"d": 5, "n": 8, "rank": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        distorted_low_rank(**arguments)
