"""The benchmark's results: the machine it ran on, each phase's numbers, the issue's targets,
as a markdown table for BENCHMARKS.md and a JSON file under bench/results/."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ingest.load import LoadResult
from bench.ingest.loss import LossReport

THROUGHPUT_TARGET = 0.5  # receiver peak / no-op peak
P99_TARGET_MS = 50.0
RATE_TOLERANCE = 0.05  # a latency phase that sent more than 5% below the target rate is flagged


@dataclass(frozen=True)
class Phase:
    """One load phase against one app, reduced to the numbers we report."""

    generator: str
    seconds: float
    sent: int
    acked: int
    failed: int
    errors: int
    rate: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    p99_ms_per_round: list[float | None]
    cpu_us_per_request: float | None
    wrapped: int
    sent_per_second: float

    @classmethod
    def of(cls, rounds: list[LoadResult], cpu_seconds: float) -> Phase:
        result = LoadResult.combine(rounds)
        answered = result.sent - result.errors
        return cls(
            generator=result.generator,
            seconds=round(result.seconds, 2),
            sent=result.sent,
            acked=len(result.acked),
            failed=result.failed,
            errors=result.errors,
            rate=round(result.rate, 1),
            p50_ms=ms(result.percentile(50)),
            p99_ms=ms(result.percentile(99)),
            max_ms=ms(max(result.latencies, default=None)),
            p99_ms_per_round=[ms(r.percentile(99)) for r in rounds],
            cpu_us_per_request=round(cpu_seconds / answered * 1e6) if answered else None,
            wrapped=result.wrapped,
            sent_per_second=round(result.sent / result.seconds, 1) if result.seconds else 0.0,
        )


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True)
class Report:
    command: str
    machine: dict[str, Any]
    gunicorn: str
    connections: int
    rounds: int
    noop_peak: Phase
    receiver_peak: Phase
    rate_fraction: float
    target_rate: float
    rate_connections: int
    noop_at_rate: Phase
    receiver_at_rate: Phase
    loss: LossReport
    # With wrk, the asyncio open loop at the same rate, reported alongside (Python, costly).
    noop_open_loop: Phase | None = None
    receiver_open_loop: Phase | None = None
    date: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    @property
    def ratio(self) -> float:
        return self.receiver_peak.rate / self.noop_peak.rate if self.noop_peak.rate else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        """No-op CPU per request / receiver CPU per request: the throughput ratio a machine
        dedicated to the server would show; other load on a shared machine barely moves it."""
        noop, receiver = self.noop_peak.cpu_us_per_request, self.receiver_peak.cpu_us_per_request
        return noop / receiver if noop and receiver else None

    def short_of_rate(self, phase: Phase) -> bool:
        """Sent more than RATE_TOLERANCE below the target rate (a paced wrk connection waits
        for each answer, so a slow server lowers the rate it is measured at)."""
        return phase.sent_per_second < self.target_rate * (1 - RATE_TOLERANCE)

    def targets(self) -> dict[str, bool]:
        at_rate = self.receiver_at_rate
        p99 = at_rate.p99_ms
        return {
            "throughput": self.ratio >= THROUGHPUT_TARGET,
            "p99": p99 is not None
            and p99 < P99_TARGET_MS
            and at_rate.failed == 0
            and not self.short_of_rate(at_rate),
            "zero_loss": self.loss.lost == 0,
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["loss"]["lost"] = self.loss.lost
        data["ratio"] = round(self.ratio, 3)
        data["cpu_ratio"] = None if self.cpu_ratio is None else round(self.cpu_ratio, 3)
        data["targets_met"] = self.targets()
        return data

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"ingest-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    def _sent(self, phase: Phase) -> str:
        short = " (**short of the target by more than 5%**)" if self.short_of_rate(phase) else ""
        return f"{phase.sent_per_second:,.0f}{short}"

    def markdown(self) -> str:
        m, met = self.machine, self.targets()
        noop, recv = self.noop_peak, self.receiver_peak
        n_at, r_at = self.noop_at_rate, self.receiver_at_rate
        loss = self.loss
        rate = f"{self.target_rate:,.0f}/s"
        cpu_ratio = "n/a" if self.cpu_ratio is None else f"{self.cpu_ratio:.0%}"
        phases = [noop, recv, n_at, r_at]
        lines = [
            f"Run {self.date} on {m['nproc']} x {m['cpu']}, Python {m['python']}, "
            f"load average {m['load_average_at_start'][0]} at start. gunicorn {self.gunicorn} "
            f"for both apps. Peak: closed loop with {noop.generator}, {self.connections} "
            f"connections, {self.rounds} alternating rounds per app. Latency at {rate} "
            f"({self.rate_fraction:.0%} of the receiver peak): {_describe(r_at.generator)} "
            f"with {self.rate_connections} connections, {self.rounds} alternating rounds.",
            "",
            "| | no-op Flask | receiver |",
            "|---|---:|---:|",
            f"| peak, closed loop (2xx/s) | {noop.rate:,.0f} | {recv.rate:,.0f} |",
            f"| server CPU per request (µs) | {_n(noop.cpu_us_per_request)} "
            f"| {_n(recv.cpu_us_per_request)} |",
            f"| {r_at.generator}: sent/s (target {rate}) | {self._sent(n_at)} "
            f"| {self._sent(r_at)} |",
            f"| {r_at.generator}: p50 / p99 / max (ms) | {_latency(n_at)} | {_latency(r_at)} |",
        ]
        if self.noop_open_loop and self.receiver_open_loop:
            n_ol, r_ol = self.noop_open_loop, self.receiver_open_loop
            phases += [n_ol, r_ol]
            lines += [
                f"| {r_ol.generator}: sent/s | {self._sent(n_ol)} | {self._sent(r_ol)} |",
                f"| {r_ol.generator}: p50 / p99 / max (ms) | {_latency(n_ol)} | {_latency(r_ol)} |",
            ]
        lines += [
            f"| non-2xx / connection errors | {sum(p.failed for p in phases[0::2])} / "
            f"{sum(p.errors for p in phases[0::2])} | {sum(p.failed for p in phases[1::2])} / "
            f"{sum(p.errors for p in phases[1::2])} |",
            "",
            "| target | result | |",
            "|---|---|---|",
            f"| receiver peak ≥ 50% of the no-op's | {self.ratio:.0%} "
            f"(CPU per request: {cpu_ratio}) | {_ok(met['throughput'])} |",
            f"| p99 < 50 ms at {self.rate_fraction:.0%} of the receiver peak "
            f"| {_n(r_at.p99_ms, 1)} ms at {r_at.sent_per_second:,.0f}/s "
            f"(per round: {' / '.join(_n(v, 1) for v in r_at.p99_ms_per_round)}) "
            f"| {_ok(met['p99'])} |",
            f"| zero loss | {loss.lost} lost of {loss.acked:,} events answered 2xx "
            f"({loss.missing_from_inbox} missing from the inbox, {loss.not_applied} not applied; "
            f"{loss.worker_concurrency}-process worker applied them in {loss.drain_seconds:.0f} s, "
            f"{loss.drain_rate:,.0f}/s) | {_ok(met['zero_loss'])} |",
        ]
        if noop.generator != "wrk":
            lines += ["", "wrk was not found: the Python generator caps the no-op peak."]
        return "\n".join(lines)


def _describe(generator: str) -> str:
    if generator == "wrk paced":
        return "wrk, each connection sending on a fixed schedule (one per connections/rate)"
    return f"{generator}, timed from each request's scheduled send"


def _latency(phase: Phase) -> str:
    return " / ".join(_n(value, 1) for value in (phase.p50_ms, phase.p99_ms, phase.max_ms))


def _n(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ok(met: bool) -> str:
    return "met" if met else "**not met**"
