"""Simulated testing campaigns: draw the true statuses, run a policy cycle by cycle against a
noisy simulated lab, and record each cycle's marginals, tests and time.

Common random numbers: simulation s draws its true statuses from a generator seeded by
(seed, s), the lab's noise from (seed, s, 1) and the policy's randomness from (seed, s, 2),
so two policies simulated with the same seed face the same people. Simulations are
independent, so they run in worker processes when ``workers > 1`` with identical results.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .metrics import classification_metrics, paired_bootstrap
from .model import Constraints, Prior, TestModel
from .policy import CampaignEngine, Policy

__all__ = ["simulate", "SimulationResults"]


@dataclass
class SimulationResults:
    """Per simulation s and cycle c: ``marginals`` (S, C, n) after cycle c, ``tests``
    (S, C) cumulative tests, ``seconds`` (S, C) wall time of the cycle, ``bp_converged``
    (S, C) (NaN when BP was not run); ``truth`` (S, n); and every test run, per simulation:
    ``pools[s]`` (T_s, n), ``outcomes[s]`` (T_s,), ``cycles[s]`` (T_s,) (the anchor's
    exported test results were always NaN; these are the real ones)."""

    policy: str
    truth: np.ndarray
    marginals: np.ndarray
    tests: np.ndarray
    seconds: np.ndarray
    bp_converged: np.ndarray
    pools: list[np.ndarray]
    outcomes: list[np.ndarray]
    cycles: list[np.ndarray]

    @property
    def num_simulations(self) -> int:
        return self.truth.shape[0]

    def cycle_metrics(self, cycle: int, threshold: float = 0.5) -> dict[str, float]:
        """Pooled metrics after ``cycle`` (0-based; -1 for the last)."""
        metrics = classification_metrics(self.marginals[:, cycle], self.truth, threshold)
        metrics["tests"] = float(self.tests[:, cycle].mean())
        metrics["seconds_per_simulation"] = float(self.seconds[:, :cycle + 1 if cycle >= 0
                                                               else None].sum(1).mean())
        return metrics

    def summary(self, threshold: float = 0.5) -> list[dict[str, float]]:
        """One metrics dict per cycle."""
        return [self.cycle_metrics(c, threshold) for c in range(self.marginals.shape[1])]

    def interval(self, metric: str, cycle: int = -1, threshold: float = 0.5,
                 num_resamples: int = 1000) -> tuple[float, float]:
        """Bootstrap 95% interval over simulations of a pooled metric after ``cycle``."""
        def statistic(marginals, truth):
            return classification_metrics(marginals, truth, threshold)[metric]
        return paired_bootstrap(statistic, [self.marginals[:, cycle], self.truth],
                                num_resamples)


def _one_simulation(args) -> tuple:
    policy, prior, test_model, constraints, true_prior, true_test_model, seed, index = args
    truth = true_prior.sample(np.random.default_rng([seed, index]))
    lab = np.random.default_rng([seed, index, 1])
    engine = CampaignEngine(policy, prior, test_model, constraints,
                            np.random.default_rng([seed, index, 2]))
    cycles = constraints.num_cycles or 1
    marginals = np.empty((cycles, prior.num_people))
    tests = np.zeros(cycles, dtype=np.int64)
    seconds = np.zeros(cycles)
    converged = np.full(cycles, np.nan)
    finished = False
    for cycle in range(cycles):
        started = time.perf_counter()
        pools = np.zeros((0, prior.num_people), dtype=bool) if finished else engine.propose()
        if pools.shape[0] == 0:
            finished = True   # nothing left to test: the campaign stands
        else:
            outcomes = true_test_model.sample_outcomes(pools, truth, lab)
            engine.record(pools, outcomes)
            if engine.bp_converged is not None:
                converged[cycle] = float(engine.bp_converged)
        marginals[cycle] = engine.marginals
        tests[cycle] = engine.state.num_tests
        seconds[cycle] = time.perf_counter() - started
    state = engine.state
    return truth, marginals, tests, seconds, converged, state.pools, state.outcomes, \
        state.cycles


def simulate(policy: Policy, prior: Prior, test_model: TestModel, constraints: Constraints,
             num_simulations: int, seed: int = 0, *, true_prior: Prior | None = None,
             true_test_model: TestModel | None = None, workers: int | None = 1,
             progress: bool = True) -> SimulationResults:
    """Run ``num_simulations`` campaigns of ``policy``.

    Args:
        policy: the selectors and decoders per cycle.
        prior, test_model: what the policy assumes.
        constraints: pools per cycle, pool size, cycles (``num_cycles`` must be set).
        num_simulations, seed: how many campaigns, and the seed of their random numbers.
        true_prior, true_test_model: what the simulated world draws from (default: the
            assumed ones); set them to study a misspecified model.
        workers: processes (None: one per CPU). progress: a progress bar.
    """
    fn = "simulate"
    if not isinstance(policy, Policy):
        raise TypeError(f"{fn}: policy must be a Policy, got {type(policy).__name__}")
    if constraints.num_cycles is None:
        raise ValueError(f"{fn}: constraints.num_cycles must be set for a simulation")
    if isinstance(num_simulations, bool) or not isinstance(num_simulations, int) \
            or num_simulations < 1:
        raise ValueError(f"{fn}: num_simulations must be a positive int, got "
                         f"{num_simulations!r}")
    true_prior = true_prior or prior
    true_test_model = true_test_model or test_model
    if true_prior.num_people != prior.num_people:
        raise ValueError(f"{fn}: true_prior has {true_prior.num_people} people, prior "
                         f"{prior.num_people}")
    jobs = [(policy, prior, test_model, constraints, true_prior, true_test_model, seed, s)
            for s in range(num_simulations)]
    workers = os.cpu_count() if workers is None else workers
    bar = tqdm(total=num_simulations, desc=f"simulating {policy.name}", disable=not progress,
               leave=False)
    outputs = []
    if workers <= 1 or num_simulations == 1:
        for job in jobs:
            outputs.append(_one_simulation(job))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for output in pool.map(_one_simulation, jobs, chunksize=max(
                    1, num_simulations // (4 * workers))):
                outputs.append(output)
                bar.update()
    bar.close()
    columns = list(zip(*outputs))
    truth, marginals, tests, seconds, converged = (np.stack(part) for part in columns[:5])
    return SimulationResults(policy.name, truth, marginals, tests, seconds, converged,
                             list(columns[5]), list(columns[6]), list(columns[7]))
