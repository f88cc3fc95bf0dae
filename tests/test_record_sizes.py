"""workers.kafka.record_sizes: the early warning for state rows that approach Kafka's message limit, the
bound that decides when a row must be measured before an event is kept, and the check of actions."""

from __future__ import annotations

import json
import logging

import orjson
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from test_engine_fuzz import POLICIES, events
from workers.engine import Engine, Step
from workers.kafka.codec import decode_message
from workers.kafka.outbox import json_arrays
from workers.kafka.record_sizes import ROW_SLACK, RecordSizes, action_bound, growth_bound
from workers.state import AccountState


def gauge() -> float | None:
    return REGISTRY.get_sample_value("clientshift_state_row_bytes_max")


def test_each_account_over_the_mark_is_warned_about_once_with_its_size(caplog):
    sizes = RecordSizes(warn_at=1000, max_record_bytes=1_000_000)
    with caplog.at_level(logging.WARNING, logger="clientshift.worker"):
        for account, size in [("a", 1500), ("b", 1200), ("a", 1600), ("b", 1300), ("c", 2000)]:
            sizes.over(account, size)
    warned = [(r.account, r.row_bytes) for r in caplog.records if r.getMessage() == "account state row is large"]
    assert warned == [("a", 1500), ("b", 1200), ("c", 2000)]


def test_the_gauge_holds_the_largest_row_written_so_far():
    sizes = RecordSizes(warn_at=1000, max_record_bytes=1_000_000)
    start = sizes.largest
    base = int(gauge() or 0)  # the registry is process-wide: start above whatever another test set
    for size in (base + 10, base + 30, base + 20):
        sizes.largest_of_batch(size)
    assert gauge() == base + 30 and sizes.largest == base + 30 and start == 0


def test_a_row_grows_with_history_so_the_warning_has_something_to_watch():
    """The reason for the watch: every event id stays in the row."""
    from workers.engine import Engine, Step
    from workers.events import parse_event
    from workers.rules.policy import load_policy

    engine = Engine(load_policy(None))
    state = AccountState(account="acme")
    sizes = []
    for n in range(200):
        event = parse_event({"specversion": "1.0", "id": f"evt-{n:05d}", "source": "test", "type": "crm.meeting.held",
                             "subject": "acme", "time": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z", "data": {}})
        state = engine.handle(state, event).state
        sizes.append(len(state.to_json()))
    assert sizes[-1] - sizes[99] >= 100 * len("test/evt-00000")  # at least the ids kept


ENGINE = Engine(POLICIES["default"])


def grown(state: AccountState, value: bytes, headers=None) -> tuple[AccountState, int]:
    """The state after the event in `value` (and `headers`), and how much its row grew."""
    after = ENGINE.handle(state, decode_message(value, headers)).state
    return after, len(after.to_json()) - len(state.to_json())


@given(st.lists(events(), min_size=1, max_size=15))
def test_no_event_grows_its_account_s_row_by_more_than_the_bound(stream):
    states: dict[str, AccountState] = {}
    for event in stream:
        value = json.dumps(event).encode()
        state = states.get(event["subject"]) or ENGINE.new_state(event["subject"])
        states[event["subject"]], growth = grown(state, value)
        assert growth <= growth_bound(len(value))


def test_an_event_s_data_is_counted_in_full_and_a_number_written_longer_is_within_the_overhead():
    longest = "é" * 25_000 + "\u0001" * 1_000  # raw UTF-8, and characters escaped six bytes each
    value = json.dumps({"specversion": "1.0", "id": "n", "source": "s", "type": "crm.property.changed",
                        "subject": "a", "time": "2026-01-01T00:00:00Z",
                        "data": {"name": "p", "value": longest}}, ensure_ascii=False).encode()
    state, growth = grown(ENGINE.new_state("a"), value)
    assert 0.95 * len(value) < growth <= growth_bound(len(value))
    number = b'{"specversion":"1.0","id":"m","source":"s","type":"crm.property.changed","subject":"a",' \
             b'"time":"2026-01-01T00:00:00Z","data":{"name":"q","value":1e15}}'
    after, growth = grown(state, number)
    assert growth <= growth_bound(len(number)) and b"1000000000000000.0" in after.to_json()


def test_ids_from_binary_mode_headers_are_within_the_bound_s_overhead():
    """In binary mode the id and source are headers, not part of the value; at their longest, and made of
    characters JSON escapes six bytes each, they still fit the fixed part of the bound."""
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"\x01" * 256), ("ce_source", b"\x02" * 512),
               ("ce_type", b"crm.meeting.held"), ("ce_subject", b"a"), ("ce_time", b"2026-01-01T00:00:00Z"),
               ("content-type", b"application/json")]
    _, growth = grown(ENGINE.new_state("a"), b"{}", headers)
    assert 6 * 768 < growth <= growth_bound(2)


def test_a_row_is_measured_when_nothing_is_known_of_it_or_its_bound_could_pass_the_limit():
    sizes = RecordSizes(warn_at=1000, max_record_bytes=200_000)
    state = AccountState(account="acme", properties={"notes": "x" * 5_000})
    row = state.to_json()
    assert sizes.limit == 200_000 - ROW_SLACK
    assert sizes.measure(state, None, 100) == (row, len(row))  # first event of a batch: measured
    assert sizes.measure(state, 10_000, 100) == (None, 10_000 + growth_bound(100))  # surely fits: not encoded
    near = sizes.limit - growth_bound(100) + 1
    assert sizes.measure(state, near, 100) == (row, len(row))  # might not fit: measured, and it does



def test_an_event_is_refused_when_its_row_or_one_of_its_actions_would_pass_the_limit():
    sizes = RecordSizes(warn_at=1000, max_record_bytes=131_072)  # the smallest: rows and actions get 114,688 B
    created = ENGINE.handle(ENGINE.new_state("a"), decode_message(json.dumps({
        "specversion": "1.0", "id": "1", "source": "s", "type": "crm.account.created", "subject": "a",
        "time": "2026-01-01T00:00:00Z", "data": {"name": "n" * 50_000}}).encode(), None))
    assert sizes.check(created, None, 50_200)[2] is None  # its tag names the account once: it fits
    # The welcome task names the account in its title and its body, and as the account's name.
    csm = ENGINE.handle(created.state, decode_message(json.dumps({
        "specversion": "1.0", "id": "2", "source": "s", "type": "crm.csm.assigned", "subject": "a",
        "time": "2026-01-02T00:00:00Z", "data": {"owner_id": "7"}}).encode(), None))
    [task] = [a for a in csm.actions if a.type == "task"]
    encoded = len(orjson.dumps(task.to_dict()))
    assert sizes.limit < encoded <= action_bound(task)
    for known in (None, sizes.limit):  # whether the row is measured or not, the action is
        row, size, refused = sizes.check(csm, known, 200)
        assert refused.startswith(f"action {task.key!r} would be a {encoded}-byte record, over the {sizes.limit}")
        assert "task templates" in refused and "CLIENTSHIFT_MAX_RECORD_BYTES 131072" in refused
    assert size == len(row) < sizes.limit  # the row itself fits
    assert sizes.action_refusal(csm.actions) == refused
    assert RecordSizes(warn_at=1000, max_record_bytes=1_000_000).check(csm, None, 200)[2] is None

    huge = ENGINE.new_state("acme").evolve(properties={"notes": "x" * 200_000})
    refused = sizes.check(Step(huge), None, 100)[2] or ""
    assert refused.startswith("the state of account 'acme' would be a") and "params.history_days" in refused


@given(st.text(max_size=300), st.text(max_size=300))
def test_an_action_s_record_is_never_larger_than_its_bound(title, name):
    from workers.actions import Action

    action = Action(type="task", account="a", key="k", at="2026-01-01T00:00:00Z", trigger="t", reason="r",
                    account_name=name, kind="welcome", title=title, body=title + name)
    assert len(orjson.dumps(action.to_dict())) <= action_bound(action)


def test_json_arrays_keep_every_value_in_order_in_arrays_within_the_limit():
    values = [orjson.dumps({"n": n, "pad": "x" * (n % 40)}) for n in range(300)]
    for limit in (1, 50, 400, 10_000, 10**7):
        arrays = list(json_arrays(values, limit))
        assert [item for array in arrays for item in orjson.loads(array)] == [orjson.loads(v) for v in values]
        assert all(len(array) <= limit or len(orjson.loads(array)) == 1 for array in arrays)
        if limit >= 10**7:
            assert len(arrays) == 1  # one record when it fits
        elif limit >= 400:
            assert len(arrays) > 1 and max(map(len, arrays)) > limit // 2  # filled, not one value each
    assert list(json_arrays([], 100)) == []
