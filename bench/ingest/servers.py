"""The processes under test: gunicorn serving the receiver or the no-op app with the same
settings (integration/gunicorn_conf.py, as the Procfile's web), on a fresh VAR_DIR (embedded
SQLite and Redis) with the test secrets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from expansion.embedded import PID_NAME
from tests.support import BIN, ROOT, TEST_SECRETS, Process, free_port, wait_for

RECEIVER_APP = "integration.app:create_app()"
NOOP_APP = "bench.noop_app:create_app()"
CONFIG_MODULE = "integration.gunicorn_conf"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class GunicornSettings:
    workers: int
    worker_class: str
    threads: int

    def args(self) -> list[str]:
        args = ["--workers", str(self.workers), "--worker-class", self.worker_class]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args

    def describe(self) -> str:
        threads = f" x {self.threads} threads" if self.worker_class == "gthread" else ""
        return f"{self.workers} {self.worker_class} workers{threads}"


def environment(var_dir: Path, log_level: str) -> dict[str, str]:
    """The environment a product process gets: test secrets and embedded defaults."""
    env = {k: v for k, v in os.environ.items() if k not in TEST_SECRETS}
    for name in ("DATABASE_URL", "REDIS_URL", "BROKER_URL"):
        env.pop(name, None)  # always the embedded defaults, on this machine
    env.update(TEST_SECRETS)
    env.update(
        {
            "VAR_DIR": str(var_dir),
            "MAPPINGS_DIR": str(ROOT / "mappings"),
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": log_level,
        }
    )
    return env


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    redis_var_dir: Path | None  # the receiver's embedded Redis counts towards its cost

    def cpu_seconds(self) -> float:
        """CPU used so far by gunicorn (master and workers) and, once started, the embedded
        Redis: a measure of cost per request that other load on the machine barely moves."""
        pids = [self.pid, *_children(self.pid)]
        if self.redis_var_dir is not None:
            redis_pid = _read_pid(self.redis_var_dir / PID_NAME)
            if redis_pid is not None:
                pids.append(redis_pid)
        return sum(_cpu_seconds(pid) for pid in pids)


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return []


def _cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def _children(parent: int) -> list[int]:
    pids = (int(name) for name in os.listdir("/proc") if name.isdigit())
    return [pid for pid in pids if (fields := _stat_fields(pid)) and int(fields[1]) == parent]


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


@contextmanager
def gunicorn(
    app: str, settings: GunicornSettings, env: dict[str, str], log_path: Path
) -> Iterator[Server]:
    """Serve `app` until the block ends."""
    port = free_port()
    proc = Process(
        [
            str(BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--config",
            f"python:{CONFIG_MODULE}",
            *settings.args(),
            app,
        ],
        env,
        log_path,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {log_path}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_for(up, 60, f"gunicorn serving {app}")
        var_dir = Path(env["VAR_DIR"]) if app == RECEIVER_APP else None
        yield Server(url, proc.popen.pid, var_dir)
    finally:
        proc.stop()
