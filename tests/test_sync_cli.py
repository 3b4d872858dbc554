"""The writers' admin commands: `expansion mappings check` (the YAML, then the live schema of
the sandbox through the real client libraries), `expansion sync --dry-run` (what would be
written, nothing sent) and `expansion outbox list` (dead CRM writes with the CRM's reason)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from expansion.cli import main
from expansion.settings import Settings
from tests.sandbox_support import sandbox_fixture
from tests.writer_support import (
    api_requests,
    link_of,
    queue_fields,
    queue_task,
    seed_accounts,
    statuses,
    writer_env,
    writer_settings,
)

crm_sandbox = sandbox_fixture()


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def broken_mappings(settings: Settings, tmp_path: Path, crm: str, old: str, new: str) -> str:
    shutil.copytree(settings.mappings_dir, tmp_path / "mappings")
    path = tmp_path / "mappings" / f"{crm}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return str(tmp_path / "mappings")


def test_mappings_check_passes_offline_and_warns_about_unmapped_outputs(env, settings, tmp_path):  # type: ignore[no-untyped-def]
    result = run(env, "mappings", "check", "--offline")
    assert result.exit_code == 0, result.output
    assert "are valid" in result.output
    assert "warning" not in result.output  # every output the workers write is mapped
    mappings = broken_mappings(
        settings, tmp_path, "hubspot", "in_product_prompt: {field: es_in_product_prompt", "#"
    )
    result = run({**env, "MAPPINGS_DIR": mappings}, "mappings", "check", "--offline")
    assert result.exit_code == 0, result.output
    assert "hubspot.yaml: outputs not mapped, so never written to hubspot: in_product_prompt" in (
        result.output
    )


def test_mappings_check_names_file_key_path_and_expectation(env, settings, tmp_path):  # type: ignore[no-untyped-def]
    mappings = broken_mappings(
        settings, tmp_path, "hubspot", "type_id: 192", "type_id: one-nine-two"
    )
    result = run({**env, "MAPPINGS_DIR": mappings}, "mappings", "check")
    assert result.exit_code == 1
    assert f"{mappings}/hubspot.yaml" in result.output
    assert "outbound.task.association.type_id: Input should be a valid integer" in result.output


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_mappings_check_reads_the_live_schema(env, settings, crm_sandbox, crm, tmp_path):  # type: ignore[no-untyped-def]
    live = writer_env(env, crm_sandbox, crm)
    result = run(live, "mappings", "check")
    assert result.exit_code == 0, result.output
    assert f"{crm}: every mapped field exists, fits and is writable" in result.output
    field = {"salesforce": "Health_Score__c", "hubspot": "es_health_score"}[crm]
    mappings = broken_mappings(
        settings, tmp_path, crm, f"{field}, type: number", f"{field}, type: date"
    )
    result = run({**live, "MAPPINGS_DIR": mappings}, "mappings", "check")
    assert result.exit_code == 1
    assert "outbound.account.fields.health_score: " in result.output
    assert "date needs one of ['date'" in result.output


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_dry_run_prints_fields_and_tasks_and_writes_nothing(env, settings, crm_sandbox, crm):  # type: ignore[no-untyped-def]
    config = writer_settings(settings, crm_sandbox, crm)
    first, second = seed_accounts(config, crm_sandbox, crm, 2)
    queue_fields(config, [first, second], {"readiness_score": 64, "health_band": "green"})
    queue_task(config, first, "es-play-3-step-0", "owner-1")
    before = len(api_requests(crm_sandbox, crm))
    result = run(writer_env(env, crm_sandbox, crm), "sync", "--dry-run", "--account", str(first))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{crm}: 1 record(s) to update, 1 task(s) to create")
    assert f"  update {link_of(config, first)}:" in lines
    assert link_of(config, second) not in result.output
    assert f"  create task es-play-3-step-0 on {link_of(config, first)}:" in lines
    assert len(api_requests(crm_sandbox, crm)) == before
    assert statuses(config) == {"pending": 3}


def test_outbox_list_shows_dead_writes_with_the_crms_reason(env, settings, crm_sandbox, tmp_path):  # type: ignore[no-untyped-def]
    mappings = broken_mappings(
        settings, tmp_path, "hubspot", "field: es_health_band,", "field: es_no_such_band,"
    )
    live = {**writer_env(env, crm_sandbox, "hubspot"), "MAPPINGS_DIR": mappings}
    config = writer_settings(settings, crm_sandbox, "hubspot")
    [account] = seed_accounts(config, crm_sandbox, "hubspot", 1)
    queue_fields(config, [account], {"health_band": "red"})
    result = run(live, "sync")
    assert "hubspot: 0 sent, 0 unchanged, 0 failed (retried later), 1 dead" in result.output
    result = run(live, "outbox", "list")
    assert result.exit_code == 0
    assert "set_fields" in result.output and "dead" in result.output
    assert "es_no_such_band" in result.output
