"""The sandbox's CRM screen: open tasks per owner in both CRMs, each with a Complete button that
closes the task as its owner would (and so fires the webhook, like a CSM in the real CRM)."""

from __future__ import annotations

from collections import defaultdict
from html import escape

from flask import Blueprint, Response, redirect

from sandbox.context import Context, ctx
from sandbox.salesforce_records import sf_datetime
from sandbox.store import Row, iso_ms, utcnow

bp = Blueprint("sandbox_page", __name__, url_prefix="/_sandbox")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CRM sandbox: tasks</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>
<body><h1>Tasks per owner</h1>{sections}</body></html>"""


def _owner_names(context: Context) -> dict[str, str]:
    names = {
        f"hubspot:{o['id']}": f"{o['firstName']} {o['lastName']} <{o['email']}>".strip()
        for o in context.store.owners
    }
    for row in context.store.table("salesforce", "User").rows.values():
        first, last = row.values.get("FirstName") or "", row.values.get("LastName") or ""
        names[f"salesforce:{row.id}"] = f"{first} {last} <{row.values.get('Email')}>".strip()
    return names


# crm -> (object, owner field, subject, status, due)
TASK_FIELDS = {
    "hubspot": ("tasks", "hubspot_owner_id", "hs_task_subject", "hs_task_status", "hs_timestamp"),
    "salesforce": ("Task", "OwnerId", "Subject", "Status", "ActivityDate"),
}


def _task_rows(context: Context) -> list[tuple[str, str, Row, str, str, str]]:
    """(owner key, crm, row, subject, status, due) for every task in both CRMs."""
    found = []
    for crm, (name, owner, *shown) in TASK_FIELDS.items():
        for row in context.store.table(crm, name).rows.values():
            subject, status, due = (str(row.values.get(f) or "") for f in shown)
            found.append((f"{crm}:{row.values.get(owner) or ''}", crm, row, subject, status, due))
    return found


@bp.get("/tasks")
def tasks() -> Response:
    context = ctx()
    with context.store.lock:
        names = _owner_names(context)
        by_owner: dict[str, list[str]] = defaultdict(list)
        for owner, crm, row, subject, status, due in _task_rows(context):
            done = status in ("COMPLETED", "Completed")
            button = (
                "done"
                if done
                else f'<form method="post" action="/_sandbox/tasks/{crm}/{row.id}/complete">'
                '<button type="submit">Complete</button></form>'
            )
            by_owner[owner].append(
                f"<tr><td>{crm}</td><td>{escape(row.id)}</td><td>{escape(subject)}</td>"
                f"<td>{escape(status)}</td><td>{escape(due)}</td><td>{button}</td></tr>"
            )
    sections = (
        "".join(
            f"<h2>{escape(names.get(owner, owner))}</h2><table><tr><th>CRM</th><th>Id</th>"
            f"<th>Subject</th><th>Status</th><th>Due</th><th></th></tr>{''.join(rows)}</table>"
            for owner, rows in sorted(by_owner.items())
        )
        or "<p>No tasks yet.</p>"
    )
    return Response(PAGE.format(sections=sections), content_type="text/html; charset=utf-8")


@bp.post("/tasks/<crm>/<task_id>/complete")
def complete(crm: str, task_id: str) -> Response:
    context = ctx()
    store = context.store
    with store.lock:
        if crm == "hubspot":
            row = store.table("hubspot", "tasks").rows.get(task_id)
            if row is None:
                return Response(f"no HubSpot task {task_id}", status=404)
            owner_id = row.values.get("hubspot_owner_id")
            user = next((o["userId"] for o in store.owners if o["id"] == owner_id), 0)
            changes = {"hs_task_status": "COMPLETED", "hs_task_completion_date": iso_ms(utcnow())}
            store.write("hubspot", "tasks", row.id, changes, str(user), lambda: row.id)
        elif crm == "salesforce":
            row = store.table("salesforce", "Task").rows.get(task_id)
            if row is None:
                return Response(f"no Salesforce Task {task_id}", status=404)
            changes = {
                "Status": "Completed",
                "IsClosed": True,
                "CompletedDateTime": sf_datetime(utcnow()),
            }
            owner = row.values.get("OwnerId") or context.config.salesforce_integration_user_id
            store.write("salesforce", "Task", row.id, changes, owner, lambda: row.id)
        else:
            return Response(f"unknown CRM {crm}", status=404)
    return redirect("/_sandbox/tasks", code=303)  # type: ignore[return-value]
