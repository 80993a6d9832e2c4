"""Group testing benchmark: time of a simulated G-MIMAX campaign at the anchor's settings,
time per cycle (posterior update + G-MIMAX selection) against n and particles, and the
statistical quality of the SMC marginals against exhaustive enumeration.

The anchor (google-research/group_testing, JAX) no longer runs on current JAX; its time on
a 2-core machine like ours was measured by this project's research notes
(../shared/research/group_testing.md, section 7): 27-43 s per simulated campaign at n = 32,
8 pools per cycle, 4 cycles, 5000 particles, Gibbs moves, G-MIMAX with 2 forward / 1
backward steps. We run the same settings here, one process, 2 threads.

    python benchmarks/grouptesting.py          # full -> RESULTS.md
    python benchmarks/grouptesting.py --quick  # fewer repeats, printed only
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import statistics
import time

import numpy as np

from _results import publish
from lutece.grouptesting import (
    CampaignEngine,
    Constraints,
    GMimax,
    Policy,
    Prior,
    SMCOptions,
    TestModel,
    exhaustive_posterior,
    simulate,
    smc_posterior,
)

SECTION = "## Group testing (lutece.grouptesting)"
ANCHOR_SECONDS = (27.0, 43.0)


def _campaign_seconds(num_simulations: int, particles: int) -> tuple[list[float], dict]:
    policy = Policy((GMimax(2, 1), "loopy_bp_or_smc"), name="g-mimax",
                    smc=SMCOptions(num_particles=particles))
    constraints = Constraints(max_pool_size=8, pools_per_cycle=8, num_cycles=4)
    simulate(policy, Prior(0.05, 32), TestModel(0.85, 0.97), constraints, 1, seed=99,
             progress=False)   # warm-up: numba's cached kernels load
    results = simulate(policy, Prior(0.05, 32), TestModel(0.85, 0.97), constraints,
                       num_simulations, seed=0, progress=False)
    seconds = results.seconds.sum(1).tolist()
    return seconds, results.cycle_metrics(-1)


def _per_cycle(n: int, particles: int, cycles: int = 3) -> dict[str, float]:
    """Median seconds of the posterior update and of the selection, over cycles 1..3 of a
    campaign at prevalence 2%."""
    prior, model = Prior(0.02, n), TestModel(0.85, 0.97)
    constraints = Constraints(max_pool_size=8, pools_per_cycle=8, num_cycles=None)
    policy = Policy((GMimax(2, 1), "smc"), smc=SMCOptions(num_particles=particles))
    rng = np.random.default_rng(0)
    truth = prior.sample(rng)
    engine = CampaignEngine(policy, prior, model, constraints, rng)
    update, select = [], []
    engine._posterior()
    for _ in range(cycles):
        start = time.perf_counter()
        pools = engine.propose()
        select.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.record(pools, model.sample_outcomes(pools, truth, rng))
        update.append(time.perf_counter() - start)
    return {"update": statistics.median(update), "select": statistics.median(select)}


def _quality(particles: int, repeats: int) -> dict[str, float]:
    """Max |SMC - exhaustive| marginal at n = 16 after 16 random pools, against the Monte
    Carlo standard error of a mean of independent draws, sqrt(p (1 - p) / P)."""
    from lutece.grouptesting import (
        Prior,
        SMCOptions,
        TestModel,
    )

    rng = np.random.default_rng(1)
    n = 16
    prior, model = Prior(0.05, n), TestModel(0.85, 0.97)
    truth = prior.sample(rng)
    pools = np.zeros((16, n), dtype=bool)
    for t in range(16):
        pools[t, rng.choice(n, 4, replace=False)] = True
    outcomes = model.sample_outcomes(pools, truth, rng)
    exact = exhaustive_posterior(prior, pools, outcomes, model).marginals
    errors = []
    for r in range(repeats):
        marginals = smc_posterior(prior, pools, outcomes, model, rng=r,
                                  options=SMCOptions(num_particles=particles)).marginals
        errors.append(float(np.abs(marginals - exact).max()))
    standard_error = float(np.sqrt(exact * (1 - exact) / particles).max())
    return {"max_error": statistics.median(errors), "standard_error": standard_error}


def run(quick: bool) -> str:
    import torch

    torch.set_num_threads(2)
    simulations = 3 if quick else 20
    seconds, metrics = _campaign_seconds(simulations, 5000)
    median = statistics.median(seconds)
    sizes = [32, 100] if quick else [32, 100, 500]
    particle_counts = [1000, 5000]
    rows = []
    for n in sizes:
        for particles in particle_counts:
            timing = _per_cycle(n, particles)
            rows.append(f"| {n} | {particles} | {1e3 * timing['update']:.0f} | "
                        f"{1e3 * timing['select']:.0f} | "
                        f"{1e3 * (timing['update'] + timing['select']):.0f} |")
    quality = _quality(5000, 3 if quick else 10)
    versions = [f"numpy {np.__version__}"]
    for name in ("numba", "scipy"):
        versions.append(f"{name} {importlib.metadata.version(name)}")
    today = datetime.date.today().isoformat()
    low, high = ANCHOR_SECONDS
    return "\n".join([
        SECTION, "",
        f"Measured {today} on {platform.processor() or platform.machine()} "
        f"({os.cpu_count()} cores, one process), {', '.join(versions)}.", "",
        f"Simulated G-MIMAX campaign at the anchor's settings (n = 32, prevalence 5%, sens "
        f"0.85 / spec 0.97, 8 pools per cycle, 4 cycles, max pool size 8, 5000 particles, "
        f"Metropolized Gibbs moves, G-MIMAX 2 forward / 1 backward, LBP-or-SMC decoder): "
        f"median {median:.2f} s per campaign over {simulations} simulations (min "
        f"{min(seconds):.2f}, max {max(seconds):.2f}); the anchor took {low:.0f}-{high:.0f} s "
        f"on a 2-core machine (research notes, section 7): {low / median:.0f}-"
        f"{high / median:.0f}x faster. Final mean of sensitivity and specificity "
        f"{metrics['mean_sens_spec']:.3f}, AUC {metrics['auc']:.3f}.", "",
        "Time per cycle after the first (prevalence 2%, 8 pools per cycle, max pool size 8):",
        "", "| n | particles | posterior update ms | G-MIMAX selection ms | cycle ms |",
        "|---|---|---|---|---|", *rows, "",
        f"Statistical quality: n = 16, 16 random pools of 4, 5000 particles: median over "
        f"runs of the largest |SMC - exhaustive| marginal {quality['max_error']:.4f}, "
        f"against a Monte Carlo standard error of {quality['standard_error']:.4f} for "
        f"independent draws.", "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    publish(SECTION, run(args.quick), args.quick)


if __name__ == "__main__":
    main()
