"""Long polls: an agent waits for its escalated call to be settled without hammering the API.

`wait(call_id, timeout, settled)` returns as soon as `settled()` holds or the timeout passes.
With REDIS_URL set, whoever settles a call publishes on its channel (`notify`, after commit)
and waiters wake at once, on any web process; the database is still checked every second,
so a lost message only costs latency. Without Redis (the embedded default) waiters check the
database every quarter second. Either way the decision is read from the database, never from
the message.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 30
_POLL_SECONDS = 0.25
_client: Any = None
_lock = threading.Lock()


def _channel(call_id: str) -> str:
    return f"warden:tool-call:{call_id}"


def _redis() -> Any:
    global _client
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    if _client is None:
        with _lock:
            if _client is None:
                import redis

                _client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return _client


def notify(call_id: str) -> None:
    """Wake whoever waits on this call (call it after the settling transaction commits)."""
    client = _redis()
    if client is None:
        return
    try:
        client.publish(_channel(call_id), b"settled")
    except Exception:  # the waiters' own database checks still see the change
        logger.warning("Could not publish the settlement of tool call %s; waiters will poll.", call_id)


def wait(call_id: str, timeout: float, settled: Callable[[], bool]) -> bool:
    """Block until `settled()` is true or `timeout` seconds pass; return the last `settled()`."""
    deadline = time.monotonic() + min(timeout, MAX_WAIT_SECONDS)
    client = _redis()
    pubsub = None
    if client is not None:
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(_channel(call_id))
        except Exception:
            logger.warning("Redis is unavailable for long polls; polling the database instead.")
            pubsub = None
    try:
        # Subscribed first, then checked: a settlement between the two is not missed.
        while not settled():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if pubsub is not None:
                try:
                    pubsub.get_message(timeout=min(remaining, 1.0))
                    continue
                except Exception:
                    pubsub = None
            time.sleep(min(remaining, _POLL_SECONDS))
        return True
    finally:
        if pubsub is not None:
            with contextlib.suppress(Exception):  # closing a broken connection: nothing left to do
                pubsub.close()
