"""Entropic OT benchmark: lutece.ot.sinkhorn against POT's torch backend (``sinkhorn_log``
and the kernel ``sinkhorn``) and OTT-JAX (jitted, CPU) when installed, on the same problems.

Protocol (../shared/research/optimal_transport.md, section 8):
- every library runs in its own fresh process, pinned to the same cores (taskset when
  available), 2 threads (OMP/MKL, torch intra-op 2 / inter-op 1);
- same float32 data (``lutece.data.ot_benchmark_clouds``, the OTT tutorial's generator:
  x ~ U[0,1]^d, y = (N(0,1) + 0.5) / 5, weights U + 0.1, normalized), same absolute
  epsilon = 0.05 x mean(C), scale_cost 1;
- same stopping rule: L2 norm of the column-marginal residual, checked every 10
  iterations, threshold 0.01 / n^0.33 (the OTT tutorial's), at most 1000 iterations;
  POT checks after iterations 1, 11, 21, ... and the others after 10, 20, ...;
- the cost-matrix build is inside every timing; OTT's whole solve is jitted and timed after
  compilation (compile time reported apart) with ``block_until_ready``;
- median of repeated runs after a warm-up; iterations, final error and the regularized
  cost are reported next to the time, and at n = 1000 the gap of each cost to ``ot.emd2``.

Also: value + gradient w.r.t. x (lutece implicit and unrolled, POT autodiff and envelope,
OTT implicit), the online mode at n = m = 100 000 (10 iterations, peak memory), and the
fixed-iteration mode under ``torch.compile`` against eager.

    python benchmarks/ot.py            # the full grid -> RESULTS.md
    python benchmarks/ot.py --quick    # n = 1000, d = 2, no online / compile runs, printed
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import platform
import sys
import time

import numpy as np

from _workers import main as worker_main
from _workers import median_time, spawn, torch_setup, versions
from lutece.data import mean_squared_distance, ot_benchmark_clouds

# This file is named like POT's package: keep its folder off the path so that ``import ot``
# finds POT.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]

SECTION = "## Optimal transport (lutece.ot)"
SIZES = [1000, 4000, 16000]
DIMENSIONS = [2, 64]
EPSILON_SCALE = 0.05
MAX_ITERATIONS = 1000
THREADS = 2


def data(n: int, d: int):
    return ot_benchmark_clouds(n, d, seed=0)


def epsilon_of(x: np.ndarray, y: np.ndarray) -> float:
    """EPSILON_SCALE x mean of the squared Euclidean cost."""
    return EPSILON_SCALE * mean_squared_distance(x, y)


def threshold_of(n: int) -> float:
    return 0.01 / n ** 0.33


def dual_objective(f, g, a, b, epsilon: float) -> float:
    """<a, f - eps log a> + <b, g - eps log b> in float64: the regularized OT cost at the
    potentials of any library (P_ij = exp((f_i + g_j - C_ij) / eps) in all of them)."""
    f, g, a, b = (np.asarray(v, dtype=np.float64) for v in (f, g, a, b))
    return float(a @ (f - epsilon * np.log(a)) + b @ (g - epsilon * np.log(b)))


def _repeats(n: int) -> int:
    return 10 if n <= 1000 else (5 if n <= 4000 else 3)


# ---------------------------------------------------------------------------- workers
def _torch_setup():
    return torch_setup(THREADS)


def worker_lutece(n: int, d: int, repeats: int) -> dict:
    torch = _torch_setup()
    from lutece.ot import LinearProblem, PointCloud, sinkhorn

    x, y, a, b = (torch.from_numpy(v) for v in data(n, d))
    epsilon, threshold = epsilon_of(*data(n, d)[:2]), threshold_of(n)

    def solve():
        geom = PointCloud(x, y, epsilon=epsilon)
        out = sinkhorn(LinearProblem(geom, a, b), threshold=threshold, norm_error=2,
                       inner_iterations=10, max_iterations=MAX_ITERATIONS, warn=False)
        return out.n_iters, float(out.errors[-1]), (out.f, out.g)

    seconds, (iterations, error, (f, g)) = median_time(solve, repeats)
    return {"seconds": seconds, "iterations": iterations, "error": error,
            "cost": dual_objective(f, g, a, b, epsilon)}


def worker_pot(method: str, n: int, d: int, repeats: int) -> dict:
    torch = _torch_setup()
    import ot

    x, y, a, b = (torch.from_numpy(v) for v in data(n, d))
    epsilon, threshold = epsilon_of(*data(n, d)[:2]), threshold_of(n)

    def solve():
        cost = ot.dist(x, y)
        _, log = ot.sinkhorn(a, b, cost, epsilon, method=method, stopThr=threshold,
                             numItermax=MAX_ITERATIONS, log=True, warn=False)
        return log["niter"] + 1, float(log["err"][-1]), log

    seconds, (iterations, error, log) = median_time(solve, repeats)
    if method == "sinkhorn_log":
        f, g = epsilon * log["log_u"], epsilon * log["log_v"]
    else:
        f, g = epsilon * torch.log(log["u"]), epsilon * torch.log(log["v"])
    return {"seconds": seconds, "iterations": iterations, "error": error,
            "cost": dual_objective(f, g, a, b, epsilon)}


def worker_ott(n: int, d: int, repeats: int) -> dict:
    import jax
    from ott.geometry import pointcloud
    from ott.solvers import linear

    x, y, a, b = (jax.numpy.asarray(v) for v in data(n, d))
    epsilon, threshold = epsilon_of(*data(n, d)[:2]), threshold_of(n)

    @jax.jit
    def solve_jit(x, y, a, b):
        geom = pointcloud.PointCloud(x, y, epsilon=epsilon)
        out = linear.solve(geom, a, b, threshold=threshold, norm_error=2, inner_iterations=10,
                           max_iterations=MAX_ITERATIONS, lse_mode=True)
        return out.n_iters, out.errors, out.f, out.g

    start = time.perf_counter()
    jax.block_until_ready(solve_jit(x, y, a, b))
    compile_seconds = time.perf_counter() - start

    def solve():
        iterations, errors, f, g = jax.block_until_ready(solve_jit(x, y, a, b))
        errors = np.asarray(errors)
        return int(iterations), float(errors[errors >= 0][-1]), (f, g)

    seconds, (iterations, error, (f, g)) = median_time(solve, repeats)
    return {"seconds": seconds, "iterations": iterations, "error": error,
            "cost": dual_objective(f, g, a, b, epsilon), "compile_seconds": compile_seconds}


def worker_exact(n: int, d: int) -> dict:
    import ot

    x, y, a, b = data(n, d)
    cost = ot.dist(x.astype(np.float64), y.astype(np.float64))
    return {"emd2": float(ot.emd2(a.astype(np.float64), b.astype(np.float64), cost,
                                  numItermax=10_000_000))}


def worker_gradient(library: str, mode: str, n: int, d: int, repeats: int) -> dict:
    """Seconds of value + gradient w.r.t. x of the regularized cost, and the gradient."""
    x_np, y_np, a_np, b_np = data(n, d)
    epsilon, threshold = epsilon_of(x_np, y_np), threshold_of(n)
    if library == "ott":
        import jax
        from ott.geometry import pointcloud
        from ott.solvers import linear

        def value(x, y, a, b):
            geom = pointcloud.PointCloud(x, y, epsilon=epsilon)
            return linear.solve(geom, a, b, threshold=threshold, norm_error=2,
                                max_iterations=MAX_ITERATIONS).reg_ot_cost

        step = jax.jit(jax.value_and_grad(value))
        arrays = [jax.numpy.asarray(v) for v in (x_np, y_np, a_np, b_np)]

        def run():
            out = jax.block_until_ready(step(*arrays))
            return np.asarray(out[1])
    else:
        torch = _torch_setup()
        x0, y, a, b = (torch.from_numpy(v) for v in (x_np, y_np, a_np, b_np))
        if library == "lutece":
            from lutece.ot import LinearProblem, PointCloud, sinkhorn

            def run():
                x = x0.clone().requires_grad_(True)
                out = sinkhorn(LinearProblem(PointCloud(x, y, epsilon=epsilon), a, b),
                               threshold=threshold, norm_error=2,
                               max_iterations=MAX_ITERATIONS, warn=False,
                               implicit_diff=mode == "implicit")
                (gradient,) = torch.autograd.grad(out.reg_ot_cost, x)
                return gradient.numpy()
        else:
            import ot

            def run():
                x = x0.clone().requires_grad_(True)
                result = ot.solve(ot.dist(x, y), a, b, reg=epsilon, reg_type="KL",
                                  max_iter=MAX_ITERATIONS, tol=threshold, grad=mode)
                (gradient,) = torch.autograd.grad(result.value, x)
                return gradient.numpy()
    seconds, gradient = median_time(run, repeats)
    return {"seconds": seconds, "gradient": gradient.tolist()}


def worker_online(n: int, iterations: int) -> dict:
    import resource

    torch = _torch_setup()
    from lutece.ot import LinearProblem, PointCloud, sinkhorn

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, generator=generator)
    y = (torch.randn(n, 3, generator=generator) + 0.5) / 5
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    geom = PointCloud(x, y, epsilon=0.01, batch_size=2048)
    out = sinkhorn(LinearProblem(geom), min_iterations=iterations, max_iterations=iterations)
    error = float(out.errors[-1])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "peak_mib": peak / 1024, "increase_mib": (peak - before) / 1024,
            "error": error, "finite": bool(torch.isfinite(out.f).all())}


def worker_compile(n: int, iterations: int, repeats: int) -> dict:
    torch = _torch_setup()
    from lutece.ot import LinearProblem, PointCloud, sinkhorn

    x, y, a, b = (torch.from_numpy(v) for v in data(n, 2))
    epsilon = epsilon_of(*data(n, 2)[:2])

    def solve(x, y, a, b):
        out = sinkhorn(LinearProblem(PointCloud(x, y, epsilon=epsilon), a, b),
                       min_iterations=iterations, max_iterations=iterations)
        return out.reg_ot_cost

    compiled = torch.compile(solve, fullgraph=True)
    start = time.perf_counter()
    compiled(x, y, a, b)
    compile_seconds = time.perf_counter() - start
    eager, eager_value = median_time(lambda: solve(x, y, a, b), repeats)
    fast, fast_value = median_time(lambda: compiled(x, y, a, b), repeats)
    return {"eager": eager, "compiled": fast, "compile_seconds": compile_seconds,
            "difference": abs(float(eager_value) - float(fast_value))}


WORKERS = {"lutece": worker_lutece, "ott": worker_ott, "exact": worker_exact,
           "gradient": worker_gradient, "online": worker_online, "compile": worker_compile,
           "pot_log": lambda *args: worker_pot("sinkhorn_log", *args),
           "pot_kernel": lambda *args: worker_pot("sinkhorn", *args)}


# ---------------------------------------------------------------------------- driver
def _spawn(name: str, *args) -> dict | None:
    return spawn(__file__, THREADS, name, *args)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cell(result: dict | None, ours: dict | None) -> list[str]:
    if result is None:
        return ["-", "-", "-"]
    ratio = f"{result['seconds'] / ours['seconds']:.2f}" if ours else "-"
    return [f"{1e3 * result['seconds']:.1f}", f"{result['iterations']}", ratio]


def run(quick: bool) -> str:
    sizes = [1000] if quick else SIZES
    dimensions = [2] if quick else DIMENSIONS
    libraries = ["lutece", "pot_log", "pot_kernel"] + (["ott"] if _has("ott") else [])
    results: dict[tuple, dict | None] = {}
    for n in sizes:
        for d in dimensions:
            for library in libraries:
                results[(library, n, d)] = _spawn(library, n, d, 3 if quick else _repeats(n))
    exact = {d: _spawn("exact", 1000, d) for d in dimensions}

    header = ["n", "d", "lutece ms", "its", "error"]
    for library in libraries[1:]:
        header += [f"{library} ms", "its", f"{library} / lutece"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    accuracy = ["| d | library | reg. OT cost | emd2 | gap |", "|---|---|---|---|---|"]
    for n in sizes:
        for d in dimensions:
            ours = results[("lutece", n, d)]
            row = [str(n), str(d)]
            row += ([f"{1e3 * ours['seconds']:.1f}", str(ours["iterations"]),
                     f"{ours['error']:.1e}"] if ours else ["-", "-", "-"])
            for library in libraries[1:]:
                row += _cell(results[(library, n, d)], ours)
            lines.append("| " + " | ".join(row) + " |")
            if n == 1000 and exact.get(d):
                emd2 = exact[d]["emd2"]
                for library in libraries:
                    result = results[(library, n, d)]
                    if result:
                        accuracy.append(f"| {d} | {library} | {result['cost']:.6f} | "
                                        f"{emd2:.6f} | {result['cost'] - emd2:+.2e} |")
    compile_notes = [f"- OTT jit compile time, n = {n}, d = {d}: "
                     f"{results[('ott', n, d)]['compile_seconds']:.1f} s"
                     for n in sizes for d in dimensions
                     if results.get(("ott", n, d))]

    # gradients at n = 1000, d = 2
    gradient_runs = [("lutece", "implicit"), ("pot", "envelope")] if quick else [
        ("lutece", "implicit"), ("lutece", "unrolled"), ("pot", "autodiff"),
        ("pot", "envelope")] + ([("ott", "implicit")] if _has("ott") else [])
    gradients = {key: _spawn("gradient", *key, 1000, 2, 5) for key in gradient_runs}
    reference = gradients[("lutece", "implicit")]
    gradient_lines = ["| library | mode | value + grad ms | / lutece implicit | "
                      "max abs difference to lutece implicit |", "|---|---|---|---|---|"]
    for (library, mode), result in gradients.items():
        if result is None or reference is None:
            continue
        difference = float(np.abs(np.asarray(result["gradient"])
                                  - np.asarray(reference["gradient"])).max())
        gradient_lines.append(
            f"| {library} | {mode} | {1e3 * result['seconds']:.1f} | "
            f"{result['seconds'] / reference['seconds']:.2f} | {difference:.1e} |")

    extra = []
    if not quick:
        online = _spawn("online", 100_000, 10)
        if online:
            extra += ["", "Online mode (``batch_size=2048``, never materializing n x m), "
                      "n = m = 100 000, d = 3, epsilon 0.01, 10 iterations: "
                      f"{online['seconds']:.1f} s, peak RSS {online['peak_mib']:.0f} MiB "
                      f"(+{online['increase_mib']:.0f} MiB for the solve), marginal error "
                      f"{online['error']:.2e}, potentials finite: {online['finite']}."]
    compiled = None if quick else _spawn("compile", 4000, 100, 5)
    if compiled:
        extra += ["", f"``torch.compile(fullgraph=True)`` of a 100-iteration fixed solve "
                  "(n = 4000, d = 2): eager "
                  f"{1e3 * compiled['eager']:.1f} ms, compiled {1e3 * compiled['compiled']:.1f}"
                  f" ms (speed-up {compiled['eager'] / compiled['compiled']:.2f}x; the solve "
                  "is one custom op running the eager solver, so the gain can only come "
                  f"from the surrounding code), compile time {compiled['compile_seconds']:.1f}"
                  f" s, values equal to {compiled['difference']:.1e}."]

    today = datetime.date.today().isoformat()
    return "\n".join([
        SECTION, "",
        f"Measured {today} on {platform.processor() or platform.machine()} "
        f"({os.cpu_count()} cores, {THREADS} threads per library), "
        f"{versions('torch', 'pot', 'jax', 'ott-jax')}. float32, "
        f"epsilon = {EPSILON_SCALE} x mean(C) (absolute, the same for all), L2 marginal "
        "error checked every 10 iterations against 0.01 / n^0.33, at most "
        f"{MAX_ITERATIONS} iterations, cost build included, median of 10 / 5 / 3 runs "
        "(n = 1000 / 4000 / 16000) after a warm-up, one fresh process per library and "
        "cell. Ratios above 1 mean lutece is faster. POT counts iterations from its "
        "check after iteration 1, 11, 21, ...",
        "", *lines, "", *compile_notes, "",
        "Accuracy at n = 1000: the dual objective <a, f - eps log a> + <b, g - eps log b> "
        "at each library's potentials (float64), next to the unregularized optimum "
        "``ot.emd2``; the gap is the entropic bias, the same for all at equal accuracy:",
        "", *accuracy, "",
        "Value and gradient w.r.t. x of the regularized cost, n = 1000, d = 2:", "",
        *gradient_lines, *extra, "",
    ])


def main() -> None:
    worker_main(__doc__, WORKERS, SECTION, run, "n = 1000 only, printed")


if __name__ == "__main__":
    main()
