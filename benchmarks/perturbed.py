"""Perturbed shortest paths: lutece's batched numba Dijkstra against scipy's Dijkstra called
per sample, both inside ``perturbed(...)`` (forward + backward), and peak memory with and
without ``chunk_size``.

The scipy baseline is what a careful user writes: the 8-neighbour grid graph's sparsity
pattern is built once per grid size, only the edge weights change per sample, and the path
is read from scipy's predecessors. Timings are medians of torch.utils.benchmark, one thread.

    python benchmarks/perturbed.py           # full grid -> RESULTS.md
    python benchmarks/perturbed.py --quick   # small grid, printed only
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys

import numpy as np

from _results import publish

SECTION = "## Perturbed shortest paths (lutece.perturbed)"
BATCH = 32
SIGMA = 0.5


@functools.lru_cache(maxsize=8)
def _grid_pattern(height: int, width: int):
    """CSR structure of the 8-neighbour grid graph: (indptr, indices) with edge u->v."""
    rows, cols = [], []
    for r in range(height):
        for c in range(width):
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if (dr or dc) and 0 <= rr < height and 0 <= cc < width:
                        rows.append(r * width + c)
                        cols.append(rr * width + cc)
    rows, cols = np.array(rows), np.array(cols)
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    indptr = np.searchsorted(rows, np.arange(height * width + 1))
    return indptr, cols


def scipy_shortest_path_grid(costs):
    """The same solver as lutece's, one scipy Dijkstra call per grid."""
    import torch
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    height, width = costs.shape[-2:]
    indptr, indices = _grid_pattern(height, width)
    flat = costs.detach().reshape(-1, height * width).clamp_min(0).double().numpy()
    paths = np.zeros_like(flat)
    for k, grid in enumerate(flat):
        # vertex costs on incoming edges; + 1e-12 keeps zero-cost edges in the sparse graph
        graph = csr_matrix((grid[indices] + 1e-12, indices, indptr),
                           shape=(height * width,) * 2)
        _, predecessors = dijkstra(graph, indices=0, return_predecessors=True)
        node = height * width - 1
        while node >= 0:
            paths[k, node] = 1.0
            node = predecessors[node]
    return torch.from_numpy(paths).reshape(costs.shape).to(costs.dtype)


def _time_cell(size: int, num_samples: int, min_run_time: float) -> dict:
    import torch

    from lutece.experiments._timing import forward_backward, median_seconds
    from lutece.perturbed import perturbed, shortest_path_grid

    torch.set_num_threads(1)
    costs = torch.rand(BATCH, size, size, generator=torch.Generator().manual_seed(0)) + 0.1
    ours = perturbed(functools.partial(shortest_path_grid, clamp_negative=True),
                     num_samples=num_samples, sigma=SIGMA, maximize=False, event_ndim=2,
                     generator=torch.Generator().manual_seed(1))
    theirs = perturbed(scipy_shortest_path_grid, num_samples=num_samples, sigma=SIGMA,
                       maximize=False, event_ndim=2, generator=torch.Generator().manual_seed(1))
    # Same optimal path costs on perturbed grids (paths themselves may differ on ties).
    noisy = (costs + SIGMA * torch.randn(costs.shape, generator=torch.Generator().manual_seed(2))
             ).clamp_min(0)
    ours_cost = (noisy * shortest_path_grid(noisy)).sum(dim=(-2, -1))
    their_cost = (noisy * scipy_shortest_path_grid(noisy)).sum(dim=(-2, -1))
    torch.testing.assert_close(ours_cost, their_cost, rtol=1e-5, atol=1e-5)
    return {"lutece": median_seconds(forward_backward(ours, costs), min_run_time),
            "scipy": median_seconds(forward_backward(theirs, costs), min_run_time)}


def _peak_memory(size: int, num_samples: int, chunk_size: int | None) -> float:
    """Peak RSS increase (MiB) of one forward + backward, measured in this process."""
    import torch

    from lutece.perturbed import perturbed, shortest_path_grid

    costs = torch.rand(BATCH, size, size) + 0.1
    op = perturbed(functools.partial(shortest_path_grid, clamp_negative=True),
                   num_samples=num_samples, sigma=SIGMA, maximize=False, event_ndim=2,
                   chunk_size=chunk_size)
    small = perturbed(functools.partial(shortest_path_grid, clamp_negative=True),
                      num_samples=2, maximize=False, event_ndim=2)
    warm = costs[:1].clone().requires_grad_()
    torch.autograd.grad(small(warm).sum(), warm)  # compile and allocate once beforehand
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    leaf = costs.requires_grad_()
    torch.autograd.grad(op(leaf).sum(), leaf)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024


def _in_fresh_process(task: str, *args) -> object:
    command = [sys.executable, __file__, "--worker", json.dumps([task, *args])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(quick: bool) -> str:
    sizes = [12] if quick else [12, 30]
    sample_counts = [10] if quick else [10, 100]
    min_run_time = 0.05 if quick else 0.5
    lines = ["| grid | batch | num_samples | lutece (ms) | scipy loop (ms) | scipy / lutece |",
             "|---|---|---|---|---|---|"]
    for size in sizes:
        for num_samples in sample_counts:
            times = _in_fresh_process("time", size, num_samples, min_run_time)
            lines.append(f"| {size}x{size} | {BATCH} | {num_samples} | "
                         f"{times['lutece'] * 1e3:.2f} | {times['scipy'] * 1e3:.1f} | "
                         f"{times['scipy'] / times['lutece']:.1f} |")
    memory_size, memory_samples = (12, 10) if quick else (30, 100)
    memory_lines = ["| chunk_size | peak RSS increase (MiB) |", "|---|---|"]
    for chunk in (None, 10):
        peak = _in_fresh_process("memory", memory_size, memory_samples, chunk)
        memory_lines.append(f"| {chunk or 'none'} | {peak:.1f} |")
    import torch

    return "\n".join([
        SECTION, "",
        f"Measured {datetime.date.today().isoformat()} on "
        f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores, 1 thread), "
        f"torch {torch.__version__}, numba {importlib.metadata.version('numba')}, scipy "
        f"{importlib.metadata.version('scipy')}. Forward + backward of perturbed(shortest "
        f"path), sigma {SIGMA}, positive costs in [0.1, 1.1), perturbed costs clamped at 0; "
        f"both solvers return paths of equal cost (checked before timing).", "", *lines, "",
        f"Peak memory of one forward + backward, {memory_size}x{memory_size} grids, batch "
        f"{BATCH}, {memory_samples} samples (fresh process each). Chunking bounds the "
        f"solver's working memory; the cache kept for the backward (decisions and noise "
        f"scores, 2 x num_samples x |theta|) is the same either way.", "", *memory_lines, "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        task, *rest = json.loads(args.worker)
        result = _time_cell(*rest) if task == "time" else _peak_memory(*rest)
        print(json.dumps(result))
        return
    publish(SECTION, run(args.quick), args.quick)


if __name__ == "__main__":
    main()
