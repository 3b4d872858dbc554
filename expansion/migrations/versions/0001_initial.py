"""inbox, accounts, identity and canonical events

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("events_applied", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "inbox_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("dedup_key", sa.String(length=512), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_events")),
        sa.UniqueConstraint("source", "dedup_key", name=op.f("uq_inbox_events_source_dedup_key")),
    )
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_events_status_received_at", ["status", "received_at"], unique=False
        )

    op.create_table(
        "key_aliases",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "external_id", name=op.f("pk_key_aliases")),
    )
    with op.batch_alter_table("key_aliases", schema=None) as batch_op:
        batch_op.create_index("ix_key_aliases_target", ["target_kind", "target_id"], unique=False)

    op.create_table(
        "account_links",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_links_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("kind", "external_id", name=op.f("pk_account_links")),
    )
    with op.batch_alter_table("account_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_links_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "canonical_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("inbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("key_kind", sa.String(length=32), nullable=False),
        sa.Column("key_value", sa.String(length=255), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_canonical_events_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["inbox_id"],
            ["inbox_events.id"],
            name=op.f("fk_canonical_events_inbox_id_inbox_events"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canonical_events")),
        sa.UniqueConstraint("inbox_id", "seq", name=op.f("uq_canonical_events_inbox_id_seq")),
    )
    with op.batch_alter_table("canonical_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_canonical_events_account_type", ["account_id", "type", "occurred_at"], unique=False
        )
        batch_op.create_index(
            "ix_canonical_events_parked", ["status", "key_kind", "key_value"], unique=False
        )

    op.create_table(
        "account_attributes",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_attributes_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["canonical_events.id"],
            name=op.f("fk_account_attributes_event_id_canonical_events"),
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_account_attributes")),
    )


def downgrade() -> None:
    op.drop_table("account_attributes")
    with op.batch_alter_table("canonical_events", schema=None) as batch_op:
        batch_op.drop_index("ix_canonical_events_parked")
        batch_op.drop_index("ix_canonical_events_account_type")

    op.drop_table("canonical_events")
    with op.batch_alter_table("account_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_links_account_id"))

    op.drop_table("account_links")
    with op.batch_alter_table("key_aliases", schema=None) as batch_op:
        batch_op.drop_index("ix_key_aliases_target")

    op.drop_table("key_aliases")
    with op.batch_alter_table("inbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_events_status_received_at")

    op.drop_table("inbox_events")
    op.drop_table("accounts")
