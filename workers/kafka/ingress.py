"""`clientshift ingress hubspot`: the webhook endpoint as its own small process, publishing verified
HubSpot events to the raw topic (the worker's normalizer agent turns them into canonical events)."""

from __future__ import annotations

import json
import os
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer

from connectors.hubspot.ingress import make_app
from connectors.hubspot.settings import SettingsError
from workers.kafka.settings import Settings
from workers.secrets import SecretFileError, read_secret


def build_ingress(settings: Settings, secret: str, public_base_url: str | None) -> web.Application:
    producer: dict[str, AIOKafkaProducer] = {}

    async def publish(events: list[dict[str, Any]]) -> None:
        # Keyed by HubSpot object so one record's events stay in order on one partition; the 2xx waits
        # for every acknowledgement.
        sends = [await producer["kafka"].send(settings.topics.hubspot_raw, json.dumps(event).encode(),
                                              key=str(event.get("objectId", event.get("fromObjectId", ""))).encode())
                 for event in events]
        for sent in sends:
            await sent

    app = make_app(secret, publish, public_base_url=public_base_url, ready=lambda: "kafka" in producer)

    async def lifecycle(_: web.Application) -> Any:
        kafka = AIOKafkaProducer(bootstrap_servers=",".join(settings.bootstrap_servers), acks="all",
                                 **settings.aiokafka_security())
        await kafka.start()
        producer["kafka"] = kafka
        yield
        producer.pop("kafka")
        await kafka.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


def run_ingress(settings: Settings, port: int) -> None:
    try:
        secret = read_secret(os.environ, "HUBSPOT_CLIENT_SECRET")
    except SecretFileError as exc:
        raise SettingsError(str(exc)) from None
    if not secret:
        raise SettingsError("HUBSPOT_CLIENT_SECRET or HUBSPOT_CLIENT_SECRET_FILE must be set")
    app = build_ingress(settings, secret, os.environ.get("CLIENTSHIFT_HUBSPOT_PUBLIC_URL"))
    web.run_app(app, host=settings.web_host, port=port, print=None)  # handles SIGTERM gracefully
