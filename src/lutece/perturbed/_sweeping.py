"""Batched grid shortest paths by Gauss-Seidel sweeps, vectorized across grids (numba).

The problem is ``shortest_path_grid``'s: from cell (0, 0) to cell (H-1, W-1), 8-neighbour
moves, a path costing the sum of the costs of the cells it visits, both ends included
(the Warcraft benchmark of Vlastelica et al. 2020, used by Berthet et al. 2020). Costs are
non-negative.

Costs sit on the cells, so the distances d are the fixed point of the Bellman equations

    d(start) = c(start),    d(v) = c(v) + min_{u in N(v)} d(u)                       (1)

which Gauss-Seidel sweeps in alternating diagonal orders (fast sweeping, Zhao 2005, for
the eikonal equation; Bellman-Ford relaxations in a chosen order) reach exactly: d starts at
+inf, every update is d(v) <- min(d(v), c(v) + min_N d), so every finite d(v) is the cost of
some path, and a sweep that changes nothing certifies (1) everywhere, hence optimality. In
floating point the certificate holds for path costs accumulated from the start in the
costs' dtype, the same arithmetic as Dijkstra's.

Why sweeps: a perturbed optimizer solves the same grid thousands of times. Dijkstra's heap
is branchy, scalar work (~100 ns per cell); a sweep is the same few instructions for every
cell, so ``lanes`` grids stored lane-innermost, (H + 2, W + 2, lanes), are relaxed together
by SIMD instructions, at about 1 ns per cell and grid per sweep. Random costs such as the
Warcraft maps' settle in ~10 sweeps on 12x12 grids and ~20 on 30x30. Mazes that need many
sweeps fall back to Dijkstra (``_dijkstra.py``) after ``max_sweeps``.

The path is read back from d: the neighbour u of v with the smallest d(u) satisfies
d(v) = c(v) + d(u) exactly (in the dtype's arithmetic) at the fixed point, so walking to it
from the target retraces an optimal path. Where d does not decrease (a run of zero-cost
cells), a breadth-first search inside that plateau of equal d finds the nearest cell from
which d decreases again, which keeps the walk from cycling.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["sweep_shortest_paths"]


@njit(cache=True)
def _sweep(cost, dist, row_start, row_step, col_start, col_step):
    """One Gauss-Seidel pass of (1) over every lane in one order (rows from ``row_start``
    by ``row_step``, each row's cells from ``col_start`` by ``col_step``).

    cost, dist: (H + 2, W + 2, lanes); the border of ``dist`` is +inf (never a minimum), so
    neighbours need no bounds checks. Returns True if any distance decreased."""
    rows, cols, lanes = cost.shape
    height, width = rows - 2, cols - 2
    changed = False
    r = row_start
    for _ in range(height):
        c = col_start
        for _ in range(width):
            decreased = False
            for lane in range(lanes):
                best = min(min(min(dist[r - 1, c - 1, lane], dist[r - 1, c, lane]),
                               min(dist[r - 1, c + 1, lane], dist[r, c - 1, lane])),
                           min(min(dist[r, c + 1, lane], dist[r + 1, c - 1, lane]),
                               min(dist[r + 1, c, lane], dist[r + 1, c + 1, lane])))
                candidate = cost[r, c, lane] + best
                old = dist[r, c, lane]
                decreased |= candidate < old
                dist[r, c, lane] = min(candidate, old)
            changed |= decreased
            c += col_step
        r += row_step
    return changed


@njit(cache=True)
def _settle(cost, dist, max_sweeps):
    """Gauss-Seidel sweeps of (1), alternately down-right and up-left (row by row, each
    row left to right, then bottom to top, right to left), until a sweep changes nothing.
    Returns the number of sweeps, or -1 if ``max_sweeps`` passed first.

    Any order of sweeps converges and any quiet sweep certifies (1); these two alone
    settled random grids in ~5% fewer sweeps than cycling through all four diagonal orders
    (12x12 and 30x30 Warcraft-like costs, measured)."""
    rows, cols, _ = cost.shape
    height, width = rows - 2, cols - 2
    for sweep in range(max_sweeps):
        # One call site with run-time arguments: specializing _sweep on constant steps
        # made LLVM compile a loop twice as slow.
        forward = sweep % 2 == 0
        if not _sweep(cost, dist, 1 if forward else height, 1 if forward else -1,
                      1 if forward else width, 1 if forward else -1):
            return sweep + 1
    return -1


@njit(cache=True)
def _lowest_neighbour(dist, r, c, lane):
    """(d, row, col) of the neighbour of (r, c) with the smallest distance (first in
    row-major neighbour order on ties)."""
    best, best_r, best_c = dist[r - 1, c - 1, lane], r - 1, c - 1
    for dr in range(-1, 2):
        for dc in range(-1, 2):
            if dr == 0 and dc == 0:
                continue
            value = dist[r + dr, c + dc, lane]
            if value < best:
                best, best_r, best_c = value, r + dr, c + dc
    return best, best_r, best_c


@njit(cache=True)
def _trace(dist, lane, path, queue, parent, seen, stamp):
    """Write lane ``lane``'s optimal path into ``path`` (H, W), zeroed by the caller.

    queue, parent, seen: int64 scratch of (H + 2) * (W + 2) entries for plateau searches;
    ``seen`` holds the stamp of the search that last visited a cell (no clearing between
    searches). Returns the next stamp."""
    rows, cols, _ = dist.shape
    height, width = rows - 2, cols - 2
    r, c = height, width
    while True:
        path[r - 1, c - 1] = 1.0
        if r == 1 and c == 1:
            return stamp
        here = dist[r, c, lane]
        best, best_r, best_c = _lowest_neighbour(dist, r, c, lane)
        if best < here:
            r, c = best_r, best_c
            continue
        # A plateau of equal distances (zero or negligible costs): breadth-first search
        # through it for the nearest cell that is the start or has a lower neighbour. Every
        # step taken inside leaves a cell whose lowest neighbour has the same distance, so
        # d(v) = c(v) + d(u) holds along it.
        stamp += 1
        origin = r * cols + c
        seen[origin] = stamp
        parent[origin] = -1
        queue[0] = origin
        head, tail = 0, 1
        exit_cell = -1
        while head < tail:
            cell = queue[head]
            head += 1
            cr, cc = cell // cols, cell % cols
            if (cr == 1 and cc == 1) or (cell != origin
                                         and _lowest_neighbour(dist, cr, cc, lane)[0] < here):
                exit_cell = cell
                break
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    neighbour = cell + dr * cols + dc
                    if seen[neighbour] != stamp and dist[cr + dr, cc + dc, lane] == here:
                        seen[neighbour] = stamp
                        parent[neighbour] = cell
                        queue[tail] = neighbour
                        tail += 1
        cell = exit_cell
        while cell != origin:
            path[cell // cols - 1, cell % cols - 1] = 1.0
            cell = parent[cell]
        r, c = exit_cell // cols, exit_cell % cols


@njit(cache=True)
def sweep_shortest_paths(costs, paths, lanes, max_sweeps):
    """costs: (B, H, W) float32/float64, negative entries counted as 0; fills ``paths``
    (B, H, W) with 0/1 optimal paths, ``lanes`` grids at a time. Returns a (B,) bool
    array: True where the sweeps did not settle within ``max_sweeps`` and the path is left
    for the caller (Dijkstra)."""
    batch, height, width = costs.shape
    rows, cols = height + 2, width + 2
    lanes = max(1, lanes)
    queue = np.empty(rows * cols, dtype=np.int64)
    parent = np.empty(rows * cols, dtype=np.int64)
    seen = np.zeros(rows * cols, dtype=np.int64)
    unsettled = np.zeros(batch, dtype=np.bool_)
    stamp = 0
    for first in range(0, batch, lanes):
        count = min(lanes, batch - first)
        # Fresh contiguous arrays of exactly ``count`` lanes: the sweep's lane loop then has
        # unit stride, which is what lets it vectorize.
        cost = np.zeros((rows, cols, count), dtype=costs.dtype)
        dist = np.full((rows, cols, count), np.inf, dtype=costs.dtype)
        for lane in range(count):
            for r in range(height):
                for c in range(width):
                    cost[r + 1, c + 1, lane] = max(costs[first + lane, r, c], 0.0)
            dist[1, 1, lane] = cost[1, 1, lane]
        if _settle(cost, dist, max_sweeps) < 0:
            unsettled[first:first + count] = True
            continue
        for lane in range(count):
            paths[first + lane] = 0.0
            stamp = _trace(dist, lane, paths[first + lane], queue, parent, seen, stamp)
    return unsettled
