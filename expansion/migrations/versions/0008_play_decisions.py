"""play decisions: the fingerprint of the inputs each account's plays were last decided from

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "play_decisions",
        sa.Column("account_id", ID, autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_play_decisions_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_play_decisions")),
    )


def downgrade() -> None:
    op.drop_table("play_decisions")
