"""The worker's own code on a plain aiokafka loop, for `clientshift bench worker`: what the worker costs
without Faust's consumer path around its code (its consumer thread, messages, streams and acknowledgements).

Each record goes through exactly what the worker runs for it (workers.kafka.process.Processor, the same
write-outs, the sink's `apply_batch` with the worker's connector), on one event loop that reads the events
and actions partitions it is given, keeps the tables in dicts and commits once a second after a write-out,
as the worker does. It has no group membership, table recovery, timers or pages: it measures where the
worker's cost lies, it is not a way to run it.

Run by the benchmark as `python -m workers.kafka.bench_plain PARTITIONS` with a worker's environment: it
connects, prints `ready`, waits for a line on stdin (so the benchmark's meter leaves out start-up, as it
does for the worker), drains, and prints one JSON line with what it handled.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from workers.kafka.clock import make_clock
from workers.kafka.event_loop import loop_factory
from workers.kafka.process import Processor
from workers.kafka.runner import GC_THRESHOLDS, connector_factory
from workers.kafka.runtime import Runtime
from workers.kafka.settings import Settings
from workers.kafka.sink import apply_batch
from workers.kafka.topics import changelog_topics, high_watermarks_of
from workers.kafka.write_out import WriteOut, WriteOutPacer
from workers.rules.policy import load_policy

DRAIN_TIMEOUT = 900.0  # seconds, as for the worker (workers.kafka.bench.until_drained)


class _Table:
    """What the Processor reads of a Faust table: its rows, and its changelog's name."""

    def __init__(self, changelog: str) -> None:
        self.data: dict[str, Any] = {}
        self.changelog_topic = self
        self._changelog = changelog

    def get_topic_name(self) -> str:
        return self._changelog


class _NoSends:
    """The events topic (re-keying) and the dead letters: the benchmark's events are valid and keyed by
    account, and its actions all apply, so a send here is a bug worth stopping for."""

    async def send(self, *_: Any, **__: Any) -> None:
        raise RuntimeError("the benchmark's stream re-keyed or dead-lettered a record")


class _Event:
    """A record as the Processor reads a Faust event."""

    __slots__ = ("message", "key", "value")

    def __init__(self, record: Any) -> None:
        self.message, self.key, self.value = record, record.key, record.value


async def drain(settings: Settings, partitions: list[int], go: Any) -> dict[str, Any]:
    topics = settings.topics
    rt = Runtime(settings, load_policy(settings.rules), make_clock(settings.clock),
                 lambda: connector_factory(settings)(rt.echo_store))
    accounts_changelog, deadlines_changelog = changelog_topics(settings)
    letters: Any = _NoSends()
    processor = Processor(rt, _Table(accounts_changelog), _Table(deadlines_changelog), letters, letters)
    events = [TopicPartition(topics.events, p) for p in partitions]
    actions = [TopicPartition(topics.actions, p) for p in partitions]
    server = settings.bootstrap_servers[0]
    consumer = AIOKafkaConsumer(bootstrap_servers=server, group_id=settings.group_id, enable_auto_commit=False,
                                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                                max_partition_fetch_bytes=settings.fetch_bytes)
    producer = AIOKafkaProducer(bootstrap_servers=server, acks="all", max_batch_size=256 * 1024,
                                max_request_size=settings.max_record_bytes)
    await consumer.start()
    await producer.start()
    write_out = WriteOut(rt, lambda: producer, topics, accounts_changelog, deadlines_changelog)
    pacer = WriteOutPacer(rt, write_out, settings.process_batch)
    try:
        consumer.assign(events + actions)
        await consumer.seek_to_beginning(*events, *actions)
        # From fetches, not ListOffsets: Tansu's is wrong for multi-record batches (workers.kafka.tansu).
        total = sum(high_watermarks_of(settings, [(tp.topic, tp.partition) for tp in events]).values())
        await go()
        handled, applied = 0, 0
        sink: list[bytes] = []
        committed = time.monotonic()
        events_done, written = False, None
        while written is None or applied < written:
            for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                if tp.topic == topics.actions:
                    sink.extend(record.value for record in records)
                    continue
                for record in records:
                    await processor.handle(_Event(record))
                    await pacer.handled()
                    handled += 1
            if sink and (len(sink) >= settings.sink_batch or written is not None):
                await apply_batch(sink, rt.sink_connector, settings.connector, letters)
                applied, sink = applied + len(sink), []
            if time.monotonic() - committed >= 1.0 or (not events_done and handled == total):
                # As Faust commits: only after every output of the events it covers is written.
                await pacer.settled()
                await write_out()
                await consumer.commit()
                committed = time.monotonic()
                events_done = handled == total
            if events_done and written is None:
                # Everything is written: the sink's work is every action on its partitions (fresh topics).
                written = sum(high_watermarks_of(settings, [(tp.topic, tp.partition) for tp in actions]).values())
        await consumer.commit()
        return {"events": handled, "actions_written": written, "actions_applied": applied}
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    gc.set_threshold(*GC_THRESHOLDS)  # as the worker runs
    settings = Settings.from_env()
    partitions = [int(p) for p in sys.argv[1].split(",")]

    async def go() -> None:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        print(json.dumps(runner.run(asyncio.wait_for(drain(settings, partitions, go), DRAIN_TIMEOUT))), flush=True)


if __name__ == "__main__":
    main()
