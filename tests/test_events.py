import json
from pathlib import Path

import jsonschema
import pytest

import schemas
from factory import raw
from workers.events import MAX_EVENT_BYTES, InvalidEvent, parse_event
from workers.timeutil import format_rfc3339

ROOT = Path(__file__).resolve().parents[1]


def test_published_schema_is_valid_draft_2020_12_and_is_what_the_code_uses():
    published = json.loads((ROOT / "schemas" / "crm-event.v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(published)
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schemas.load_schema("crm-event.v1.json") == published


def test_examples_satisfy_the_contract_in_the_reference_validator_and_the_code():
    reference = jsonschema.Draft202012Validator(json.loads((ROOT / "schemas" / "crm-event.v1.json").read_text()))
    lines = [line for path in (ROOT / "examples").glob("*.jsonl") for line in path.read_text().splitlines()]
    assert len(lines) > 30
    for line in lines:
        reference.validate(json.loads(line))
        assert parse_event(line).subject


def test_a_valid_event_parses_with_event_time():
    event = parse_event(json.dumps(raw("order.placed", "acme", "2026-01-05T10:00:00+01:00", order_id="o1")))
    assert event.time == 1767603600.0  # 09:00 UTC
    assert event.dedupe_key == "test/" + event.id
    assert event.data == {"order_id": "o1"}


BAD = {
    "malformed JSON": ('{"specversion": "1.0",', "not valid JSON"),
    "not an object": ("[1, 2]", "must be a JSON object"),
    "unknown type": (raw("order.shipped", "a", "2026-01-01T00:00:00Z"), "unknown event type 'crm.order.shipped'"),
    "missing field": (raw("order.placed", "a", "2026-01-01T00:00:00Z"), "data: \"order_id\" is a required property"),
    "wrong type": (raw("order.placed", "a", "2026-01-01T00:00:00Z", order_id="o", amount="ten"), "data.amount"),
    "no subject": ({**raw("meeting.held", "a", "2026-01-01T00:00:00Z"), "subject": ""}, "subject"),
    "time without offset": (raw("meeting.held", "a", "2026-01-01T00:00:00"), "time"),
    "impossible time": (raw("meeting.held", "a", "2026-02-30T00:00:00Z"), "time: not a valid RFC 3339 timestamp"),
    "impossible date": (raw("contract.signed", "a", "2026-01-01T00:00:00Z", contract_id="c", start="2026-13-01"),
                        "data.start: not a valid date"),
    "wrong specversion": ({**raw("meeting.held", "a", "2026-01-01T00:00:00Z"), "specversion": "0.3"}, "specversion"),
    "after the calendar": (raw("meeting.held", "a", "9999-12-31T23:59:59Z"),
                           "time: 9999-12-31T23:59:59Z is outside the engine's calendar, 1000-01-01T00:00:00Z to "
                           "9000-01-01T00:00:00Z"),
    "its end exactly": (raw("meeting.held", "a", "9000-01-01T00:00:00Z"), "outside the engine's calendar"),
    "its end by the offset": (raw("meeting.held", "a", "8999-12-31T23:00:00-01:00"), "outside the engine's calendar"),
    "before the calendar": (raw("meeting.held", "a", "0999-12-31T23:59:59Z"), "outside the engine's calendar"),
}


@pytest.mark.parametrize("time", ["1000-01-01T00:00:00Z", "8999-12-31T23:59:59.5Z", "0999-12-31T23:00:00-01:00"])
def test_the_calendar_s_edges_are_inside_it(time):
    assert format_rfc3339(parse_event(raw("meeting.held", "a", time)).time) in (
        "1000-01-01T00:00:00Z", "8999-12-31T23:59:59.500Z")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_events_are_rejected_with_a_clear_reason(case):
    payload, reason = BAD[case]
    text = payload if isinstance(payload, str) else json.dumps(payload)
    with pytest.raises(InvalidEvent) as caught:
        parse_event(text)
    assert reason in caught.value.reason


def test_oversize_events_are_rejected_before_parsing():
    event = raw("property.changed", "a", "2026-01-01T00:00:00Z", name="notes", value="x" * MAX_EVENT_BYTES)
    with pytest.raises(InvalidEvent, match="over the 65536-byte limit"):
        parse_event(json.dumps(event).encode())
    just_fits = raw("property.changed", "a", "2026-01-01T00:00:00Z", name="notes", value="")
    padding = MAX_EVENT_BYTES - len(json.dumps(just_fits).encode())
    just_fits["data"]["value"] = "x" * padding
    assert len(json.dumps(just_fits).encode()) == MAX_EVENT_BYTES
    assert parse_event(json.dumps(just_fits).encode()).data["value"] == "x" * padding


def test_non_utf8_bytes_are_rejected_not_crashed():
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        parse_event(b"\xff\xfe{}")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_numbers_json_cannot_carry_are_rejected_from_bytes_and_from_decoded_events(literal):
    # Python's json reads these; state holding one could not be written to the changelog and read back.
    text = json.dumps(raw("property.changed", "a", "2026-01-01T00:00:00Z", name="score", value=0)).replace(
        '"value": 0', f'"value": {literal}')
    with pytest.raises(InvalidEvent, match="not valid JSON"):
        parse_event(text.encode())
    with pytest.raises(InvalidEvent, match="not representable as JSON"):
        parse_event(json.loads(text))


def test_state_from_a_huge_integer_property_can_be_written_and_read_back():
    import orjson

    from workers.engine import Engine
    from workers.rules.policy import load_policy
    from workers.state import AccountState

    event = parse_event(json.dumps(raw("property.changed", "a", "2026-01-01T00:00:00Z", name="n", value=2**70)))
    assert event.data["value"] == float(2**70)
    engine = Engine(load_policy(None))
    state = engine.handle(engine.new_state("a"), event).state
    assert AccountState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state
