"""The board's Flask app factory: settings, the admin token and its session cookie, the pages,
the template helpers, and headers that keep every asset on this site."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import Flask, Response, render_template, request

from board.auth import resolve_token
from board.views import views
from expansion import db
from expansion.logs import configure_logging
from expansion.settings import Settings
from workers.play_rules import play_rules
from workers.scoring import fmt_score

SESSION_HOURS = 12
PLAY_STATES = {
    "waitlisted": "waiting (weekly cap)",
    "opened": "first step open",
    "step": "in progress",
    "won": "won",
    "lost": "lost",
    "stalled": "stalled",
    "closed": "closed",
}
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def create_app(settings: Settings | None = None) -> Flask:
    """Raises board.auth.TokenError when no admin token can be had (see resolve_token)."""
    configure_logging()
    settings = settings or Settings.from_env()
    token = resolve_token(settings)
    app = Flask(__name__)
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=token.session_secret(),
        SESSION_COOKIE_NAME="board_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )
    app.extensions["board_token"] = token
    if settings.auto_migrate:
        db.upgrade(settings)
    app.register_blueprint(views)
    _template_helpers(app, settings)
    app.after_request(_headers)

    @app.errorhandler(400)
    @app.errorhandler(404)
    def _error(exc: Any) -> Any:
        if request.path.startswith("/api/"):
            return {
                "error": exc.name.lower().replace(" ", "_"),
                "detail": exc.description,
            }, exc.code
        return render_template("error.html", error=exc), exc.code

    return app


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _template_helpers(app: Flask, settings: Settings) -> None:
    def signal_label(name: str) -> str:
        return play_rules(settings).brief.label(name)

    def play_title(name: str) -> str:
        rule = play_rules(settings).plays.get(name)  # type: ignore[call-overload]
        return rule.title if rule else name.replace("_", " ")

    def role_label(role: str) -> str:
        rule = play_rules(settings).owners.roles.get(role)  # type: ignore[call-overload]
        return rule.label if rule else role.replace("_", " ")

    app.add_template_filter(fmt_score, "score")
    app.add_template_filter(role_label, "role_label")
    app.add_template_filter(lambda state: PLAY_STATES.get(state, state), "play_state")
    app.add_template_filter(signal_label, "signal_label")
    app.add_template_filter(play_title, "play_title")
    app.add_template_filter(_pct, "pct")
    app.add_template_filter(_money, "money")
    app.add_template_filter(_when, "when")
    app.add_template_filter(lambda value: str(value).replace("_", " "), "words")


def _pct(share: float | None) -> str:
    return "no data" if share is None else f"{share:.0%}"


def _money(amount: float | None) -> str:
    return "-" if amount is None else f"${amount:,.0f}"


def _when(value: date | datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value[:16].replace("T", " ")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()
