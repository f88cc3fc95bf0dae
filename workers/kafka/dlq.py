"""Reading the dead-letter topic back, and sending its letters again once their cause is fixed:
`clientshift dlq show` and `clientshift dlq redrive`.

A letter goes back where it came from, with its original bytes and headers: an event to the topic it
was read from, a HubSpot webhook event to the raw HubSpot topic, an action to the actions topic. That is
safe to repeat: the engine ignores an event id it has applied, and the CRM connectors an action key
they have written. A letter whose cause is not fixed is dead-lettered again, as a new letter whose
`clientshift-redriven-from` header names the old one.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from kafka import KafkaProducer

from workers.kafka.settings import Settings
from workers.kafka.streams import read_topic, subject_key
from workers.timeutil import format_rfc3339

REDRIVEN_FROM = "clientshift-redriven-from"
# What workers.kafka.codec.dead_letter writes besides the context of where the original came from.
_LETTER_FIELDS = frozenset({"kind", "reason", "original_base64", "original_key_base64", "original_bytes", "headers"})


@dataclass(frozen=True)
class DeadLetter:
    partition: int  # where the letter itself is, on the DLQ topic
    offset: int
    timestamp_ms: int  # when it was dead-lettered
    kind: str  # event | hubspot_webhook | action | tick
    reason: str
    original: bytes
    original_key: bytes | None
    headers: dict[str, str]
    context: dict[str, Any]  # where the original was read from, or which account and connector
    original_bytes: int | None = None  # set when `original` is only the first bytes of one this size

    @property
    def where(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def dead_lettered_at(self) -> str:
        return format_rfc3339(self.timestamp_ms / 1000)

    def to_json_dict(self) -> dict[str, Any]:
        """What `dlq show --format json` prints for the letter (bytes in base64)."""
        return {"partition": self.partition, "offset": self.offset, "dead_lettered_at": self.dead_lettered_at,
                "kind": self.kind, "reason": self.reason, "origin": self.origin(), "context": self.context,
                "headers": self.headers, "original_base64": base64.b64encode(self.original).decode(),
                "original_key_base64": None if self.original_key is None else
                base64.b64encode(self.original_key).decode(),
                "original_bytes": self.original_bytes}

    def origin(self) -> str:
        context = self.context
        if "topic" in context:
            return f"{context['topic']}:{context.get('partition')}:{context.get('offset')}"
        if "key" in context:
            return f"{context.get('connector')} {context['key']}"
        return "-"


def read_dead_letters(settings: Settings) -> Iterator[DeadLetter]:
    """The DLQ topic's letters, up to its end now. A record that is not a letter (someone else's write)
    is reported as kind `unreadable` rather than skipped, so `show` accounts for every record."""
    for message in read_topic(settings, settings.topics.dlq):
        try:
            body = json.loads(message.value)
            key = body.get("original_key_base64")
            yield DeadLetter(message.partition, message.offset, message.timestamp, str(body["kind"]),
                             str(body["reason"]), base64.b64decode(body["original_base64"], validate=True),
                             None if key is None else base64.b64decode(key, validate=True),
                             dict(body.get("headers") or {}), {k: v for k, v in body.items() if k not in _LETTER_FIELDS},
                             body.get("original_bytes"))
        except (ValueError, KeyError, TypeError) as exc:
            yield DeadLetter(message.partition, message.offset, message.timestamp, "unreadable",
                             f"not a dead letter: {exc!r}", message.value or b"", message.key, {}, {})


def selected(letters: Iterable[DeadLetter], kind: str | None, reason: str | None) -> Iterator[DeadLetter]:
    needle = reason.lower() if reason else None
    for letter in letters:
        if (kind is None or letter.kind == kind) and (needle is None or needle in letter.reason.lower()):
            yield letter


@dataclass(frozen=True)
class Resend:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def unsendable(letter: DeadLetter) -> str | None:
    """Why a letter cannot be sent back, if it cannot."""
    if letter.kind == "tick":
        return "ticks are the deadline timer's own: it sends due ones again"
    if letter.kind not in ("event", "hubspot_webhook", "action"):
        return "not a letter: nowhere to send it"
    if letter.original_bytes is not None:
        return (f"the letter holds only the first {len(letter.original)} of {letter.original_bytes} bytes; "
                f"the original is at {letter.origin()}")
    return None


def resend_of(letter: DeadLetter, settings: Settings) -> Resend:
    """Where and how a letter goes back (for a letter `unsendable` says nothing against)."""
    topics = settings.topics
    headers = [(k, v.encode()) for k, v in letter.headers.items() if k != REDRIVEN_FROM]
    headers.append((REDRIVEN_FROM, f"{topics.dlq}:{letter.where}".encode()))
    if letter.kind == "event":
        # The original key; for letters written before keys were kept, the account the event names (or
        # none, and the worker re-keys it by its subject, as it does any event keyed by something else).
        key = letter.original_key if letter.original_key is not None else _subject(letter)
        return Resend(str(letter.context.get("topic") or topics.events), key, letter.original, headers)
    if letter.kind == "hubspot_webhook":
        return Resend(topics.hubspot_raw, letter.original_key, letter.original, headers)
    account = letter.context.get("account")  # an action
    key = letter.original_key or (account.encode() if isinstance(account, str) else None)
    return Resend(topics.actions, key, letter.original, headers)


def _subject(letter: DeadLetter) -> bytes | None:
    subject = letter.headers.get("ce_subject")
    return subject.encode() if subject else subject_key(letter.original)


@dataclass
class RedriveReport:
    sent: Counter[str]  # by topic
    skipped: list[tuple[DeadLetter, str]]  # selected, but not sent, and why


def redrive(settings: Settings, letters: Iterable[DeadLetter], dry_run: bool = False) -> RedriveReport:
    report = RedriveReport(Counter(), [])
    producer = None if dry_run else KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                                  **settings.kafka_python_security())
    try:
        for letter in letters:
            why_not = unsendable(letter)
            if why_not is not None:
                report.skipped.append((letter, why_not))
                continue
            resend = resend_of(letter, settings)
            if producer is not None:
                producer.send(resend.topic, key=resend.key, value=resend.value, headers=resend.headers)
            report.sent[resend.topic] += 1
        if producer is not None:
            producer.flush()
    finally:
        if producer is not None:
            producer.close()
    return report
