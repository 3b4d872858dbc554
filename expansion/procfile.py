"""Runs the processes the Procfile declares (the one description of how the product runs), each
in its own process group with its output in a log file, and stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from honcho.environ import parse_procfile

from expansion.settings import PROJECT_ROOT

PROCFILE = PROJECT_ROOT / "Procfile"


class ProcfileError(Exception):
    pass


def load(path: Path = PROCFILE) -> dict[str, str]:
    """Process name -> shell command, in Procfile order."""
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProcfileError(f"{path} not found; run from a checkout of the project") from None
    processes = dict(parse_procfile(content).processes)
    if not processes:
        raise ProcfileError(f"{path} declares no processes (expected lines like `web: ...`)")
    return processes


@dataclass
class Child:
    name: str
    command: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes] = field(repr=False)

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        self.log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """Children started through the shell (so `${PORT:-8000}` expands as under honcho or a
    platform), each the leader of its own session so stopping reaches its workers too."""

    def __init__(self, env: dict[str, str], log_dir: Path, cwd: Path = PROJECT_ROOT) -> None:
        self.env = env
        self.log_dir = log_dir
        self.cwd = cwd
        self.children: list[Child] = []

    def start(self, name: str, command: str) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(name, command, popen, log_path, log)
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        return [child for child in self.children if not child.running]

    def stop(self, grace_seconds: float = 15.0) -> None:
        """SIGTERM every group (warm shutdown), then SIGKILL whatever is left after the grace."""
        for child in self.children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for child in self.children:
            try:
                child.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.popen.wait(timeout=5)
        for child in self.children:
            # Pool processes may outlive their leader by a moment; the group goes with it.
            _signal_group(child, signal.SIGKILL)
            child.log.close()


def _signal_group(child: Child, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(child.popen.pid, sig)
