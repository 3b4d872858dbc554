"""play steps: the CRM's own id of a step's task, recorded when a writer confirms its creation

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("play_steps", sa.Column("crm_task_id", sa.String(length=255), nullable=True))
    op.create_index("ix_play_steps_crm_task_id", "play_steps", ["crm_task_id"])


def downgrade() -> None:
    op.drop_index("ix_play_steps_crm_task_id", table_name="play_steps")
    op.drop_column("play_steps", "crm_task_id")
