"""`clientshift bench recovery`: how long a restarted worker takes to be ready again, which is how long its
partitions wait in a rolling update or after a crash.

A restarted worker reads its tables back from their changelogs before it handles an event. The benchmark
fills the changelogs by letting one worker drain a stream, then, in each round, times from process start
to `/readyz`:
- a worker of a new group, whose tables' changelogs exist but are empty: start-up alone (imports, group
  join), the baseline;
- the worker restarted in the drained group: start-up plus recovery;
- the same with Faust's own recovery loop (`bench_faust_recovery`, faust_fixes fix 12 left out).
Recovery is a restart's time less the baseline's of the same round, and its rate the changelog records
read per second of it."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from workers.bench_replay import generate
from workers.kafka.bench import bench_settings, process_cpu_seconds, produce_events, until_drained, worker_env
from workers.kafka.local_broker import LocalBroker
from workers.kafka.settings import Settings
from workers.kafka.supervisor import WorkerProcess
from workers.kafka.topics import changelog_topics, ensure_topics, high_watermarks

WORKER = ("-m", "workers.cli", "run")
WORKER_ON_FAUST_S_RECOVERY = ("-m", "workers.kafka.bench_faust_recovery")


@dataclass(frozen=True)
class Ready:
    seconds: float  # from process start to /readyz
    cpu: float | None  # the process's CPU seconds by then
    accounts: int  # rows in its accounts table


def _time_to_ready(settings: Settings, work: Path, name: str, command: tuple[str, ...]) -> Ready:
    began = time.perf_counter()
    worker = WorkerProcess({**worker_env(settings, work, 0), "CLIENTSHIFT_DATA_DIR": str(work / name)},
                           work / f"{name}.log", command=command).start()
    try:
        worker.wait_ready(900)
        seconds = time.perf_counter() - began
        cpu = process_cpu_seconds(worker.process.pid) if worker.process else None
        accounts = worker.get("/status")[1]["accounts"]
    finally:
        worker.stop()
    return Ready(seconds, cpu, accounts)


def changelog_records(settings: Settings) -> int:
    return sum(high_watermarks(settings, changelog_topics(settings)).values())


def _empty_changelogs(settings: Settings) -> None:
    """The changelog topics of a new group, created empty before its worker is timed, as the restarted
    worker's exist: the baseline is start-up alone, without Faust declaring two topics."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, settings.partitions, 1) for name in changelog_topics(settings)])
    finally:
        admin.close()


def run(events: int, accounts: int, console: Console, rounds: int = 3) -> None:
    stream = generate(events, accounts, seed=11)
    empty, restarted, faust_s = [], [], []
    with LocalBroker() as broker, tempfile.TemporaryDirectory(prefix="clientshift-bench-") as scratch:
        work = Path(scratch)
        settings = bench_settings(broker.bootstrap, "rec")
        ensure_topics(settings)
        with console.status(f"producing {events:,} events and draining them with one worker ..."):
            produce_events(settings, stream)
            worker = WorkerProcess(worker_env(settings, work, 0), work / "drain.log").start()
            try:
                until_drained(settings, settings.group_id, [worker], 900)
                held = worker.get("/status")[1]["accounts"]
            finally:
                worker.stop()
        records = changelog_records(settings)
        for n in range(rounds):
            with console.status(f"round {n + 1} of {rounds} ..."):
                fresh = replace(settings, group_id=f"{settings.group_id}-empty-{n}")
                _empty_changelogs(fresh)
                empty.append(_time_to_ready(fresh, work, f"empty-{n}", WORKER))
                restarted.append(_time_to_ready(settings, work, f"restart-{n}", WORKER))
                faust_s.append(_time_to_ready(settings, work, f"faust-{n}", WORKER_ON_FAUST_S_RECOVERY))
    for ready in restarted + faust_s:
        if ready.accounts != held:  # a restart that lost rows measured nothing worth printing
            raise RuntimeError(f"a restarted worker recovered {ready.accounts:,} accounts, not the {held:,} held "
                               "before the restart")
    _report(console, events, held, records, empty, restarted, faust_s)


def _report(console: Console, events: int, accounts: int, records: int, empty: list[Ready],
            restarted: list[Ready], faust_s: list[Ready]) -> None:
    def recovery(of: list[Ready]) -> list[float]:
        return [ready.seconds - baseline.seconds for ready, baseline in zip(of, empty)]

    table = Table(title=f"Recovery benchmark: a worker restarted on {accounts:,} accounts ({events:,} events, "
                        f"{records:,} changelog records), medians of {len(empty)} rounds")
    for column in ("what", "s to ready", "CPU s", "recovery s", "changelog records/s", "vs Faust's loop"):
        table.add_column(column, justify="right")
    faust_recovery = statistics.median(recovery(faust_s))
    table.add_row("start-up, empty tables (the baseline)", f"{statistics.median(r.seconds for r in empty):.1f}",
                  _cpu(empty), "-", "-", "-")
    for name, of in [("restart, the worker's recovery", restarted), ("restart, Faust's own recovery loop", faust_s)]:
        seconds = statistics.median(recovery(of))
        table.add_row(name, f"{statistics.median(r.seconds for r in of):.1f}", _cpu(of), f"{seconds:.1f}",
                      f"{records / seconds:,.0f}" if seconds > 0 else "-",
                      f"{faust_recovery / seconds:.2f}x" if seconds > 0 else "-")
    console.print(table)
    console.print("recovery s in each round (worker / Faust's loop): " + ", ".join(
        f"{mine:.1f} / {theirs:.1f}" for mine, theirs in zip(recovery(restarted), recovery(faust_s))))


def _cpu(of: list[Ready]) -> str:
    cpus = [ready.cpu for ready in of if ready.cpu is not None]
    return f"{statistics.median(cpus):.1f}" if cpus else "-"
