"""Database tables: the inbox of received events, accounts and their identity links, the
canonical event log and the current-state attributes built from it."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
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
