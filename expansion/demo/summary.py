"""What the demo prints once the book is processed: the top of the ranked book, the tasks the
writers created per owner, the API calls they spent per CRM, and precision/recall against the
book's planted truth."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy import func, select

from board.queries import Filters, RankedAccount, ranked
from expansion.book import Book
from expansion.book.accuracy import check, render
from expansion.book.model import Owner
from expansion.cli import table
from expansion.db import transaction
from expansion.demo.crm import CRMS, CrmActivity
from expansion.inbox_admin import STATUSES
from expansion.models import inbox_events
from expansion.settings import Settings
from workers.play_rules import play_rules

ROLE_LABELS = {"csm": "CSM", "ae": "AE", "cs_manager": "CS manager", "vp_cs": "VP of CS"}


def people(book: Book) -> dict[str, Owner]:
    """The book's owners by their id in either CRM (the ids plays and tasks are assigned to)."""
    found: dict[str, Owner] = {}
    for account in book.accounts:
        for owner in (account.csm, account.ae, account.manager, account.vp):
            found[owner.salesforce_id] = found[owner.hubspot_id] = owner
    return found


def inbox(settings: Settings) -> str:
    with transaction(settings) as conn:
        rows = conn.execute(
            select(inbox_events.c.source, inbox_events.c.status, func.count()).group_by(
                inbox_events.c.source, inbox_events.c.status
            )
        ).all()
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for source, status, n in rows:
        counts[source][status] = n
    return table(
        ["source", *STATUSES],
        [[source, *(by.get(s, 0) for s in STATUSES)] for source, by in sorted(counts.items())],
    )


def top_accounts(settings: Settings, book: Book, today: date, limit: int = 10) -> str:
    with transaction(settings) as conn:
        page = ranked(conn, Filters(per_page=limit), play_rules(settings), today)
    names = people(book)
    rows = [_account_row(row, names) for row in page.rows]
    headers = ["#", "account", "readiness", "health", "top signal", "play", "owner", "next due"]
    return f"{table(headers, rows)}\n({page.total:,} accounts scored)"


def _account_row(row: RankedAccount, names: dict[str, Owner]) -> list[object]:
    owner = names.get(row.owner or "")
    due = row.next_step.due_on.isoformat() if row.next_step else None
    health = "-" if row.health_score is None else f"{row.health_score:.0f} {row.health_band}"
    return [
        row.rank,
        row.name,
        f"{row.readiness_score:.0f} {row.readiness_band}",
        health,
        row.top_signal["name"] if row.top_signal else None,
        row.play.play if row.play else None,
        owner.name if owner else row.owner,
        due,
    ]


def tasks_per_owner(activity: CrmActivity, book: Book) -> str:
    names = people(book)
    by_owner: dict[str, dict[str, int]] = defaultdict(dict)
    for (crm, owner_id), n in activity.tasks.items():
        owner = names.get(owner_id)
        label = f"{owner.name} ({ROLE_LABELS[owner.role]})" if owner else owner_id or "(nobody)"
        by_owner[label][crm] = by_owner[label].get(crm, 0) + n
    rows = [
        [label, *(by.get(crm, 0) for crm in CRMS), sum(by.values())]
        for label, by in sorted(by_owner.items(), key=lambda item: -sum(item[1].values()))
    ]
    if not rows:
        return "no task was created"
    total = ["total", *(sum(r[i + 1] for r in rows) for i in range(len(CRMS)))]
    return table(["owner", *CRMS, "total"], [*rows, [*total, sum(total[1:])]])


def api_calls(activity: CrmActivity) -> str:
    rows = [
        [
            crm,
            activity.calls.get(crm, 0),
            activity.writes.get(crm, 0),
            activity.daily_limits[crm],
            f"{activity.calls.get(crm, 0) / activity.daily_limits[crm]:.3%}",
        ]
        for crm in CRMS
    ]
    return table(["CRM", "API calls", "writes", "daily quota", "used"], rows)


def accuracy(settings: Settings, book: Book) -> str:
    """Precision and recall of what the pipeline stored (no rescore: the scores as written)."""
    return render(check(settings, book, rescore=False))


def dead_count(settings: Settings) -> int:
    with transaction(settings) as conn:
        return conn.execute(
            select(func.count()).select_from(inbox_events).where(inbox_events.c.status == "dead")
        ).scalar_one()
