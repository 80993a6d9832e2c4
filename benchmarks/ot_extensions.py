"""OT extensions benchmark: low-rank Sinkhorn against full Sinkhorn and POT's low-rank
solver as n grows; entropic Gromov-Wasserstein against POT.

Protocol (each run in its own fresh process pinned to the same 2 cores, torch with 2
intra-op threads; peak RSS increase over the process's state after imports and data):
- Low-rank vs full, 2-D (``lutece.data.ot_benchmark_clouds``, float32, squared Euclidean):
  lutece ``low_rank_sinkhorn`` at rank 10 for a fixed number of mirror-descent steps
  (100, or 20 at n >= 10^6 and in the quick grid), gamma = 10, random init; POT's
  ``ot.lowrank.lowrank_sinkhorn`` (torch backend, same data, rank 10,
  ``rescale_cost=False`` so both solve the same problem, its fixed 100 steps, its default
  LR-Dykstra tolerance); lutece's full log-domain
  ``sinkhorn`` (dense cost, epsilon = 0.05 mean(C)) for 20 iterations. Times per step are
  compared; the primal cost <C, P> each low-rank solver reaches is printed next to it, and
  the exact OT cost (``ot.emd2``) where n <= 4000.
- Entropic GW, a 3-D cloud in the unit cube against a rotated, shuffled and jittered copy,
  float64, epsilon = 0.02 (POT's 0.04: POT linearizes with twice our gradient, see
  ``lutece.ot.solvers.gromov``): both run from the product coupling to a change of the
  coupling below 1e-7 (POT: Frobenius norm, ours: l1 / mass), inner Sinkhorn to 1e-9.
  The table prints each objective Q(T) and the time; lutece runs with the point clouds'
  factored costs and, apart, with dense cost matrices like POT's.

    python benchmarks/ot_extensions.py            # the full grid -> RESULTS.md
    python benchmarks/ot_extensions.py --quick    # n <= 10 000, GW at n = 300, printed
    python benchmarks/ot_extensions.py --smoke    # the tests': low rank at n = 1000, 2000
                                                  # (5 steps), POT and full at 1000, no
                                                  # exact OT, GW at 300 (lutece only), printed
"""

from __future__ import annotations

import os
import platform
import sys
import time

from _workers import fmt, median_time, spawn, torch_setup, versions
from _workers import main as worker_main
from lutece.experiments._timing import fitted_exponent

# A sibling script is named like POT's package: keep this folder off the path so that
# ``import ot`` finds POT.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]

SECTION = "## Optimal transport extensions (lutece.ot: low-rank, Gromov-Wasserstein)"
THREADS = 2
RANK = 10
GW_EPSILON = 0.02


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _clouds(n: int):
    import torch

    from lutece.data import ot_benchmark_clouds

    return [torch.from_numpy(v) for v in ot_benchmark_clouds(n, 2, seed=0)]


# ---------------------------------------------------------------------------- workers
def worker_low_rank(n: int, steps: int, repeats: int) -> dict:
    torch = torch_setup(THREADS)
    from lutece.ot import LinearProblem, PointCloud, low_rank_sinkhorn

    x, y, a, b = _clouds(n)
    before = _rss_mib()

    def solve():
        return low_rank_sinkhorn(LinearProblem(PointCloud(x, y), a, b), RANK,
                                 max_iterations=steps, inner_iterations=steps,
                                 threshold=1e-30, warn=False)

    if n <= 100_000:
        seconds, out = median_time(solve, repeats)
    else:  # one timed run, no warm-up, at the largest sizes
        start = time.perf_counter()
        out = solve()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "per_step": seconds / steps, "cost": float(out.cost),
            "finite": bool(torch.isfinite(out.q).all()), "increase_mib": _rss_mib() - before}


def worker_pot_low_rank(n: int, repeats: int) -> dict:
    torch_setup(THREADS)
    import ot

    x, y, a, b = _clouds(n)
    before = _rss_mib()
    steps = 100  # fixed inside ot.lowrank.lowrank_sinkhorn

    def solve():
        return ot.lowrank.lowrank_sinkhorn(x, y, a, b, reg=0, rank=RANK, rescale_cost=False,
                                           warn=False, log=True)

    seconds, out = median_time(solve, repeats)
    return {"seconds": seconds, "per_step": seconds / steps,
            "cost": float(out[3]["value_linear"]), "increase_mib": _rss_mib() - before}


def worker_full(n: int, iterations: int, repeats: int) -> dict:
    torch = torch_setup(THREADS)
    from lutece.data import mean_squared_distance
    from lutece.ot import LinearProblem, PointCloud, sinkhorn

    x, y, a, b = _clouds(n)
    epsilon = 0.05 * mean_squared_distance(x.numpy(), y.numpy())
    before = _rss_mib()

    def solve():
        return sinkhorn(LinearProblem(PointCloud(x, y, epsilon=epsilon), a, b),
                        min_iterations=iterations, max_iterations=iterations)

    seconds, out = median_time(solve, repeats)
    return {"seconds": seconds, "per_step": seconds / iterations,
            "finite": bool(torch.isfinite(out.f).all()), "increase_mib": _rss_mib() - before}


def worker_exact(n: int) -> dict:
    import numpy as np
    import ot

    from lutece.data import ot_benchmark_clouds

    x, y, a, b = (v.astype(np.float64) for v in ot_benchmark_clouds(n, 2, seed=0))
    return {"cost": float(ot.emd2(a / a.sum(), b / b.sum(), ot.dist(x, y), numItermax=10**7))}


def _gw_data(n: int):
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    rotation = q * torch.sign(torch.diagonal(r))
    perm = torch.randperm(n, generator=generator)
    y = x[perm] @ rotation.T + 0.01 * torch.randn(n, 3, generator=generator,
                                                  dtype=torch.float64)
    return x, y


def worker_gw(library: str, n: int, repeats: int) -> dict:
    torch = torch_setup(THREADS)
    x, y = _gw_data(n)
    before = _rss_mib()
    if library == "pot":
        import ot

        def solve():
            c1, c2 = torch.cdist(x, x) ** 2, torch.cdist(y, y) ** 2
            a = torch.full((n,), 1 / n, dtype=torch.float64)
            _, log = ot.gromov.entropic_gromov_wasserstein(
                c1, c2, a, a, "square_loss", epsilon=2 * GW_EPSILON, max_iter=1000, tol=1e-7,
                numItermax=10_000, stopThr=1e-9, log=True)
            return float(log["gw_dist"]), None
    else:
        from lutece.ot import Geometry, PointCloud, gromov_wasserstein

        def solve():
            if library == "lutece_dense":
                geoms = (Geometry(torch.cdist(x, x) ** 2), Geometry(torch.cdist(y, y) ** 2))
            else:
                geoms = (PointCloud(x), PointCloud(y))
            out = gromov_wasserstein(*geoms, epsilon=GW_EPSILON, max_iterations=1000,
                                     threshold=1e-7, warn=False,
                                     sinkhorn_kwargs={"threshold": 1e-9,
                                                      "max_iterations": 10_000})
            return float(out.cost), out.n_iters

    seconds, (cost, iterations) = median_time(solve, repeats)
    return {"seconds": seconds, "cost": cost, "iterations": iterations,
            "increase_mib": _rss_mib() - before}


WORKERS = {"low_rank": worker_low_rank, "pot_low_rank": worker_pot_low_rank,
           "full": worker_full, "exact": worker_exact, "gw": worker_gw}


# ---------------------------------------------------------------------------- driver
def _spawn(name: str, *args) -> dict | None:
    return spawn(__file__, THREADS, name, *args)


def run(quick: bool, smoke: bool = False) -> str:
    low_rank_sizes = [1000, 10_000] if quick else [1000, 10_000, 100_000, 1_000_000]
    full_sizes = [1000, 4000] if quick else [1000, 4000, 20_000]
    pot_sizes = [1000] if quick else [1000, 10_000, 100_000]
    gw_sizes = [300] if quick else [500, 2000]
    steps = 20 if quick else 100
    exact_up_to = 4000
    gw_libraries = ("lutece", "lutece_dense", "pot")
    if smoke:  # the test suite's grid: fewer, smaller runs (each worker process costs ~3 s)
        low_rank_sizes, full_sizes, steps, exact_up_to = [1000, 2000], [1000], 5, 0
        gw_libraries = ("lutece",)

    def repeats(n: int) -> int:
        return 1 if quick or n > 10_000 else 3

    rows, lr_times, full_times = [], [], []
    for n in sorted(set(low_rank_sizes) | set(full_sizes)):
        ours = _spawn("low_rank", n, steps if n < 1_000_000 else 20, repeats(n)) \
            if n in low_rank_sizes else None
        pot = _spawn("pot_low_rank", n, repeats(n)) if n in pot_sizes else None
        full = _spawn("full", n, 20, repeats(n)) if n in full_sizes else None
        exact = _spawn("exact", n) if n <= exact_up_to else None
        if ours:
            lr_times.append((n, ours["per_step"]))
        if full:
            full_times.append((n, full["per_step"]))
        ratio = pot["per_step"] / ours["per_step"] if ours and pot else None
        rows.append(
            f"| {n} | {fmt(ours and 1e3 * ours['per_step'])} | "
            f"{fmt(ours and ours['increase_mib'])} | {fmt(ours and ours['cost'], 4)} | "
            f"{fmt(pot and 1e3 * pot['per_step'])} | {fmt(pot and pot['cost'], 4)} | "
            f"{fmt(ratio)} | {fmt(full and 1e3 * full['per_step'])} | "
            f"{fmt(full and full['increase_mib'])} | {fmt(exact and exact['cost'], 4)} |")
    exponents = []
    for name, pairs in (("lutece low-rank", lr_times), ("lutece full Sinkhorn", full_times)):
        if len(pairs) >= 2:
            exponent = fitted_exponent([n for n, _ in pairs], [t for _, t in pairs])
            exponents.append(f"{name}: time per step ~ n^{exponent:.2f}")

    gw_rows = []
    for n in gw_sizes:
        results = {name: _spawn("gw", name, n, 1 if quick or n > 500 else 3)
                   for name in gw_libraries}
        ours, dense, pot = (results.get(name) for name in ("lutece", "lutece_dense", "pot"))
        gw_rows.append(
            f"| {n} | {fmt(ours and ours['seconds'])} | {fmt(ours and ours['cost'], 6)} | "
            f"{ours and ours['iterations']} | {fmt(dense and dense['seconds'])} | "
            f"{fmt(pot and pot['seconds'])} | {fmt(pot and pot['cost'], 6)} | "
            f"{fmt(pot and ours and pot['seconds'] / ours['seconds'])} | "
            f"{fmt(pot and dense and pot['seconds'] / dense['seconds'])} |")

    machine = (f"{platform.machine()}, {os.cpu_count()} cores visible, {THREADS} threads per "
               f"run, {versions('torch', 'pot')}; {time.strftime('%Y-%m-%d')}")
    return "\n".join([
        SECTION, "",
        f"Machine: {machine}. "
        f"{'Smoke grid' if smoke else 'Quick grid' if quick else 'Full grid'}; protocol in "
        "benchmarks/ot_extensions.py.", "",
        f"Low-rank (rank {RANK}) vs full Sinkhorn, 2-D squared Euclidean, float32. Times are "
        "per step (ms): a mirror-descent step for the low-rank solvers, a Sinkhorn iteration "
        "for the full one; memory is the peak RSS increase (MiB) of the solve.", "",
        "| n | lutece LR ms/step | lutece LR MiB | lutece LR cost | POT LR ms/step | POT LR "
        "cost | pot / lutece | full Sinkhorn ms/iter | full MiB | exact OT cost |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows, "",
        "Fitted exponents: " + ("; ".join(exponents) or "-") + ".", "",
        f"Entropic Gromov-Wasserstein (epsilon {GW_EPSILON}, POT's {2 * GW_EPSILON}), a 3-D "
        "cloud against a rotated, shuffled, jittered copy, float64; time to convergence (s):",
        "",
        "| n | lutece (factored) s | lutece Q(T) | outer iterations | lutece (dense) s | "
        "POT s | POT Q(T) | pot / lutece | pot / lutece dense |",
        "|---|---|---|---|---|---|---|---|---|",
        *gw_rows, "",
    ])


def main() -> None:
    worker_main(__doc__, WORKERS, SECTION, run, "small sizes only, printed",
                "the test suite's grid, smaller still: printed")


if __name__ == "__main__":
    main()
