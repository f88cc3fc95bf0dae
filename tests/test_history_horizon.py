"""The history horizon (`params.history_days`): bounded deduplication state, exact within the horizon,
and older events refused with a reason rather than risk being applied twice."""

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factory import raw
from test_properties import AS_OF, FAST, POLICY, START, streams
from workers.engine import Engine
from workers.events import parse_event
from workers.replay import replay
from workers.rules import RulesError
from workers.rules.policy import parse_policy
from workers.state import AccountState
from workers.timeutil import DAY, format_rfc3339

DEFAULT = (Path(__file__).resolve().parents[1] / "workers" / "rules" / "default.yaml").read_text()


def rules_with(history_days: float | None) -> str:
    assert "  history_days: null\n" in DEFAULT
    return DEFAULT.replace("  history_days: null\n", f"  history_days: {json.dumps(history_days)}\n")


def policy_with(history_days: float | None):
    return parse_policy(rules_with(history_days))


def meeting(n: int, day: float) -> dict:
    return raw("meeting.held", "a", format_rfc3339(START + day * DAY), id_=f"m-{n}")


def fold(engine: Engine, events: list[dict]) -> AccountState:
    state = engine.new_state("a")
    for event in events:
        step = engine.handle(state, parse_event(event))
        assert not step.duplicate and not step.too_late
        state = step.state
    return state


def test_without_a_horizon_every_id_is_kept_and_any_old_duplicate_is_ignored():
    engine = Engine(POLICY)
    events = [meeting(n, n * 3) for n in range(400)]  # 1,200 days
    state = fold(engine, events)
    assert len(state.seen) == 400 and not state.seen_before
    assert engine.handle(state, parse_event(events[0])).duplicate


def test_with_a_horizon_the_ids_kept_stay_within_two_horizons():
    engine = Engine(policy_with(30))
    state = engine.new_state("a")
    most = 0
    for n in range(1000):  # one event a day for 1,000 days
        state = engine.handle(state, parse_event(meeting(n, n))).state
        most = max(most, len(state.seen) + len(state.seen_before))
    assert 30 <= most <= 61
    assert state.meetings == 1000  # forgetting ids forgets nothing else


@FAST
@given(gaps=st.lists(st.floats(0, 20), min_size=1, max_size=60), horizon=st.sampled_from([1, 7, 30, 45.5]))
def test_within_the_horizon_a_redelivery_is_a_duplicate_and_beyond_it_refused(gaps, horizon):
    engine = Engine(policy_with(horizon))
    day, events = 0.0, []
    for n, gap in enumerate(gaps):
        day += gap
        events.append(meeting(n, day))
    state = fold(engine, events)
    for event in events:
        step = engine.handle(state, parse_event(event))
        if parse_event(event).time > state.clock - horizon * DAY:
            assert step.duplicate, "an id inside the horizon must still be known"
        else:  # an id kept a while longer is still a duplicate; never is an old event applied again
            assert step.duplicate or "history_days" in step.too_late
        assert step.state is state and not step.actions


def test_a_new_event_beyond_the_horizon_is_refused_and_changes_nothing():
    engine = Engine(policy_with(30))
    state = fold(engine, [meeting(1, 100)])
    late = engine.handle(state, parse_event(meeting(2, 70)))
    assert late.too_late and late.state is state
    assert "2026-03-12T00:00:00Z" in late.too_late and "2026-04-11T00:00:00Z" in late.too_late
    inside = engine.handle(state, parse_event(meeting(3, 70.5)))
    assert not inside.too_late and inside.state.meetings == 2  # applied at the account's clock


@FAST
@given(streams())
def test_a_horizon_longer_than_the_history_changes_nothing(stream):
    plain = replay(stream, POLICY, as_of=AS_OF)
    bounded = replay(stream, policy_with(100_000), as_of=AS_OF)
    assert bounded.to_json() == plain.to_json()
    assert bounded.decisions == plain.decisions
    assert {a: s.seen | s.seen_before for a, s in bounded.accounts.items()} == {
        a: s.seen for a, s in plain.accounts.items()}


def test_the_changelog_row_keeps_both_generations_and_rows_written_before_them_still_read():
    state = fold(Engine(policy_with(3)), [meeting(n, n) for n in range(5)])
    assert state.seen and state.seen_before
    assert AccountState.from_dict(orjson.loads(state.to_json())) == state
    older = {k: v for k, v in state.to_dict().items() if k not in ("seen_before", "seen_since")}
    assert AccountState.from_dict(older).seen_before == frozenset()


def test_replay_reports_a_too_late_event_with_its_line_and_exits_1(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_with(30))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [meeting(1, 100), meeting(2, 10), meeting(1, 100)]) + "\n")
    result = subprocess.run([sys.executable, "-m", "workers.cli", "replay", str(events), "--rules", str(rules),
                             "--format", "json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{events}:2: too late: event time" in result.stderr
    assert json.loads(result.stdout)["stats"] == {"events": 1, "duplicates": 1, "invalid": 0, "too_late": 1}


@pytest.mark.parametrize("value, message", [
    (0, "`history_days` must be a number of days above 0"),
    ("forever", "`history_days` must be a number of days above 0"),
    (True, "`history_days` must be a number of days above 0"),
])
def test_a_bad_history_days_is_refused(value, message):
    with pytest.raises(RulesError, match=message):
        policy_with(value)


def test_params_are_checked_by_name_and_type():
    text = DEFAULT.replace("  orders_window_days: 180", "  orders_windo_days: 180\n  csm_plans_x: []")
    text = text.replace("csm_plans: [csm, success, premier]", "csm_plans: csm")
    with pytest.raises(RulesError) as caught:
        parse_policy(text)
    found = "\n".join(str(p) for p in caught.value.problems)
    assert "unknown parameter `orders_windo_days` (did you mean orders_window_days?)" in found
    assert "unknown parameter `csm_plans_x` (did you mean csm_plans?)" in found
    assert "`csm_plans` must be a list of strings" in found
    assert parse_policy(rules_with(None)).params["history_days"] is None


def test_without_a_horizon_rows_keep_the_fields_of_the_version_before_it_so_a_rollback_reads_them():
    state = fold(Engine(POLICY), [meeting(n, n) for n in range(3)])
    row = orjson.loads(state.to_json())
    before_the_horizon = {name for name in AccountState.__dataclass_fields__} - {"seen_before", "seen_since"}
    assert set(row) == before_the_horizon and row == state.to_dict()
    assert AccountState.from_dict(row) == state
    bounded = fold(Engine(policy_with(30)), [meeting(n, n) for n in range(3)])
    assert {"seen_before", "seen_since"} <= set(orjson.loads(bounded.to_json()))  # in use: kept


def test_a_row_from_a_newer_version_loads_without_the_fields_this_one_does_not_know():
    state = fold(Engine(POLICY), [meeting(1, 1)])
    assert AccountState.from_dict({**state.to_dict(), "from_a_later_version": [1, 2]}) == state
