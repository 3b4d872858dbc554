"""The real processes of a fault run in a private var/ directory: the embedded Redis, gunicorn,
a prefork Celery worker and Celery beat (the inbox sweeper), with the controls faults need."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import TracebackType

from sqlalchemy import delete

from expansion import db
from expansion.embedded import ensure_embedded_redis, stop_embedded_redis
from expansion.models import metadata
from expansion.settings import Settings
from tests.support import (
    BIN,
    ROOT,
    TEST_SECRETS,
    Process,
    start_gunicorn,
    start_worker,
    wait_for,
)

# Anything that would point the processes at a shared database or broker: a fault run owns its
# own database (SQLite unless one is given) and Redis, so stopping that Redis harms nobody else.
SHARED_SERVICES = ("DATABASE_URL", "REDIS_URL", "BROKER_URL")


def fault_env(
    var_dir: Path, sweep_after: int, sweep_interval: int, database_url: str | None
) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in TEST_SECRETS and k not in SHARED_SERVICES
    }
    env.update(TEST_SECRETS)
    env.update(
        {
            "VAR_DIR": str(var_dir),
            "MAPPINGS_DIR": str(ROOT / "mappings"),
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
            "INBOX_SWEEP_AFTER_SECONDS": str(sweep_after),
            "INBOX_SWEEP_INTERVAL_SECONDS": str(sweep_interval),
        }
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def start_beat(env: dict[str, str], var_dir: Path, log_path: Path) -> Process:
    proc = Process(
        [
            str(BIN / "celery"),
            "-A",
            "workers.celery_app:celery_app",
            "beat",
            "--loglevel=INFO",
            "--schedule",
            str(var_dir / "beat-schedule"),
        ],
        {**env, "LOG_LEVEL": "INFO"},  # "beat: Starting..." is an INFO line
        log_path,
    )
    wait_for(lambda: "beat: Starting" in proc.output() or proc.popen.poll() is not None, 60, "beat")
    if proc.popen.poll() is not None:
        raise AssertionError(f"beat exited:\n{proc.output()}")
    return proc


def _empty_tables(settings: Settings) -> None:
    """A given database outlives the run (a SQLite file in the new var/ is empty anyway)."""
    with db.transaction(settings) as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


class Cluster:
    """One receiver, one worker, one beat and one Redis; `with Cluster(...) as cluster:`."""

    def __init__(
        self,
        sweep_after: int,
        sweep_interval: int,
        concurrency: int = 2,
        database_url: str | None = None,
    ) -> None:
        # Short path: unix socket paths are limited to ~100 characters.
        self.var_dir = Path(tempfile.mkdtemp(prefix="esf-"))
        self.logs = self.var_dir / "logs"
        self.logs.mkdir()
        self.env = fault_env(self.var_dir, sweep_after, sweep_interval, database_url)
        self.settings = Settings.from_env(self.env)
        self.concurrency = concurrency
        self.worker_runs = 0
        self.keep = False  # keep var/ (database, logs) for a look after a failed run
        self._processes: list[Process] = []
        self.url = ""

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        error: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop(keep=self.keep or error is not None)

    def start(self) -> None:
        ensure_embedded_redis(self.var_dir)
        db.upgrade(self.settings)
        _empty_tables(self.settings)
        web, self.url = start_gunicorn(self.env, self.logs / "web.log")
        self._processes.append(web)
        self.start_worker()
        self._processes.append(start_beat(self.env, self.var_dir, self.logs / "beat.log"))

    @property
    def worker(self) -> Process:
        return next(p for p in reversed(self._processes) if p.log_path.name.startswith("worker"))

    def start_worker(self) -> None:
        self.worker_runs += 1
        log_path = self.logs / f"worker-{self.worker_runs}.log"
        self._processes.append(start_worker(self.env, log_path, self.concurrency))

    def kill_worker(self) -> None:
        """SIGKILL the worker's whole process group: the parent and every prefork child."""
        self.worker.kill(signal.SIGKILL)
        self.worker.stop()

    def stop_redis(self) -> None:
        if not stop_embedded_redis(self.var_dir):
            raise RuntimeError(f"no embedded Redis was running in {self.var_dir}")

    def start_redis(self) -> None:
        ensure_embedded_redis(self.var_dir)

    def pause_redis(self, paused: bool) -> None:
        """SIGSTOP / SIGCONT the redis-server: connections stay open but nothing answers, as
        when the network to Redis drops packets or Redis hangs on a slow disk."""
        pid = int((self.var_dir / "redis.pid").read_text().strip())
        os.kill(pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def log(self, name: str) -> str:
        return (self.logs / name).read_text(errors="replace")

    def stop(self, keep: bool = False) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        stop_embedded_redis(self.var_dir)
        db.dispose_engines()
        if keep:
            print(f"kept {self.var_dir} (database and logs)")
        else:
            shutil.rmtree(self.var_dir, ignore_errors=True)
