"""Corrections to faust-streaming behaviour that Clientshift's delivery guarantee depends on, in one place.

1. Faust writes table changelogs through its ProducerBuffer and, before committing consumer offsets, calls
   `ProducerBuffer.flush()`. That flush gives up as soon as 0.1 s pass without a message leaving the
   buffer (`flush_atmost`), so under load the consumer can commit the offsets of events whose state
   updates are still queued; a kill -9 at that moment restores stale state and the next decisions are
   wrong. Seen here once in the crash test before this fix. The fix: flush until the buffer is really empty.
2. After table recovery, Faust resumes the stream partitions and only then seeks them to their committed
   offsets (`Recovery.on_recovery_completed`). Records fetched in between reach the agents and are
   acknowledged before the seek resets the consumer's bookkeeping; seen here as a few offsets per
   partition that never count as acknowledged again (commits stop for good: a restarted worker never
   catches up) or events that are not handled. The fix: seek first, then resume.
3. The worker holds its outputs back to write them in batches (workers.kafka.pending). Faust commits an
   event's offset once the agent has moved past it, after calling `producer.flush()`; registering the
   worker's own flush there keeps every commit behind the outputs of the events it covers.
4. Not a correctness fix but Faust's largest per-message cost: its consumer loop hands every message to
   the streams through `wait_first(callback(message), suspend_flow.wait())`, four asyncio tasks per
   message, although delivery only waits when a stream buffer is full or flow is suspended. Here a
   message is delivered inline when it needs no waiting, and through the same `wait_first` otherwise
   (`_deliver`): the minimal Faust agent's main thread went from ~84 to ~45 us of CPU per event
   (per-thread CPU from /proc, `clientshift bench worker`'s stream).
5. Faust's Monitor sensor times every message and event for statistics nothing here reads (the
   worker's metrics are its own, in Prometheus); `QuietMonitor` keeps the rest of it and skips those.
6. Faust's stream iterator (the compiled one, faust._cython.streams) awaits `sleep(0)` before every
   event: one full event-loop turn per event, about a sixth of the worker's main thread. It exists so
   other tasks run while a stream has a backlog; `_YieldEvery` keeps that, once every
   `STREAM_YIELD_EVERY` events (a stream with nothing queued still waits on its queue, as before).
   The worker's main-thread CPU per event: ~140 -> ~110 us.
7. Faust asks its consumer thread for records of "the active partitions" by handing over its live set,
   which recovery empties (it pauses the changelogs it has read) while the thread may still be waiting
   for records. To aiokafka an empty set means every partition: the thread then drained records of
   the paused event partitions, Faust dropped them as not active, and aiokafka's position had moved
   past them. `_getmany_of_a_snapshot` hands over a copy, taken when Faust decides to fetch.
8. A partition with no committed offset is left where it is by Faust's "seek to committed" (aiokafka
   only seeks to offsets above 0), so records dropped as in 7 are never read again: seen here as a
   worker restarted before its first commit that recovered its tables, said "Worker ready" and never
   handled an event (about 1 run in 10 of the SIGKILL test when fetches waited 100 ms instead of Faust's
   1.5 s). `_seek_to_committed_or_reset` puts such a stream partition where the consumer's
   `auto_offset_reset` starts a new group, as a fresh consumer would read it.
9. After a rebalance Faust's in-memory table store drops the rows of partitions the worker no longer
   owns, but it learns a row's partition only from changelog recovery, never from a local write. A
   worker kept the accounts and deadlines of every partition it ever wrote to: its memory grew toward
   every account, its /status counted them, and deadlines it could no longer fire stayed "due" there
   (seen when a second worker joined mid-stream). `partition_recorder` gives the worker the store's own
   key -> partition record to write into next to each row.
10. Faust builds its consumer with `fetch_max_wait_ms=1500`, hard-coded. aiokafka keeps one fetch in
   flight per broker, and leaves out of it the partitions that still hold fetched records, so a
   partition drained just after a fetch went out waits for that fetch: up to 1.5 s when the fetch
   covers only partitions with nothing new. A caught-up worker took 385 ms (p50) to 835 ms (p99) from
   produce to action at 5 events/s, 90 to 148 ms with 100 ms (under load the 1.5 s stalled two workers
   at ~1 KB, which 8 MiB fetches also cure). `CLIENTSHIFT_FETCH_MAX_WAIT_MS` sets it
   (`_consumer_with_fetch_wait`); an idle worker asks the broker more often, nothing more. It uncovered
   the restart bug fixes 7 and 8 correct.
11. Two settings lookups per message: Faust's conductor checks the producer buffer's size before every
   message (`ProducerBuffer.size` reads `app.conf.producer_threaded`) and builds every event through
   `app.conf.Event`. A setting read goes through `SettingsRegistry.__getattribute__` and a descriptor:
   with timeit, `size` took 1.80 us and `create_event` 1.54 us, and 0.23 and 0.45 us with the settings
   read once, about 2% of the worker's main thread together. Both settings are fixed once the app is
   configured, so `_buffer_size` and `_create_event` read them once per buffer and app.
12. Table recovery (a restart, or partitions moving to this worker) reads the changelogs record by
   record, and Faust's loop waited for every record with `wait_for(queue.get(), 5.0)`: a task, a timer
   and two to three event-loop turns per record, although records were queued. With `need_recovery`
   building a Counter of every partition's remainder per record, that was half of recovery's main
   thread (py-spy). `_slurp_changelogs` takes a queued record at once and waits only on an empty
   queue; `_need_recovery` answers without the Counter. With the tables' own decoding
   (`raw_schema.ChangelogRows`), a worker restarted on 10,000 accounts (144,000 changelog records)
   was ready 2.4 s after its start-up instead of 10.6 to 13.6 s, with a third of the CPU; Faust's loop
   alone took 8.8 to 10 s of that (`clientshift bench recovery`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from time import monotonic
from typing import Any, Awaitable, Callable, Generator
from weakref import WeakKeyDictionary

from faust.app.base import App
from faust.sensors import Monitor
from faust.tables.recovery import Recovery
from faust.tables.recovery import logger as _recovery_logger
from faust.utils.tracing import finish_span
from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Producer
from faust.transport.producer import ProducerBuffer

_applied = False
FETCH_MAX_WAIT_MS = 100
_fetch_max_wait_ms = FETCH_MAX_WAIT_MS
_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer
_before_flush: WeakKeyDictionary[Any, list[Callable[[], Awaitable[None]]]] = WeakKeyDictionary()
_producer_flush = Producer.flush
_thread_getmany = AIOKafkaConsumerThread.getmany
_on_recovery_completed = Recovery.on_recovery_completed
_faust_buffer_size = ProducerBuffer.size
_faust_need_recovery = Recovery.need_recovery


def _buffer_size(self: ProducerBuffer) -> int:
    """Faust's `ProducerBuffer.size` (messages waiting to be produced), with `producer_threaded` read
    once: fix 11."""
    threaded = self.__dict__.get("_threaded_setting")
    if threaded is None:
        threaded = self.__dict__["_threaded_setting"] = bool(self.app.conf.producer_threaded)  # type: ignore[union-attr]
    if threaded:
        return len(self.queue._queue) if self.queue else 0  # type: ignore[attr-defined]
    return len(self.pending._queue)  # type: ignore[attr-defined]


def _create_event(self: App, key: Any, value: Any, headers: Any, message: Any) -> Any:
    """Faust's `App.create_event`, with the app's `Event` class looked up once: fix 11."""
    event_class = self.__dict__.get("_event_class")
    if event_class is None:
        event_class = self.__dict__["_event_class"] = self.conf.Event
    return event_class(self, key, value, headers, message)  # type: ignore[operator]


async def _flush_until_empty(self: ProducerBuffer) -> None:
    while self.size:
        if self.state != "running":
            raise RuntimeError("Cannot flush: Producer not Running")
        await self.flush_atmost(None)


async def _flush_with_pending_outputs(self: Producer) -> None:
    for hook in _before_flush.get(self, ()):
        await hook()
    await _producer_flush(self)


class _Held:
    """Stream partitions Faust asked to resume while a seek is still to come."""

    def __init__(self) -> None:
        self.partitions: set[Any] = set()


_held: WeakKeyDictionary[Any, _Held] = WeakKeyDictionary()
_resume_partitions_now = Consumer.resume_partitions
_perform_seek_now = Consumer.perform_seek


def _resume_partitions(self: Consumer, tps: Any) -> None:
    held = _held.get(self)
    if held is None:
        _resume_partitions_now(self, tps)
    else:
        held.partitions.update(tps)


async def _perform_seek(self: Consumer) -> None:
    await _perform_seek_now(self)
    _release(self)


def _release(consumer: Consumer, only: _Held | None = None) -> None:
    held = _held.get(consumer)
    if held is None or (only is not None and held is not only):
        return
    del _held[consumer]
    if held.partitions:
        _resume_partitions_now(consumer, held.partitions)


async def _seek_then_resume(self: Recovery, generation_id: int = 0) -> None:
    consumer = self.app.consumer
    mine = _held.get(consumer) or _Held()
    _held[consumer] = mine
    try:
        await _on_recovery_completed(self, generation_id)
    finally:
        _release(consumer, only=mine)  # type: ignore[arg-type]  # no seek happened (empty assignment, a new rebalance): resume now


async def _getmany_of_a_snapshot(self: AIOKafkaConsumerThread, active_partitions: Any, timeout: float) -> Any:
    if active_partitions is None:  # a client-only app: every partition, as Faust means it
        return await _thread_getmany(self, None, timeout)
    snapshot = frozenset(active_partitions)
    if not snapshot:
        return {}
    return await _thread_getmany(self, snapshot, timeout)  # type: ignore[arg-type]


async def _seek_to_committed_or_reset(self: AIOKafkaConsumerThread) -> Any:
    consumer = self._ensure_consumer()
    is_changelog = self.consumer._is_changelog_tp
    return await self.call_thread(_committed_or_reset, consumer, is_changelog,
                                  self.app.conf.consumer_auto_offset_reset)


async def _committed_or_reset(consumer: Any, is_changelog: Callable[[Any], bool], reset: str | None) -> Any:
    """aiokafka's `seek_to_committed`, then the partitions it left alone (committed offset none or 0)
    put where `reset` starts a new group. Changelogs stay as they are: recovery seeks them itself."""
    committed = await consumer.seek_to_committed()
    for tp, offset in committed.items():
        if offset == 0 and not is_changelog(tp):
            consumer.seek(tp, 0)
    unset = [tp for tp, offset in committed.items() if offset is None and not is_changelog(tp)]
    if unset and reset == "earliest":
        await consumer.seek_to_beginning(*unset)
    elif unset and reset == "latest":
        await consumer.seek_to_end(*unset)
    return committed


class _Resumed:
    """The rest of a coroutine that was started by hand and is suspended on `pending`, as an awaitable:
    what `yield from` would do, for a coroutine whose first step already ran."""

    def __init__(self, coro: Any, pending: Any) -> None:
        self.coro, self.pending = coro, pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation goes on into the coroutine
                advance, argument = coro.throw, exc
            else:
                advance, argument = coro.send, sent
            try:
                pending = advance(argument)
            except StopIteration as done:
                return done.value


async def _deliver(consumer: Consumer, callback: Callable[[Any], Awaitable[None]], message: Any) -> None:
    if not consumer.suspend_flow.is_set():
        coro = callback(message)
        try:
            pending = coro.send(None)  # type: ignore[attr-defined]  # Faust's on_message: a coroutine
        except StopIteration:
            return  # delivered without waiting: the usual case, and no task was needed
        await consumer.wait_first(_Resumed(coro, pending), consumer.suspend_flow.wait())
    else:
        await consumer.wait_first(callback(message), consumer.suspend_flow.wait())


STREAM_YIELD_EVERY = 50  # events between event-loop turns: ~6 ms of the worker's work


class _Ready:
    """An awaitable that is done at once: `await` on it does not give the event loop a turn."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, Any, None]:
        return iter(())  # type: ignore[return-value]


class _YieldEvery:
    """`asyncio.sleep` for Faust's stream iterator: `sleep(0)` yields every `every`-th time only."""

    def __init__(self, every: int, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.every, self.sleep, self.calls = every, sleep, 0
        self.ready = _Ready()

    def __call__(self, delay: float) -> Awaitable[None]:
        self.calls += 1
        if delay or self.calls >= self.every:
            self.calls = 0
            return self.sleep(delay)
        return self.ready


def _yield_every_few_events() -> None:
    try:
        from faust._cython import streams as compiled_streams
    except ImportError:  # pragma: no cover - a Faust without its compiled iterator keeps its own
        return
    if getattr(compiled_streams, "sleep", None) is asyncio.sleep:
        # The compiled iterator looks `sleep` up in its module on every call.
        compiled_streams.sleep = _YieldEvery(STREAM_YIELD_EVERY)


async def _drain_messages(self: Consumer, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
    # faust.transport.consumer.Consumer._drain_messages, with one change: each message is delivered by
    # `_deliver` instead of `wait_first(callback(message), suspend_flow.wait())`, which made four tasks
    # per message. Delivery only waits when a buffer is full or flow is suspended; then it is the same.
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
    commit_every = self._commit_every
    acks_enabled_for = self.app.topics.acks_enabled_for
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            ait = getmany(timeout=1.0)
            await self.sleep(0)
            if not self.should_stop:
                async for tp, message in ait:
                    since_yield += 1
                    if since_yield > 100:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is None or offset >= r_offset:
                        gap = offset - (r_offset or 0)
                        if gap > 1 and r_offset and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        await _deliver(self, callback, message)
                        set_read_offset(tp, offset)
                unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
    finally:
        unset_flag(CONSUMER_FETCHING)


FASTER_RECOVERY_LOOP = True  # False only to measure Faust's own loop (workers.kafka.bench_faust_recovery)
RECOVERY_YIELD_EVERY = 1000  # changelog records between event-loop turns in recovery: ~20 ms of it


async def _slurp_changelogs(self: Recovery) -> None:  # pragma: no cover - Faust's loop
    # faust.tables.recovery.Recovery._slurp_changelogs, with two changes (fix 12): a changelog record
    # already queued is taken with `get_nowait`, and only an empty queue is waited on with
    # `wait_for(get(), 5.0)` (its timeout is what the loop needs, to look for the end of recovery
    # again); and the two debug lines per record are formatted only when debug logging is on.
    changelog_queue = self.tables.changelog_queue
    tp_to_table = self.tp_to_table

    active_tps = self.active_tps
    standby_tps = self.standby_tps
    active_offsets = self.active_offsets
    standby_offsets = self.standby_offsets
    active_events_received_at = self._active_events_received_at
    standby_events_received_at = self._standby_events_received_at

    buffers = self.buffers
    buffer_sizes = self.buffer_sizes
    processing_times = self._processing_times
    debugging = _recovery_logger.isEnabledFor(logging.DEBUG)

    async def _maybe_signal_recovery_end(timeout: bool = False, timeout_count: int = 0) -> None:
        if timeout and self.app.in_transaction and timeout_count > 1:
            await detect_aborted_tx()
        if self.in_recovery and not self.need_recovery():
            self.flush_buffers()
            self._set_recovery_ended()
            if self._actives_span is not None:
                self._actives_span.set_tag("Actives-Ready", True)
            _recovery_logger.debug("Setting recovery end")
            self.signal_recovery_end.set()

    async def detect_aborted_tx() -> None:
        highwaters = self.active_highwaters
        offsets = self.active_offsets
        for tp, highwater in highwaters.items():
            if highwater is not None and offsets[tp] is not None and offsets[tp] < highwater:
                if await self.app.consumer.position(tp) >= highwater:  # type: ignore[operator]
                    _recovery_logger.info(f"Aborted tx until highwater for {tp}")
                    offsets[tp] = highwater

    timeout_count = taken_without_waiting = 0
    while not self.should_stop:
        try:
            self.signal_recovery_end.clear()
            try:
                event = changelog_queue.get_nowait()
                taken_without_waiting += 1
                if taken_without_waiting >= RECOVERY_YIELD_EVERY:
                    taken_without_waiting = 0
                    await asyncio.sleep(0)  # let the rest of the worker run between long runs of records
            except asyncio.QueueEmpty:
                taken_without_waiting = 0
                try:
                    event = await asyncio.wait_for(changelog_queue.get(), timeout=5.0)
                except asyncio.TimeoutError:
                    timeout_count += 1
                    if self.should_stop:
                        return
                    await _maybe_signal_recovery_end(timeout=True, timeout_count=timeout_count)
                    continue
            now = monotonic()
            timeout_count = 0
            message = event.message
            tp = message.tp
            offset = message.offset
            if debugging:
                _recovery_logger.debug(f"Recovery message topic {tp} offset {offset}")
            bufsize = buffer_sizes.get(tp)
            is_active = False
            if tp in active_tps:
                is_active = True
                table = tp_to_table[tp]
                offsets = active_offsets
                if bufsize is None:
                    bufsize = buffer_sizes[tp] = table.recovery_buffer_size
                active_events_received_at[tp] = now
            elif tp in standby_tps:
                table = tp_to_table[tp]
                offsets = standby_offsets
                if bufsize is None:
                    bufsize = buffer_sizes[tp] = table.standby_buffer_size
                    standby_events_received_at[tp] = now
            else:
                _recovery_logger.warning(f"recovery unknown topic {tp} offset {offset}")

            seen_offset = offsets.get(tp, None)
            if debugging:
                _recovery_logger.debug(f"seen offset for {tp} is {seen_offset} message offset {offset}")
            if seen_offset is None or offset > seen_offset:
                offsets[tp] = offset
                buf = buffers[table]
                buf.append(event)
                await table.on_changelog_event(event)
                if len(buf) >= bufsize:  # type: ignore[operator]
                    table.apply_changelog_batch(buf)
                    buf.clear()
                    self._last_flush_at = now
                now_after = monotonic()

                if is_active:
                    last_processed_at = self._last_active_event_processed_at
                    if last_processed_at is not None:
                        processing_times.append(now_after - last_processed_at)
                        max_samples = self.num_samples_required_for_estimate
                        if len(processing_times) > max_samples:
                            processing_times.popleft()
                    self._last_active_event_processed_at = now_after

            await _maybe_signal_recovery_end()

            standby_ready = self._standbys_span is None and self.tables.standbys_ready
            if not standby_ready and not self.standby_remaining_total():
                _recovery_logger.debug("Completed standby partition fetch")
                if self._standbys_span:
                    finish_span(self._standbys_span)
                    self._standbys_span = None
                self.tables.on_standbys_ready()
        except Exception as ex:
            _recovery_logger.warning(f"Error in recovery {ex}")


def _need_recovery(self: Recovery) -> bool:
    """Faust's `Recovery.need_recovery` (is an active changelog behind its high watermark?) without
    building a Counter of every partition's remainder: it runs once per changelog record (fix 12)."""
    offsets = self.active_offsets
    for tp, highwater in self.active_highwaters.items():
        offset = offsets[tp]
        if highwater is not None and offset is not None and highwater - offset > 0:
            return True
    return False


class QuietMonitor(Monitor):
    """Faust's Monitor without its per-message and per-event bookkeeping (pass as `Monitor=`)."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass


def _source_holds(function: Any, *fragments: str) -> bool:
    # A Faust loop is replaced only while it is the one our copy was made from, and aiokafka's fetch wait
    # set only while aiokafka still reads it: a release that changes them keeps its own code (slower,
    # never wrong).
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return all(fragment in source for fragment in fragments)


def _is_the_loop_we_copied(loop: Any) -> bool:
    return _source_holds(loop, "self.wait_first(", "callback(message), self.suspend_flow.wait()")


def _is_the_recovery_loop_we_copied(loop: Any) -> bool:
    return _source_holds(loop, "await asyncio.wait_for(", "changelog_queue.get(), timeout=5.0")


def _consumer_with_fetch_wait(self: AIOKafkaConsumerThread, transport: Any) -> Any:
    consumer = _create_worker_consumer(self, transport)
    consumer._fetch_max_wait_ms = _fetch_max_wait_ms  # read when the consumer starts and builds its fetcher
    return consumer


def fetch_wait_is_settable() -> bool:
    """Whether aiokafka still builds its fetcher from the attribute fix 10 sets (else Faust's 1.5 s stays)."""
    from aiokafka import AIOKafkaConsumer

    return _source_holds(AIOKafkaConsumer.start, "fetch_max_wait_ms=self._fetch_max_wait_ms")


def partition_recorder(table: Any) -> Callable[[Any, int], None]:
    """Fix 9: `record(key, partition)`, for a row written straight into `table.data`; a no-op for a
    store that keeps partitions apart itself (only the memory store keeps this record)."""
    known = getattr(table.data, "_key_partition", None)
    return known.__setitem__ if known is not None else (lambda key, partition: None)


def flush_before_commit(app: Any, hook: Callable[[], Awaitable[None]]) -> None:
    """Run `hook` whenever Faust flushes the app's producer (before every offset commit, and at stop)."""
    hooks = _before_flush.setdefault(app.producer, [])
    if hook not in hooks:
        hooks.append(hook)


def apply(fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    global _applied, _fetch_max_wait_ms
    _fetch_max_wait_ms = fetch_max_wait_ms
    if not _applied:
        ProducerBuffer.flush = _flush_until_empty  # type: ignore[method-assign]
        ProducerBuffer.size = property(_buffer_size)  # type: ignore[assignment,method-assign]
        App.create_event = _create_event  # type: ignore[method-assign]
        Producer.flush = _flush_with_pending_outputs  # type: ignore[method-assign]
        Recovery.on_recovery_completed = _seek_then_resume  # type: ignore[method-assign]
        Consumer.resume_partitions = _resume_partitions  # type: ignore[method-assign]
        Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
        AIOKafkaConsumerThread.getmany = _getmany_of_a_snapshot  # type: ignore[method-assign]
        AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed_or_reset  # type: ignore[method-assign]
        if _is_the_loop_we_copied(Consumer._drain_messages):
            Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
        slurp = Recovery.__dict__.get("_slurp_changelogs")
        if FASTER_RECOVERY_LOOP and _is_the_recovery_loop_we_copied(getattr(slurp, "fun", None)):
            slurp.fun = _slurp_changelogs  # type: ignore[union-attr]
        Recovery.need_recovery = _need_recovery  # type: ignore[method-assign]
        _yield_every_few_events()
        if fetch_wait_is_settable():
            AIOKafkaConsumerThread._create_worker_consumer = _consumer_with_fetch_wait  # type: ignore[method-assign]
        _applied = True
