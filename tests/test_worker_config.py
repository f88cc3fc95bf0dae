"""The Kafka client settings the worker reaches aiokafka with, through Faust (the benchmark measures their
effect; these pin that they arrive)."""

from __future__ import annotations

import asyncio
from pathlib import Path
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
        "CLIENTSHIFT_EVENT_LOOP": ("tokio", "CLIENTSHIFT_EVENT_LOOP='tokio': must be one of uvloop, asyncio"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({name: value})
        assert str(caught.value) == message
    assert Settings.from_env({"CLIENTSHIFT_PARTITIONS": " ", "CLIENTSHIFT_SINK_WITHIN": "0"}).partitions == 4
    assert Settings.from_env({"CLIENTSHIFT_EVENT_LOOP": " AsyncIO "}).event_loop == "asyncio"
    assert Settings.from_env({}).event_loop == "uvloop"


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


def test_tls_and_sasl_settings_reach_every_kafka_client_the_project_makes(monkeypatch):
    """A real cluster differs only in the broker URL and these settings, so each client must get them:
    the worker's consumer and producer (through Faust), the webhook ingress's producer (aiokafka), and
    the admin, produce, record, lag and DLQ commands (kafka-python). Built, never connected."""
    import certifi
    from aiokafka import AIOKafkaProducer
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    ca_file = certifi.where()  # any CA bundle will do: what matters is that this one is what is loaded
    bundle = Path(ca_file).read_text(encoding="ascii").count("BEGIN CERTIFICATE")
    monkeypatch.setenv("CLIENTSHIFT_SASL_PASSWORD", "s3cret")
    settings = Settings.from_env({
        "CLIENTSHIFT_BROKER": "b-1.example:9096,b-2.example:9096",
        "CLIENTSHIFT_BROKER_SECURITY_PROTOCOL": "sasl_ssl", "CLIENTSHIFT_SASL_MECHANISM": "SCRAM-SHA-512",
        "CLIENTSHIFT_SASL_USERNAME": "clientshift", "CLIENTSHIFT_SSL_CAFILE": ca_file})

    async def clients() -> list[Any]:
        app = create_app(settings, load_policy(None), make_clock(settings.clock), lambda echo_store: None)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        producer = app.producer._new_producer()
        ingress = AIOKafkaProducer(bootstrap_servers="b-1.example:9096", **settings.aiokafka_security())
        try:
            return [consumer._client, producer.client, ingress.client]
        finally:
            for client in (consumer, producer, ingress):
                await client.stop()

    built = asyncio.run(clients())
    assert len(built) == 3
    for client in built:
        assert client._security_protocol == "SASL_SSL"
        assert (client._sasl_mechanism, client._sasl_plain_username, client._sasl_plain_password) == (
            "SCRAM-SHA-512", "clientshift", "s3cret")
        assert len(client._ssl_context.get_ca_certs()) == bundle  # the configured CA file, and only it
        assert client._ssl_context.check_hostname

    options = settings.kafka_python_security()
    assert options == {"security_protocol": "SASL_SSL", "ssl_cafile": ca_file, "sasl_mechanism": "SCRAM-SHA-512",
                       "sasl_plain_username": "clientshift", "sasl_plain_password": "s3cret"}
    for client in (KafkaAdminClient, KafkaConsumer, KafkaProducer):  # their constructors connect: keys only
        assert set(options) <= set(client.DEFAULT_CONFIG), client.__name__

    plain = Settings.from_env({"CLIENTSHIFT_BROKER": "127.0.0.1:1"})
    assert plain.aiokafka_security() == {"security_protocol": "PLAINTEXT", "ssl_context": None}
    assert plain.kafka_python_security() == {"security_protocol": "PLAINTEXT"}


def test_the_worker_s_webhook_normalizer_ignores_every_property_its_connector_writes(tmp_path):
    from connectors.hubspot.normalize import mapping_from

    rules = tmp_path / "rules.yaml"
    default = Path(__file__).resolve().parent.parent / "workers" / "rules" / "default.yaml"
    rules.write_text(default.read_text().replace("name: relationship_status", "name: customer_tier", 1))
    policy = load_policy(rules)
    assert policy.tag_name == "customer_tier"
    settings = Settings(broker="127.0.0.1:1")

    async def build() -> Any:
        return create_app(settings, policy, make_clock(settings.clock), lambda echo_store: None,
                          hubspot_mapping=mapping_from({"ignored_properties": []}))

    ignored = asyncio.run(build()).clientshift.hubspot_mapping.ignored_properties
    assert {"customer_tier", "relationship_reason", "relationship_updated_at"} <= set(ignored)
