"""plays: play instances, their steps, SLA breaches, deal outcomes and the outbox of CRM writes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Ids: a bigint identity on PostgreSQL, INTEGER PRIMARY KEY on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "play_instances",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("play", sa.String(length=64), nullable=False),
        sa.Column("gate", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owner_role", sa.String(length=32), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("owner_user", sa.String(length=255), nullable=True),
        sa.Column("weekly_cap", sa.Integer(), nullable=True),
        sa.Column("readiness_at_open", sa.Float(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("opened_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("current_step", sa.Integer(), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        _fk("play_instances", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_play_instances")),
    )
    op.create_index("ix_play_instances_account_id_play", "play_instances", ["account_id", "play"])
    op.create_index("ix_play_instances_state", "play_instances", ["state"])
    op.create_index(
        "uq_play_instances_account_id_play_active",
        "play_instances",
        ["account_id", "play"],
        unique=True,
        sqlite_where=sa.text("closed_at IS NULL"),
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_table(
        "play_steps",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("play_id", ID, nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("task_key", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        _fk("play_steps", "play_id", "play_instances"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_play_steps")),
        sa.UniqueConstraint("play_id", "step_index", name=op.f("uq_play_steps_play_id_step_index")),
        sa.UniqueConstraint("task_key", name=op.f("uq_play_steps_task_key")),
    )
    op.create_index("ix_play_steps_status_due_at", "play_steps", ["status", "due_at"])
    op.create_table(
        "sla_breaches",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("play_id", ID, nullable=False),
        sa.Column("step_id", ID, nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("escalation_owner", sa.String(length=255), nullable=True),
        sa.Column("breached_at", TS, nullable=False),
        _fk("sla_breaches", "play_id", "play_instances"),
        _fk("sla_breaches", "step_id", "play_steps"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_breaches")),
        sa.UniqueConstraint("step_id", name=op.f("uq_sla_breaches_step_id")),
    )
    op.create_table(
        "play_outcomes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("play_id", ID, nullable=True),
        sa.Column("play", sa.String(length=64), nullable=True),
        sa.Column("deal_id", sa.String(length=255), nullable=False),
        sa.Column("won", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("closed_at", TS, nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        _fk("play_outcomes", "account_id", "accounts"),
        _fk("play_outcomes", "play_id", "play_instances"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_play_outcomes")),
        sa.UniqueConstraint(
            "account_id", "deal_id", name=op.f("uq_play_outcomes_account_id_deal_id")
        ),
    )
    op.create_table(
        "outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("crm", sa.String(length=32), nullable=True),
        sa.Column("crm_id", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("external_key", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _fk("outbox", "account_id", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])
    op.create_index("ix_outbox_account_id_kind", "outbox", ["account_id", "kind"])
    op.create_index(
        "uq_outbox_create_task_external_key",
        "outbox",
        ["kind", "external_key"],
        unique=True,
        sqlite_where=sa.text("kind = 'create_task'"),
        postgresql_where=sa.text("kind = 'create_task'"),
    )


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("play_outcomes")
    op.drop_table("sla_breaches")
    op.drop_table("play_steps")
    op.drop_table("play_instances")
