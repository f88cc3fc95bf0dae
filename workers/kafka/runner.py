"""Start a worker: settings, the embedded broker when none is configured, topics, connector, Faust."""

from __future__ import annotations

import gc
import logging
import os
from contextlib import ExitStack
from dataclasses import replace

from typing import Any, Callable

import faust
import yaml

from connectors.base import Connector
from connectors.hubspot.normalize import EventMapping, mapping_from
from connectors.registry import UnknownConnector, available, load_connector
from workers.kafka.app import create_app
from workers.kafka.clock import make_clock
from workers.kafka.event_loop import use_event_loop
from workers.kafka.local_broker import LocalBroker
from workers.kafka.settings import Settings
from workers.kafka.topics import ensure_topics
from workers.logs import logging_config
from workers.rules.policy import load_policy

log = logging.getLogger("clientshift.worker")

# Faust allocates a handful of short-lived objects per message; with CPython's default threshold (700)
# the collector ran so often that raising it gave the worker about 7% more events/s at 100k events
# (`clientshift bench worker`). Memory stays bounded: collections still run, just less often.
GC_THRESHOLDS = (50_000, 20, 100)


def connector_factory(settings: Settings) -> Callable[[Any], Connector | None]:  # takes the echo store
    def build(echo_store: Any) -> Connector | None:
        if settings.dry_run:
            return None
        return load_connector(settings.connector, {"env": os.environ, "sandbox_db": settings.sandbox_db,
                                                   "last_written": echo_store})

    return build


def hubspot_mapping() -> EventMapping:
    """CLIENTSHIFT_HUBSPOT_MAPPING names a YAML file mapping HubSpot changes to canonical events."""
    path = os.environ.get("CLIENTSHIFT_HUBSPOT_MAPPING")
    if not path:
        return EventMapping()
    with open(path, encoding="utf-8") as handle:
        return mapping_from(yaml.safe_load(handle))


class Worker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # Faust's terminal spinner sets the root logger to DEBUG and formats every library's debug record
        # (a tenth of the worker's CPU, measured); logging is configured by `logging_config` alone.
        return None


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT (then stop gracefully: finish the batch in hand, commit, exit 0)."""
    use_event_loop(settings.event_loop)
    gc.set_threshold(*GC_THRESHOLDS)
    with ExitStack() as stack:
        embedded = not settings.broker
        if embedded:
            broker = stack.enter_context(LocalBroker())
            settings = replace(settings, broker=broker.bootstrap, broker_kind="tansu")
        policy = load_policy(settings.rules)  # a bad rules file stops the worker here, with positions
        if not settings.dry_run and settings.connector not in available():
            # Fail at start, not at the first batch of actions.
            raise UnknownConnector(f"no connector named {settings.connector!r}; installed: "
                                   f"{', '.join(available())}")
        settings = replace(settings, replication_factor=ensure_topics(settings))
        app = create_app(settings, policy, make_clock(settings.clock), connector_factory(settings),
                         tansu=settings.broker_kind == "tansu", hubspot_mapping=hubspot_mapping(),
                         hubspot_app_id=os.environ.get("HUBSPOT_APP_ID"))
        worker = Worker(app, loglevel=settings.log_level.upper(), logging_config=logging_config(
            settings.log_level), redirect_stdouts=False, quiet=True)
        worker.execute_from_commandline()
