"""From Kafka messages to canonical events, in structured or binary CloudEvents mode, and the
dead-letter record for whatever cannot be decoded."""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping, Sequence

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from workers.events import MAX_EVENT_BYTES, CanonicalEvent, InvalidEvent, parse_event
from workers.timeutil import parse_rfc3339

_JSON = JSONFormat()
Headers = Mapping[str, bytes] | Sequence[tuple[str, bytes]]


def _as_dict(headers: Headers | None) -> dict[str, bytes]:
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    # Kafka allows a header without a value; it reads as empty here rather than failing the message.
    return {str(k).lower(): b"" if v is None else bytes(v) for k, v in items}


def decode_message(value: bytes | None, headers: Headers | None) -> CanonicalEvent:
    """A message in either mode, validated against the same contract as files."""
    if value is not None and len(value) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event is {len(value)} bytes, over the {MAX_EVENT_BYTES}-byte limit")
    found = _as_dict(headers)
    if "ce_specversion" not in found:
        if value is None:
            raise InvalidEvent("empty message (a tombstone?) on the events topic")
        return parse_event(value)
    raw_time = found.get("ce_time", b"").decode("utf-8", errors="replace")
    try:
        parse_rfc3339(raw_time)
    except ValueError:
        # Checked before the SDK, whose parser fails with messages that do not name the header.
        raise InvalidEvent(f"ce_time: {raw_time!r} is not an RFC 3339 timestamp") from None
    try:
        event = from_binary(KafkaMessage(headers=found, key=None, value=value or b""), _JSON)
    except Exception as exc:  # the SDK raises a variety of types for bad headers; all mean the same here
        raise InvalidEvent(f"bad CloudEvents binary-mode headers: {exc}") from None
    attributes = event.get_attributes()
    structured = {name: attributes.get(name) for name in ("specversion", "id", "source", "type", "subject")}
    # The raw header, not the SDK's parsed datetime: the contract's RFC 3339 check applies as written.
    structured["time"] = raw_time
    structured["data"] = event.get_data()
    if isinstance(structured["data"], (bytes, str)):
        raise InvalidEvent("binary-mode data is not a JSON object")
    return parse_event(structured)


# Room left in a letter for its key, headers and record framing (Kafka's own per-record overhead is
# tens of bytes; our headers are the original's, a few hundred).
LETTER_SLACK = 16 * 1024


def dead_letter(kind: str, reason: str, original: bytes | None, headers: Headers | None = None,
                original_key: bytes | None = None, max_bytes: int | None = None, **context: Any) -> bytes:
    """The DLQ record: why, and the original bytes and key (base64, so nothing is lost to decoding).

    A letter must fit the producer's record limit, or sending it fails, the worker stops, and on restart
    meets the same message again: one large message would stop the stream for good. Base64 makes a
    letter a third larger than its original, so an original of ~750 KB, under Kafka's 1 MB limit
    itself, would not fit. Such a letter keeps the original's first bytes and `original_bytes`, its
    size; the whole original stays where `context` says it was read from, for the topic's retention.
    """
    original = original or b""
    record = {
        "kind": kind,
        "reason": reason,
        "original_base64": base64.b64encode(original).decode("ascii"),
        "headers": {k: v.decode("utf-8", errors="replace") for k, v in _as_dict(headers).items()},
        **context,
    }
    if original_key is not None:
        record["original_key_base64"] = base64.b64encode(original_key).decode("ascii")
    encoded = json.dumps(record, sort_keys=True).encode("utf-8")
    if max_bytes is None or len(encoded) <= max_bytes - LETTER_SLACK:
        return encoded
    room = max_bytes - LETTER_SLACK - (len(encoded) - len(record["original_base64"])) - 64
    record["original_base64"] = base64.b64encode(original[:max(0, room) // 4 * 3]).decode("ascii")
    record["original_bytes"] = len(original)
    return json.dumps(record, sort_keys=True).encode("utf-8")
