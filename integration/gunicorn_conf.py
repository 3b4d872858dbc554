"""gunicorn settings for the web process (Procfile and benchmarks alike): a connection reaches a
worker only once its request has arrived (TCP_DEFER_ACCEPT)."""

from __future__ import annotations

import socket
from typing import Any


def when_ready(server: Any) -> None:
    # A sync worker that accepts a connection whose request has not arrived yet blocks on it
    # (a slow or idle client, or a load generator that connects early) and holds back every
    # other request meanwhile.
    for listener in server.LISTENERS:
        listener.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
