"""Client-side throttling: a token bucket, nudged by HubSpot's X-HubSpot-RateLimit-* headers.

This only paces requests so we rarely see a 429; it never retries anything (that is connectors/retry.py).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Mapping


class TokenBucket:
    def __init__(self, rate: float, per: float, capacity: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate / per  # tokens per second
        self.capacity = capacity if capacity is not None else rate
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._blocked_until = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds spent waiting, for reports and tests

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if now < self._blocked_until:
                    delay = self._blocked_until - now
                elif self._tokens >= 1:
                    self._tokens -= 1
                    self.waited += waited
                    return waited
                else:
                    delay = (1 - self._tokens) / self.rate
            self._sleep(delay)
            waited += delay

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """When HubSpot says the window is spent, hold requests until it rolls over."""
        if not headers:
            return
        remaining = _header_int(headers, "X-HubSpot-RateLimit-Remaining")
        interval_ms = _header_int(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        if remaining is not None and remaining <= 0 and interval_ms:
            with self._lock:
                self._tokens = 0.0
                self._blocked_until = max(self._blocked_until, self._clock() + interval_ms / 1000.0)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = _header(headers, name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None:
        lowered = name.lower()
        for key, item in dict(headers).items():
            if key.lower() == lowered:
                return item
    return value
