"""Everything specific to the local Tansu broker, in one place (measured facts: ../shared/notes/local-broker.md).

None of this is needed against a real Kafka cluster, and none of it hurts there except where noted.
"""

from __future__ import annotations

from typing import Any

# Tansu holds JoinGroup for about half the session timeout: with Faust's 60 s default a worker needs
# ~31 s to become ready; these made it ~2.5 s, also after a kill -9. On a real cluster they only make
# group membership more sensitive to pauses, so they apply only when the broker is Tansu (embedded, or CLIENTSHIFT_BROKER_KIND=tansu).
FAST_GROUP_SETTINGS: dict[str, Any] = {
    "broker_session_timeout": 2.0,
    "broker_heartbeat_interval": 0.5,
    "broker_rebalance_timeout": 2.0,
}

# Tansu answers ListOffsets(latest) with the base offset of the last batch + 1, not the true end, so
# Faust's table recovery stops early and tables come back stale unless every record is its own batch.
# This one is always on: it costs nothing measurable in a table agent, and recovery must be exact.
RECOVERY_SAFE_PRODUCER: dict[str, Any] = {"producer_max_batch_size": 1}

# Tansu auto-creates topics with 4 partitions whatever is asked; topics are created explicitly
# (workers.kafka.topics) so the partition count is the one the app expects, on Tansu and Kafka alike.
# Idempotent producers and transactions fail on Tansu (InitProducerId -> UnknownError): the design is
# at-least-once plus idempotent CRM writes, so processing_guarantee stays "at_least_once" everywhere.


def faust_settings(tansu: bool) -> dict[str, Any]:
    return {**RECOVERY_SAFE_PRODUCER, **(FAST_GROUP_SETTINGS if tansu else {})}
