"""Deterministic replay of recorded event streams.

Events are applied in the order given. Deadlines of all accounts are fired in time order before each
event, at their own instants, so the actions come out in the order they happened; at the end, every
deadline up to `as_of` fires. Same input, same policy, same `as_of`: byte-identical result.
"""

from __future__ import annotations

import heapq
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from connectors.base import ActionResult, Connector
from connectors.retry import RetryPolicy, apply_with_retry
from workers.actions import TASK, Action
from workers.engine import Decision, Engine, Step
from workers.events import CanonicalEvent, InvalidEvent, parse_event
from workers.rules.policy import Policy, load_policy
from workers.state import AccountState

APPLY_BATCH = 500


@dataclass(frozen=True, slots=True)
class SourcedLine:
    """One raw line and where it came from, so a rejection can name file and line."""

    where: str
    raw: str | bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    where: str
    reason: str
    kind: str = "invalid event"  # or "too late": valid, but older than the history horizon


@dataclass
class ReplayResult:
    accounts: dict[str, AccountState]
    actions: list[Action]
    decisions: list[Decision]
    rejected: list[Rejected]
    stats: dict[str, int]
    outcomes: list[ActionResult] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "accounts": [
                {"account": s.account, "status": s.status, "flags": list(s.flags), "reason": s.reason}
                for s in (self.accounts[a] for a in sorted(self.accounts))
            ],
            "actions": [action_summary(a) for a in self.actions],
            "stats": dict(self.stats),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_dict(), ensure_ascii=False, indent=None, separators=(",", ":"))


def action_summary(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"account": action.account, "type": action.type, "key": action.key, "at": action.at}
    if action.type == TASK:
        out.update(kind=action.kind, title=action.title, priority=action.priority, due=action.due)
    else:
        out.update(name=action.name, value=action.value)
    out["reason"] = action.reason
    return out


class Replayer:
    """Incremental replay: `feed` events, then `finish`. Keeps every account's state in memory."""

    def __init__(self, policy: Policy) -> None:
        self.engine = Engine(policy)
        self.states: dict[str, AccountState] = {}
        self.actions: list[Action] = []
        self.decisions: list[Decision] = []
        self.rejected: list[Rejected] = []
        self.stats = {"events": 0, "duplicates": 0, "invalid": 0, "too_late": 0}
        self.watermark: float | None = None
        self._deadlines: list[tuple[float, str]] = []

    def feed(self, item: CanonicalEvent | SourcedLine | Mapping[str, Any] | str | bytes) -> None:
        where = item.where if isinstance(item, SourcedLine) else "-"
        try:
            event = self._parse(item)
        except InvalidEvent as exc:
            self.stats["invalid"] += 1
            self.rejected.append(Rejected(where, exc.reason))
            return
        self._fire_until(event.time)
        state = self.states.get(event.subject) or self.engine.new_state(event.subject)
        step = self.engine.handle(state, event)
        if step.duplicate:
            self.stats["duplicates"] += 1
            return
        if step.too_late:
            self.stats["too_late"] += 1
            self.rejected.append(Rejected(where, step.too_late, "too late"))
            return
        self.stats["events"] += 1
        self.watermark = event.time if self.watermark is None else max(self.watermark, event.time)
        self._record(step)

    def finish(self, as_of: float | None = None) -> None:
        until = as_of if as_of is not None else self.watermark
        if until is not None:
            self._fire_until(until)

    def result(self) -> ReplayResult:
        return ReplayResult(self.states, self.actions, self.decisions, self.rejected, self.stats)

    @staticmethod
    def _parse(item: Any) -> CanonicalEvent:
        if isinstance(item, CanonicalEvent):
            return item
        return parse_event(item.raw if isinstance(item, SourcedLine) else item)

    def _fire_until(self, until: float) -> None:
        heap = self._deadlines
        while heap and heap[0][0] <= until:
            due, account = heapq.heappop(heap)
            state = self.states[account]
            if state.next_deadline != due:
                continue  # superseded by a later event of that account
            self._record(self.engine.advance(state, due))

    def _record(self, step: Step) -> None:
        state = step.state
        self.states[state.account] = state
        self.decisions.extend(step.decisions)
        self.actions.extend(step.actions)
        if state.next_deadline is not None:
            heapq.heappush(self._deadlines, (state.next_deadline, state.account))


def read_event_files(paths: Sequence[str | Path]) -> Iterator[SourcedLine]:
    """Yield every non-blank line of JSON-lines files (`-` reads standard input)."""
    for path in paths:
        handle = sys.stdin.buffer if str(path) == "-" else open(path, "rb")  # noqa: SIM115
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield SourcedLine(f"{path}:{number}", line.rstrip(b"\r\n"))
        finally:
            if handle is not sys.stdin.buffer:
                handle.close()


def replay(events: Iterable[CanonicalEvent | SourcedLine | Mapping[str, Any] | str | bytes],
           policy: Policy | None = None, *, as_of: float | None = None, connector: Connector | None = None,
           dry_run: bool = False, retry: RetryPolicy = RetryPolicy()) -> ReplayResult:
    """Replay a stream and, unless `dry_run`, apply the planned actions through `connector`."""
    replayer = Replayer(policy or load_policy())
    for item in events:
        replayer.feed(item)
    replayer.finish(as_of)
    result = replayer.result()
    if connector is not None and not dry_run:
        for start in range(0, len(result.actions), APPLY_BATCH):
            result.outcomes.extend(apply_with_retry(connector, result.actions[start:start + APPLY_BATCH], retry))
    return result
