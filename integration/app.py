"""The Flask app factory: webhooks and health blueprints, settings from the environment or a
test configuration, schema migrated on start."""

from __future__ import annotations

from flask import Flask

from expansion import db
from expansion.logs import configure_logging
from expansion.settings import Settings
from integration.health import health
from integration.receiver import error_response, webhooks
from workers.celery_app import make_celery
from workers.queue import drain_waker


def create_app(settings: Settings | None = None) -> Flask:
    configure_logging()
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    # Werkzeug rejects larger bodies itself; the receiver still reads at most this much.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    if settings.auto_migrate:
        db.upgrade(settings)
    celery = make_celery(settings, publisher=True)
    app.extensions["celery"] = celery
    app.extensions["wake_drain"] = drain_waker(celery, settings)
    app.register_blueprint(webhooks)
    app.register_blueprint(health)

    @app.errorhandler(413)
    def _too_large(_exc: Exception):  # type: ignore[no-untyped-def]
        return error_response(
            413, "payload_too_large", f"the body limit is {settings.max_body_bytes} bytes"
        )

    @app.errorhandler(404)
    def _not_found(_exc: Exception):  # type: ignore[no-untyped-def]
        return error_response(404, "not_found", "no such endpoint")

    @app.errorhandler(405)
    def _method(_exc: Exception):  # type: ignore[no-untyped-def]
        return error_response(405, "method_not_allowed", "webhooks accept POST only")

    return app
