"""`expansion demo` as `make demo` runs it: a fresh VAR_DIR on embedded defaults, the Procfile's
processes, signed events from every source applied, and every process it started stopped again
(also when interrupted)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from expansion import procfile
from expansion.embedded import is_running, stop_embedded_redis
from tests.support import BIN, ROOT, TEST_SECRETS

SOURCES = ("chargebee", "hubspot", "salesforce", "segment", "stripe")


@pytest.fixture
def demo_env() -> Iterator[tuple[dict[str, str], Path]]:
    """The user's environment without secrets or external services, and a fresh VAR_DIR."""
    var_dir = Path(tempfile.mkdtemp(prefix="es-demo-"))  # short: unix socket path limit
    dropped = {*TEST_SECRETS, "DATABASE_URL", "REDIS_URL", "BROKER_URL", "PUBLIC_BASE_URL", "PORT"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["VAR_DIR"] = str(var_dir)
    yield env, var_dir
    stop_embedded_redis(var_dir)  # only does something if the demo failed to
    shutil.rmtree(var_dir, ignore_errors=True)


def started_pids(output: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"^\s+(?:web|worker|beat)\s+pid (\d+)", output, re.M)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def applied_per_source(output: str) -> dict[str, int]:
    section = output.split("Applied: canonical events per type", 1)[1].split("\n\n", 1)[0]
    applied: dict[str, int] = {}
    for line in section.splitlines():
        cells = line.split()
        if cells and cells[0] in SOURCES:
            applied[cells[0]] = applied.get(cells[0], 0) + int(cells[2])
    return applied


def test_procfile_declares_web_worker_and_beat():
    processes = procfile.load()
    assert list(processes) == ["web", "worker", "beat"]
    assert processes["web"].startswith("gunicorn --config python:integration.gunicorn_conf")
    assert "'integration.app:create_app()'" in processes["web"]
    assert "--bind 0.0.0.0:${PORT:-8000}" in processes["web"]
    assert "--workers ${WEB_CONCURRENCY:-2}" in processes["web"]
    assert processes["worker"].startswith("celery -A workers.celery_app:celery_app worker")
    assert processes["beat"].startswith("celery -A workers.celery_app:celery_app beat")
    assert "--schedule=${VAR_DIR:-var}/" in processes["beat"]


@pytest.mark.slow
def test_demo_applies_events_from_every_source_and_stops_what_it_started(demo_env):
    env, var_dir = demo_env
    result = subprocess.run(
        [str(BIN / "expansion"), "demo"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout
    assert result.returncode == 0, f"{output}\n{result.stderr}"
    assert "demo-only secrets (not for production) set for: HUBSPOT_CLIENT_SECRET" in output
    applied = applied_per_source(output)
    assert sorted(applied) == list(SOURCES)
    assert all(count > 0 for count in applied.values()), applied
    assert "Parked: none" in output
    assert re.search(
        r"links: chargebee:\S+, hubspot:\S+, product:\S+, salesforce:\S+, stripe:", output
    )
    pids = started_pids(output)
    assert len(pids) == 3
    assert not any(alive(pid) for pid in pids)
    assert not is_running(var_dir)


@pytest.mark.slow
def test_ctrl_c_stops_every_process_the_demo_started(demo_env):
    env, var_dir = demo_env
    demo = subprocess.Popen(
        [str(BIN / "expansion"), "demo"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert demo.stdout is not None
    for line in demo.stdout:
        lines.append(line)
        if "web answers" in line:
            break
    demo.send_signal(signal.SIGINT)
    rest, errors = demo.communicate(timeout=60)
    output = "".join(lines) + rest
    assert demo.returncode == 130, f"{output}\n{errors}"
    assert "interrupted; stopping what the demo started" in errors
    pids = started_pids(output)
    assert len(pids) == 3
    assert not any(alive(pid) for pid in pids)
    assert not is_running(var_dir)
