"""account state for scoring: packed daily series, users, features, integrations, clicks,
limit hits, tickets, contacts, NPS, invoices, subscriptions and CRM field history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# accounts.id: a bigint identity on PostgreSQL, INTEGER PRIMARY KEY on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "account_contacts",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("contact_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("title_history", sa.JSON(), nullable=False),
        sa.Column("role", sa.String(length=255), nullable=True),
        sa.Column("champion", sa.Boolean(), nullable=True),
        sa.Column("exec_sponsor", sa.Boolean(), nullable=True),
        sa.Column("left_company", sa.Boolean(), nullable=True),
        sa.Column("last_engaged_on", sa.Integer(), nullable=True),
        sa.Column("last_on", sa.Integer(), nullable=False),
        sa.Column("field_at", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_contacts_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "contact_id", name=op.f("pk_account_contacts")),
    )
    op.create_table(
        "account_crm_history",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_crm_history_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "name", "day", name=op.f("pk_account_crm_history")),
    )
    op.create_table(
        "account_features",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("feature", sa.String(length=255), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=128), nullable=True),
        sa.Column("first_used", sa.Integer(), nullable=False),
        sa.Column("last_used", sa.Integer(), nullable=False),
        sa.Column("users", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_features_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "feature", name=op.f("pk_account_features")),
    )
    op.create_table(
        "account_integrations",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("category", sa.String(length=128), nullable=True),
        sa.Column("connected_on", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_integrations_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_account_integrations")),
    )
    op.create_table(
        "account_invoices",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("invoice_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_invoices_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "invoice_id", "status", name=op.f("pk_account_invoices")
        ),
    )
    op.create_table(
        "account_limit_hits",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("limit_name", sa.String(length=128), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("usage", sa.Float(), nullable=True),
        sa.Column("cap", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_limit_hits_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "limit_name", "day", name=op.f("pk_account_limit_hits")
        ),
    )
    op.create_table(
        "account_nps",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("respondent", sa.String(length=255), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_nps_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_nps")),
    )
    with op.batch_alter_table("account_nps", schema=None) as batch_op:
        batch_op.create_index("ix_account_nps_account_id_day", ["account_id", "day"], unique=False)

    op.create_table(
        "account_series",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_series_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "metric", "grain", name=op.f("pk_account_series")),
    )
    op.create_table(
        "account_subscriptions",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("subscription_id", sa.String(length=255), nullable=True),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.Column("seats", sa.Integer(), nullable=True),
        sa.Column("arr", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("renewal_on", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=True),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seat_changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_subscriptions_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_subscriptions")),
    )
    op.create_table(
        "account_teaser_clicks",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("feature", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_teaser_clicks_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint(
            "account_id", "day", "feature", "user_id", name=op.f("pk_account_teaser_clicks")
        ),
    )
    op.create_table(
        "account_tickets",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("ticket_id", sa.String(length=255), nullable=False),
        sa.Column("created_on", sa.Integer(), nullable=False),
        sa.Column("last_on", sa.Integer(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("priority", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=True),
        sa.Column("status_on", sa.Integer(), nullable=True),
        sa.Column("csat", sa.Float(), nullable=True),
        sa.Column("field_at", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_tickets_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "ticket_id", name=op.f("pk_account_tickets")),
    )
    op.create_table(
        "account_users",
        sa.Column("account_id", ID, nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("first_seen", sa.Integer(), nullable=True),
        sa.Column("last_active", sa.Integer(), nullable=True),
        sa.Column("active_from", sa.Integer(), nullable=True),
        sa.Column("active_bits", sa.LargeBinary(), nullable=True),
        sa.Column("email_domain", sa.String(length=255), nullable=True),
        sa.Column("department", sa.String(length=255), nullable=True),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("traits_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invited_on", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_users_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "user_id", name=op.f("pk_account_users")),
    )


def downgrade() -> None:
    op.drop_table("account_users")
    op.drop_table("account_tickets")
    op.drop_table("account_teaser_clicks")
    op.drop_table("account_subscriptions")
    op.drop_table("account_series")
    with op.batch_alter_table("account_nps", schema=None) as batch_op:
        batch_op.drop_index("ix_account_nps_account_id_day")

    op.drop_table("account_nps")
    op.drop_table("account_limit_hits")
    op.drop_table("account_invoices")
    op.drop_table("account_integrations")
    op.drop_table("account_features")
    op.drop_table("account_crm_history")
    op.drop_table("account_contacts")
