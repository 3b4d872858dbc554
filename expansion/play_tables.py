"""Tables of the persisted plays (SPEC §5) and of the outbox of CRM write intents (SPEC §6):
play instances and their steps, SLA breaches, deal outcomes, and the intents the writers send."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from expansion.models import Id, metadata

# State: waitlisted -> opened (at step 0) -> step (at a later step) -> won | lost | stalled |
# closed. `closed_at` is null while the play runs or waits; `opened_at` stays null for a play
# that left the waitlist without running (it sets no cooldown).
play_instances = Table(
    "play_instances",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("play", String(64), nullable=False),
    Column("gate", String(16), nullable=False),  # expansion | save_play
    Column("priority", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner_role", String(32)),
    Column("owner", String(255)),  # user id or fallback queue; null: a product play
    Column("owner_user", String(255)),  # the user id only (weekly cap counts it)
    Column("weekly_cap", Integer),  # the owner's cap when the play counts toward it
    Column("readiness_at_open", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("opened_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("close_reason", Text),
    Column("current_step", Integer, nullable=False, default=0),
    # [{name, category, strength, evidence}] that fired, and the decision's reason and routing.
    Column("signals", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),
    # Every step rendered at open time: key, title, kind, owner, due date and deadline, texts.
    Column("plan", JSON, nullable=False),
    Index("ix_play_instances_account_id_play", "account_id", "play"),
    Index("ix_play_instances_state", "state"),
    # One running or waiting play per account and type, whatever the callers race.
    Index(
        "uq_play_instances_account_id_play_active",
        "account_id",
        "play",
        unique=True,
        sqlite_where=text("closed_at IS NULL"),
        postgresql_where=text("closed_at IS NULL"),
    ),
)

# What each account's plays were last decided from (workers.play_step.play_fingerprint): a
# rescore that finds the same inputs again skips the decision, which would change nothing.
play_decisions = Table(
    "play_decisions",
    metadata,
    Column("account_id", ForeignKey("accounts.id"), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)

# status: open -> completed | overdue (-> completed when done late) | skipped.
play_steps = Table(
    "play_steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("play_id", ForeignKey("play_instances.id"), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # task | fyi | field
    Column("owner", String(255)),
    Column("due_on", Date, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),  # the local end of the due day
    Column("task_key", String(128), nullable=False),
    # The CRM's id of the task, once a writer confirmed creating it (HubSpot's task.changed
    # names the task by it; Salesforce's carries task_key in Expansion_Key__c).
    Column("crm_task_id", String(255)),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    UniqueConstraint("play_id", "step_index"),
    UniqueConstraint("task_key"),
    Index("ix_play_steps_status_due_at", "status", "due_at"),
    Index("ix_play_steps_crm_task_id", "crm_task_id"),
)

sla_breaches = Table(
    "sla_breaches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("play_id", ForeignKey("play_instances.id"), nullable=False),
    Column("step_id", ForeignKey("play_steps.id"), nullable=False),
    Column("owner", String(255)),
    Column("escalation_owner", String(255)),
    Column("breached_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("step_id"),
)

# A closed deal; `play_id` null when no expansion play was open (kept for the base rate).
play_outcomes = Table(
    "play_outcomes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("play_id", ForeignKey("play_instances.id")),
    Column("play", String(64)),
    Column("deal_id", String(255), nullable=False),
    Column("won", Boolean, nullable=False),
    Column("amount", Float),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("signals", JSON, nullable=False),  # the names of the play's trigger signals
    UniqueConstraint("account_id", "deal_id"),
)

# CRM write intents. kind: set_fields | create_task | update_task; status: pending -> sent |
# failed (retried) -> dead after too many attempts. A create_task's external key is unique, so
# a retried play step never makes a second task.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id")),
    Column("crm", String(32)),  # the target hint: salesforce | hubspot, when linked
    Column("crm_id", String(255)),
    Column("kind", String(16), nullable=False),
    Column("external_key", String(255), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("claimed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_outbox_status_id", "status", "id"),
    Index("ix_outbox_account_id_kind", "account_id", "kind"),
    Index(
        "uq_outbox_create_task_external_key",
        "kind",
        "external_key",
        unique=True,
        sqlite_where=text("kind = 'create_task'"),
        postgresql_where=text("kind = 'create_task'"),
    ),
)
