"""The board's admin token: where it comes from (BOARD_TOKEN, or generated under var/ on
embedded defaults), the login form's signed session cookie, `Authorization: Bearer`, 401 as a
page or as JSON; and the pages of a book with nothing in it yet."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from board import create_app
from board.auth import TOKEN_FILE, TokenError, resolve_token
from board.charts import compact, nice_max, ticks
from expansion.cli import main
from expansion.settings import Settings
from tests.state_support import KEY, account_id, apply_all, at, event
from tests.support import BIN, Process, free_port, wait_for
from tests.test_board import TOKEN, text


@pytest.fixture
def board_app(settings: Settings) -> Flask:
    app = create_app(dataclasses.replace(settings, board_token=TOKEN))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def visitor(board_app: Flask) -> FlaskClient:
    return board_app.test_client()


@pytest.fixture
def admin(visitor: FlaskClient) -> Iterator[FlaskClient]:
    assert visitor.post("/login", data={"token": TOKEN}).status_code == 302
    yield visitor


def test_without_the_token_pages_are_401_with_the_login_form(visitor):
    for path in ("/", "/accounts/1", "/measure", "/no-such-page", "/?owner=csm-1"):
        response = visitor.get(path)
        assert response.status_code == 401, path
        html = response.get_data(as_text=True)
        assert 'name="token"' in html and "Board access" in html
        assert "accounts by expansion readiness" not in html.lower()


def test_without_the_token_the_api_is_401_json(visitor):
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": "Basic x"},
    ):
        response = visitor.get("/api/accounts", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="board"'
    asked_for_json = visitor.get("/measure", headers={"Accept": "application/json"})
    assert asked_for_json.status_code == 401 and asked_for_json.is_json


def test_health_and_the_stylesheet_need_no_token(visitor):
    assert visitor.get("/healthz").get_json() == {"status": "ok"}
    css = visitor.get("/static/board.css")
    assert css.status_code == 200 and b".ranked" in css.data
    css.close()


def test_the_login_form_sets_a_signed_session_cookie_and_logout_clears_it(visitor):
    wrong = visitor.post("/login", data={"token": "not-the-token-at-all"})
    assert wrong.status_code == 401
    assert "That is not the board&#39;s admin token." in wrong.get_data(as_text=True)
    assert visitor.get("/").status_code == 401
    right = visitor.post("/login", data={"token": TOKEN, "next": "/measure"})
    assert (right.status_code, right.headers["Location"]) == (302, "/measure")
    cookie = visitor.get_cookie("board_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert TOKEN not in cookie.value
    assert visitor.get("/").status_code == 200
    assert visitor.get("/api/accounts").status_code == 200  # the session works for the API too
    assert visitor.post("/logout").status_code == 302
    assert visitor.get("/").status_code == 401


def test_a_session_signed_under_another_token_is_refused(settings, visitor):
    other = create_app(dataclasses.replace(settings, board_token="another-token-0123456789"))
    other_client = other.test_client()
    other_client.post("/login", data={"token": "another-token-0123456789"})
    forged = other_client.get_cookie("board_session")
    assert forged is not None
    visitor.set_cookie("board_session", forged.value)
    assert visitor.get("/").status_code == 401


def test_login_only_redirects_within_the_board(visitor):
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = visitor.post("/login", data={"token": TOKEN, "next": target})
        assert response.headers["Location"] == "/", target


def test_a_bearer_token_opens_the_api(visitor):
    response = visitor.get("/api/accounts", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.get_json() == {
        "total": 0,
        "page": 1,
        "pages": 1,
        "per_page": 50,
        "accounts": [],
    }


def test_pages_keep_every_asset_on_the_site(admin):
    response = admin.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy
    assert "script-src" not in policy  # no script at all
    html = response.get_data(as_text=True)
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert response.headers["Cache-Control"] == "no-store"


# --- where the token comes from ----------------------------------------------------------------


def embedded(tmp_path: Path, **changes: str | None) -> Settings:
    return dataclasses.replace(
        Settings.from_env({"VAR_DIR": str(tmp_path)}),
        **changes,  # type: ignore[arg-type]
    )


def test_on_embedded_defaults_a_token_is_generated_under_var_and_kept(tmp_path):
    first = resolve_token(embedded(tmp_path))
    path = tmp_path / TOKEN_FILE
    assert first.generated and first.source == str(path)
    assert len(first.value) >= 32 and path.read_text().strip() == first.value
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert resolve_token(embedded(tmp_path)).value == first.value  # the next start reuses it
    assert [p.name for p in tmp_path.iterdir()] == [TOKEN_FILE]  # no draft left behind


def test_board_token_wins_and_a_shared_database_requires_it(tmp_path):
    chosen = resolve_token(embedded(tmp_path, board_token=TOKEN))
    assert (chosen.value, chosen.generated) == (TOKEN, False)
    assert not (tmp_path / TOKEN_FILE).exists()
    shared = embedded(tmp_path, database_url="postgresql://db.internal/expansion")
    with pytest.raises(TokenError, match="BOARD_TOKEN is not set"):
        resolve_token(shared)
    with pytest.raises(TokenError, match="shorter than 16 characters"):
        resolve_token(embedded(tmp_path, board_token="short"))


def test_the_board_command_refuses_to_start_without_a_token_for_a_shared_database(env):
    result = CliRunner().invoke(
        main,
        ["board"],
        env={**env, "DATABASE_URL": "postgresql://db.internal/expansion", "BOARD_TOKEN": ""},
    )
    assert result.exit_code == 1
    assert "BOARD_TOKEN is not set" in result.output


# --- an empty book -----------------------------------------------------------------------------


def test_an_empty_book_says_what_is_missing(admin):
    accounts = text(admin.get("/").get_data(as_text=True))
    assert "No account has been scored yet" in accounts
    measure = text(admin.get("/measure").get_data(as_text=True))
    for sentence in (
        "No won deal stored yet.",
        "No expansion play has been opened yet.",
        "No won deal is attributed to a play yet.",
        "No play is running.",
        "No account has been flagged yet.",
    ):
        assert sentence in measure


def test_an_account_without_scores_or_usage_says_so_instead_of_drawing_zeros(settings, admin):
    apply_all(settings, [event("account.changed", at(0), KEY, name="Initech")])
    page = text(admin.get(f"/accounts/{account_id(settings)}").get_data(as_text=True))
    assert "Initech" in page and "This account has no stored score yet" in page
    assert "No seat data: the account has no licensed seat count or no product users." in page
    assert "No API calls reported (usage.reported api_calls) in 120 days." in page
    assert "No stored scores in the last 120 days." in page
    assert "No play has been opened for this account." in page


def test_chart_scales_round_up_to_readable_gridlines():
    assert [nice_max([v]) for v in (0, 0.3, 7, 95, 120, 2600, 4100)] == [
        1.0,
        0.5,
        10,
        100,
        200,
        5000,
        5000,
    ]
    assert ticks(100) == [0, 25, 50, 75, 100] and ticks(5000) == [0, 1000, 2000, 3000, 4000, 5000]
    assert [compact(v) for v in (12.5, 1250, 2_500_000, 3e9)] == ["12.5", "1.2k", "2.5M", "3B"]


@pytest.mark.slow
def test_the_board_command_serves_with_a_generated_token_it_prints(env, tmp_path):
    """`expansion board` on embedded defaults (the Procfile's board process under the demo)."""
    port = free_port()
    embedded_env = {k: v for k, v in env.items() if k not in ("DATABASE_URL", "BOARD_TOKEN")}
    server = Process(
        [str(BIN / "expansion"), "board", "--port", str(port), "--workers", "1"],
        {**embedded_env, "VAR_DIR": str(tmp_path)},
        tmp_path / "board.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: "admin token: " in server.output(), 60, "the token to be printed")
        wait_for(lambda: _answers(f"{url}/healthz"), 60, "the board")
        token = (tmp_path / TOKEN_FILE).read_text().strip()
        assert f"board: {url}/" in server.output()
        assert f"admin token: {token} (kept in {tmp_path / TOKEN_FILE}" in server.output()
        assert requests.get(f"{url}/api/accounts", timeout=5).status_code == 401
        opened = requests.get(
            f"{url}/api/accounts", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert opened.status_code == 200 and opened.json()["accounts"] == []
    finally:
        server.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
