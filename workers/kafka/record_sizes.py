"""What the worker writes for an event, against Kafka's record limit: an early warning for state rows,
and refusing the event whose state row or action would pass the limit.

An account's row holds its whole history (every event id it has seen, every order), so it grows with
the account's age, about 40 B per event, and with what its events carry (a property's value is kept).
An action's text comes from the rules' templates and the account's data (its name, its CSM's name).
Kafka refuses a record over the broker's `message.max.bytes` (1 MiB by default), and the worker writes
these as record batches of its own, which no client checks: a record over the limit would fail the
write-out, and the worker, restarted, would meet the same events and fail again. So:
- a warning long before, a gauge of the largest row written (for an alert) and one log line per
  account whose row passes a mark;
- an event whose account's row, or one of whose actions, would be over the limit is refused: it goes
  to the DLQ with the reason, the account keeps its state, and the worker goes on. Raising the limit,
  bounding the ids kept (the rules' `params.history_days`) or shortening the templates, and then
  `clientshift dlq redrive`, applies it.

Knowing a row's size means encoding it, which the write-out does anyway, once per account and batch.
So an account's first event in a batch is encoded when handled, and the write-out reuses those bytes;
a later event of the same account in the batch adds at most `growth_bound` of its size, and is encoded
only when that bound could reach the limit. An action is encoded here only when its text could.
"""

from __future__ import annotations

import logging

import orjson

from workers import metrics
from workers.actions import ACTION_FIELDS, Action
from workers.engine import Step
from workers.state import AccountState

log = logging.getLogger("clientshift.worker")

KAFKA_DEFAULT_MESSAGE_LIMIT = 1024 * 1024
# Room in a record for its key (an account id: 256 characters at most) and Kafka's framing, and in a row
# for what deadlines add after the account's last event: their rows are not checked, as they change only
# its status, flags, rule and instants.
ROW_SLACK = 16 * 1024
# What one event can add besides its data: its source and id (from headers in binary mode: 768
# characters at most, 6 bytes each if escaped), field names, instants and its one number written anew,
# and the status, flags and rule of the evaluations it causes.
EVENT_OVERHEAD = 8 * 1024


def growth_bound(event_bytes: int) -> int:
    """At most how many bytes handling an event of `event_bytes` adds to its account's row.

    Each string of its data is kept at most once, and a string takes no more room in the row than in the
    event (JSON escapes the same characters on both sides); the contract allows no arrays or objects
    among its values, so its only number that can be written longer (`1e15` as 1000000000000000.0) is
    a property's one value."""
    return event_bytes + EVENT_OVERHEAD


def action_bound(action: Action) -> int:
    """At most how many bytes the action's record takes: each character of its text is at most six
    bytes in JSON (`\\u0001`), and its field names and punctuation fit in the rest."""
    text = 0
    for name in ACTION_FIELDS:
        value = getattr(action, name)
        if value is not None:
            text += len(value)
    return 6 * text + 1024


class RecordSizes:
    def __init__(self, warn_at: int, max_record_bytes: int) -> None:
        self.warn_at = warn_at
        self.limit = max_record_bytes - ROW_SLACK  # the largest row or action an event may leave
        self.max_record_bytes = max_record_bytes
        self.largest = 0
        self.warned: set[str] = set()

    def check(self, step: Step, known: int | None, event_bytes: int) -> tuple[bytes | None, int, str | None]:
        """For an event's step: the row its state is written as (or None when a bound keeps it within the
        limit), its size or that bound, and why the event is refused, if it is. `known`: a bound on the
        account's row before the event, or None."""
        row, size = self.measure(step.state, known, event_bytes)
        if size > self.limit:
            return row, size, self._refusal(f"the state of account {step.state.account!r} would be a {size}-byte "
                                            "row", "bound the event ids it keeps with the rules' params.history_days")
        return row, size, self.action_refusal(step.actions)

    def action_refusal(self, actions: tuple[Action, ...]) -> str | None:
        """Why these actions cannot be written, if one of them would pass the limit. (A deadline's step is
        checked only for this: what it adds to a row fits in the room kept for it.)"""
        for action in actions:
            if action_bound(action) > self.limit:
                encoded = len(orjson.dumps(action.to_dict()))
                if encoded > self.limit:
                    return self._refusal(f"action {action.key[:300]!r} would be a {encoded}-byte record",
                                         "shorten the rules' task templates")
        return None

    def measure(self, state: AccountState, known: int | None, event_bytes: int) -> tuple[bytes | None, int]:
        """The row `state` is written as, and its size; or None and a bound on its size when the bound
        keeps it within the limit."""
        if known is not None:
            bound = known + growth_bound(event_bytes)
            if bound <= self.limit:
                return None, bound
        row = state.to_json()
        return row, len(row)

    def _refusal(self, what: str, remedy: str) -> str:
        return (f"{what}, over the {self.limit} bytes a record can hold (CLIENTSHIFT_MAX_RECORD_BYTES "
                f"{self.max_record_bytes}, less {ROW_SLACK} for its key and framing): {remedy}, or raise the "
                "limit with the topics' max.message.bytes")

    def over(self, account: str, size: int) -> None:
        """A row over `warn_at` was written (the caller compares: this runs for every row written)."""
        if account in self.warned:
            return
        self.warned.add(account)
        log.warning("account state row is large", extra={
            "account": account, "row_bytes": size, "warn_at": self.warn_at, "limit": self.limit,
            "kafka_default_limit": KAFKA_DEFAULT_MESSAGE_LIMIT,
            "remedy": "bound the event ids kept with the rules' params.history_days"})

    def largest_of_batch(self, size: int) -> None:
        """The largest row of one write-out: the gauge only ever goes up (rows do not shrink)."""
        if size > self.largest:
            self.largest = size
            metrics.STATE_ROW_BYTES.set(size)
