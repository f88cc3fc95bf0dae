"""Corrections to faust-streaming behaviour that Clientshift's delivery guarantee depends on, in one place.

Faust writes table changelogs through its ProducerBuffer and, before committing consumer offsets, calls
`ProducerBuffer.flush()`. That flush gives up as soon as 0.1 s pass without a message leaving the buffer
(`flush_atmost`), so under load the consumer can commit the offsets of events whose state updates are
still queued; a kill -9 at that moment restores stale state and the next decisions are wrong. Seen here
once in the crash test before this fix. The fix: flush until the buffer is really empty.
"""

from __future__ import annotations

from faust.transport.producer import ProducerBuffer

_applied = False


async def _flush_until_empty(self: ProducerBuffer) -> None:
    while self.size:
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        await self.flush_atmost(None)


def apply() -> None:
    global _applied
    if not _applied:
        ProducerBuffer.flush = _flush_until_empty  # type: ignore[method-assign]
        _applied = True
