"""Replays a book over HTTP: each request signed at send time and posted to the receiver, several
at once, oldest first, with a progress bar; every answer that is not 2xx is counted and kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import click
import requests

from expansion.book.emit import Request, signed_headers
from expansion.db import utcnow
from expansion.settings import Settings

# (path, body, headers) -> HTTP status; the default posts with `requests`, tests pass the Flask
# test client's post.
Post = Callable[[str, bytes, dict[str, str]], int]


@dataclass
class ReplayResult:
    requests: int = 0
    events: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)  # "status source path" of each non-2xx


def http_post(base_url: str, timeout: float = 30.0) -> Post:
    local = threading.local()

    def post(path: str, body: bytes, headers: dict[str, str]) -> int:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        return session.post(
            base_url + path, data=body, headers=headers, timeout=timeout
        ).status_code

    return post


def replay(
    book_requests: Sequence[Request],
    settings: Settings,
    base_url: str,
    post: Post | None = None,
    concurrency: int = 8,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Send every request; `base_url` is where the receiver is reached (and what HubSpot signs,
    unless PUBLIC_BASE_URL says the receiver sees another address). `progress(n)` after each."""
    post = post or http_post(base_url)
    signed_base = settings.public_base_url or base_url
    result = ReplayResult()
    lock = threading.Lock()
    started = time.monotonic()

    def send(request: Request) -> None:
        headers = signed_headers(request, settings, signed_base + request.path, utcnow())
        try:
            status = post(request.path, request.body, headers)
            failure = "" if 200 <= status < 300 else f"{status} {request.source} {request.path}"
        except requests.RequestException as exc:
            failure = f"error {request.source} {request.path}: {exc}"
        with lock:
            result.requests += 1
            result.events += request.items
            if failure:
                result.failures.append(failure)
        if progress is not None:
            progress(1)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in pool.map(send, book_requests):
            pass
    result.seconds = time.monotonic() - started
    return result


def replay_with_bar(
    book_requests: Sequence[Request], settings: Settings, base_url: str, concurrency: int = 8
) -> ReplayResult:
    """`replay` with a click progress bar (what the CLI and the demo show)."""
    with click.progressbar(length=len(book_requests), label="replaying the book") as bar:
        return replay(
            book_requests, settings, base_url, concurrency=concurrency, progress=bar.update
        )


def summary(result: ReplayResult, counts: Iterable[tuple[str, tuple[int, int]]]) -> str:
    lines = [
        f"sent {result.requests:,} requests carrying {result.events:,} events in "
        f"{result.seconds:.1f} s; {len(result.failures)} not answered 2xx"
    ]
    lines += [
        f"  {source:<10} {n:>6,} requests {items:>7,} events" for source, (n, items) in counts
    ]
    lines += [f"  {failure}" for failure in result.failures[:10]]
    return "\n".join(lines)
