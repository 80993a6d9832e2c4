"""Shared by the benchmark scripts that time each library in its own fresh process."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from _results import publish


def median_time(fn, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls of ``fn`` after one warm-up call, and the last
    result."""
    result = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def versions(*names: str) -> str:
    """``"name version, ..."`` of the installed distributions among ``names``."""
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def fmt(value: float | None, digits: int = 3) -> str:
    """A table cell: ``digits`` significant digits, or "-" for a missing value."""
    return "-" if value is None else f"{value:.{digits}g}"


def torch_setup(threads: int):
    """torch with ``threads`` intra-op threads and one inter-op thread."""
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    return torch


def spawn(script: str, threads: int, name: str, *args) -> dict | None:
    """Run ``script --worker '[name, *args]'`` in a fresh process pinned to ``threads`` cores
    (taskset when available) and return the JSON dict of its last stdout line, or None
    (with its stderr printed) when it fails."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads),
           "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=true"}
    prefix = ["taskset", "-c", ",".join(str(i) for i in range(threads))] \
        if shutil.which("taskset") else []
    command = [*prefix, sys.executable, script, "--worker", json.dumps([name, *args])]
    print("  " + " ".join([name, *map(str, args)]), file=sys.stderr, flush=True)
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        print(completed.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(doc: str, workers: dict, section: str, run, quick_help: str,
         smoke_help: str | None = None) -> None:
    """A benchmark script's entry point: ``--worker`` runs one worker and prints its JSON;
    otherwise ``run(quick)`` builds the text, printed and (full runs) recorded. With
    ``smoke_help`` the script also takes ``--smoke`` (a grid smaller than the quick one, for
    the test suite): ``run(True, smoke=True)``, printed."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    if smoke_help:
        parser.add_argument("--smoke", action="store_true", help=smoke_help)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, *worker_args = json.loads(args.worker)
        print(json.dumps(workers[name](*worker_args)))
        return
    if getattr(args, "smoke", False):
        publish(section, run(True, smoke=True), True)
        return
    publish(section, run(args.quick), args.quick)
