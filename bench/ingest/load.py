"""Load generators: closed-loop peak with wrk (C, cheap on a 2-core box) or asyncio as a
fallback; at a given rate, wrk with each connection pacing itself, or an asyncio open-loop sender
that measures latency from each request's scheduled send time (no coordinated omission) but
costs about twice wrk's CPU (half a core at 2,100 requests/s) on the cores the server uses."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.ingest.events import PATH, SignedEvent

REPLAY_SCRIPT = Path(__file__).resolve().parent / "replay.lua"


@dataclass
class LoadResult:
    """What one load phase did: throughput, latency (seconds) and the events answered 2xx."""

    generator: str
    sent: int
    seconds: float
    acked: list[str] = field(default_factory=list)
    failed: int = 0
    errors: int = 0
    wrapped: int = 0
    latencies: list[float] = field(default_factory=list)

    @classmethod
    def combine(cls, results: Sequence[LoadResult]) -> LoadResult:
        return cls(
            results[0].generator,
            sent=sum(r.sent for r in results),
            seconds=sum(r.seconds for r in results),
            acked=[event_id for r in results for event_id in r.acked],
            failed=sum(r.failed for r in results),
            errors=sum(r.errors for r in results),
            wrapped=sum(r.wrapped for r in results),
            latencies=[latency for r in results for latency in r.latencies],
        )

    @property
    def rate(self) -> float:
        return len(self.acked) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def peak(url: str, events: Sequence[SignedEvent], seconds: float, connections: int) -> LoadResult:
    """Closed loop: `connections` senders, each sending its next request as soon as answered."""
    if wrk_available():
        return _wrk(url, events, seconds, connections)
    return asyncio.run(_closed_loop(url, events, seconds, connections))


def constant_rate(
    url: str, events: Sequence[SignedEvent], rate: float, connections: int
) -> LoadResult:
    """Open loop: send len(events) requests at `rate` per second whatever the answers do."""
    return asyncio.run(_open_loop(url, events, rate, connections))


def paced(
    url: str, events: Sequence[SignedEvent], seconds: float, rate: float, connections: int
) -> LoadResult:
    """wrk at `rate` per second: each connection sends on a fixed schedule, one request every
    connections/rate seconds (replay.lua), so the answer time does not lower the rate; a
    connection whose answer outlasts its slot sends its next request at once."""
    return _wrk(url, events, seconds, connections, rate)


# --- wrk ------------------------------------------------------------------------------------


def _wrk(
    url: str,
    events: Sequence[SignedEvent],
    seconds: float,
    connections: int,
    rate: float | None = None,
) -> LoadResult:
    pacing = [] if rate is None else [f"{rate:.3f}", str(connections)]
    slices = [list(events[i::connections]) for i in range(connections)]
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        prefix = Path(tmp) / "events"
        for number, chunk in enumerate(slices):
            with open(f"{prefix}.{number}", "wb") as out:
                for event in chunk:
                    out.write(f"{len(event.body)} {event.signature}\n".encode() + event.body)
        completed = subprocess.run(
            [
                "wrk",
                f"--threads={connections}",
                f"--connections={connections}",
                f"--duration={max(1, round(seconds))}s",
                "--timeout=10s",
                f"--script={REPLAY_SCRIPT}",
                url,
                "--",
                str(prefix),
                PATH,
                *pacing,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    generator = "wrk" if rate is None else "wrk paced"
    return _parse_wrk(completed.stdout, slices, generator)


def _parse_wrk(output: str, slices: list[list[SignedEvent]], generator: str) -> LoadResult:
    result = LoadResult(generator, 0, 0.0)
    for line in output.splitlines():
        kind, *fields = line.split(" ")
        if kind == "bench-summary":
            numbers = [int(value) for value in fields]
            result.sent, result.seconds = numbers[0], numbers[1] / 1e6
            result.errors = sum(numbers[2:6])  # connect, read, write, timeout (not status)
        elif kind == "bench-thread":
            chunk = slices[int(fields[0])]
            result.failed += int(fields[1])
            result.wrapped += int(fields[2])
            runs = [int(value) for value in fields[3].split(",")] if len(fields) > 3 else []
            for first, last in zip(runs[::2], runs[1::2], strict=True):
                result.acked.extend(event.event_id for event in chunk[first - 1 : last])
        elif kind == "bench-latency" and fields and fields[0]:
            # wrk's histogram (µs), which already includes wrk's own correction for requests
            # a slow answer held back (stats_correct, using the mean per-connection interval).
            for bin_ in fields[0].split(","):
                value, count = bin_.split(":")
                result.latencies.extend([int(value) / 1e6] * int(count))
    if not result.seconds:
        raise RuntimeError(f"wrk printed no summary:\n{output}")
    return result


# --- asyncio --------------------------------------------------------------------------------


class Connection:
    """One HTTP/1.1 client connection; reconnects when the server closes (gunicorn sync)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, raw: bytes) -> int:
        """Send one request and read its answer; the status, or 0 when the connection failed."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status, length, close = _parse_head(head)
            await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await self.close()
            return 0
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            close = value.strip().lower() == "close"
    return status, length, close


def _raw_requests(url: str, events: Sequence[SignedEvent]) -> tuple[str, int, list[bytes]]:
    host_port = url.removeprefix("http://").rstrip("/")
    host, _, port = host_port.partition(":")
    raws = [
        (
            f"POST {PATH} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n"
            f"Stripe-Signature: {event.signature}\r\nContent-Length: {len(event.body)}\r\n\r\n"
        ).encode()
        + event.body
        for event in events
    ]
    return host, int(port), raws


async def _open_loop(
    url: str, events: Sequence[SignedEvent], rate: float, connections: int
) -> LoadResult:
    host, port, raws = _raw_requests(url, events)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    statuses = [0] * len(raws)
    latencies = [0.0] * len(raws)
    start = loop.time() + 0.05

    async def schedule() -> None:
        for index in range(len(raws)):
            due = start + index / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            queue.put_nowait((index, due))
        for _ in range(connections):
            queue.put_nowait(None)

    async def sender() -> None:
        connection = Connection(host, port)
        while (item := await queue.get()) is not None:
            index, due = item
            statuses[index] = await connection.exchange(raws[index])
            latencies[index] = loop.time() - due
        await connection.close()

    await asyncio.gather(schedule(), *(sender() for _ in range(connections)))
    return _asyncio_result(events, statuses, latencies, loop.time() - start, "asyncio open loop")


async def _closed_loop(
    url: str, events: Sequence[SignedEvent], seconds: float, connections: int
) -> LoadResult:
    host, port, raws = _raw_requests(url, events)
    statuses: list[int] = []
    latencies: list[float] = []
    indexes = iter(range(len(raws)))
    deadline = time.monotonic() + seconds

    async def sender() -> None:
        connection = Connection(host, port)
        for index in indexes:
            if time.monotonic() >= deadline:
                break
            began = time.monotonic()
            status = await connection.exchange(raws[index])
            statuses.append(status)
            latencies.append(time.monotonic() - began)
            sent_events.append(events[index])
        await connection.close()

    sent_events: list[SignedEvent] = []
    began = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(connections)))
    return _asyncio_result(
        sent_events, statuses, latencies, time.monotonic() - began, "asyncio closed loop"
    )


def _asyncio_result(
    events: Sequence[SignedEvent],
    statuses: list[int],
    latencies: list[float],
    seconds: float,
    generator: str,
) -> LoadResult:
    return LoadResult(
        generator,
        sent=len(statuses),
        seconds=seconds,
        acked=[e.event_id for e, s in zip(events, statuses, strict=True) if 200 <= s < 300],
        failed=sum(1 for s in statuses if s >= 300),
        errors=sum(1 for s in statuses if s == 0),
        latencies=latencies,
    )
