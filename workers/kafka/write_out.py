"""Writing out what the events handled so far decided (workers.kafka.pending): actions and audit first,
acknowledged by Kafka, then each touched account's state row and deadline. Faust commits the events'
offsets only after this (faust_fixes.flush_before_commit), so a crash can repeat actions (the CRM
dedupes them by key) but never lose one, nor a state change."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

import orjson

from workers import metrics
from workers.kafka.outbox import Outbox, json_arrays
from workers.kafka.pending import Pending
from workers.kafka.runtime import Runtime
from workers.kafka.settings import Topics

log = logging.getLogger("clientshift.worker")


class WriteOut:
    def __init__(self, rt: Runtime, producer: Callable[[], Any], topics: Topics, accounts_changelog: str,
                 deadlines_changelog: str) -> None:
        self._rt = rt
        self._producer = producer  # the aiokafka producer, once Faust has started it
        self._topics = topics
        self._accounts_changelog = accounts_changelog
        self._deadlines_changelog = deadlines_changelog

    async def __call__(self) -> None:
        rt = self._rt
        async with rt.flushing:
            pending, rt.pending = rt.pending, Pending()
            if not pending:
                return
            try:
                await self._write(pending)
            except BaseException:
                # Nothing is lost: the next write-out (at the latest, the one before a commit) sends it
                # again, and until one succeeds no offset covering these events is committed.
                rt.pending = pending.then(rt.pending)
                raise
        _report(pending)

    async def _write(self, pending: Pending) -> None:
        topics, sizes = self._topics, self._rt.record_sizes
        outbox = Outbox(self._producer())
        for action in pending.actions:
            outbox.add(topics.actions, pending.partition_of(action.account), action.account.encode(),
                       orjson.dumps(action.to_dict()))
        audit: dict[int, list[bytes]] = {}
        for decision in pending.decisions:
            audit.setdefault(pending.partition_of(decision.account), []).append(orjson.dumps(decision.to_dict()))
        for partition, decisions in audit.items():
            # An audit record per write-out and partition lists every decision with its rule; a large
            # batch (or long event ids) is split, with the same room a state row leaves.
            for record in json_arrays(decisions, sizes.limit):
                outbox.add(topics.audit, partition, None, record)
        await outbox.flush()  # the actions are in Kafka before any state that says their events were seen
        largest, warn_at = 0, sizes.warn_at
        for account, kept in pending.states.items():
            row = kept.encoded()
            size = len(row)
            largest = size if size > largest else largest
            if size > warn_at:
                sizes.over(account, size)
            outbox.add(self._accounts_changelog, kept.partition, orjson.dumps(account), row)
        sizes.largest_of_batch(largest)
        for account, (due, partition) in pending.deadlines.items():
            outbox.add(self._deadlines_changelog, partition, orjson.dumps(account),
                       None if due is None else orjson.dumps(due))
        await outbox.flush()


class WriteOutPacer:
    """Counts each handled event into the pending batch and, once it holds `batch` events, starts a
    write-out in the background while the next events are handled. One at a time, so the caller waits
    when Kafka is the slower side; a failed write-out raises in the caller (its outputs were put back)."""

    def __init__(self, rt: Runtime, write_out: Callable[[], Awaitable[None]], batch: int) -> None:
        self._rt = rt
        self._write_out = write_out
        self._batch = batch
        self._writing: asyncio.Future[None] | None = None

    async def handled(self) -> None:
        pending = self._rt.pending
        pending.events += 1
        if pending.events >= self._batch:
            await self.settled()
            self._writing = asyncio.ensure_future(self._write_out())

    async def settled(self) -> None:
        """Once the write-out in flight, if any, is done."""
        if self._writing is not None:
            await self._writing
            self._writing = None


def _report(pending: Pending) -> None:
    metrics.DEADLINES.inc(pending.deadlines_fired())
    for (before, after), count in pending.transitions().items():
        metrics.TRANSITIONS.labels(before, after).inc(count)
    for flag, count in pending.flags_raised().items():
        metrics.FLAGS_RAISED.labels(flag).inc(count)
    for decision in pending.decisions:
        if decision.status != decision.previous_status:
            log.info("status changed", extra={"account": decision.account, "trigger": decision.trigger,
                                              "from_status": decision.previous_status,
                                              "to_status": decision.status, "rule": decision.rule})
