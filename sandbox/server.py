"""Runs the sandbox: the Flask app with the Salesforce, HubSpot, admin and page blueprints, served
over TLS by a threaded werkzeug server (one thread per connection: concurrent writers are fine)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.config import SandboxConfig
from sandbox.context import Context
from sandbox.responses import hs_error_body, json_response
from sandbox.seed import load_seed, seed_integration_user
from sandbox.tls import make_tls


def create_app(context: Context) -> Flask:
    from sandbox import admin, bulk, hubspot, hubspot_associations, page, salesforce

    app = Flask(__name__)
    app.url_map.strict_slashes = False
    app.extensions["sandbox"] = context
    for module in (salesforce, bulk, hubspot, hubspot_associations, admin, page):
        app.register_blueprint(module.bp)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(exc: HTTPException) -> Response:
    """Unknown routes and methods answered in the shape of the API the path belongs to."""
    status = exc.code or 500
    if request.path.startswith("/services/"):
        code = "NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED"
        return json_response([{"message": exc.description, "errorCode": code}], status)
    if request.path.startswith(("/crm/", "/oauth/")):
        return json_response(hs_error_body("OBJECT_NOT_FOUND", exc.description or ""), status)
    return json_response({"error": exc.description}, status)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


@dataclass
class Running:
    """A started sandbox: where it listens, the CA to trust, and how to stop it."""

    context: Context
    server: BaseWSGIServer
    thread: threading.Thread
    base_url: str
    ca_path: Path

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        if self.context.webhooks is not None:
            self.context.webhooks.stop()

    def describe(self) -> dict[str, Any]:
        from sandbox.admin import describe

        return describe(self.context)


def start(config: SandboxConfig) -> Running:
    """Start the sandbox in a background thread; returns once it accepts connections."""
    from sandbox.webhooks import WebhookSender

    context = Context(config)
    if config.hubspot_spec_dir is not None:
        from sandbox.openapi import SpecCheck

        context.spec = SpecCheck.load(config.hubspot_spec_dir)
    seed_integration_user(context)
    if config.seed_file is not None:
        load_seed(context, config.seed_file)
    tls = make_tls(config.tls_dir, config.host)
    app = create_app(context)
    server = make_server(
        config.host,
        config.port,
        app,
        threaded=True,
        request_handler=_QuietHandler,
        ssl_context=tls.context,
    )
    host = "127.0.0.1" if config.host == "0.0.0.0" else config.host
    context.base_url = f"https://{host}:{server.server_port}"
    context.webhooks = WebhookSender(context)
    context.store.listeners.append(context.webhooks.on_change)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="crm-sandbox",
        daemon=True,
    )
    thread.start()
    return Running(context, server, thread, context.base_url, tls.ca_path)
