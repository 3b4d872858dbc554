"""`python -m bench.ingest`: the receiver under gunicorn against a no-op Flask app with the same
settings, in one run: closed-loop peak, latency at 70% of the receiver's peak (wrk pacing each
connection, and an asyncio open loop), and the zero-loss check with a real worker. Prints a
markdown table; saves JSON in bench/results/."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.ingest import load, loss
from bench.ingest.events import EventFactory
from bench.ingest.report import Phase, Report, machine
from bench.ingest.servers import (
    NOOP_APP,
    RECEIVER_APP,
    GunicornSettings,
    Server,
    environment,
    gunicorn,
)
from expansion.embedded import stop_embedded_redis
from expansion.settings import Settings
from tests.support import ROOT

RESULTS_DIR = ROOT / "bench" / "results"
WARMUP_SECONDS = 2.0
# At the latency rate: enough that the per-connection interval stays well above the service time.
RATE_CONNECTIONS = 64


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument(
        "--connections", type=int, help="closed-loop connections (default 4 per worker thread)"
    )
    parser.add_argument("--peak-seconds", type=float, default=6.0)
    parser.add_argument("--rate-seconds", type=float, default=9.0)
    parser.add_argument("--rounds", type=int, default=3, help="receiver/no-op alternations")
    parser.add_argument("--rate-fraction", type=float, default=0.7, help="of the receiver peak")
    parser.add_argument("--customers", type=int, default=200, help="Stripe customers in the mix")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="celery processes")
    parser.add_argument(
        "--drain-stall", type=float, default=30.0, help="give up when nothing moved this long"
    )
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the receiver")
    parser.add_argument(
        "--no-open-loop",
        action="store_true",
        help="with wrk, skip the asyncio open-loop latency phase that is reported alongside",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = GunicornSettings(args.workers, args.worker_class, args.threads)
    threads = args.threads if args.worker_class == "gthread" else 1
    connections = args.connections or 4 * args.workers * threads
    if not load.wrk_available():
        print("wrk not found: peak load from Python (apt-get install wrk for a cheaper one)")
    # Short path: the embedded Redis listens on a unix socket under it (~100 character limit).
    var_dir = Path(tempfile.mkdtemp(prefix="esb-"))
    env = environment(var_dir, args.log_level)
    try:
        report = run(args, settings, connections, var_dir, env)
    finally:
        stop_embedded_redis(var_dir)
    print(report.markdown())
    print(f"\nJSON: {report.save(RESULTS_DIR)}")
    # Throughput and latency depend on the machine; a lost event is a bug.
    if report.loss.lost:
        print(f"database and logs kept in {var_dir}")
        return 1
    shutil.rmtree(var_dir)  # the database alone is 100+ MB
    return 0


def run(
    args: argparse.Namespace,
    settings: GunicornSettings,
    connections: int,
    var_dir: Path,
    env: dict[str, str],
) -> Report:
    host = machine()
    factory = EventFactory(args.customers)
    with ExitStack() as stack:
        receiver = Target(
            stack.enter_context(gunicorn(RECEIVER_APP, settings, env, var_dir / "rx.log")),
            stores=True,
        )
        noop = Target(
            stack.enter_context(gunicorn(NOOP_APP, settings, env, var_dir / "noop.log")),
            stores=False,
        )
        # Each once (wrk would replay them for its whole duration).
        links = factory.links(int(time.time()))
        receiver.acked += load.constant_rate(receiver.url, links, 500, connections).acked
        for target in (receiver, noop):
            target.warm_up(factory, connections)
        round_seconds = args.peak_seconds / args.rounds
        receiver_peak, noop_peak = _interleaved(
            args.rounds,
            (receiver, noop),
            lambda target: target.peak(factory, round_seconds, connections),
        )
        rate = receiver_peak.rate * args.rate_fraction
        rate_seconds = args.rate_seconds / args.rounds
        receiver_at_rate, noop_at_rate = _interleaved(
            args.rounds,
            (receiver, noop),
            lambda target: target.at_rate(factory, rate, rate_seconds),
        )
        open_loop: list[Phase | None] = [None, None]
        if load.wrk_available() and not args.no_open_loop:
            open_loop = list(
                _interleaved(
                    args.rounds,
                    (receiver, noop),
                    lambda target: target.open_loop(factory, rate, rate_seconds),
                )
            )
    report_loss = loss.check(
        Settings.from_env(env),
        env,
        receiver.acked,
        var_dir / "worker.log",
        args.drain_stall,
        args.worker_concurrency,
    )
    return Report(
        command=shlex.join(["python", "-m", "bench.ingest", *sys.argv[1:]]),
        machine=host,
        gunicorn=settings.describe(),
        connections=connections,
        rounds=args.rounds,
        noop_peak=noop_peak,
        receiver_peak=receiver_peak,
        rate_fraction=args.rate_fraction,
        target_rate=round(rate, 1),
        rate_connections=RATE_CONNECTIONS,
        noop_at_rate=noop_at_rate,
        receiver_at_rate=receiver_at_rate,
        receiver_open_loop=open_loop[0],
        noop_open_loop=open_loop[1],
        loss=report_loss,
    )


Measured = tuple[load.LoadResult, float]  # a load phase's result and the server CPU it cost


class Target:
    """One app under test. The receiver stores what it accepts: its events must be unique
    (a duplicate costs less than a new event) and every one answered 2xx is checked for loss."""

    def __init__(self, server: Server, stores: bool) -> None:
        self.server = server
        self.url = server.url
        self.stores = stores
        self.acked: list[str] = []
        self.warm_rate = 0.0

    def warm_up(self, factory: EventFactory, connections: int) -> None:
        events = factory.batch(4_000, int(time.time()))
        self.warm_rate = self._send(
            lambda: load.peak(self.url, events, WARMUP_SECONDS, connections)
        )[0].rate

    def peak(self, factory: EventFactory, seconds: float, connections: int) -> Measured:
        # Twice what the warm-up rate needs, so that wrk never replays a receiver event; the
        # no-op stores nothing, so replaying a small pool is fine there.
        size = max(4_000, int(self.warm_rate * seconds * 2)) if self.stores else 4_000
        events = factory.batch(size, int(time.time()))
        return self._send(lambda: load.peak(self.url, events, seconds, connections))

    def at_rate(self, factory: EventFactory, rate: float, seconds: float) -> Measured:
        """wrk pacing each connection when available, else the asyncio open loop."""
        if not load.wrk_available():
            return self.open_loop(factory, rate, seconds)
        # Half as many again as the rate needs, so that no connection replays an event.
        events = factory.batch(int(rate * seconds * 1.5) + 8 * RATE_CONNECTIONS, int(time.time()))
        return self._send(lambda: load.paced(self.url, events, seconds, rate, RATE_CONNECTIONS))

    def open_loop(self, factory: EventFactory, rate: float, seconds: float) -> Measured:
        events = factory.batch(int(rate * seconds), int(time.time()))
        return self._send(lambda: load.constant_rate(self.url, events, rate, RATE_CONNECTIONS))

    def _send(self, send: Callable[[], load.LoadResult]) -> Measured:
        cpu_before = self.server.cpu_seconds()
        result = send()
        cpu = self.server.cpu_seconds() - cpu_before
        if self.stores:
            self.acked += result.acked
        return result, cpu


def _interleaved(
    rounds: int, targets: tuple[Target, ...], measure: Callable[[Target], Measured]
) -> list[Phase]:
    """Alternate the targets round by round, so that load from other processes on a shared
    machine falls on both alike; one Phase per target over all its rounds."""
    measured: list[list[Measured]] = [[] for _ in targets]
    for _ in range(rounds):
        for runs, target in zip(measured, targets, strict=True):
            runs.append(measure(target))
    return [
        Phase.of([result for result, _ in runs], sum(cpu for _, cpu in runs)) for runs in measured
    ]


if __name__ == "__main__":
    raise SystemExit(main())
