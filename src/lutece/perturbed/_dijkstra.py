"""Batched Dijkstra on grids of cell costs (numba): ``shortest_path_grid``'s fallback for
grids that the vectorized sweeps (``_sweeping.py``) do not settle quickly, and their oracle
in the tests.

A path goes from cell (0, 0) to cell (H-1, W-1) moving to any of the 8 neighbours; its cost
is the sum of the costs of the cells it visits, both ends included (the Warcraft
shortest-path benchmark of Vlastelica et al. 2020 used by Berthet et al. 2020). Costs must be
non-negative.

Implementation: the grid is padded with a border of "wall" cells so that neighbours are
fixed index offsets with no bounds checks, and the priority queue is an indexed binary heap
with decrease-key (at most H*W entries, no stale duplicates). Ties between equally short
paths are broken deterministically. One thread: numba's OpenMP layer shares its thread
count with torch's, so a parallel kernel here would change torch's setting as a side effect.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["grid_shortest_paths"]

_UNSEEN, _QUEUED, _DONE, _WALL = 0, 1, 2, 3


@njit(cache=True, inline="always")
def _sift_up(keys, nodes, position, i, key, node):
    """Place (key, node) at heap slot i or above. Keys live in the heap itself (no
    indirection through the distance array), which keeps the comparisons cache-local."""
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] <= key:
            break
        keys[i] = keys[parent]
        nodes[i] = nodes[parent]
        position[nodes[i]] = i
        i = parent
    keys[i] = key
    nodes[i] = node
    position[node] = i


@njit(cache=True, inline="always")
def _pop(keys, nodes, position, size):
    """Remove the minimum; returns (node, new size)."""
    top = nodes[0]
    size -= 1
    if size > 0:
        key = keys[size]
        node = nodes[size]
        i = 0
        while True:
            child = 2 * i + 1
            if child >= size:
                break
            if child + 1 < size and keys[child + 1] < keys[child]:
                child += 1
            if key <= keys[child]:
                break
            keys[i] = keys[child]
            nodes[i] = nodes[child]
            position[nodes[i]] = i
            i = child
        keys[i] = key
        nodes[i] = node
        position[node] = i
    return top, size


@njit(cache=True)
def grid_shortest_paths(costs, paths):
    """costs: (B, H, W) float32/float64 >= 0 (distances accumulate in that dtype); fills
    paths (B, H, W) with the 0/1 optimal path."""
    batch, height, width = costs.shape
    padded_width = width + 2
    num_padded = (height + 2) * padded_width
    offsets = np.array([-padded_width - 1, -padded_width, -padded_width + 1, -1, 1,
                        padded_width - 1, padded_width, padded_width + 1])
    walls = np.full(num_padded, _WALL, dtype=np.int8)
    for r in range(height):
        for c in range(width):
            walls[(r + 1) * padded_width + c + 1] = _UNSEEN
    state = np.empty(num_padded, dtype=np.int8)
    cell_cost = np.zeros(num_padded, dtype=costs.dtype)
    distance = np.empty(num_padded, dtype=costs.dtype)
    previous = np.empty(num_padded, dtype=np.int64)
    position = np.empty(num_padded, dtype=np.int64)
    heap_keys = np.empty(height * width, dtype=costs.dtype)
    heap_nodes = np.empty(height * width, dtype=np.int64)
    start = padded_width + 1
    target = height * padded_width + width
    for b in range(batch):
        state[:] = walls
        for r in range(height):
            row = (r + 1) * padded_width + 1
            for c in range(width):
                cell_cost[row + c] = costs[b, r, c]
        distance[start] = cell_cost[start]
        previous[start] = -1
        state[start] = _QUEUED
        heap_keys[0] = distance[start]
        heap_nodes[0] = start
        position[start] = 0
        size = 1
        while size > 0:
            node, size = _pop(heap_keys, heap_nodes, position, size)
            state[node] = _DONE
            if node == target:
                break
            base = distance[node]
            for k in range(8):
                neighbour = node + offsets[k]
                status = state[neighbour]
                if status >= _DONE:
                    continue
                candidate = base + cell_cost[neighbour]
                if status == _UNSEEN:
                    distance[neighbour] = candidate
                    previous[neighbour] = node
                    state[neighbour] = _QUEUED
                    _sift_up(heap_keys, heap_nodes, position, size, candidate, neighbour)
                    size += 1
                elif candidate < distance[neighbour]:
                    distance[neighbour] = candidate
                    previous[neighbour] = node
                    _sift_up(heap_keys, heap_nodes, position, position[neighbour], candidate,
                             neighbour)
        paths[b] = 0.0
        node = target
        while node != -1:
            paths[b, node // padded_width - 1, node % padded_width - 1] = 1.0
            node = previous[node]
