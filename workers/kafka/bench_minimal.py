"""The minimal Faust agent the worker benchmark compares against: same settings, only decodes."""

from __future__ import annotations

import json
import os
from typing import Any

import faust

from workers.kafka import faust_fixes, tansu
from workers.kafka.event_loop import use_event_loop
from workers.kafka.raw_schema import RawBytes
from workers.kafka.settings import Settings

settings = Settings.from_env()
fixed = os.environ.get("CLIENTSHIFT_BENCH_FAUST_FIXES") == "1"
if fixed:
    # The same agent on Faust as the worker runs it (workers.kafka.faust_fixes, the worker's topic
    # schema and event loop): how far the ceiling moved. Without, plain Faust on asyncio's own loop.
    use_event_loop(settings.event_loop)
    faust_fixes.apply(settings.fetch_max_wait_ms)
app = faust.App(settings.group_id, broker=settings.faust_broker_url(), store="memory://", value_serializer="raw",
                key_serializer="raw", web_port=settings.web_port, topic_partitions=settings.partitions,
                datadir=settings.data_dir, broker_commit_interval=1.0, stream_buffer_maxsize=settings.stream_buffer,
                consumer_max_fetch_size=settings.fetch_bytes,
                **tansu.faust_settings(True))
source = app.topic(settings.topics.events, schema=RawBytes()) if fixed else \
    app.topic(settings.topics.events, key_type=bytes, value_type=bytes)
ready = {"yes": False}


@app.on_rebalance_complete.connect  # type: ignore[arg-type]  # Faust types handlers too narrowly
async def on_rebalanced(sender: Any, **_: Any) -> None:
    # Ready means what the worker's /readyz means: partitions assigned. Until then the benchmark's clock
    # has not started, for this agent as for the worker, so neither is timed through its group join.
    ready["yes"] = True


@app.agent(source)
async def decode(stream: Any) -> None:
    async for value in stream:
        json.loads(value)


@app.page("/readyz")
async def readyz(web: Any, request: Any) -> Any:
    return web.json({"ready": ready["yes"]}, status=200 if ready["yes"] else 503)


@app.page("/status")
async def status(web: Any, request: Any) -> Any:
    return web.json({"due_deadlines": 0})


if __name__ == "__main__":
    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()
