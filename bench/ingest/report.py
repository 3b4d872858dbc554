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
    noop_at_rate: Phase
    receiver_at_rate: Phase
    loss: LossReport
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

    def targets(self) -> dict[str, bool]:
        p99 = self.receiver_at_rate.p99_ms
        return {
            "throughput": self.ratio >= THROUGHPUT_TARGET,
            "p99": p99 is not None and p99 < P99_TARGET_MS and self.receiver_at_rate.failed == 0,
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

    def markdown(self) -> str:
        m, met = self.machine, self.targets()
        noop, recv = self.noop_peak, self.receiver_peak
        n_at, r_at = self.noop_at_rate, self.receiver_at_rate
        loss = self.loss
        rate = f"{self.target_rate:,.0f}/s"
        cpu_ratio = "n/a" if self.cpu_ratio is None else f"{self.cpu_ratio:.0%}"
        lines = [
            f"Run {self.date} on {m['nproc']} x {m['cpu']}, Python {m['python']}, "
            f"load average {m['load_average_at_start'][0]} at start. gunicorn {self.gunicorn} "
            f"for both apps. Peak: closed loop with {noop.generator}, {self.connections} "
            f"connections, {self.rounds} alternating rounds per app. Latency: open loop at "
            f"{rate} ({self.rate_fraction:.0%} of the receiver peak), timed from each "
            "request's scheduled send.",
            "",
            "| | no-op Flask | receiver |",
            "|---|---:|---:|",
            f"| peak, closed loop (2xx/s) | {noop.rate:,.0f} | {recv.rate:,.0f} |",
            f"| server CPU per request (µs) | {_n(noop.cpu_us_per_request)} "
            f"| {_n(recv.cpu_us_per_request)} |",
            f"| p50 / p99 / max at {rate} (ms) | {_latency(n_at)} | {_latency(r_at)} |",
            f"| non-2xx / connection errors | {noop.failed + n_at.failed} / "
            f"{noop.errors + n_at.errors} | {recv.failed + r_at.failed} / "
            f"{recv.errors + r_at.errors} |",
            "",
            "| target | result | |",
            "|---|---|---|",
            f"| receiver peak ≥ 50% of the no-op's | {self.ratio:.0%} "
            f"(CPU per request: {cpu_ratio}) | {_ok(met['throughput'])} |",
            f"| p99 < 50 ms at {self.rate_fraction:.0%} of the receiver peak "
            f"| {_n(r_at.p99_ms, 1)} ms "
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


def _latency(phase: Phase) -> str:
    return " / ".join(_n(value, 1) for value in (phase.p50_ms, phase.p99_ms, phase.max_ms))


def _n(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ok(met: bool) -> str:
    return "met" if met else "**not met**"
