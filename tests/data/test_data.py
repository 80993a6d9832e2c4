"""Synthetic datasets: seeded, shaped as documented, labels that are right by construction
(the Warcraft paths are optimal for the hidden costs, checked against scipy)."""

import pytest
import torch
import torch.nn.functional as F

from lutece.data import TERRAIN_COSTS, label_ranking_data, mean_spearman, warcraft_maps
from tests.perturbed.test_solvers import _grid_reference_cost


def test_warcraft_maps_are_seeded_shaped_and_labelled_optimally():
    maps = warcraft_maps(6, grid=7, tile=5, seed=3)
    assert maps.images.shape == (6, 3, 35, 35) and len(maps) == 6
    assert maps.images.min() >= 0 and maps.images.max() <= 1
    assert set(maps.terrain.unique().tolist()) <= set(range(len(TERRAIN_COSTS)))
    assert torch.equal(maps.costs, torch.tensor(TERRAIN_COSTS)[maps.terrain])
    for costs, path in zip(maps.costs, maps.paths):
        assert (costs * path).sum().item() == pytest.approx(
            _grid_reference_cost(costs.double().numpy()), rel=1e-6)
    again = warcraft_maps(6, grid=7, tile=5, seed=3)
    assert torch.equal(maps.images, again.images)
    image, costs, path = maps[2]
    assert image.shape == (3, 35, 35) and costs.shape == path.shape == (7, 7)


def test_warcraft_textures_are_shared_across_seeds():
    # A model trained on one seed's maps must be able to read another's.
    first, second = warcraft_maps(20, 6, 4, seed=0), warcraft_maps(20, 6, 4, seed=1)
    for kind in range(len(TERRAIN_COSTS)):
        colours = [F.avg_pool2d(m.images, 4).permute(0, 2, 3, 1)[m.terrain == kind].mean(0)
                   for m in (first, second)]
        torch.testing.assert_close(colours[0], colours[1], atol=0.03, rtol=0)


def test_warcraft_errors():
    with pytest.raises(ValueError, match="grid >= 2"):
        warcraft_maps(3, grid=1)


def test_label_ranking_data_and_metric():
    (x, ranks), (x_test, ranks_test) = label_ranking_data(30, 40, 5, 4, seed=0)
    assert x.shape == (30, 5) and ranks.shape == (30, 4) and x_test.shape == (40, 5)
    torch.testing.assert_close(ranks.sum(1), torch.full((30,), 10.0))
    assert mean_spearman(ranks, ranks) == pytest.approx(1.0)
    assert mean_spearman(-ranks, ranks) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        label_ranking_data(0, 1, 1, 1, seed=0)


def test_mean_spearman_errors():
    with pytest.raises(ValueError, match="mean_spearman: scores and target_ranks"):
        mean_spearman(torch.zeros(3, 4), torch.zeros(3, 5))


def test_ot_benchmark_clouds_and_their_mean_cost():
    import numpy as np
    from scipy.spatial.distance import cdist

    from lutece.data import mean_squared_distance, ot_benchmark_clouds

    x, y, a, b = ot_benchmark_clouds(50, 3, seed=4)
    assert x.shape == y.shape == (50, 3) and x.dtype == np.float32
    assert np.isclose(a.sum(), 1, atol=1e-6) and (b > 0).all()
    again = ot_benchmark_clouds(50, 3, seed=4)
    assert all(np.array_equal(p, q) for p, q in zip((x, y, a, b), again))
    brute_force = cdist(x.astype(np.float64), y.astype(np.float64), "sqeuclidean").mean()
    assert np.isclose(mean_squared_distance(x, y), brute_force, rtol=1e-12)
