"""Time as the core sees it: UTC epoch seconds (floats), parsed from and printed as RFC 3339.

Epoch seconds keep state JSON-serialisable and fact arithmetic cheap; the only clock the core reads
is the `now` it is handed.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone

DAY = 86_400.0


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 timestamp with an explicit offset into epoch seconds."""
    value = datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return value.timestamp()


def parse_date(text: str) -> float:
    """A calendar date means its first instant, 00:00 UTC."""
    return datetime.combine(date.fromisoformat(text), datetime.min.time(), timezone.utc).timestamp()


def format_rfc3339(epoch: float) -> str:
    """Canonical output form: UTC, `Z`, milliseconds only when present (stable across runs)."""
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    if moment.microsecond:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def whole_days_since(earlier: float, now: float) -> int:
    """Completed days between two instants (90 at exactly 90 days, 90 until the 91st starts)."""
    return math.floor((now - earlier) / DAY)


def days_until(later: float, now: float) -> int:
    """Days left until an instant, rounded up (60 from exactly 60 days before until 59 days before)."""
    return math.ceil((later - now) / DAY)
