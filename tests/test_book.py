"""The synthetic book (expansion/book): deterministic for a seed, every request accepted by the
real receiver, and after the real ingest and a rescore every planted pattern flagged with its
play while the must-not-flag accounts are left alone."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from expansion.book import generate
from expansion.book.accuracy import measure, render, rescored
from expansion.book.model import PATTERNS
from expansion.book.replay import replay
from expansion.cli import main
from expansion.db import transaction
from expansion.models import canonical_events, inbox_events
from tests.support import start_gunicorn
from workers import drain

# The book's owner of each play (plays.yaml: owner roles resolved from the CRM owner fields).
PLAY_OWNERS = {
    "seat_expansion": "csm",
    "tier_upsell": "csm",
    "cross_sell": "ae",
    "strategic_expansion": "vp",
    "usage_auto_expansion": None,
    "save_play": "csm",
    "renewal_expansion": "csm",
}


def test_same_seed_same_book_and_every_pattern_planted(settings):
    first = generate(settings, size=60, seed=3)
    again = generate(settings, size=60, seed=3)
    other = generate(settings, size=60, seed=4)
    assert [r.body for r in first.requests] == [r.body for r in again.requests]
    assert [r.body for r in first.requests] != [r.body for r in other.requests]
    assert {a.pattern.name for a in first.accounts} >= {p.name for p in PATTERNS}


@pytest.mark.slow
def test_replayed_book_is_flagged_as_planted(settings, client):
    book = generate(settings, size=60, seed=11)

    def post(path: str, body: bytes, headers: dict[str, str]) -> int:
        return client.post(path, data=body, headers=headers).status_code

    result = replay(book.requests, settings, "http://localhost", post=post, concurrency=1)
    assert result.failures == []
    assert drain.drain(settings, lambda _ids: None).finished
    with transaction(settings) as conn:
        inbox = dict(
            conn.execute(
                select(inbox_events.c.status, func.count()).group_by(inbox_events.c.status)
            ).all()
        )
        parked = conn.execute(
            select(func.count()).where(canonical_events.c.status == "parked")
        ).scalar_one()
    assert set(inbox) == {"processed"}, inbox  # every request of the book is mapped
    assert parked == 0
    found = rescored(settings, book)
    accuracy = measure(book, found)
    assert accuracy.perfect, render(accuracy)
    assert all(s.planted for s in (*accuracy.signals, *accuracy.plays))
    # Each play goes to the owner its role names in the account's CRM fields.
    for account in book.accounts:
        for play, assignee in found[account.crm_key].owners.items():
            owner = getattr(account, PLAY_OWNERS[play]) if PLAY_OWNERS[play] else None
            expected = owner and (
                owner.salesforce_id if account.crm == "salesforce" else owner.hubspot_id
            )
            assert assignee == expected, (account.crm_key, play)


@pytest.mark.slow
def test_replay_over_http_is_accepted_and_stored(env, settings, tmp_path):
    book = generate(settings, size=6, seed=5)
    web, url = start_gunicorn(env, tmp_path / "web.log")
    try:
        result = replay(book.requests, settings, url, concurrency=4)
    finally:
        web.stop()
    assert result.failures == []
    assert result.requests == len(book.requests)
    with transaction(settings) as conn:
        stored = conn.execute(select(func.count()).select_from(inbox_events)).scalar_one()
    assert stored == result.events == sum(r.items for r in book.requests)


def test_generate_command_writes_the_requests_and_the_truth(env, settings, tmp_path):
    out = tmp_path / "book"
    result = CliRunner(env=env).invoke(
        main, ["book", "generate", "--accounts", "40", "--seed", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "truth.json").read_text())
    lines = (out / "requests.jsonl").read_text().splitlines()
    assert len(truth["accounts"]) == 40
    assert {a["play"] for a in truth["accounts"].values()} >= {None, "save_play", "cross_sell"}
    assert {json.loads(line)["source"] for line in lines} == {
        "hubspot",
        "salesforce",
        "stripe",
        "chargebee",
        "segment",
    }
