"""The baseline for the ingest benchmark: a Flask app that answers the webhook route without
verifying or storing anything, served by gunicorn with the receiver's settings."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/<name>")
    def receive(name: str) -> Response:
        request.get_data()  # read the body like the receiver does
        return jsonify({"received": 1, "new": 1, "duplicates": 0})

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    return app
