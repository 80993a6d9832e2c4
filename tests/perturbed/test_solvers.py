"""Each solver against a brute-force reference: scipy's shortest_path on the grid graph,
enumeration of permutations, scipy.stats.rankdata, torch.sort/topk."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.sparse import lil_matrix
from scipy.sparse.csgraph import shortest_path
from scipy.stats import rankdata

from lutece.perturbed import solvers
from lutece.perturbed._dijkstra import grid_shortest_paths
from lutece.perturbed._sweeping import sweep_shortest_paths
from lutece.perturbed.solvers import (
    argmax_one_hot,
    assignment,
    ranks,
    shortest_path_grid,
    sort,
    topk_mask,
)


def _grid_reference_cost(costs: np.ndarray) -> float:
    """Vertex-weighted 8-neighbour shortest path by scipy: edge u->v weighs cost(v) (plus
    1e-12, since a sparse graph reads a zero weight as a missing edge)."""
    height, width = costs.shape
    graph = lil_matrix((height * width, height * width))
    for r, c in itertools.product(range(height), range(width)):
        for dr, dc in itertools.product((-1, 0, 1), repeat=2):
            rr, cc = r + dr, c + dc
            if (dr or dc) and 0 <= rr < height and 0 <= cc < width:
                graph[r * width + c, rr * width + cc] = costs[rr, cc] + 1e-12
    distances = shortest_path(graph.tocsr(), directed=True, indices=0)
    return costs[0, 0] + distances[-1]


def _is_connected_path(mask: np.ndarray) -> bool:
    height, width = mask.shape
    cells = {tuple(p) for p in np.argwhere(mask > 0.5)}
    if (0, 0) not in cells or (height - 1, width - 1) not in cells:
        return False
    seen, frontier = {(0, 0)}, [(0, 0)]
    while frontier:
        r, c = frontier.pop()
        for dr, dc in itertools.product((-1, 0, 1), repeat=2):
            nxt = (r + dr, c + dc)
            if nxt in cells and nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen == cells


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 5), (12, 12), (7, 13)])
def test_shortest_path_matches_scipy(shape):
    rng = np.random.default_rng(sum(shape))
    costs = rng.uniform(0.1, 10.0, size=(4, *shape))
    masks = shortest_path_grid(torch.tensor(costs)).numpy()
    for grid, mask in zip(costs, masks):
        assert _is_connected_path(mask)
        assert (grid * mask).sum() == pytest.approx(_grid_reference_cost(grid), rel=1e-10)


def test_shortest_path_batch_shape_dtype_and_zero_costs():
    costs = torch.rand(2, 3, 6, 6, dtype=torch.float32)
    costs[0, 0] = 0.0
    masks = shortest_path_grid(costs)
    assert masks.shape == costs.shape and masks.dtype == torch.float32
    assert masks[0, 0].sum() >= 6  # at least the diagonal's 6 cells


def test_shortest_path_negative_costs():
    costs = torch.rand(5, 5) - 0.2
    with pytest.raises(ValueError, match="costs must be >= 0"):
        shortest_path_grid(costs)
    clamped = shortest_path_grid(costs, clamp_negative=True)
    np.testing.assert_allclose(
        (costs.clamp_min(0) * clamped).sum().item(),
        _grid_reference_cost(costs.clamp_min(0).numpy()), rtol=1e-6, atol=1e-9)


def _random_grids(kind: str, shape, rng) -> np.ndarray:
    if kind == "uniform":
        return rng.uniform(0.1, 10.0, size=shape)
    if kind == "half_zero":  # plateaus of zero-cost cells: the path walk must not cycle
        return rng.uniform(0.0, 1.0, size=shape) * (rng.random(shape) < 0.5)
    if kind == "clamped_noise":  # what perturbed(shortest_path_grid) solves
        return np.clip(rng.random(shape) + 0.1 + 0.5 * rng.standard_normal(shape), 0, None)
    if kind == "all_zero":
        return np.zeros(shape)
    return rng.integers(0, 3, size=shape).astype(float)  # many equally short paths


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "half_zero", "clamped_noise", "all_zero", "ties"])
def test_sweeps_match_dijkstra_in_the_same_dtype(kind, dtype):
    """The vectorized sweeps (lanes of grids at once) against the heap Dijkstra: equal
    optimal costs in the costs' own arithmetic, connected paths, on every grid shape."""
    rng = np.random.default_rng(len(kind))
    for shape in [(1, 1), (1, 6), (6, 1), (2, 2), (9, 9), (7, 13), (30, 30)]:
        costs = _random_grids(kind, (37, *shape), rng).astype(dtype)
        swept, dijkstra = np.empty_like(costs), np.empty_like(costs)
        assert not sweep_shortest_paths(costs, swept, 16, 10_000).any()
        grid_shortest_paths(costs, dijkstra)
        for grid, mask, reference in zip(costs.astype(np.float64), swept, dijkstra):
            assert _is_connected_path(mask)
            assert (grid * mask).sum() == pytest.approx((grid * reference).sum(),
                                                        rel=1e-6, abs=1e-9)


def _serpentine(height: int, width: int) -> np.ndarray:
    """Walls (cost 1000) across every other row with one gap, alternating sides: the only
    cheap path winds back and forth, the worst case for sweeps."""
    costs = np.ones((height, width))
    for wall, row in enumerate(range(1, height - 1, 2)):
        costs[row, :] = 1000.0
        costs[row, width - 1 if wall % 2 == 0 else 0] = 1.0
    return costs


def test_maze_falls_back_to_dijkstra(monkeypatch):
    costs = _serpentine(21, 15)
    expected = _grid_reference_cost(costs)
    paths = np.empty((1, *costs.shape))
    assert sweep_shortest_paths(costs[None], paths, 4, 3).all()  # 3 sweeps cannot settle it
    for max_sweeps in (3, 10_000):  # Dijkstra fallback, then sweeps alone
        monkeypatch.setattr(solvers, "_MAX_SWEEPS", max_sweeps)
        mask = shortest_path_grid(torch.tensor(np.stack([costs, costs + 1]))).numpy()
        assert all(_is_connected_path(grid_mask) for grid_mask in mask)
        assert (costs * mask[0]).sum() == pytest.approx(expected, rel=1e-12)
        assert (costs + 1)[mask[1] > 0].sum() == pytest.approx(
            _grid_reference_cost(costs + 1), rel=1e-12)


def test_large_grids_go_to_dijkstra_and_stay_exact():
    rng = np.random.default_rng(5)
    costs = rng.uniform(0.0, 1.0, size=(2, 70, 70))
    masks = shortest_path_grid(torch.tensor(costs)).numpy()  # 70x70, batch 2: Dijkstra
    assert not solvers._sweeps_win(2, 70 * 70) and solvers._sweeps_win(2, 64 * 64)
    for grid, mask in zip(costs, masks):
        assert _is_connected_path(mask)
        assert (grid * mask).sum() == pytest.approx(_grid_reference_cost(grid), rel=1e-10)


def test_shortest_path_clamps_inside_the_kernel():
    costs = torch.randn(3, 8, 8, dtype=torch.float64)
    clamped = shortest_path_grid(costs, clamp_negative=True)
    for grid, mask in zip(costs.clamp_min(0).numpy(), clamped.numpy()):
        assert (grid * mask).sum() == pytest.approx(_grid_reference_cost(grid), abs=1e-9)


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_assignment_matches_enumeration(n):
    rng = np.random.default_rng(n)
    scores = rng.normal(size=(3, n, n))
    result = assignment(torch.tensor(scores)).numpy()
    for matrix, permutation in zip(scores, result):
        best = max(sum(matrix[i, p[i]] for i in range(n))
                   for p in itertools.permutations(range(n)))
        assert (matrix * permutation).sum() == pytest.approx(best)
        np.testing.assert_array_equal(permutation.sum(0), np.ones(n))
        np.testing.assert_array_equal(permutation.sum(1), np.ones(n))


def test_vector_solvers_match_references():
    rng = np.random.default_rng(0)
    scores = torch.tensor(rng.normal(size=(5, 7)))
    np.testing.assert_array_equal(ranks(scores).numpy(), rankdata(scores.numpy(), axis=1))
    np.testing.assert_array_equal(sort(scores).numpy(), np.sort(scores.numpy(), axis=1))
    one_hot = argmax_one_hot(scores).numpy()
    np.testing.assert_array_equal(one_hot.argmax(1), scores.numpy().argmax(1))
    assert (one_hot.sum(1) == 1).all()
    mask = topk_mask(3)(scores).numpy()
    top3 = np.argsort(-scores.numpy(), axis=1)[:, :3]
    for row, top in zip(mask, top3):
        assert set(np.flatnonzero(row)) == set(top)
    # ranks maximize <y, theta> over the permutations of 1..n
    theta = scores[0].numpy()
    best = max(itertools.permutations(range(1, 8)), key=lambda p: np.dot(p, theta))
    np.testing.assert_array_equal(ranks(scores[0]).numpy(), best)


@pytest.mark.parametrize(
    "call, error, message",
    [(lambda: topk_mask(-1), ValueError, "k must be an int >= 0"),
     (lambda: topk_mask(4)(torch.randn(3)), ValueError, "k = 4 exceeds"),
     (lambda: assignment(torch.randn(2, 3)), ValueError, "must be square"),
     (lambda: shortest_path_grid(torch.randn(4)), ValueError, "at least 2 dimension"),
     (lambda: ranks(torch.tensor([1, 2])), TypeError, "floating-point"),
     (lambda: argmax_one_hot(torch.tensor([float("nan"), 1.0])), ValueError, "NaN"),
     (lambda: shortest_path_grid(torch.zeros(0, 3)), ValueError, "at least one cell")],
)
def test_solver_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
