"""lz4 for large JSON values on PostgreSQL: score evidence, play plans and evidence, payloads

A first rescore writes a history row with its evidence (3 KB) for every account and a plan
(5-7 KB) for every play it opens; compressing them with the default pglz took about half of
the server's time per history row, lz4 a quarter. Values already stored keep their
compression; a server built without lz4 keeps pglz. SQLite is left as it is.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from alembic import op
from sqlalchemy import text

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = (
    ("account_scores", "evidence"),
    ("play_instances", "plan"),
    ("play_instances", "evidence"),
    ("outbox", "payload"),
)


def _set_compression(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    methods = bind.execute(
        text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
    ).scalar()
    if not methods or method not in methods:
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
