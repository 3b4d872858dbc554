"""Serves the board with gunicorn in a process of its own (`expansion board`)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


class BoardServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with the board app; each worker builds the app (and its database engine)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        from board.app import create_app

        return create_app()


def serve(host: str, port: int, workers: int) -> None:
    options = {"bind": f"{host}:{port}", "workers": workers, "timeout": 30, "graceful_timeout": 10}
    # gunicorn's runtime control socket sits at one path per user; the web process may hold it.
    BoardServer({**options, "control_socket_disable": True}).run()
