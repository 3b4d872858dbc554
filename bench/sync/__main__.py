"""`python -m bench.sync`: the CRM writers against the CRM sandbox (HTTPS, the real client
libraries), in one run per CRM: every account's fields changed -> API calls used; an immediate
second sync -> calls (0 expected); new values and a task per account with 30% of the calls
answered 429 or 5xx -> everything lands, duplicate tasks counted; then throughput against a
naive writer making one call per record, on the same sandbox (a ratio, both measured here).
Prints markdown, saves JSON under bench/results/."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ingest.report import machine
from bench.sync.scenario import Scenario
from expansion.embedded import stop_embedded_redis

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "bench" / "results"
TARGET_CALLS = {"salesforce": 55, "hubspot": 105}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sync", description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--crms", default="salesforce,hubspot")
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of calls failed")
    parser.add_argument(
        "--naive-records", type=int, default=500, help="records the naive writer sends"
    )
    return parser.parse_args(argv)


def run_crm(crm: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with Scenario(crm, work / crm, args.accounts) as scenario:
        first = scenario.sync(
            {"readiness_score": 61, "readiness_band": "warm", "health_band": "green"}
        )
        second = scenario.sync(
            {"readiness_score": 61, "readiness_band": "warm", "health_band": "green"}
        )
        faulty = scenario.sync_with_faults(
            {"readiness_score": 62, "health_band": "yellow"}, args.fault_rate
        )
        count = min(args.naive_records, args.accounts)
        batched = scenario.timed_batched(count)
        naive = scenario.timed_naive(count)
    return {
        "crm": crm,
        "accounts": args.accounts,
        "first_sync": first,
        "second_sync": second,
        "with_faults": faulty,
        "throughput": {
            "records": count,
            "batched_records_per_s": round(count / batched, 1),
            "naive_records_per_s": round(count / naive, 1),
            "ratio": round(naive / batched, 1),
        },
    }


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| CRM | accounts | field-write calls, all changed (target) | second sync calls | "
        "with faults: landed / dead / duplicate tasks | batched vs naive records/s (ratio) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        f, t = r["with_faults"], r["throughput"]
        lines.append(
            f"| {r['crm']} | {r['accounts']:,} | {r['first_sync']['write_calls']} "
            f"(<= {TARGET_CALLS[r['crm']]}) | {r['second_sync']['calls']} | "
            f"{f['sent']:,} / {f['dead']} / {f['duplicate_tasks']} "
            f"({f['faults_seen']} faults answered, {f['rounds']} flushes) | "
            f"{t['batched_records_per_s']:,} vs {t['naive_records_per_s']:,} ({t['ratio']}x) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    work = Path(tempfile.mkdtemp(prefix="es-bench-sync-"))
    try:
        results = [run_crm(crm, args, work) for crm in args.crms.split(",")]
    finally:
        for crm in args.crms.split(","):
            stop_embedded_redis(work / crm / "var")
    print(report(results))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"sync-{stamp}.json"
    out.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    print(f"\nsaved {out.relative_to(ROOT)}")
    failed = [
        r["crm"]
        for r in results
        if r["first_sync"]["write_calls"] > TARGET_CALLS[r["crm"]]
        or r["second_sync"]["calls"]
        or r["with_faults"]["duplicate_tasks"]
        or r["with_faults"]["pending"]
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"bench.sync took {time.monotonic() - start:.0f} s")
    raise SystemExit(code)
