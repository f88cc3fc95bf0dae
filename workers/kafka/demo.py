"""`clientshift demo`: the whole product in one command, on the embedded broker and the sandbox CRM."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from connectors.sandbox import SandboxConnector
from workers.events import InvalidEvent, parse_event
from workers.kafka.local_broker import LocalBroker
from workers.kafka.settings import Settings
from workers.kafka.streams import produce
from workers.kafka.supervisor import WorkerProcess, wait_until_quiet
from workers.kafka.topics import ensure_topics
from workers.render import crm_tables
from workers.replay import read_event_files, replay
from workers.timeutil import format_rfc3339

FROZEN = "1970-01-01T00:00:00Z"


def last_event_time(path: Path) -> float | None:
    times = []
    for line in read_event_files([path]):
        try:
            times.append(parse_event(line.raw).time)
        except InvalidEvent:
            continue
    return max(times) if times else None


def run_demo(events: Path, console: Console) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clientshift-demo-") as scratch, LocalBroker() as broker:
        work = Path(scratch)
        settings = replace(Settings.from_env({}), broker=broker.bootstrap, group_id="clientshift-demo")
        ensure_topics(settings)
        clock = work / "clock"
        clock.write_text(FROZEN)
        db = work / "crm.db"
        worker = WorkerProcess({"CLIENTSHIFT_BROKER": broker.bootstrap, "CLIENTSHIFT_BROKER_KIND": "tansu",
                                "CLIENTSHIFT_GROUP_ID": settings.group_id,
                                "CLIENTSHIFT_SANDBOX_DB": str(db), "CLIENTSHIFT_CLOCK": f"file:{clock}",
                                "CLIENTSHIFT_DATA_DIR": str(work / "data"), "CLIENTSHIFT_LOG_LEVEL": "warning"},
                               work / "worker.log")
        try:
            with console.status(f"local broker on {broker.bootstrap}; starting a worker ..."):
                worker.start().wait_ready()
            lines = list(read_event_files([events]))
            with console.status(f"producing {len(lines)} events from {events} ..."):
                produce(settings, lines)
            with console.status("waiting until the worker has processed every event ..."):
                wait_until_quiet(settings, [worker])
            as_of = last_event_time(events)
            if as_of is not None:
                # The worker's wall clock was held back while the history streamed in, so deadlines fired in
                # event order; now let it reach the last event time, as `clientshift replay` does.
                clock.write_text(format_rfc3339(as_of))
                with console.status(f"moving the worker's clock to {format_rfc3339(as_of)}: due deadlines fire ..."):
                    wait_until_quiet(settings, [worker])
        finally:
            code = worker.stop()
        sandbox = SandboxConnector(db)
        snapshot = sandbox.snapshot()
        sandbox.close()
        crm_tables(snapshot, console)
        expected = replay(lines).to_json_dict()
        written = {t["account"]: t["value"] for t in snapshot["tags"]}
        agrees = written == {a["account"]: a["status"] for a in expected["accounts"]} and len(snapshot["tasks"]) == sum(
            1 for a in expected["actions"] if a["type"] == "task")
        console.print(f"{len(lines)} events -> {len(snapshot['accounts'])} accounts, {len(snapshot['tasks'])} tasks; "
                      f"same as `clientshift replay`: {'yes' if agrees else 'NO'}; worker exited {code}; "
                      f"{time.monotonic() - started:.1f} s")
        return 0 if agrees and code == 0 else 1
