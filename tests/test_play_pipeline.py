"""Plays inside the real pipeline: signed HubSpot webhooks posted to the app, ingested and
recomputed by a real Celery worker process, open a play whose first task lands in the outbox."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from expansion.db import transaction
from expansion.play_tables import outbox, play_instances
from tests.support import start_worker, wait_for
from tests.test_recompute import company_change, post_hubspot
from workers import recompute

pytestmark = pytest.mark.slow


def test_a_signed_webhook_ends_as_a_play_task_in_the_outbox(client, env, settings, tmp_path):
    broker = recompute.redis_client(settings)
    broker.delete("celery", *broker.keys(f"{recompute.KEY_PREFIX}:*"))
    worker = start_worker({**env, "RECOMPUTE_DEBOUNCE_SECONDS": "0.2"}, tmp_path / "worker.log")
    try:
        post_hubspot(
            client,
            [
                company_change(3816292001, 0, propertyName="csm_owner", propertyValue="csm-7"),
                company_change(
                    3816292002, 0, propertyName="csm_sentiment", propertyValue="at_risk"
                ),
            ],
        )

        def task_queued() -> bool:
            with transaction(settings) as conn:
                return (
                    conn.execute(select(outbox.c.id).where(outbox.c.kind == "create_task")).first()
                    is not None
                )

        wait_for(task_queued, 30, "the play's first task in the outbox")
    finally:
        worker.stop()
    with transaction(settings) as conn:
        (play,) = conn.execute(select(play_instances)).mappings().all()
        intents = conn.execute(select(outbox).order_by(outbox.c.id)).mappings().all()
    assert (play["play"], play["state"], play["owner"]) == ("save_play", "opened", "csm-7")
    (task,) = [i for i in intents if i["kind"] == "create_task"]
    assert (task["crm"], task["crm_id"]) == ("hubspot", str(company_change(0, 0)["objectId"]))
    assert task["payload"]["owner"] == "csm-7"
    assert task["payload"]["step"] == "exec_sponsor_reengagement"
    assert "CSM sentiment at_risk" in task["payload"]["body"]
    fields = [i["payload"]["fields"] for i in intents if i["kind"] == "set_fields"]
    assert fields[-1]["recommended_play"] == "Save play"
    assert fields[-1]["health_band"] in ("yellow", "red")
