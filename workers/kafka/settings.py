"""Worker configuration, from environment variables (CLIENTSHIFT_*), which Helm, systemd and a shell all
speak. Secrets are read where they are used (connectors), never stored here, so this object is safe to
log."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Mapping

from workers.secrets import read_secret


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class SettingsError(ValueError):
    """A CLIENTSHIFT_* variable whose value cannot be used; the message names it."""


def _number(env: Mapping[str, str], name: str, default: float, minimum: float, whole: bool = True) -> Any:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: not a {'whole ' if whole else ''}number") from None
    if not value >= minimum:  # also refuses NaN
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default), any case."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise SettingsError(f"{name}={env[name]!r}: must be one of {', '.join(choices)}")
    return raw


EVENT_LOOPS = ("uvloop", "asyncio")


@dataclass(frozen=True)
class Topics:
    events: str = "clientshift.events"
    ticks: str = "clientshift.ticks"
    actions: str = "clientshift.actions"
    audit: str = "clientshift.audit"
    dlq: str = "clientshift.dlq"
    hubspot_raw: str = "clientshift.raw.hubspot"
    salesforce_raw: str = "clientshift.raw.salesforce"

    def all(self) -> list[str]:
        return [self.events, self.ticks, self.actions, self.audit, self.dlq, self.hubspot_raw, self.salesforce_raw]

    def consumed(self) -> list[str]:
        """What the worker's consumer group reads (the others it only writes)."""
        return [self.events, self.ticks, self.actions, self.hubspot_raw]


@dataclass(frozen=True)
class Settings:
    broker: str = ""  # empty: start the embedded local broker
    broker_kind: str = "kafka"  # "tansu" applies the local broker's workarounds (workers.kafka.tansu)
    group_id: str = "clientshift"
    partitions: int = 4
    # Replicas of every topic the worker creates, Faust's changelogs included; None: up to 3, as many as
    # the cluster has brokers (workers.kafka.topics.replication_for).
    replication_factor: int | None = None
    rules: str | None = None
    connector: str = "sandbox"
    dry_run: bool = False
    sandbox_db: str | None = None
    data_dir: str = "clientshift-data"
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    log_level: str = "info"
    event_loop: str = "uvloop"  # or "asyncio": see workers.kafka.event_loop
    clock: str = "system"
    deadline_interval: float = 1.0
    process_batch: int = 500
    process_within: float = 0.05
    stream_buffer: int = 32_768
    fetch_bytes: int = 8 * 1024 * 1024  # per partition and fetch; Faust's default is 1 MiB
    fetch_max_wait_ms: int = 100  # Faust's own is 1500: see workers.kafka.faust_fixes, fix 10
    sink_batch: int = 500
    sink_within: float = 0.5
    # A quarter of Kafka's default 1 MiB message limit: years of warning at most accounts' event rates.
    state_row_warn_bytes: int = 256 * 1024
    # The largest record the worker sends (the producer's max.request.size). Faust's default, just under
    # the broker's default message.max.bytes (1 MiB + 12 B); raise both together.
    max_record_bytes: int = 1_000_000
    topics: Topics = field(default_factory=Topics)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    ssl_cafile: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        get = env.get
        topics = Topics(**{name: get(f"CLIENTSHIFT_TOPIC_{name.upper()}", default)
                           for name, default in vars(Topics()).items()})
        return cls(
            broker=get("CLIENTSHIFT_BROKER", ""),
            broker_kind=get("CLIENTSHIFT_BROKER_KIND", "kafka").lower(),
            group_id=get("CLIENTSHIFT_GROUP_ID", "clientshift"),
            partitions=_number(env, "CLIENTSHIFT_PARTITIONS", 4, 1),
            replication_factor=_number(env, "CLIENTSHIFT_REPLICATION_FACTOR", 0, 0) or None,
            rules=get("CLIENTSHIFT_RULES") or None,
            connector=get("CLIENTSHIFT_CONNECTOR", "sandbox"),
            dry_run=_flag(get("CLIENTSHIFT_DRY_RUN")),
            sandbox_db=get("CLIENTSHIFT_SANDBOX_DB") or None,
            data_dir=get("CLIENTSHIFT_DATA_DIR", "clientshift-data"),
            web_port=_number(env, "CLIENTSHIFT_WEB_PORT", 6066, 0),
            web_host=get("CLIENTSHIFT_WEB_HOST", "0.0.0.0"),
            log_level=get("CLIENTSHIFT_LOG_LEVEL", "info"),
            event_loop=_choice(env, "CLIENTSHIFT_EVENT_LOOP", EVENT_LOOPS),
            clock=get("CLIENTSHIFT_CLOCK", "system"),
            deadline_interval=_number(env, "CLIENTSHIFT_DEADLINE_INTERVAL", 1.0, 0.001, whole=False),
            process_batch=_number(env, "CLIENTSHIFT_PROCESS_BATCH", 500, 1),
            process_within=_number(env, "CLIENTSHIFT_PROCESS_WITHIN", 0.05, 0.001, whole=False),
            stream_buffer=_number(env, "CLIENTSHIFT_STREAM_BUFFER", 32_768, 1),
            fetch_bytes=_number(env, "CLIENTSHIFT_FETCH_BYTES", 8 * 1024 * 1024, 1),
            fetch_max_wait_ms=_number(env, "CLIENTSHIFT_FETCH_MAX_WAIT_MS", 100, 0),
            sink_batch=_number(env, "CLIENTSHIFT_SINK_BATCH", 500, 1),
            sink_within=_number(env, "CLIENTSHIFT_SINK_WITHIN", 0.5, 0, whole=False),
            state_row_warn_bytes=_number(env, "CLIENTSHIFT_STATE_ROW_WARN_BYTES", 256 * 1024, 1),
            max_record_bytes=_number(env, "CLIENTSHIFT_MAX_RECORD_BYTES", 1_000_000, 128 * 1024),
            topics=topics,
            security_protocol=get("CLIENTSHIFT_BROKER_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
            sasl_mechanism=get("CLIENTSHIFT_SASL_MECHANISM") or None,
            sasl_username=get("CLIENTSHIFT_SASL_USERNAME") or None,
            ssl_cafile=get("CLIENTSHIFT_SSL_CAFILE") or None,
        )

    @property
    def bootstrap_servers(self) -> list[str]:
        """`kafka://a:9092,b:9092` or `a:9092,b:9092` -> ['a:9092', 'b:9092']."""
        hosts = self.broker.replace("kafka://", "").replace("aiokafka://", "")
        return [h.strip() for h in hosts.split(",") if h.strip()]

    def faust_broker_url(self) -> str:
        return ";".join(f"kafka://{host}" for host in self.bootstrap_servers)

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.security_protocol:
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def sasl_password(self) -> str | None:
        return read_secret(os.environ, "CLIENTSHIFT_SASL_PASSWORD")

    def aiokafka_security(self) -> dict[str, Any]:
        """The TLS/SASL settings in aiokafka's spelling (the webhook ingress's producer; the worker's own
        clients get them through Faust's credentials, workers.kafka.app)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol, "ssl_context": self.ssl_context()}
        if self.security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.sasl_mechanism or "PLAIN", sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password())
        return options

    def kafka_python_security(self) -> dict[str, Any]:
        """The same TLS/SASL settings, in kafka-python's spelling (admin, produce, record)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        if self.sasl_mechanism:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password())
        return options
