"""`clientshift bench worker` end to end on a small stream: every contender drains the same topic on a
real local broker and the table reports each (figures are the benchmark's business, not this test's)."""

from __future__ import annotations

import re

from rich.console import Console

from workers.kafka import bench

ROWS = ("raw aiokafka consumer + json.loads", "minimal Faust agent (decode only)",
        "minimal Faust agent + workers.kafka.faust_fixes", "full worker: state, rules, actions (1 process)",
        "full worker (2 processes, 2 cores)")


def test_the_worker_benchmark_drains_the_topic_with_every_contender_and_reports_each():
    console = Console(record=True, width=220)
    bench.run(2_000, 200, console)
    text = console.export_text()
    for row in ROWS:
        line = next((line for line in text.splitlines() if row in line), None)
        assert line is not None, f"no row for {row!r} in:\n{text}"
        rate, vs_raw, vs_minimal = re.search(r"│\s*([\d,]+)\s*│\s*([\d.]+)x\s*│\s*([\d.]+)x\s*│", line).groups()
        assert int(rate.replace(",", "")) > 0 and float(vs_raw) > 0 and float(vs_minimal) > 0
    actions = re.search(r"latency over ([\d,]+) actions: p50 ([\d.]+) s, p99 ([\d.]+) s", text)
    assert actions is not None, text
    assert int(actions.group(1).replace(",", "")) > 0
    assert float(actions.group(2)) <= float(actions.group(3))
