"""What the `process` agent does with one record of the events or ticks topic: the engine's step for it
(exactly what `clientshift replay` runs), kept for the next write-out (workers.kafka.write_out), or a
dead letter that says why. No record stops the worker, and none is lost."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from workers import metrics
from workers.engine import Step
from workers.events import InvalidEvent
from workers.kafka import faust_fixes
from workers.kafka.codec import decode_message
from workers.kafka.dead_letters import DeadLetters
from workers.kafka.runtime import Runtime
from workers.state import AccountState


class UnreadableState(ValueError):
    """An account's row restored from the changelog that is not a state this version can read."""


def read_tick(value: bytes | None) -> tuple[str, float]:
    """(account, until) from a tick the deadline timer wrote; ValueError for anything else."""
    try:
        tick = json.loads(value or b"")
        account, until = tick["account"], float(tick["until"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(repr(exc)) from None
    if not isinstance(account, str) or not math.isfinite(until):
        raise ValueError(f"account must be text and until a finite time, got {account!r} and {until!r}")
    return account, until


def _origin(message: Any) -> dict[str, Any]:
    """Where a record was read from, for its dead letter."""
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}


class Processor:
    def __init__(self, rt: Runtime, accounts: Any, deadlines: Any, events_topic: Any,
                 letters: DeadLetters) -> None:
        self._rt = rt
        self._accounts = accounts  # Faust tables: an account's state, and its next deadline
        self._deadlines = deadlines
        self._events_topic = events_topic
        self._letters = letters
        self._ticks = rt.settings.topics.ticks
        self._accounts_changelog = accounts.changelog_topic.get_topic_name()
        # So the store drops these rows when their partition moves to another worker (faust_fixes, fix 9).
        self._account_partition = faust_fixes.partition_recorder(accounts)
        self._deadline_partition = faust_fixes.partition_recorder(deadlines)
        self._events_in: dict[str, Any] = {}  # labelled counters by topic, looked up once, not per event

    async def handle(self, event: Any) -> None:
        message = event.message
        counter = self._events_in.get(message.topic)
        if counter is None:
            counter = self._events_in[message.topic] = metrics.EVENTS_IN.labels(message.topic)
        counter.inc()
        if message.topic == self._ticks:
            await self._tick(event, message)
        else:
            await self._event(event, message)

    async def _tick(self, event: Any, message: Any) -> None:
        try:
            account, until = read_tick(event.value)
        except ValueError as exc:  # the timer writes ticks; anything else there must not stop the worker
            await self._refuse("tick", f"not a tick: {exc}", event, message)
            return
        try:
            state = self.load(account)
        except UnreadableState as exc:
            await self._refuse("tick", str(exc), event, message, account=account)
            return
        step = self._rt.engine.advance(state, until)
        refused = self._rt.record_sizes.action_refusal(step.actions)
        if refused:  # the deadline waits, with the account's state, until the cause is fixed
            metrics.OVER_RECORD_LIMIT.labels("tick").inc()
            await self._refuse("tick", f"{refused}; the timer sends the tick again when the worker restarts",
                               event, message, account=account)
            return
        self.keep(step, message.partition)

    async def _event(self, event: Any, message: Any) -> None:
        try:
            canonical = decode_message(event.value, message.headers)
        except InvalidEvent as exc:
            metrics.EVENTS_INVALID.inc()
            await self._refuse("event", exc.reason, event, message)
            return
        key = (event.key or b"").decode("utf-8", errors="replace")
        if key != canonical.subject:
            # One account, one partition owner: an event keyed by anything else is re-keyed first.
            await self._events_topic.send(key=canonical.subject.encode(), value=event.value,
                                          headers=list(message.headers or ()), force=True)
            return
        about = {"account": canonical.subject, "event_id": canonical.id}
        try:
            state = self.load(canonical.subject)
        except UnreadableState as exc:  # only a row someone else wrote to the changelog: a CRC guards ours
            await self._refuse("event", str(exc), event, message, **about)
            return
        step = self._rt.engine.handle(state, canonical)
        if step.duplicate:
            metrics.DUPLICATES.inc()
            return
        if step.too_late:
            metrics.TOO_LATE.inc()
            await self._refuse("event", step.too_late, event, message, **about)
            return
        row, size, refused = self._rt.record_sizes.check(step, self._rt.pending.bound_of(canonical.subject),
                                                         len(event.value or b""))
        if refused:  # Kafka would refuse a record, and the worker would meet this event after every restart
            metrics.OVER_RECORD_LIMIT.labels("event").inc()
            await self._refuse("event", f"{refused}, then redrive it", event, message, **about)
            return
        self.keep(step, message.partition, row, size)

    async def _refuse(self, kind: str, reason: str, event: Any, message: Any, **context: Any) -> None:
        await self._letters.send(kind, reason, event.value, message.headers, event.key, **_origin(message),
                                 **context)

    def load(self, account: str) -> AccountState:
        # Rows this worker wrote hold the state itself; rows restored from the changelog hold its JSON.
        stored = self._accounts.data.get(account)
        if isinstance(stored, AccountState):
            return stored
        if not stored:
            return self._rt.engine.new_state(account)
        try:
            return AccountState.from_dict(orjson.loads(stored))
        except (ValueError, TypeError, AttributeError) as exc:
            raise UnreadableState(f"the state of account {account!r} in {self._accounts_changelog} cannot be "
                                  f"read ({exc!r:.200}); its events wait in the DLQ until the row is mended") from None

    def keep(self, step: Step, partition: int, row: bytes | None = None, bound: int | None = None) -> None:
        """The step's state into the tables, and its outputs into the next write-out."""
        rt, state = self._rt, step.state
        self._accounts.data[state.account] = state
        self._account_partition(state.account, partition)
        due = None if state.next_deadline is None else {"due": state.next_deadline, "partition": partition}
        deadlines = self._deadlines.data
        if deadlines.get(state.account) != due:
            if due is None:
                deadlines.pop(state.account, None)
            else:
                deadlines[state.account] = due
                self._deadline_partition(state.account, partition)
                rt.due.add(state.account, due["due"])
            rt.pending.deadlines[state.account] = (due, partition)
        rt.pending.add(step, partition, row, bound)
