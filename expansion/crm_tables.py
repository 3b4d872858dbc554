"""Tables of the CRM writers (SPEC §6): the last value each CRM confirmed per record field (the
delta snapshot), and the CRM records the writers created, keyed by our external key."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, String, Table

from expansion.models import metadata

# One row per (CRM, object, record, field): the value the CRM confirmed it holds, in the CRM's
# own form. Written only after the CRM confirmed the record; a value equal to it is not sent.
crm_snapshots = Table(
    "crm_snapshots",
    metadata,
    Column("crm", String(32), primary_key=True),
    Column("object", String(16), primary_key=True),  # account | task
    Column("record_key", String(255), primary_key=True),
    Column("field", String(255), primary_key=True),
    Column("value", JSON),
    Column("written_at", DateTime(timezone=True), nullable=False),
)

# A task the writer is creating (state `sending`, committed before the call) or created
# (`created`, with the CRM's id). A task still `sending` after a crash may exist in the CRM:
# it is looked up by its key before it is created again.
crm_records = Table(
    "crm_records",
    metadata,
    Column("crm", String(32), primary_key=True),
    Column("object", String(16), primary_key=True),
    Column("record_key", String(255), primary_key=True),
    Column("crm_id", String(255)),
    Column("state", String(16), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_crm_records_state", "state"),
)
