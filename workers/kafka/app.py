"""The Faust app: thin agents around the pure core.

    events + ticks --process--> accounts table, deadlines table, actions, audit, dlq
    actions --sink--> connector (batched, one retry policy) --> dlq for permanent failures
    timer --> ticks (deadlines that are due by the wall clock, for accounts with no new events)

`process` calls exactly what `clientshift replay` calls (workers.engine.Engine), so both give the same
statuses and actions for the same history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import faust
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.base import Connector, Outcome
from connectors.hubspot.echo import InMemoryLastWritten, drop_echoes
from connectors.hubspot.normalize import Associations, EventMapping, normalize, webhook_problem
from workers import metrics
from workers.actions import Action
from workers.engine import Engine, Step
from workers.events import InvalidEvent
from workers.kafka import faust_fixes
from workers.kafka.pending import Pending, WriteOutClock
from workers.kafka.raw_schema import ChangelogRows, RawBytes
from workers.kafka import tansu as tansu_workarounds
from workers.kafka.clock import Clock
from workers.kafka.codec import dead_letter, decode_message
from workers.kafka.due import DueIndex, is_deadline
from workers.kafka.outbox import Outbox, json_arrays
from workers.kafka.record_sizes import RecordSizes
from workers.kafka.settings import Settings
from workers.kafka.sink import deliver
from workers.kafka.topics import ACCOUNTS_TABLE, DEADLINES_TABLE
from workers.rules.policy import Policy
from workers.state import AccountState
from workers.timeutil import format_rfc3339

log = logging.getLogger("clientshift.worker")


@dataclass
class Runtime:
    """What the agents share besides Faust's own objects."""

    settings: Settings
    policy: Policy
    clock: Clock
    connector_factory: Callable[[], Connector | None]
    engine: Engine = field(init=False)
    pending: Pending = field(default_factory=Pending)
    flushing: asyncio.Lock = field(default_factory=asyncio.Lock)
    ticked: dict[str, float] = field(default_factory=dict)
    due: DueIndex = field(default_factory=DueIndex)
    record_sizes: RecordSizes = field(init=False)
    connector: Connector | None = None
    # Since when its partitions have waited (a start or a rebalance); None once it is ready.
    waiting_since: float | None = field(default_factory=time.monotonic)
    # Shared by the sink's HubSpot connector (which records what it wrote) and the webhook normalizer
    # (which drops those writes when they come back as webhooks).
    echo_store: InMemoryLastWritten = field(default_factory=InMemoryLastWritten)
    associations: Associations = field(default_factory=Associations)

    def __post_init__(self) -> None:
        self.engine = Engine(self.policy)
        self.record_sizes = RecordSizes(self.settings.state_row_warn_bytes, self.settings.max_record_bytes)

    @property
    def ready(self) -> bool:
        """Partitions assigned and tables recovered."""
        return self.waiting_since is None


def _credentials(settings: Settings) -> Any:
    protocol = settings.security_protocol
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password(),
                                     mechanism=settings.sasl_mechanism or "PLAIN",
                                     ssl_context=settings.ssl_context())
    if protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return None


def kafka_producer(app: faust.App) -> Any:
    """The aiokafka producer under Faust's: one connection, and Faust's flush on commit and stop covers
    what the worker sends through it too."""
    return app.producer._ensure_producer()


_LOGGED_CONTEXT = ("topic", "partition", "offset", "account", "event_id", "key", "connector")


class UnreadableState(ValueError):
    """An account's row restored from the changelog that is not a state this version can read."""


def read_tick(value: bytes | None) -> tuple[str, float]:
    """(account, until) from a tick the deadline timer wrote; ValueError for anything else."""
    try:
        tick = json.loads(value or b"")
        account, until = tick["account"], float(tick["until"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(repr(exc)) from None
    if not isinstance(account, str) or not math.isfinite(until):
        raise ValueError(f"account must be text and until a finite time, got {account!r} and {until!r}")
    return account, until


def create_app(settings: Settings, policy: Policy, clock: Clock,
               connector_factory: Callable[[InMemoryLastWritten], Connector | None], *, tansu: bool = False,
               hubspot_mapping: EventMapping | None = None, hubspot_app_id: str | None = None) -> faust.App:
    faust_fixes.apply(settings.fetch_max_wait_ms)
    if tansu:
        tansu_workarounds.exact_recovery_ends(settings)
    rt = Runtime(settings, policy, clock, lambda: connector_factory(rt.echo_store))
    topics = settings.topics
    app = faust.App(
        settings.group_id,
        broker=settings.faust_broker_url(),
        broker_credentials=_credentials(settings),
        store="memory://",
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        # Faust creates the tables' changelog topics itself; with its default of 1 replica, a broker
        # lost would take the state with it.
        topic_replication_factor=settings.replication_factor or 1,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        topic_allow_declare=True,
        # Room for a batch's records per partition in one record batch (workers.kafka.outbox); well
        # under a broker's default 1 MiB message limit.
        producer_max_batch_size=256 * 1024,
        # Checked by the producer for what Faust sends (dead letters, re-keyed events); the state rows and
        # actions, sent as record batches, are checked by the worker itself (workers.kafka.record_sizes).
        producer_max_request_size=settings.max_record_bytes,
        Monitor=faust_fixes.QuietMonitor,
        # Faust stops fetching a partition whose stream buffer is full and fetches again at half, each
        # time a broker round trip with the stream idle; at Faust's 4,096 the worker did ~5.7k events/s,
        # at 32,768 ~6.4k (alternating runs of `clientshift bench worker`) for ~5% more memory.
        stream_buffer_maxsize=settings.stream_buffer,
        # aiokafka has one fetch in flight per broker, and while a partition still holds fetched
        # records it is left out; a fetch for only the idle topics (ticks, raw webhooks) then waits up
        # to Faust's hard-coded 1.5 s while the event partitions, drained, wait behind it. With 1 MiB
        # per partition, ~1 KB events drained that fast: two workers idled 25% to 45% of the time in
        # 0.25 to 0.75 s stalls; at 8 MiB a fetch lasts the wait out (two workers at ~1 KB: 6,640 and
        # 9,200 -> 12,733 and 13,118 events/s, for ~26 MB more peak memory in one worker of four
        # partitions). The wait is also shorter now (faust_fixes, fix 10), for latency when events are few.
        consumer_max_fetch_size=settings.fetch_bytes,
        **tansu_workarounds.faust_settings(tansu),
    )
    app.clientshift = rt  # type: ignore[attr-defined]

    raw = RawBytes()
    inputs = app.topic(topics.events, topics.ticks, schema=raw)
    events_topic = app.topic(topics.events, schema=raw)
    ticks_topic = app.topic(topics.ticks, schema=raw)
    actions_topic = app.topic(topics.actions, schema=raw)
    dlq_topic = app.topic(topics.dlq, schema=raw)
    hubspot_topic = app.topic(topics.hubspot_raw, schema=raw)
    # Recovery keeps an account's row as the changelog's bytes, decoded when the account is next handled:
    # most records it reads are replaced by a later one of the same account.
    accounts = app.Table(ACCOUNTS_TABLE, partitions=settings.partitions, value_type=bytes,
                         schema=ChangelogRows(rows_as_bytes=True))
    deadlines = app.Table(DEADLINES_TABLE, partitions=settings.partitions, schema=ChangelogRows())
    # So the store drops these rows when their partition moves to another worker (faust_fixes, fix 9).
    account_partition = faust_fixes.partition_recorder(accounts)
    deadline_partition = faust_fixes.partition_recorder(deadlines)
    accounts_changelog = accounts.changelog_topic.get_topic_name()
    deadlines_changelog = deadlines.changelog_topic.get_topic_name()

    def load(account: str) -> AccountState:
        # Rows this worker wrote hold the state itself; rows restored from the changelog hold its JSON.
        stored = accounts.data.get(account)
        if isinstance(stored, AccountState):
            return stored
        if not stored:
            return rt.engine.new_state(account)
        try:
            return AccountState.from_dict(orjson.loads(stored))
        except (ValueError, TypeError, AttributeError) as exc:
            raise UnreadableState(f"the state of account {account!r} in {accounts_changelog} cannot be read "
                                  f"({exc!r:.200}); its events wait in the DLQ until the row is mended") from None

    def keep(step: Step, partition: int, row: bytes | None = None, bound: int | None = None) -> None:
        state = step.state
        accounts.data[state.account] = state
        account_partition(state.account, partition)
        due = None if state.next_deadline is None else {"due": state.next_deadline, "partition": partition}
        if deadlines.data.get(state.account) != due:
            if due is None:
                deadlines.data.pop(state.account, None)
            else:
                deadlines.data[state.account] = due
                deadline_partition(state.account, partition)
                rt.due.add(state.account, due["due"])
            rt.pending.deadlines[state.account] = (due, partition)
        rt.pending.add(step, partition, row, bound)

    async def flush() -> None:
        """Write what the events handled so far decided. Faust commits their offsets only after this
        (faust_fixes.flush_before_commit), and actions are acknowledged by Kafka before the state that
        says their events were seen: a crash can repeat actions (the CRM dedupes them by key) but never
        lose one, nor a state change."""
        async with rt.flushing:
            pending, rt.pending = rt.pending, Pending()
            if not pending:
                return
            try:
                await write_out(pending)
            except BaseException:
                # Nothing is lost: the next write-out (at the latest, the one before a commit) sends it
                # again, and until one succeeds no offset covering these events is committed.
                rt.pending = pending.then(rt.pending)
                raise
        report(pending)

    async def write_out(pending: Pending) -> None:
        outbox = Outbox(kafka_producer(app))
        for action in pending.actions:
            outbox.add(topics.actions, pending.partition_of(action.account), action.account.encode(),
                       orjson.dumps(action.to_dict()))
        audit: dict[int, list[bytes]] = {}
        for decision in pending.decisions:
            audit.setdefault(pending.partition_of(decision.account), []).append(orjson.dumps(decision.to_dict()))
        for partition, decisions in audit.items():
            # An audit record per write-out and partition lists every decision with its rule; a large
            # batch (or long event ids) is split, with the same room a state row leaves.
            for record in json_arrays(decisions, rt.record_sizes.limit):
                outbox.add(topics.audit, partition, None, record)
        await outbox.flush()  # the actions are in Kafka before any state that says their events were seen
        largest, warn_at = 0, rt.record_sizes.warn_at
        for account, kept in pending.states.items():
            row = kept.encoded()
            size = len(row)
            largest = size if size > largest else largest
            if size > warn_at:
                rt.record_sizes.over(account, size)
            outbox.add(accounts_changelog, kept.partition, orjson.dumps(account), row)
        rt.record_sizes.largest_of_batch(largest)
        for account, (due, partition) in pending.deadlines.items():
            outbox.add(deadlines_changelog, partition, orjson.dumps(account),
                       None if due is None else orjson.dumps(due))
        await outbox.flush()

    def report(pending: Pending) -> None:
        metrics.DEADLINES.inc(pending.deadlines_fired())
        for (before, after), count in pending.transitions().items():
            metrics.TRANSITIONS.labels(before, after).inc(count)
        for flag, count in pending.flags_raised().items():
            metrics.FLAGS_RAISED.labels(flag).inc(count)
        for decision in pending.decisions:
            if decision.status != decision.previous_status:
                log.info("status changed", extra={"account": decision.account, "trigger": decision.trigger,
                                                  "from_status": decision.previous_status,
                                                  "to_status": decision.status, "rule": decision.rule})

    letter_limit = app.conf.producer_max_request_size

    async def to_dlq(kind: str, reason: str, value: bytes | None, headers: Any, message_key: bytes | None = None,
                     **context: Any) -> None:
        # Keyed as the original was (an action by its account), so one account's letters stay in order on
        # one partition, and `clientshift dlq redrive` sends them back in that order.
        metrics.DLQ.labels(kind).inc()
        # The reason and where the original came from, never its body (it may hold personal data).
        log.warning("sent to the DLQ", extra={"kind": kind, "reason": reason[:300], **{
            name: value for name, value in context.items() if name in _LOGGED_CONTEXT}})
        dlq_topic.send_soon(key=message_key,
                            value=dead_letter(kind, reason, value, headers, original_key=message_key,
                                              max_bytes=letter_limit, **context))

    events_in: dict[str, Any] = {}  # labelled counters by topic, looked up once, not per event

    async def handle(event: Any) -> None:
        message = event.message
        counter = events_in.get(message.topic)
        if counter is None:
            counter = events_in[message.topic] = metrics.EVENTS_IN.labels(message.topic)
        counter.inc()
        if message.topic == topics.ticks:
            try:
                account, until = read_tick(event.value)
            except ValueError as exc:  # the timer writes ticks; anything else there must not stop the worker
                await to_dlq("tick", f"not a tick: {exc}", event.value, message.headers, event.key,
                             topic=message.topic, partition=message.partition, offset=message.offset)
                return
            try:
                state = load(account)
            except UnreadableState as exc:
                await to_dlq("tick", str(exc), event.value, message.headers, event.key, topic=message.topic,
                             partition=message.partition, offset=message.offset, account=account)
                return
            step = rt.engine.advance(state, until)
            refused = rt.record_sizes.action_refusal(step.actions)
            if refused:  # the deadline waits, with the account's state, until the cause is fixed
                metrics.OVER_RECORD_LIMIT.labels("tick").inc()
                await to_dlq("tick", f"{refused}; the timer sends the tick again when the worker restarts",
                             event.value, message.headers, event.key, topic=message.topic,
                             partition=message.partition, offset=message.offset, account=account)
                return
            keep(step, message.partition)
            return
        try:
            canonical = decode_message(event.value, message.headers)
        except InvalidEvent as exc:
            metrics.EVENTS_INVALID.inc()
            await to_dlq("event", exc.reason, event.value, message.headers, event.key, topic=message.topic,
                         partition=message.partition, offset=message.offset)
            return
        key = (event.key or b"").decode("utf-8", errors="replace")
        if key != canonical.subject:
            # One account, one partition owner: an event keyed by anything else is re-keyed first.
            await events_topic.send(key=canonical.subject.encode(), value=event.value,
                                    headers=list(message.headers or ()), force=True)
            return
        try:
            state = load(canonical.subject)
        except UnreadableState as exc:  # only a row someone else wrote to the changelog: a CRC guards ours
            await to_dlq("event", str(exc), event.value, message.headers, event.key, topic=message.topic,
                         partition=message.partition, offset=message.offset, account=canonical.subject,
                         event_id=canonical.id)
            return
        step = rt.engine.handle(state, canonical)
        if step.duplicate:
            metrics.DUPLICATES.inc()
            return
        if step.too_late:
            metrics.TOO_LATE.inc()
            await to_dlq("event", step.too_late, event.value, message.headers, event.key, topic=message.topic,
                         partition=message.partition, offset=message.offset, account=canonical.subject,
                         event_id=canonical.id)
            return
        row, size, refused = rt.record_sizes.check(step, rt.pending.bound_of(canonical.subject),
                                                   len(event.value or b""))
        if refused:  # Kafka would refuse a record, and the worker would meet this event after every restart
            metrics.OVER_RECORD_LIMIT.labels("event").inc()
            await to_dlq("event", f"{refused}, then redrive it", event.value, message.headers, event.key,
                         topic=message.topic, partition=message.partition, offset=message.offset,
                         account=canonical.subject, event_id=canonical.id)
            return
        keep(step, message.partition, row, size)

    @app.agent(inputs, name="process")
    async def process(stream: Any) -> None:
        faust_fixes.flush_before_commit(app, flush)
        writing: asyncio.Future[None] | None = None
        # What `stream.events()` does, without its extra async generator per event.
        async for _ in stream:
            event = stream.current_event
            if event is None:
                continue
            await handle(event)
            rt.pending.events += 1
            if rt.pending.events >= settings.process_batch:
                # Written out in the background while the next events are handled; one write-out at a
                # time, so the stream waits when Kafka is the slower side.
                if writing is not None:
                    await writing  # and a failed write-out stops the agent (its outputs were put back)
                writing = asyncio.ensure_future(flush())

    write_out_clock = WriteOutClock(settings.process_batch // 2)

    @app.timer(settings.process_within)
    async def write_out_when_due() -> None:
        if write_out_clock.due(rt.pending):
            await flush()
        write_out_clock.looked_at(rt.pending)

    @app.agent(hubspot_topic, name="normalize-hubspot")
    async def normalize_hubspot(stream: Any) -> None:
        # Webhook events arrive out of order and more than once: a batch is ordered and deduplicated by
        # the normalizer, and its deterministic ids let the engine drop redeliveries across batches.
        async for batch in stream.take(100, within=0.2):
            events = []
            for value in batch:
                try:
                    event = json.loads(value)
                    if not isinstance(event, dict):
                        raise ValueError("not a JSON object")
                    problem = webhook_problem(event)
                    if problem is not None:
                        raise ValueError(problem)
                    events.append(event)
                except ValueError as exc:
                    await to_dlq("hubspot_webhook", f"not a HubSpot webhook event: {exc}", value, None)
            kept = drop_echoes(events, rt.echo_store, hubspot_app_id)
            for canonical in normalize(kept, hubspot_mapping or EventMapping(), rt.associations):
                await events_topic.send(key=canonical["subject"].encode(), value=json.dumps(canonical).encode(),
                                        force=True)

    @app.timer(settings.deadline_interval)
    async def fire_due_deadlines() -> None:
        now = rt.clock()
        if rt.due.stale:
            for account in rt.due.rebuild(list(deadlines.items())):
                log.warning("a deadline row that is not a deadline is left out until the account's next event "
                            "writes it anew", extra={"account": repr(account)[:200],
                                                     "topic": deadlines_changelog})
        owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.events}
        # A row taken out here and not ticked belongs to a partition this worker no longer owns; the
        # rebalance that took it away rebuilds the index.
        for account, entry in list(rt.due.due(now, deadlines.data.get)):
            due = entry["due"]
            if entry["partition"] in owned and rt.ticked.get(account) != due:
                rt.ticked[account] = due
                await ticks_topic.send(key=account.encode(), partition=entry["partition"], force=True,
                                       value=json.dumps({"account": account, "until": now}).encode())

    @app.timer(1.0)
    async def report_lag() -> None:
        # What this worker still has to read, per owned partition: the fetched high watermark minus the
        # committed offset (Faust exposes both; no extra requests).
        consumer = app.consumer
        committed = getattr(consumer, "_committed_offset", {})
        for tp in app.assignor.assigned_actives():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                done = committed.get(tp) or 0  # None until the first commit
                metrics.LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - done))

    def connector() -> Connector | None:
        if rt.connector is None:
            rt.connector = rt.connector_factory()
        return rt.connector

    @app.agent(actions_topic, name="sink")
    async def sink(stream: Any) -> None:
        name = settings.connector if not settings.dry_run else "dry-run"
        async for batch in stream.take(settings.sink_batch, within=settings.sink_within):
            actions = []
            for value in batch:
                try:
                    actions.append(Action.from_json(value))
                except ValueError as exc:  # not ours: one record someone else wrote must not stop the sink
                    await to_dlq("action", f"not an action: {exc}", value, None)
            if not actions:
                continue
            results = await deliver(actions, connector, name)
            if results is None:  # dry run: planned, not written
                metrics.ACTIONS.labels(name, "dry_run").inc(len(actions))
                continue
            for outcome, count in Counter(result.outcome for result in results).items():
                metrics.ACTIONS.labels(name, outcome.value).inc(count)
            for result in results:
                if result.outcome is Outcome.PERMANENT:
                    await to_dlq("action", result.detail, json.dumps(result.action.to_dict()).encode(), None,
                                 result.action.account.encode(), account=result.action.account,
                                 key=result.action.key, connector=name)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = rt.ready and not app.rebalancing
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the content type.
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4")

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        now = rt.clock()
        due = sum(1 for account, entry in deadlines.items() if is_deadline(account, entry) and entry["due"] <= now)
        return web.json({"ready": rt.ready, "clock": format_rfc3339(now), "accounts": len(accounts),
                         "deadlines": len(deadlines), "due_deadlines": due})

    @app.on_partitions_revoked.connect
    async def on_revoked(app_: Any, revoked: Any, **_: Any) -> None:
        if rt.ready:
            rt.waiting_since = time.monotonic()
        rt.ticked.clear()
        rt.due.stale = True

    @app.on_rebalance_complete.connect
    async def on_rebalanced(sender: Any, **_: Any) -> None:
        # Sent once the tables are recovered: rows restored from the changelogs are in the index's next
        # rebuild.
        rt.due.stale = True
        if not rt.ready:
            metrics.WAITING_FOR_PARTITIONS.observe(time.monotonic() - rt.waiting_since)
            rt.waiting_since = None

    return app
