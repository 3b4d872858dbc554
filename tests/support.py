"""Test helpers: the test environment, fixtures on disk, and real processes (worker, gunicorn)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"
BIN = Path(sys.executable).parent

# Secrets the tests sign with; the app reads them from the environment like production.
TEST_SECRETS = {
    "HUBSPOT_CLIENT_SECRET": "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy",
    "HUBSPOT_APP_ID": "4242",
    "HUBSPOT_PORTAL_ID": "62515",
    "SALESFORCE_ORG_ID": "00D000000000062EAA",
    "SALESFORCE_INTEGRATION_USER_ID": "005000000000042AAA",
    "STRIPE_WEBHOOK_SECRET": "whsec_test_expansion_signals",
    "CHARGEBEE_WEBHOOK_USERNAME": "chargebee",
    "CHARGEBEE_WEBHOOK_PASSWORD": "s3cret-basic-auth",
    "SEGMENT_SHARED_SECRET": "segment-shared-secret",
    "STANDARD_WEBHOOKS_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


def fixture_path(source: str, name: str) -> Path:
    return FIXTURES / source / name


def load_json_fixture(source: str, name: str) -> Any:
    return json.loads(fixture_path(source, name).read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Process:
    """A real child process (celery worker, gunicorn) with its output captured to a file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a prefork worker's children die with it)."""
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            return
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_worker(env: dict[str, str], log_path: Path, concurrency: int = 1) -> Process:
    proc = Process(
        [
            str(BIN / "celery"),
            "-A",
            "workers.celery_app:celery_app",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        # The worker logs through expansion.logs (LOG_LEVEL); "ready." is an INFO line.
        {**env, "LOG_LEVEL": "INFO"},
        log_path,
    )
    wait_for(lambda: "ready." in proc.output() or proc.popen.poll() is not None, 60, "worker")
    if proc.popen.poll() is not None:
        raise AssertionError(f"worker exited:\n{proc.output()}")
    return proc


def start_gunicorn(env: dict[str, str], log_path: Path, workers: int = 2) -> tuple[Process, str]:
    port = free_port()
    proc = Process(
        [
            str(BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "integration.app:create_app()",
        ],
        env,
        log_path,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{proc.output()}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).ok
        except (requests.ConnectionError, requests.Timeout):  # still booting
            return False

    wait_for(up, 60, "gunicorn")
    return proc, url
