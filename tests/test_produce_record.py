"""`clientshift produce` and `clientshift record`, as commands against the real broker: a stream
published and captured back replays to the same statuses and actions (how recorded streams become test
fixtures)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from workers.kafka.local_broker import LocalBroker
from workers.replay import read_event_files, replay

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workers.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def outcome(path: Path) -> tuple[dict, list]:
    result = replay(list(read_event_files([path])))
    return {a: s.status for a, s in result.accounts.items()}, sorted(a.key for a in result.actions)


def test_a_produced_stream_recorded_back_replays_to_the_same_result(tmp_path):
    source = EXAMPLES / "late-and-interleaved.jsonl"
    count = sum(1 for _ in read_event_files([source]))
    topic = f"{uuid.uuid4().hex[:8]}.events"
    recorded = tmp_path / "recorded.jsonl"
    with LocalBroker() as broker:
        produced = cli("produce", source, "--broker", broker.bootstrap, "--topic", topic)
        assert produced.returncode == 0, produced.stderr
        assert f"produced {count} events to {topic}" in produced.stderr
        captured = cli("record", "--topic", topic, "--out", recorded, "--broker", broker.bootstrap)
        assert captured.returncode == 0, captured.stderr
        assert f"recorded {count} messages from {topic}" in captured.stderr
    # Kafka keeps each account's order (one partition per account), not the order across accounts.
    assert sorted(recorded.read_text().splitlines()) == sorted(source.read_text().splitlines())
    statuses, actions = outcome(recorded)
    assert (statuses, actions) == outcome(source) and actions
