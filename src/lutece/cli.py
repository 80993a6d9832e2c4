"""The ``lutece`` command line.

    lutece --version
    lutece list                                   the registered experiments
    lutece reproduce NAME|all [--quick|--full] [--out DIR] [--seed N] [--force]
    lutece demo [--out DIR] [--force]             = reproduce all --quick --out runs/demo
    lutece grouptest init|next|record|status|export ...   a pooled-testing campaign
    lutece diarize IN.wav [...] -o OUT_DIR [--model CKPT]  who spoke when, as RTTM
    lutece diarization simulate|train|evaluate ...        diarization data, models, DER
    lutece audiolm train-codec|train-semantic|train-stage|continue ...   AudioLM from a folder
    lutece factorize DATA.csv --rank R [--normalize both] --out DIR   quantile-normalized
                                                  low-rank factorization of a CSV matrix
    lutece permutations --nsynth-train DIR --nsynth-test DIR [--quick] [--out DIR]
                                                  the permutations experiment on local NSynth

Each experiment's result is kept in ``DIR/NAME/`` (result.json and its figures); a later run
with the same mode, seed and lutece version reuses finished experiments unless
``--force`` is given, so an
interrupted ``reproduce all`` resumes where it stopped. Every run ends by writing
``DIR/metrics.json`` and ``DIR/report.html``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lutece",
        description="Reproduce, at small scale, ten research results on differentiable "
                    "sorting, perturbed optimizers, optimal transport, audio and group testing.",
    )
    parser.add_argument("--version", action="version", version=f"lutece {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    commands.add_parser("list", help="list the registered experiments")

    reproduce = commands.add_parser(
        "reproduce", help="run one experiment (or all) and write a report",
        description="Run experiments and write DIR/metrics.json and DIR/report.html.")
    reproduce.add_argument("name", metavar="NAME|all", help="an experiment name, or 'all'")
    mode = reproduce.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="one seed, reduced sizes (minutes); too small for some claims")
    mode.add_argument("--full", action="store_true",
                      help="several seeds, full sizes: the runs claims are made on (default)")
    reproduce.add_argument("--out", type=Path, default=None,
                           help="output folder (default: runs/NAME or runs/all)")
    reproduce.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    reproduce.add_argument("--force", action="store_true",
                           help="recompute experiments whose results are already in --out")

    demo = commands.add_parser("demo", help="every experiment's quick mode -> runs/demo")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--force", action="store_true")

    from .grouptesting import commands as grouptest

    grouptest.add_parser(commands)
    from .audio.diarization import commands as diarization

    diarization.add_parsers(commands)
    from .audio.lm import commands as audiolm

    audiolm.add_parsers(commands)
    from .factorization import commands as factorize

    factorize.add_parser(commands)

    permutations = commands.add_parser(
        "permutations", help="the permutation-pretext comparison on a local NSynth",
        description="Run `reproduce permutations` on real NSynth notes instead of synthetic "
                    "ones: pre-training and the probe's training notes are drawn from the "
                    "train split, the probe's test notes from the test split.")
    permutations.add_argument("--nsynth-train", type=Path, required=True, metavar="DIR",
                              help="an NSynth split folder (examples.json, audio/)")
    permutations.add_argument("--nsynth-test", type=Path, required=True, metavar="DIR")
    permutations.add_argument("--quick", action="store_true",
                              help="the quick mode's sizes (one seed, five pretexts)")
    permutations.add_argument("--out", type=Path, default=Path("runs/permutations-nsynth"))
    permutations.add_argument("--seed", type=int, default=0)
    return parser


def _permutations_on_nsynth(args: argparse.Namespace) -> int:
    from .experiments.permutations import default_config, run_with
    from .report import save_result, write_report

    config = dict(default_config(args.quick, args.seed),
                  nsynth=(args.nsynth_train, args.nsynth_test))
    try:
        result = run_with(config, args.quick, args.seed)
    except (FileNotFoundError, ValueError) as error:
        print(f"lutece permutations: {error}", file=sys.stderr)
        return 2
    save_result(result, args.out / result.name)
    print(f"report: {write_report([result], args.out)}")
    return 0


def _reusable(directory: Path, quick: bool, seed: int):
    from .report import load_result, saved_version

    if saved_version(directory) != __version__:
        return None
    try:
        result = load_result(directory)
    except Exception:  # noqa: BLE001 - a stale or partial result is recomputed
        return None
    return result if (result.quick == quick and result.seed == seed) else None


def reproduce(names: list[str], quick: bool, seed: int, out: Path, force: bool) -> int:
    """Run the named experiments, write the report, return a process exit code."""
    from .experiments import get, registry
    from .report import save_result, write_report

    started = time.perf_counter()
    results = []
    for index, name in enumerate(names, 1):
        experiment = get(name)
        directory = out / name
        label = f"[{index}/{len(names)}] {name} ({'quick' if quick else 'full'}, seed {seed})"
        cached = None if force else _reusable(directory, quick, seed)
        if cached is not None:
            print(f"{label}: reusing the finished result in {directory}", flush=True)
            results.append(cached)
            continue
        print(f"{label}: running ...", flush=True)
        result = experiment.run(quick, seed)
        save_result(result, directory)
        verdict = {True: "claim shown", False: "claim NOT shown",
                   None: "inconclusive"}[result.claim_shown]
        print(f"{label}: {result.seconds:.1f} s, {verdict}", flush=True)
        results.append(result)
    # The report covers the whole folder: results of other experiments finished there
    # earlier (same mode, seed and version) stay on the page.
    ran = {result.name for result in results}
    for name in registry():
        if name not in ran:
            earlier = _reusable(out / name, quick, seed)
            if earlier is not None:
                results.append(earlier)
    order = list(registry())
    results.sort(key=lambda result: order.index(result.name) if result.name in order else 0)
    report = write_report(results, out)
    elapsed = time.perf_counter() - started
    print(f"report: {report}\nmetrics: {out / 'metrics.json'}\ntotal: {elapsed:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "grouptest":
        from .grouptesting import commands as grouptest

        return grouptest.run(args)
    if args.command == "permutations":
        return _permutations_on_nsynth(args)
    if args.command in ("diarize", "diarization"):
        from .audio.diarization import commands as diarization

        if args.command == "diarize":
            return diarization.run_diarize(args)
        return diarization.run_diarization(args)
    if args.command == "audiolm":
        from .audio.lm import commands as audiolm

        return audiolm.run(args)
    if args.command == "factorize":
        from .factorization import commands as factorize

        return factorize.run(args)
    if args.command == "list":
        from .experiments import registry

        for name, experiment in registry().items():
            print(f"{name:<16} {experiment.title} "
                  f"(quick mode budget {experiment.quick_budget_seconds:.0f} s)")
        return 0
    from .experiments import registry

    known = registry()
    if args.command == "demo":
        return reproduce(list(known), True, 0, args.out, args.force)
    if args.name != "all" and args.name not in known:
        parser.error(f"unknown experiment {args.name!r}; choose one of: "
                     f"{', '.join(known)}, all")
    names = list(known) if args.name == "all" else [args.name]
    out = args.out or Path("runs") / args.name
    return reproduce(names, args.quick, args.seed, out, args.force)


if __name__ == "__main__":
    sys.exit(main())
