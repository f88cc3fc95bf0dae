"""The Kafka client settings the worker reaches aiokafka with, through Faust (the benchmark measures their
effect; these pin that they arrive)."""

from __future__ import annotations

import asyncio

from workers.kafka.app import create_app
from workers.kafka.clock import make_clock
from workers.kafka.settings import Settings
from workers.rules.policy import load_policy


def test_the_worker_s_kafka_consumer_fetches_the_configured_bytes_per_partition():
    async def build(settings: Settings) -> int:
        app = create_app(settings, load_policy(None), make_clock(settings.clock), lambda echo_store: None)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # built, never connected
        try:
            return consumer._max_partition_fetch_bytes
        finally:
            await consumer.stop()

    assert Settings().fetch_bytes == 8 * 1024 * 1024
    assert Settings.from_env({"CLIENTSHIFT_FETCH_BYTES": "2097152"}).fetch_bytes == 2 * 1024 * 1024
    assert asyncio.run(build(Settings(broker="127.0.0.1:1", fetch_bytes=3 * 1024 * 1024))) == 3 * 1024 * 1024
