"""The worker's topic schema (workers.kafka.raw_schema) and the settings Faust reads once (faust_fixes, fix 11):
each must give exactly what Faust's own code gives."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types.tuples import Message

from workers.kafka import faust_fixes
from workers.kafka.raw_schema import RawBytes


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
