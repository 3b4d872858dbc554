"""`expansion explain` and `expansion rescore` on accounts built from real canonical events:
the explanation's numbers, finding an account by every kind of key, an unknown account, and a
rescore of the whole book."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from click.testing import CliRunner, Result
from sqlalchemy import select

from expansion.cli import main
from expansion.db import transaction
from expansion.models import account_current_scores, account_scores
from integration.canonical import AccountKey, Alias, CanonicalEvent
from integration.salesforce_ids import id18
from tests.state_support import DAY0, account_id, apply_all, at, event
from workers.recompute import AccountLock

AS_OF = DAY0 + timedelta(days=59)  # 2026-04-30
RENEWAL = AS_OF + timedelta(days=120)  # 2026-08-28
SALESFORCE_15 = "001Hs00002AbCdE"
LINKS = (
    AccountKey("salesforce", SALESFORCE_15),
    AccountKey("stripe", "cus_Acme42"),
    AccountKey("chargebee", "AzZiAcme"),
    AccountKey("product", "acme-workspace"),
)
PRODUCT = AccountKey("product", "acme-workspace")


@pytest.fixture
def cli(env: dict[str, str]):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def active(user: str, day: int) -> CanonicalEvent:
    """A product user active on DAY0 + day, routed to the account through its alias."""
    return dataclasses.replace(
        event("user.active", at(day), PRODUCT, user_id=user, email_domain="acme.example"),
        aliases=(Alias(AccountKey("product_user", user), PRODUCT),),
    )


def acme_history() -> list[CanonicalEvent]:
    """Ten seats, six users active every week, three more new in the last ten days, a promoter,
    a paid invoice and a renewal 120 days after AS_OF."""
    history = [
        dataclasses.replace(
            event(
                "account.changed",
                at(0),
                name="Acme Analytics",
                csm_sentiment="positive",
                employees=400,
            ),
            links=LINKS,
        ),
        event(
            "subscription.changed",
            at(0),
            AccountKey("stripe", "cus_Acme42"),
            subscription_id="sub_acme",
            status="active",
            seats=10,
            tier="growth",
            currency="usd",
            arr=12000,
            renewal_at=f"{RENEWAL.isoformat()}T00:00:00+00:00",
            cancel_at_period_end=False,
        ),
        event("nps.response", at(30), PRODUCT, score=9, user_id="u1"),
        event(
            "invoice.paid",
            at(5),
            AccountKey("stripe", "cus_Acme42"),
            invoice_id="in_1",
            amount=1000,
        ),
    ]
    history += [active(f"u{n}", day) for n in range(1, 7) for day in range(0, 60, 7)]
    history += [active(user, day) for user, day in (("u7", 50), ("u8", 52), ("u9", 55))]
    return history


@pytest.fixture
def acme(settings) -> int:  # type: ignore[no-untyped-def]
    apply_all(settings, acme_history())
    return account_id(settings)


def explain(cli, *args: str) -> Result:  # type: ignore[no-untyped-def]
    return cli("explain", *args, "--as-of", AS_OF.isoformat())


def test_explain_prints_health_readiness_signals_and_window_with_their_numbers(cli, acme):
    result = explain(cli, str(acme))

    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines[0] == f"Acme Analytics (account {acme}), as of 2026-04-30"
    expected = [
        "Health 89.97/100 green; 30-day trend rising: up 12.01 points from 77.96 on 2026-03-31",
        "product 81.79/100 (weight 35%, counts 43.75%)",
        "- active users 100/100: 9 of 10 seats active in 30 days (90%)",
        "- adoption breadth missing: no categorized feature usage recorded",
        "- NPS 100/100: NPS 9.0 average of 1 respondent in 365 days (latest 9 on 2026-04-01)",
        "- CSM sentiment 90/100: CSM sentiment positive",
        "support: no data (weight 20%, renormalized over the others)",
        "- payment history 100/100: 1 of 1 invoices paid in 365 days",
        "- contract utilization 95/100: 9 of 10 licensed seats in use (90%)",
        "Missing: product: adoption breadth; relationship: exec sponsor activity, champion, "
        "last meaningful interaction; support (no data)",
        "Readiness 38/100 cold",
        "- seat_utilization (product): strength 0.80 x weight 35 = 28 points",
        "9 of 10 seats active (90%); at this pace the cap is reached around 2026-05-10",
        "- invite_velocity (product): strength 0.50 x weight 20 = 10 points",
        "3 new active users in the last 14 days (since 2026-04-17), after 0 in the 28 days before",
        "38 points x1 = 38",
        "Gate: open (expansion): health green (89.97): expansion can be surfaced",
        "Window: open: renewal in 120 days (2026-08-28, the end of the billing term): the best "
        "time for an expansion conversation",
    ]
    assert [line for line in expected if line not in lines] == []


def test_explain_json_carries_the_same_scores_as_the_text(cli, acme):
    text = explain(cli, str(acme)).output
    result = explain(cli, str(acme), "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["account_id"], data["name"], data["as_of"]) == (
        acme,
        "Acme Analytics",
        "2026-04-30",
    )
    health, readiness = data["health"], data["readiness"]
    assert f"Health {health['score']:g}/100 {health['band']}" in text
    assert f"Readiness {readiness['score']:g}/100 {readiness['band']}" in text
    assert {s["name"] for s in data["signals"]} >= {"seat_utilization", "invite_velocity"}
    assert readiness["window"] == {
        "name": "open",
        "days_to_renewal": 120,
        "renewal_on": "2026-08-28",
        "reason": readiness["window"]["reason"],
    }
    assert any(line.startswith("support (") for line in health["missing"])


@pytest.mark.parametrize(
    "given",
    [
        "hubspot:1001",
        f"salesforce:{SALESFORCE_15}",
        f"salesforce:{id18(SALESFORCE_15)}",  # either form of a Salesforce id
        "stripe:cus_Acme42",
        "chargebee:AzZiAcme",
        "product:acme-workspace",
        "product_user:u7",  # an alias routes to the account
        "cus_Acme42",  # a bare external id, looked up across kinds
        SALESFORCE_15,
        "Acme Analytics",  # the exact name
    ],
)
def test_explain_finds_the_account_by_any_of_its_keys(cli, acme, given):
    result = explain(cli, given)

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Acme Analytics (account {acme}), as of")


def test_explain_finds_the_account_by_our_id_in_either_form(cli, acme):
    assert explain(cli, f"id:{acme}").output == explain(cli, str(acme)).output


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("Nobody Inc", "no account matches 'Nobody Inc': give our account id, a linked key"),
        ("stripe:cus_unknown", "no account is linked to stripe:cus_unknown"),
        ("id:999999", "there is no account with id 999999"),
    ],
)
def test_an_unknown_account_exits_1_saying_how_to_name_one(cli, acme, given, says):
    result = explain(cli, given)

    assert result.exit_code == 1
    assert says in result.output
    assert "Traceback" not in result.output


def test_a_name_shared_by_two_accounts_is_refused_with_the_candidates(cli, settings, acme):
    other = AccountKey("hubspot", "2002")
    apply_all(settings, [event("account.changed", at(0), other, name="Acme Analytics")])

    result = explain(cli, "Acme Analytics")

    assert result.exit_code == 1
    assert "'Acme Analytics' matches 2 accounts" in result.output
    assert f"account {acme} (Acme Analytics) by account name" in result.output
    assert "Name one as id:N or as kind:value" in result.output


def test_explain_defaults_to_today(cli, acme):
    result = cli("explain", "hubspot:1001")

    assert result.exit_code == 0, result.output
    assert "Acme Analytics" in result.output


def test_explain_refuses_a_malformed_date(cli, acme):
    result = cli("explain", "hubspot:1001", "--as-of", "30/04/2026")

    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output or "%Y-%m-%d" in result.output


# --- rescore ---------------------------------------------------------------------------------


def small_account(crm_id: str, name: str, seats: int, active_users: int) -> list[CanonicalEvent]:
    key = AccountKey("hubspot", crm_id)
    return [
        event("account.changed", at(0), key, name=name, csm_sentiment="neutral"),
        event(
            "subscription.changed",
            at(0),
            key,
            subscription_id=f"sub_{crm_id}",
            status="active",
            seats=seats,
            tier="starter",
            renewal_at=f"{(AS_OF + timedelta(days=30)).isoformat()}T00:00:00+00:00",
        ),
        *(event("user.active", at(55), key, user_id=f"u{n}") for n in range(active_users)),
    ]


@pytest.fixture
def book(settings, acme) -> list[int]:  # type: ignore[no-untyped-def]
    apply_all(settings, small_account("2002", "Globex", seats=5, active_users=1))
    apply_all(settings, small_account("2003", "Initech", seats=8, active_users=8))
    return [
        acme,
        account_id(settings, AccountKey("hubspot", "2002")),
        account_id(settings, AccountKey("hubspot", "2003")),
    ]


@pytest.fixture
def on_as_of():  # type: ignore[no-untyped-def]
    with time_machine.travel(datetime.combine(AS_OF, time(12), UTC), tick=False):
        yield


def stored(settings) -> tuple[list[tuple[int, str]], list[int]]:  # type: ignore[no-untyped-def]
    """(account, reason) of each score history row, and the accounts with a current score."""
    with transaction(settings) as conn:
        history = conn.execute(
            select(account_scores.c.account_id, account_scores.c.reason).order_by(
                account_scores.c.id
            )
        ).all()
        current = conn.execute(
            select(account_current_scores.c.account_id).order_by(
                account_current_scores.c.account_id
            )
        ).scalars()
        return [tuple(row) for row in history], list(current)


def test_rescore_all_scores_every_account_and_prints_the_bands(cli, settings, book, on_as_of):
    result = cli("rescore", "--all")

    assert result.exit_code == 0, result.output
    assert "rescored 3 accounts in " in result.output
    assert "3 changed (new history row), 0 unchanged, 0 skipped" in result.output
    assert "health: green 2, yellow 0, red 1, unknown 0\n" in result.output
    assert "readiness: hot 0, warm 0, cold 3\n" in result.output
    assert stored(settings) == ([(a, "rescore") for a in book], book)

    again = cli("rescore", "--all")

    assert "0 changed (new history row), 3 unchanged" in again.output
    assert stored(settings) == ([(a, "rescore") for a in book], book)


def test_rescore_one_account_stores_its_scores_once(cli, settings, book, on_as_of):
    result = cli("rescore", "Initech")

    assert result.exit_code == 0, result.output
    ((_, reason),), current = stored(settings)
    assert (reason, current) == ("rescore", [book[2]])
    with transaction(settings) as conn:
        score_id = conn.execute(select(account_scores.c.id)).scalar_one()
    first, hint = result.output.splitlines()
    assert first.startswith(f"account {book[2]} (Initech) as of 2026-04-30: health ")
    assert first.endswith(f"; stored as score history row {score_id}")
    assert hint == f"why: `expansion explain {book[2]}`"

    again = cli("rescore", "hubspot:2003")

    assert again.output.splitlines()[0].endswith(f"unchanged since score history row {score_id}")


def test_rescore_leaves_an_account_a_worker_is_recomputing(cli, settings, book):
    lock = AccountLock.for_settings(settings)
    token = lock.acquire(book[0])
    assert token is not None
    try:
        result = cli("rescore", str(book[0]))
    finally:
        lock.release(book[0], token)

    assert result.exit_code == 1
    assert f"account {book[0]} is being recomputed by a worker right now" in result.output
    assert stored(settings) == ([], [])


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        ((), 2, "give one ACCOUNT or --all (not both)"),
        (("Globex", "--all"), 2, "give one ACCOUNT or --all (not both)"),
        (("Nobody Inc",), 1, "no account matches 'Nobody Inc'"),
    ],
)
def test_rescore_needs_one_known_account_or_all(cli, book, args, code, says):
    result = cli("rescore", *args)

    assert result.exit_code == code
    assert says in result.output
