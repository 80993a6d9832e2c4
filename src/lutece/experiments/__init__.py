"""One experiment per paper claim, registered by name for ``lutece reproduce NAME``.

An experiment is a function ``run(quick: bool, seed: int) -> ExperimentResult`` decorated
with :func:`register`. Quick mode uses one seed and reduced sizes; all quick modes together
stay under 20 minutes on 2 cores (``lutece demo``), each with its own share in
``QUICK_BUDGET_SECONDS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..report import ExperimentResult

__all__ = ["Experiment", "register", "registry", "get"]

ExperimentFn = Callable[[bool, int], ExperimentResult]


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    run: ExperimentFn
    quick_budget_seconds: float


_REGISTRY: dict[str, Experiment] = {}

# The modules that define experiments, imported on first use of the registry.
_MODULES = ["sorting", "perturbed", "ot", "grouptesting", "leaf", "diffstride", "diarization",
            "quantile_factorization", "ot_extensions", "permutations", "audiolm"]


def register(name: str, title: str, quick_budget_seconds: float) -> Callable[
        [ExperimentFn], ExperimentFn]:
    """Register ``run`` under ``name``; ``quick_budget_seconds`` is its share of the demo."""

    def decorator(run: ExperimentFn) -> ExperimentFn:
        if name in _REGISTRY:
            raise ValueError(f"register: an experiment named {name!r} already exists")
        _REGISTRY[name] = Experiment(name, title, run, quick_budget_seconds)
        return run

    return decorator


def registry() -> dict[str, Experiment]:
    """All experiments by name, in registration order."""
    for module in _MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return dict(_REGISTRY)


def get(name: str) -> Experiment:
    experiments = registry()
    if name not in experiments:
        known = ", ".join(sorted(experiments))
        raise KeyError(f"unknown experiment {name!r}; known: {known}")
    return experiments[name]
