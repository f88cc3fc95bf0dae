"""The corrections to Faust's ordering that the worker's delivery guarantee relies on (workers.kafka.faust_fixes).

The crash test exercises them against the real broker; these pin the orderings themselves, which a
crash test can only catch when its timing happens to hit the race."""

from __future__ import annotations

import asyncio
import functools
import uuid
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from mode import Service
from mode.utils.locks import Event

from workers.kafka import faust_fixes
from workers.kafka.local_broker import LocalBroker


class Consumer:
    """Stands in for Faust's consumer: its methods go through the patched ones, which call the
    recorders below instead of Kafka."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def resume_partitions(self, tps) -> None:
        faust_fixes._resume_partitions(self, tps)

    async def perform_seek(self) -> None:
        await faust_fixes._perform_seek(self)


@pytest.fixture(autouse=True)
def recorded(monkeypatch):
    def resume_now(consumer, tps) -> None:
        consumer.calls.append(f"resume {sorted(tps)}")

    async def seek_now(consumer) -> None:
        await asyncio.sleep(0)  # a real seek yields to the loop: that is when records used to slip in
        consumer.calls.append("seek")

    monkeypatch.setattr(faust_fixes, "_resume_partitions_now", resume_now)
    monkeypatch.setattr(faust_fixes, "_perform_seek_now", seek_now)


def recovery_with(consumer: Consumer) -> SimpleNamespace:
    return SimpleNamespace(app=SimpleNamespace(consumer=consumer))


def faust_order(resume: set[str]):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        # What Faust's Recovery.on_recovery_completed does: resume, then seek.
        self.app.consumer.resume_partitions(resume)
        await self.app.consumer.perform_seek()
        self.app.consumer.calls.append("ready")
    return on_recovery_completed


def test_stream_partitions_are_resumed_only_after_the_seek(monkeypatch):
    monkeypatch.setattr(faust_fixes, "_on_recovery_completed", faust_order({"events-0", "events-1"}))
    consumer = Consumer()
    asyncio.run(faust_fixes._seek_then_resume(recovery_with(consumer)))
    assert consumer.calls == ["seek", "resume ['events-0', 'events-1']", "ready"]
    consumer.resume_partitions({"events-3"})  # outside recovery, straight through
    assert consumer.calls[-1] == "resume ['events-3']"


def test_partitions_held_back_are_resumed_when_recovery_returns_without_a_seek(monkeypatch):
    async def rebalancing_again(self, generation_id: int = 0) -> None:
        self.app.consumer.resume_partitions({"events-2"})  # then a new generation makes Faust return early

    monkeypatch.setattr(faust_fixes, "_on_recovery_completed", rebalancing_again)
    consumer = Consumer()
    asyncio.run(faust_fixes._seek_then_resume(recovery_with(consumer)))
    assert consumer.calls == ["resume ['events-2']"]


def test_two_overlapping_recoveries_resume_everything_once_each_seek_is_done(monkeypatch):
    monkeypatch.setattr(faust_fixes, "_on_recovery_completed", faust_order({"events-0"}))
    consumer = Consumer()

    async def both() -> None:
        recovery = recovery_with(consumer)
        await asyncio.gather(faust_fixes._seek_then_resume(recovery), faust_fixes._seek_then_resume(recovery))

    asyncio.run(both())
    assert consumer.calls[0] == "seek" and "resume ['events-0']" in consumer.calls
    assert consumer.calls.index("resume ['events-0']") > 0 and consumer.calls.count("ready") == 2


def test_the_worker_writes_out_before_faust_flushes_for_a_commit(monkeypatch):
    order: list[str] = []

    async def faust_flush(self) -> None:
        order.append("faust flush")

    async def write_out() -> None:
        order.append("write-out")

    monkeypatch.setattr(faust_fixes, "_producer_flush", faust_flush)
    class Producer:  # weak-referenceable, as Faust's is
        pass

    producer = Producer()
    app = SimpleNamespace(producer=producer)
    faust_fixes.flush_before_commit(app, write_out)
    faust_fixes.flush_before_commit(app, write_out)  # registering twice (an agent restart) runs it once
    asyncio.run(faust_fixes._flush_with_pending_outputs(producer))
    assert order == ["write-out", "faust flush"]


class Delivering(Service):
    """A mode service with the two things `_deliver` uses of Faust's consumer: `suspend_flow` (set while
    a rebalance stops the flow) and `wait_first`, mode's own."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = Event()
        self.tasks_made = 0

    async def wait_first(self, *coros, timeout=None):
        self.tasks_made += len(coros) + 2  # mode makes a task per argument, plus stopped and crashed
        return await super().wait_first(*coros, timeout=timeout)


def test_a_message_that_needs_no_waiting_is_delivered_without_any_task():
    delivered: list[str] = []

    async def on_message(message: str) -> None:
        delivered.append(message)

    async def run() -> Delivering:
        consumer = Delivering()
        for message in ("a", "b", "c"):
            await faust_fixes._deliver(consumer, on_message, message)
        return consumer

    consumer = asyncio.run(run())
    assert delivered == ["a", "b", "c"] and consumer.tasks_made == 0


def test_a_message_that_must_wait_for_room_is_delivered_once_there_is_room():
    steps: list[str] = []

    async def run() -> Delivering:
        consumer = Delivering()
        room = asyncio.get_running_loop().create_future()

        async def on_message(message: str) -> str:
            steps.append(f"{message}: buffer full")
            got = await room  # e.g. a full stream buffer
            steps.append(f"{message}: {got}")
            await asyncio.sleep(0)  # and a bare yield, as mode's queues do
            steps.append(f"{message}: delivered")
            return message

        asyncio.get_running_loop().call_later(0.01, room.set_result, "room")
        await faust_fixes._deliver(consumer, on_message, "a")
        return consumer

    consumer = asyncio.run(run())
    assert steps == ["a: buffer full", "a: room", "a: delivered"] and consumer.tasks_made == 4


def test_a_waiting_delivery_is_abandoned_when_the_flow_is_suspended_as_faust_would():
    outcome: list[str] = []

    async def run() -> None:
        consumer = Delivering()
        never = asyncio.get_running_loop().create_future()

        async def on_message(message: str) -> None:
            try:
                await never
            except asyncio.CancelledError:
                outcome.append("cancelled inside the callback")
                raise

        asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)  # a rebalance starts
        await faust_fixes._deliver(consumer, on_message, "a")
        outcome.append("drain loop goes on")
        await asyncio.sleep(0)  # mode cancels the loser without waiting for it, as it always has

    asyncio.run(run())
    assert outcome == ["drain loop goes on", "cancelled inside the callback"]


def test_an_error_in_delivery_reaches_the_drain_loop_whether_or_not_it_waited():
    async def fails_at_once(message: str) -> None:
        raise ValueError("at once")

    async def fails_later(message: str) -> None:
        await asyncio.sleep(0)
        raise ValueError("later")

    async def run(callback) -> None:
        await faust_fixes._deliver(Delivering(), callback, "a")

    for callback, text in ((fails_at_once, "at once"), (fails_later, "later")):
        with pytest.raises(ValueError, match=text):
            asyncio.run(run(callback))


def test_the_quiet_monitor_skips_per_message_bookkeeping_and_the_worker_runs_faust_so():
    import faust

    app = faust.App("quiet-monitor-test", broker="kafka://127.0.0.1:1", Monitor=faust_fixes.QuietMonitor)
    monitor = app.monitor
    assert isinstance(monitor, faust_fixes.QuietMonitor)
    message = SimpleNamespace(time_in=None)
    monitor.on_message_in("tp", 1, message)
    assert monitor.on_stream_event_in("tp", 1, object(), object()) is None
    monitor.on_stream_event_out("tp", 1, object(), object(), None)
    monitor.on_message_out("tp", 1, message)
    assert (monitor.messages_received_total, monitor.events_total, message.time_in) == (0, 0, None)
    from workers.kafka.app import create_app
    from workers.kafka.clock import make_clock
    from workers.kafka.settings import Settings
    from workers.rules.policy import load_policy

    settings = Settings(broker="127.0.0.1:1", stream_buffer=12_345)
    worker = create_app(settings, load_policy(None), make_clock(settings.clock), lambda echo_store: None)
    assert isinstance(worker.monitor, faust_fixes.QuietMonitor)
    assert worker.conf.stream_buffer_maxsize == 12_345


def test_faust_s_consumer_loop_is_replaced_only_while_it_is_the_one_copied():
    from faust.transport.consumer import Consumer

    faust_fixes.apply()
    assert Consumer._drain_messages is faust_fixes._drain_messages  # the installed Faust's loop matched

    async def some_other_loop(self, fetcher):
        await self.wait_first(self.something_else())

    assert not faust_fixes._is_the_loop_we_copied(some_other_loop)


def test_a_stream_gives_the_event_loop_a_turn_every_few_events_not_before_each():
    faust_fixes.apply()
    import faust._cython.streams as compiled

    assert isinstance(compiled.sleep, faust_fixes._YieldEvery)  # what Faust's compiled iterator awaits
    every = 5

    async def turns_over(events: int) -> list[int]:
        sleep = faust_fixes._YieldEvery(every)
        turned: list[int] = []
        for event in range(1, events + 1):
            ran = asyncio.Event()
            asyncio.get_running_loop().call_soon(ran.set)  # runs only if the loop gets a turn
            await sleep(0)
            if ran.is_set():
                turned.append(event)
            await asyncio.sleep(0)  # settle the callback before the next event (it is not under test)
        return turned

    assert asyncio.run(turns_over(12)) == [5, 10]


def test_a_real_delay_is_always_slept():
    async def run() -> list[float]:
        slept: list[float] = []

        async def sleep(delay: float) -> None:
            slept.append(delay)

        yielding = faust_fixes._YieldEvery(100, sleep)
        await yielding(0.25)
        await yielding(0)
        await yielding(0.5)
        return slept

    assert asyncio.run(run()) == [0.25, 0.5]


# Fixes 7 and 8 against the real broker: aiokafka's own consumer and fetcher, and Faust's own fetch call
# (`AIOKafkaConsumerThread._fetch_records`), with Faust's thread hop left out.

@pytest.fixture(scope="module")
def bootstrap():
    with LocalBroker() as broker:
        yield broker.bootstrap


def consumer_thread(consumer, *, reset: str = "earliest", changelogs: tuple[str, ...] = ()) -> SimpleNamespace:
    """What the patched methods use of Faust's consumer thread, around a real aiokafka consumer."""
    thread = SimpleNamespace(
        _ensure_consumer=lambda: consumer,
        consumer=SimpleNamespace(flow_active=True, _is_changelog_tp=lambda tp: tp.topic in changelogs),
        app=SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset=reset)),
        call_thread=lambda method, *args, **kwargs: method(*args, **kwargs))
    thread._fetch_records = functools.partial(AIOKafkaConsumerThread._fetch_records, thread)
    return thread


async def until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def topic_partitions(count: int) -> list[TopicPartition]:
    tag = uuid.uuid4().hex[:8]
    return [TopicPartition(f"{tag}.t{n}", 0) for n in range(count)]


async def started(bootstrap: str, **config):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **config)
    await producer.start()
    await consumer.start()
    return producer, consumer


def test_a_fetch_returns_only_partitions_active_when_faust_asked_though_recovery_empties_its_set(bootstrap):
    faust_fixes.apply()
    paused, read = topic_partitions(2)  # an event partition paused for recovery, a changelog it reads

    async def run() -> dict:
        producer, consumer = await started(bootstrap)
        try:
            consumer.assign([paused, read])
            await producer.send_and_wait(paused.topic, b"an event", partition=0)
            await until(lambda: paused in consumer._fetcher._records)  # fetched, held back while paused
            active = {read}  # Faust's live set of active partitions
            fetching = asyncio.ensure_future(AIOKafkaConsumerThread.getmany(consumer_thread(consumer), active, 10.0))
            await until(lambda: bool(consumer._fetcher._fetch_waiters))  # waiting for the changelog's records
            active.clear()  # recovery pauses the changelog it has read
            await producer.send_and_wait(read.topic, b"a changelog row", partition=0)
            fetched = await fetching
            assert await consumer.position(paused) == 0  # the event is still to be read
            return {tp: [record.value for record in records] for tp, records in fetched.items()}
        finally:
            await consumer.stop()
            await producer.stop()

    # An empty set is "every partition" to aiokafka: Faust's live set handed the event over, and Faust,
    # finding its partition not active, dropped it.
    assert asyncio.run(run()) == {read: [b"a changelog row"]}


@pytest.mark.parametrize("reset, start", [("earliest", 0), ("latest", 3)])
def test_a_stream_partition_with_no_committed_offset_is_sought_where_a_new_group_starts(bootstrap, reset, start):
    faust_fixes.apply()
    uncommitted, committed, at_zero, changelog = topic_partitions(4)

    async def run() -> tuple[dict, dict]:
        producer, consumer = await started(bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}")
        try:
            tps = [uncommitted, committed, at_zero, changelog]
            for tp in tps:
                for n in range(3):
                    await producer.send_and_wait(tp.topic, b"%d" % n, partition=0)
            consumer.assign(tps)
            read: set[tuple[TopicPartition, int]] = set()
            while len(read) < 12:  # everything read (and dropped, say), nothing committed but two
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    read.update((tp, r.offset) for r in records)
            await consumer.commit({committed: 2, at_zero: 0})
            thread = consumer_thread(consumer, reset=reset, changelogs=(changelog.topic,))
            offsets = await AIOKafkaConsumerThread.seek_to_committed(thread)
            return offsets, {tp: await consumer.position(tp) for tp in tps}
        finally:
            await consumer.stop()
            await producer.stop()

    offsets, positions = asyncio.run(run())
    assert offsets == {uncommitted: None, committed: 2, at_zero: 0, changelog: None}  # what Faust is told
    # The changelog is left for recovery, which seeks it itself.
    assert positions == {uncommitted: start, committed: 2, at_zero: 0, changelog: 3}


def _recovering(records_per_partition: int, partitions: int = 2):
    """A real Faust Recovery with one table of `partitions` active changelog partitions, each with a high
    watermark at `records_per_partition` records, and a way to queue decoded changelog records as
    Faust's conductor would."""
    import faust
    import orjson
    from faust.tables.recovery import Recovery
    from faust.types import TP
    from faust.types.tuples import Message

    from workers.kafka.raw_schema import ChangelogRows

    faust_fixes.apply()
    app = faust.App(f"recovery-{uuid.uuid4().hex}", broker="kafka://127.0.0.1:1", store="memory://",
                    stream_buffer_maxsize=2 * records_per_partition * partitions)
    table = app.Table("rows", partitions=partitions, value_type=bytes, schema=ChangelogRows(rows_as_bytes=True))
    recovery = Recovery(app, tables=app.tables)
    topic = table.changelog_topic.get_topic_name()
    tps = [TP(topic, partition) for partition in range(partitions)]
    for tp in tps:
        recovery.active_tps.add(tp)
        recovery.tp_to_table[tp] = table
        recovery.active_offsets[tp] = -1
        recovery.active_highwaters[tp] = records_per_partition - 1
    recovery._set_recovery_started()

    async def queue(partition: int, offset: int) -> None:
        key = orjson.dumps(f"account-{offset % 50}-{partition}")
        message = Message(topic, partition, offset, 0.0, 0, [], key, b'{"offset": %d}' % offset, None)
        app.tables.changelog_queue.put_nowait(await table.changelog_topic.decode(message))

    return recovery, table, queue


def _run_recovery_loop(recovery):
    from faust.tables.recovery import Recovery

    return asyncio.ensure_future(Recovery.__dict__["_slurp_changelogs"].fun(recovery))


def test_recovery_applies_queued_changelog_records_without_a_task_per_record(caplog):
    records = 1500

    async def scenario() -> int:
        recovery, table, queue = _recovering(records)
        for offset in range(records):
            for partition in (0, 1):
                await queue(partition, offset)
        created = 0
        loop = asyncio.get_running_loop()

        def counting(loop, coro, **kwargs):
            nonlocal created
            created += 1
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(counting)
        slurping = _run_recovery_loop(recovery)
        try:
            await asyncio.wait_for(recovery.signal_recovery_end.wait(), 30)
        finally:
            loop.set_task_factory(None)
            slurping.cancel()
        # Every record applied: each account holds its last row, as the bytes written.
        assert len(table.data) == 100
        assert table.data["account-7-1"] == b'{"offset": %d}' % (records - 50 + 7)
        assert not recovery.in_recovery
        return created

    created = asyncio.run(scenario())
    assert not [record for record in caplog.records if "Error in recovery" in record.getMessage()]
    # Faust's own loop made a task for every record (3,004 here); waiting only on an empty queue, a few.
    assert created < 10


def test_recovery_ends_with_the_last_record_below_the_high_watermark_not_before(caplog):
    async def scenario() -> None:
        recovery, table, queue = _recovering(1200)
        others_ran = 0

        async def the_rest_of_the_worker() -> None:
            nonlocal others_ran
            while True:
                others_ran += 1
                await asyncio.sleep(0)

        rest = asyncio.ensure_future(the_rest_of_the_worker())
        for offset in range(1200):
            await queue(0, offset)
        for offset in range(1199):
            await queue(1, offset)
        slurping = _run_recovery_loop(recovery)
        try:
            while not recovery.tables.changelog_queue.empty():
                await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert recovery.in_recovery and not recovery.signal_recovery_end.is_set()
            assert recovery.need_recovery()
            # A long run of queued records still gives the rest of the worker turns.
            assert others_ran >= 2399 // faust_fixes.RECOVERY_YIELD_EVERY
            await queue(1, 1199)
            await asyncio.wait_for(recovery.signal_recovery_end.wait(), 30)
            assert not recovery.in_recovery and not recovery.need_recovery()
            assert table.data["account-49-1"] == b'{"offset": 1199}'
        finally:
            slurping.cancel()
            rest.cancel()

    asyncio.run(scenario())
    assert not [record for record in caplog.records if "Error in recovery" in record.getMessage()]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.integers(0, 5), st.tuples(st.none() | st.integers(-1, 9), st.none() | st.integers(-1, 9)),
                       max_size=6))
def test_need_recovery_answers_as_faust_s_own(partitions):
    from collections import Counter

    from faust.tables.recovery import Recovery

    recovery = SimpleNamespace(active_highwaters=Counter(), active_offsets=Counter())
    for partition, (highwater, offset) in partitions.items():
        recovery.active_highwaters[partition] = highwater
        if offset is not None or partition % 2:  # an offset of None, or none at all (a Counter gives 0)
            recovery.active_offsets[partition] = offset
    recovery.active_remaining = functools.partial(Recovery.active_remaining, recovery)
    assert faust_fixes._need_recovery(recovery) is faust_fixes._faust_need_recovery(recovery)


def test_faust_s_recovery_loop_is_replaced_only_while_it_is_the_one_copied():
    from faust.tables.recovery import Recovery

    faust_fixes.apply()
    assert Recovery.__dict__["_slurp_changelogs"].fun is faust_fixes._slurp_changelogs
    assert Recovery.need_recovery is faust_fixes._need_recovery

    async def some_other_loop(self):
        await self.tables.changelog_queue.get()

    assert not faust_fixes._is_the_recovery_loop_we_copied(some_other_loop)


def test_the_recovery_benchmark_s_comparison_worker_keeps_faust_s_own_recovery_loop():
    import subprocess
    import sys

    probe = ("import workers.kafka.bench_faust_recovery\n"
             "from workers.kafka import faust_fixes\n"
             "faust_fixes.apply()\n"
             "from faust.tables.recovery import Recovery\n"
             "print(Recovery.__dict__['_slurp_changelogs'].fun.__module__)\n")
    loop = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loop == "faust.tables.recovery"
