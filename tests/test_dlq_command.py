"""`clientshift dlq show` and `dlq redrive` against the real broker: every letter listed with where it came
from and why, and each kind sent back to its own topic with its original bytes, headers and key.
(That the worker then applies a re-driven event once is in test_worker_kafka.py.)"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaProducer

from workers.kafka.codec import LETTER_SLACK, dead_letter
from workers.kafka.dlq import REDRIVEN_FROM
from workers.kafka.local_broker import LocalBroker
from workers.kafka.settings import Settings
from workers.kafka.streams import read_topic
from workers.kafka.topics import ensure_topics
from workers.timeutil import format_rfc3339

EVENT = json.dumps({"specversion": "1.0", "id": "e-1", "source": "billing", "type": "crm.order.placed",
                    "subject": "acme", "time": "2026-01-01T00:00:00Z", "data": {}}).encode()
BINARY_HEADERS = [("ce_specversion", b"1.0"), ("ce_id", b"bin-1"), ("ce_source", b"billing"),
                  ("ce_type", b"crm.csm.assigned"), ("ce_subject", b"globex"), ("ce_time", b"yesterday")]
ACTION = json.dumps({"account": "initech", "type": "task", "key": "initech|welcome_client|event:x"}).encode()
WEBHOOK = b'[{"eventId": 1, "subscriptionType": "company.propertyChange"'  # cut short
BIG = b'{"data": "' + b"x" * 900_000 + b'"}'


@pytest.mark.parametrize("size", [0, 1, 1000, 700_000, 760_000, 990_000, 5_000_000])
def test_a_letter_always_fits_the_producer_limit_and_says_when_it_is_cut(size):
    original = bytes(range(256)) * (size // 256) + b"!" * (size % 256)
    headers = [("ce_id", b"x" * 300)]
    letter = json.loads(dead_letter("event", "too big", original, headers, original_key=b"k", max_bytes=1_000_000,
                                    topic="t", partition=1, offset=2))
    kept = base64.b64decode(letter["original_base64"])
    assert len(json.dumps(letter, sort_keys=True)) <= 1_000_000 - LETTER_SLACK
    if "original_bytes" in letter:
        assert letter["original_bytes"] == size and kept == original[:len(kept)] and len(kept) > 600_000
    else:
        assert kept == original and size < 760_000  # whole while base64 of it fits
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("t", 1, 2)


@pytest.fixture(scope="module")
def dlq():
    tag = uuid.uuid4().hex[:8]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLIENTSHIFT_")},
           **{f"CLIENTSHIFT_TOPIC_{name.upper()}": f"{tag}.{name}" for name in
              ("events", "ticks", "actions", "audit", "dlq", "hubspot_raw", "salesforce_raw")}}
    with LocalBroker() as broker:
        env["CLIENTSHIFT_BROKER"] = broker.bootstrap
        settings = Settings.from_env(env)
        ensure_topics(settings)
        topics = settings.topics
        letters = [
            dead_letter("event", '"order_id" is a required property', EVENT, None, original_key=b"acme-key",
                        topic=topics.events, partition=2, offset=7),
            dead_letter("event", "ce_time: 'yesterday' is not an RFC 3339 timestamp", b'{"owner_id": "9"}',
                        BINARY_HEADERS, topic=topics.events, partition=1, offset=3),
            dead_letter("hubspot_webhook", "not a HubSpot webhook event: unexpected end", WEBHOOK, None),
            dead_letter("action", "HubSpot 400: Property values were not valid", ACTION, None,
                        account="initech", key="initech|welcome_client|event:x", connector="hubspot"),
            b"not a letter at all",
            dead_letter("event", "event is 900000 bytes, over the 65536-byte limit", BIG, None, topic=topics.events,
                        partition=0, offset=11, max_bytes=100_000),
        ]
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        for letter in letters:
            producer.send(topics.dlq, key=b"k", value=letter)  # one key: one partition, offsets in this order
        producer.flush()
        producer.close()

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "workers.cli", "dlq", *args], env=env, capture_output=True,
                                  text=True, timeout=120)

        yield settings, cli


def test_show_lists_every_letter_with_its_origin_and_reason(dlq):
    settings, cli = dlq
    shown = cli("show", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    letters = json.loads(shown.stdout)
    assert [d["offset"] for d in letters] == [0, 1, 2, 3, 4, 5]
    assert [d["kind"] for d in letters] == ["event", "event", "hubspot_webhook", "action", "unreadable", "event"]
    assert letters[0]["origin"] == f"{settings.topics.events}:2:7"
    assert base64.b64decode(letters[0]["original_base64"]) == EVENT
    assert base64.b64decode(letters[0]["original_key_base64"]) == b"acme-key"
    assert letters[1]["original_key_base64"] is None
    when = {m.offset: format_rfc3339(m.timestamp / 1000) for m in read_topic(settings, settings.topics.dlq)}
    assert [d["dead_lettered_at"] for d in letters] == [when[n] for n in range(6)]
    assert [d["original_bytes"] for d in letters] == [None] * 5 + [len(BIG)]  # only the big one is cut
    assert BIG.startswith(base64.b64decode(letters[5]["original_base64"]))
    assert letters[1]["headers"]["ce_subject"] == "globex"
    assert letters[3]["origin"] == "hubspot initech|welcome_client|event:x"
    assert base64.b64decode(letters[4]["original_base64"]) == b"not a letter at all"
    table = cli("show", "--kind", "event", "--reason", "RFC 3339")
    assert table.returncode == 0, table.stderr
    assert "1 letter: 1 event" in table.stdout and "yesterday" in table.stdout and "order_id" not in table.stdout


def test_redrive_sends_each_kind_back_to_its_topic_as_it_was(dlq):
    settings, cli = dlq
    topics = settings.topics
    dry = cli("redrive", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would send 4 letters: 1 to {topics.actions}, 2 to {topics.events}, 1 to {topics.hubspot_raw}" \
        in dry.stdout
    assert ":4: unreadable: not sent: not a letter: nowhere to send it" in dry.stderr
    assert ":5: event: not sent: the letter holds only the first" in dry.stderr
    assert f"of {len(BIG)} bytes; the original is at {topics.events}:0:11" in dry.stderr
    assert not list(read_topic(settings, topics.events))  # a dry run sends nothing

    [partition] = {m.partition for m in read_topic(settings, topics.dlq)}
    sent = cli("redrive", "--kind", "event")  # the two small ones; the cut one is reported, not sent
    assert sent.returncode == 0, sent.stderr
    assert f"sent 2 letters: 2 to {topics.events}" in sent.stdout
    assert ":5: event: not sent: the letter holds only the first" in sent.stderr
    structured, binary = sorted(read_topic(settings, topics.events), key=lambda m: m.value != EVENT)
    assert structured.value == EVENT and structured.key == b"acme-key"  # the original key, kept
    assert dict(structured.headers)[REDRIVEN_FROM] == f"{topics.dlq}:{partition}:0".encode()
    assert binary.key == b"globex" and binary.value == b'{"owner_id": "9"}'  # no key kept: the account
    assert sorted(h for h in binary.headers if h[0] != REDRIVEN_FROM) == sorted(BINARY_HEADERS)
    assert dict(binary.headers)[REDRIVEN_FROM] == f"{topics.dlq}:{partition}:1".encode()

    rest = cli("redrive", "--reason", "hubspot")  # the webhook and the action, matched in any case
    assert f"sent 2 letters: 1 to {topics.actions}, 1 to {topics.hubspot_raw}" in rest.stdout, rest.stdout
    [action] = read_topic(settings, topics.actions)
    assert (action.key, action.value) == (b"initech", ACTION)
    [webhook] = read_topic(settings, topics.hubspot_raw)
    assert webhook.key is None and webhook.value == WEBHOOK
