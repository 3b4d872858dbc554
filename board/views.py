"""The board's pages: login, the ranked book with owner and play filters, an account's evidence,
plays and charts, the §8 scoreboard, and the same list as JSON for scripts."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup

from board import charts, queries, series
from board.auth import BoardToken, is_authorized, log_in, log_out
from board.evidence import assessment_of
from board.measure import scoreboard
from expansion.db import read_transaction, utcnow
from expansion.settings import Settings
from workers.account_state import AccountState
from workers.play_rules import PlayRules, play_rules
from workers.score_rules import score_rules
from workers.scoring import render_explanation
from workers.signal_rules import signal_rules
from workers.state_loader import LoadConfig, load_state

CHART_DAYS = 120
PAGE_SIZES = (25, 50, 100, 200)
MAX_PAGE_SIZE = 200
WIDE_CHART = 1300  # the health chart spans both columns
PUBLIC = {"board.login", "board.healthz", "static"}

views = Blueprint("board", __name__)


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def token() -> BoardToken:
    return current_app.extensions["board_token"]


def rules() -> PlayRules:
    return play_rules(settings())


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


@views.before_app_request
def require_token() -> Any:
    if request.endpoint in PUBLIC or is_authorized(token()):
        return None
    if wants_json():
        response = jsonify(
            {
                "error": "unauthorized",
                "detail": "send the board's admin token as `Authorization: Bearer <token>`",
            }
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="board"'
        return response, 401
    return render_template("login.html", next=request.full_path.rstrip("?"), error=None), 401


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (`//evil`, `https://...`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("board.accounts")
    return target


@views.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("login.html", next=target, error=None)
    if token().matches(request.form.get("token", "")):
        log_in()
        return redirect(target)
    error = "That is not the board's admin token."
    return render_template("login.html", next=target, error=error), 401


@views.post("/logout")
def logout() -> Response:
    log_out()
    return redirect(url_for("board.login"))


@views.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


# --- the ranked book ---------------------------------------------------------------------------


def filters_from_request() -> queries.Filters:
    play = request.args.get("play") or None
    if play is not None and play not in rules().plays:
        abort(400, f"unknown play {play!r}; known: {', '.join(rules().plays)}")
    return queries.Filters(
        owner=(request.args.get("owner") or "").strip() or None,
        play=play,
        page=request.args.get("page", 1, type=int) or 1,
        per_page=min(max(request.args.get("per", 50, type=int) or 50, 1), MAX_PAGE_SIZE),
    )


@views.get("/")
def accounts() -> str:
    filters = filters_from_request()
    today = utcnow().date()
    with read_transaction(settings()) as conn:
        page = queries.ranked(conn, filters, rules(), today)
        owners = queries.owners(conn, rules())
        book = queries.summary(conn, today)
    return render_template(
        "accounts.html",
        page=page,
        filters=filters,
        owners=owners,
        plays=[(name, rule.title) for name, rule in rules().ordered()],
        page_sizes=PAGE_SIZES,
        book=book,
        today=today,
        bar=charts.score_bar,
    )


@views.get("/api/accounts")
def accounts_json() -> Response:
    filters = filters_from_request()
    with read_transaction(settings()) as conn:
        page = queries.ranked(conn, filters, rules(), utcnow().date())
    return jsonify(
        {
            "total": page.total,
            "page": page.page,
            "pages": page.pages,
            "per_page": page.per_page,
            "accounts": [json_ready(dataclasses.asdict(row)) for row in page.rows],
        }
    )


def json_ready(value: Any) -> Any:
    """Dates as ISO 8601 (Flask would write them as HTTP dates)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value.isoformat() if isinstance(value, date) else value


# --- one account -------------------------------------------------------------------------------


@views.get("/accounts/<int:account_id>")
def account(account_id: int) -> str:
    config = settings()
    with read_transaction(config) as conn:
        detail = queries.account_detail(conn, account_id)
        if detail is None:
            abort(404, f"there is no account {account_id}")
        score = detail.score
        as_of = score["as_of"] if score else utcnow().date()
        state = load_state(conn, account_id, as_of, LoadConfig.from_settings(config))
    assessment = assessment_of(account_id, detail.name, score["evidence"]) if score else None
    return render_template(
        "account.html",
        detail=detail,
        score=score,
        assessment=assessment,
        explanation=render_explanation(assessment) if assessment else None,
        charts=account_charts(state, detail.history, as_of),
        today=utcnow().date(),
    )


def account_charts(
    state: AccountState, history: list[queries.ScorePoint], end: date
) -> dict[str, Markup]:
    """Each chart's SVG, or the sentence saying why there is no data for it."""
    start = series.chart_start(end, CHART_DAYS)
    seat_rule = signal_rules(settings()).signals.seat_utilization
    bands = score_rules(settings()).health.bands
    found: dict[str, Markup] = {}
    utilization = series.seat_utilization(state, start, end, seat_rule.active_window_days)
    found["seats"] = (
        charts.line_chart(
            f"Seat utilization: active seats in {seat_rule.active_window_days} days / licensed",
            [charts.Series("utilization", "c-seats", utilization)],
            start,
            end,
            unit="%",
            y_max=max(100.0, charts.nice_max([v for _, v in utilization])),
            guide=charts.Guide(seat_rule.threshold * 100, f"signal at {seat_rule.threshold:.0%}"),
        )
        if utilization
        else no_data("No seat data: the account has no licensed seat count or no product users.")
    )
    calls = series.api_calls(state, start, end)
    found["api"] = (
        charts.bar_chart(
            "API calls per day", charts.Series("API calls", "c-api", calls), start, end
        )
        if calls
        else no_data(f"No API calls reported (usage.reported api_calls) in {CHART_DAYS} days.")
    )
    health_points, readiness_points = (
        series.health(history, start),
        series.readiness(history, start),
    )
    found["health"] = (
        charts.line_chart(
            "Health and readiness over time (stored scores)",
            [
                charts.Series("health", "c-health", health_points),
                charts.Series("readiness", "c-readiness", readiness_points),
            ],
            start,
            end,
            y_max=100,
            width=WIDE_CHART,
            zones=[
                charts.Zone(0, bands.yellow, "zone-red"),
                charts.Zone(bands.yellow, bands.green, "zone-yellow"),
                charts.Zone(bands.green, 100, "zone-green"),
            ],
        )
        if readiness_points
        else no_data(f"No stored scores in the last {CHART_DAYS} days.")
    )
    return found


def no_data(sentence: str) -> Markup:
    return Markup('<p class="muted no-data">{}</p>').format(sentence)


# --- §8 ----------------------------------------------------------------------------------------


@views.get("/measure")
def measure() -> str:
    now = utcnow()
    with read_transaction(settings()) as conn:
        board = scoreboard(conn, now)
    return render_template("measure.html", board=board, now=now)
