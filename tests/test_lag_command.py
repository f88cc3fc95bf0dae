"""`clientshift lag`: a group's committed offset, end offset and lag per partition, read from the real broker
through kafka-python (what `kafka-consumer-groups --describe` shows, for the worker's topics)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from workers.kafka.local_broker import LocalBroker
from workers.kafka.settings import Settings
from workers.kafka.topics import ensure_topics, high_watermarks

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_lag_shows_each_partition_s_committed_offset_end_and_lag():
    tag = uuid.uuid4().hex[:8]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLIENTSHIFT_")},
           **{f"CLIENTSHIFT_TOPIC_{name.upper()}": f"{tag}.{name}" for name in
              ("events", "ticks", "actions", "audit", "dlq", "hubspot_raw", "salesforce_raw")}}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "workers.cli", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    with LocalBroker() as broker:
        settings = Settings.from_env({**env, "CLIENTSHIFT_BROKER": broker.bootstrap})
        ensure_topics(settings)
        produced = cli("produce", str(EXAMPLES / "events.jsonl"), "--broker", broker.bootstrap)
        assert produced.returncode == 0, produced.stderr
        ends = {tp.partition: end for tp, end in high_watermarks(settings, [settings.topics.events]).items()}
        busy = sorted(p for p, end in ends.items() if end > 1)
        assert len(busy) >= 2, ends  # the example spreads over the partitions
        done, part_way = busy[0], busy[1]
        committer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="g", enable_auto_commit=False)
        committer.commit({TopicPartition(settings.topics.events, done): OffsetAndMetadata(ends[done], "", -1),
                          TopicPartition(settings.topics.events, part_way): OffsetAndMetadata(1, "", -1)})
        committer.close()
        as_json = cli("lag", "--broker", broker.bootstrap, "--group", "g", "--format", "json")
        as_table = cli("lag", "--broker", broker.bootstrap, "--group", "g")
    assert as_json.returncode == 0, as_json.stderr
    rows = {(r["topic"], r["partition"]): r for r in json.loads(as_json.stdout)}
    assert set(rows) == {(topic, p) for topic in settings.topics.consumed() for p in range(4)}
    for p, end in ends.items():
        committed = {done: end, part_way: 1}.get(p)
        assert rows[(settings.topics.events, p)] == {"topic": settings.topics.events, "partition": p,
                                                     "committed": committed, "end": end,
                                                     "lag": end - (committed or 0)}
    for topic in settings.topics.consumed()[1:]:  # nothing produced there
        assert all(rows[(topic, p)]["end"] == rows[(topic, p)]["lag"] == 0 for p in range(4))
    total = sum(ends.values()) - ends[done] - 1
    assert as_table.returncode == 0, as_table.stderr
    assert "consumer group g" in as_table.stdout and f"total lag: {total}" in as_table.stdout


def test_a_kafka_command_that_cannot_reach_the_broker_says_so_in_one_line():
    """Not kafka-python's traceback. (Its bootstrap gives up after 30 s, so both commands run at once.)"""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLIENTSHIFT_")},
           "CLIENTSHIFT_BROKER": "127.0.0.1:1", "COLUMNS": "200"}
    commands = [["lag"], ["run"]]
    running = [subprocess.Popen([sys.executable, "-m", "workers.cli", *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for args in commands]
    for process in running:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, stderr
        assert "cannot reach Kafka (KafkaTimeoutError: Unable to bootstrap from ['127.0.0.1:1'])" in stderr
        assert "Traceback" not in stderr and "CLIENTSHIFT_BROKER" in stderr
