"""What the worker's agents, timers and pages share besides Faust's own objects."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

from connectors.base import Connector
from connectors.hubspot.echo import InMemoryLastWritten
from connectors.hubspot.normalize import DEFAULT_MAPPING, Associations, EventMapping
from workers.engine import Engine
from workers.kafka.clock import Clock
from workers.kafka.due import DueIndex
from workers.kafka.pending import Pending
from workers.kafka.record_sizes import RecordSizes
from workers.kafka.settings import Settings
from workers.rules.policy import Policy


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    clock: Clock
    connector_factory: Callable[[], Connector | None]
    engine: Engine = field(init=False)
    # What the events handled since the last write-out decided; a write-out swaps in a new one.
    pending: Pending = field(default_factory=Pending)
    flushing: asyncio.Lock = field(default_factory=asyncio.Lock)
    ticked: dict[str, float] = field(default_factory=dict)
    due: DueIndex = field(default_factory=DueIndex)
    record_sizes: RecordSizes = field(init=False)
    connector: Connector | None = None
    # Since when its partitions have waited (a start or a rebalance); None once it is ready.
    waiting_since: float | None = field(default_factory=time.monotonic)
    # Shared by the sink's HubSpot connector (which records what it wrote) and the webhook normalizer
    # (which drops those writes when they come back as webhooks).
    echo_store: InMemoryLastWritten = field(default_factory=InMemoryLastWritten)
    associations: Associations = field(default_factory=Associations)
    # How the normalizer reads webhook events; every property the connector writes is ignored as input.
    hubspot_mapping: EventMapping = DEFAULT_MAPPING

    def __post_init__(self) -> None:
        self.engine = Engine(self.policy)
        self.record_sizes = RecordSizes(self.settings.state_row_warn_bytes, self.settings.max_record_bytes)

    @property
    def ready(self) -> bool:
        """Partitions assigned and tables recovered."""
        return self.waiting_since is None

    def sink_connector(self) -> Connector | None:
        """The sink's connector, made at its first batch (None on a dry run)."""
        if self.connector is None:
            self.connector = self.connector_factory()
        return self.connector
