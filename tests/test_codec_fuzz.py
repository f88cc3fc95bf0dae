"""Whatever bytes and headers arrive on the events topic, decoding either gives an event or raises
InvalidEvent (which the worker dead-letters), and the letter can always be written."""

from __future__ import annotations

import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.events import InvalidEvent
from workers.kafka.codec import dead_letter, decode_message

header_values = st.none() | st.binary(max_size=12) | st.sampled_from(
    [b"1.0", b"crm.csm.assigned", b"2026-01-01T00:00:00Z", b"9999-12-31T23:59:59Z", b"\xff", b"application/json"])
header_names = st.sampled_from(["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time",
                                "CE_TYPE", "content-type", "ce_datacontenttype", "traceparent"])
values = st.none() | st.binary(max_size=30) | st.sampled_from([b'{"owner_id": "9"}', b"{}", b"[]", b"null"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values, st.lists(st.tuples(header_names, header_values), max_size=8))
def test_a_message_decodes_or_is_refused_with_a_reason_and_its_letter_is_json(value, headers):
    try:
        decode_message(value, headers)
    except InvalidEvent as exc:
        assert exc.reason
    letter = json.loads(dead_letter("event", "r", value, headers, max_bytes=1_000_000))
    assert base64.b64decode(letter["original_base64"]) == (value or b"")
    assert set(letter["headers"]) == {name.lower() for name, _ in headers}
