"""Sending a record the worker cannot take to the DLQ: the letter (workers.kafka.codec.dead_letter), a
warning that says why and where from without the body, and a count by kind."""

from __future__ import annotations

import logging
from typing import Any

from workers import metrics
from workers.kafka.codec import Headers, dead_letter

log = logging.getLogger("clientshift.worker")

_LOGGED_CONTEXT = ("topic", "partition", "offset", "account", "event_id", "key", "connector")


class DeadLetters:
    def __init__(self, topic: Any, max_bytes: int) -> None:
        self._topic = topic  # the Faust topic of the DLQ
        self._max_bytes = max_bytes  # the producer's record limit, which a letter must fit

    async def send(self, kind: str, reason: str, value: bytes | None, headers: Headers | None,
                   message_key: bytes | None = None, **context: Any) -> None:
        # Keyed as the original was (an action by its account), so one account's letters stay in order on
        # one partition, and `clientshift dlq redrive` sends them back in that order.
        metrics.DLQ.labels(kind).inc()
        # The reason and where the original came from, never its body (it may hold personal data).
        log.warning("sent to the DLQ", extra={"kind": kind, "reason": reason[:300], **{
            name: value for name, value in context.items() if name in _LOGGED_CONTEXT}})
        self._topic.send_soon(key=message_key,
                              value=dead_letter(kind, reason, value, headers, original_key=message_key,
                                                max_bytes=self._max_bytes, **context))
