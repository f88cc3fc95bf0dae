"""Everything specific to the local Tansu broker, in one place (measured facts: ../shared/notes/local-broker.md).

None of this is needed against a real Kafka cluster, and none of it hurts there except where noted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from workers.kafka.settings import Settings
from workers.kafka.topics import high_watermarks_of

# Tansu holds JoinGroup for about half the session timeout: with Faust's 60 s default a worker needs
# ~31 s to become ready; these made it ~2.5 s, also after a kill -9. On a real cluster they only make
# group membership more sensitive to pauses, so they apply only when the broker is Tansu (embedded, or CLIENTSHIFT_BROKER_KIND=tansu).
FAST_GROUP_SETTINGS: dict[str, Any] = {
    "broker_session_timeout": 2.0,
    "broker_heartbeat_interval": 0.5,
    "broker_rebalance_timeout": 2.0,
}


# Tansu auto-creates topics with 4 partitions whatever is asked; topics are created explicitly
# (workers.kafka.topics) so the partition count is the one the app expects, on Tansu and Kafka alike.
# Idempotent producers and transactions fail on Tansu (InitProducerId -> UnknownError): the design is
# at-least-once plus idempotent CRM writes, so processing_guarantee stays "at_least_once" everywhere.


def faust_settings(tansu: bool) -> dict[str, Any]:
    return dict(FAST_GROUP_SETTINGS) if tansu else {}


def exact_recovery_ends(settings: Settings) -> None:
    """Make Faust's table recovery read the changelogs' true ends.

    Tansu answers ListOffsets(latest) with the base offset of the last record batch + 1, not the true
    end, so Faust's recovery (which asks for exactly that) stops early and tables come back stale after
    a restart. The high watermark in a fetch response is right, so recovery asks for that instead.
    The other way out, a producer that sends one record per batch, made every output a broker round
    trip and cost the worker more than half its throughput. On a real Kafka cluster this is not applied.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
    from faust.types import TP

    async def true_ends(self: Any, partitions: list[TP]) -> dict[TP, int]:
        marks = await asyncio.to_thread(high_watermarks_of, settings, partitions)
        return {TP(tp.topic, tp.partition): end for tp, end in marks.items()}

    AIOKafkaConsumerThread._highwaters = true_ends  # type: ignore[method-assign]
