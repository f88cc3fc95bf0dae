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
import time
from typing import Any, Callable

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.base import Connector
from connectors.hubspot.echo import InMemoryLastWritten, drop_echoes
from connectors.hubspot.normalize import DEFAULT_MAPPING, EventMapping, ignoring, normalize, webhook_problem
from connectors.hubspot.settings import written_properties
from workers import metrics
from workers.kafka import faust_fixes
from workers.kafka import tansu as tansu_workarounds
from workers.kafka.clock import Clock
from workers.kafka.dead_letters import DeadLetters
from workers.kafka.due import is_deadline
from workers.kafka.pending import WriteOutClock
from workers.kafka.process import Processor
from workers.kafka.raw_schema import ChangelogRows, RawBytes
from workers.kafka.runtime import Runtime
from workers.kafka.settings import Settings
from workers.kafka.sink import apply_batch
from workers.kafka.topics import ACCOUNTS_TABLE, DEADLINES_TABLE
from workers.kafka.write_out import WriteOut, WriteOutPacer
from workers.rules.policy import Policy
from workers.timeutil import format_rfc3339

log = logging.getLogger("clientshift.worker")


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
    return app.producer._ensure_producer()  # type: ignore[attr-defined]  # aiokafka driver's, not in ProducerT


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
    accounts_changelog = accounts.changelog_topic.get_topic_name()
    deadlines_changelog = deadlines.changelog_topic.get_topic_name()
    letters = DeadLetters(dlq_topic, app.conf.producer_max_request_size)
    processor = Processor(rt, accounts, deadlines, events_topic, letters)
    flush = WriteOut(rt, lambda: kafka_producer(app), topics, accounts_changelog, deadlines_changelog)

    @app.agent(inputs, name="process")
    async def process(stream: Any) -> None:
        faust_fixes.flush_before_commit(app, flush)
        pacer = WriteOutPacer(rt, flush, settings.process_batch)  # a failed write-out stops the agent
        # What `stream.events()` does, without its extra async generator per event.
        async for _ in stream:
            event = stream.current_event
            if event is None:
                continue
            await processor.handle(event)
            await pacer.handled()

    write_out_clock = WriteOutClock(settings.process_batch // 2)

    @app.timer(settings.process_within)
    async def write_out_when_due() -> None:
        if write_out_clock.due(rt.pending):
            await flush()
        write_out_clock.looked_at(rt.pending)

    rt.hubspot_mapping = ignoring(hubspot_mapping or DEFAULT_MAPPING, written_properties(policy.tag_name))

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
                    await letters.send("hubspot_webhook", f"not a HubSpot webhook event: {exc}", value, None)
            kept = drop_echoes(events, rt.echo_store, hubspot_app_id)
            for canonical in normalize(kept, rt.hubspot_mapping, rt.associations):
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

    @app.agent(actions_topic, name="sink")
    async def sink(stream: Any) -> None:
        name = settings.connector if not settings.dry_run else "dry-run"
        async for batch in stream.take(settings.sink_batch, within=settings.sink_within):
            await apply_batch(batch, rt.sink_connector, name, letters)

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
                         "deadlines": len(deadlines), "due_deadlines": due,
                         "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0]})

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust types handlers too narrowly
    async def on_revoked(app_: Any, revoked: Any, **_: Any) -> None:
        if rt.ready:
            rt.waiting_since = time.monotonic()
        rt.ticked.clear()
        rt.due.stale = True

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def on_rebalanced(sender: Any, **_: Any) -> None:
        # Sent once the tables are recovered: rows restored from the changelogs are in the index's next
        # rebuild.
        rt.due.stale = True
        if rt.waiting_since is not None:
            metrics.WAITING_FOR_PARTITIONS.observe(time.monotonic() - rt.waiting_since)
            rt.waiting_since = None

    return app
