"""The `expansion` command line: migrate, inbox stats, dead-letter list and replay, the embedded
Redis, and the demo. Settings come from the environment, as for every other process."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from expansion import db, embedded, inbox_admin
from expansion.inbox_admin import STATUSES, DeadLetter, ReplayRefused
from expansion.settings import Settings
from sandbox.cli import sandbox_command

F = TypeVar("F", bound=Callable[..., Any])
ERROR_WIDTH = 160


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(f"configuration error: {exc}; fix the variable") from None


def database_errors(command: F) -> F:
    """Turn a database failure into a sentence saying which database and what to check."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (OperationalError, ProgrammingError) as exc:
            where = safe_database_url(load_settings())
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise click.ClickException(
                f"the database at {where} could not be used ({reason}). Check DATABASE_URL; "
                "if the schema is missing, run `expansion migrate`."
            ) from None

    return wrapper  # type: ignore[return-value]


def safe_database_url(settings: Settings) -> str:
    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def safe_url(url: str) -> str:
    """A URL fit for output: any password replaced by ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain aligned columns; numbers right-aligned."""
    numeric = [
        bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(headers))
    ]
    cells = [
        list(headers),
        *[["" if value is None else str(value) for value in row] for row in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def shorten(value: str | None, width: int = ERROR_WIDTH) -> str:
    flat = " ".join((value or "").split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="expansion-signals")
def main() -> None:
    """Expansion Signals: webhook receiver, workers and admin tools.

    Configuration comes from environment variables (see .env.example).
    """


@main.command()
@database_errors
def migrate() -> None:
    """Bring the database schema to the newest migration (safe to run from several hosts)."""
    settings = load_settings()
    db.upgrade(settings)
    with db.transaction(settings) as conn:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    click.echo(f"database {safe_database_url(settings)} is at revision {revision}")


# --- inbox ---------------------------------------------------------------------------------


@main.group()
def inbox() -> None:
    """The inbox of received webhook events."""


@inbox.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@database_errors
def inbox_stats(as_json: bool) -> None:
    """Events per source and status, the oldest pending event and the dead-letter count."""
    from integration.sources import SOURCES

    settings = load_settings()
    stats = inbox_admin.stats(settings, tuple(SOURCES))
    age = stats.oldest_pending_age_seconds(db.utcnow())
    if as_json:
        echo_json(
            {
                "counts": stats.counts,
                "totals": {status: stats.total(status) for status in STATUSES},
                "oldest_pending": {
                    "id": stats.oldest_pending_id,
                    "received_at": iso(stats.oldest_pending_at),
                    "age_seconds": None if age is None else round(age, 1),
                },
                "dead": stats.total("dead"),
            }
        )
        return
    rows = [
        [source, *(by_status.get(s, 0) for s in STATUSES), sum(by_status.values())]
        for source, by_status in stats.counts.items()
    ]
    totals = [stats.total(s) for s in STATUSES]
    rows.append(["total", *totals, sum(totals)])
    click.echo(table(["source", *STATUSES, "total"], rows))
    click.echo()
    if age is None:
        click.echo("oldest pending: none")
    else:
        click.echo(
            f"oldest pending: inbox event {stats.oldest_pending_id}, received "
            f"{inbox_admin.age_text(age)} ago ({iso(stats.oldest_pending_at)})"
        )
    dead = stats.total("dead")
    hint = "; see `expansion deadletters list`" if dead else ""
    click.echo(f"dead-lettered: {dead}{hint}")


# --- dead letters --------------------------------------------------------------------------


@main.group()
def deadletters() -> None:
    """Events that verified but could not be processed: list and replay them."""


def dead_letter_json(row: DeadLetter, error_key: str = "last_error") -> dict[str, Any]:
    return {
        "id": row.id,
        "source": row.source,
        "event_type": row.event_type,
        "dedup_key": row.dedup_key,
        "attempts": row.attempts,
        error_key: row.last_error,
        "received_at": iso(row.received_at),
    }


@deadletters.command("list")
@click.option("--source", help="Only this source (stripe, hubspot, ...).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (full error texts).")
@database_errors
def deadletters_list(source: str | None, limit: int, as_json: bool) -> None:
    """Dead-lettered events, oldest first, with the error that stopped each one."""
    rows, total = inbox_admin.dead_letters(load_settings(), source, limit)
    if as_json:
        echo_json({"total": total, "dead_letters": [dead_letter_json(row) for row in rows]})
        return
    if not rows:
        click.echo(f"no dead-lettered events{f' from {source}' if source else ''}")
        return
    click.echo(
        table(
            ["id", "source", "event type", "dedup key", "attempts", "received at", "last error"],
            [
                [
                    row.id,
                    row.source,
                    row.event_type,
                    row.dedup_key,
                    row.attempts,
                    iso(row.received_at),
                    shorten(row.last_error),
                ]
                for row in rows
            ],
        )
    )
    if total > len(rows):
        click.echo(f"\nshowing {len(rows)} of {total}; use --limit or --source to see more")
    click.echo(
        "\nfull errors: `expansion deadletters list --json`; "
        "replay: `expansion deadletters replay ID` or `--all`"
    )


@deadletters.command("replay")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead-lettered event.")
@click.option("--source", help="With --all: only this source.")
@click.option(
    "--inline",
    "--now",
    "inline",
    is_flag=True,
    help="Process in this process instead of enqueueing (when no worker runs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@database_errors
def deadletters_replay(
    ids: tuple[int, ...], replay_all: bool, source: str | None, inline: bool, as_json: bool
) -> None:
    """Put dead-lettered events back to pending (attempts 0) and process them again.

    IDS are inbox event ids from `expansion deadletters list`. Only dead rows are replayed: an
    id that is pending, processed or ignored is refused and nothing changes.
    """
    if bool(ids) == replay_all:
        raise click.UsageError("give one or more inbox event ids, or --all (not both)")
    if source and not replay_all:
        raise click.UsageError("--source only applies with --all")
    settings = load_settings()
    try:
        rows = inbox_admin.reset_for_replay(settings, list(ids) if ids else None, source)
    except ReplayRefused as exc:
        raise click.ClickException(
            "replay refused, nothing changed:\n  " + "\n  ".join(exc.problems)
        ) from None
    if not rows:
        click.echo(f"no dead-lettered events{f' from {source}' if source else ''} to replay")
        return
    results = _process_inline(settings, rows) if inline else _enqueue(settings, rows)
    if as_json:
        echo_json(
            [
                {**dead_letter_json(row, "previous_error"), "result": result}
                for row, result in zip(rows, results, strict=True)
            ]
        )
    else:
        for row, result in zip(rows, results, strict=True):
            click.echo(
                f"inbox event {row.id} ({row.source} {row.event_type}, {row.dedup_key}): {result}"
            )
            click.echo(f"  previous error: {row.last_error or '(none recorded)'}")
    if inline and any(result.startswith("dead") for result in results):
        raise click.ClickException(
            "some events failed again; fix the cause shown above, then replay them again"
        )


def _process_inline(settings: Settings, rows: list[DeadLetter]) -> list[str]:
    from workers import ingest

    results = []
    for row in rows:
        outcome = ingest.process(settings, row.id)
        detail = f": {outcome.detail}" if outcome.detail else ""
        if outcome.status == "retry":
            detail += " (left pending; a worker or the sweeper will retry it)"
        results.append(f"{outcome.status}{detail}")
    return results


def _enqueue(settings: Settings, rows: list[DeadLetter]) -> list[str]:
    from workers.celery_app import make_celery
    from workers.queue import ingest_enqueuer

    try:
        sent = ingest_enqueuer(make_celery(settings))(row.id for row in rows)
    except Exception as exc:  # the broker is unreachable: rows stay pending for the sweeper
        sent = 0
        click.echo(f"warning: could not reach the broker ({type(exc).__name__}: {exc})", err=True)
    if sent < len(rows):
        click.echo(
            f"warning: {len(rows) - sent} event(s) could not be enqueued; they are pending and "
            "the sweeper (beat) will enqueue them, or run this again with --inline",
            err=True,
        )
    return [
        "reset to pending, enqueued for a worker"
        if index < sent
        else "reset to pending, NOT enqueued (broker unreachable)"
        for index in range(len(rows))
    ]


# --- embedded redis ------------------------------------------------------------------------


@main.group("redis")
def redis_group() -> None:
    """The embedded Redis (used when neither REDIS_URL nor BROKER_URL is set)."""


def _external_redis(settings: Settings) -> str | None:
    return None if settings.uses_embedded_redis else (settings.broker_url or settings.redis_url)


@redis_group.command("start")
def redis_start() -> None:
    """Start the embedded Redis for this VAR_DIR (processes also start it on demand)."""
    settings = load_settings()
    external = _external_redis(settings)
    if external:
        raise click.ClickException(
            f"a broker is configured ({safe_url(external)}); the embedded Redis is only used "
            "when neither REDIS_URL nor BROKER_URL is set. Unset them to use it."
        )
    was_running = embedded.is_running(settings.var_dir)
    try:
        sock = embedded.ensure_embedded_redis(settings.var_dir)
    except (RuntimeError, OSError) as exc:
        raise click.ClickException(f"could not start the embedded Redis: {exc}") from None
    state = "already running" if was_running else "started"
    click.echo(f"embedded Redis {state} on unix socket {sock}")


@redis_group.command("stop")
def redis_stop() -> None:
    """Stop the embedded Redis of this VAR_DIR (queued tasks are kept on disk)."""
    settings = load_settings()
    if embedded.stop_embedded_redis(settings.var_dir):
        click.echo(f"embedded Redis stopped ({embedded.socket_path(settings.var_dir)})")
    else:
        click.echo(f"embedded Redis is not running for VAR_DIR {settings.var_dir}")


@redis_group.command("status")
def redis_status() -> None:
    """Whether the broker answers, where it is, and how many tasks wait in it."""
    settings = load_settings()
    external = _external_redis(settings)
    if external and not external.startswith(("redis://", "rediss://", "unix://")):
        click.echo(f"broker {safe_url(external)} is not Redis; nothing to report here")
        return
    if not external and not embedded.is_running(settings.var_dir):
        raise click.ClickException(
            f"embedded Redis is not running for VAR_DIR {settings.var_dir}; "
            "start it with `expansion redis start`"
        )
    url = external or f"unix://{embedded.socket_path(settings.var_dir)}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        info = client.info("server")
        queued = client.llen("celery")
    except (redis.RedisError, OSError) as exc:
        raise click.ClickException(f"Redis at {safe_url(url)} does not answer: {exc}") from None
    kind = "external" if external else "embedded"
    click.echo(f"{kind} Redis {info.get('redis_version')} answering at {safe_url(url)}")
    click.echo(f"tasks waiting in the default queue: {queued}")


# --- scores --------------------------------------------------------------------------------


@main.command()
@click.argument("account")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Score as of this day (YYYY-MM-DD; default today, UTC).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@database_errors
def explain(account: str, as_of: datetime | None, as_json: bool) -> None:
    """Why an account scores as it does: health by dimension (and what was missing), readiness,
    each active signal with its strength and evidence, and the timing window.

    ACCOUNT is our account id, a linked key as kind:value (salesforce:001..., hubspot:123,
    stripe:cus_..., chargebee:..., product:...), an external id of any kind, or the exact
    account name. Nothing is stored.
    """
    from expansion.scores_admin import AccountNotFound, explanation_json
    from expansion.scores_admin import explain as explain_account
    from workers.scoring import render_explanation

    day = as_of.date() if as_of else db.utcnow().date()
    try:
        explanation = explain_account(load_settings(), account, day)
    except AccountNotFound as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json(explanation_json(explanation))
    else:
        click.echo(render_explanation(explanation.assessment), nl=False)


@main.command()
@click.option("--account", "account", required=True, help="The account, named as for `explain`.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@database_errors
def plays(account: str, as_json: bool) -> None:
    """An account's plays: state, owner, each step with its owner, due date and status, and the
    SLA breaches recorded. Nothing is changed."""
    from expansion.plays_admin import account_plays
    from expansion.scores_admin import AccountNotFound, find_account

    with db.transaction(load_settings()) as conn:
        try:
            match = find_account(conn, account)
        except AccountNotFound as exc:
            raise click.ClickException(str(exc)) from None
        views = account_plays(conn, match.account_id)
    if as_json:
        echo_json([dataclasses.asdict(view) for view in views])
        return
    if not views:
        click.echo(f"account {match.account_id} has no plays yet")
        return
    for view in views:
        closed = f", closed {iso(view.closed_at)}: {view.close_reason}" if view.closed_at else ""
        click.echo(
            f"{view.play} #{view.play_id}: {view.state}, owner {view.owner or '(product)'}, "
            f"readiness {view.readiness_at_open:g} at open, SLA breaches {view.breaches}{closed}"
        )
        rows = [
            (s.index, s.name, s.owner or "-", s.due_on.isoformat(), s.status) for s in view.steps
        ]
        click.echo(table(["step", "name", "owner", "due", "status"], rows))


def redis_errors(command: F) -> F:
    """Turn an unreachable Redis (the recompute locks live there) into what to check."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise click.ClickException(
                f"Redis, which holds the recompute locks, does not answer ({exc}). Check "
                "REDIS_URL, or `expansion redis status` for the embedded one."
            ) from None

    return wrapper  # type: ignore[return-value]


@main.command()
@click.argument("account", required=False)
@click.option("--all", "every", is_flag=True, help="Rescore every account, with a progress bar.")
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help="Worker processes that share the book with --all (default: one per CPU).",
)
@database_errors
@redis_errors
def rescore(account: str | None, every: bool, processes: int | None) -> None:
    """Recompute and store scores now: of one ACCOUNT (named as for `explain`), or of the whole
    book with --all. A result that changed gets a score history row."""
    if bool(account) == every:
        raise click.UsageError("give one ACCOUNT or --all (not both)")
    if every:
        _rescore_all(load_settings(), processes or os.cpu_count() or 1)
    else:
        _rescore_one(load_settings(), account or "")


def _rescore_one(settings: Settings, given: str) -> None:
    from expansion import scores_admin

    try:
        with db.transaction(settings) as conn:
            match = scores_admin.find_account(conn, given)
        record = scores_admin.rescore_one(settings, match.account_id, db.utcnow())
    except (scores_admin.AccountNotFound, scores_admin.AccountBusy) as exc:
        raise click.ClickException(str(exc)) from None
    name = f" ({match.name})" if match.name else ""
    health = "unknown" if record.health_score is None else f"{record.health_score:g}"
    stored = {
        "written": f"stored as score history row {record.score_id}",
        "unchanged": f"unchanged since score history row {record.score_id}",
    }.get(record.status, "not stored: a newer state was already scored")
    click.echo(
        f"account {match.account_id}{name} as of {record.as_of.isoformat()}: health {health} "
        f"{record.health_band} ({record.health_trend}), readiness {record.readiness_score:g} "
        f"{record.readiness_band}, gate {record.gate}, window {record.timing_window}; {stored}"
    )
    click.echo(f"why: `expansion explain {match.account_id}`")


def _rescore_all(settings: Settings, processes: int) -> None:
    from expansion import scores_admin
    from workers import recompute

    with click.progressbar(length=1, label="rescoring", show_pos=True, show_eta=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        summary = recompute.rescore_all(
            settings, db.utcnow(), progress=progress, processes=processes
        )
    rate = f", {summary.accounts / summary.seconds:,.0f} per second" if summary.seconds else ""
    click.echo(
        f"rescored {summary.accounts:,} accounts in {summary.seconds:.1f} s{rate}: "
        f"{summary.written:,} changed (new history row), {summary.unchanged:,} unchanged, "
        f"{summary.skipped:,} skipped (being recomputed by a worker, or gone), "
        f"{summary.failed:,} failed"
    )
    bands = scores_admin.bands(settings)
    for what, counts in (("health", bands.health), ("readiness", bands.readiness)):
        click.echo(f"{what}: " + ", ".join(f"{band} {n:,}" for band, n in counts.items()))
    if summary.failed:
        raise click.ClickException(
            f"{summary.failed} account(s) could not be scored; the log names each account and "
            "the error"
        )


# --- board ---------------------------------------------------------------------------------


@main.command("board")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8050, show_default=True, envvar="BOARD_PORT"
)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
def board_command(host: str, port: int, workers: int) -> None:
    """Serve the board (ranked accounts, evidence, plays, charts, the §8 scoreboard) with
    gunicorn. It asks for the admin token BOARD_TOKEN; on embedded defaults without one, a
    token is generated in VAR_DIR/board-token and printed here."""
    from board.auth import TokenError, resolve_token
    from board.server import serve

    settings = load_settings()
    try:
        token = resolve_token(settings)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from None
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"board: http://{shown_host}:{port}/")
    if token.generated:
        click.echo(f"admin token: {token.value} (kept in {token.source}; set BOARD_TOKEN instead)")
    else:
        click.echo("admin token: the value of BOARD_TOKEN")
    serve(host, port, workers)


# --- demo ----------------------------------------------------------------------------------


@main.command()
@click.option("--accounts", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="The book's random seed.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=5),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the book to be processed and written to the CRMs.",
)
@click.option(
    "--exit-after-summary",
    is_flag=True,
    help="Stop everything after the summary instead of leaving the board running.",
)
def demo(accounts: int, seed: int, timeout: float, exit_after_summary: bool) -> None:
    """Start the Procfile processes (web, worker, beat, board, CRM sandbox) on a fresh embedded
    database, replay a synthetic book of customers as signed webhooks, and summarize what was
    scored, played and written to the CRMs; the board stays up until Ctrl-C, which stops
    everything the demo started."""
    from expansion.demo import Options, run

    load_settings()  # a malformed variable is reported before anything starts
    options = Options(accounts, seed, timeout, serve=not exit_after_summary)
    raise SystemExit(run(options))


# --- CRM writers ---------------------------------------------------------------------------


@main.group()
def mappings() -> None:
    """The admin YAML under mappings/."""


@mappings.command("check")
@click.option("--offline", is_flag=True, help="Only the YAML, even when CRM credentials are set.")
def mappings_check(offline: bool) -> None:
    """Validate mappings/salesforce.yaml and mappings/hubspot.yaml; with a CRM's credentials set,
    also its live schema: every mapped field exists, its type fits, it is writable."""
    from integration.writers import admin
    from integration.writers.engine import Paused, Refused, TransientError
    from integration.writers.mapping import configured

    settings = load_settings()
    problems, warnings = admin.check_files(settings)
    for warning in warnings:
        click.echo(f"warning: {warning}")
    if not problems and not offline:
        for crm in configured(settings):
            try:
                found = admin.check_live(settings, crm)
            except (Paused, Refused, TransientError) as exc:
                found = [f"{crm}: the schema could not be read ({exc})"]
            problems += found
            if not found:
                click.echo(f"{crm}: every mapped field exists, fits and is writable")
    if problems:
        raise click.ClickException("\n".join(problems))
    click.echo("mappings/salesforce.yaml and mappings/hubspot.yaml are valid")


@main.command()
@click.option(
    "--dry-run", "dry_run", is_flag=True, help="Print what would be written; write nothing."
)
@click.option("--account", help="Only this account (named as for `explain`).")
@database_errors
def sync(dry_run: bool, account: str | None) -> None:
    """Send the pending CRM writes now (one flush), or with --dry-run show them: the fields
    each record would get and the tasks that would be created. Nothing is claimed or sent then."""
    from integration.writers import admin
    from integration.writers.flush import dry_run_plans, flush

    settings = load_settings()
    account_id = None
    if account:
        from expansion.scores_admin import AccountNotFound, find_account

        with db.transaction(settings) as conn:
            try:
                account_id = find_account(conn, account).account_id
            except AccountNotFound as exc:
                raise click.ClickException(str(exc)) from None
    if dry_run:
        for line in admin.dry_run_lines(dry_run_plans(settings, account_id)):
            click.echo(line)
        return
    if account_id is not None:
        raise click.UsageError("--account only applies with --dry-run (a flush sends everything)")
    report = flush(settings)
    for crm, counts in report.crms.items():
        click.echo(
            f"{crm}: {counts.sent} sent, {counts.unchanged} unchanged, {counts.failed} failed "
            f"(retried later), {counts.dead} dead, {counts.calls} API calls"
        )
    if report.resume_after is not None:
        click.echo(f"paused: a CRM budget is spent; run again in {report.resume_after:.0f} s")


@main.group()
def outbox() -> None:
    """The outbox of CRM writes (fields and tasks)."""


@outbox.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["pending", "sent", "failed", "dead"]),
    help="Only these statuses (repeatable); default dead and failed.",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (full error texts).")
@database_errors
def outbox_list(statuses: tuple[str, ...], limit: int, as_json: bool) -> None:
    """CRM writes that failed (retried) or are dead (a permanent CRM error, or too many
    attempts), oldest first, with the CRM's reason."""
    from integration.writers.admin import outbox_rows

    rows, total = outbox_rows(load_settings(), statuses or ("dead", "failed"), limit)
    if as_json:
        echo_json({"total": total, "intents": [dict(row) for row in rows]})
        return
    if not rows:
        click.echo("no CRM writes in those statuses")
        return
    click.echo(
        table(
            ["id", "kind", "key", "account", "crm", "status", "attempts", "updated", "reason"],
            [
                [
                    row["id"],
                    row["kind"],
                    row["external_key"],
                    row["account_id"],
                    row["crm"],
                    row["status"],
                    row["attempts"],
                    iso(row["updated_at"]),
                    shorten(row["last_error"]),
                ]
                for row in rows
            ],
        )
    )
    if total > len(rows):
        click.echo(f"\nshowing {len(rows)} of {total}; use --limit to see more")


main.add_command(sandbox_command)


# --- book ----------------------------------------------------------------------------------


def book_options(command: F) -> F:
    """The options that name a book: the same three give the same book."""
    command = click.option(
        "--today",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        help="The book's last day (default: today, UTC).",
    )(command)
    command = click.option("--seed", type=int, default=7, show_default=True)(command)
    return click.option("--accounts", type=click.IntRange(min=1), default=300, show_default=True)(
        command
    )


def _book(accounts: int, seed: int, today: datetime | None):  # type: ignore[no-untyped-def]
    from expansion.book import generate

    return generate(load_settings(), accounts, seed, today.date() if today else None)


@main.group()
def book() -> None:
    """A synthetic book of customers with planted expansion patterns: generate it, replay it to
    a receiver as signed provider requests, and check what the product flagged."""


@book.command("generate")
@book_options
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory to write.")
def book_generate(accounts: int, seed: int, today: datetime | None, out: str) -> None:
    """Write the book's requests (requests.jsonl) and its planted truth (truth.json)."""
    from pathlib import Path

    generated = _book(accounts, seed, today)
    generated.save(Path(out))
    rows = [[source, n, items] for source, (n, items) in generated.counts().items()]
    click.echo(table(["source", "requests", "events"], rows))
    size = len(generated.accounts)
    click.echo(f"wrote {out}/requests.jsonl and {out}/truth.json ({size} accounts)")


@book.command("replay")
@book_options
@click.option("--url", required=True, help="Where the receiver listens, e.g. http://127.0.0.1:8000")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True)
def book_replay(
    accounts: int, seed: int, today: datetime | None, url: str, concurrency: int
) -> None:
    """Post the book to the receiver, signed as each provider signs, with a progress bar."""
    from expansion.book.replay import replay_with_bar, summary

    generated = _book(accounts, seed, today)
    result = replay_with_bar(generated.requests, load_settings(), url.rstrip("/"), concurrency)
    click.echo(summary(result, generated.counts().items()))
    if result.failures:
        raise click.ClickException(f"{len(result.failures)} request(s) were not answered 2xx")


@book.command("accuracy")
@book_options
@click.option("--no-rescore", is_flag=True, help="Use the stored scores as they are.")
@database_errors
def book_accuracy(accounts: int, seed: int, today: datetime | None, no_rescore: bool) -> None:
    """Precision and recall of the product's signals and plays against the book's planted
    truth (after the book was replayed and processed)."""
    from expansion.book.accuracy import check, render

    generated = _book(accounts, seed, today)
    click.echo(render(check(load_settings(), generated, rescore=not no_rescore)))
