"""A lab's testing campaign on disk: people, pools, results and marginals in one SQLite
database (``campaign.sqlite`` in the campaign folder; the standard library's sqlite3).

Durability: WAL journal, one transaction per command, taken with ``BEGIN IMMEDIATE`` so two
commands never interleave (the second waits for the first); the results table is
append-only (a trigger forbids updates and deletes); a command that fails or is killed
leaves the database as it was before it. Every command checks its input in full before
writing anything, and names the offending line of a CSV file.

Schema (version 1): meta(key, value) with the configuration as JSON; people(person, label,
prior); pools(pool, cycle, created_at); members(pool, person); results(pool, positive,
recorded_at, source); marginals(cycle, person, probability).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .inference import SMCOptions
from .model import Constraints, Prior, TestModel
from .policy import CampaignEngine, Policy
from .selectors import Dorfman, GMimax, Individual, InformativeDorfman, RandomPools

__all__ = ["Campaign", "CampaignError", "SCHEMA_VERSION", "POLICIES"]

SCHEMA_VERSION = 1
DATABASE = "campaign.sqlite"
POLICIES = {
    "g-mimax": lambda: (GMimax(), "loopy_bp_or_smc"),
    "dorfman": lambda: (Dorfman(), "loopy_bp_or_smc"),
    "informative-dorfman": lambda: (InformativeDorfman(), "loopy_bp_or_smc"),
    "random": lambda: (RandomPools(), "loopy_bp_or_smc"),
    "individual": lambda: (Individual(), "smc"),
}
_POSITIVE = {"positive", "pos", "+"}
_NEGATIVE = {"negative", "neg", "-"}

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (person INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE,
                     prior REAL NOT NULL CHECK (prior > 0 AND prior < 1));
CREATE TABLE pools (pool TEXT PRIMARY KEY, cycle INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE members (pool TEXT NOT NULL REFERENCES pools(pool),
                      person INTEGER NOT NULL REFERENCES people(person),
                      PRIMARY KEY (pool, person));
CREATE TABLE results (pool TEXT PRIMARY KEY REFERENCES pools(pool),
                      positive INTEGER NOT NULL CHECK (positive IN (0, 1)),
                      recorded_at TEXT NOT NULL, source TEXT NOT NULL);
CREATE TABLE marginals (cycle INTEGER NOT NULL, person INTEGER NOT NULL,
                        probability REAL NOT NULL, PRIMARY KEY (cycle, person));
CREATE TRIGGER results_no_update BEFORE UPDATE ON results
  BEGIN SELECT RAISE(ABORT, 'results are append-only'); END;
CREATE TRIGGER results_no_delete BEFORE DELETE ON results
  BEGIN SELECT RAISE(ABORT, 'results are append-only'); END;
"""


class CampaignError(ValueError):
    """A command that cannot be carried out; the campaign is unchanged."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _pause_for_fault_injection() -> None:
    """Tests set LUTECE_GROUPTEST_PAUSE to kill a command inside its transaction."""
    pause = os.environ.get("LUTECE_GROUPTEST_PAUSE")
    if pause:
        time.sleep(float(pause))


@dataclass(frozen=True)
class PersonStatus:
    label: str
    prior: float
    probability: float
    decision: str


class Campaign:
    """A campaign folder. Create one with :meth:`create`, open it with ``Campaign(path)``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        database = self.path / DATABASE
        if not database.exists():
            raise CampaignError(f"{self.path}: not a campaign folder (no {DATABASE}); create "
                                "one with `lutece grouptest init`")
        self.database = database
        with contextlib.closing(self._connect()) as connection:
            version = int(self._meta(connection, "schema_version"))
        if version != SCHEMA_VERSION:
            raise CampaignError(f"{self.path}: schema version {version}, this lutece reads "
                                f"{SCHEMA_VERSION}")

    # ------------------------------------------------------------------ storage
    @staticmethod
    def _open(database: Path) -> sqlite3.Connection:
        connection = sqlite3.connect(database, timeout=60.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    def _connect(self) -> sqlite3.Connection:
        return self._open(self.database)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: taken before reading, so commands never interleave."""
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    @staticmethod
    def _meta(connection: sqlite3.Connection, key: str) -> str:
        row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise CampaignError(f"campaign database lacks '{key}'")
        return row[0]

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, path: str | Path, people_csv: str | Path, prevalence: float,
               sensitivity: float = 0.85, specificity: float = 0.97, max_pool_size: int = 8,
               pools_per_cycle: int = 8, max_pools_per_individual: int | None = None,
               policy: str = "g-mimax", num_particles: int = 5000, seed: int = 0) -> Campaign:
        """A new campaign folder from a people CSV (a column ``id``; an optional column
        ``prior`` overrides ``prevalence`` per person)."""
        path = Path(path)
        if (path / DATABASE).exists():
            raise CampaignError(f"{path}: a campaign already exists here")
        if policy not in POLICIES:
            raise CampaignError(f"unknown policy {policy!r}; choose one of "
                                f"{', '.join(POLICIES)}")
        labels, priors = _read_people(Path(people_csv), prevalence)
        Prior(priors)                       # validates every prior
        TestModel(sensitivity, specificity)
        Constraints(max_pool_size, pools_per_cycle, None, max_pools_per_individual)
        config = {"sensitivity": sensitivity, "specificity": specificity,
                  "max_pool_size": max_pool_size, "pools_per_cycle": pools_per_cycle,
                  "max_pools_per_individual": max_pools_per_individual, "policy": policy,
                  "num_particles": num_particles, "seed": seed, "prevalence": prevalence}
        path.mkdir(parents=True, exist_ok=True)
        temporary = path / (DATABASE + ".creating")
        temporary.unlink(missing_ok=True)
        connection = cls._open(temporary)
        try:
            connection.executescript(_SCHEMA)
            connection.execute("BEGIN")
            connection.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)), ("config", json.dumps(config)),
                ("created_at", _now())])
            connection.executemany("INSERT INTO people VALUES (?, ?, ?)",
                                   [(i, label, p) for i, (label, p) in
                                    enumerate(zip(labels, priors))])
            connection.execute("COMMIT")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            connection.close()
        for suffix in ("-wal", "-shm"):
            Path(str(temporary) + suffix).unlink(missing_ok=True)
        temporary.rename(path / DATABASE)   # atomic: a campaign exists whole or not at all
        return cls(path)

    # ------------------------------------------------------------------ reading
    def _load(self, connection: sqlite3.Connection):
        config = json.loads(self._meta(connection, "config"))
        people = connection.execute(
            "SELECT person, label, prior FROM people ORDER BY person").fetchall()
        labels = [row[1] for row in people]
        prior = Prior(np.array([row[2] for row in people]))
        pool_rows = connection.execute(
            "SELECT pool, cycle FROM pools ORDER BY cycle, pool").fetchall()
        members: dict[str, list[int]] = {pool: [] for pool, _ in pool_rows}
        for pool, person in connection.execute("SELECT pool, person FROM members"):
            members[pool].append(person)
        results = dict(connection.execute("SELECT pool, positive FROM results").fetchall())
        return config, labels, prior, pool_rows, members, results

    def _engine(self, config, prior, pool_rows, members, results):
        """The in-memory engine with every recorded result, cycle by cycle (not decoded)."""
        test_model = TestModel(config["sensitivity"], config["specificity"])
        constraints = Constraints(config["max_pool_size"], config["pools_per_cycle"], None,
                                  config["max_pools_per_individual"])
        policy = Policy(POLICIES[config["policy"]](), name=config["policy"],
                        smc=SMCOptions(num_particles=config["num_particles"]))
        done = [(pool, cycle) for pool, cycle in pool_rows if pool in results]
        rng = np.random.default_rng([config["seed"], len(done)])
        engine = CampaignEngine(policy, prior, test_model, constraints, rng)
        for cycle in sorted({cycle for _, cycle in done}):
            names = [pool for pool, c in done if c == cycle]
            design = np.zeros((len(names), prior.num_people), dtype=bool)
            for row, name in enumerate(names):
                design[row, members[name]] = True
            engine.state.add_results(design, np.array([bool(results[n]) for n in names]))
        return engine

    # ------------------------------------------------------------------ commands
    def next_pools(self) -> list[tuple[str, list[str]]]:
        """The pools of the next cycle, stored as awaiting results: [(pool id, member
        labels)]. Refuses while pools of an earlier cycle still await results."""
        with self._transaction() as connection:
            config, labels, prior, pool_rows, members, results = self._load(connection)
            pending = [pool for pool, _ in pool_rows if pool not in results]
            if pending:
                raise CampaignError(
                    f"{len(pending)} pool(s) still await results ({', '.join(pending[:8])}"
                    f"{', ...' if len(pending) > 8 else ''}); record them first")
            engine = self._engine(config, prior, pool_rows, members, results)
            cycle = (max(c for _, c in pool_rows) + 1) if pool_rows else 0
            design = engine.propose()
            created = _now()
            proposed = []
            for index, pool in enumerate(design, 1):
                name = f"C{cycle + 1:03d}-P{index:02d}"
                people = np.flatnonzero(pool).tolist()
                connection.execute("INSERT INTO pools VALUES (?, ?, ?)", (name, cycle, created))
                connection.executemany("INSERT INTO members VALUES (?, ?)",
                                       [(name, person) for person in people])
                proposed.append((name, [labels[p] for p in people]))
            _pause_for_fault_injection()
            return proposed

    def record(self, results_csv: str | Path) -> int:
        """Add the lab's results from a CSV with columns ``pool`` and ``result``
        (positive / negative). Everything is checked first: an unknown pool, a pool
        already recorded (also twice in the file) or another value aborts the command,
        naming the line. Returns the number of results recorded."""
        rows = _read_results(Path(results_csv))
        with self._transaction() as connection:
            config, labels, prior, pool_rows, members, results = self._load(connection)
            known = {pool for pool, _ in pool_rows}
            seen: dict[str, int] = {}
            for line, pool, _ in rows:
                if pool not in known:
                    raise CampaignError(f"{results_csv}, line {line}: unknown pool {pool!r}")
                if pool in results:
                    raise CampaignError(f"{results_csv}, line {line}: pool {pool!r} already "
                                        "has a result (recording the same results twice?)")
                if pool in seen:
                    raise CampaignError(f"{results_csv}, line {line}: pool {pool!r} appears "
                                        f"twice (also line {seen[pool]})")
                seen[pool] = line
            recorded_at = _now()
            source = Path(results_csv).name
            connection.executemany("INSERT INTO results VALUES (?, ?, ?, ?)",
                                   [(pool, int(positive), recorded_at, source)
                                    for _, pool, positive in rows])
            results.update({pool: int(positive) for _, pool, positive in rows})
            engine = self._engine(config, prior, pool_rows, members, results)
            cycle = max(c for pool, c in pool_rows if pool in results)
            # decoded here only: proposing the next pools needs the posterior, not marginals
            engine.marginals = engine._decode(engine.policy.step(cycle)[1])
            connection.execute("DELETE FROM marginals WHERE cycle = ?", (cycle,))
            connection.executemany("INSERT INTO marginals VALUES (?, ?, ?)",
                                   [(cycle, person, float(p))
                                    for person, p in enumerate(engine.marginals)])
            _pause_for_fault_injection()
            return len(rows)

    def status(self, positive_at: float = 0.5, negative_below: float = 0.05
               ) -> list[PersonStatus]:
        """Each person's probability of infection (latest cycle) and a decision:
        "positive" at or above ``positive_at``, "negative" below ``negative_below``,
        else "test again"; "not tested yet" for people in no pool with a result."""
        with contextlib.closing(self._connect()) as connection:
            people = connection.execute(
                "SELECT person, label, prior FROM people ORDER BY person").fetchall()
            latest = connection.execute("SELECT MAX(cycle) FROM marginals").fetchone()[0]
            probabilities = {person: prior for person, _, prior in people}
            if latest is not None:
                probabilities.update(dict(connection.execute(
                    "SELECT person, probability FROM marginals WHERE cycle = ?", (latest,))))
            tested = {person for (person,) in connection.execute(
                "SELECT DISTINCT members.person FROM members JOIN results USING (pool)")}
        statuses = []
        for person, label, prior in people:
            p = probabilities[person]
            decision = "positive" if p >= positive_at else (
                "negative" if p < negative_below else "test again")
            if person not in tested:
                decision = "not tested yet"
            statuses.append(PersonStatus(label, prior, p, decision))
        return statuses

    def export(self, folder: str | Path) -> list[Path]:
        """people.csv, pools.csv, results.csv and marginals.csv (one row per cycle and
        person) in ``folder``; returns the files written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(self._connect()) as connection:
            labels = dict(connection.execute("SELECT person, label FROM people"))
            tables = {
                "people.csv": (["id", "prior"], connection.execute(
                    "SELECT label, prior FROM people ORDER BY person").fetchall()),
                "pools.csv": (["pool", "cycle", "members", "created_at"], [
                    (pool, cycle + 1, " ".join(labels[p] for p in sorted(
                        person for (person,) in connection.execute(
                            "SELECT person FROM members WHERE pool = ?", (pool,)))), created)
                    for pool, cycle, created in connection.execute(
                        "SELECT pool, cycle, created_at FROM pools ORDER BY cycle, pool")
                    .fetchall()]),
                "results.csv": (["pool", "result", "recorded_at", "source"], [
                    (pool, "positive" if positive else "negative", at, source)
                    for pool, positive, at, source in connection.execute(
                        "SELECT pool, positive, recorded_at, source FROM results ORDER BY "
                        "recorded_at, pool")]),
                "marginals.csv": (["cycle", "id", "probability"], [
                    (cycle + 1, labels[person], probability)
                    for cycle, person, probability in connection.execute(
                        "SELECT cycle, person, probability FROM marginals ORDER BY cycle, "
                        "person")]),
            }
        written = []
        for name, (header, rows) in tables.items():
            target = folder / name
            temporary = target.with_suffix(".csv.tmp")
            with temporary.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(header)
                writer.writerows(rows)
            temporary.replace(target)
            written.append(target)
        return written


def _read_people(path: Path, prevalence: float) -> tuple[list[str], list[float]]:
    if not path.exists():
        raise CampaignError(f"{path}: no such file")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "id" not in reader.fieldnames:
            raise CampaignError(f"{path}: needs a header with a column 'id' (and optionally "
                                "'prior')")
        labels, priors = [], []
        for line, row in enumerate(reader, start=2):
            label = (row.get("id") or "").strip()
            if not label:
                raise CampaignError(f"{path}, line {line}: empty id")
            if label in labels:
                raise CampaignError(f"{path}, line {line}: id {label!r} appears twice")
            value = (row.get("prior") or "").strip()
            try:
                prior = float(value) if value else float(prevalence)
            except ValueError:
                raise CampaignError(f"{path}, line {line}: prior {value!r} is not a number") \
                    from None
            if not 0 < prior < 1:
                raise CampaignError(f"{path}, line {line}: prior must be in (0, 1), got "
                                    f"{prior}")
            labels.append(label)
            priors.append(prior)
    if not labels:
        raise CampaignError(f"{path}: no people")
    return labels, priors


def _read_results(path: Path) -> list[tuple[int, str, bool]]:
    if not path.exists():
        raise CampaignError(f"{path}: no such file")
    rows = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"pool", "result"} <= set(reader.fieldnames):
            raise CampaignError(f"{path}: needs a header with columns 'pool' and 'result'")
        for line, row in enumerate(reader, start=2):
            pool = (row.get("pool") or "").strip()
            value = (row.get("result") or "").strip().lower()
            if value in _POSITIVE:
                positive = True
            elif value in _NEGATIVE:
                positive = False
            else:
                raise CampaignError(f"{path}, line {line}: result must be 'positive' or "
                                    f"'negative', got {row.get('result')!r}")
            rows.append((line, pool, positive))
    if not rows:
        raise CampaignError(f"{path}: no results")
    return rows
