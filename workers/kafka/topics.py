"""The admin side, through kafka-python: create the topics with the partition count the app expects,
read a group's committed offsets and the topics' high watermarks (lag, quiescence)."""

from __future__ import annotations

import time
from contextlib import closing
from dataclasses import dataclass
from typing import Iterable

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from workers.kafka.settings import Settings


# The worker's Faust tables; Faust names their changelog topics `<app id>-<table>-changelog`.
ACCOUNTS_TABLE, DEADLINES_TABLE = TABLES = ("accounts", "deadlines")


class TopicLayoutError(ValueError):
    """Existing topics whose partition count is not the one the worker's tables need."""


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.group_id}-{table}-changelog" for table in TABLES]


def co_partitioned(settings: Settings) -> list[str]:
    """Topics that must have exactly `settings.partitions` partitions: an event is handled, its state kept
    and its actions and audit written under the same partition number."""
    topics = settings.topics
    return [topics.events, topics.ticks, topics.actions, topics.audit, *changelog_topics(settings)]


def replication_for(settings: Settings, brokers: int) -> int:
    """The configured replication factor, or else up to 3 (what production clusters commonly require,
    Confluent Cloud included) but no more than the cluster has brokers, so a one-broker development
    cluster works too. Kafka's own defaults would give 1: a topic lost with its broker."""
    return settings.replication_factor or max(1, min(3, brokers))


def ensure_topics(settings: Settings) -> int:
    """Create every topic the worker uses (idempotent) and return the replication factor used, which
    Faust's changelog topics must get too. Internal single-partition topics would break
    co-partitioning, so every topic gets the input's partition count."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, client_id="clientshift-admin",
                             **settings.kafka_python_security())
    try:
        replication = replication_for(settings, len(admin.describe_cluster()["brokers"]))
        existing = set(admin.list_topics())
        _check_layout(admin, settings, [name for name in co_partitioned(settings) if name in existing])
        wanted = [NewTopic(name, settings.partitions, replication) for name in settings.topics.all()
                  if name not in existing]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another worker created them first
    finally:
        admin.close()
    return replication


def _check_layout(admin: KafkaAdminClient, settings: Settings, names: list[str]) -> None:
    # Caught here, at start, rather than as a failed write to a changelog partition that does not exist,
    # or events no table partition owns, once traffic arrives.
    if not names:
        return
    counts = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
    wrong = {name: count for name, count in counts.items() if count != settings.partitions}
    if wrong:
        found = ", ".join(f"{name} has {count}" for name, count in sorted(wrong.items()))
        raise TopicLayoutError(
            f"CLIENTSHIFT_PARTITIONS is {settings.partitions}, but {found} partitions. Set CLIENTSHIFT_PARTITIONS "
            "to the events topic's count; for changelog topics of another count, use a new CLIENTSHIFT_GROUP_ID "
            "(a new group rebuilds state) or recreate them with the events topic's count.")


def high_watermarks(settings: Settings, topics: Iterable[str], timeout: float = 10.0) -> dict[TopicPartition, int]:
    """True end offsets of every partition of `topics`, read from fetch responses: Tansu's ListOffsets
    is wrong for multi-record batches (see workers.kafka.tansu), a fetch's high watermark is right on both."""
    with closing(_plain_consumer(settings)) as consumer:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        return _fetched_ends(consumer, partitions, timeout)


def high_watermarks_of(settings: Settings, partitions: Iterable[tuple[str, int]],
                       timeout: float = 10.0) -> dict[TopicPartition, int]:
    """The same, for given (topic, partition) pairs."""
    with closing(_plain_consumer(settings)) as consumer:
        return _fetched_ends(consumer, [TopicPartition(t, p) for t, p in partitions], timeout)


def _plain_consumer(settings: Settings) -> KafkaConsumer:
    return KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                         **settings.kafka_python_security())


def _fetched_ends(consumer: KafkaConsumer, partitions: list[TopicPartition], timeout: float) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    consumer.assign(partitions)
    # From each partition's end as ListOffsets sees it, one fetch round answers for all of them with
    # the real high watermark, even when it returns no records.
    consumer.seek_to_end()
    deadline = time.monotonic() + timeout
    while any(consumer.highwater(tp) is None for tp in partitions) and time.monotonic() < deadline:
        consumer.poll(timeout_ms=50, update_offsets=False)
    return {tp: max(consumer.highwater(tp) or 0, consumer.position(tp)) for tp in partitions}


def committed_offsets(settings: Settings, group: str, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """A group's committed offsets (OffsetFetch through a consumer that never joins the group)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group,
                             enable_auto_commit=False, **settings.kafka_python_security())
    try:
        out = {}
        for tp in partitions:
            offset = consumer.committed(tp)
            if offset is not None:
                out[tp] = offset
        return out
    finally:
        consumer.close()


@dataclass(frozen=True)
class PartitionLag:
    """Where a group stands on one partition; `committed` is None before the group's first commit there."""

    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.committed or 0))


def partition_lag(settings: Settings, group: str, topics: Iterable[str]) -> list[PartitionLag]:
    """What `kafka-consumer-groups --describe` shows for a group's offsets: committed, end and lag of every
    partition of `topics`, in topic and partition order."""
    marks = high_watermarks(settings, list(topics))
    committed = committed_offsets(settings, group, marks)
    return [PartitionLag(tp.topic, tp.partition, committed.get(tp), end) for tp, end in marks.items()]


def group_lag(settings: Settings, group: str, topics: Iterable[str]) -> dict[str, int]:
    """Messages not yet committed by `group`, per topic."""
    lag: dict[str, int] = {}
    for row in partition_lag(settings, group, topics):
        lag[row.topic] = lag.get(row.topic, 0) + row.lag
    return lag
