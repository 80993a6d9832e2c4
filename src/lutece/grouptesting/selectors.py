"""Selectors: which pools to run next, within the lab's constraints.

Every selector is ``select(state, posterior, constraints, rng) -> (k, n) bool`` with
k <= pools_per_cycle, every pool non-empty and at most ``max_pool_size`` large, and every
person in at most ``max_pools_per_individual`` of the k pools. ``needs_posterior`` says
whether it reads posterior particles (G-MIMAX, G-AUC). An empty selection means the
selector has nothing left to do (e.g. Dorfman once everyone is resolved).

Classical designs: :class:`Individual`, :class:`Dorfman` (Dorfman 1943), :class:`InformativeDorfman`
(pool-specific optimal Dorfman, McMahan, Tebbs & Bilder 2012, as the anchor's
``InformativeDorfman``), :class:`RandomPools` (random pools of the size whose results are
closest to a coin flip, Mezard & Toninelli 2011), :class:`Split` (split positive pools).
Bayesian design: :class:`GMimax` (Cuturi et al. 2020: pools maximizing the mutual information
of their results with the statuses, built by greedy forward-backward search) and
:class:`GAuc` (the same search for the expected AUC of the posterior marginals).
"""

from __future__ import annotations

import math

import numpy as np

from .inference.particles import WeightedParticles
from .model import CampaignState, Constraints
from .mutual_information import OutcomeTable

__all__ = ["Selector", "Individual", "Dorfman", "InformativeDorfman", "RandomPools", "Split",
           "GMimax", "GAuc", "check_selection"]


class Selector:
    """Base class; subclasses implement :meth:`select`."""

    needs_posterior = False
    name = "selector"

    def select(self, state: CampaignState, posterior: WeightedParticles | None,
               constraints: Constraints, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_selection(pools: np.ndarray, constraints: Constraints, num_people: int) -> None:
    """Raise if ``pools`` breaks a constraint (used on every selection)."""
    if pools.ndim != 2 or pools.shape[1] != num_people or pools.dtype != bool:
        raise ValueError(f"selection must be a (k, {num_people}) boolean array, got "
                         f"{pools.dtype} {pools.shape}")
    if pools.shape[0] > constraints.pools_per_cycle:
        raise ValueError(f"{pools.shape[0]} pools exceed pools_per_cycle = "
                         f"{constraints.pools_per_cycle}")
    sizes = pools.sum(1)
    if (sizes == 0).any() or (sizes > constraints.max_pool_size).any():
        raise ValueError(f"pool sizes {sizes.tolist()} must be in [1, "
                         f"{constraints.max_pool_size}]")
    limit = constraints.max_pools_per_individual
    if limit is not None and (pools.sum(0) > limit).any():
        raise ValueError(f"a person is in more than max_pools_per_individual = {limit} pools")


def _chunks(people: np.ndarray, size: int, num_people: int, limit: int) -> np.ndarray:
    """Consecutive pools of ``size`` from ``people`` (the last one may be smaller), at most
    ``limit`` of them."""
    pools = []
    for start in range(0, people.size, size):
        if len(pools) == limit:
            break
        pool = np.zeros(num_people, dtype=bool)
        pool[people[start:start + size]] = True
        pools.append(pool)
    return np.array(pools, dtype=bool).reshape(-1, num_people)


def _tested_alone(state: CampaignState) -> np.ndarray:
    """(n,) whether each person has had an individual test."""
    singles = state.pools[state.pools.sum(1) == 1]
    return singles.any(0) if singles.size else np.zeros(state.num_people, dtype=bool)


def _needing_retest(state: CampaignState) -> np.ndarray:
    """People in a positive pool of several members, not yet tested alone: Dorfman's
    second stage (noisy tests: a negative pool clears its members; a positive one sends
    them to individual tests)."""
    multi = state.pools.sum(1) > 1
    flagged = (state.pools[multi & state.outcomes]).any(0) if (multi & state.outcomes).any() \
        else np.zeros(state.num_people, dtype=bool)
    return flagged & ~_tested_alone(state)


def _dorfman_size(prevalence: float, max_pool_size: int) -> int:
    """1 + ceil(1 / sqrt(p)), capped (the anchor's SplitSelector, Dorfman's rule of thumb)."""
    return int(min(1 + math.ceil(1 / math.sqrt(prevalence)), max_pool_size))


class Individual(Selector):
    """Test people one by one, never-tested first (in index order)."""

    name = "individual"

    def select(self, state, posterior, constraints, rng):
        untested = np.flatnonzero(~_tested_alone(state))
        return _chunks(untested, 1, state.num_people, constraints.pools_per_cycle)


class Dorfman(Selector):
    """Dorfman's two-stage procedure: pools of 1 + ceil(1 / sqrt(p)) people (p the mean
    prior, capped at max_pool_size), then individual tests of everyone in a positive pool.
    Stages spread over cycles when they need more than pools_per_cycle tests."""

    name = "dorfman"

    def __init__(self, pool_size: int | None = None) -> None:
        if pool_size is not None and (not isinstance(pool_size, int) or pool_size < 1):
            raise ValueError(f"Dorfman: pool_size must be a positive int, got {pool_size!r}")
        self.pool_size = pool_size

    def _first_stage(self, state: CampaignState, untested: np.ndarray,
                     constraints: Constraints) -> np.ndarray:
        size = self.pool_size or _dorfman_size(float(state.prior.probabilities.mean()),
                                               constraints.max_pool_size)
        size = min(size, constraints.max_pool_size)
        return _chunks(untested, size, state.num_people, constraints.pools_per_cycle)

    def select(self, state, posterior, constraints, rng):
        untested = np.flatnonzero(~state.pools.any(0)) if state.pools.size \
            else np.arange(state.num_people)
        if untested.size:
            return self._first_stage(state, untested, constraints)
        retest = np.flatnonzero(_needing_retest(state))
        return _chunks(retest, 1, state.num_people, constraints.pools_per_cycle)


class InformativeDorfman(Dorfman):
    """Pool-specific optimal Dorfman (McMahan, Tebbs & Bilder 2012; the anchor's
    ``InformativeDorfman``): people sorted by probability of infection (posterior marginals
    when available, else priors) and cut greedily into consecutive pools whose size g
    minimizes the expected tests per person, (1 + g (sens - (sens + spec - 1)
    prod (1 - p_i))) / g (1 for g = 1); people above ``cut_off_high`` are tested alone.
    Second stage as Dorfman."""

    name = "informative_dorfman"

    def __init__(self, cut_off_high: float = 0.95) -> None:
        super().__init__()
        if not 0 < cut_off_high <= 1:
            raise ValueError(f"InformativeDorfman: cut_off_high must be in (0, 1], got "
                             f"{cut_off_high}")
        self.cut_off_high = cut_off_high

    def _first_stage(self, state, untested, constraints):
        probabilities = state.prior.probabilities
        order = untested[np.argsort(probabilities[untested], kind="stable")]
        sens = state.test_model.sensitivity_at
        spec = state.test_model.specificity_at
        pools, position = [], 0
        while position < order.size and len(pools) < constraints.pools_per_cycle:
            remaining = order[position:]
            if probabilities[remaining[0]] > self.cut_off_high:
                best = 1
            else:
                best, best_cost = 1, 1.0
                for size in range(2, min(constraints.max_pool_size, remaining.size) + 1):
                    members = probabilities[remaining[:size]]
                    s, c = sens(np.array([size]))[0], spec(np.array([size]))[0]
                    negative = np.prod(1 - members)
                    cost = (1 + size * (s - (s + c - 1) * negative)) / size
                    if cost < best_cost:
                        best, best_cost = size, cost
            pool = np.zeros(state.num_people, dtype=bool)
            pool[remaining[:best]] = True
            pools.append(pool)
            position += best
        return np.array(pools, dtype=bool).reshape(-1, state.num_people)


class RandomPools(Selector):
    """pools_per_cycle random pools of the size g <= max_pool_size whose positive rate is
    closest to one half, (sens - (sens + spec - 1) (1 - p)^g - 1/2)^2 minimal (the anchor's
    ``Mezard``; Mezard & Toninelli 2011), p the mean prior."""

    name = "random"

    def __init__(self, pool_size: int | None = None) -> None:
        self.pool_size = pool_size

    def select(self, state, posterior, constraints, rng):
        n, k = state.num_people, constraints.pools_per_cycle
        p = float(state.prior.probabilities.mean())
        size = self.pool_size
        if size is None:
            sizes = np.arange(1, constraints.max_pool_size + 1)
            sens, spec = state.test_model.sensitivity_at(sizes), \
                state.test_model.specificity_at(sizes)
            rate = sens - (sens + spec - 1) * (1 - p) ** sizes
            size = int(sizes[np.argmin((rate - 0.5) ** 2)])
        size = min(size, constraints.max_pool_size, n)
        limit = constraints.max_pools_per_individual or k
        used = np.zeros(n, dtype=np.int64)
        pools = []
        for _ in range(k):
            allowed = np.flatnonzero(used < limit)
            if allowed.size == 0:
                break
            members = rng.choice(allowed, min(size, allowed.size), replace=False)
            pool = np.zeros(n, dtype=bool)
            pool[members] = True
            used[members] += 1
            pools.append(pool)
        return np.array(pools, dtype=bool).reshape(-1, n)


class Split(Selector):
    """Adaptive splitting: first Dorfman's pools, then every positive pool of several
    members not yet split is cut into ``split_factor`` parts (the anchor's SplitSelector /
    SplitPositive), until positive pools are single people."""

    name = "split"

    def __init__(self, split_factor: int = 2) -> None:
        if not isinstance(split_factor, int) or split_factor < 2:
            raise ValueError(f"Split: split_factor must be an int >= 2, got {split_factor!r}")
        self.split_factor = split_factor

    def select(self, state, posterior, constraints, rng):
        n, k = state.num_people, constraints.pools_per_cycle
        if state.num_tests == 0:
            return Dorfman().select(state, posterior, constraints, rng)
        pools: list[np.ndarray] = []
        for t in np.flatnonzero(state.outcomes & (state.pools.sum(1) > 1)):
            pool = state.pools[t]
            later = state.pools[t + 1:]
            already_split = bool(((later & ~pool[None, :]).sum(1) == 0).any()) if \
                later.size else False
            if already_split:
                continue
            members = np.flatnonzero(pool)
            for part in np.array_split(members, self.split_factor):
                if part.size and len(pools) < k:
                    child = np.zeros(n, dtype=bool)
                    child[part] = True
                    pools.append(child)
        return np.array(pools, dtype=bool).reshape(-1, n)


class _GreedyPosteriorSelector(Selector):
    """The paper's greedy forward-backward construction: pools are built one at a time, each
    conditioned on those already chosen this cycle; a pool grows by ``forward_iterations``
    best additions then shrinks by ``backward_iterations`` best removals, repeatedly, while
    the criterion improves and the size allows."""

    needs_posterior = True

    def __init__(self, forward_iterations: int = 2, backward_iterations: int = 1) -> None:
        if not isinstance(forward_iterations, int) or forward_iterations < 1:
            raise ValueError(f"{type(self).__name__}: forward_iterations must be an int >= 1,"
                             f" got {forward_iterations!r}")
        if not isinstance(backward_iterations, int) or not \
                0 <= backward_iterations < forward_iterations:
            raise ValueError(f"{type(self).__name__}: backward_iterations must be an int in "
                             f"[0, forward_iterations), got {backward_iterations!r}")
        self.forward_iterations = forward_iterations
        self.backward_iterations = backward_iterations

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(forward_iterations={self.forward_iterations}, "
                f"backward_iterations={self.backward_iterations})")

    # subclasses: a state over the chosen pools, candidate scores, and commit
    def _start(self, particles, weights, state): raise NotImplementedError  # noqa: E704
    def _scores(self, tracker, positivity, size): raise NotImplementedError  # noqa: E704
    def _commit(self, tracker, positivity, size): raise NotImplementedError  # noqa: E704
    def _value(self, tracker): raise NotImplementedError  # noqa: E704

    def select(self, state, posterior, constraints, rng):
        if posterior is None:
            raise ValueError(f"{type(self).__name__}: needs posterior particles")
        collapsed = posterior.collapsed()
        particles, weights = collapsed.particles, collapsed.weights
        n = state.num_people
        tracker = self._start(particles, weights, state)
        limit = constraints.max_pools_per_individual or constraints.pools_per_cycle
        used = np.zeros(n, dtype=np.int64)
        pools = []
        for _ in range(constraints.pools_per_cycle):
            pool = self._build_pool(tracker, particles, used < limit, constraints, rng)
            if pool is None:
                break
            positivity = (particles & pool[None, :]).any(1)
            self._commit(tracker, positivity, int(pool.sum()))
            used += pool
            pools.append(pool)
        return np.array(pools, dtype=bool).reshape(-1, n)

    def _build_pool(self, tracker, particles, allowed, constraints, rng):
        n = particles.shape[1]
        members = np.zeros(n, dtype=bool)
        best_value = self._value(tracker)
        forward, backward = self.forward_iterations, self.backward_iterations
        while members.sum() + forward - backward <= constraints.max_pool_size:
            trial = members.copy()
            for _ in range(forward):
                candidates = np.flatnonzero(allowed & ~trial)
                if candidates.size == 0 or trial.sum() >= constraints.max_pool_size:
                    break
                current = (particles & trial[None, :]).any(1)
                positivity = current[:, None] | particles[:, candidates]
                scores = self._scores(tracker, positivity, int(trial.sum()) + 1)
                trial[candidates[_argmax(scores, rng)]] = True
            for _ in range(backward):
                inside = np.flatnonzero(trial)
                if inside.size <= 1:
                    break
                counts = particles[:, inside].sum(1)
                positivity = (counts[:, None] - particles[:, inside]) > 0
                scores = self._scores(tracker, positivity, inside.size - 1)
                trial[inside[_argmax(scores, rng)]] = False
            if not trial.any():
                break
            value = float(self._scores(tracker, (particles & trial[None, :]).any(1)[:, None],
                                       int(trial.sum()))[0])
            if value <= best_value + 1e-6:
                break
            members, best_value = trial, value
        return members if members.any() else None


def _argmax(scores: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the best score, ties broken at random (reproducibly)."""
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return int(best[0] if best.size == 1 else rng.choice(best))


class GMimax(_GreedyPosteriorSelector):
    """G-MIMAX (Cuturi et al. 2020): the next cycle's pools maximize the mutual information
    between their results and the infection statuses under the posterior particles; the
    anchor's defaults as used in its experiments (2 forward, 1 backward steps)."""

    name = "g-mimax"

    def _start(self, particles, weights, state):
        return OutcomeTable(particles, weights, state.test_model)

    def _scores(self, tracker, positivity, size):
        return tracker.scores(positivity, size)

    def _commit(self, tracker, positivity, size):
        tracker.add(positivity, size)

    def _value(self, tracker):
        return tracker.mutual_information


class GAuc(_GreedyPosteriorSelector):
    """G-AUC (the later version of the paper, "the AUC of the ROC curve" as utility; the
    anchor's ``BayesOED(utility_fn=auc())``): pools maximizing the expected AUC of the
    posterior marginals after their results, averaged over the 2^k outcomes. Exponential in
    the pools per cycle; defaults to forward steps only, as the anchor's BayesOED."""

    name = "g-auc"

    def __init__(self, forward_iterations: int = 1, backward_iterations: int = 0) -> None:
        super().__init__(forward_iterations, backward_iterations)

    def _start(self, particles, weights, state):
        return _AucTracker(particles, weights, state.test_model)

    def _scores(self, tracker, positivity, size):
        return tracker.scores(positivity, size)

    def _commit(self, tracker, positivity, size):
        tracker.table.add(positivity, size)

    def _value(self, tracker):
        return tracker.value()


class _AucTracker:
    """Expected AUC of the posterior marginals, over the outcomes of the chosen pools (+ one
    candidate). For an outcome y, the posterior weights are w_i P(y | x_i) / P(y); the AUC of
    the marginals m against a particle x is the probability that an infected person of x
    ranks above a healthy one; its expectation weighs particles by their posterior weight."""

    def __init__(self, particles, weights, test_model):
        self.table = OutcomeTable(particles, weights, test_model)
        self.particles = particles.astype(np.float64)

    def _expected_auc(self, table: np.ndarray) -> float:
        weights = self.table.weights
        total = 0.0
        for column in table.T:
            joint = weights * column
            mass = joint.sum()
            if mass <= 0:
                continue
            posterior = joint / mass
            marginals = posterior @ self.particles
            total += mass * _weighted_auc(marginals, self.particles, posterior)
        return total

    def value(self) -> float:
        return self._expected_auc(self.table.table)

    def scores(self, positivity, size):
        sens, spec = self.table._noise(size)
        values = np.empty(positivity.shape[1])
        for c in range(positivity.shape[1]):
            positive = np.where(positivity[:, c], sens, 1 - spec)
            extended = np.concatenate([self.table.table * positive[:, None],
                                       self.table.table * (1 - positive)[:, None]], axis=1)
            values[c] = self._expected_auc(extended)
        return values


def _weighted_auc(marginals: np.ndarray, particles: np.ndarray, weights: np.ndarray) -> float:
    """sum_i w_i AUC(marginals vs particle i) (particles with no infected or no healthy
    person count as AUC 1)."""
    order = np.argsort(marginals, kind="stable")
    ranks = np.empty(marginals.size)
    sorted_values = marginals[order]
    # average ranks for ties, 1-based
    _, first, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2
    ranks[order] = np.repeat(average, counts)
    positives = particles.sum(1)
    negatives = particles.shape[1] - positives
    rank_sum = particles @ ranks
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    auc = np.where((positives > 0) & (negatives > 0), auc, 1.0)
    return float(weights @ auc)
