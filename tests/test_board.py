"""The board (board/): admin token, the ranked book with its owner and play filters and paging,
an account's evidence, plays and charts, and the §8 scoreboard, on a book built through the
product's own paths (canonical events applied by ingest, recomputes that score and open plays,
CRM task completions and closed deals as events, the SLA sweep)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from board import create_app
from expansion.db import transaction
from expansion.models import account_current_scores, account_scores, accounts, metadata
from expansion.play_tables import play_instances, play_steps
from expansion.scores_admin import explain
from expansion.settings import Settings
from integration.canonical import AccountKey, CanonicalEvent
from tests.state_support import apply_all, at, event
from workers import play_step, recompute
from workers.scoring import render_explanation

TOKEN = "board-test-token-0123456789"
NOW = at(104)  # Monday 2026-06-15, 12:00 UTC
SCORED_ON = (40, 55, 70, 85, 100)  # days the book is recomputed on, as the debounce would


@dataclass(frozen=True)
class Spec:
    """One account of the test book: who owns it and what its product usage looks like."""

    hubspot_id: str
    name: str
    csm: str
    seats: int
    users_from_start: int
    users_joining: int  # more users, joining evenly between day 40 and day 90
    api_start: float  # API calls per day on day 0, growing exponentially to api_end on day 100
    api_end: float
    nps: int
    sentiment: str
    unpaid: bool = False  # failed invoices and open P1 tickets

    @property
    def key(self) -> AccountKey:
        return AccountKey("hubspot", self.hubspot_id)


NORTHWIND = Spec("2001", "Northwind", "csm-ana", 20, 8, 11, 500, 4000, 9, "positive")
CONTOSO = Spec("2002", "Contoso", "csm-ben", 50, 12, 0, 800, 900, 6, "neutral")
FABRIKAM = Spec("2003", "Fabrikam", "csm-ana", 30, 3, 0, 200, 150, 2, "negative", unpaid=True)
GLOBEX = Spec("2004", "Globex", "csm-cy", 10, 5, 4, 300, 3000, 9, "positive")
BOOK = (NORTHWIND, CONTOSO, FABRIKAM, GLOBEX)


def account_events(spec: Spec, first: int, last: int) -> list[CanonicalEvent]:
    """The account's events from day `first` to day `last` (inclusive)."""
    key, events = spec.key, []
    if first == 0:
        events += [
            event(
                "account.changed",
                at(0),
                key,
                name=spec.name,
                csm_owner=spec.csm,
                account_owner="ae-1",
                owner_manager="mgr-1",
                csm_sentiment=spec.sentiment,
                last_meaningful_interaction_at=at(0).isoformat(),
            ),
            event(
                "subscription.changed",
                at(0),
                key,
                subscription_id=f"sub_{spec.hubspot_id}",
                status="active",
                seats=spec.seats,
                tier="growth",
                currency="usd",
                arr=spec.seats * 1200.0,
                renewal_at="2026-12-31T00:00:00+00:00",
                cancel_at_period_end=False,
            ),
        ]
    joins = [0] * spec.users_from_start + [
        40 + round(50 * i / max(spec.users_joining - 1, 1)) for i in range(spec.users_joining)
    ]
    for number, joined in enumerate(joins):
        for day in range(max(joined, first), last + 1):
            if (day - joined) % 3 == 0:
                events.append(event("user.active", at(day, 9), key, user_id=f"u{number}"))
    growth = (spec.api_end / spec.api_start) ** (1 / 100)
    for day in range(first, last + 1):
        calls = round(spec.api_start * growth**day * (0.4 if day % 7 in (5, 6) else 1.0))
        events.append(
            event("usage.reported", at(day, 23), key, metric="api_calls", value=calls, period="day")
        )
        if day % 30 == 5:
            events += _billing(spec, day)
    if first <= 80 <= last:
        events.append(event("nps.response", at(80), key, score=spec.nps, user_id="u0"))
    return events


def _billing(spec: Spec, day: int) -> list[CanonicalEvent]:
    invoice = dict(invoice_id=f"in_{spec.hubspot_id}_{day}", amount=spec.seats * 100.0)
    if not spec.unpaid:
        return [event("invoice.paid", at(day), spec.key, **invoice)]
    return [
        event("invoice.payment_failed", at(day), spec.key, **invoice),
        event(
            "ticket.created",
            at(day),
            spec.key,
            ticket_id=f"t{day}",
            subject="Sync outage",
            text="Nothing syncs since this morning",
            priority="URGENT",
        ),
    ]


@dataclass
class Book:
    ids: dict[str, int]  # account name -> id


def build_book(settings: Settings) -> Book:
    """Events in slices, each slice's accounts recomputed at its end (plays open there); then
    Globex's first task is completed in the CRM, a won deal closes its play, and the SLA sweep
    runs. The clock stands at each moment, as ingest reads it."""
    previous = -1
    for day in SCORED_ON:
        with time_machine.travel(at(day, 23, 30)):
            for spec in BOOK:
                apply_all(settings, account_events(spec, previous + 1, day))
            for account_id in _ids(settings).values():
                recompute.recompute_account(settings, account_id, at(day, 23, 30))
        previous = day
    ids = _ids(settings)
    with time_machine.travel(at(101, 15)):
        first_task = _first_task(settings, ids["Globex"])
        done = event("task.changed", at(101, 15), GLOBEX.key, expansion_key=first_task)
        apply_all(settings, [done])
    with time_machine.travel(at(102, 15)):
        won = event("deal.closed", at(102, 15), GLOBEX.key, deal_id="d-1", amount=12000, won=True)
        apply_all(settings, [won])
    with time_machine.travel(NOW):
        play_step.sweep(settings, NOW)
    return Book(ids)


def _ids(settings: Settings) -> dict[str, int]:
    with transaction(settings) as conn:
        return {name: id_ for id_, name in conn.execute(select(accounts.c.id, accounts.c.name))}


def _first_task(settings: Settings, account_id: int) -> str:
    with transaction(settings) as conn:
        return conn.execute(
            select(play_steps.c.task_key)
            .join(play_instances, play_instances.c.id == play_steps.c.play_id)
            .where(
                play_instances.c.account_id == account_id,
                play_instances.c.play == "seat_expansion",
                play_steps.c.step_index == 0,
            )
        ).scalar_one()


def empty_tables(settings: Settings) -> None:
    """What the `settings` fixture does after each test, for the module-wide book."""
    with transaction(settings) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


def book_for_module(session_settings: Settings) -> Iterator[Settings]:
    """The book, built once for a module (it takes seconds), with the token set; the tables
    are emptied after the module, as the `settings` fixture empties them after a test."""
    settings = dataclasses.replace(session_settings, board_token=TOKEN)
    empty_tables(settings)
    build_book(settings)
    yield settings
    empty_tables(settings)


@pytest.fixture(scope="module")
def book_settings(session_settings: Settings) -> Iterator[Settings]:
    yield from book_for_module(session_settings)


@pytest.fixture(scope="module")
def book(book_settings: Settings) -> Book:
    return Book(_ids(book_settings))


@pytest.fixture(scope="module")
def board_app(book_settings: Settings) -> Flask:
    app = create_app(book_settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def admin(board_app: Flask) -> Iterator[FlaskClient]:
    """A logged-in client, on the day after the book's last events."""
    client = board_app.test_client()
    with time_machine.travel(NOW, tick=False):
        assert client.post("/login", data={"token": TOKEN}).status_code == 302
        yield client


def rows(html: str) -> list[int]:
    """Account ids of the ranked table, in order."""
    return [int(found) for found in re.findall(r'<tr data-account-id="(\d+)">', html)]


def row_html(html: str, account_id: int) -> str:
    return html.split(f'<tr data-account-id="{account_id}">', 1)[1].split("</tr>", 1)[0]


def text(html: str) -> str:
    """The page's text with tags dropped and whitespace folded (and &amp; etc. kept)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def current(settings: Settings, account_id: int) -> dict[str, Any]:
    with transaction(settings) as conn:
        row = conn.execute(
            select(account_scores)
            .join(account_current_scores, account_current_scores.c.score_id == account_scores.c.id)
            .where(account_current_scores.c.account_id == account_id)
        ).mappings()
        return dict(row.one())


# --- the ranked book ---------------------------------------------------------------------------


def test_accounts_are_ranked_by_readiness_then_health(admin, book, book_settings):
    html = admin.get("/").get_data(as_text=True)
    with transaction(book_settings) as conn:
        expected = conn.execute(
            select(account_current_scores.c.account_id).order_by(
                account_current_scores.c.readiness_score.desc(),
                account_current_scores.c.health_score.desc(),
            )
        ).scalars()
        assert rows(html) == list(expected)
    ids = book.ids
    assert rows(html) == [ids["Globex"], ids["Northwind"], ids["Contoso"], ids["Fabrikam"]]
    assert "4 scored accounts" in html


def test_a_row_shows_bars_bands_the_top_signal_with_numbers_the_play_owner_and_due_date(
    admin, book, book_settings
):
    northwind = book.ids["Northwind"]
    row = row_html(admin.get("/").get_data(as_text=True), northwind)
    score = current(book_settings, northwind)
    top = score["signals"][0]
    assert top["name"] == "seat_utilization"
    assert top["evidence"].startswith("19 of 20 seats active (95%), up from 9 (45%) 60 days ago")
    assert top["evidence"] in text(row)
    assert "Seat utilization" in row and f"{top['strength']:.2f}" in row
    # Bars: an SVG per score, filled to the score, coloured by the band.
    assert f'width="{score["readiness_score"]:.1f}"' in row
    assert 'class="fill band-warm"' in row and 'class="fill band-green"' in row
    assert f">{score['readiness_score']:g}<" in row and f">{score['health_score']:g}<" in row
    # Seat expansion and tier upsell both run; the older one is shown, with its owner and the
    # earliest open step: the utilization report, due 2026-05-28 and past due by now.
    assert "Seat expansion" in row and "csm-ana" in row and ">CSM<" in row
    assert "2026-05-28" in row and "utilization report" in row and "past due" in row
    globex = row_html(admin.get("/").get_data(as_text=True), book.ids["Globex"])
    assert "Tier upsell" in globex and "first step open" in globex and "csm-cy" in globex


def test_the_owner_filter_shows_a_csms_accounts(admin, book):
    ids = book.ids
    for owner, names in {
        "csm-ana": ["Northwind", "Fabrikam"],
        "csm-cy": ["Globex"],
        "ae-1": ["Globex", "Northwind", "Contoso", "Fabrikam"],  # the AE of every account
        "nobody": [],
    }.items():
        html = admin.get(f"/?owner={owner}").get_data(as_text=True)
        assert rows(html) == [ids[name] for name in names], owner
    assert "No account matches these filters." in admin.get("/?owner=nobody").get_data(as_text=True)
    options = re.findall(r'<option value="([^"]+)"', admin.get("/").get_data(as_text=True))
    assert {"csm-ana", "csm-ben", "csm-cy", "ae-1"} <= set(options)


def test_the_play_filter_shows_accounts_running_that_play(admin, book):
    ids = book.ids
    assert rows(admin.get("/?play=seat_expansion").get_data(as_text=True)) == [ids["Northwind"]]
    assert rows(admin.get("/?play=save_play").get_data(as_text=True)) == [
        ids["Contoso"],
        ids["Fabrikam"],
    ]
    both = admin.get("/?play=save_play&owner=csm-ana").get_data(as_text=True)
    assert rows(both) == [ids["Fabrikam"]]
    assert "Save play" in row_html(both, ids["Fabrikam"])
    bad = admin.get("/?play=upsell_everyone")
    assert bad.status_code == 400 and "unknown play &#39;upsell_everyone&#39;" in bad.get_data(
        as_text=True
    )
    api = admin.get("/api/accounts?play=upsell_everyone")
    assert api.status_code == 400 and api.get_json()["error"] == "bad_request"
    assert api.get_json()["detail"].startswith("unknown play 'upsell_everyone'; known: ")


def test_a_large_book_is_paged(admin, book):
    ids = book.ids
    first = admin.get("/?per=3").get_data(as_text=True)
    assert rows(first) == [ids["Globex"], ids["Northwind"], ids["Contoso"]]
    assert "Page 1 of 2" in first and 'rel="next"' in first
    second = admin.get("/?per=3&page=2").get_data(as_text=True)
    assert rows(second) == [ids["Fabrikam"]] and "Page 2 of 2" in second
    assert '<td class="num rank">4</td>' in second
    assert rows(admin.get("/?per=3&page=99").get_data(as_text=True)) == [ids["Fabrikam"]]


def test_the_api_lists_the_same_ranking_as_json_for_a_bearer_token(board_app, book):
    client = board_app.test_client()
    with time_machine.travel(NOW, tick=False):
        response = client.get(
            "/api/accounts?owner=csm-ana", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"] == 2
    northwind, fabrikam = body["accounts"]
    assert (northwind["name"], northwind["play"]["play"]) == ("Northwind", "seat_expansion")
    assert northwind["next_step"] == {
        "name": "utilization_report",
        "due_on": "2026-05-28",
        "overdue": True,
    }
    assert fabrikam["health_band"] == "red" and fabrikam["top_signal"] is None


# --- one account -------------------------------------------------------------------------------


def test_the_account_page_shows_the_stored_evidence_as_explain_does(admin, book, book_settings):
    northwind = book.ids["Northwind"]
    html = admin.get(f"/accounts/{northwind}").get_data(as_text=True)
    page = text(html)
    score = current(book_settings, northwind)
    for signal in score["signals"]:
        assert signal["evidence"] in page
    assert "19 of 20 seats active in 30 days (95%)" in page  # the active-users metric
    assert "support no data (weight 20%, renormalized over the others)" in page
    # The stored evidence reads back into the very text `expansion explain` prints.
    explained = explain(book_settings, f"hubspot:{NORTHWIND.hubspot_id}", score["as_of"])
    shown = html.split("<pre>", 1)[1].split("</pre>", 1)[0]
    assert unescape(shown) == render_explanation(explained.assessment)
    assert "hubspot:2001" in page


def test_the_account_page_shows_the_plays_steps_due_dates_and_sla_breaches(admin, book):
    html = admin.get(f"/accounts/{book.ids['Northwind']}").get_data(as_text=True)
    plays = text(html.split('id="plays"', 1)[1])
    assert "Seat expansion" in plays and "Tier upsell" in plays
    assert "utilization report csm-ana 2026-05-28 overdue" in plays
    assert "SLA breaches: 1" in plays
    assert "SLA breach: utilization report (csm-ana) was not done by its due date" in plays
    assert "escalated to mgr-1" in plays
    globex = text(admin.get(f"/accounts/{book.ids['Globex']}").get_data(as_text=True))
    assert "won" in globex and "deal d-1 closed won (12,000.00)" in globex
    assert "utilization report csm-cy 2026-06-12 completed" in globex


def chart(html: str, key: str) -> str:
    return html.split(f'id="chart-{key}"', 1)[1].split("</figure>", 1)[0]


def points(svg: str, series: str = "") -> list[tuple[str, float]]:
    """(day, value) of each data point drawn, of one series (its colour class) if given."""
    pattern = rf'class="(?:bar )?point {series}[^"]*"[^>]*data-date="([\d-]+)" data-value="([^"]+)"'
    return [(day, float(value)) for day, value in re.findall(pattern, svg)]


def test_the_account_page_charts_seats_api_volume_and_health_over_time(admin, book):
    html = admin.get(f"/accounts/{book.ids['Northwind']}").get_data(as_text=True)
    seats = points(chart(html, "seats"))
    # From the first product user (day 0) to the scored day (day 100): active seats in 30
    # days over 20 licensed seats: 8 users (each active on day 0) until others join from day
    # 40, 19 at the end.
    assert len(seats) == 101
    assert seats[0] == ("2026-03-02", 40.0) and seats[39] == ("2026-04-10", 40.0)
    assert seats[-1] == ("2026-06-10", 95.0)
    api = points(chart(html, "api"))
    assert len(api) == 101 and api[0][0] == "2026-03-02"
    assert api[-1] == ("2026-06-10", round(500 * 8 ** (100 / 100)))
    scored = ["2026-04-11", "2026-04-26", "2026-05-11", "2026-05-26", "2026-06-10"]
    health = points(chart(html, "health"), "c-health")
    readiness = points(chart(html, "health"), "c-readiness")
    assert [day for day, _ in health] == [day for day, _ in readiness] == scored
    assert health[-1] == ("2026-06-10", 90.9) and readiness[-1] == ("2026-06-10", 48.05)
    assert readiness[0] == ("2026-04-11", 0.0)
    assert 'class="zone zone-green"' in chart(html, "health")
    assert "signal at 80%" in chart(html, "seats")


def test_an_unknown_account_is_404(admin):
    assert admin.get("/accounts/999999").status_code == 404


# --- §8 ----------------------------------------------------------------------------------------


def test_the_measure_page_scores_the_program_from_stored_outcomes(admin):
    html = admin.get("/measure").get_data(as_text=True)
    section = {
        key: text(html.split(f'id="{key}"', 1)[1].split("</section>", 1)[0])
        for key in (
            "arr-by-signal",
            "conversion-by-play",
            "days-to-close",
            "windows",
            "owners",
            "accuracy",
        )
    }
    assert "$12,000" in text(html.split('id="won-amount"', 1)[1])
    assert "Seat utilization product 1 $12,000" in section["arr-by-signal"]
    assert "Seat expansion 2 1 1 0 0 0 100%" in section["conversion-by-play"]
    assert "Tier upsell 2 2 0 0 0 0 no data" in section["conversion-by-play"]
    assert (
        "Save plays (health yellow or red, not expansion): 3 opened, 2 running, 1 ended"
        in (section["conversion-by-play"])
    )
    # Globex: triggered 2026-06-10 23:30, won 2026-06-12 15:00.
    assert "Seat expansion 1 1.6 1.6" in section["days-to-close"]
    assert "open 4" in section["windows"]
    assert "csm-ana CSM 3" in section["owners"]
    # Both flagged in the last 90 days: Globex expanded, Northwind is still within the window.
    assert "Seat utilization 2 1 1 100%" in section["accuracy"]
