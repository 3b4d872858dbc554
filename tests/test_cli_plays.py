"""`expansion plays --account`: an account's plays with their steps, owners and due dates."""

from __future__ import annotations

import json

from click.testing import CliRunner

from expansion.cli import main
from expansion.db import transaction
from tests.test_play_engine import MONDAY, SEATS, new_account, recompute


def invoke(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_shows_the_play_its_owner_and_its_first_step_with_the_due_date(env, settings):
    with transaction(settings) as conn:
        account = new_account(conn)
        recompute(conn, account, MONDAY, SEATS)
    result = invoke(env, "plays", "--account", "hubspot:9001")
    assert result.exit_code == 0, result.output
    first_line = result.output.splitlines()[0]
    assert first_line.startswith("seat_expansion #")
    assert "owner csm-1" in first_line and "SLA breaches 0" in first_line
    assert "2026-06-03" in result.output  # D0-2 in business days from Monday 2026-06-01
    as_json = json.loads(invoke(env, "plays", "--account", str(account), "--json").output)
    assert [(p["play"], p["owner"], len(p["steps"])) for p in as_json] == [
        ("seat_expansion", "csm-1", 1)
    ]


def test_an_account_without_plays_says_so(env, settings):
    with transaction(settings) as conn:
        account = new_account(conn)
    result = invoke(env, "plays", "--account", str(account))
    assert result.exit_code == 0
    assert result.output.strip() == f"account {account} has no plays yet"


def test_an_unknown_account_is_an_error(env, settings):
    result = invoke(env, "plays", "--account", "hubspot:404")
    assert result.exit_code == 1
    assert "hubspot:404" in result.output
