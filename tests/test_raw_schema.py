"""The worker's schemas (workers.kafka.raw_schema: its topics, its tables' changelogs) and the settings Faust
reads once (faust_fixes, fix 11): each must give exactly what Faust's own code gives."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types.tuples import Message

from workers.kafka import faust_fixes
from workers.kafka.raw_schema import ChangelogRows, RawBytes


class TaggedEvent(faust.Event):
    """An app's own Event class, set in its configuration."""


@pytest.fixture
def app() -> faust.App:
    faust_fixes.apply()
    return faust.App("raw-schema-test", broker="kafka://127.0.0.1:1", key_serializer="raw",
                     value_serializer="raw", Event=TaggedEvent)


def decoded(decode, message: Message) -> faust.Event:
    return asyncio.run(decode(message))


@pytest.mark.parametrize("key, value, headers", [
    (b"account-1", b'{"id": "1"}', [("ce_type", b"crm.order.placed")]),
    (None, None, []),  # a tombstone with no key
    (b"", b"\xff\xfe not utf-8", None),
])
def test_raw_bytes_decodes_as_faust_s_own_bytes_schema_does(app, key, value, headers):
    message = Message("clientshift.events", 2, 17, 0.0, 0, headers, key, value, None)
    faust_own = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    expected = decoded(faust_own.compile(app), message)
    got = decoded(RawBytes().compile(app), message)
    assert type(got) is type(expected) is TaggedEvent
    assert (got.key, got.value, got.headers, got.message) == (expected.key, expected.value, expected.headers,
                                                              message)


def test_every_topic_of_the_worker_uses_raw_bytes():
    from workers.kafka.app import create_app
    from workers.kafka.clock import make_clock
    from workers.kafka.settings import Settings
    from workers.rules.policy import load_policy

    settings = Settings(broker="127.0.0.1:1")
    worker = create_app(settings, load_policy(None), make_clock(settings.clock), lambda echo_store: None)
    channels = {name: agent.channel for name, agent in worker.agents.items()}
    assert set(channels) >= {"process", "sink", "normalize-hubspot"}
    assert all(isinstance(channel.schema, RawBytes) for channel in channels.values())


CHANGELOG_RECORDS = [
    (b'"account-1"', b'{"account": "account-1", "seen": ["e1"], "score": 0.5, "n": 12345678901234}'),
    (b'"acc\\u00e9nt \xe2\x9c\x93"', b'{"due": 1717200000.25, "partition": 3}'),
    (b'"account-2"', None),  # a tombstone: the row was deleted
    (None, b"[]"),
]


@pytest.mark.parametrize("key, value", CHANGELOG_RECORDS)
def test_changelog_rows_decode_as_faust_s_json_schema_does(app, key, value):
    message = Message("worker-accounts-changelog", 1, 5, 0.0, 0, [], key, value, None)
    expected = decoded(faust.Schema(key_serializer="json", value_serializer="json").compile(app), message)
    got = decoded(ChangelogRows().compile(app), message)
    assert type(got) is type(expected) is TaggedEvent
    assert (got.key, got.value, got.message) == (expected.key, expected.value, message)
    assert got.key is None or isinstance(got.key, str)


@pytest.mark.parametrize("key, value", CHANGELOG_RECORDS)
def test_changelog_rows_can_keep_each_row_as_the_bytes_written(app, key, value):
    message = Message("worker-accounts-changelog", 1, 5, 0.0, 0, [], key, value, None)
    expected = decoded(faust.Schema(key_serializer="json", value_serializer="raw").compile(app), message)
    got = decoded(ChangelogRows(rows_as_bytes=True).compile(app), message)
    assert (got.key, got.value) == (expected.key, expected.value) == (expected.key, value)


@pytest.mark.parametrize("key, value, error", [
    (b"account-1", b"{}", "KeyDecodeError"),  # a key that is not JSON text
    (b'"account-1"', b"{not json", "ValueDecodeError"),
])
def test_a_changelog_record_that_is_not_json_goes_where_faust_s_schema_sends_it(app, key, value, error):
    message = Message("worker-deadlines-changelog", 0, 9, 0.0, 0, [], key, value, None)

    def reported_by(schema: faust.Schema) -> list[tuple[str, Message]]:
        seen: list[tuple[str, Message]] = []

        async def report(exc: Exception, failed: Message) -> None:
            seen.append((type(exc).__name__, failed))

        decode = schema.compile(app, on_key_decode_error=report, on_value_decode_error=report)
        assert decoded(decode, message) is None
        with pytest.raises(Exception) as raised:
            asyncio.run(decode(message, propagate=True))
        seen.append((type(raised.value).__name__, message))
        return seen

    faust_own = reported_by(faust.Schema(key_serializer="json", value_serializer="json"))
    assert reported_by(ChangelogRows()) == faust_own == [(error, message), (error, message)]


def test_the_worker_s_tables_read_their_changelogs_with_changelog_rows_and_account_rows_stay_bytes():
    from workers.kafka.app import create_app
    from workers.kafka.clock import make_clock
    from workers.kafka.settings import Settings
    from workers.rules.policy import load_policy

    settings = Settings(broker="127.0.0.1:1")
    worker = create_app(settings, load_policy(None), make_clock(settings.clock), lambda echo_store: None)
    schemas = {name: table.changelog_topic.schema for name, table in worker.tables.items()}
    assert all(isinstance(schema, ChangelogRows) for schema in schemas.values())
    assert {name: schema.rows_as_bytes for name, schema in schemas.items()} == {"accounts": True,
                                                                                  "deadlines": False}


def test_the_producer_buffer_counts_what_waits_as_faust_does(app):
    buffer = app.producer.buffer
    assert buffer.size == faust_fixes._faust_buffer_size.fget(buffer) == 0
    for n in range(3):
        buffer.pending.put_nowait(f"message {n}")
    assert buffer.size == faust_fixes._faust_buffer_size.fget(buffer) == 3


def test_events_are_built_from_the_app_s_configured_event_class(app):
    message = Message("t", 0, 1, 0.0, 0, [], b"k", b"v", None)
    event = app.create_event(b"k", b"v", [], message)
    assert type(event) is TaggedEvent
    assert (event.app, event.key, event.value, event.message) == (app, b"k", b"v", message)
