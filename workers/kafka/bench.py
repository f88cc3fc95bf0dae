"""`clientshift bench worker`: the full worker against two baselines on the same topic, same run:
a raw aiokafka loop that only reads and json-decodes, and a minimal Faust agent that only decodes.
Also p50/p99 latency from produce to action, on the backlog (queueing) and for a trickle of events to a
caught-up worker (one event's path: fetch, decision, write-out), and two worker processes on two cores
next to two minimal agents on the worker's Faust fixes (the same cores with no logic) and next to the
worker's own code on a plain aiokafka loop (the same work without Faust around it).

Next to each rate it prints the CPU each contender and the broker spent per event: a rate alone does not
say whether a process was busy or waiting (on fetches, on the broker, on other tenants of a shared
machine), and so whether its own code, the broker or neither is what limits it."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from workers.bench_replay import generate, padded
from workers.kafka.event_loop import loop_factory
from workers.kafka.local_broker import LocalBroker
from workers.kafka.settings import Settings, Topics
from workers.kafka.supervisor import WorkerProcess
from workers.kafka.topics import ensure_topics, high_watermarks


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds a process has used so far (all its threads), from /proc; None where
    there is no /proc (the figures are then left out, the rates are not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may itself contain spaces.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measured:
    """One contender's drain of the events: wall time, and the CPU its processes and the broker used
    meanwhile (None without /proc)."""

    events: int
    seconds: float
    cpu: float | None
    broker_cpu: float | None

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_us(self) -> str:
        return self._per_event(self.cpu)

    def broker_us(self) -> str:
        return self._per_event(self.broker_cpu)

    def _per_event(self, seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds / self.events * 1e6:.0f}"


class CpuMeter:
    """CPU used by some processes (and the broker) from `start()` to `stop()`."""

    def __init__(self, pids: list[int], broker_pid: int | None) -> None:
        self.pids, self.broker_pid = pids, broker_pid
        self.began = 0.0
        self.at_start: tuple[float | None, float | None] = (None, None)

    def _read(self) -> tuple[float | None, float | None]:
        own = [process_cpu_seconds(pid) for pid in self.pids]
        mine = None if None in own else sum(own)  # type: ignore[arg-type]
        return mine, None if self.broker_pid is None else process_cpu_seconds(self.broker_pid)

    def start(self) -> None:
        self.began, self.at_start = time.perf_counter(), self._read()

    def stop(self, events: int) -> Measured:
        seconds = time.perf_counter() - self.began
        (mine, broker), (mine_now, broker_now) = self.at_start, self._read()
        return Measured(events, seconds, _used(mine, mine_now), _used(broker, broker_now))


def _used(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def bench_settings(broker: str, tag: str) -> Settings:
    topics = Topics(**{name: f"{tag}.{value}" for name, value in vars(Topics()).items()})
    return replace(Settings(), broker=broker, group_id=f"bench-{tag}", topics=topics)


def produce_events(settings: Settings, events: list[dict[str, Any]], rate: float | None = None) -> dict[str, float]:
    """Produce with the raw aiokafka producer, as fast as it goes or `rate` events a second; returns send
    time by event id."""
    from aiokafka import AIOKafkaProducer

    sent: dict[str, float] = {}

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers[0], linger_ms=0 if rate else 5)
        await producer.start()
        began = time.perf_counter()
        try:
            for n, event in enumerate(events):
                if rate:
                    await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))  # pacing, not waiting
                sent[event["id"]] = time.time()
                await producer.send(settings.topics.events, json.dumps(event).encode(), key=event["subject"].encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())
    return sent


def _trickle_stream(events: int) -> list[dict[str, Any]]:
    """Events of accounts and ids of their own, so a caught-up worker acts on them as new."""
    return [{**event, "id": f"t-{n}", "subject": f"trickle-{event['subject']}"}
            for n, event in enumerate(generate(events, max(events // 3, 1), seed=12))]


def _raw_loop(settings: Settings, count: int, broker_pid: int | None) -> Measured:
    from aiokafka import AIOKafkaConsumer

    meter = CpuMeter([os.getpid()], broker_pid)  # this process does nothing else meanwhile

    async def run() -> Measured:
        consumer = AIOKafkaConsumer(settings.topics.events, bootstrap_servers=settings.bootstrap_servers[0],
                                    auto_offset_reset="earliest", group_id=f"{settings.group_id}-raw",
                                    enable_auto_commit=False)
        await consumer.start()
        seen = 0
        try:
            while seen < count:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                if not seen and batch:
                    meter.start()
                for records in batch.values():
                    for record in records:
                        json.loads(record.value)
                        seen += 1
        finally:
            await consumer.stop()
        return meter.stop(count)

    # On the worker's event loop too, so the ratios against this loop do not flatter the worker.
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        return runner.run(run())


def until_drained(settings: Settings, group: str, workers: list[WorkerProcess], timeout: float,
                   broker_pid: int | None = None) -> Measured:
    """From all workers ready until the group has committed the whole events topic."""
    from kafka import KafkaConsumer

    ends = high_watermarks(settings, [settings.topics.events])  # fixed: everything was produced before
    for worker in workers:
        worker.wait_ready()
    meter = CpuMeter([worker.process.pid for worker in workers if worker.process], broker_pid)
    meter.start()
    # One client for the whole wait, asking only for the committed offsets: a fresh lag query per look
    # cost enough CPU to have to look seldom, and looking once a second made the figures ±6% coarse.
    watcher = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group,
                            enable_auto_commit=False, **settings.kafka_python_security())
    try:
        while time.perf_counter() - meter.began < timeout:
            for worker in workers:
                worker._check_alive()
            if all((watcher.committed(tp) or 0) >= end for tp, end in ends.items()):
                return meter.stop(sum(ends.values()))
            time.sleep(0.1)  # a benchmark polling another process's commits, not a test's synchronisation
    finally:
        watcher.close()
    raise TimeoutError("workers did not drain the topic")


def worker_env(settings: Settings, work: Path, n: int) -> dict[str, str]:
    env = {"CLIENTSHIFT_BROKER": settings.broker, "CLIENTSHIFT_BROKER_KIND": "tansu",
           "CLIENTSHIFT_GROUP_ID": settings.group_id, "CLIENTSHIFT_CONNECTOR": "recording",
           "CLIENTSHIFT_CLOCK": "fixed:1970-01-01T00:00:00Z", "CLIENTSHIFT_LOG_LEVEL": "warning",
           "CLIENTSHIFT_DATA_DIR": str(work / f"data-{n}")}
    env.update({f"CLIENTSHIFT_TOPIC_{k.upper()}": v for k, v in vars(settings.topics).items()})
    return env


def _minimal_faust(settings: Settings, work: Path, group: str, fixed: bool, n: int) -> WorkerProcess:
    env = {**worker_env(settings, work, 90 + n), "CLIENTSHIFT_GROUP_ID": group,
           "CLIENTSHIFT_BENCH_FAUST_FIXES": "1" if fixed else "0"}
    return WorkerProcess(env, work / f"{group}-{n}.log", command=("-m", "workers.kafka.bench_minimal")).start()


def _minimal(settings: Settings, work: Path, broker_pid: int | None, *, fixed: bool, processes: int = 1) -> Measured:
    group = f"{settings.group_id}-minimal{'-fixed' if fixed else ''}{'' if processes == 1 else f'-{processes}'}"
    started = [_minimal_faust(settings, work, group, fixed, n) for n in range(processes)]
    try:
        return until_drained(settings, group, started, 900, broker_pid)
    finally:
        for process in started:
            process.stop()


def _plain(settings: Settings, work: Path, broker_pid: int | None, processes: int) -> Measured:
    """The worker's own code on a plain aiokafka loop (workers.kafka.bench_plain), the partitions dealt
    out to `processes` processes: the worker's cost without Faust's consumer path around it."""
    ensure_topics(settings)
    shares = [",".join(str(p) for p in range(n, settings.partitions, processes)) for n in range(processes)]
    env = {**os.environ, **worker_env(settings, work, 80)}
    started = [subprocess.Popen([sys.executable, "-m", "workers.kafka.bench_plain", share], env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE) for share in shares]
    try:
        for process in started:
            if process.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                raise RuntimeError(f"the plain loop stopped before it was ready (exit {process.wait()})")
        meter = CpuMeter([process.pid for process in started], broker_pid)
        meter.start()
        for process in started:
            process.stdin.write("go\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
        outcomes = [_outcome(process) for process in started]
        measured = meter.stop(sum(outcome["events"] for outcome in outcomes))
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait()
    for outcome in outcomes:
        # Its sink saw every action it wrote: the same work as the worker's, not a part of it.
        if not 0 < outcome["actions_applied"] == outcome["actions_written"]:
            raise RuntimeError(f"the plain loop applied {outcome['actions_applied']} of the "
                               f"{outcome['actions_written']} actions it wrote")
    return measured


def _outcome(process: subprocess.Popen[str]) -> dict[str, Any]:
    line = process.stdout.readline()  # type: ignore[union-attr]
    if not line:
        raise RuntimeError(f"the plain loop stopped before it drained its partitions (exit {process.wait()})")
    return json.loads(line)


def _latencies(settings: Settings, *sent: dict[str, float]) -> list[list[float]]:
    """Produce-to-action seconds of the actions topic's event-triggered actions, one list per map of send
    times by event id, in one read of the topic."""
    from kafka import KafkaConsumer

    ends = high_watermarks(settings, [settings.topics.actions])
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    consumer.assign(list(ends))
    consumer.seek_to_beginning()
    out: list[list[float]] = [[] for _ in sent]
    remaining = {tp for tp, end in ends.items() if end}
    while remaining:
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                trigger = json.loads(record.value)["trigger"]
                if not trigger.startswith("event:bench/"):
                    continue
                event_id = trigger.split("/", 1)[1]
                for times, latencies in zip(sent, out):
                    if event_id in times:
                        latencies.append(record.timestamp / 1000 - times[event_id])
            if consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    consumer.close()
    return out


def _own_outputs(settings: Settings, tag: str) -> Settings:
    """The same events topic for a new group that writes topics of its own. Every worker's sink reads
    the actions topic from its start, so a group sharing one would also read and apply the actions of
    the groups before it, and be measured doing more than its own work; and round 0's actions topic
    holds one worker's actions (the latency figures read it)."""
    outputs = {name: f"{value}-{tag}" for name, value in vars(settings.topics).items() if name != "events"}
    return replace(settings, group_id=f"{settings.group_id}-{tag}", topics=replace(settings.topics, **outputs))


def run(events: int, accounts: int, console: Console, event_bytes: int | None = None,
        trickle: int = 200, trickle_rate: float = 20.0, rounds: int = 3) -> None:
    """`rounds` pairs of the minimal Faust agent and the full worker, one after the other: on a shared
    machine one pair's ratio can be off by a fifth, so the main table shows the pair with the median
    ratio and a second table lists every pair."""
    stream = generate(events, accounts, seed=11)
    if event_bytes:
        stream = padded(stream, event_bytes, seed=11)
    size = sum(len(json.dumps(e)) for e in stream) / len(stream)
    table = Table(title=f"Worker benchmark: {events:,} events (~{size:.0f} B), {accounts:,} accounts, 4 partitions")
    for column in ("what", "events/s", "vs raw loop", "vs minimal Faust", "CPU µs/event", "broker CPU µs/event"):
        table.add_column(column, justify="right")
    pairs: list[tuple[Measured, Measured]] = []
    with LocalBroker() as broker, tempfile.TemporaryDirectory(prefix="clientshift-bench-") as scratch:
        work = Path(scratch)
        broker_pid = broker.process.pid if broker.process else None
        settings = bench_settings(broker.bootstrap, "w")
        ensure_topics(settings)
        with console.status("producing ..."):
            sent = produce_events(settings, stream)
        with console.status("raw aiokafka loop ..."):
            raw = _raw_loop(settings, events, broker_pid)
        with console.status("minimal Faust agent on the worker's Faust fixes ..."):
            minimal_fixed = _minimal(settings, work, broker_pid, fixed=True)
        for n in range(rounds):
            round_settings = settings if n == 0 else _own_outputs(settings, f"r{n}")
            with console.status(f"round {n + 1} of {rounds}: minimal Faust agent ..."):
                minimal_n = _minimal(round_settings, work, broker_pid, fixed=False)
            with console.status(f"round {n + 1} of {rounds}: full worker, one process ..."):
                worker = WorkerProcess(worker_env(round_settings, work, 10 + n), work / f"worker-{n}.log").start()
                try:
                    full_n = until_drained(round_settings, round_settings.group_id, [worker], 900, broker_pid)
                    if n == 0:
                        with console.status(f"trickle: {trickle} events at {trickle_rate:g}/s to the caught-up "
                                            "worker ..."):
                            trickled = produce_events(settings, _trickle_stream(trickle), rate=trickle_rate)
                            until_drained(settings, settings.group_id, [worker], 300)
                finally:
                    worker.stop()
            pairs.append((minimal_n, full_n))
        latencies, trickle_latencies = _latencies(settings, sent, trickled)
        two_settings = _own_outputs(settings, "two")
        with console.status("full worker, two processes ..."):
            pair = [WorkerProcess({**worker_env(two_settings, work, n)}, work / f"pair-{n}.log").start()
                    for n in (1, 2)]
            two = until_drained(two_settings, two_settings.group_id, pair, 900, broker_pid)
            for worker in pair:
                worker.stop()
        # What two processes could do with no logic at all, on the same fixes: the ceiling the two
        # workers are measured against when the question is how far cores, not our code, limit them.
        with console.status("minimal Faust agent on the fixes, two processes ..."):
            two_minimal = _minimal(settings, work, broker_pid, fixed=True, processes=2)
        # The worker's work without Faust around it: how much of the worker's cost is Faust's.
        with console.status("the worker's code on a plain aiokafka loop, one and two processes ..."):
            plain = _plain(_own_outputs(settings, "plain-1"), work, broker_pid, 1)
            two_plain = _plain(_own_outputs(settings, "plain-2"), work, broker_pid, 2)
    by_ratio = sorted(pairs, key=lambda p: p[1].rate / p[0].rate)
    minimal, full = by_ratio[len(by_ratio) // 2]
    for name, run_ in [("raw aiokafka consumer + json.loads", raw), ("minimal Faust agent (decode only)", minimal),
                       ("minimal Faust agent + workers.kafka.faust_fixes", minimal_fixed),
                       ("full worker: state, rules, actions (1 process)", full),
                       ("full worker (2 processes, 2 cores)", two),
                       ("minimal Faust agent + fixes (2 processes, 2 cores)", two_minimal),
                       ("the worker's code on a plain aiokafka loop (1 process)", plain),
                       ("the worker's code on a plain aiokafka loop (2 processes)", two_plain)]:
        table.add_row(name, f"{run_.rate:,.0f}", f"{run_.rate / raw.rate:.3f}x", f"{run_.rate / minimal.rate:.2f}x",
                      run_.cpu_us(), run_.broker_us())
    console.print(table)
    if rounds > 1:
        each = Table(title=f"full worker vs minimal Faust agent in each of {rounds} rounds (the table above shows "
                           f"the median round, {full.rate / minimal.rate:.2f}x)")
        for column in ("round", "minimal events/s", "minimal CPU µs/event", "worker events/s",
                       "worker CPU µs/event", "worker vs minimal"):
            each.add_column(column, justify="right")
        for n, (m, f) in enumerate(pairs, 1):
            each.add_row(str(n), f"{m.rate:,.0f}", m.cpu_us(), f"{f.rate:,.0f}", f.cpu_us(), f"{f.rate / m.rate:.2f}x")
        console.print(each)
    if full.cpu and minimal.cpu:
        # What the rate ratio would be if both were busy all the time, without their idle time.
        console.print(f"CPU per event, full worker vs minimal Faust agent: {full.cpu_us()} vs {minimal.cpu_us()} µs, "
                      f"a ratio of {minimal.cpu / full.cpu:.2f}x if both were CPU-bound")
    console.print(f"two processes: the workers did {two.rate / two_minimal.rate:.2f}x of what two minimal agents on "
                  f"the fixes did ({two_minimal.rate / raw.rate:.3f}x the raw loop: Faust's ceiling on these cores "
                  f"with no logic); a quarter of the raw loop is {raw.rate / 4:,.0f} events/s")
    if full.cpu and plain.cpu:
        console.print(f"on a plain aiokafka loop, without Faust: the worker's code took {plain.cpu_us()} µs of CPU "
                      f"per event (the worker {full.cpu_us()}), and in two processes did "
                      f"{two_plain.rate / raw.rate:.3f}x the raw loop")
    console.print("note: the produce-to-action latency below is measured on a backlog (everything produced "
                  "before the worker starts), so it is queueing time, not per-event cost")
    if latencies:
        quantiles = statistics.quantiles(latencies, n=100)
        console.print(f"produce -> action latency over {len(latencies):,} actions: p50 {quantiles[49]:.2f} s, "
                      f"p99 {quantiles[98]:.2f} s")
    if len(trickle_latencies) > 1:
        quantiles = statistics.quantiles(trickle_latencies, n=100)
        console.print(f"produce -> action latency of a caught-up worker ({trickle} events at {trickle_rate:g}/s), "
                      f"over {len(trickle_latencies):,} actions: p50 {quantiles[49] * 1000:.0f} ms, "
                      f"p99 {quantiles[98] * 1000:.0f} ms")
