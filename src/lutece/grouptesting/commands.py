"""``lutece grouptest ...``: a lab's campaign from the command line.

    lutece grouptest init --people people.csv --prevalence 0.02 [--sensitivity 0.85]
        [--specificity 0.97] [--max-pool-size 8] [--pools-per-cycle 8]
        [--max-pools-per-person N] [--policy g-mimax] [--particles 5000] [--seed 0] CAMPAIGN
    lutece grouptest next CAMPAIGN [--out pools.csv]       the next cycle's pools (CSV)
    lutece grouptest record CAMPAIGN results.csv           the lab's results (pool,result)
    lutece grouptest status CAMPAIGN [--positive-at 0.5] [--negative-below 0.05]
    lutece grouptest export CAMPAIGN [--out FOLDER]        everything as CSV
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    grouptest = commands.add_parser(
        "grouptest", help="run a pooled-testing campaign (Bayesian adaptive group testing)",
        description="A lab's campaign: propose pools, record results, read each person's "
                    "probability of infection. State lives in CAMPAIGN/campaign.sqlite.")
    actions = grouptest.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="create a campaign folder")
    init.add_argument("campaign", type=Path)
    init.add_argument("--people", type=Path, required=True,
                      help="CSV with a column 'id' (and optionally 'prior')")
    init.add_argument("--prevalence", type=float, required=True,
                      help="prior probability of infection of people without a 'prior'")
    init.add_argument("--sensitivity", type=float, default=0.85)
    init.add_argument("--specificity", type=float, default=0.97)
    init.add_argument("--max-pool-size", type=int, default=8)
    init.add_argument("--pools-per-cycle", type=int, default=8)
    init.add_argument("--max-pools-per-person", type=int, default=None,
                      help="most pools one sample may join in a cycle (default: no limit)")
    init.add_argument("--policy", default="g-mimax",
                      choices=["g-mimax", "dorfman", "informative-dorfman", "random",
                               "individual"])
    init.add_argument("--particles", type=int, default=5000,
                      help="SMC particles of the posterior (default 5000)")
    init.add_argument("--seed", type=int, default=0)
    next_ = actions.add_parser("next", help="propose the next cycle's pools")
    next_.add_argument("campaign", type=Path)
    next_.add_argument("--out", type=Path, default=None, help="CSV file (default: stdout)")
    record = actions.add_parser("record", help="add the lab's results")
    record.add_argument("campaign", type=Path)
    record.add_argument("results", type=Path, help="CSV with columns 'pool' and 'result'")
    status = actions.add_parser("status", help="each person's probability of infection")
    status.add_argument("campaign", type=Path)
    status.add_argument("--positive-at", type=float, default=0.5)
    status.add_argument("--negative-below", type=float, default=0.05)
    export = actions.add_parser("export", help="write people, pools, results, marginals as "
                                               "CSV")
    export.add_argument("campaign", type=Path)
    export.add_argument("--out", type=Path, default=None,
                        help="folder (default: CAMPAIGN/export)")


def run(args: argparse.Namespace) -> int:
    from .campaign import Campaign, CampaignError

    try:
        if args.action == "init":
            campaign = Campaign.create(
                args.campaign, args.people, args.prevalence, args.sensitivity,
                args.specificity, args.max_pool_size, args.pools_per_cycle,
                args.max_pools_per_person, args.policy, args.particles, args.seed)
            people = len(campaign.status())
            print(f"campaign created in {args.campaign} ({people} people, policy "
                  f"{args.policy}); next: lutece grouptest next {args.campaign}")
            return 0
        campaign = Campaign(args.campaign)
        if args.action == "next":
            pools = campaign.next_pools()
            if not pools:
                print("nothing left to test: the policy has no further pools", file=sys.stderr)
                return 0
            handle = args.out.open("w", newline="") if args.out else sys.stdout
            try:
                writer = csv.writer(handle)
                writer.writerow(["pool", "members"])
                for name, members in pools:
                    writer.writerow([name, " ".join(members)])
            finally:
                if args.out:
                    handle.close()
            if args.out:
                print(f"{len(pools)} pools written to {args.out}", file=sys.stderr)
            return 0
        if args.action == "record":
            count = campaign.record(args.results)
            print(f"{count} results recorded; see: lutece grouptest status {args.campaign}")
            return 0
        if args.action == "status":
            statuses = campaign.status(args.positive_at, args.negative_below)
            width = max(len(s.label) for s in statuses)
            print(f"{'id':<{width}}  prior    P(infected)  decision")
            for s in sorted(statuses, key=lambda s: -s.probability):
                print(f"{s.label:<{width}}  {s.prior:<7.4f}  {s.probability:<11.4f}  "
                      f"{s.decision}")
            return 0
        written = campaign.export(args.out or args.campaign / "export")
        print("written: " + ", ".join(str(path) for path in written))
        return 0
    except (CampaignError, ValueError) as error:
        print(f"lutece grouptest {args.action}: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # e.g. `lutece grouptest status camp | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the exit-time flush
        return 0
