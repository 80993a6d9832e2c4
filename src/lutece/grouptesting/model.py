"""The Bayesian model of noisy group testing (Cuturi, Teboul, Berthet, Doucet & Vert 2020):
independent Bernoulli priors on the infection statuses, and a test whose result on a pool is
positive with probability sensitivity(s) if the pool holds an infected sample and
1 - specificity(s) otherwise, s being the pool's size (dilution).

Designs are boolean matrices ``pools`` (T, n): pool t holds person i iff pools[t, i]; results
are booleans ``outcomes`` (T,). Everything here is numpy: statuses are discrete and nothing is
differentiated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Prior", "TestModel", "Constraints", "CampaignState", "as_design"]


def _probability(fn: str, name: str, value: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{fn}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1):
        bound = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{fn}: {name} must be in {bound}, got {value}")
    return value


@dataclass(frozen=True)
class Prior:
    """Independent Bernoulli priors: one prevalence for everyone, or one probability per
    person.

    Args:
        prevalence: a probability in (0, 1), or a sequence / array of n of them.
        num_people: needed when ``prevalence`` is a single number.
    """

    probabilities: np.ndarray

    def __init__(self, prevalence: float | Sequence[float] | np.ndarray,
                 num_people: int | None = None) -> None:
        fn = "Prior"
        if np.ndim(prevalence) == 0:
            value = float(prevalence)  # type: ignore[arg-type]
            if not 0 < value < 1:
                raise ValueError(f"{fn}: prevalence must be in (0, 1), got {value}")
            if isinstance(num_people, bool) or not isinstance(num_people, int) \
                    or num_people < 1:
                raise ValueError(f"{fn}: num_people must be a positive int when prevalence "
                                 f"is a single number, got {num_people!r}")
            probabilities = np.full(num_people, value)
        else:
            probabilities = np.asarray(prevalence, dtype=np.float64)
            if probabilities.ndim != 1 or probabilities.size == 0:
                raise ValueError(f"{fn}: per-person prevalences must be a non-empty 1-D "
                                 f"sequence, got shape {probabilities.shape}")
            if num_people is not None and num_people != probabilities.size:
                raise ValueError(f"{fn}: got {probabilities.size} prevalences for "
                                 f"num_people={num_people}")
            bad = ~((probabilities > 0) & (probabilities < 1))
            if bad.any():
                index = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{fn}: every prevalence must be in (0, 1), got "
                                 f"{probabilities[index]} for person {index}")
        probabilities = probabilities.copy()
        probabilities.setflags(write=False)
        object.__setattr__(self, "probabilities", probabilities)

    @property
    def num_people(self) -> int:
        return self.probabilities.size

    @property
    def log_odds(self) -> np.ndarray:
        """(n,) log(p / (1 - p))."""
        return np.log(self.probabilities) - np.log1p(-self.probabilities)

    @property
    def is_uniform(self) -> bool:
        return bool(np.all(self.probabilities == self.probabilities[0]))

    def sample(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        """Statuses drawn from the prior: (n,) or (size, n) booleans."""
        shape = (self.num_people,) if size is None else (size, self.num_people)
        return rng.random(shape) < self.probabilities

    def __repr__(self) -> str:
        if self.is_uniform:
            return f"Prior({self.probabilities[0]:g}, num_people={self.num_people})"
        return (f"Prior(per person, {self.num_people} people, mean "
                f"{self.probabilities.mean():.3g})")


@dataclass(frozen=True)
class TestModel:
    """Sensitivity and specificity of one test, possibly depending on the pool size.

    Args:
        sensitivity, specificity: numbers, or sequences whose entry s - 1 applies to pools
            of size s, the last entry to every larger pool (the anchor's
            ``select_from_sizes``). The defaults 0.85 / 0.97 are the paper's.

    A test is informative only if sensitivity + specificity > 1.
    """

    __test__ = False  # not a pytest class, whatever its name says

    sensitivity: tuple[float, ...] = (0.85,)
    specificity: tuple[float, ...] = (0.97,)

    def __init__(self, sensitivity: float | Sequence[float] = 0.85,
                 specificity: float | Sequence[float] = 0.97) -> None:
        fn = "TestModel"
        values = {}
        for name, value in (("sensitivity", sensitivity), ("specificity", specificity)):
            sequence = [value] if np.ndim(value) == 0 else list(value)  # type: ignore[arg-type]
            if not sequence:
                raise ValueError(f"{fn}: {name} must not be empty")
            values[name] = tuple(_probability(fn, name, v, open_low=True) for v in sequence)
        for size in range(1, max(len(values["sensitivity"]), len(values["specificity"])) + 1):
            sens = values["sensitivity"][min(size, len(values["sensitivity"])) - 1]
            spec = values["specificity"][min(size, len(values["specificity"])) - 1]
            if sens + spec <= 1:
                raise ValueError(f"{fn}: sensitivity + specificity must exceed 1 (else the "
                                 f"test carries no information), got {sens} + {spec} for "
                                 f"pools of size {size}")
        object.__setattr__(self, "sensitivity", values["sensitivity"])
        object.__setattr__(self, "specificity", values["specificity"])

    @staticmethod
    def _at(values: tuple[float, ...], sizes: np.ndarray) -> np.ndarray:
        index = np.clip(np.asarray(sizes, dtype=np.int64), 1, len(values)) - 1
        return np.asarray(values, dtype=np.float64)[index]

    def sensitivity_at(self, sizes: np.ndarray) -> np.ndarray:
        """Sensitivity of pools of the given sizes."""
        return self._at(self.sensitivity, sizes)

    def specificity_at(self, sizes: np.ndarray) -> np.ndarray:
        """Specificity of pools of the given sizes."""
        return self._at(self.specificity, sizes)

    def outcome_log_likelihoods(self, pools: np.ndarray, outcomes: np.ndarray
                                ) -> tuple[np.ndarray, np.ndarray]:
        """Per pool, log P(result | the pool holds an infected sample) and log P(result |
        it holds none): two (T,) arrays (-inf where a perfect test makes the result
        impossible)."""
        sizes = pools.sum(1)
        sens, spec = self.sensitivity_at(sizes), self.specificity_at(sizes)
        with np.errstate(divide="ignore"):
            positive = np.where(outcomes, np.log(sens), np.log1p(-sens))
            negative = np.where(outcomes, np.log1p(-spec), np.log(spec))
        return positive, negative

    def sample_outcomes(self, pools: np.ndarray, statuses: np.ndarray,
                        rng: np.random.Generator) -> np.ndarray:
        """Noisy results (T,) of the pools for the true statuses (n,)."""
        sizes = pools.sum(1)
        infected = (pools & statuses[None, :]).any(1)
        probability = np.where(infected, self.sensitivity_at(sizes),
                               1 - self.specificity_at(sizes))
        return rng.random(pools.shape[0]) < probability

    @classmethod
    def with_dilution(cls, sensitivity: float, specificity: float, max_pool_size: int,
                      loss_per_doubling: float) -> TestModel:
        """Sensitivity falling with the pool size as the sample is diluted:
        sens(s) = sensitivity x (1 - loss_per_doubling)^log2(s), specificity constant (a
        simple dilution curve; pass explicit sequences for a measured one)."""
        _probability("TestModel.with_dilution", "loss_per_doubling", loss_per_doubling)
        curve = [sensitivity * (1 - loss_per_doubling) ** math.log2(size)
                 for size in range(1, max_pool_size + 1)]
        return cls(curve, specificity)

    def __repr__(self) -> str:
        def show(values: tuple[float, ...]) -> str:
            return f"{values[0]:g}" if len(values) == 1 else "[" + ", ".join(
                f"{v:.3g}" for v in values) + "]"
        return f"TestModel(sensitivity={show(self.sensitivity)}, " \
               f"specificity={show(self.specificity)})"


@dataclass(frozen=True)
class Constraints:
    """What the lab can do per cycle.

    Args:
        max_pool_size: most samples in one pool.
        pools_per_cycle: tests run together in one cycle.
        num_cycles: cycles in the campaign (None: no limit, for the persistent workflow).
        max_pools_per_individual: most pools one sample may join in a cycle (None: no
            limit), e.g. because each swab yields a fixed volume.
    """

    max_pool_size: int = 8
    pools_per_cycle: int = 8
    num_cycles: int | None = 4
    max_pools_per_individual: int | None = None

    def __post_init__(self) -> None:
        fn = "Constraints"
        for name in ("max_pool_size", "pools_per_cycle", "num_cycles",
                     "max_pools_per_individual"):
            value = getattr(self, name)
            if value is None and name in ("num_cycles", "max_pools_per_individual"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{fn}: {name} must be a positive int, got {value!r}")


def as_design(pools: Sequence[Sequence[int]] | np.ndarray, num_people: int, fn: str = "pools"
              ) -> np.ndarray:
    """A (T, n) boolean design from a list of member-index lists (or a (T, n) matrix of
    booleans or 0/1), checked: members in range, no empty pool, no person twice in a pool."""
    if isinstance(pools, np.ndarray) and pools.ndim == 2 and pools.dtype != bool \
            and pools.shape[1] == num_people and pools.size and np.isin(pools, (0, 1)).all():
        pools = pools.astype(bool)
    if isinstance(pools, np.ndarray) and pools.dtype == bool:
        if pools.ndim != 2 or pools.shape[1] != num_people:
            raise ValueError(f"{fn}: a boolean design must have shape (T, {num_people}), got "
                             f"{pools.shape}")
        design = pools.copy()
    else:
        design = np.zeros((len(pools), num_people), dtype=bool)
        for t, members in enumerate(pools):
            members = list(members)
            for member in members:
                if isinstance(member, bool) or not isinstance(member, (int, np.integer)) \
                        or not 0 <= member < num_people:
                    raise ValueError(f"{fn}: pool {t} has member {member!r}; members must be "
                                     f"ints in [0, {num_people})")
            if len(set(members)) != len(members):
                raise ValueError(f"{fn}: pool {t} lists a member twice: {members}")
            design[t, members] = True
    empty = np.flatnonzero(~design.any(1))
    if empty.size:
        raise ValueError(f"{fn}: pool {int(empty[0])} is empty")
    return design


@dataclass
class CampaignState:
    """Everything known so far: the people's priors, the test model assumed, and every
    pool run with its result and cycle.

    ``pools`` (T, n) bool, ``outcomes`` (T,) bool, ``cycles`` (T,) int.
    """

    prior: Prior
    test_model: TestModel
    pools: np.ndarray = field(default=None)  # type: ignore[assignment]
    outcomes: np.ndarray = field(default=None)  # type: ignore[assignment]
    cycles: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = self.prior.num_people
        if self.pools is None:
            self.pools = np.zeros((0, n), dtype=bool)
            self.outcomes = np.zeros(0, dtype=bool)
            self.cycles = np.zeros(0, dtype=np.int64)

    @property
    def num_people(self) -> int:
        return self.prior.num_people

    @property
    def num_tests(self) -> int:
        return self.pools.shape[0]

    @property
    def cycle(self) -> int:
        """The index of the next cycle (0 before any result)."""
        return int(self.cycles.max()) + 1 if self.cycles.size else 0

    def add_results(self, pools: np.ndarray, outcomes: np.ndarray) -> None:
        """Append one cycle's pools (k, n) and results (k,)."""
        pools = as_design(pools, self.num_people)
        outcomes = np.asarray(outcomes, dtype=bool).reshape(-1)
        if outcomes.size != pools.shape[0]:
            raise ValueError(f"CampaignState.add_results: {pools.shape[0]} pools but "
                             f"{outcomes.size} results")
        cycle = self.cycle
        self.pools = np.concatenate([self.pools, pools])
        self.outcomes = np.concatenate([self.outcomes, outcomes])
        self.cycles = np.concatenate([self.cycles, np.full(pools.shape[0], cycle)])
