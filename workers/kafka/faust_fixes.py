"""Corrections to faust-streaming behaviour that Clientshift's delivery guarantee depends on, in one place.

1. Faust writes table changelogs through its ProducerBuffer and, before committing consumer offsets, calls
   `ProducerBuffer.flush()`. That flush gives up as soon as 0.1 s pass without a message leaving the
   buffer (`flush_atmost`), so under load the consumer can commit the offsets of events whose state
   updates are still queued; a kill -9 at that moment restores stale state and the next decisions are
   wrong. Seen here once in the crash test before this fix. The fix: flush until the buffer is really empty.
2. After table recovery, Faust resumes the stream partitions and only then seeks them to their committed
   offsets (`Recovery.on_recovery_completed`). Records fetched in between reach the agents and are
   acknowledged before the seek resets the consumer's bookkeeping; seen here as a few offsets per
   partition that never count as acknowledged again (commits stop for good: a restarted worker never
   catches up) or events that are not handled. The fix: seek first, then resume.
3. The worker holds its outputs back to write them in batches (workers.kafka.pending). Faust commits an
   event's offset once the agent has moved past it, after calling `producer.flush()`; registering the
   worker's own flush there keeps every commit behind the outputs of the events it covers.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable
from weakref import WeakKeyDictionary

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import Producer
from faust.transport.producer import ProducerBuffer

_applied = False
_before_flush: WeakKeyDictionary[Any, list[Callable[[], Awaitable[None]]]] = WeakKeyDictionary()
_producer_flush = Producer.flush
_on_recovery_completed = Recovery.on_recovery_completed


async def _flush_until_empty(self: ProducerBuffer) -> None:
    while self.size:
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        await self.flush_atmost(None)


async def _flush_with_pending_outputs(self: Producer) -> None:
    for hook in _before_flush.get(self, ()):
        await hook()
    await _producer_flush(self)


class _Held:
    """Stream partitions Faust asked to resume while a seek is still to come."""

    def __init__(self) -> None:
        self.partitions: set[Any] = set()


_held: WeakKeyDictionary[Any, _Held] = WeakKeyDictionary()
_resume_partitions_now = Consumer.resume_partitions
_perform_seek_now = Consumer.perform_seek


def _resume_partitions(self: Consumer, tps: Any) -> None:
    held = _held.get(self)
    if held is None:
        _resume_partitions_now(self, tps)
    else:
        held.partitions.update(tps)


async def _perform_seek(self: Consumer) -> None:
    await _perform_seek_now(self)
    _release(self)


def _release(consumer: Consumer, only: _Held | None = None) -> None:
    held = _held.get(consumer)
    if held is None or (only is not None and held is not only):
        return
    del _held[consumer]
    if held.partitions:
        _resume_partitions_now(consumer, held.partitions)


async def _seek_then_resume(self: Recovery, generation_id: int = 0) -> None:
    consumer = self.app.consumer
    mine = _held.get(consumer) or _Held()
    _held[consumer] = mine
    try:
        await _on_recovery_completed(self, generation_id)
    finally:
        _release(consumer, only=mine)  # no seek happened (empty assignment, a new rebalance): resume now


def flush_before_commit(app: Any, hook: Callable[[], Awaitable[None]]) -> None:
    """Run `hook` whenever Faust flushes the app's producer (before every offset commit, and at stop)."""
    hooks = _before_flush.setdefault(app.producer, [])
    if hook not in hooks:
        hooks.append(hook)


def apply() -> None:
    global _applied
    if not _applied:
        ProducerBuffer.flush = _flush_until_empty  # type: ignore[method-assign]
        Producer.flush = _flush_with_pending_outputs  # type: ignore[method-assign]
        Recovery.on_recovery_completed = _seek_then_resume  # type: ignore[method-assign]
        Consumer.resume_partitions = _resume_partitions  # type: ignore[method-assign]
        Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
        _applied = True
