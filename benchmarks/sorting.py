"""Soft rank benchmark: lutece against torchsort (C++), the O(n^2) pairwise sigmoid soft
rank, and the OT (Sinkhorn) soft sort of lutece.ot once it exists.

Protocol (../shared/research/sorting_perturbations.md, section 8): one thread
(OMP/NUMBA/torch), forward + backward (``autograd.grad`` of the sum), outputs checked equal
to torchsort before timing, medians of ``torch.utils.benchmark`` in each of several fresh
worker processes, and the median over the processes. The O(n^2) baselines stop at n = 2000.

    python benchmarks/sorting.py                 # the full grid, 3 processes -> RESULTS.md
    python benchmarks/sorting.py --quick         # a small grid, 1 process, no file written
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys

from _results import publish

SIZES = [10, 100, 1000, 10_000, 100_000]
BATCHES = [1, 128]
DTYPES = ["float32", "float64"]
QUADRATIC_MAX_N = 2000
STRENGTH = 0.1
SECTION = "## Soft rank (lutece.sorting)"


def _operators():
    import torch  # noqa: F401

    from lutece.sorting import soft_rank
    from lutece.sorting.baselines import pairwise_soft_rank

    operators = {"lutece": lambda x: soft_rank(x, regularization_strength=STRENGTH),
                 "pairwise": lambda x: pairwise_soft_rank(x, temperature=STRENGTH)}
    if importlib.util.find_spec("torchsort") is not None:
        import torchsort

        operators["torchsort"] = lambda x: torchsort.soft_rank(
            x, regularization_strength=STRENGTH)
    if importlib.util.find_spec("lutece.ot") is not None:
        ot = importlib.import_module("lutece.ot")
        if hasattr(ot, "soft_rank"):
            operators["ot_sinkhorn"] = ot.soft_rank
    return operators


def worker(sizes, batches, dtypes, min_run_time) -> dict:
    """Time every cell once in this process; returns {cell key: seconds}."""
    import torch

    from lutece.experiments._timing import forward_backward, median_seconds

    torch.set_num_threads(1)
    operators = _operators()
    generator = torch.Generator().manual_seed(0)
    times = {}
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for batch in batches:
            for n in sizes:
                x = torch.randn(batch, n, generator=generator, dtype=dtype)
                if "torchsort" in operators:
                    ours = operators["lutece"](x)
                    theirs = operators["torchsort"](x)
                    tolerance = 1e-5 * n if dtype == torch.float32 else 1e-5
                    error = float((ours - theirs).abs().max())
                    if error > tolerance:
                        raise AssertionError(
                            f"lutece and torchsort differ by {error} at {dtype_name} {batch}x{n}")
                for name, op in operators.items():
                    if name in ("pairwise", "ot_sinkhorn") and n > QUADRATIC_MAX_N:
                        continue
                    key = f"{dtype_name}|{batch}|{n}|{name}"
                    times[key] = median_seconds(forward_backward(op, x), min_run_time)
    return times


def _fitted_exponent(sizes, seconds):
    from lutece.experiments._timing import fitted_exponent

    return fitted_exponent(sizes, seconds)


def run(quick: bool) -> str:
    sizes, batches, dtypes = (([10, 100, 1000], [1, 8], ["float32"]) if quick
                              else (SIZES, BATCHES, DTYPES))
    processes = 1 if quick else 3
    min_run_time = 0.05 if quick else 0.3
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    runs = []
    for index in range(processes):
        print(f"worker process {index + 1}/{processes} ...", file=sys.stderr, flush=True)
        command = [sys.executable, __file__, "--worker",
                   json.dumps([sizes, batches, dtypes, min_run_time])]
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    keys = runs[0].keys()
    median = {key: statistics.median(run[key] for run in runs) for key in keys}
    spread = {key: (max(run[key] for run in runs) - min(run[key] for run in runs)) / median[key]
              for key in keys}
    names = sorted({key.split("|")[3] for key in keys},
                   key=lambda name: ["lutece", "torchsort", "pairwise", "ot_sinkhorn"].index(name))
    baselines = [name for name in names if name != "lutece"]

    header = ["dtype", "batch", "n", "lutece (us)"]
    for name in baselines:
        header += [f"{name} (us)", f"{name} / lutece"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dtype in dtypes:
        for batch in batches:
            for n in sizes:
                ours = median[f"{dtype}|{batch}|{n}|lutece"]
                row = [dtype, str(batch), str(n), f"{ours * 1e6:.1f}"]
                for name in baselines:
                    value = median.get(f"{dtype}|{batch}|{n}|{name}")
                    row += (["-", "-"] if value is None
                            else [f"{value * 1e6:.1f}", f"{value / ours:.2f}"])
                lines.append("| " + " | ".join(row) + " |")

    exponent_lines = []
    for dtype in dtypes:
        for batch in batches:
            fit_sizes = [n for n in sizes if n * batch >= 10_000] or sizes[-2:]
            for name in names:
                points = [n for n in fit_sizes if f"{dtype}|{batch}|{n}|{name}" in median]
                if len(points) >= 2:
                    exponent = _fitted_exponent(
                        points, [median[f"{dtype}|{batch}|{n}|{name}"] for n in points])
                    exponent_lines.append(
                        f"- {dtype}, batch {batch}, {name}: time ~ n^{exponent:.2f} "
                        f"(n in {points[0]}..{points[-1]})")
    worst_spread = max(spread.values())
    import torch

    versions = [f"torch {torch.__version__}"]
    for module in ("numba", "torchsort"):
        if importlib.util.find_spec(module) is not None:
            versions.append(f"{module} {importlib.metadata.version(module)}")
    today = datetime.date.today().isoformat()
    return "\n".join([
        SECTION, "",
        f"Measured {today} on {platform.processor() or platform.machine()} "
        f"({os.cpu_count()} cores, 1 thread used), {', '.join(versions)}; "
        f"regularization_strength {STRENGTH}, L2, forward + backward, median over "
        f"{processes} fresh process(es) (largest max-min spread {100 * worst_spread:.0f}% "
        f"of the median). Ratios above 1 mean lutece is faster.",
        "", *lines, "", "Fitted exponents (where work dominates the per-call cost):",
        *exponent_lines, "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid, no file written")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sizes, batches, dtypes, min_run_time = json.loads(args.worker)
        print(json.dumps(worker(sizes, batches, dtypes, min_run_time)))
        return
    publish(SECTION, run(args.quick), args.quick)


if __name__ == "__main__":
    main()
