"""`python -m bench.faults`: run the fault scenarios against real processes and print a
summary table; exits non-zero when any event was lost, duplicated or left unapplied."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bench.faults.scenarios import Plan, Result, kill_worker_during_replay, stop_redis_during_replay

SCENARIOS = ("kill", "redis", "redis-hang")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--events", type=int, default=Plan.events)
    parser.add_argument("--customers", type=int, default=Plan.customers)
    parser.add_argument("--senders", type=int, default=Plan.senders)
    parser.add_argument(
        "--kill-rate", type=float, default=0, help="events/s in the kill run; 0: unpaced"
    )
    parser.add_argument(
        "--redis-rate", type=float, default=100, help="events/s in the Redis runs; 0: unpaced"
    )
    parser.add_argument("--sweep-after", type=int, default=Plan.sweep_after)
    parser.add_argument("--sweep-interval", type=int, default=Plan.sweep_interval)
    parser.add_argument("--concurrency", type=int, default=Plan.concurrency)
    parser.add_argument("--drain-timeout", type=float, default=Plan.drain_timeout)
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL database to run against instead of SQLite; its tables are emptied",
    )
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--outage", type=float, default=20.0, help="seconds Redis stays down")
    parser.add_argument("--only", choices=SCENARIOS, action="append")
    return parser.parse_args(argv)


def _cell(value: int | float | str) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def summary(results: list[Result]) -> str:
    """A markdown table: the exactly-once ledger, then each scenario's own measures."""
    rows = [
        ("events sent (accepted)", lambda r: f"{r.plan.events} ({r.ledger.accepted})"),
        ("non-2xx on first try", lambda r: str(r.first_try_failures)),
        ("inbox rows", lambda r: str(r.ledger.inbox_rows)),
        (
            "rows by status",
            lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r.ledger.statuses.items())),
        ),
        ("canonical events applied", lambda r: str(r.ledger.applied)),
        ("sum(accounts.events_applied)", lambda r: str(r.ledger.counter_total)),
        ("rows without exactly 1 canonical event", lambda r: str(len(r.ledger.extra_canonical))),
        (
            "accounts with wrong count / seats",
            lambda r: f"{len(r.ledger.account_mismatch)} / {len(r.ledger.seat_mismatch)}",
        ),
        ("parked / dead", lambda r: f"{r.ledger.parked} / {len(r.ledger.dead)}"),
    ]
    names = [name for result in results for name in result.measures]
    rows += [
        (name, lambda r, name=name: _cell(r.measures.get(name, "-")))
        for name in dict.fromkeys(names)
    ]
    rows.append(("exactly once", lambda r: "yes" if not r.problems else "NO"))
    lines = [
        "| | " + " | ".join(result.name for result in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    lines += [f"| {label} | " + " | ".join(cell(r) for r in results) + " |" for label, cell in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    plan = Plan(
        events=args.events,
        customers=args.customers,
        senders=args.senders,
        sweep_after=args.sweep_after,
        sweep_interval=args.sweep_interval,
        concurrency=args.concurrency,
        drain_timeout=args.drain_timeout,
        database_url=args.database_url,
    )
    chosen = args.only or list(SCENARIOS)
    results = []
    # Unpaced, the worker has a backlog and holds messages whenever it is killed; paced, the
    # traffic keeps arriving through the whole Redis outage.
    kill_plan = replace(plan, rate=args.kill_rate or None)
    redis_plan = replace(plan, rate=args.redis_rate or None)
    if "kill" in chosen:
        results.append(kill_worker_during_replay(kill_plan, kills=args.kills))
    if "redis" in chosen:
        results.append(stop_redis_during_replay(redis_plan, outage=args.outage))
    if "redis-hang" in chosen:
        results.append(stop_redis_during_replay(redis_plan, outage=args.outage, hang=True))
    print(summary(results))
    for result in results:
        for problem in result.problems:
            print(f"{result.name}: {problem}", file=sys.stderr)
    return 1 if any(result.problems for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
