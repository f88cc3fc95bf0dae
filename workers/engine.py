"""The per-account engine: fold an event or a deadline into state, evaluate the rules, plan actions.

This is the one piece both `clientshift replay` and the Kafka worker call, so both give the same
statuses and actions for the same history. Everything here is pure: state in, (state, decisions,
actions) out, and the only time it knows is the `now` it derives from the event or deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.actions import Action, plan_actions
from workers.events import CanonicalEvent
from workers.facts import compute_facts, next_change, with_status
from workers.fastinit import fast_frozen_init
from workers.rules.policy import Policy
from workers.state import AccountState, apply_event, forget_old_ids
from workers.timeutil import DAY, format_rfc3339

# A safety net, not a limit anyone should meet: change points only move forward, so this many
# deadlines in one catch-up would mean a bug, and stopping beats spinning forever.
MAX_DEADLINES_PER_CATCH_UP = 100_000


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Decision:
    """One evaluation of one account: the audit record of what was decided and why."""

    account: str
    at: float
    trigger: str
    status: str
    rule: str
    flags: tuple[str, ...]
    previous_status: str | None
    previous_flags: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.status != self.previous_status or self.flags != self.previous_flags

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account, "at": format_rfc3339(self.at), "trigger": self.trigger,
            "status": self.status, "rule": self.rule, "flags": list(self.flags),
            "previous_status": self.previous_status, "previous_flags": list(self.previous_flags),
        }


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Step:
    state: AccountState
    decisions: tuple[Decision, ...] = ()
    actions: tuple[Action, ...] = ()
    duplicate: bool = False
    # Why the event was not applied although it is valid: it is older than the history horizon.
    too_late: str | None = None

    def then(self, later: Step) -> Step:
        return Step(later.state, self.decisions + later.decisions, self.actions + later.actions,
                    later.duplicate)


class Engine:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        days = policy.params.get("history_days")
        self.horizon: float | None = None if days is None else days * DAY

    @staticmethod
    def new_state(account: str) -> AccountState:
        return AccountState(account=account)

    def handle(self, state: AccountState, event: CanonicalEvent) -> Step:
        """Apply one event: deadlines due first, then the event at max(its time, the account's clock).

        A late event is applied at the account's clock (its watermark): time never runs backwards for an
        account, so a deadline that already fired is never undone by an older event.

        With a history horizon (`params.history_days`) only the ids of about that much history are
        kept, so an event older than the account's clock minus the horizon cannot be told from a
        duplicate: it is refused (`too_late`) rather than risk applying it twice.
        """
        key = event.dedupe_key
        if key in state.seen or key in state.seen_before:
            return Step(state, duplicate=True)
        horizon = self.horizon
        if horizon is not None and state.clock is not None and event.time <= state.clock - horizon:
            return Step(state, too_late=(
                f"event time {format_rfc3339(event.time)} is more than history_days "
                f"({self.policy.params['history_days']}) before the account's clock "
                f"{format_rfc3339(state.clock)}: ids that old are no longer kept, so it cannot be "
                "checked for a duplicate"))
        at = event.time if state.clock is None else max(state.clock, event.time)
        due = state.next_deadline
        # Most events have no deadline to fire first: they skip building and joining an empty step.
        caught_up = self.advance(state, at) if due is not None and due <= at else None
        applied = apply_event(state if caught_up is None else caught_up.state, event, at)
        if horizon is not None:
            applied = forget_old_ids(applied, at, horizon)
        evaluated = self._evaluate(applied, at, f"event:{key}")
        return evaluated if caught_up is None else caught_up.then(evaluated)

    def advance(self, state: AccountState, until: float) -> Step:
        """Fire every deadline of this account at or before `until`, in time order, each at its instant."""
        step = Step(state)
        for _ in range(MAX_DEADLINES_PER_CATCH_UP):
            due = step.state.next_deadline
            if due is None or due > until:
                return step
            step = step.then(self._evaluate(step.state, due, f"deadline:{format_rfc3339(due)}"))
        raise RuntimeError(f"account {state.account}: deadlines did not settle before {format_rfc3339(until)}")

    def _evaluate(self, state: AccountState, now: float, trigger: str) -> Step:
        policy = self.policy
        facts = compute_facts(state, now, policy.params)
        status, rule = policy.decide_status(facts)
        if status != "client":
            client_since = None
        elif state.status == "client" and state.client_since is not None:
            client_since = state.client_since
        else:
            client_since = now
        flags = policy.decide_flags(with_status(facts, state, status, client_since, now))
        actions = plan_actions(state, status, rule, flags, now, trigger, policy)
        decided = state.evolve(
            status=status, flags=flags, reason=rule, client_since=client_since,
            clock=now if state.clock is None else max(state.clock, now),
            next_deadline=next_change(state, status, client_since, now, policy.params, policy.day_thresholds),
        )
        decision = Decision(state.account, now, trigger, status, rule, flags, state.status, state.flags)
        return Step(decided, (decision,), tuple(actions))
