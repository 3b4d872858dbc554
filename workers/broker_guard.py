"""A guard for a kombu Redis transport bug that stops the worker when Redis goes away: after a
connection loss the channel is closed again once its transport was detached, and restoring the
unacknowledged messages then builds a connection pool from connection info that is gone. The
AttributeError escapes the consumer's error handling ("Unrecoverable error") and the worker
exits instead of reconnecting (kombu 5.7.0; reproduced by `python -m bench.faults`)."""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as redis_transport
from redis.exceptions import ConnectionError as RedisConnectionError

_connparams = redis_transport.Channel._connparams


def _connparams_or_connection_error(
    channel: redis_transport.Channel, asynchronous: bool = False
) -> dict[str, Any]:
    if getattr(channel.connection, "client", None) is None:
        # A connection error is what kombu's close and reconnect paths expect and swallow; the
        # messages stay in Redis' unacked set and come back after the visibility timeout.
        raise RedisConnectionError("the broker connection was already closed")
    return _connparams(channel, asynchronous=asynchronous)


def install() -> None:
    redis_transport.Channel._connparams = _connparams_or_connection_error
