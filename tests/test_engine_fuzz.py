"""Fuzzed valid events through the engine and replay: whatever the contract accepts, the engine handles
without raising, and every row, action and decision it produces can be written out. An exception here
is a worker that stops on one message and meets it again on every restart."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.actions import Action
from workers.engine import Engine
from workers.events import parse_event
from workers.replay import replay
from workers.rules.policy import parse_policy
from workers.state import AccountState
from workers.timeutil import END_OF_TIME, format_rfc3339

DEFAULT = (Path(__file__).resolve().parents[1] / "workers" / "rules" / "default.yaml").read_text()
POLICIES = {
    "default": parse_policy(DEFAULT),
    "one-day horizon": parse_policy(DEFAULT.replace("  history_days: null\n", "  history_days: 1\n")),
    "tasks due a century later": parse_policy(DEFAULT.replace("due_in_days: 3", "due_in_days: 36500")),
}

ids = st.text(min_size=1, max_size=6) | st.sampled_from(["1", "2"])
dates = st.sampled_from(["0001-01-01", "1970-01-01", "2026-01-01", "2026-03-01", "2024-02-29", "8999-12-31",
                         "9999-12-31"])  # open-ended contracts often end on 9999-12-31
numbers = st.integers(-2**63, 2**63) | st.floats(allow_nan=False, allow_infinity=False)
DATA = {
    "account.created": st.fixed_dictionaries({}, optional={"name": st.text(max_size=5),
                                                          "kind": st.sampled_from(["company", "person"])}),
    "order.placed": st.fixed_dictionaries({"order_id": ids}, optional={"amount": numbers}),
    "order.refunded": st.fixed_dictionaries({"order_id": ids}),
    "subscription.started": st.fixed_dictionaries({"subscription_id": ids, "plan": st.sampled_from(["csm", "basic"])}),
    "subscription.changed": st.fixed_dictionaries({"subscription_id": ids, "plan": st.text(min_size=1, max_size=4)}),
    "subscription.cancelled": st.fixed_dictionaries({"subscription_id": ids}),
    "csm.assigned": st.fixed_dictionaries({"owner_id": ids}, optional={"owner_name": st.text(max_size=5)}),
    "csm.unassigned": st.just({}),
    "contract.signed": st.fixed_dictionaries({"contract_id": ids, "start": dates}, optional={"end": dates | st.none()}),
    "contract.ended": st.fixed_dictionaries({"contract_id": ids}),
    "service.purchased": st.fixed_dictionaries({"service": st.sampled_from(["consulting", "x"])}),
    "meeting.held": st.just({}),
    "ticket.opened": st.just({}),
    "property.changed": st.fixed_dictionaries({"name": st.text(min_size=1, max_size=4),
                                               "value": st.none() | st.booleans() | numbers | st.text(max_size=5)}),
}
# The calendar's edges (with offsets that move the UTC instant across midnight) and ordinary times.
times = st.sampled_from(["1000-01-01T00:00:00Z", "1000-01-01T00:00:00-14:00", "1970-01-01T00:00:00Z",
                         "2024-02-29T12:00:00.5Z", "2026-01-01T00:00:00+14:00", "2026-02-28T23:59:59.999999Z",
                         "2027-06-01T00:00:00Z", "8999-10-01T00:00:00Z", "8999-12-31T23:59:59Z"])


@st.composite
def events(draw) -> dict:
    kind = draw(st.sampled_from(sorted(DATA)))
    return {"specversion": "1.0", "id": draw(st.text(min_size=1, max_size=3)), "source": "fuzz",
            "type": f"crm.{kind}", "subject": draw(st.sampled_from(["a", "b"])), "time": draw(times),
            "data": draw(DATA[kind])}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), max_size=15), st.sampled_from(sorted(POLICIES)))
def test_whatever_the_contract_accepts_the_engine_handles_and_can_write_out(stream, policy_name):
    policy = POLICIES[policy_name]
    engine = Engine(policy)
    states: dict[str, AccountState] = {}
    for raw in stream:
        event = parse_event(raw)
        step = engine.handle(states.get(event.subject) or engine.new_state(event.subject), event)
        state = states[event.subject] = step.state
        assert AccountState.from_dict(orjson.loads(state.to_json())) == state
        assert state.next_deadline is None or state.next_deadline < END_OF_TIME
        for action in step.actions:  # and the sink takes each one back as it was
            assert Action.from_json(orjson.dumps(action.to_dict())) == action
        for decision in step.decisions:
            orjson.dumps(decision.to_dict())
    result = replay(stream, policy, as_of=END_OF_TIME)
    assert result.stats["invalid"] == 0
    assert orjson.loads(result.to_json())["stats"]["events"] + result.stats["duplicates"] + \
        result.stats["too_late"] == len(stream)


def test_an_event_at_the_calendar_s_end_plans_printable_deadlines_and_due_dates():
    engine = Engine(POLICIES["tasks due a century later"])
    signed = parse_event({"specversion": "1.0", "id": "1", "source": "s", "type": "crm.contract.signed",
                          "subject": "a", "time": "8999-12-31T23:59:59Z",
                          "data": {"contract_id": "c", "start": "8999-01-01", "end": "9999-12-31"}})
    step = engine.handle(engine.new_state("a"), signed)
    [task] = [a for a in step.actions if a.type == "task"]
    later = datetime(8999, 12, 31, 23, 59, 59) + timedelta(days=36_500)
    assert task.due == later.isoformat() + "Z"
    assert step.state.status == "client" and step.state.next_deadline is None  # its end is past the calendar
    assert format_rfc3339(END_OF_TIME) == "9000-01-01T00:00:00Z"
