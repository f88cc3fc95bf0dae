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


def test_the_record_limit_reaches_the_producer_and_the_state_row_check():
    assert Settings().max_record_bytes == 1_000_000  # Faust's default, under the broker's 1 MiB + 12 B
    settings = Settings.from_env({"CLIENTSHIFT_MAX_RECORD_BYTES": "2000000", "CLIENTSHIFT_BROKER": "127.0.0.1:1"})

    async def build() -> Any:
        return create_app(settings, load_policy(None), make_clock(settings.clock), lambda echo_store: None)

    app = asyncio.run(build())
    assert app.conf.producer_max_request_size == 2_000_000
    assert app.producer._settings_default()["max_request_size"] == 2_000_000  # what aiokafka is given
    assert app.clientshift.record_sizes.limit == 2_000_000 - 16 * 1024


def test_a_setting_that_cannot_be_used_is_named_with_its_value():
    import pytest

    from workers.kafka.settings import SettingsError

    cases = {
        "CLIENTSHIFT_PARTITIONS": ("four", "CLIENTSHIFT_PARTITIONS='four': not a whole number"),
        "CLIENTSHIFT_SINK_WITHIN": ("-1", "CLIENTSHIFT_SINK_WITHIN='-1': must be at least 0"),
        "CLIENTSHIFT_PROCESS_WITHIN": ("nan", "CLIENTSHIFT_PROCESS_WITHIN='nan': must be at least 0.001"),
        "CLIENTSHIFT_REPLICATION_FACTOR": ("2.5", "CLIENTSHIFT_REPLICATION_FACTOR='2.5': not a whole number"),
        "CLIENTSHIFT_MAX_RECORD_BYTES": ("1000", "CLIENTSHIFT_MAX_RECORD_BYTES='1000': must be at least 131072"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({name: value})
        assert str(caught.value) == message
    assert Settings.from_env({"CLIENTSHIFT_PARTITIONS": " ", "CLIENTSHIFT_SINK_WITHIN": "0"}).partitions == 4


def test_clientshift_run_stops_on_such_a_setting_with_its_name_not_a_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLIENTSHIFT_")},
           "CLIENTSHIFT_PARTITIONS": "four", "CLIENTSHIFT_DATA_DIR": str(tmp_path)}
    for command in (["run"], ["lag", "--broker", "127.0.0.1:1"]):
        done = subprocess.run([sys.executable, "-m", "workers.cli", *command], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "CLIENTSHIFT_PARTITIONS='four': not a whole number" in done.stderr and "Traceback" not in done.stderr
