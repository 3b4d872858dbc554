"""The `expansion` command line against the real test database: inbox stats, the dead-letter
list, replay (one id, --all, inline or through the broker) and its refusal of rows that are not
dead."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from sqlalchemy import select

from expansion.cli import main
from expansion.db import transaction
from expansion.embedded import redis_url
from expansion.models import inbox_events
from expansion.settings import Settings
from integration.sources.stripe import signature_header
from tests.support import TEST_SECRETS, fixture_path
from workers import ingest

BROKEN_STRIPE_MAPPING = "events:\n  invoice.paid: invoice.refunded\n"


@pytest.fixture
def cli(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Run `expansion ...` with the test environment (same VAR_DIR and database)."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def post_stripe(client, fixture: str) -> int:  # type: ignore[no-untyped-def]
    body = fixture_path("stripe", fixture).read_bytes()
    header = signature_header(TEST_SECRETS["STRIPE_WEBHOOK_SECRET"], body, int(time.time()))
    response = client.post(
        "/webhooks/stripe",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
    )
    assert response.status_code == 200
    with transaction(client.application.config["SETTINGS"]) as conn:
        return conn.execute(select(inbox_events.c.id).order_by(inbox_events.c.id.desc())).first()[0]


def dead_letter(client, settings: Settings, tmp_path: Path, fixture: str) -> int:  # type: ignore[no-untyped-def]
    """A stored event that died because an admin broke mappings/sources/stripe.yaml (the fixed
    mapping is the real one, which the CLI uses)."""
    inbox_id = post_stripe(client, fixture)
    broken_dir = tmp_path / "broken-mappings"
    (broken_dir / "sources").mkdir(parents=True, exist_ok=True)
    (broken_dir / "sources" / "stripe.yaml").write_text(BROKEN_STRIPE_MAPPING)
    broken = dataclasses.replace(settings, mappings_dir=broken_dir)
    assert ingest.process(broken, inbox_id).status == "dead"
    return inbox_id


def row(settings: Settings, inbox_id: int):  # type: ignore[no-untyped-def]
    with transaction(settings) as conn:
        return conn.execute(select(inbox_events).where(inbox_events.c.id == inbox_id)).one()


def table_row(output: str, first_cell: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [first_cell])


def test_inbox_stats_counts_per_source_and_status(cli, client, settings, tmp_path):
    processed = post_stripe(client, "customer.updated.json")
    assert ingest.process(settings, processed).status == "processed"
    dead_letter(client, settings, tmp_path, "invoice.paid.json")
    pending = post_stripe(client, "customer.subscription.updated.json")

    result = cli("inbox", "stats")

    assert result.exit_code == 0, result.output
    header = table_row(result.output, "source")
    assert header == ["source", "pending", "processed", "ignored", "dead", "total"]
    assert table_row(result.output, "stripe") == ["stripe", "1", "1", "0", "1", "3"]
    assert table_row(result.output, "hubspot")[1:] == ["0", "0", "0", "0", "0"]
    assert f"oldest pending: inbox event {pending}, received" in result.output
    assert "dead-lettered: 1; see `expansion deadletters list`" in result.output


def test_inbox_stats_json(cli, client, settings, tmp_path):
    dead_letter(client, settings, tmp_path, "invoice.paid.json")
    pending = post_stripe(client, "customer.updated.json")

    payload = json.loads(cli("inbox", "stats", "--json").output)

    assert payload["counts"]["stripe"] == {"dead": 1, "pending": 1}
    assert payload["counts"]["chargebee"] == {}
    assert payload["dead"] == 1
    assert payload["totals"]["pending"] == 1
    assert payload["oldest_pending"]["id"] == pending
    assert 0 <= payload["oldest_pending"]["age_seconds"] < 60


def test_deadletters_list_shows_the_dead_row_and_its_error(cli, client, settings, tmp_path):
    inbox_id = dead_letter(client, settings, tmp_path, "invoice.paid.json")
    post_stripe(client, "customer.updated.json")  # pending: not listed

    result = cli("deadletters", "list")

    assert result.exit_code == 0, result.output
    cells = table_row(result.output, str(inbox_id))
    assert cells[1:5] == ["stripe", "invoice.paid", "evt_1QAcmeInvPaid001", "1"]
    assert "MappingError" in result.output and "stripe.yaml" in result.output
    assert len([line for line in result.output.splitlines() if "evt_" in line]) == 1


def test_deadletters_list_json_has_the_full_error(cli, client, settings, tmp_path):
    inbox_id = dead_letter(client, settings, tmp_path, "invoice.paid.json")

    payload = json.loads(cli("deadletters", "list", "--json").output)

    assert payload["total"] == 1
    (entry,) = payload["dead_letters"]
    assert entry["id"] == inbox_id
    assert entry["event_type"] == "invoice.paid"
    assert entry["dedup_key"] == "evt_1QAcmeInvPaid001"
    assert entry["attempts"] == 1
    assert "account_link: required key is missing" in entry["last_error"]
    assert entry["received_at"]


def test_deadletters_list_filters_by_source_and_limits(cli, client, settings, tmp_path):
    dead_letter(client, settings, tmp_path, "invoice.paid.json")
    dead_letter(client, settings, tmp_path, "customer.subscription.updated.json")

    assert (
        "no dead-lettered events from hubspot"
        in cli("deadletters", "list", "--source", "hubspot").output
    )
    limited = cli("deadletters", "list", "--limit", "1")
    assert "showing 1 of 2" in limited.output
    assert json.loads(cli("deadletters", "list", "--json", "--limit", "1").output)["total"] == 2


def test_replay_one_id_inline_processes_it_and_shows_the_previous_error(
    cli, client, settings, tmp_path
):
    inbox_id = dead_letter(client, settings, tmp_path, "invoice.paid.json")
    other = dead_letter(client, settings, tmp_path, "customer.updated.json")

    result = cli("deadletters", "replay", str(inbox_id), "--inline")

    assert result.exit_code == 0, result.output
    assert f"inbox event {inbox_id} (stripe invoice.paid, evt_1QAcmeInvPaid001): processed" in (
        result.output
    )
    assert "previous error: MappingError" in result.output
    replayed = row(settings, inbox_id)
    assert (replayed.status, replayed.attempts, replayed.last_error) == ("processed", 1, None)
    assert row(settings, other).status == "dead"


def test_replay_all_now_processes_every_dead_row(cli, client, settings, tmp_path):
    ids = [
        dead_letter(client, settings, tmp_path, "customer.updated.json"),
        dead_letter(client, settings, tmp_path, "invoice.paid.json"),
    ]

    result = cli("deadletters", "replay", "--all", "--now", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [entry["id"] for entry in report] == ids
    assert all(entry["result"].startswith("processed") for entry in report)
    assert all("MappingError" in entry["previous_error"] for entry in report)
    assert [row(settings, inbox_id).status for inbox_id in ids] == ["processed", "processed"]
    assert "no dead-lettered events" in cli("deadletters", "list").output


def test_replay_without_inline_resets_and_enqueues_to_the_broker(cli, client, settings, tmp_path):
    inbox_id = dead_letter(client, settings, tmp_path, "invoice.paid.json")
    broker = redis.Redis.from_url(redis_url(settings))
    queued_before = broker.llen("celery")

    result = cli("deadletters", "replay", str(inbox_id))

    assert result.exit_code == 0, result.output
    assert "reset to pending, enqueued for a worker" in result.output
    replayed = row(settings, inbox_id)
    assert (replayed.status, replayed.attempts, replayed.last_error) == ("pending", 0, None)
    assert broker.llen("celery") == queued_before + 1
    message = json.loads(broker.lindex("celery", 0))
    assert message["headers"]["task"] == "workers.tasks.ingest"
    assert message["headers"]["argsrepr"] == f"({inbox_id},)"


def test_replay_of_a_row_that_is_not_dead_is_refused_and_changes_nothing(
    cli, client, settings, tmp_path
):
    dead = dead_letter(client, settings, tmp_path, "invoice.paid.json")
    processed = post_stripe(client, "customer.updated.json")
    assert ingest.process(settings, processed).status == "processed"

    result = cli("deadletters", "replay", str(dead), str(processed), "--inline")

    assert result.exit_code == 1
    assert "replay refused, nothing changed" in result.output
    assert f"inbox event {processed} is processed, not dead" in result.output
    assert row(settings, dead).status == "dead"
    assert row(settings, processed).status == "processed"


def test_replay_of_an_unknown_id_is_refused(cli, settings):
    result = cli("deadletters", "replay", "999999")
    assert result.exit_code == 1
    assert "inbox event 999999 does not exist" in result.output


def test_replay_needs_ids_or_all_but_not_both(cli, settings):
    assert cli("deadletters", "replay").exit_code == 2
    both = cli("deadletters", "replay", "1", "--all")
    assert both.exit_code == 2
    assert "not both" in both.output


def test_replay_all_with_nothing_dead_says_so(cli, settings):
    result = cli("deadletters", "replay", "--all", "--inline")
    assert result.exit_code == 0
    assert "no dead-lettered events to replay" in result.output


def test_migrate_reports_the_revision(cli, settings):
    result = cli("migrate")
    assert result.exit_code == 0, result.output
    assert "is at revision" in result.output


def test_a_bad_setting_is_reported_with_the_variable_name(env, settings):
    result = CliRunner().invoke(main, ["inbox", "stats"], env={**env, "INGEST_MAX_ATTEMPTS": "x"})
    assert result.exit_code == 1
    assert "INGEST_MAX_ATTEMPTS must be an integer" in result.output


def test_redis_status_reports_the_broker(cli, app):
    result = cli("redis", "status")
    assert result.exit_code == 0, result.output
    assert "Redis" in result.output and "answering" in result.output
    assert "tasks waiting in the default queue" in result.output
