"""The Kafka client settings the worker reaches aiokafka with, through Faust (the benchmark measures their
effect; these pin that they arrive)."""

from __future__ import annotations

import asyncio
from typing import Any

from workers.kafka import faust_fixes
from workers.kafka.app import create_app
from workers.kafka.clock import make_clock
from workers.kafka.settings import Settings
from workers.rules.policy import load_policy


def consumer_setting(settings: Settings, name: str) -> Any:
    """An attribute of the aiokafka consumer Faust builds for a worker with these settings."""
    async def build() -> Any:
        app = create_app(settings, load_policy(None), make_clock(settings.clock), lambda echo_store: None)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # built, never connected
        try:
            return getattr(consumer, name)
        finally:
            await consumer.stop()

    return asyncio.run(build())


def test_the_worker_s_kafka_consumer_fetches_the_configured_bytes_per_partition():
    assert Settings().fetch_bytes == 8 * 1024 * 1024
    assert Settings.from_env({"CLIENTSHIFT_FETCH_BYTES": "2097152"}).fetch_bytes == 2 * 1024 * 1024
    settings = Settings(broker="127.0.0.1:1", fetch_bytes=3 * 1024 * 1024)
    assert consumer_setting(settings, "_max_partition_fetch_bytes") == 3 * 1024 * 1024


def test_the_worker_s_kafka_consumer_waits_the_configured_time_per_fetch_not_faust_s_1500_ms():
    assert faust_fixes.fetch_wait_is_settable()  # the installed aiokafka builds its fetcher from it
    assert Settings().fetch_max_wait_ms == 100
    assert Settings.from_env({"CLIENTSHIFT_FETCH_MAX_WAIT_MS": "250"}).fetch_max_wait_ms == 250
    for wait in (250, 100):  # the last one is the default, for the tests that run after this one
        assert consumer_setting(Settings(broker="127.0.0.1:1", fetch_max_wait_ms=wait), "_fetch_max_wait_ms") == wait
