"""crm writer: the delta snapshot of confirmed CRM field values and the records it created

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "crm_snapshots",
        sa.Column("crm", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=16), nullable=False),
        sa.Column("record_key", sa.String(length=255), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("written_at", TS, nullable=False),
        sa.PrimaryKeyConstraint(
            "crm", "object", "record_key", "field", name=op.f("pk_crm_snapshots")
        ),
    )
    op.create_table(
        "crm_records",
        sa.Column("crm", sa.String(length=32), nullable=False),
        sa.Column("object", sa.String(length=16), nullable=False),
        sa.Column("record_key", sa.String(length=255), nullable=False),
        sa.Column("crm_id", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("crm", "object", "record_key", name=op.f("pk_crm_records")),
    )
    op.create_index("ix_crm_records_state", "crm_records", ["state"])


def downgrade() -> None:
    op.drop_table("crm_records")
    op.drop_table("crm_snapshots")
