"""Moving JSON-lines files in and out of topics with kafka-python: `clientshift produce` and `record`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable, Iterator

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from workers.kafka.codec import decode_message
from workers.kafka.settings import Settings
from workers.kafka.topics import high_watermarks
from workers.replay import SourcedLine
from workers.events import InvalidEvent


def subject_key(raw: bytes) -> bytes | None:
    # The key is the account; a line too broken to name one is still produced (the worker dead-letters
    # it with its reason), only without a key.
    try:
        subject = json.loads(raw).get("subject")
    except (ValueError, AttributeError):
        return None
    return subject.encode() if isinstance(subject, str) else None


def produce(settings: Settings, lines: Iterable[SourcedLine], topic: str | None = None,
            on_sent: Callable[[int], None] | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5,
                             **settings.kafka_python_security())
    sent = 0
    try:
        for line in lines:
            raw = line.raw if isinstance(line.raw, bytes) else line.raw.encode()
            producer.send(topic or settings.topics.events, key=subject_key(raw), value=raw)
            sent += 1
            if on_sent:
                on_sent(sent)
        producer.flush()
    finally:
        producer.close()
    return sent


def read_topic(settings: Settings, topic: str) -> Iterator[ConsumerRecord]:
    """Every record of a topic from the beginning up to its end when called, partition by partition in
    offset order (records produced meanwhile are left for the next call)."""
    ends = {tp: end for tp, end in high_watermarks(settings, [topic]).items() if end > 0}
    if not ends:
        return
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                             **settings.kafka_python_security())
    try:
        consumer.assign(list(ends))
        consumer.seek_to_beginning()
        remaining = dict(ends)
        while remaining:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for message in records:
                    if message.offset < ends[TopicPartition(tp.topic, tp.partition)]:
                        yield message
                if consumer.position(tp) >= remaining.get(tp, 0):
                    remaining.pop(tp, None)
    finally:
        consumer.close()


def record(settings: Settings, topic: str, out: Path, on_record: Callable[[int], None] | None = None) -> int:
    """Copy a topic from the beginning up to its current end into a JSON-lines file. Binary-mode
    CloudEvents are written in structured mode, so the file replays with `clientshift replay`."""
    written = 0
    with out.open("wb") as handle:
        for message in read_topic(settings, topic):
            handle.write(_as_line(message.value, message.headers) + b"\n")
            written += 1
            if on_record:
                on_record(written)
    return written


def _as_line(value: bytes | None, headers: list[tuple[str, bytes]] | None) -> bytes:
    if headers and any(k.lower() == "ce_specversion" for k, _ in headers):
        try:
            return json.dumps(decode_message(value, headers).to_cloudevent(), separators=(",", ":")).encode()
        except InvalidEvent:
            pass  # keep the bytes as they were: replay will report them
    return (value or b"").replace(b"\n", b" ")
