"""Admin-token access to the board: the token (BOARD_TOKEN, or one generated under var/ on
embedded defaults), the login form's signed session cookie, and `Authorization: Bearer`."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from flask import request, session

from expansion.settings import Settings

TOKEN_FILE = "board-token"
MIN_TOKEN_CHARS = 16
SESSION_KEY = "admin"
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class TokenError(RuntimeError):
    """The board cannot start without a usable admin token; the message says what to set."""


@dataclass(frozen=True)
class BoardToken:
    value: str
    source: str  # "BOARD_TOKEN" or the file it was generated in

    @property
    def generated(self) -> bool:
        return self.source != "BOARD_TOKEN"

    def session_secret(self) -> bytes:
        """Signs the session cookie; a new token invalidates every session signed before."""
        return hmac.new(self.value.encode(), b"expansion-board-session", hashlib.sha256).digest()

    def matches(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self.value.encode())


def resolve_token(settings: Settings) -> BoardToken:
    """BOARD_TOKEN; else, on the embedded database only, the token kept in var/board-token
    (created on first use). A shared database (DATABASE_URL) requires BOARD_TOKEN."""
    if settings.board_token:
        if len(settings.board_token) < MIN_TOKEN_CHARS:
            raise TokenError(
                f"BOARD_TOKEN is shorter than {MIN_TOKEN_CHARS} characters; set a long random "
                f"string, e.g. from `{GENERATE_HINT}`"
            )
        return BoardToken(settings.board_token, "BOARD_TOKEN")
    if settings.database_url:
        raise TokenError(
            "BOARD_TOKEN is not set; the board of a shared database (DATABASE_URL) needs an "
            f"admin token: set it to a long random string, e.g. from `{GENERATE_HINT}`"
        )
    path = settings.var_dir / TOKEN_FILE
    return BoardToken(_stored_token(path), str(path))


def _stored_token(path: Path) -> str:
    """The token in `path`, written first if there is none; several processes starting at once
    agree on one (the file appears complete or not at all)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process won; its token is the one
        finally:
            draft.unlink()
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(f"{path} holds no usable token; delete it to have a new one generated")
    return token


def bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def is_authorized(token: BoardToken) -> bool:
    """A bearer token decides alone when given; otherwise the signed session cookie."""
    given = bearer_token()
    if given is not None:
        return token.matches(given)
    return session.get(SESSION_KEY) is True


def log_in() -> None:
    session.clear()
    session[SESSION_KEY] = True
    session.permanent = True


def log_out() -> None:
    session.clear()
