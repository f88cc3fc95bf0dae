"""The worker's output path against the real broker: record batches per partition arrive complete and in
order, and the true end offsets (what table recovery reads on Tansu) count every record of them."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition

from workers.kafka.local_broker import LocalBroker
from workers.kafka.outbox import Outbox
from workers.kafka.settings import Settings, Topics
from workers.kafka.topics import ensure_topics, high_watermarks_of


@pytest.fixture(scope="module")
def settings():
    with LocalBroker() as broker:
        tag = uuid.uuid4().hex[:8]
        topics = Topics(**{name: f"{tag}.{value}" for name, value in vars(Topics()).items()})
        configured = replace(Settings(), broker=broker.bootstrap, topics=topics)
        ensure_topics(configured)
        yield configured


def send(settings: Settings, records: list[tuple[int, bytes, bytes]]) -> None:
    async def run() -> None:
        # Small batches, so one flush has to send several per partition.
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers[0], max_batch_size=1024)
        await producer.start()
        try:
            outbox = Outbox(producer)
            for partition, key, value in records:
                outbox.add(settings.topics.actions, partition, key, value)
            assert len(outbox.full) > 2
            await outbox.flush()
            assert not outbox.open and not outbox.full
        finally:
            await producer.stop()

    asyncio.run(run())


def read(settings: Settings, partition: int, count: int) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    try:
        tp = TopicPartition(settings.topics.actions, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning()
        out: list[tuple[bytes, bytes]] = []
        while len(out) < count:
            batch = consumer.poll(timeout_ms=2000)
            assert batch, f"only {len(out)} of {count} records arrived"
            out.extend((r.key, r.value) for r in batch.get(tp, []))
        return out
    finally:
        consumer.close()


def test_every_record_arrives_in_order_and_the_true_ends_count_them_all(settings):
    records = [(n % 2, f"acct-{n}".encode(), f'{{"n": {n}, "pad": "{"x" * 40}"}}'.encode()) for n in range(300)]
    send(settings, records)
    ends = high_watermarks_of(settings, [(settings.topics.actions, 0), (settings.topics.actions, 1)])
    assert {tp.partition: end for tp, end in ends.items()} == {0: 150, 1: 150}
    for partition in (0, 1):
        assert read(settings, partition, 150) == [(k, v) for p, k, v in records if p == partition]
