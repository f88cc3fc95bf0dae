"""Canonical events: parse and validate CloudEvents against the published contract.

Anything that is not a valid event becomes an `InvalidEvent` with a reason a human can act on; callers
dead-letter it and go on. Nothing here raises anything else for bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

import schemas
from workers.fastinit import fast_frozen_init
from workers.timeutil import END_OF_TIME, START_OF_TIME, format_rfc3339, parse_date, parse_rfc3339

MAX_EVENT_BYTES = 64 * 1024


class InvalidEvent(ValueError):
    """An event that breaks the contract; `reason` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class CanonicalEvent:
    id: str
    source: str
    type: str
    subject: str
    time: float
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        # CloudEvents promise uniqueness of (source, id), not of id alone.
        return f"{self.source}/{self.id}"

    def to_cloudevent(self) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": format_rfc3339(self.time),
            "data": dict(self.data),
        }


def _describe(error: Any) -> str:
    path = ".".join(str(part) for part in error.instance_path)
    if path == "type" and isinstance(error.instance, str):
        return f"type: unknown event type {error.instance!r}"
    return f"{path or 'event'}: {error.message}"


def parse_event(raw: bytes | str | Mapping[str, Any]) -> CanonicalEvent:
    """Validate one structured-mode CloudEvent (bytes, text or an already decoded object).

    Strict RFC 8259 JSON (orjson): NaN, Infinity and numbers that overflow a double are refused, and
    integers beyond 64 bits become doubles, so whatever an event puts into state can be written to the
    changelog and read back as it was. Python's json module accepted all of these.
    """
    if isinstance(raw, (bytes, bytearray, str)):
        size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
        if size > MAX_EVENT_BYTES:
            raise InvalidEvent(f"event is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit")
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"not valid JSON: {exc}") from None
    else:
        # Already decoded (binary-mode CloudEvents, tests): held to the same JSON as bytes are.
        try:
            decoded = orjson.loads(json.dumps(raw))
        except (TypeError, ValueError) as exc:
            raise InvalidEvent(f"not representable as JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(decoded).__name__}")
    contract = schemas.validator()
    if not contract.is_valid(decoded):
        raise InvalidEvent(_describe(next(iter(contract.iter_errors(decoded)))))
    try:
        moment = parse_rfc3339(decoded["time"])
    except ValueError as exc:
        raise InvalidEvent(f"time: not a valid RFC 3339 timestamp ({exc})") from None
    if not START_OF_TIME <= moment < END_OF_TIME:
        raise InvalidEvent(f"time: {decoded['time']} is outside the engine's calendar, "
                           f"{format_rfc3339(START_OF_TIME)} to {format_rfc3339(END_OF_TIME)}")
    data = decoded["data"]
    _check_dates(data)
    return CanonicalEvent(
        id=decoded["id"],
        source=decoded["source"],
        type=decoded["type"],
        subject=decoded["subject"],
        time=moment,
        data=data,
    )


def _check_dates(data: Mapping[str, Any]) -> None:
    # The schema checks the shape of a date; this catches 2026-02-30 and friends.
    for name in ("start", "end"):
        value = data.get(name)
        if isinstance(value, str):
            try:
                parse_date(value)
            except ValueError as exc:
                raise InvalidEvent(f"data.{name}: not a valid date ({exc})") from None
