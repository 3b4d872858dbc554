"""Sends events over HTTP with a few concurrent senders, as a provider would: every answer is
recorded (status, latency, when), and an event not answered 2xx is sent again later."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests

from bench.faults.events import Event

NO_ANSWER = 0  # connection refused, reset or client timeout


@dataclass(frozen=True)
class Answer:
    index: int
    status: int
    sent_at: float  # time.monotonic() when the request started
    latency: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Replay:
    """`start()` sends every event once, at `rate` events per second overall when given;
    `redeliver()` sends again the events whose every answer so far was not 2xx."""

    def __init__(
        self,
        url: str,
        events: list[Event],
        secret: str,
        senders: int = 4,
        rate: float | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.endpoint = f"{url}/webhooks/stripe"
        self.events = events
        self.secret = secret
        self.senders = senders
        self.rate = rate
        self.timeout = timeout
        self.answers: list[Answer] = []
        self._next = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.started = 0.0

    @property
    def sent(self) -> int:
        return len(self.answers)

    def start(self) -> None:
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._send_all, name=f"sender-{n}", daemon=True)
            for n in range(self.senders)
        ]
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= len(self.events):
                return None
            self._next += 1
            return self._next - 1

    def _send_all(self) -> None:
        with requests.Session() as session:
            while (index := self._take()) is not None:
                if self.rate:
                    time.sleep(max(0.0, self.started + index / self.rate - time.monotonic()))
                self.answers.append(self._send(session, index))

    def _send(self, session: requests.Session, index: int) -> Answer:
        event = self.events[index]
        started = time.monotonic()
        try:
            response = session.post(
                self.endpoint,
                data=event.body,
                headers=event.headers(self.secret, int(time.time())),
                timeout=self.timeout,
            )
            status = response.status_code
        except requests.RequestException:
            status = NO_ANSWER
        return Answer(index, status, started, time.monotonic() - started)

    def accepted(self) -> set[int]:
        return {answer.index for answer in self.answers if answer.ok}

    def redeliver(self, rounds: int = 5, pause: float = 2.0) -> int:
        """Send again, like a provider's retry schedule, every event never answered 2xx;
        return how many are still not accepted."""
        for _ in range(rounds):
            missing = sorted(set(range(len(self.events))) - self.accepted())
            if not missing:
                return 0
            time.sleep(pause)
            with requests.Session() as session:
                self.answers.extend(self._send(session, index) for index in missing)
        return len(set(range(len(self.events))) - self.accepted())
