"""scores: accounts.state_version, the score history with its evidence and the current score

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# accounts.id: a bigint identity on PostgreSQL, INTEGER PRIMARY KEY on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state_version", sa.Integer(), server_default="0", nullable=False)
        )
    op.create_table(
        "account_scores",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("health_score", sa.Float(), nullable=True),
        sa.Column("health_band", sa.String(length=16), nullable=False),
        sa.Column("health_trend", sa.String(length=16), nullable=False),
        sa.Column("health_change", sa.Float(), nullable=True),
        sa.Column("readiness_score", sa.Float(), nullable=False),
        sa.Column("readiness_band", sa.String(length=16), nullable=False),
        sa.Column("gate", sa.String(length=16), nullable=False),
        sa.Column("timing_window", sa.String(length=24), nullable=False),
        sa.Column("days_to_renewal", sa.Integer(), nullable=True),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_scores_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_scores")),
    )
    with op.batch_alter_table("account_scores", schema=None) as batch_op:
        batch_op.create_index(
            "ix_account_scores_account_id_computed_at", ["account_id", "computed_at"], unique=False
        )
    op.create_table(
        "account_current_scores",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("score_id", ID, nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("health_score", sa.Float(), nullable=True),
        sa.Column("health_band", sa.String(length=16), nullable=False),
        sa.Column("readiness_score", sa.Float(), nullable=False),
        sa.Column("readiness_band", sa.String(length=16), nullable=False),
        sa.Column("gate", sa.String(length=16), nullable=False),
        sa.Column("timing_window", sa.String(length=24), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_current_scores_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["score_id"],
            ["account_scores.id"],
            name=op.f("fk_account_current_scores_score_id_account_scores"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_current_scores")),
    )


def downgrade() -> None:
    op.drop_table("account_current_scores")
    with op.batch_alter_table("account_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_account_scores_account_id_computed_at")
    op.drop_table("account_scores")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("state_version")
