"""Call counters for rate limits and the loop guard: Redis when REDIS_URL is set, else in-process.

Fixed windows (minute, hour, loop window) keyed by agent, tool and argument digest. The edge
counts a call before deciding it, so the count includes the call being decided and attempts
count whether or not they are allowed (a denied runaway loop is still a loop). Redis makes the
counts correct across processes and machines, in one round trip per call; the in-process
fallback is exact within a process and is what the embedded default (one machine) uses.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from django.conf import settings

from policy.engine import Counters


class CounterStore(Protocol):
    def hit(self, keys: list[tuple[str, int]]) -> list[int]:
        """Increment each key (with its window in seconds) and return the new counts."""


def _window_keys(
    *, agents: Iterable[str], caller: str, tool: str, digest: str, loop_window: int, now: float
) -> list[tuple[str, int]]:
    minute, hour, loop = int(now // 60), int(now // 3600), int(now // loop_window)
    keys: list[tuple[str, int]] = []
    for agent in agents:
        keys.append((f"warden:rate:m:{agent}:{tool}:{minute}", 60))
        keys.append((f"warden:rate:h:{agent}:{hour}", 3600))
    keys.append((f"warden:loop:{caller}:{tool}:{digest}:{loop}", loop_window))
    return keys


def count_call(*, agents: list[str], tool: str, digest: str, loop_window: int) -> Counters:
    """Count one call by `agents[0]` (on behalf of the rest); the engine's counters, cost not included."""
    keys = _window_keys(
        agents=agents, caller=agents[0], tool=tool, digest=digest, loop_window=loop_window, now=time.time()
    )
    values = store().hit(keys)
    return Counters(
        tool_calls_last_minute={agent: values[2 * index] for index, agent in enumerate(agents)},
        calls_last_hour={agent: values[2 * index + 1] for index, agent in enumerate(agents)},
        repeats_in_window=values[-1],
    )


class MemoryCounters:
    """Exact counts within one process; expired windows are swept as new ones open."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def hit(self, keys: list[tuple[str, int]]) -> list[int]:
        now = time.monotonic()
        with self._lock:
            if now >= self._next_sweep:
                self._counts = {key: value for key, value in self._counts.items() if value[1] > now}
                self._next_sweep = now + 30
            result = []
            for key, window in keys:
                count, expires = self._counts.get(key, (0, now + window))
                self._counts[key] = (count + 1, expires)
                result.append(count + 1)
            return result

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


# INCR every key; a key's first increment also sets its expiry (its window, plus a second).
_HIT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, tonumber(ARGV[i]) + 1) end
  counts[i] = count
end
return counts
"""


class RedisCounters:
    """Counts shared by every process: one server-side script per call (one round trip, atomic)."""

    def __init__(self, url: str) -> None:
        import redis

        self._client: Any = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._hit = self._client.register_script(_HIT)

    def hit(self, keys: list[tuple[str, int]]) -> list[int]:
        counts = self._hit(keys=[key for key, _ in keys], args=[window for _, window in keys])
        return [int(value) for value in counts]

    def reset(self) -> None:
        for key in self._client.scan_iter("warden:*"):
            self._client.delete(key)


_store: CounterStore | None = None
_store_lock = threading.Lock()


def store() -> Any:
    """The process's counter store (Redis when settings.REDIS_URL is set)."""
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                url = getattr(settings, "REDIS_URL", "")
                _store = RedisCounters(url) if url else MemoryCounters()
    return _store


def reset() -> None:
    """Forget every count (tests)."""
    store().reset()
