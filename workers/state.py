"""Per-account relationship state and the pure fold of one event into it.

State is plain data (JSON-serialisable through `to_dict`/`from_dict`) so a Faust table can keep it in a
changelog and replay can keep it in a dict; `apply_event` never mutates its input.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import orjson

from workers.events import CanonicalEvent
from workers.timeutil import parse_date

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class AccountState:
    account: str
    name: str | None = None
    kind: str | None = None  # company | person
    # The account's own clock: the latest instant it was evaluated at (event or deadline).
    clock: float | None = None
    # Event ids, for deduplication: all of them, or, with a history horizon, two generations (see
    # forget_old_ids). `seen_since` is the clock at which the current generation started.
    seen: frozenset[str] = frozenset()
    seen_before: frozenset[str] = frozenset()
    seen_since: float | None = None
    orders: Mapping[str, Record] = field(default_factory=dict)  # id -> {at, refunded}
    subscriptions: Mapping[str, Record] = field(default_factory=dict)  # id -> {plan, active, at}
    csm: Record | None = None  # {owner_id, owner_name, since}
    contracts: Mapping[str, Record] = field(default_factory=dict)  # id -> {start, end, ended, at}
    services: tuple[tuple[str, float], ...] = ()  # (category, purchased at)
    last_meeting_at: float | None = None
    meetings: int = 0
    tickets: int = 0
    properties: Mapping[str, Any] = field(default_factory=dict)
    # What the last evaluation decided (the CRM's tag is written whenever the status changes).
    status: str | None = None
    flags: tuple[str, ...] = ()
    reason: str | None = None
    client_since: float | None = None
    next_deadline: float | None = None

    def evolve(self, **changes: Any) -> AccountState:
        """A copy with some fields changed (dataclasses.replace was the top line of the replay profile,
        and a loop over the fields the next one: see _compile_evolve)."""
        return _evolve(self, changes)

    def to_dict(self) -> dict[str, Any]:
        # By hand rather than dataclasses.asdict, which deep-copies recursively: this runs for every
        # changelog write.
        out = {name: getattr(self, name) for name in _FIELDS}
        out["seen"] = sorted(self.seen)
        out["seen_before"] = sorted(self.seen_before)
        out["services"] = [list(item) for item in self.services]
        out["flags"] = list(self.flags)
        if not self.seen_before and self.seen_since is None:
            del out["seen_before"], out["seen_since"]  # see _UNUSED_HORIZON
        return out

    def to_json(self) -> bytes:
        """`to_dict()` as JSON bytes, encoded by orjson straight from the dataclass (the changelog row
        the worker writes for every account it touches: a third of the cost of building the dict)."""
        return orjson.dumps(self, default=_json_extra).replace(_UNUSED_HORIZON, b"", 1)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AccountState:
        # Only the fields this version knows: a row written by a newer one (before a rollback) may hold more.
        values = {name: value for name, value in raw.items() if name in _FIELD_SET}
        values["seen"] = frozenset(values.get("seen", ()))
        values["seen_before"] = frozenset(values.get("seen_before", ()))  # absent from rows written before it
        values["services"] = tuple((str(c), float(t)) for c, t in values.get("services", ()))
        values["flags"] = tuple(values.get("flags", ()))
        return cls(**values)


_FIELDS = tuple(f.name for f in fields(AccountState))
_FIELD_SET = frozenset(_FIELDS)
# The history horizon's fields as orjson writes them when no horizon is set. Rows leave them out then, so
# a version from before the horizon (which refuses fields it does not know) can still read every row
# after a rollback, unless a horizon was in use. orjson writes fields in order with no spaces, so the
# bytes are exact; tests/test_history_horizon.py checks the row against to_dict.
_UNUSED_HORIZON = b',"seen_before":[],"seen_since":null'


def _json_extra(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(value)  # `seen` and `seen_before`, in a stable order
    raise TypeError(f"{type(value).__name__} is not JSON")


def _compile_evolve() -> Any:
    # Straight-line code generated from the field list: every field copied through its slot descriptor,
    # then the changed ones set. About three times faster than dataclasses.replace or a loop over the
    # names, and it runs twice for every event.
    lines = ["def evolve(self, changes):", "    new = new_state(AccountState)"]
    lines += [f"    set_{name}(new, self.{name})" for name in _FIELDS]
    lines += ["    for name, value in changes.items():", "        set_field(new, name, value)", "    return new"]
    namespace: dict[str, Any] = {"new_state": object.__new__, "set_field": object.__setattr__,
                                 "AccountState": AccountState}
    namespace.update({f"set_{name}": getattr(AccountState, name).__set__ for name in _FIELDS})
    exec("\n".join(lines), namespace)  # noqa: S102 - the source is the dataclass's own field names
    return namespace["evolve"]


_evolve = _compile_evolve()


def _with(mapping: Mapping[str, Record], key: str, **changes: Any) -> dict[str, Record]:
    updated = dict(mapping)
    updated[key] = {**mapping.get(key, {}), **changes}
    return updated


def forget_old_ids(state: AccountState, at: float, horizon: float) -> AccountState:
    """Bound the ids kept for deduplication to about `horizon` seconds of the account's clock.

    Ids are kept in two generations rather than with a time each (a time per id would add a fifth to
    every changelog row, horizon or not): once the current generation is `horizon` old, it becomes the
    previous one and the previous one is dropped. So an id applied at clock `c` is kept at least until
    the clock passes `c + horizon` (and at most twice that), and any event with a time after
    `clock - horizon` is checked exactly; the engine refuses older ones (Engine.handle).
    """
    if state.seen_since is None:
        return state.evolve(seen_since=at)
    if at - state.seen_since < horizon:
        return state
    return state.evolve(seen=frozenset(), seen_before=state.seen, seen_since=at)


def apply_event(state: AccountState, event: CanonicalEvent, at: float) -> AccountState:
    """Fold one validated event into the state; `at` is when it takes effect (the account's clock)."""
    data = event.data
    kind = event.type
    changes: dict[str, Any] = {"seen": state.seen | {event.dedupe_key}, "clock": at}
    if kind == "crm.account.created":
        changes["name"] = data.get("name", state.name)
        changes["kind"] = data.get("kind", state.kind)
    elif kind == "crm.order.placed":
        previous = state.orders.get(data["order_id"], {})
        # A refund that arrived first stays a refund.
        changes["orders"] = _with(state.orders, data["order_id"], at=event.time,
                                  refunded=previous.get("refunded", False))
    elif kind == "crm.order.refunded":
        changes["orders"] = _with(state.orders, data["order_id"], refunded=True)
    elif kind in ("crm.subscription.started", "crm.subscription.changed"):
        changes["subscriptions"] = _with(state.subscriptions, data["subscription_id"],
                                         plan=data["plan"], active=True, at=event.time)
    elif kind == "crm.subscription.cancelled":
        changes["subscriptions"] = _with(state.subscriptions, data["subscription_id"], active=False)
    elif kind == "crm.csm.assigned":
        changes["csm"] = {"owner_id": data["owner_id"], "owner_name": data.get("owner_name"),
                          "since": event.time}
    elif kind == "crm.csm.unassigned":
        changes["csm"] = None
    elif kind == "crm.contract.signed":
        end = data.get("end")
        changes["contracts"] = _with(state.contracts, data["contract_id"], start=parse_date(data["start"]),
                                     end=parse_date(end) if end else None, ended=False, at=event.time)
    elif kind == "crm.contract.ended":
        changes["contracts"] = _with(state.contracts, data["contract_id"], ended=True)
    elif kind == "crm.service.purchased":
        changes["services"] = (*state.services, (data["service"], event.time))
    elif kind == "crm.meeting.held":
        latest = event.time if state.last_meeting_at is None else max(state.last_meeting_at, event.time)
        changes["last_meeting_at"] = latest
        changes["meetings"] = state.meetings + 1
    elif kind == "crm.ticket.opened":
        changes["tickets"] = state.tickets + 1
    elif kind == "crm.property.changed":
        changes["properties"] = {**state.properties, data["name"]: data["value"]}
    return state.evolve(**changes)
