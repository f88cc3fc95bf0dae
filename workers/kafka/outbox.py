"""A batch's output records, sent as one record batch per topic partition.

Sending record by record costs a Python-level produce call, a future and a callback per record, which
was a large share of the worker's time. A batch of input events knows all its output records at once
and the partition of each (its input partition: every topic is co-partitioned by account), so it can
build Kafka record batches itself and hand the producer one per partition (aiokafka's batch API).
`flush` returns once the broker has acknowledged every record.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Iterator


class Outbox:
    def __init__(self, producer: Any) -> None:
        self.producer = producer  # aiokafka.AIOKafkaProducer
        self.open: dict[tuple[str, int], Any] = {}
        self.full: list[tuple[tuple[str, int], Any]] = []

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
        where = (topic, partition)
        batch = self.open.get(where)
        if batch is None:
            batch = self.open[where] = self.producer.create_batch()
        if batch.append(timestamp=None, key=key, value=value) is None:
            # Full: it goes as it is, the record starts the next one (a first record always fits).
            self.full.append((where, batch))
            batch = self.open[where] = self.producer.create_batch()
            batch.append(timestamp=None, key=key, value=value)

    async def flush(self) -> None:
        batches = self.full + list(self.open.items())
        self.full, self.open = [], {}
        acks = [await self.producer.send_batch(batch, topic, partition=partition)
                for (topic, partition), batch in batches]
        if acks:
            await asyncio.gather(*acks)


def json_arrays(values: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """Encoded JSON values gathered into JSON arrays of at most `limit` bytes each (a value larger than
    that on its own): one record per write-out and partition is fewer records, but a record over Kafka's
    limit would fail the write-out on every retry."""
    chunk: list[bytes] = []
    size = 1  # "[" and a "," or "]" after each value
    for value in values:
        if chunk and size + len(value) + 1 > limit:
            yield b"[" + b",".join(chunk) + b"]"
            chunk, size = [], 1
        chunk.append(value)
        size += len(value) + 1
    if chunk:
        yield b"[" + b",".join(chunk) + b"]"
