"""Webhook ingress: an aiohttp app that verifies HubSpot's signature and hands the events on.

The 2xx goes out only after `publish` returned (the broker acknowledged); if publishing fails HubSpot
gets a 5xx and delivers again, which the deterministic event ids make harmless.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.hubspot import metrics
from connectors.hubspot.webhooks import SignatureError, verify_v3

log = logging.getLogger(__name__)

Publish = Callable[[list[dict[str, Any]]], Awaitable[None]]
WEBHOOK_PATH = "/webhooks/hubspot"
DEFAULT_MAX_BODY = 1024 * 1024  # HubSpot batches up to 100 events; 1 MiB is generous


def make_app(secret: str, publish: Publish, *, max_body: int = DEFAULT_MAX_BODY,
             clock: Callable[[], float] = time.time, public_base_url: str | None = None,
             ready: Callable[[], bool] = lambda: True) -> web.Application:
    """`public_base_url` (e.g. https://hooks.example.com) is the origin HubSpot called when we sit behind
    a proxy; the signed URI is that origin + the request's path and query. Without it the request's own
    scheme and Host are used."""
    app = web.Application(client_max_size=max_body)

    async def webhook(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > max_body:
            return _outcome(413, "too_large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _outcome(413, "too_large")
        if len(body) > max_body:
            return _outcome(413, "too_large")
        base = public_base_url.rstrip("/") if public_base_url else f"{request.scheme}://{request.host}"
        uri = base + request.raw_path  # raw: HubSpot signs the URI as sent, not as normalised by yarl
        try:
            verify_v3(secret, request.method, uri, body, request.headers.get("X-HubSpot-Signature-v3"),
                      request.headers.get("X-HubSpot-Request-Timestamp"), clock=clock)
        except SignatureError as exc:
            log.warning("rejected HubSpot webhook: %s", exc)
            return _outcome(401, "unauthorized")
        try:
            events = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return _outcome(400, "malformed")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return _outcome(400, "malformed")
        try:
            await publish(events)
        except Exception:
            log.exception("publishing %d HubSpot events failed", len(events))
            return _outcome(503, "publish_failed")
        metrics.WEBHOOK_EVENTS.labels("accepted").inc(len(events))
        return _outcome(204, "accepted")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(text="ready") if ready() else web.Response(status=503, text="not ready")

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_post(WEBHOOK_PATH, webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return app


def _outcome(status: int, outcome: str) -> web.Response:
    metrics.WEBHOOK_REQUESTS.labels(outcome).inc()
    return web.Response(status=status)
