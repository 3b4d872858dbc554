"""A synthetic book of customers for the demo and the accuracy check: accounts with planted
expansion patterns (and must-not-flag ones), their history emitted as the signed requests each
provider would send, and the planted truth to measure the product's signals and plays against."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from expansion.book.emit import Request, render
from expansion.book.model import Account, build_accounts
from expansion.book.timeline import account_events
from expansion.db import utcnow
from expansion.settings import Settings

DEFAULT_ACCOUNTS = 300
DEFAULT_SEED = 7


@dataclass(frozen=True)
class Book:
    seed: int
    today: date
    accounts: tuple[Account, ...]
    requests: tuple[Request, ...]  # in the order the providers send them

    def truth(self) -> dict[str, dict[str, Any]]:
        """The planted truth: account (as `expansion explain` names it) -> pattern, expected
        signals and expected play (None: must not get one)."""
        return {
            account.crm_key: {
                "name": account.name,
                "pattern": account.pattern.name,
                "signals": sorted(account.pattern.signals),
                "play": account.pattern.play,
            }
            for account in self.accounts
        }

    def counts(self) -> dict[str, tuple[int, int]]:
        """Per source: (requests, events they carry)."""
        requests: Counter[str] = Counter()
        items: Counter[str] = Counter()
        for request in self.requests:
            requests[request.source] += 1
            items[request.source] += request.items
        return {source: (requests[source], items[source]) for source in sorted(requests)}

    def save(self, directory: Path) -> None:
        """requests.jsonl (one request per line, body as text) and truth.json."""
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "requests.jsonl", "w") as out:
            for r in self.requests:
                line = {
                    "source": r.source,
                    "path": r.path,
                    "at": r.at.isoformat(),
                    "account": r.account,
                    "items": r.items,
                    "body": r.body.decode(),
                }
                out.write(json.dumps(line) + "\n")
        truth = {"seed": self.seed, "today": self.today.isoformat(), "accounts": self.truth()}
        (directory / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")


def generate(
    settings: Settings,
    size: int = DEFAULT_ACCOUNTS,
    seed: int = DEFAULT_SEED,
    today: date | None = None,
) -> Book:
    """The same book for the same size, seed and day; ids in it are unique to the seed."""
    if size < 1:
        raise ValueError(f"a book needs at least one account, got {size}")
    today = today or utcnow().date()
    accounts = build_accounts(size, seed, today)
    requests = [
        request
        for account in accounts
        for request in render(account, account_events(account, today), settings)
    ]
    requests.sort(key=lambda r: (r.at, r.account, r.source))
    return Book(seed, today, tuple(accounts), tuple(requests))
