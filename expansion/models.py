"""Database tables: the inbox of received events, accounts and their identity links, the
canonical event log, the current-state attributes built from it and the per-account state the
scores are computed from (workers/rollups.py writes it, workers/state_loader.py reads it), and
the scores with their history (workers/recompute.py)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

inbox_events = Table(
    "inbox_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("dedup_key", String(512), nullable=False),
    Column("event_type", String(128), nullable=False),
    Column("occurred_at", DateTime(timezone=True)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("payload", Text, nullable=False),
    # pending -> processed | ignored | dead; dead rows are the dead-letter queue.
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("swept_at", DateTime(timezone=True)),
    # Set by the drain that took the row; a claim older than the lease counts as none.
    Column("claimed_at", DateTime(timezone=True)),
    Column("processed_at", DateTime(timezone=True)),
    UniqueConstraint("source", "dedup_key"),
    Index("ix_inbox_events_status_received_at", "status", "received_at"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_event_at", DateTime(timezone=True)),
    Column("events_applied", Integer, nullable=False, default=0),
    # +1 in every ingest transaction that changed what the scores read (workers/recompute.py).
    Column("state_version", Integer, nullable=False, default=0, server_default="0"),
)

account_links = Table(
    "account_links",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("external_id", String(255), primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Keys that point at an account through another key (a HubSpot contact -> its company,
# a product user -> its product account) before the account itself is known.
key_aliases = Table(
    "key_aliases",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("external_id", String(255), primary_key=True),
    Column("target_kind", String(32), nullable=False),
    Column("target_id", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_key_aliases_target", "target_kind", "target_id"),
)

canonical_events = Table(
    "canonical_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("inbox_id", ForeignKey("inbox_events.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(64), nullable=False),
    Column("key_kind", String(32), nullable=False),
    Column("key_value", String(255), nullable=False),
    Column("account_id", ForeignKey("accounts.id")),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("data", JSON, nullable=False),
    # applied | parked (waiting for an identity link)
    Column("status", String(16), nullable=False),
    Column("applied_at", DateTime(timezone=True)),
    UniqueConstraint("inbox_id", "seq"),
    Index("ix_canonical_events_account_type", "account_id", "type", "occurred_at"),
    Index("ix_canonical_events_parked", "status", "key_kind", "key_value"),
)

# Latest value per account and attribute, guarded by the time the value was true at.
account_attributes = Table(
    "account_attributes",
    metadata,
    Column("account_id", ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", JSON),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("event_id", ForeignKey("canonical_events.id")),
)


# --- Account state for scoring (SPEC §4). Days are integers: days since 1970-01-01. ----------


def _account_id() -> Column:  # type: ignore[type-arg]
    return Column("account_id", ForeignKey("accounts.id"), primary_key=True)


# One packed row per account and metric: `points[i]` is the value of `start + i` (a day number
# for grain "day", a month number year*12+month-1 for grain "month"); null = not reported.
# Metrics: dau (distinct active users), invites, usage.<metric> (api_calls, storage_gb...).
account_series = Table(
    "account_series",
    metadata,
    _account_id(),
    Column("metric", String(128), primary_key=True),
    Column("grain", String(8), primary_key=True),
    Column("start", Integer, nullable=False),
    Column("points", JSON, nullable=False),
)

account_users = Table(
    "account_users",
    metadata,
    _account_id(),
    Column("user_id", String(255), primary_key=True),
    Column("first_seen", Integer),  # null while the user was only invited
    Column("last_active", Integer),
    # Active days as a little-endian bitmap: bit i = day active_from + i.
    Column("active_from", Integer),
    Column("active_bits", LargeBinary),
    Column("email_domain", String(255)),
    Column("department", String(255)),
    Column("title", String(255)),
    Column("traits_at", DateTime(timezone=True)),
    Column("invited_on", Integer),
)

# `users` maps user id -> [first day, last day] the user used the feature.
account_features = Table(
    "account_features",
    metadata,
    _account_id(),
    Column("feature", String(255), primary_key=True),
    Column("tier", String(64)),
    Column("category", String(128)),
    Column("first_used", Integer, nullable=False),
    Column("last_used", Integer, nullable=False),
    Column("users", JSON, nullable=False),
)

account_integrations = Table(
    "account_integrations",
    metadata,
    _account_id(),
    Column("name", String(255), primary_key=True),
    Column("category", String(128)),
    Column("connected_on", Integer, nullable=False),
)

# One row per feature, user (empty string when anonymous) and day.
account_teaser_clicks = Table(
    "account_teaser_clicks",
    metadata,
    _account_id(),
    Column("day", Integer, primary_key=True),
    Column("feature", String(255), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("tier", String(64)),
)

# One row per limit and day, with the highest usage reported that day.
account_limit_hits = Table(
    "account_limit_hits",
    metadata,
    _account_id(),
    Column("limit_name", String(128), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("usage", Float),
    Column("cap", Float),
)

# Priority and status as the source sent them (the loader normalizes them through
# mappings/state.yaml); field_at holds when each field was last set (late events lose).
account_tickets = Table(
    "account_tickets",
    metadata,
    _account_id(),
    Column("ticket_id", String(255), primary_key=True),
    Column("created_on", Integer, nullable=False),
    Column("last_on", Integer, nullable=False),
    Column("subject", Text),
    Column("text", Text),
    Column("priority", String(64)),
    Column("status", String(64)),
    Column("closed", Boolean),
    Column("status_on", Integer),  # the day status or closed last changed
    Column("csat", Float),
    Column("field_at", JSON, nullable=False),
)

# title_history: [[day, title], ...] oldest first.
account_contacts = Table(
    "account_contacts",
    metadata,
    _account_id(),
    Column("contact_id", String(255), primary_key=True),
    Column("title", String(255)),
    Column("title_history", JSON, nullable=False),
    Column("role", String(255)),
    Column("champion", Boolean),
    Column("exec_sponsor", Boolean),
    Column("left_company", Boolean),
    Column("last_engaged_on", Integer),
    Column("last_on", Integer, nullable=False),
    Column("field_at", JSON, nullable=False),
)

account_nps = Table(
    "account_nps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("day", Integer, nullable=False),
    Column("score", Integer, nullable=False),
    Column("respondent", String(255)),
    Column("comment", Text),
    Index("ix_account_nps_account_id_day", "account_id", "day"),
)

# One row per invoice and outcome (paid | failed), at the first day of that outcome.
account_invoices = Table(
    "account_invoices",
    metadata,
    _account_id(),
    Column("invoice_id", String(255), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("day", Integer, nullable=False),
    Column("amount", Float),
)

# The latest subscription snapshot; seat_changes: [[ISO time, seats], ...] oldest first.
account_subscriptions = Table(
    "account_subscriptions",
    metadata,
    _account_id(),
    Column("subscription_id", String(255)),
    Column("tier", String(64)),
    Column("seats", Integer),
    Column("arr", Float),
    Column("currency", String(8)),
    Column("renewal_on", Integer),
    Column("status", String(32)),
    Column("cancel_at_period_end", Boolean),
    Column("as_of", DateTime(timezone=True), nullable=False),
    Column("seat_changes", JSON, nullable=False),
)

# The last value of each CRM field per day (current values live in account_attributes).
account_crm_history = Table(
    "account_crm_history",
    metadata,
    _account_id(),
    Column("name", String(255), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("value", JSON),
    Column("as_of", DateTime(timezone=True), nullable=False),
)


# --- Scores (SPEC §4.4), written by workers/recompute.py ---------------------------------------

# History: a row whenever an account's result changed (see workers/recompute.py for what
# counts), with the evidence behind it and the run that computed it.
account_scores = Table(
    "account_scores",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("as_of", Date, nullable=False),  # the account's "today" the scores are for
    Column("state_version", Integer, nullable=False),  # accounts.state_version it was read at
    Column("reason", String(16), nullable=False),  # recompute | rescore
    # The run that computed it: from before the load to the end of the scoring (then stored).
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("health_score", Float),  # null: no dimension had data
    Column("health_band", String(16), nullable=False),
    Column("health_trend", String(16), nullable=False),
    Column("health_change", Float),
    Column("readiness_score", Float, nullable=False),
    Column("readiness_band", String(16), nullable=False),
    Column("gate", String(16), nullable=False),  # expansion | save_play | hold
    # open | closing | renewal_pressure | unknown
    Column("timing_window", String(24), nullable=False),
    Column("days_to_renewal", Integer),
    # [{name, category, strength, evidence}], strongest first.
    Column("signals", JSON, nullable=False),
    Column("evidence", JSON, nullable=False),  # health, readiness and signals in full
    Column("fingerprint", String(64), nullable=False),
    Index("ix_account_scores_account_id_computed_at", "account_id", "computed_at"),
)

# The latest result per account, for queries over the whole book; `score_id` is the history
# row that holds it, `computed_at` the last time it was (re)confirmed.
account_current_scores = Table(
    "account_current_scores",
    metadata,
    Column("account_id", ForeignKey("accounts.id"), primary_key=True),
    Column("score_id", ForeignKey("account_scores.id"), nullable=False),
    Column("state_version", Integer, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("health_score", Float),
    Column("health_band", String(16), nullable=False),
    Column("readiness_score", Float, nullable=False),
    Column("readiness_band", String(16), nullable=False),
    Column("gate", String(16), nullable=False),
    Column("timing_window", String(24), nullable=False),
    Column("fingerprint", String(64), nullable=False),
)

# Plays and the outbox, and the CRM writers' tables, live in their own modules on this metadata;
# imported here so alembic and the tests see every table.
from expansion import crm_tables, play_tables  # noqa: E402, F401
