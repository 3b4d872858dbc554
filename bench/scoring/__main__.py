"""`python -m bench.scoring`: generate a book of accounts with 120 days of history straight into
the state tables of a fresh SQLite (embedded default, temporary VAR_DIR) and of a PostgreSQL
database of its own; then, each in a process of its own: the full rescore twice as `expansion
rescore --all` runs it, over worker processes (the first writes every account's history row, the
second finds every result unchanged, as a daily rescore of a quiet book does), and
single-account recompute latency. Prints markdown, saves JSON under bench/results/."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ingest.report import machine
from bench.scoring import store
from bench.scoring.book import Rows, generate
from expansion import db
from expansion.embedded import stop_embedded_redis

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGETS = {"rescore_seconds": 60.0, "peak_rss_mib": 1024.0, "recompute_p95_ms": 20.0}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring", description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=120, help="days of history")
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument(
        "--postgres-server",
        default=DEFAULT_SERVER,
        help=f"any database on the server to use (default {DEFAULT_SERVER}); the benchmark "
        f"creates and drops its own database `{store.BENCH_DATABASE}` there",
    )
    parser.add_argument("--samples", type=int, default=300, help="accounts timed for latency")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes of the full rescore, as `expansion rescore --all` uses by "
        "default (default: one per CPU)",
    )
    parser.add_argument("--phases", action="store_true", help="also time the rescore's steps")
    parser.add_argument(
        "--profile",
        choices=("first", "again"),
        help="also profile a rescore in one process: of the fresh book (`first`, restored from "
        "--book-cache) or of the scored one (`again`)",
    )
    parser.add_argument(
        "--book-cache",
        type=Path,
        help="keep each generated book here (a SQLite file; a template database on the "
        "PostgreSQL server) and reuse it on a later run with the same --accounts, --days, "
        "--seed and UTC day instead of generating it again",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        help="a copy of another tree of this repository (e.g. `git archive HEAD | tar -x -C "
        "DIR`): its full rescore is run too, right after this tree's second one, on the same "
        "database state, and with --book-cache its first one on the fresh book restored, for "
        "ratios measured under the same load (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.profile == "first" and args.book_cache is None:
        parser.error("--profile first restores the fresh book: give --book-cache too")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    now = datetime.now(UTC)
    report: dict[str, Any] = {
        "command": "python -m bench.scoring " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": now.isoformat(timespec="seconds"),
        "machine": machine(),
        "accounts": args.accounts,
        "days": args.days,
        "targets": TARGETS,
        "databases": {},
    }
    for name in args.databases.split(","):
        report["databases"][name] = run_database(name.strip(), args, now)
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"scoring-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2))
    print(markdown(report))
    print(f"\nJSON: {path}")
    return 0


def run_database(name: str, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    # Short path: the embedded Redis (the recompute locks) listens on a unix socket under it.
    var_dir = Path(tempfile.mkdtemp(prefix="esbs-"))
    if name == "sqlite":
        target = store.sqlite_target(var_dir)
    elif name == "postgresql":
        target = store.postgresql_target(var_dir, args.postgres_server)
    else:
        raise SystemExit(f"unknown database {name!r}: sqlite or postgresql")
    result: dict[str, Any] = {}
    cached = store.BookCache.of(args.book_cache, args, now.date()) if args.book_cache else None
    try:
        reused = cached.restore(target) if cached is not None else None
        if reused is not None:
            result["generate"] = reused
            progress(f"{name}: reused the book {cached.key}; full rescore (first)")
        else:
            result["generate"] = generate_book(target, args, now)
            if cached is not None:
                cached.keep(target, result["generate"])
            progress(
                f"{name}: generated in {result['generate']['seconds_total']:.0f} s; "
                "full rescore (first)"
            )
        db.dispose_engines()  # this process is done with the database
        processes = ("--processes", str(args.processes))
        result["rescore_first"] = measure(target, "rescore", now, *processes)
        progress(f"{name}: full rescore (again, nothing changed)")
        result["rescore_again"] = measure(target, "rescore", now, *processes)
        result["baselines_again"] = {}
        for tree in args.baseline:
            progress(f"{name}: full rescore (again) with the tree {tree}")
            # A tree whose rescore runs in one process only takes the option and ignores it.
            result["baselines_again"][str(tree)] = measure(
                target, "rescore", now, *processes, tree=tree
            )
        result["baselines_first"] = {}
        for tree in args.baseline if cached is not None else ():
            progress(f"{name}: full rescore (first, of the fresh book again) with the tree {tree}")
            db.dispose_engines()
            cached.restore(target)  # type: ignore[union-attr]
            result["baselines_first"][str(tree)] = measure(
                target, "rescore", now, *processes, tree=tree
            )
        progress(f"{name}: single-account recompute latency")
        result["latency"] = measure(target, "latency", now, "--samples", str(args.samples))
        if args.phases:
            progress(f"{name}: rescore steps")
            result["phases"] = measure(target, "phases", now)
        if args.profile == "first" and cached is not None:
            progress(f"{name}: restoring the fresh book for the profile")
            db.dispose_engines()
            if cached.restore(target) is None:
                raise SystemExit(f"{name}: the book {cached.key} was not kept")
        if args.profile:
            progress(f"{name}: profiled rescore ({args.profile})")
            result["profile"] = measure(target, "profile", now)
    finally:
        stop_embedded_redis(var_dir)
        store.drop(target)
        shutil.rmtree(var_dir, ignore_errors=True)
    return result


def generate_book(target: store.Target, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    store.create(target)
    generation = _Timed(generate(args.accounts, now.date(), args.days, args.seed))
    progress(f"{target.name}: generating {args.accounts:,} accounts")
    counts, fill_seconds = store.timed_fill(target, generation)
    return {
        "seconds_total": round(fill_seconds, 1),
        "seconds_generating": round(generation.seconds, 1),
        "seconds_writing": round(fill_seconds - generation.seconds, 1),
        "rows": counts,
        "database_mib": round(store.database_size(target) / 2**20),
    }


class _Timed(Iterator[Rows]):
    """The generator's own time, apart from the time spent writing what it yields."""

    def __init__(self, chunks: Iterable[Rows]) -> None:
        self.chunks = iter(chunks)
        self.seconds = 0.0

    def __next__(self) -> Rows:
        started = time.perf_counter()
        try:
            return next(self.chunks)
        finally:
            self.seconds += time.perf_counter() - started


def measure(
    target: store.Target, mode: str, now: datetime, *extra: str, tree: Path = ROOT
) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.scoring.measure", mode, "--now", now.isoformat(), *extra],
        env={**target.env, "PYTHONPATH": str(tree), "MAPPINGS_DIR": str(tree / "mappings")},
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{mode} on {target.name} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def progress(message: str) -> None:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message} (load average {load})", flush=True)


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"Run {report['started']} - {report['finished']}: `{report['command']}`; "
        f"{m['nproc']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"load average at start {m['load_average_at_start']}.",
        "",
        "| | " + " | ".join(report["databases"]) + " |",
        "|---|" + "---:|" * len(report["databases"]),
    ]
    rows: dict[str, list[str]] = {}

    def add(label: str, value: str) -> None:
        rows.setdefault(label, []).append(value)

    for result in report["databases"].values():
        generated = result["generate"]
        counts = generated["rows"]
        add(
            "accounts / users / feature rows",
            f"{counts['accounts']:,} / "
            f"{counts['account_users']:,} / {counts['account_features']:,}",
        )
        add("rows in all state tables", f"{sum(counts.values()):,}")
        add("database size", f"{generated['database_mib']:,} MiB")
        reused = ", kept from an earlier run" if generated.get("reused") else ""
        add(
            "generation (generating + writing)",
            f"{generated['seconds_total']:.0f} s ({generated['seconds_generating']:.0f} + "
            f"{generated['seconds_writing']:.0f}){reused}",
        )
        for key, label in (("rescore_first", "first"), ("rescore_again", "again")):
            run = result[key]
            seconds = run["seconds"]
            add(
                f"full rescore, {label} (target <= 60 s)",
                f"**{seconds:.1f} s** ({run['accounts'] / seconds:,.0f}/s, "
                f"{run['processes']} processes, {run['cpu_seconds_with_workers']:.0f} CPU s), "
                f"{_verdict(seconds, TARGETS['rescore_seconds'])}",
            )
            add(
                f"peak RSS, {label}: parent + workers x each (target <= 1 GiB)",
                f"**{run['total_peak_rss_mib']:,.0f} MiB** ({run['peak_rss_mib']:,.0f} + "
                f"{run['processes']} x {run['worker_peak_rss_mib']:,.0f}), "
                f"{_verdict(run['total_peak_rss_mib'], TARGETS['peak_rss_mib'])}",
            )
            add(
                f"rescore {label}: written / unchanged / skipped / failed",
                f"{run['written']:,} / {run['unchanged']:,} / {run['skipped']:,} / "
                f"{run['failed']:,}",
            )
            add(f"load average during rescore {label}", f"{run['load_average']}")
        for tree, old in result.get("baselines_first", {}).items():
            new = result["rescore_first"]
            time_ratio = new["seconds"] / old["seconds"]
            cpu_ratio = new["cpu_seconds_with_workers"] / old["cpu_seconds_with_workers"]
            add(
                f"rescore first by the tree {tree} (the fresh book restored, after the others)",
                f"{old['seconds']:.1f} s ({old['cpu_seconds_with_workers']:.0f} CPU s), load "
                f"average {old['load_average']}; this tree: **{time_ratio:.2f}x** its time, "
                f"{cpu_ratio:.2f}x its CPU",
            )
        for tree, old in result.get("baselines_again", {}).items():
            new = result["rescore_again"]
            old_cpu = old.get("cpu_seconds_with_workers", old["cpu_seconds"])
            old_rss = old.get("total_peak_rss_mib", old["peak_rss_mib"])
            add(
                f"rescore again by the tree {tree} (same state, right after)",
                f"{old['seconds']:.1f} s in {old.get('processes', 1)} process(es) "
                f"({old_cpu:.0f} CPU s), peak RSS {old_rss:,.0f} MiB, load average "
                f"{old['load_average']}; this tree: **{new['seconds'] / old['seconds']:.2f}x** "
                f"its time, {new['cpu_seconds_with_workers'] / old_cpu:.2f}x its CPU",
            )
        bands = result["rescore_first"]["bands"]
        add(
            "bands (health; readiness)",
            "; ".join(
                ", ".join(f"{band} {n:,}" for band, n in bands[what].items())
                for what in ("health", "readiness")
            ),
        )
        latency = result["latency"]
        as_is, written = latency["as_is"], latency["writing_history"]
        add(
            "recompute p95, result unchanged (target <= 20 ms)",
            f"**{as_is['p95_ms']} ms** (p50 {as_is['p50_ms']}, p99 {as_is['p99_ms']}, "
            f"max {as_is['max_ms']}), {_verdict(as_is['p95_ms'], TARGETS['recompute_p95_ms'])}",
        )
        add(
            "recompute p95, writing a history row",
            f"**{written['p95_ms']} ms** (p50 {written['p50_ms']}, p99 {written['p99_ms']}, "
            f"max {written['max_ms']}), "
            f"{_verdict(written['p95_ms'], TARGETS['recompute_p95_ms'])}",
        )
        if "phases" in result:
            phases = result["phases"]
            add(
                "steps in one process: load / signals / health+readiness / row / evidence (CPU s)",
                " / ".join(f"{v:.1f}" for v in phases["phases"].values()),
            )
    for label, values in rows.items():
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
