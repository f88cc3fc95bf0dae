"""`clientshift bench worker` end to end on a small stream: every contender drains the same topic on a
real local broker and the table reports each (figures are the benchmark's business, not this test's)."""

from __future__ import annotations

import os
import re
import time

from rich.console import Console

from workers.kafka import bench

ROWS = ("raw aiokafka consumer + json.loads", "minimal Faust agent (decode only)",
        "minimal Faust agent + workers.kafka.faust_fixes", "full worker: state, rules, actions (1 process)",
        "full worker (2 processes, 2 cores)", "minimal Faust agent + fixes (2 processes, 2 cores)",
        "the worker's code on a plain aiokafka loop (1 process)",
        "the worker's code on a plain aiokafka loop (2 processes)")


def test_the_worker_benchmark_drains_the_topic_with_every_contender_and_reports_each():
    console = Console(record=True, width=220)
    bench.run(2_000, 200, console, trickle=60, trickle_rate=30.0, rounds=3)
    text = console.export_text()
    for row in ROWS:
        line = next((line for line in text.splitlines() if row in line), None)
        assert line is not None, f"no row for {row!r} in:\n{text}"
        cells = re.search(r"│\s*([\d,]+)\s*│\s*([\d.]+)x\s*│\s*([\d.]+)x\s*│\s*(\d+)\s*│\s*(\d+)\s*│", line)
        assert cells is not None, line
        rate, vs_raw, vs_minimal, cpu_us, broker_us = cells.groups()
        assert int(rate.replace(",", "")) > 0 and float(vs_raw) > 0 and float(vs_minimal) > 0
        # /proc counts CPU in 10 ms ticks: on this small stream the raw loop's share can round to 0, the
        # worker's (about 0.2 s for 2,000 events) cannot.
        assert int(cpu_us) >= 0 and int(broker_us) >= 0
        if row.startswith(("full worker", "the worker's code")):
            assert int(cpu_us) > 0
    # Three pairs of minimal agent and worker; the table's ratio is the middle one of theirs.
    median = re.search(r"in each of 3 rounds \(the table above shows the median round, ([\d.]+)x\)", text)
    assert median is not None, text
    ratios = []
    for n in (1, 2, 3):
        row = re.search(rf"│\s*{n}\s*│\s*([\d,]+)\s*│\s*(\d+)\s*│\s*([\d,]+)\s*│\s*(\d+)\s*│\s*([\d.]+)x\s*│", text)
        assert row is not None, text
        minimal_rate, _, worker_rate, worker_cpu, ratio = row.groups()
        assert abs(float(ratio) - int(worker_rate.replace(",", "")) / int(minimal_rate.replace(",", ""))) < 0.01
        assert int(worker_cpu) > 0
        ratios.append(float(ratio))
    assert float(median.group(1)) == sorted(ratios)[1]
    full_row = next(line for line in text.splitlines() if ROWS[3] in line)
    assert f"│ {float(median.group(1)):.2f}x │" in re.sub(r"\s+│\s+", " │ ", full_row)
    cpu = re.search(r"full worker vs minimal Faust agent: (\d+) vs (\d+) µs, a ratio of ([\d.]+)x", text)
    assert cpu is not None, text
    assert abs(float(cpu.group(3)) - int(cpu.group(2)) / int(cpu.group(1))) < 0.05
    rates = {row: _rate(text, row) for row in ROWS}
    two = re.search(r"two processes: the workers did ([\d.]+)x of what two minimal agents on the fixes did "
                    r"\(([\d.]+)x the raw loop", text)
    assert two is not None, text
    assert abs(float(two.group(1)) - rates[ROWS[4]] / rates[ROWS[5]]) < 0.01
    assert abs(float(two.group(2)) - rates[ROWS[5]] / rates[ROWS[0]]) < 0.002
    plain = re.search(r"on a plain aiokafka loop, without Faust: the worker's code took (\d+) µs of CPU per event "
                      r"\(the worker (\d+)\), and in two processes did ([\d.]+)x the raw loop", text)
    assert plain is not None, text
    assert plain.group(1) == _cpu(text, ROWS[6]) and plain.group(2) == _cpu(text, ROWS[3])
    assert abs(float(plain.group(3)) - rates[ROWS[7]] / rates[ROWS[0]]) < 0.002
    actions = re.search(r"latency over ([\d,]+) actions: p50 ([\d.]+) s, p99 ([\d.]+) s", text)
    assert actions is not None, text
    assert int(actions.group(1).replace(",", "")) > 0
    assert float(actions.group(2)) <= float(actions.group(3))
    trickled = re.search(r"caught-up worker \(60 events at 30/s\), over ([\d,]+) actions: p50 (\d+) ms, p99 (\d+) ms",
                         text)
    assert trickled is not None, text
    assert int(trickled.group(1).replace(",", "")) > 0 and 0 < int(trickled.group(2)) <= int(trickled.group(3))


def _rate(text: str, row: str) -> int:
    return int(_cells(text, row)[0].replace(",", ""))


def _cpu(text: str, row: str) -> str:
    return _cells(text, row)[3]


def _cells(text: str, row: str) -> list[str]:
    line = next(line for line in text.splitlines() if row in line)
    return [cell.strip() for cell in line.split(row, 1)[1].split("│")[1:-1]]


def test_process_cpu_seconds_reads_this_process_as_the_os_counts_it():
    """The figure the CPU columns rest on: /proc's user + system time of a process, in seconds."""
    before = time.process_time()
    while time.process_time() - before < 0.3:  # spend some CPU, so a wrong field would not read as ~0 too
        pass
    measured = bench.process_cpu_seconds(os.getpid())
    assert measured is not None
    assert abs(measured - time.process_time()) < 0.05  # /proc counts in ticks of 10 ms


def test_the_recovery_benchmark_restarts_workers_that_read_every_account_back_and_reports_each():
    from workers.kafka import bench_recovery

    console = Console(record=True, width=220)
    bench_recovery.run(3_000, 300, console, rounds=1)  # raises if a restart recovered other than 300 accounts
    text = console.export_text()
    records = re.search(r"restarted on 300 accounts \(3,000 events, ([\d,]+) changelog records\)", text)
    assert records is not None, text
    assert int(records.group(1).replace(",", "")) >= 300  # at least one row per account
    for row in ("start-up, empty tables (the baseline)", "restart, the worker's recovery",
                "restart, Faust's own recovery loop"):
        line = next((line for line in text.splitlines() if row in line), None)
        assert line is not None, f"no row for {row!r} in:\n{text}"
        ready, cpu = re.search(r"│\s*([\d.]+)\s*│\s*([\d.]+)\s*│", line).groups()
        assert float(ready) > 0 and float(cpu) > 0
        if row.startswith("restart"):
            assert re.search(r"│\s*-?[\d.]+\s*│\s*([\d,]+|-)\s*│\s*([\d.]+x|-)\s*│\s*$", line), line
    assert re.search(r"recovery s in each round \(worker / Faust's loop\): -?[\d.]+ / -?[\d.]+$", text.strip()), text
