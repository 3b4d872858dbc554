"""`expansion demo` as `make demo` runs it: the Procfile's processes and the CRM sandbox on a fresh
VAR_DIR, a synthetic book replayed, processed and written to the sandbox, the summary (top
accounts, tasks per owner, API calls, precision/recall), the board left up with its token, and
every process it started stopped again (after the summary, on Ctrl-C, and mid-replay)."""

from __future__ import annotations

import fcntl
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
import requests

from expansion import procfile
from expansion.book import generate
from expansion.demo import Options, demo_environment, run
from expansion.demo.crm import Sandbox, book_seed, identity_env, sandbox_info, writer_env
from expansion.embedded import is_running, stop_embedded_redis
from expansion.settings import Settings
from sandbox.config import SandboxConfig
from tests.sandbox_support import running_sandbox
from tests.support import BIN, ROOT, TEST_SECRETS

PROCESSES = ("web", "worker", "beat", "board", "sandbox")


@pytest.fixture
def demo_env() -> Iterator[tuple[dict[str, str], Path]]:
    """The user's environment without secrets or external services, and a fresh VAR_DIR."""
    var_dir = Path(tempfile.mkdtemp(prefix="es-demo-"))  # short: unix socket path limit
    dropped = {*TEST_SECRETS, "DATABASE_URL", "REDIS_URL", "BROKER_URL", "PUBLIC_BASE_URL", "PORT"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env["VAR_DIR"] = str(var_dir)
    yield env, var_dir
    stop_embedded_redis(var_dir / "demo")  # only does something if the demo failed to
    shutil.rmtree(var_dir, ignore_errors=True)


class Demo:
    """`expansion demo ARGS` running, its output read line by line as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.popen = subprocess.Popen(
            [str(BIN / "expansion"), "demo", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self._queue.put)),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.errors.append)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, take: Callable[[str | None], None]) -> None:
        assert stream is not None
        with stream:
            for line in stream:
                take(line)
        take(None)

    def until(self, marker: str, timeout: float) -> str:
        """The output up to the first line containing `marker`."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                self.popen.kill()
                raise AssertionError(f"no {marker!r} within {timeout} s:\n{self.output}") from None
            if line is None:
                raise AssertionError(f"the demo ended before {marker!r}:\n{self.output}")
            self.lines.append(line)
            if marker in line:
                return self.output

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """Exit code, the whole output, and stderr."""
        code = self.popen.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        return code, self.output, "".join(e for e in self.errors if e)

    @property
    def output(self) -> str:
        return "".join(self.lines)


def started_pids(output: str) -> list[int]:
    names = "|".join(PROCESSES)
    return [int(pid) for pid in re.findall(rf"^\s+(?:{names})\s+pid (\d+)", output, re.M)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_everything_stopped(output: str, var_dir: Path) -> None:
    pids = started_pids(output)
    assert len(pids) == len(PROCESSES)
    assert not any(alive(pid) for pid in pids)
    assert not is_running(var_dir / "demo")


def section(output: str, title: str) -> str:
    return output.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0]


def test_procfile_declares_the_processes_and_the_crm_sandbox():
    processes = procfile.load()
    assert list(processes) == list(PROCESSES)
    assert processes["web"].startswith("gunicorn --config python:integration.gunicorn_conf")
    assert "'integration.app:create_app()'" in processes["web"]
    assert "--bind 0.0.0.0:${PORT:-8000}" in processes["web"]
    assert "--workers ${WEB_CONCURRENCY:-2}" in processes["web"]
    assert processes["worker"].startswith("celery -A workers.celery_app:celery_app worker")
    assert processes["beat"].startswith("celery -A workers.celery_app:celery_app beat")
    assert "--schedule=${VAR_DIR:-var}/" in processes["beat"]
    assert processes["board"] == "expansion board --host 0.0.0.0 --port ${BOARD_PORT:-8050}"
    sandbox = processes["sandbox"]
    assert sandbox.startswith("expansion sandbox --host 127.0.0.1 --port ${SANDBOX_PORT:-8443}")
    assert "--tls-dir ${VAR_DIR:-var}/sandbox" in sandbox
    receiver = "${PUBLIC_BASE_URL:-http://127.0.0.1:${PORT:-8000}}"
    assert f"--hubspot-webhook-url {receiver}/webhooks/hubspot" in sandbox
    assert f"--salesforce-webhook-url {receiver}/webhooks/salesforce" in sandbox


def test_the_children_write_to_the_sandbox_and_never_to_the_users_services(tmp_path):
    user = {
        "VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql://prod.example/crm",
        "REDIS_URL": "redis://prod.example:6379/0",
        "PUBLIC_BASE_URL": "https://hooks.example",
        "HUBSPOT_CLIENT_SECRET": "the-real-app-secret",
        "SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com",
        "HUBSPOT_ACCESS_TOKEN": "pat-na1-real",
        "HUBSPOT_REFRESH_TOKEN": "real-refresh-token",
    }
    env = demo_environment(user)
    assert not {"DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "HUBSPOT_REFRESH_TOKEN"} & set(env)
    assert env["VAR_DIR"] == str(tmp_path / "demo")
    settings = Settings.from_env(env)
    sandbox = f"https://127.0.0.1:{env['SANDBOX_PORT']}"
    assert settings.salesforce_instance_url == sandbox
    assert settings.salesforce_token_url == f"{sandbox}/services/oauth2/token"
    assert settings.hubspot_api_host == sandbox
    assert settings.crm_ca_bundle == str(tmp_path / "demo" / "sandbox" / "ca.pem")
    config = SandboxConfig()
    assert settings.hubspot_access_token == config.hubspot_access_token
    assert settings.salesforce_client_secret == config.salesforce_client_secret
    # The receiver accepts what the sandbox signs and tells apart the integration's own writes.
    assert settings.hubspot_client_secret == config.hubspot_client_secret
    assert settings.hubspot_portal_ids == (str(config.hubspot_portal_id),)
    assert settings.salesforce_org_id == config.salesforce_org_id
    assert settings.salesforce_integration_user_id == config.salesforce_integration_user_id
    assert len({env["PORT"], env["BOARD_PORT"], env["SANDBOX_PORT"]}) == 3


def test_the_book_seeds_the_sandbox_with_its_owners_and_accounts(tmp_path):
    book = generate(Settings.from_env({"VAR_DIR": str(tmp_path), **identity_env()}), 12, seed=5)
    with running_sandbox(tmp_path / "sandbox") as handle:
        seeded = handle.seed(book_seed(book))
        users = {r["id"]: r["values"] for r in handle.records("salesforce", "User")}
        accounts = {r["id"]: r["values"] for r in handle.records("salesforce", "Account")}
        companies = {r["id"]: r["values"] for r in handle.records("hubspot", "companies")}
        owners = handle.hubspot().crm.owners.owners_api.get_page().results
    account = book.accounts[0]
    assert seeded["accounts"]["0"] == {
        "salesforce_id": account.salesforce_id,
        "hubspot_id": account.hubspot_company_id,
    }
    assert accounts[account.salesforce_id]["Name"] == account.name
    assert accounts[account.salesforce_id]["OwnerId"] == account.ae.salesforce_id
    assert companies[account.hubspot_company_id]["hubspot_owner_id"] == account.ae.hubspot_id
    assert users[account.csm.salesforce_id]["ManagerId"] == account.manager.salesforce_id
    assert users[account.manager.salesforce_id]["ManagerId"] == account.vp.salesforce_id
    assert account.csm.hubspot_id in {owner.id for owner in owners}
    assert len(accounts) == len(companies) == len(book.accounts)


def test_the_sandbox_is_known_before_it_starts(tmp_path):
    with running_sandbox(tmp_path / "tls") as handle:
        port = int(handle.base_url.rsplit(":", 1)[1])
        predicted = Sandbox(sandbox_info(port, tmp_path / "tls"))
        assert predicted.answers()
        assert predicted.info == handle.info
        assert writer_env(predicted.info)["CRM_CA_BUNDLE"] == handle.ca_path


@pytest.mark.slow
def test_demo_replays_the_book_into_the_crm_and_stops_what_it_started(demo_env):
    env, var_dir = demo_env
    demo = Demo(env, "--accounts", "24", "--exit-after-summary")
    code, output, errors = demo.finish(timeout=600)
    assert code == 0, f"{output}\n{errors}"
    assert "2. generated a book of 24 accounts (seed 7)" in output
    assert re.search(r"sent [\d,]+ requests carrying [\d,]+ events in .+; 0 not answered", output)
    inbox = section(output, "Inbox (events per source and status)")
    for source in ("chargebee", "hubspot", "salesforce", "segment", "stripe"):
        assert re.search(rf"^{source}\s+0\s+[1-9]\d*\s+\d+\s+0$", inbox, re.M), inbox
    top = section(output, "Top accounts by expansion readiness")
    # readiness, health, top signal, play, owner, next due
    first = r"^ 1  .+  \d+ \w+  +\d+ \w+  +\w+  +\w+  +[A-Z]\w+ [A-Z]\w+  +\d{4}-\d\d-\d\d$"
    assert re.search(first, top, re.M), top
    tasks = section(output, "Tasks created in the CRMs, per owner")
    total = re.search(r"^total\s+(\d+)\s+(\d+)\s+(\d+)$", tasks, re.M)
    assert total and int(total[1]) > 0 and int(total[2]) > 0, tasks
    assert re.search(r"^\w+ \w+ \(CSM\)\s+\d+\s+\d+\s+[1-9]", tasks, re.M), tasks
    calls = section(output, "CRM API calls spent")
    for crm in ("salesforce", "hubspot"):
        assert re.search(rf"^{crm}\s+[1-9]\d*\s+[1-9]\d*\s+[\d,]+\s+[\d.]+%$", calls, re.M), calls
    accuracy = output.split("Accuracy against the book's planted patterns\n", 1)[1]
    header = r"^signal\s+planted\s+flagged\s+correct\s+precision\s+recall$"
    assert re.search(header, accuracy, re.M)
    assert re.search(r"^seat_expansion\s+\d+\s+\d+\s+\d+\s+1\.00\s+1\.00$", accuracy, re.M)
    assert "every planted pattern was flagged with its play; nothing else was flagged" in accuracy
    assert_everything_stopped(output, var_dir)


@pytest.mark.slow
def test_the_board_stays_up_with_its_token_until_ctrl_c(demo_env):
    env, var_dir = demo_env
    demo = Demo(env, "--accounts", "2")
    output = demo.until("Ctrl-C stops every process the demo started", timeout=300)
    board = re.search(r"^The board:\s+(\S+)$", output, re.M)
    token = re.search(r"^\s+admin token:\s+(\S+)$", output, re.M)
    assert board and token, output
    assert requests.get(board[1], timeout=10, allow_redirects=False).status_code in (302, 401)
    page = requests.get(board[1], headers={"Authorization": f"Bearer {token[1]}"}, timeout=10)
    assert page.status_code == 200
    demo.popen.send_signal(signal.SIGINT)
    code, output, errors = demo.finish()
    assert code == 0, f"{output}\n{errors}"
    assert "stopping web, worker, beat, board, sandbox" in output
    assert_everything_stopped(output, var_dir)


@pytest.mark.slow
def test_ctrl_c_during_the_replay_stops_every_process_the_demo_started(demo_env):
    env, var_dir = demo_env
    demo = Demo(env)  # the default book: its replay is still running when interrupted
    demo.until("5. replaying the book", timeout=120)
    demo.popen.send_signal(signal.SIGINT)
    code, output, errors = demo.finish(timeout=60)
    assert code == 130, f"{output}\n{errors}"
    assert "interrupted; stopping what the demo started" in errors
    assert "Top accounts" not in output
    assert_everything_stopped(output, var_dir)


def test_a_second_demo_on_the_same_var_dir_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "expansion.db").write_text("the running demo's")
    with open(tmp_path / "demo.lock", "a+") as running:
        fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert run(Options(accounts=1, serve=False)) == 1
    assert "another demo is running" in capsys.readouterr().err
    assert (tmp_path / "demo" / "expansion.db").read_text() == "the running demo's"
