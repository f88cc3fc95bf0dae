"""The stream worker against a real Kafka-protocol broker process (Tansu), real worker processes and the
sandbox CRM. Each test uses its own topics and consumer group on one broker."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import json
import re
import signal
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaProducer

from connectors.sandbox import SandboxConnector
from factory import raw
from workers.bench_replay import generate
from workers.kafka.local_broker import LocalBroker
from workers.kafka.settings import Settings, Topics
from workers.kafka.streams import produce, record
from workers.kafka.supervisor import WorkerProcess, wait_until_quiet
from workers.kafka.topics import changelog_topics, ensure_topics, high_watermarks
from workers.replay import SourcedLine, read_event_files, replay
from workers.rules import load_policy
from workers.events import parse_event
from workers.timeutil import format_rfc3339, parse_rfc3339

ROOT = Path(__file__).resolve().parents[1]
FROZEN = "1970-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def broker():
    with LocalBroker() as running:
        yield running


class Harness:
    def __init__(self, broker: LocalBroker, work: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        topics = Topics(**{name: f"{tag}.{value}" for name, value in vars(Topics()).items()})
        self.settings = replace(Settings(), broker=broker.bootstrap, group_id=f"cs-{tag}", topics=topics)
        self.work = work
        self.db = work / "crm.db"
        self.clock = work / "clock"
        self.clock.write_text(FROZEN)
        self.workers: list[WorkerProcess] = []
        ensure_topics(self.settings)

    def env(self) -> dict[str, str]:
        env = {"CLIENTSHIFT_BROKER": self.settings.broker, "CLIENTSHIFT_BROKER_KIND": "tansu",
               "CLIENTSHIFT_GROUP_ID": self.settings.group_id, "CLIENTSHIFT_SANDBOX_DB": str(self.db),
               "CLIENTSHIFT_CLOCK": f"file:{self.clock}", "CLIENTSHIFT_LOG_LEVEL": "info",
               "CLIENTSHIFT_DEADLINE_INTERVAL": "0.2"}
        env.update({f"CLIENTSHIFT_TOPIC_{name.upper()}": value for name, value in vars(self.settings.topics).items()})
        return env

    def worker(self, **env: str) -> WorkerProcess:
        n = len(self.workers)
        worker = WorkerProcess({**self.env(), "CLIENTSHIFT_DATA_DIR": str(self.work / f"data-{n}"), **env},
                               self.work / f"worker-{n}.log").start()
        self.workers.append(worker)
        return worker

    def produce(self, lines: list[SourcedLine]) -> None:
        produce(self.settings, lines)

    def quiet(self, workers: list[WorkerProcess] | None = None) -> None:
        wait_until_quiet(self.settings, workers or [w for w in self.workers if w.process.poll() is None])

    def catch_up(self, lines: list[SourcedLine], workers: list[WorkerProcess] | None = None) -> None:
        """Process everything with the wall clock held back, then let it reach the last event time: the
        deadlines in between fire in event order, as `clientshift replay` fires them."""
        self.quiet(workers)
        self.clock.write_text(format_rfc3339(max(parse_event(line.raw).time for line in lines)))
        self.quiet(workers)

    def crm(self) -> dict:
        sandbox = SandboxConnector(self.db)
        try:
            snapshot = sandbox.snapshot()
            tag_keys = {row[0] for row in sandbox._db.execute("SELECT action_key FROM tag_writes")}
        finally:
            sandbox.close()
        return {"status": {t["account"]: t["value"] for t in snapshot["tags"]},
                "tasks": sorted(t["key"] for t in snapshot["tasks"]), "tag_keys": tag_keys}

    def dlq(self) -> list[dict]:
        return self.records(self.settings.topics.dlq)

    def records(self, topic: str) -> list:
        ends = {tp: end for tp, end in high_watermarks(self.settings, [topic]).items() if end}
        records = []
        if ends:
            path = self.work / f"{topic}.jsonl"
            record(self.settings, topic, path)
            records = [json.loads(line) for line in path.read_text().splitlines()]
        return records


@pytest.fixture
def harness(broker, tmp_path):
    h = Harness(broker, tmp_path)
    yield h
    for worker in h.workers:
        worker.stop(signal.SIGKILL)


def expected(lines, as_of: str | None = None) -> dict:
    return expected_with(lines, None, as_of)


def expected_with(lines, rules: Path | None, as_of: str | None = None) -> dict:
    result = replay(lines, load_policy(rules), as_of=parse_rfc3339(as_of) if as_of else None)
    return {"status": {a: s.status for a, s in result.accounts.items()},
            "tasks": sorted(a.key for a in result.actions if a.type == "task"),
            "tag_keys": {a.key for a in result.actions if a.type == "tag"}}


def generated(events: int, accounts: int, seed: int) -> list[SourcedLine]:
    return [SourcedLine(f"gen:{n}", json.dumps(e)) for n, e in enumerate(generate(events, accounts, seed))]


def test_end_to_end_the_worker_writes_what_replay_computes(harness):
    lines = list(read_event_files([ROOT / "examples" / "events.jsonl"])) + generated(400, 40, seed=1)
    final_rows = {account: len(state.to_json()) for account, state in replay(lines).accounts.items()}
    largest = max(final_rows, key=final_rows.__getitem__)
    # The row-size warning's mark just under the largest account's final row: that one must be warned about.
    worker = harness.worker(CLIENTSHIFT_STATE_ROW_WARN_BYTES=str(final_rows[largest] - 1))
    worker.wait_ready()
    harness.produce(lines)
    harness.catch_up(lines)
    assert harness.crm() == expected(lines)
    # The audit holds every decision replay makes, each once, batched however the worker batched them.
    audited = sorted((d["account"], d["trigger"], d["status"], d["rule"], tuple(d["flags"]))
                     for batch in harness.records(harness.settings.topics.audit) for d in batch)
    replayed = sorted((d.account, d.trigger, d.status, d.rule, d.flags) for d in replay(lines).decisions)
    assert audited == replayed and len(audited) > len(lines)
    status = worker.get("/status")[1]
    assert status["accounts"] == len(expected(lines)["status"])
    metrics = worker.get("/metrics")[1]
    assert f'clientshift_events_in_total{{topic="{harness.settings.topics.events}"}} {float(len(lines))}' in metrics
    assert 'clientshift_events_duplicate_total 1.0' in metrics  # the example stream repeats one event
    assert 'clientshift_actions_total{connector="sandbox",outcome="done"}' in metrics
    row_gauge = next(line for line in metrics.splitlines() if line.startswith("clientshift_state_row_bytes_max "))
    assert float(row_gauge.split()[1]) >= final_rows[largest]
    # Matched inside the line: the worker's stdout (Faust's banner) shares the log file with its JSON logs.
    warned = re.findall(r'"message": "account state row is large", "account": "([^"]+)"', worker.log_path.read_text())
    assert largest in warned and len(warned) == len(set(warned))
    lag_line = f'clientshift_consumer_lag{{partition="0",topic="{harness.settings.topics.events}"}} 0.0'
    deadline = time.monotonic() + 10
    while lag_line not in worker.get("/metrics")[1]:  # the lag gauge is refreshed every second
        assert time.monotonic() < deadline, "consumer lag gauge never reported the caught-up events topic"
    assert worker.stop(signal.SIGTERM) == 0  # graceful shutdown


def test_a_deadline_fires_with_no_further_events(harness):
    lines = [SourcedLine("x:1", json.dumps(raw("contract.signed", "solo", "2026-01-10T00:00:00Z", contract_id="c",
                                                start="2026-01-10", end="2027-03-01")))]
    worker = harness.worker()
    worker.wait_ready()
    harness.produce(lines)
    harness.quiet()
    assert harness.crm()["tasks"] == ["solo|welcome_client|event:test/" + json.loads(lines[0].raw)["id"]]
    harness.clock.write_text("2027-04-01T00:00:00Z")  # the wall clock passes the contract's deadlines
    harness.quiet()
    crm = harness.crm()
    assert crm == expected(lines, as_of="2027-04-01T00:00:00Z")
    assert crm["status"] == {"solo": "customer"}
    kinds = [key.split("|")[1] for key in crm["tasks"]]
    assert sorted(kinds) == ["at_risk_checkin", "retention_review", "welcome_client"]
    assert "solo|retention_review|deadline:2027-03-01T00:00:00Z" in crm["tasks"]


def started(harness: Harness, count: int) -> list[WorkerProcess]:
    workers = [harness.worker() for _ in range(count)]
    for worker in workers:
        worker.wait_ready()
    return workers


def accounts_of(worker: WorkerProcess) -> int:
    return worker.get("/status")[1]["accounts"]


def part_way(worker: WorkerProcess, accounts: int) -> None:
    """Wait until the worker holds some, but not yet all, accounts of the stream it is working through."""
    while accounts_of(worker) < accounts:
        worker._check_alive()


def metric(worker: WorkerProcess, sample: str) -> float:
    line = next(line for line in worker.get("/metrics")[1].splitlines() if line.startswith(f"{sample} "))
    return float(line.split()[1])


def deadlines_fired(worker: WorkerProcess) -> float:
    return metric(worker, "clientshift_deadlines_fired_total")


def test_deadlines_of_partitions_that_moved_fire_once_on_their_new_owner(harness):
    lines = generated(1500, 120, seed=7)
    [first] = started(harness, 1)
    harness.produce(lines)
    # Every event handled and committed. Deadlines up to each event fired as it was handled; the ones
    # after an account's last event wait for the wall clock, still in 1970.
    harness.quiet([first])
    assert first.get("/status")[1]["deadlines"] > 0
    [second] = started(harness, 1)  # half the partitions move, and their deadlines with them
    harness.catch_up(lines)  # now the wall clock passes them
    assert harness.crm() == expected(lines)  # each deadline's task exactly once
    assert deadlines_fired(second) > 0  # with no event left to handle: fired by its timer
    held = [accounts_of(worker) for worker in (first, second)]
    assert all(held) and sum(held) == len(expected(lines)["status"]), held


def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(harness):
    lines = generated(3000, 150, seed=2)
    [first] = started(harness, 1)
    harness.produce(lines)
    part_way(first, 30)
    first.kill()
    partial = harness.crm()
    assert len(partial["tasks"]) < len(expected(lines)["tasks"])
    [second] = started(harness, 1)
    harness.catch_up(lines, [second])
    crm = harness.crm()
    want = expected(lines)
    assert crm["tasks"] == want["tasks"]  # every task exactly once: nothing lost, nothing twice
    assert crm["status"] == want["status"]
    assert crm["tag_keys"] == want["tag_keys"]


def test_a_broker_that_stops_answering_for_longer_than_a_request_timeout_delays_the_worker_and_loses_nothing(
        harness, broker):
    lines = generated(3000, 150, seed=6)
    [worker] = started(harness, 1)
    harness.produce(lines)
    part_way(worker, 30)
    # The broker process frozen mid-stream (hung in a pause, on a stalled disk, behind a network
    # partition) for longer than Faust's 90 s request timeout: the worker's fetch and heartbeat fail,
    # its group session expires, and it must find the coordinator and its partitions again.
    os.kill(broker.process.pid, signal.SIGSTOP)
    try:
        time.sleep(100)  # the fault's duration, not a synchronisation
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    harness.catch_up(lines, [worker])
    assert worker.process.poll() is None  # it kept running
    assert "RequestTimedOutError" in worker.log_path.read_text()  # the fault did reach it
    assert harness.crm() == expected(lines)  # every task exactly once, every status, every tag


def test_two_workers_split_the_partitions_and_agree_with_one(harness):
    lines = generated(1500, 120, seed=3)
    # One on each event loop the worker offers (uvloop, its default, and asyncio's own): both must agree.
    workers = [harness.worker(), harness.worker(CLIENTSHIFT_EVENT_LOOP="asyncio")]
    for worker in workers:
        worker.wait_ready()
    assert [worker.get("/status")[1]["event_loop"] for worker in workers] == ["uvloop", "asyncio"]
    harness.produce(lines)
    harness.catch_up(lines)
    assert harness.crm() == expected(lines)
    held = [accounts_of(worker) for worker in workers]
    assert all(count > 0 for count in held), held  # both owned partitions
    assert sum(held) == len(expected(lines)["status"])  # and no account was owned twice


def test_a_worker_joining_mid_stream_takes_partitions_over_and_nothing_is_lost_or_repeated(harness):
    lines = generated(3000, 150, seed=4)
    [first] = started(harness, 1)
    harness.produce(lines)
    part_way(first, 30)
    waits_before = metric(first, "clientshift_rebalance_seconds_count")
    [second] = started(harness, 1)  # scaling out: the group rebalances while the first is part-way through
    harness.catch_up(lines)
    assert harness.crm() == expected(lines)  # every task exactly once, every status, every tag
    # Each worker's partitions waited at its start, and the first's again in the rebalance.
    assert waits_before == 1 and metric(first, "clientshift_rebalance_seconds_count") >= 2
    assert metric(second, "clientshift_rebalance_seconds_count") >= 1
    assert metric(first, "clientshift_rebalance_seconds_sum") > 0 and metric(second, "clientshift_rebalance_seconds_sum") > 0
    held = [accounts_of(worker) for worker in (first, second)]
    assert all(count > 0 for count in held), held  # partitions did move
    assert sum(held) == len(expected(lines)["status"])  # and each account has one owner


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_worker_leaving_mid_stream_hands_its_partitions_over_and_nothing_is_lost_or_repeated(harness, sig):
    lines = generated(3000, 150, seed=5)
    leaving, staying = started(harness, 2)
    harness.produce(lines)
    part_way(leaving, 15)
    # Scaling in or a rolling update (a graceful stop), or a crash (the survivor takes over once the
    # broker's session for the dead worker times out).
    assert leaving.stop(sig) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    harness.catch_up(lines, [staying])
    assert harness.crm() == expected(lines)
    # The survivor owns every partition now, with the state the other built recovered from changelogs.
    assert accounts_of(staying) == len(expected(lines)["status"])


def test_bad_input_goes_to_the_dlq_with_a_reason_and_the_rest_is_processed(harness):
    good = raw("order.placed", "good", "2026-01-01T00:00:00Z", order_id="1")
    bad = {
        b"{not json": "not valid JSON",
        json.dumps(raw("order.placed", "b1", "2026-01-01T00:00:00Z")).encode(): '"order_id" is a required property',
        json.dumps(raw("order.teleported", "b2", "2026-01-01T00:00:00Z")).encode(): "unknown event type",
        json.dumps(raw("property.changed", "b3", "2026-01-01T00:00:00Z", name="n", value="x" * 70_000)).encode():
            "over the 65536-byte limit",
        # Valid by the schema; it used to stop the worker when a decision at year 10000 was printed.
        json.dumps(raw("meeting.held", "b5", "9999-12-31T23:59:59Z")).encode(): "outside the engine's calendar",
    }
    # Under Kafka's 1 MB record limit, but a letter with it in base64 would be over it: sending that
    # letter used to stop the worker, and a restart met the same message again.
    huge = json.dumps(raw("property.changed", "b4", "2026-01-01T00:00:00Z", name="n", value="x" * 900_000)).encode()
    producer = KafkaProducer(bootstrap_servers=harness.settings.bootstrap_servers, max_request_size=2_000_000)
    topic = harness.settings.topics.events
    for value in bad:
        producer.send(topic, key=b"b", value=value)
    producer.send(topic, key=b"b4", value=huge)
    producer.send(topic, key=b"good", value=json.dumps(good).encode())
    binary_headers = [("ce_specversion", b"1.0"), ("ce_id", b"bin-1"), ("ce_source", b"billing"),
                      ("ce_type", b"crm.csm.assigned"), ("ce_subject", b"binary"),
                      ("ce_time", b"2026-01-02T00:00:00Z"), ("content-type", b"application/json")]
    producer.send(topic, key=b"binary", value=b'{"owner_id": "9"}', headers=binary_headers)
    bad_binary = [h if h[0] != "ce_time" else ("ce_time", b"yesterday") for h in binary_headers]
    producer.send(topic, key=b"binary", value=b'{"owner_id": "9"}', headers=bad_binary)
    # The other topics the worker reads: a webhook event its normalizer cannot take (it used to fail the
    # whole batch, again on every restart) next to one it can, and a record that is not an action.
    odd_webhook = b'{"subscriptionType": "company.creation", "objectId": 7, "occurredAt": "soon"}'
    producer.send(harness.settings.topics.hubspot_raw, value=odd_webhook)
    producer.send(harness.settings.topics.hubspot_raw,
                  value=b'{"subscriptionType": "company.creation", "objectId": 8, "occurredAt": 1767225600000}')
    producer.send(harness.settings.topics.actions, key=b"x", value=b'{"type": "email", "account": "x"}')
    producer.send(harness.settings.topics.ticks, key=b"x", value=b'{"account": "x", "until": NaN}')
    producer.flush()
    producer.close()
    # Kafka allows a header without a value (kafka-python cannot send one, aiokafka can); it used to stop
    # the worker. One on an event with a good envelope, one in place of a binary-mode attribute.
    null_headers = [(k, None if k == "ce_subject" else v) for k, v in binary_headers]
    asyncio.run(_send_with_headers(harness.settings.bootstrap_servers, topic, [
        (b"nulls", json.dumps(raw("csm.assigned", "nulls", "2026-01-02T00:00:00Z", owner_id="3")).encode(),
         [("traceparent", None)]),
        (b"nulls", b'{"owner_id": "9"}', null_headers)]))
    worker = harness.worker()
    worker.wait_ready()
    harness.quiet()
    assert harness.crm()["status"] == {"good": "customer", "binary": "client", "8": "prospect", "nulls": "client"}
    dead = harness.dlq()
    assert len(dead) == len(bad) + 6
    [null_subject] = [d for d in dead if d.get("original_key_base64") == base64.b64encode(b"nulls").decode()]
    assert null_subject["headers"]["ce_subject"] == "" and "subject" in null_subject["reason"]
    [webhook] = [d for d in dead if d["kind"] == "hubspot_webhook"]
    assert base64.b64decode(webhook["original_base64"]) == odd_webhook
    assert "occurredAt must be epoch milliseconds, got 'soon'" in webhook["reason"]
    [action] = [d for d in dead if d["kind"] == "action"]
    assert action["reason"] == "not an action: type must be 'tag' or 'task', got 'email'"
    [tick] = [d for d in dead if d["kind"] == "tick"]
    assert tick["reason"] == "not a tick: account must be text and until a finite time, got 'x' and nan"
    [cut] = [d for d in dead if "original_bytes" in d]
    assert cut["original_bytes"] == len(huge) and "900" in cut["reason"] and "65536-byte limit" in cut["reason"]
    assert huge.startswith(base64.b64decode(cut["original_base64"])) and cut["offset"] >= 0
    by_original = {base64.b64decode(d["original_base64"]): d for d in dead}
    for value, reason in bad.items():
        assert reason in by_original[value]["reason"], by_original[value]["reason"]
        assert by_original[value]["kind"] == "event"
    assert "time" in by_original[b'{"owner_id": "9"}']["reason"]
    assert "clientshift_dlq_total{kind=\"event\"} 8.0" in worker.get("/metrics")[1]
    logged = [json.loads(line[line.index("{"):]) for line in worker.log_path.read_text().splitlines()
              if '"sent to the DLQ"' in line]  # (a line can follow a terminal escape of Faust's)
    assert sorted(Counter(line["kind"] for line in logged).items()) == sorted(
        Counter(d["kind"] for d in dead).items())  # one warning per letter, with its kind
    assert all(line["reason"] for line in logged)
    assert "x" * 1000 not in worker.log_path.read_text()  # the reason and where from, never the body


def test_an_account_whose_stored_state_cannot_be_read_has_its_events_dead_lettered_and_the_rest_goes_on(harness):
    # Only the worker writes its changelogs, and Kafka checks each record's CRC; a row that is not a state
    # means something else wrote there. It used to crash the agent on every event of that account.
    producer = KafkaProducer(bootstrap_servers=harness.settings.bootstrap_servers)
    [accounts_changelog, _] = changelog_topics(harness.settings)
    for partition in range(harness.settings.partitions):  # wherever "broken" is recovered from
        producer.send(accounts_changelog, key=b'"broken"', value=b"not a state", partition=partition)
    broken = json.dumps(raw("csm.assigned", "broken", "2026-01-02T00:00:00Z", owner_id="3")).encode()
    producer.send(harness.settings.topics.events, key=b"broken", value=broken)
    producer.send(harness.settings.topics.ticks, key=b"broken", value=b'{"account": "broken", "until": 0}')
    good = raw("order.placed", "good", "2026-01-01T00:00:00Z", order_id="1")
    producer.send(harness.settings.topics.events, key=b"good", value=json.dumps(good).encode())
    producer.flush()
    producer.close()
    worker = harness.worker()
    worker.wait_ready()
    harness.quiet()
    assert worker.process.poll() is None
    assert harness.crm()["status"] == {"good": "customer"}
    letters = {letter["kind"]: letter for letter in harness.dlq()}
    assert sorted(letters) == ["event", "tick"]
    for letter in letters.values():
        assert f"the state of account 'broken' in {accounts_changelog} cannot be read" in letter["reason"]
        assert letter["account"] == "broken"
    assert base64.b64decode(letters["event"]["original_base64"]) == broken  # kept, to redrive once mended
    assert "Crashed" not in worker.log_path.read_text()


def test_deadline_rows_that_are_not_deadlines_are_left_out_and_the_account_s_next_event_sets_its_deadline(harness):
    # As for account rows: a deadlines-changelog row that is not a deadline means another writer. Such a
    # row crashed the deadline timer, and so the worker, on every start.
    producer = KafkaProducer(bootstrap_servers=harness.settings.bootstrap_servers)
    [_, deadlines_changelog] = changelog_topics(harness.settings)
    for partition in range(harness.settings.partitions):  # wherever these keys are recovered from
        for key, value in [(b'"solo"', b'{"partition": 0}'), (b'"ghost"', b'{"due": "tomorrow", "partition": 0}'),
                           (b"5", b'{"due": 0, "partition": 0}')]:
            producer.send(deadlines_changelog, key=key, value=value, partition=partition)
    producer.flush()
    producer.close()
    lines = [SourcedLine("x:1", json.dumps(raw("contract.signed", "solo", "2026-01-10T00:00:00Z", contract_id="c",
                                                start="2026-01-10", end="2027-03-01")))]
    worker = harness.worker()
    worker.wait_ready()
    harness.produce(lines)
    harness.catch_up(lines)
    harness.clock.write_text("2027-04-01T00:00:00Z")  # past the contract's end: solo's deadline fires
    harness.quiet()
    assert worker.process.poll() is None
    assert harness.crm() == expected(lines, as_of="2027-04-01T00:00:00Z")
    assert "solo|retention_review|deadline:2027-03-01T00:00:00Z" in harness.crm()["tasks"]
    log = worker.log_path.read_text()
    assert "Crashed" not in log
    left_out = [json.loads(line) for line in log.splitlines()
                if line.startswith("{") and "is left out until the account's next event" in line]
    assert {entry["account"] for entry in left_out} >= {"'ghost'", "5"}
    assert all(entry["topic"] == deadlines_changelog for entry in left_out)


async def _send_with_headers(bootstrap: str, topic: str, records: list) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, key=key, value=value, headers=headers)
    finally:
        await producer.stop()


def test_an_event_older_than_the_history_horizon_is_dead_lettered_and_applied_once_redriven(harness):
    """Refused with the horizon at 30 days; re-driven while the cause stands, dead-lettered again, naming
    the first letter; re-driven after the horizon is raised, applied once although sent twice."""
    default = (ROOT / "workers" / "rules" / "default.yaml").read_text()
    rules = harness.work / "rules.yaml"
    rules.write_text(default.replace("  history_days: null\n", "  history_days: 30\n"))
    first = raw("order.placed", "late", "2026-03-01T00:00:00Z", order_id="1")
    lines = [SourcedLine(f"x:{n}", json.dumps(event)) for n, event in enumerate([
        first,
        raw("csm.assigned", "late", "2026-01-15T00:00:00Z", owner_id="7", id_="late-csm"),  # 45 days before
        first,  # a redelivery: inside the horizon, so still known
        raw("order.placed", "late", "2026-02-10T00:00:00Z", order_id="2"),  # late, but inside it: applied
        raw("order.placed", "late", "2026-03-05T00:00:00Z", order_id="3", id_="third-order"),
    ])]
    worker = harness.worker(CLIENTSHIFT_RULES=str(rules))
    worker.wait_ready()
    harness.produce(lines)
    harness.quiet()
    [dead] = harness.dlq()
    assert base64.b64decode(dead["original_base64"]) == lines[1].raw.encode()
    assert base64.b64decode(dead["original_key_base64"]) == b"late"
    assert "more than history_days (30) before the account's clock 2026-03-01T00:00:00Z" in dead["reason"]
    metrics = worker.get("/metrics")[1]
    assert "clientshift_events_too_late_total 1.0" in metrics
    assert "clientshift_events_duplicate_total 1.0" in metrics
    crm = harness.crm()
    assert crm["status"] == {"late": "customer"}  # the CSM was not applied
    assert crm["tasks"] == ["late|offer_csm_plan|event:test/third-order"]
    assert crm == expected_with(lines, rules)

    def redrive() -> None:
        done = subprocess.run([sys.executable, "-m", "workers.cli", "dlq", "redrive", "--reason", "history_days"],
                              env={**os.environ, **harness.env()}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        harness.quiet()

    redrive()  # the horizon is still 30 days: refused again
    # The DLQ is read partition by partition, so the two letters can come in either order.
    again, first_letter = sorted(harness.dlq(), key=lambda letter: "clientshift-redriven-from" not in letter["headers"])
    assert again["original_base64"] == first_letter["original_base64"]
    assert "history_days (30) before the account's clock 2026-03-05T00:00:00Z" in again["reason"]
    assert again["headers"]["clientshift-redriven-from"].startswith(f"{harness.settings.topics.dlq}:")

    worker.stop()
    rules.write_text(default.replace("  history_days: null\n", "  history_days: 60\n"))
    fixed = harness.worker(CLIENTSHIFT_RULES=str(rules))
    fixed.wait_ready()
    redrive()  # both letters: the same event twice
    assert "clientshift_events_duplicate_total 1.0" in fixed.get("/metrics")[1]
    crm = harness.crm()
    assert crm["status"] == {"late": "client"}
    assert crm["tasks"] == ["late|offer_csm_plan|event:test/third-order", "late|welcome_client|event:test/late-csm"]
    assert len(harness.dlq()) == 2
    assert crm == expected_with([lines[n] for n in (0, 2, 3, 4, 1, 1)],
                                harness.work / "rules.yaml")  # what replay gives for what the worker saw


def same_partition_accounts(count: int, partitions: int) -> list[str]:
    """Account ids whose events all land in one partition (kafka-python's default partitioner)."""
    from kafka.partitioner.default import murmur2

    by_partition: dict[int, list[str]] = {}
    for n in range(1000):
        account = f"long-{n}"
        found = by_partition.setdefault((murmur2(account.encode()) & 0x7FFFFFFF) % partitions, [])
        found.append(account)
        if len(found) == count:
            return found
    raise AssertionError("no partition got enough accounts")


def test_an_event_whose_state_row_or_action_would_pass_the_record_limit_is_dead_lettered_and_redriven(harness):
    """Kafka refuses a record over its limit, and a state row or an action past it would fail the write-out
    on every restart. With the smallest limit (128 KiB; rows and actions get 112 KiB), an account's
    properties of ~30 KB each fill its row, and an account named with 50,000 characters gets a welcome
    task (the name in its title, its body and its account name) over it: the events that would write
    those are refused, the accounts keep their state, and the rest goes on; after the limit is raised, a
    redrive applies them. The same limit splits the audit records of decisions with the longest ids the
    contract allows."""
    limit = 131_072
    big = [raw("property.changed", "big", f"2026-01-0{n}T00:00:00Z", name=f"notes{n}", value="x" * 30_000,
               id_=f"big-notes{n}") for n in (1, 2, 3, 4)]
    big.append(raw("csm.assigned", "big", "2026-01-05T00:00:00Z", owner_id="7", owner_name="y" * 30_000,
                   id_="big-csm"))
    big.append(raw("meeting.held", "big", "2026-01-06T00:00:00Z", id_="big-meeting"))
    big.append(raw("account.created", "named", "2026-01-01T00:00:00Z", name="n" * 50_000))
    big.append(raw("csm.assigned", "named", "2026-01-02T00:00:00Z", owner_id="8", id_="named-csm"))
    # 1 KB of trigger per decision, 300 decisions in one partition: more than one record can hold.
    long_ids = [raw("order.placed", account, f"2026-02-01T00:{n // 60:02d}:{n % 60:02d}Z", source="s" * 512,
                    id_=f"{n:03d}" + "i" * 253, order_id=str(n))
                for account in same_partition_accounts(3, harness.settings.partitions) for n in range(100)]
    lines = [SourcedLine(f"x:{n}", json.dumps(event)) for n, event in enumerate(big + long_ids)]
    refused = [lines[3], lines[4], lines[7]]
    worker = harness.worker(CLIENTSHIFT_MAX_RECORD_BYTES=str(limit))
    worker.wait_ready()
    harness.produce(lines)
    harness.quiet()
    assert worker.process.poll() is None
    letters = harness.dlq()
    assert sorted(base64.b64decode(d["original_base64"]) for d in letters) == sorted(l.raw.encode() for l in refused)
    reasons = {letter["event_id"]: letter["reason"] for letter in letters}
    assert all(letter["kind"] == "event" for letter in letters)
    for event_id in ("big-notes4", "big-csm"):
        assert reasons[event_id].startswith("the state of account 'big' would be a"), reasons[event_id]
    assert reasons["named-csm"].startswith("action 'named|welcome_client|event:test/named-csm' would be a")
    assert all("over the 114688 bytes a record can hold" in reason for reason in reasons.values())
    metrics = worker.get("/metrics")[1]
    assert 'clientshift_over_record_limit_total{kind="event"} 3.0' in metrics
    row_gauge = next(line for line in metrics.splitlines() if line.startswith("clientshift_state_row_bytes_max "))
    assert 90_000 < float(row_gauge.split()[1]) <= limit - 16 * 1024  # three notes kept, no more
    kept = [line for line in lines if line not in refused]
    crm = harness.crm()
    assert crm["status"]["big"] == crm["status"]["named"] == "prospect"  # neither CSM was applied
    assert crm == expected(kept)
    audit = harness.records(harness.settings.topics.audit)
    assert all(len(json.dumps(record, separators=(",", ":"))) <= limit - 16 * 1024 for record in audit)
    audited = sorted((d["account"], d["trigger"]) for record in audit for d in record)
    assert audited == sorted((d.account, d.trigger) for d in replay(kept).decisions)

    worker.stop()
    raised = harness.worker()  # Kafka's default limit
    raised.wait_ready()
    done = subprocess.run([sys.executable, "-m", "workers.cli", "dlq", "redrive", "--reason",
                           "CLIENTSHIFT_MAX_RECORD_BYTES"], env={**os.environ, **harness.env()},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    harness.quiet()
    crm = harness.crm()
    assert crm["status"]["big"] == crm["status"]["named"] == "client"
    assert {"big|welcome_client|event:test/big-csm", "named|welcome_client|event:test/named-csm"} <= set(crm["tasks"])
    assert crm == expected(kept + refused)  # what replay gives for what the worker saw, in that order
    assert "clientshift_over_record_limit_total" not in re.sub(r"# (HELP|TYPE) .*", "", raised.get("/metrics")[1])


def replicas(settings: Settings, topic: str) -> set[int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        [described] = admin.describe_topics([topic])
    finally:
        admin.close()
    return {len(partition["replica_nodes"]) for partition in described["partitions"]}


def test_topics_and_faust_s_changelogs_get_the_replication_factor(harness):
    """Kafka's and Faust's defaults would create every topic with one replica: state lost with a broker."""
    worker = harness.worker(CLIENTSHIFT_REPLICATION_FACTOR="2")
    worker.wait_ready()
    assert replicas(harness.settings, f"{harness.settings.group_id}-accounts-changelog") == {2}
    assert replicas(harness.settings, f"{harness.settings.group_id}-deadlines-changelog") == {2}
    for wanted, expected in ((None, 1), (3, 3)):  # none set: as many as the (one) broker, up to 3
        tag = uuid.uuid4().hex[:8]
        fresh = replace(harness.settings, replication_factor=wanted,
                        topics=Topics(**{name: f"{tag}.{name}" for name in vars(Topics())}))
        assert ensure_topics(fresh) == expected
        assert {name: replicas(fresh, name) for name in fresh.topics.all()} == {
            name: {expected} for name in fresh.topics.all()}


def test_the_replication_factor_defaults_to_up_to_three_within_the_cluster_s_brokers():
    from workers.kafka.topics import replication_for

    assert [replication_for(Settings(), brokers) for brokers in (1, 2, 3, 5)] == [1, 2, 3, 3]
    assert replication_for(Settings(replication_factor=2), 5) == 2
    assert Settings.from_env({}).replication_factor is None
    assert Settings.from_env({"CLIENTSHIFT_REPLICATION_FACTOR": ""}).replication_factor is None
    assert Settings.from_env({"CLIENTSHIFT_REPLICATION_FACTOR": "3"}).replication_factor == 3


def test_a_worker_whose_partition_count_does_not_match_the_topics_stops_at_start_and_says_why(harness):
    """Before, it started, and failed once an event came from a partition its tables did not have."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    tag = uuid.uuid4().hex[:8]
    admin = KafkaAdminClient(bootstrap_servers=harness.settings.bootstrap_servers)
    admin.create_topics([NewTopic(f"{tag}.events", 6, 1)])
    admin.close()
    env = {**os.environ, **harness.env(), "CLIENTSHIFT_TOPIC_EVENTS": f"{tag}.events",
           "CLIENTSHIFT_DATA_DIR": str(harness.work / "data-mismatch")}
    run = subprocess.run([sys.executable, "-m", "workers.cli", "run"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    assert f"CLIENTSHIFT_PARTITIONS is 4, but {tag}.events has 6 partitions" in run.stderr
