"""`expansion demo`: run the Procfile's processes on embedded defaults, send signed sample events
from every source over HTTP, wait until they are processed, show what was stored and applied,
and stop everything the demo started (also on Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

import click
import requests
from sqlalchemy.exc import SQLAlchemyError

from expansion import db, embedded, procfile
from expansion.cli import safe_database_url, shorten, table
from expansion.demo import report as run_report
from expansion.demo.samples import STEPS, Context, Delivery, DemoAccount
from expansion.inbox_admin import STATUSES
from expansion.scores_admin import explain
from expansion.settings import Settings
from workers.scoring import render_explanation

# Demo-only credentials, set in the children's environment for variables the user left unset.
# They are published in this file: never use them for a real endpoint.
DEMO_SECRETS = {
    "HUBSPOT_CLIENT_SECRET": "demo-only-hubspot-client-secret",
    "HUBSPOT_APP_ID": "1000001",
    "HUBSPOT_PORTAL_ID": "20000001",
    "SALESFORCE_ORG_ID": "00D5g00000DEMOrEAP",
    "SALESFORCE_INTEGRATION_USER_ID": "0055g00000DEMOiAAP",
    "STRIPE_WEBHOOK_SECRET": "whsec_demo_only_stripe_secret",
    "CHARGEBEE_WEBHOOK_USERNAME": "demo-chargebee",
    "CHARGEBEE_WEBHOOK_PASSWORD": "demo-only-chargebee-password",
    "SEGMENT_SHARED_SECRET": "demo-only-segment-secret",
    "STANDARD_WEBHOOKS_SECRET": "whsec_ZGVtby1vbmx5LXN0YW5kYXJkLXdlYmhvb2tzLXNlY3JldA==",
}
STARTUP_TIMEOUT = 30.0


class DemoFailed(Exception):
    """A step failed; the message says what happened and where to look."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_environment(base: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The children's environment and the names of the demo secrets filled in."""
    env = dict(base)
    filled = [name for name in DEMO_SECRETS if not env.get(name)]
    env.update({name: DEMO_SECRETS[name] for name in filled})
    settings = Settings.from_env(env)
    # Absolute paths, so the children (run from the project root) use the same var/ and mappings.
    env["VAR_DIR"] = str(settings.var_dir)
    env["MAPPINGS_DIR"] = str(settings.mappings_dir)
    env["PORT"] = str(free_port())
    # gunicorn and celery come from this interpreter's environment, activated or not.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env, filled


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def run(timeout: float = 45.0) -> int:
    """The whole demo; returns the process exit code (0 when every step worked)."""
    env, filled = demo_environment(os.environ)
    settings = Settings.from_env(env)
    group = procfile.ProcessGroup(env, settings.var_dir / "demo")
    started_redis = False
    previous_sigint = signal.getsignal(signal.SIGINT)
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        _intro(settings, filled)
        started_redis = _prepare(settings)
        base_url = _start_processes(group, env)
        failures = _demonstrate(settings, group, base_url, timeout)
    except DemoFailed as exc:
        click.echo(f"\nFAILED: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("\ninterrupted; stopping what the demo started", err=True)
        return 130
    finally:
        # A second Ctrl-C (or a TERM) must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _shutdown(group, settings, started_redis)
        signal.signal(signal.SIGINT, previous_sigint)
        signal.signal(signal.SIGTERM, previous_sigterm)
    if failures:
        click.echo("\nFAILED:\n  " + "\n  ".join(failures), err=True)
        return 1
    click.echo("\ndemo finished: every source's events were stored and applied")
    return 0


def _intro(settings: Settings, filled: list[str]) -> None:
    click.echo("Expansion Signals demo")
    click.echo(f"  database: {safe_database_url(settings)}")
    if settings.uses_embedded_redis:
        click.echo(f"  broker:   embedded Redis on {embedded.socket_path(settings.var_dir)}")
    else:
        click.echo("  broker:   BROKER_URL / REDIS_URL from the environment")
    if filled:
        click.echo(f"  demo-only secrets (not for production) set for: {', '.join(filled)}")


def _prepare(settings: Settings) -> bool:
    """Migrate, and start the embedded Redis if it is used; True when the demo started it."""
    click.echo("\n1. migrating the database")
    try:
        db.upgrade(settings)
    except SQLAlchemyError as exc:
        raise DemoFailed(
            f"could not migrate {safe_database_url(settings)}: {exc}; check DATABASE_URL"
        ) from None
    if not settings.uses_embedded_redis:
        return False
    if embedded.is_running(settings.var_dir):
        click.echo("   embedded Redis already running; it will be left running")
        return False
    try:
        embedded.ensure_embedded_redis(settings.var_dir)
    except (RuntimeError, OSError) as exc:
        raise DemoFailed(f"the embedded Redis did not start: {exc}") from None
    click.echo("   embedded Redis started")
    return True


def _start_processes(group: procfile.ProcessGroup, env: dict[str, str]) -> str:
    processes = procfile.load()
    click.echo(f"2. starting the Procfile processes: {', '.join(processes)}")
    for name, command in processes.items():
        child = group.start(name, command)
        click.echo(f"   {name:<7} pid {child.popen.pid:<7} log {child.log_path}")
    base_url = f"http://127.0.0.1:{env['PORT']}"
    started = time.monotonic()
    _wait(group, lambda: _healthy(base_url), STARTUP_TIMEOUT, f"{base_url}/healthz to answer")
    click.echo(f"3. web answers {base_url}/healthz ({time.monotonic() - started:.1f} s)")
    return base_url


def _healthy(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def _wait(
    group: procfile.ProcessGroup, done: Callable[[], bool], timeout: float, what: str
) -> None:
    """Poll `done` until it holds; fail early, with its log, if a process exits meanwhile."""
    deadline = time.monotonic() + timeout
    while not done():
        exited = group.exited()
        if exited:
            child = exited[0]
            raise DemoFailed(
                f"the {child.name} process exited with code {child.popen.returncode}; "
                f"its log ({child.log_path}) ends with:\n{child.tail()}"
            )
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def _demonstrate(
    settings: Settings, group: procfile.ProcessGroup, base_url: str, timeout: float
) -> list[str]:
    from integration.sources import SOURCES

    after_id = run_report.last_inbox_id(settings)
    account = DemoAccount.new()
    ctx = Context(account, settings, base_url, db.utcnow())
    click.echo(f"4. sending signed sample events for {account.name} (run {account.run})")
    deadline = time.monotonic() + timeout
    failures: list[str] = []
    sent: set[str] = set()
    for number, step in enumerate(STEPS, start=1):
        click.echo(f"   step {number}: {step.title}")
        deliveries = [delivery for build in step.build for delivery in build(ctx)]
        failures += [failure for delivery in deliveries if (failure := _send(base_url, delivery))]
        sent |= {delivery.source for delivery in deliveries}
        try:
            _wait(
                group,
                lambda: run_report.pending_count(settings, after_id) == 0,
                max(deadline - time.monotonic(), 0.1),
                f"the worker to process step {number}",
            )
        except DemoFailed as exc:
            failures.append(str(exc))
            break
        parked = run_report.parked_count(settings, after_id)
        click.echo(f"     processed; canonical events parked (waiting for a link): {parked}")
    failures += [
        f"source {name} has no demo sample in expansion/demo/samples.py"
        for name in sorted(set(SOURCES) - sent)
    ]
    result = run_report.collect(settings, after_id)
    _print_report(result)
    _print_explanation(settings, account)
    return failures + _problems(result)


def _print_explanation(settings: Settings, account: DemoAccount) -> None:
    """The account's scores with their evidence, as `expansion explain` shows them."""
    explanation = explain(settings, f"salesforce:{account.account_id}", db.utcnow().date())
    click.echo(f"\nWhy: `expansion explain salesforce:{account.account_id}`")
    click.echo(render_explanation(explanation.assessment))


def _send(base_url: str, delivery: Delivery) -> str:
    try:
        response = requests.post(
            base_url + delivery.path, data=delivery.body, headers=delivery.headers, timeout=10
        )
    except requests.RequestException as exc:
        raise DemoFailed(f"could not reach the web process: {exc}") from None
    text = response.text
    answer = "<Ack>true</Ack>" if "<Ack>true</Ack>" in text else shorten(text, 40)
    click.echo(
        f"     {delivery.source:<10} {delivery.description:<48} {response.status_code} {answer}"
    )
    if response.ok:
        return ""
    return f"{delivery.source} {delivery.description} was answered {response.status_code}"


def _print_report(result: run_report.RunReport) -> None:
    click.echo("\nStored in the inbox (this run)")
    rows = [
        [source, *(by_status.get(s, 0) for s in STATUSES)]
        for source, by_status in sorted(result.inbox.items())
    ]
    click.echo(table(["source", *STATUSES], rows))
    for inbox_id, source, status, error in result.errors:
        click.echo(f"  inbox event {inbox_id} ({source}) {status}: {shorten(error, 100)}")
    click.echo("\nApplied: accounts")
    for view in result.accounts:
        click.echo(f"  account #{view.id} {view.name or '(no name yet)'}")
        click.echo(f"    events applied: {view.events_applied}")
        click.echo(f"    links: {', '.join(view.links) or 'none'}")
        for name, value in view.attributes.items():
            click.echo(f"    {name} = {shorten(json.dumps(value, default=str), 70)}")
    click.echo("\nApplied: canonical events per type")
    click.echo(
        table(
            ["source", "type", "applied", "parked"],
            [
                [source, event_type, counts.get("applied", 0), counts.get("parked", 0)]
                for (source, event_type), counts in result.events.items()
            ],
        )
    )
    if result.parked:
        click.echo("\nParked (waiting for an identity link)")
        for source, event_type, key in result.parked:
            click.echo(f"  {source} {event_type} under {key}")
    else:
        click.echo("\nParked: none (every event reached its account)")


def _problems(result: run_report.RunReport) -> list[str]:
    problems = []
    if result.dead():
        problems.append(
            f"{result.dead()} event(s) were dead-lettered; see `expansion deadletters list`"
        )
    if result.pending():
        problems.append(f"{result.pending()} event(s) are still pending")
    missing = sorted(set(result.inbox) - result.applied_sources())
    if missing:
        problems.append(f"no event from {', '.join(missing)} was applied to an account")
    return problems


def _shutdown(group: procfile.ProcessGroup, settings: Settings, started_redis: bool) -> None:
    if group.children:
        click.echo("\nstopping " + ", ".join(child.name for child in group.children))
        group.stop()
    if started_redis:
        with suppress(OSError):
            embedded.stop_embedded_redis(settings.var_dir)
        click.echo("stopped the embedded Redis the demo started")
