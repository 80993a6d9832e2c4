"""Batched Dijkstra on grids of cell costs (numba), for ``shortest_path_grid``.

A path goes from cell (0, 0) to cell (H-1, W-1) moving to any of the 8 neighbours; its cost
is the sum of the costs of the cells it visits, both ends included (the Warcraft
shortest-path benchmark of Vlastelica et al. 2020 used by Berthet et al. 2020). Costs must be
non-negative. Ties between equally short paths are broken deterministically (the first
neighbour, in a fixed order, that reaches a cell at its final distance).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["grid_shortest_paths"]

_STEPS = np.array([(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)],
                  dtype=np.int64)


@njit(cache=True)
def _heap_push(keys, nodes, size, key, node):
    i = size
    keys[i] = key
    nodes[i] = node
    while i > 0:
        parent = (i - 1) // 2
        if keys[parent] <= keys[i]:
            break
        keys[parent], keys[i] = keys[i], keys[parent]
        nodes[parent], nodes[i] = nodes[i], nodes[parent]
        i = parent
    return size + 1


@njit(cache=True)
def _heap_pop(keys, nodes, size):
    key, node = keys[0], nodes[0]
    size -= 1
    keys[0], nodes[0] = keys[size], nodes[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and keys[left + 1] < keys[left]:
            child = left + 1
        if keys[i] <= keys[child]:
            break
        keys[child], keys[i] = keys[i], keys[child]
        nodes[child], nodes[i] = nodes[i], nodes[child]
        i = child
    return key, node, size


@njit(cache=True)
def grid_shortest_paths(costs, steps, paths):
    """costs: (B, H, W) float64 >= 0; fills paths (B, H, W) with the 0/1 optimal path."""
    batch, height, width = costs.shape
    num_cells = height * width
    distance = np.empty(num_cells, dtype=np.float64)
    previous = np.empty(num_cells, dtype=np.int64)
    done = np.empty(num_cells, dtype=np.bool_)
    capacity = 8 * num_cells + 1
    keys = np.empty(capacity, dtype=np.float64)
    nodes = np.empty(capacity, dtype=np.int64)
    target = num_cells - 1
    for b in range(batch):
        distance[:] = np.inf
        previous[:] = -1
        done[:] = False
        distance[0] = costs[b, 0, 0]
        size = _heap_push(keys, nodes, 0, distance[0], 0)
        while size > 0:
            key, node, size = _heap_pop(keys, nodes, size)
            if done[node]:
                continue
            done[node] = True
            if node == target:
                break
            row, col = node // width, node % width
            for k in range(8):
                r = row + steps[k, 0]
                c = col + steps[k, 1]
                if r < 0 or r >= height or c < 0 or c >= width:
                    continue
                neighbour = r * width + c
                if done[neighbour]:
                    continue
                candidate = key + costs[b, r, c]
                if candidate < distance[neighbour]:
                    distance[neighbour] = candidate
                    previous[neighbour] = node
                    size = _heap_push(keys, nodes, size, candidate, neighbour)
        paths[b] = 0.0
        node = target
        while node != -1:
            paths[b, node // width, node % width] = 1.0
            node = previous[node]
