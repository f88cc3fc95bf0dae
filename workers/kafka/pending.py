"""Outputs decided but not yet written to Kafka, gathered across events and written together.

The worker handles events one by one (Faust's own per-event path and acknowledgements, unchanged),
and collects what they decide here: every action, every decision for the audit, and the latest
state of each account touched. A flush writes them all at once (workers.kafka.outbox): one state
row per account however many events it had, one audit record per partition. Faust's per-message
publish path was the largest cost of the worker; the decisions themselves are exactly the per-event ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from workers.actions import Action
from workers.engine import Decision, Step
from workers.fastinit import fast_frozen_init
from workers.state import AccountState


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Kept:
    """An account's latest state, the input partition that owns it (the changelog partition of its table
    rows), and what is known of its changelog row (workers.kafka.record_sizes)."""

    state: AccountState
    partition: int
    row: bytes | None = None  # encoded already (the write-out encodes the others)
    bound: int | None = None  # the row's size, or a bound on it; None: unknown

    def encoded(self) -> bytes:
        return self.state.to_json() if self.row is None else self.row


@dataclass
class Pending:
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    states: dict[str, Kept] = field(default_factory=dict)  # by account
    # Deadline rows that changed: None deletes the row.
    deadlines: dict[str, tuple[dict[str, Any] | None, int]] = field(default_factory=dict)
    events: int = 0

    def add(self, step: Step, partition: int, row: bytes | None = None, bound: int | None = None) -> None:
        self.actions.extend(step.actions)
        self.decisions.extend(step.decisions)
        self.states[step.state.account] = Kept(step.state, partition, row, bound)

    def bound_of(self, account: str) -> int | None:
        """What is known of the size of the account's row, if it was handled since the last write-out."""
        kept = self.states.get(account)
        return None if kept is None else kept.bound

    def __bool__(self) -> bool:
        return bool(self.states or self.deadlines or self.actions or self.decisions)

    def then(self, later: Pending) -> Pending:
        """This (unwritten) and what was decided after it, in order: for retrying a failed write-out."""
        return Pending([*self.actions, *later.actions], [*self.decisions, *later.decisions],
                       {**self.states, **later.states}, {**self.deadlines, **later.deadlines},
                       self.events + later.events)

    def partition_of(self, account: str) -> int:
        return self.states[account].partition

    def transitions(self) -> Counter[tuple[str, str]]:
        return Counter((d.previous_status or "none", d.status) for d in self.decisions
                       if d.status != d.previous_status)

    def flags_raised(self) -> Counter[str]:
        return Counter(flag for d in self.decisions for flag in set(d.flags) - set(d.previous_flags))

    def deadlines_fired(self) -> int:
        return sum(1 for d in self.decisions if d.trigger.startswith("deadline:"))


class WriteOutClock:
    """When the worker's timer writes pending outputs out, looking once every CLIENTSHIFT_PROCESS_WITHIN:
    a batch that already held decisions at the previous look (so none waits more than two looks, however
    steadily events trickle in), or one half full. Under load a batch reaches the size bound in about
    the time of two looks (500 events at ~7,000 a second), and the worker's CPU per event did not
    change with this rule (README, "Benchmarks")."""

    def __init__(self, half_batch: int) -> None:
        self.half_batch = half_batch
        self.last_seen: Pending | None = None

    def due(self, pending: Pending) -> bool:
        return pending is self.last_seen or pending.events >= self.half_batch

    def looked_at(self, pending: Pending) -> None:
        self.last_seen = pending if pending.events else None

