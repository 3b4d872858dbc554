"""`expansion demo` (what `make demo` runs): the Procfile's processes and the CRM sandbox on a
fresh embedded SQLite and Redis, a synthetic book of customers replayed as signed webhooks, and,
once everything is processed and written to the CRMs, a summary; the board is left running
until Ctrl-C, which stops every process the demo started."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click
import requests
from sqlalchemy.exc import SQLAlchemyError

from expansion import db, embedded, procfile
from expansion.book import DEFAULT_ACCOUNTS, DEFAULT_SEED, Book, generate
from expansion.book.replay import ReplayResult, http_post, replay
from expansion.book.replay import summary as replay_summary
from expansion.demo import crm, settle
from expansion.demo import summary as report
from expansion.settings import Settings

# Demo-only secrets of the sources that are not CRMs (the CRMs' come from the sandbox). They are
# published in this file: never use them for a real endpoint.
DEMO_SECRETS = {
    "STRIPE_WEBHOOK_SECRET": "whsec_demo_only_stripe_secret",
    "CHARGEBEE_WEBHOOK_USERNAME": "demo-chargebee",
    "CHARGEBEE_WEBHOOK_PASSWORD": "demo-only-chargebee-password",
    "SEGMENT_SHARED_SECRET": "demo-only-segment-secret",
    "STANDARD_WEBHOOKS_SECRET": "whsec_ZGVtby1vbmx5LXN0YW5kYXJkLXdlYmhvb2tzLXNlY3JldA==",
}
# Never taken from the user's environment: the demo writes a fictional book, only ever into its
# own database, and the sandbox's webhooks must reach this run's receiver.
NOT_INHERITED = (
    "DATABASE_URL",
    "REDIS_URL",
    "BROKER_URL",
    "PUBLIC_BASE_URL",
    "SALESFORCE_SHARED_SECRET",
    "HUBSPOT_OAUTH_CLIENT_ID",
    "HUBSPOT_REFRESH_TOKEN",
)
STARTUP_TIMEOUT = 60.0
POLL_SECONDS = 1.0
QUIET_POLLS = 2  # consecutive empty backlogs that count as settled
PREFERRED_PORTS = {"BOARD_PORT": 8050, "SANDBOX_PORT": 8443}


class DemoFailed(Exception):
    """A step failed; the message says what happened and where to look."""


@dataclass(frozen=True)
class Options:
    accounts: int = DEFAULT_ACCOUNTS
    seed: int = DEFAULT_SEED
    timeout: float = 600.0  # seconds for the book to be processed and written
    serve: bool = True  # leave the board running until Ctrl-C


@dataclass(frozen=True)
class Urls:
    receiver: str
    board: str
    sandbox: crm.Sandbox


def free_port(preferred: int = 0) -> int:
    """`preferred` when nothing listens on it, else a port the system picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise DemoFailed("no free TCP port")


def demo_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The children's environment: their own VAR_DIR (var/demo), the demo secrets, the sandbox's
    org and portal, and the writers pointed at the sandbox."""
    env = {name: value for name, value in base.items() if name not in NOT_INHERITED}
    var_root = Settings.from_env(env).var_dir
    env |= DEMO_SECRETS | crm.identity_env()
    # Absolute paths, so the children (run from the project root) use the same var/ and mappings.
    env["VAR_DIR"] = str(var_root / "demo")
    env["MAPPINGS_DIR"] = str(Settings.from_env(env).mappings_dir)
    env["PORT"] = str(free_port())
    for name, preferred in PREFERRED_PORTS.items():
        env[name] = env.get(name) or str(free_port(preferred))
    env |= crm.writer_env(_sandbox(env).info)
    # gunicorn and celery come from this interpreter's environment, activated or not.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run(options: Options) -> int:
    """The whole demo; returns the process exit code (0 when every step worked)."""
    env = demo_environment(os.environ)
    settings = Settings.from_env(env)
    try:
        with _only_demo(settings.var_dir):
            return _run(options, env, settings)
    except DemoFailed as exc:
        click.echo(f"FAILED: {exc}", err=True)
        return 1


def _run(options: Options, env: dict[str, str], settings: Settings) -> int:
    stopping = threading.Event()

    def interrupt(_signum: int, _frame: Any) -> None:
        stopping.set()  # the replay's queued requests are dropped, not sent
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    group = procfile.ProcessGroup(env, settings.var_dir / "logs")
    serving = False
    try:
        _intro(settings)
        _fresh(settings)
        book = _book(settings, options)
        urls = _start(group, env)
        problems = _demonstrate(settings, group, urls, book, options, stopping)
        if problems:
            click.echo("\nFAILED:\n  " + "\n  ".join(problems), err=True)
            return 1
        if not options.serve:
            return 0
        serving = True
        _serve(group, settings, urls)
    except DemoFailed as exc:
        click.echo(f"\nFAILED: {exc}", err=True)
        return 1
    except requests.RequestException as exc:
        logs = settings.var_dir / "logs"
        click.echo(f"\nFAILED: a call to a demo process failed: {exc}; see {logs}", err=True)
        return 1
    except KeyboardInterrupt:
        if serving:
            return 0
        click.echo("\ninterrupted; stopping what the demo started", err=True)
        return 130
    finally:
        # A second Ctrl-C (or a TERM) must not cut the cleanup short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        _shutdown(group, settings)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _only_demo(var_dir: Path) -> Iterator[None]:
    """One demo at a time per var/: the next one starts by wiping var/demo."""
    var_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(var_dir.parent / "demo.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoFailed(
                f"another demo is running on {var_dir}; stop it first (Ctrl-C in its terminal)"
            ) from None
        yield


def _intro(settings: Settings) -> None:
    click.echo("Expansion Signals demo")
    click.echo(f"  state:    {settings.var_dir} (a fresh SQLite database and embedded Redis)")
    click.echo(
        "  secrets:  demo-only values (never for production) for every source, and the CRM "
        "sandbox's org, portal and credentials"
    )


def _fresh(settings: Settings) -> None:
    """Start from nothing: the previous demo's database, Redis and logs are removed."""
    click.echo("\n1. preparing a fresh database and Redis")
    if embedded.is_running(settings.var_dir):
        embedded.stop_embedded_redis(settings.var_dir)
    shutil.rmtree(settings.var_dir, ignore_errors=True)
    try:
        db.upgrade(settings)
    except SQLAlchemyError as exc:
        raise DemoFailed(f"could not migrate {settings.var_dir}: {exc}") from None
    try:
        embedded.ensure_embedded_redis(settings.var_dir)
    except (RuntimeError, OSError) as exc:
        raise DemoFailed(f"the embedded Redis did not start: {exc}") from None


def _book(settings: Settings, options: Options) -> Book:
    book = generate(settings, options.accounts, options.seed)
    total = sum(n for n, _ in book.counts().values())
    events = sum(items for _, items in book.counts().values())
    click.echo(
        f"2. generated a book of {len(book.accounts):,} accounts (seed {options.seed}): "
        f"{total:,} signed requests carrying {events:,} events over 120 days"
    )
    return book


def _sandbox(env: Mapping[str, str]) -> crm.Sandbox:
    """The sandbox the Procfile's `sandbox` process serves with this environment."""
    tls_dir = Path(env["VAR_DIR"]) / "sandbox"
    return crm.Sandbox(crm.sandbox_info(int(env["SANDBOX_PORT"]), tls_dir))


def _start(group: procfile.ProcessGroup, env: dict[str, str]) -> Urls:
    processes = procfile.load()
    click.echo(f"3. starting the Procfile processes: {', '.join(processes)}")
    for name, command in processes.items():
        child = group.start(name, command)
        click.echo(f"   {name:<7} pid {child.popen.pid:<7} log {child.log_path}")
    urls = Urls(
        receiver=f"http://127.0.0.1:{env['PORT']}",
        board=f"http://127.0.0.1:{env['BOARD_PORT']}",
        sandbox=_sandbox(env),
    )
    started = time.monotonic()
    for what, check in (
        (f"{urls.receiver}/healthz", lambda: _answers(f"{urls.receiver}/healthz")),
        (f"{urls.board}/healthz", lambda: _answers(f"{urls.board}/healthz")),
        (f"the CRM sandbox on {urls.sandbox.base_url}", urls.sandbox.answers),
    ):
        _wait(group, check, STARTUP_TIMEOUT, what)
    click.echo(f"   all answer ({time.monotonic() - started:.1f} s)")
    return urls


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def _wait(
    group: procfile.ProcessGroup, done: Callable[[], bool], timeout: float, what: str
) -> None:
    """Poll `done` until it holds; fail early, with its log, if a process exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not done():
        _check_alive(group)
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _check_alive(group: procfile.ProcessGroup) -> None:
    exited = group.exited()
    if exited:
        child = exited[0]
        raise DemoFailed(
            f"the {child.name} process exited with code {child.popen.returncode}; "
            f"its log ({child.log_path}) ends with:\n{child.tail()}"
        )


def _demonstrate(
    settings: Settings,
    group: procfile.ProcessGroup,
    urls: Urls,
    book: Book,
    options: Options,
    stopping: threading.Event,
) -> list[str]:
    seeded = urls.sandbox.seed(book)
    click.echo(
        f"4. seeded the CRM sandbox: {len(seeded['owners'])} users and owners, "
        f"{len(seeded['accounts']):,} accounts and companies"
    )
    click.echo("5. replaying the book customer by customer, signed as each provider signs")
    result = _replay(book, settings, urls.receiver, stopping)
    click.echo(replay_summary(result, book.counts().items()))
    click.echo("6. waiting for ingest, scoring, plays and the CRM writes to settle")
    _settle(settings, group, urls.sandbox, options.timeout)
    activity = urls.sandbox.activity()
    today = db.utcnow().date()
    click.echo("\nInbox (events per source and status)")
    click.echo(report.inbox(settings))
    click.echo("\nTop accounts by expansion readiness")
    click.echo(report.top_accounts(settings, book, today))
    click.echo("\nTasks created in the CRMs, per owner")
    click.echo(report.tasks_per_owner(activity, book))
    click.echo("\nCRM API calls spent")
    click.echo(report.api_calls(activity))
    click.echo("\nAccuracy against the book's planted patterns")
    click.echo(report.accuracy(settings, book))
    problems = [f"{failure} (a book request was refused)" for failure in result.failures[:10]]
    dead = report.dead_count(settings)
    if dead:
        problems.append(
            f"{dead} inbox event(s) were dead-lettered; see `expansion deadletters list`"
        )
    return problems


def _replay(
    book: Book, settings: Settings, base_url: str, stopping: threading.Event
) -> ReplayResult:
    send = http_post(base_url)

    def post(path: str, body: bytes, headers: dict[str, str]) -> int:
        if stopping.is_set():
            raise requests.ConnectionError("the demo is stopping")
        return send(path, body, headers)

    # Customer by customer, each one's 120 days in order: an account is scored once its history
    # is in, not again and again on a partial one (which would open plays and write tasks for
    # states that never were, as interleaving every customer's history would).
    ordered = sorted(book.requests, key=lambda request: request.account)
    with click.progressbar(length=len(ordered), label="   replaying") as bar:
        return replay(ordered, settings, base_url, post=post, progress=bar.update)


def _settle(
    settings: Settings, group: procfile.ProcessGroup, sandbox: crm.Sandbox, timeout: float
) -> None:
    started = time.monotonic()
    shown = 0.0
    quiet = 0
    while quiet < QUIET_POLLS:
        _check_alive(group)
        backlog = settle.backlog(settings, sandbox.webhooks_pending())
        quiet = quiet + 1 if backlog.empty else 0
        elapsed = time.monotonic() - started
        if elapsed - shown >= 10 or (quiet == QUIET_POLLS):
            shown = elapsed
            click.echo(f"   {elapsed:5.0f} s  {backlog.describe()}")
        if elapsed > timeout:
            raise DemoFailed(
                f"the book was not processed within {timeout:.0f} s ({backlog.describe()}); "
                f"the process logs are in {settings.var_dir / 'logs'}"
            )
        if quiet < QUIET_POLLS:
            time.sleep(POLL_SECONDS)
    click.echo(f"   settled in {time.monotonic() - started:.0f} s")


def _serve(group: procfile.ProcessGroup, settings: Settings, urls: Urls) -> NoReturn:
    from board.auth import resolve_token

    token = resolve_token(settings)
    click.echo(f"\nThe board:        {urls.board}/")
    click.echo(f"  admin token:    {token.value}")
    click.echo(f"CRM tasks page:   {urls.sandbox.base_url}/_sandbox/tasks")
    click.echo(f"  (its CA:        {urls.sandbox.ca_path})")
    click.echo(f"Explore with the CLI: VAR_DIR={settings.var_dir} expansion explain ACCOUNT")
    click.echo("Everything keeps running; Ctrl-C stops every process the demo started.")
    while True:
        _check_alive(group)
        time.sleep(POLL_SECONDS)


def _shutdown(group: procfile.ProcessGroup, settings: Settings) -> None:
    if group.children:
        click.echo("\nstopping " + ", ".join(child.name for child in group.children))
        group.stop()
    with suppress(OSError):
        if embedded.stop_embedded_redis(settings.var_dir):
            click.echo("stopped the demo's embedded Redis")
