"""`clientshift bench worker`: the full worker against two baselines on the same topic, same run:
a raw aiokafka loop that only reads and json-decodes, and a minimal Faust agent that only decodes.
Also p50/p99 latency from produce to action, and two worker processes on two cores."""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from workers.bench_replay import generate, padded
from workers.kafka.local_broker import LocalBroker
from workers.kafka.settings import Settings, Topics
from workers.kafka.supervisor import WorkerProcess
from workers.kafka.topics import ensure_topics, high_watermarks


def _settings(broker: str, tag: str) -> Settings:
    topics = Topics(**{name: f"{tag}.{value}" for name, value in vars(Topics()).items()})
    return replace(Settings(), broker=broker, group_id=f"bench-{tag}", topics=topics)


def _produce(settings: Settings, events: list[dict[str, Any]]) -> dict[str, float]:
    """Produce with the raw aiokafka producer (fast); returns send time by event id."""
    from aiokafka import AIOKafkaProducer

    sent: dict[str, float] = {}

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers[0], linger_ms=5)
        await producer.start()
        try:
            for event in events:
                sent[event["id"]] = time.time()
                await producer.send(settings.topics.events, json.dumps(event).encode(), key=event["subject"].encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())
    return sent


def _raw_loop(settings: Settings, count: int) -> float:
    from aiokafka import AIOKafkaConsumer

    async def run() -> float:
        consumer = AIOKafkaConsumer(settings.topics.events, bootstrap_servers=settings.bootstrap_servers[0],
                                    auto_offset_reset="earliest", group_id=f"{settings.group_id}-raw",
                                    enable_auto_commit=False)
        await consumer.start()
        seen = 0
        started = None
        try:
            while seen < count:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                if started is None and batch:
                    started = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        json.loads(record.value)
                        seen += 1
        finally:
            await consumer.stop()
        return count / (time.perf_counter() - (started or time.perf_counter()))

    return asyncio.run(run())


def _until_drained(settings: Settings, group: str, workers: list[WorkerProcess], timeout: float) -> float:
    """Seconds from all workers ready until the group has committed the whole events topic."""
    from kafka import KafkaConsumer

    ends = high_watermarks(settings, [settings.topics.events])  # fixed: everything was produced before
    for worker in workers:
        worker.wait_ready()
    started = time.perf_counter()
    # One client for the whole wait, asking only for the committed offsets: a fresh lag query per look
    # cost enough CPU to have to look seldom, and looking once a second made the figures ±6% coarse.
    watcher = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group,
                            enable_auto_commit=False, **settings.kafka_python_security())
    try:
        while time.perf_counter() - started < timeout:
            for worker in workers:
                worker._check_alive()
            if all((watcher.committed(tp) or 0) >= end for tp, end in ends.items()):
                return time.perf_counter() - started
            time.sleep(0.1)  # a benchmark polling another process's commits, not a test's synchronisation
    finally:
        watcher.close()
    raise TimeoutError("workers did not drain the topic")


def _worker_env(settings: Settings, work: Path, n: int) -> dict[str, str]:
    env = {"CLIENTSHIFT_BROKER": settings.broker, "CLIENTSHIFT_BROKER_KIND": "tansu",
           "CLIENTSHIFT_GROUP_ID": settings.group_id, "CLIENTSHIFT_CONNECTOR": "recording",
           "CLIENTSHIFT_CLOCK": "fixed:1970-01-01T00:00:00Z", "CLIENTSHIFT_LOG_LEVEL": "warning",
           "CLIENTSHIFT_DATA_DIR": str(work / f"data-{n}")}
    env.update({f"CLIENTSHIFT_TOPIC_{k.upper()}": v for k, v in vars(settings.topics).items()})
    return env


def _minimal_faust(settings: Settings, work: Path, group: str, fixed: bool = False) -> WorkerProcess:
    env = {**_worker_env(settings, work, 99), "CLIENTSHIFT_GROUP_ID": group,
           "CLIENTSHIFT_BENCH_FAUST_FIXES": "1" if fixed else "0"}
    return WorkerProcess(env, work / f"{group}.log", command=("-m", "workers.kafka.bench_minimal")).start()


def _minimal_rate(settings: Settings, work: Path, events: int, fixed: bool) -> float:
    group = f"{settings.group_id}-minimal{'-fixed' if fixed else ''}"
    process = _minimal_faust(settings, work, group, fixed)
    try:
        return events / _until_drained(settings, group, [process], 900)
    finally:
        process.stop()


def _latencies(settings: Settings, sent: dict[str, float]) -> list[float]:
    from kafka import KafkaConsumer

    ends = high_watermarks(settings, [settings.topics.actions])
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    consumer.assign(list(ends))
    consumer.seek_to_beginning()
    out: list[float] = []
    remaining = {tp for tp, end in ends.items() if end}
    while remaining:
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                trigger = json.loads(record.value)["trigger"]
                if trigger.startswith("event:bench/"):
                    out.append(record.timestamp / 1000 - sent[trigger.split("/", 1)[1]])
            if consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    consumer.close()
    return out


def run(events: int, accounts: int, console: Console, event_bytes: int | None = None) -> None:
    stream = generate(events, accounts, seed=11)
    if event_bytes:
        stream = padded(stream, event_bytes, seed=11)
    size = sum(len(json.dumps(e)) for e in stream) / len(stream)
    table = Table(title=f"Worker benchmark: {events:,} events (~{size:.0f} B), {accounts:,} accounts, 4 partitions")
    for column in ("what", "events/s", "vs raw loop", "vs minimal Faust"):
        table.add_column(column, justify="right")
    with LocalBroker() as broker, tempfile.TemporaryDirectory(prefix="clientshift-bench-") as scratch:
        work = Path(scratch)
        settings = _settings(broker.bootstrap, "w")
        ensure_topics(settings)
        with console.status("producing ..."):
            sent = _produce(settings, stream)
        with console.status("raw aiokafka loop ..."):
            raw = _raw_loop(settings, events)
        with console.status("minimal Faust agent ..."):
            minimal = _minimal_rate(settings, work, events, fixed=False)
        with console.status("minimal Faust agent on the worker's Faust fixes ..."):
            minimal_fixed = _minimal_rate(settings, work, events, fixed=True)
        with console.status("full worker, one process ..."):
            worker = WorkerProcess(_worker_env(settings, work, 0), work / "worker-0.log").start()
            full = events / _until_drained(settings, settings.group_id, [worker], 900)
            worker.stop()
        latencies = _latencies(settings, sent)
        two_settings = replace(settings, group_id=f"{settings.group_id}-two")
        with console.status("full worker, two processes ..."):
            pair = [WorkerProcess({**_worker_env(two_settings, work, n)}, work / f"pair-{n}.log").start()
                    for n in (1, 2)]
            two = events / _until_drained(two_settings, two_settings.group_id, pair, 900)
            for worker in pair:
                worker.stop()
    for name, rate in [("raw aiokafka consumer + json.loads", raw), ("minimal Faust agent (decode only)", minimal),
                       ("minimal Faust agent + workers.kafka.faust_fixes", minimal_fixed),
                       ("full worker: state, rules, actions (1 process)", full),
                       ("full worker (2 processes, 2 cores)", two)]:
        table.add_row(name, f"{rate:,.0f}", f"{rate / raw:.3f}x", f"{rate / minimal:.2f}x")
    console.print(table)
    console.print("note: the produce-to-action latency below is measured on a backlog (everything produced "
                  "before the worker starts), so it is queueing time, not per-event cost")
    if latencies:
        quantiles = statistics.quantiles(latencies, n=100)
        console.print(f"produce -> action latency over {len(latencies):,} actions: p50 {quantiles[49]:.2f} s, "
                      f"p99 {quantiles[98]:.2f} s")
