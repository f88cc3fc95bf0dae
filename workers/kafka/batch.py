"""What one batch of input events amounts to, collected before anything is written.

The worker folds a whole batch (Faust `take_events`) through the engine and only then writes: every
action, one audit record, and one state write per account, however many of the batch's events that
account had. Faust's per-message publish path is the expensive part of the worker, so the fewer
messages per event, the faster it goes; the decisions themselves are exactly the per-event ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from workers.actions import Action
from workers.engine import Decision, Step
from workers.state import AccountState


@dataclass
class Batch:
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    # Last state of every account the batch touched, and the input partition that owns it (the
    # changelog partition of its table rows).
    states: dict[str, tuple[AccountState, int]] = field(default_factory=dict)
    events_in: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    invalid: int = 0

    def add(self, step: Step, partition: int) -> None:
        self.actions.extend(step.actions)
        self.decisions.extend(step.decisions)
        self.states[step.state.account] = (step.state, partition)

    def transitions(self) -> Counter[tuple[str, str]]:
        return Counter((d.previous_status or "none", d.status) for d in self.decisions
                       if d.status != d.previous_status)

    def flags_raised(self) -> Counter[str]:
        return Counter(flag for d in self.decisions for flag in set(d.flags) - set(d.previous_flags))

    def deadlines_fired(self) -> int:
        return sum(1 for d in self.decisions if d.trigger.startswith("deadline:"))
