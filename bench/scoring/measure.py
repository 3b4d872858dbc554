"""One measurement in a process of its own (so its peak RSS is its own), against the database
the environment names; prints one JSON object. Modes:

- rescore: `recompute.rescore_all` over the whole book, in `--processes` worker processes
  (time, peak RSS of the process and of its workers, CPU, outcome counts).
- latency: `recompute.recompute_account` on random accounts, one at a time (no debounce, no
  queue): as is (the result usually unchanged) and with the account's current score removed
  first (so each run writes a history row).
- phases: the rescore's pure steps timed apart over the whole book, nothing stored: loading the
  states, the signals, health and readiness, and building the history rows and their evidence.
- profile: the rescore under cProfile; the top functions go to the JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import pstats
import random
import resource
import sys
import time
from datetime import datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import delete, select

from expansion import scores_admin
from expansion.db import read_transaction, transaction
from expansion.models import account_current_scores, accounts
from expansion.settings import Settings
from workers import recompute
from workers.scoring import assess
from workers.signals import evaluate
from workers.state_loader import cyclic_gc_paused, load_versioned_states

WARMUP = 20


def rusage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
    }


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def rescore(settings: Settings, now: datetime, processes: int) -> dict[str, Any]:
    before = current_rss_mib()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    summary = recompute.rescore_all(settings, now, processes=processes)
    seconds = time.perf_counter() - started
    own = rusage()
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_peak = round(workers.ru_maxrss / 1024, 1) if processes > 1 else 0.0
    return {
        "seconds": round(seconds, 2),
        "processes": processes,
        "accounts": summary.accounts,
        "written": summary.written,
        "unchanged": summary.unchanged,
        "skipped": summary.skipped,
        "failed": summary.failed,
        "rss_before_mib": before,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **own,
        "worker_peak_rss_mib": worker_peak,
        # The parent and every worker at their peaks at once: an upper bound of the total.
        "total_peak_rss_mib": round(own["peak_rss_mib"] + processes * worker_peak, 1)
        if processes > 1
        else own["peak_rss_mib"],
        "cpu_seconds_with_workers": round(
            own["cpu_seconds"] + workers.ru_utime + workers.ru_stime, 2
        ),
        "bands": dataclasses.asdict(scores_admin.bands(settings)),
    }


def _account_ids(settings: Settings) -> list[int]:
    with transaction(settings) as conn:
        return list(conn.execute(select(accounts.c.id).order_by(accounts.c.id)).scalars())


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2)

    return {
        "n": len(ordered),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 2),
    }


def latency(settings: Settings, now: datetime, samples: int, seed: int) -> dict[str, Any]:
    ids = _account_ids(settings)
    rng = random.Random(seed)
    for account_id in rng.sample(ids, min(WARMUP, len(ids))):
        recompute.recompute_account(settings, account_id, now)
    load_before = os.getloadavg()[0]
    unchanged, written, statuses = [], [], {}
    for account_id in rng.sample(ids, min(samples, len(ids))):
        started = time.perf_counter()
        record = recompute.recompute_account(settings, account_id, now)
        unchanged.append(time.perf_counter() - started)
        statuses[record.status] = statuses.get(record.status, 0) + 1
        with transaction(settings) as conn:
            conn.execute(
                delete(account_current_scores).where(
                    account_current_scores.c.account_id == account_id
                )
            )
        started = time.perf_counter()
        recompute.recompute_account(settings, account_id, now)
        written.append(time.perf_counter() - started)
    return {
        "as_is": {**_summary(unchanged), "statuses": statuses},
        "writing_history": _summary(written),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        **rusage(),
    }


def phases(settings: Settings, now: datetime) -> dict[str, Any]:
    """The pure steps of the rescore timed apart in CPU seconds of this process (the machine
    may be shared), batch by batch as one process of rescore_all takes them."""
    rules = recompute.Rules.from_settings(settings)
    spent = dict.fromkeys(("load", "signals", "health_readiness", "row", "evidence"), 0.0)
    fired: dict[str, int] = {}
    started = time.process_time()
    for ids in recompute.account_batches(settings):
        with cyclic_gc_paused():
            _phases_of_batch(settings, ids, now, rules, spent, fired)
    return {
        "cpu_seconds": round(time.process_time() - started, 2),
        "phases": {name: round(value, 2) for name, value in spent.items()},
        "signals_fired": dict(sorted(fired.items())),
        **rusage(),
    }


def _phases_of_batch(
    settings: Settings,
    ids: list[int],
    now: datetime,
    rules: recompute.Rules,
    spent: dict[str, float],
    fired: dict[str, int],
) -> None:
    mark = time.process_time()
    with read_transaction(settings) as conn:
        loaded = load_versioned_states(conn, ids, recompute.today_of(now), rules.load)
    spent["load"] += time.process_time() - mark
    for version, state in loaded:
        times = [time.process_time()]
        signals = tuple(evaluate(state, rules.signals))
        times.append(time.process_time())
        assessment = assess(state, signals, rules.scoring)
        times.append(time.process_time())
        recompute.compute(version, signals, assessment, now=now, reason="rescore", started_at=now)
        times.append(time.process_time())
        recompute.evidence_json(assessment, signals)  # built for written rows only
        times.append(time.process_time())
        for name, (begin, end) in zip(
            ("signals", "health_readiness", "row", "evidence"), pairwise(times), strict=True
        ):
            spent[name] += end - begin
        for signal in signals:
            fired[signal.name] = fired.get(signal.name, 0) + 1


def profile(settings: Settings, now: datetime, top: int = 40) -> dict[str, Any]:
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(recompute.rescore_all, settings, now)
    seconds = time.perf_counter() - started
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    tottime = out.getvalue()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return {"seconds": round(seconds, 2), "tottime": tottime, "cumulative": out.getvalue()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring.measure")
    parser.add_argument("mode", choices=("rescore", "latency", "phases", "profile"))
    parser.add_argument("--now", required=True, help="ISO time the book is scored at")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    now = datetime.fromisoformat(args.now)
    if args.mode == "rescore":
        result = rescore(settings, now, args.processes)
    elif args.mode == "latency":
        result = latency(settings, now, args.samples, args.seed)
    elif args.mode == "phases":
        result = phases(settings, now)
    else:
        result = profile(settings, now)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
