"""Webhook signature v3 and the aiohttp ingress."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connectors.hubspot.ingress import make_app
from connectors.hubspot.webhooks import SignatureError, sign_v3, verify_v3

SECRET = "app-client-secret"
NOW = 1_760_000_000.0
TS = str(int(NOW * 1000))
URI = "https://hooks.example.com/webhooks/hubspot"
BODY = json.dumps([{"eventId": 1, "subscriptionId": 2, "portalId": 62515, "appId": 4242, "occurredAt": 1759999999000,
                    "subscriptionType": "company.creation", "attemptNumber": 0, "objectId": 123,
                    "changeFlag": "CREATED", "changeSource": "CRM_UI", "sourceId": "userId:45678"}]).encode()


def test_valid_signature_passes() -> None:
    verify_v3(SECRET, "POST", URI, BODY, sign_v3(SECRET, "POST", URI, BODY, TS), TS, clock=lambda: NOW)


def test_signature_matches_a_hand_computed_hmac() -> None:
    import base64, hashlib, hmac
    expected = base64.b64encode(hmac.new(SECRET.encode(), b"POST" + URI.encode() + BODY + TS.encode(),
                                         hashlib.sha256).digest()).decode()
    assert sign_v3(SECRET, "POST", URI, BODY, TS) == expected


@pytest.mark.parametrize("case, message", [
    ("forged", "signature mismatch"), ("tampered", "signature mismatch"), ("stale", "too old"),
    ("future", "future"), ("missing", "missing")])
def test_bad_signatures_are_rejected(case: str, message: str) -> None:
    ts, body, signature = TS, BODY, sign_v3(SECRET, "POST", URI, BODY, TS)
    if case == "forged":
        signature = sign_v3("someone-else", "POST", URI, BODY, TS)
    elif case == "tampered":
        body = BODY.replace(b"123", b"124")
    elif case == "stale":
        ts = str(int(NOW * 1000) - 5 * 60 * 1000 - 1)
        signature = sign_v3(SECRET, "POST", URI, BODY, ts)
    elif case == "future":
        ts = str(int(NOW * 1000) + 5 * 60 * 1000)
        signature = sign_v3(SECRET, "POST", URI, BODY, ts)
    elif case == "missing":
        signature = None  # type: ignore[assignment]
    with pytest.raises(SignatureError, match=message):
        verify_v3(SECRET, "POST", URI, body, signature, ts, clock=lambda: NOW)


def test_url_encoded_characters_are_decoded_before_signing() -> None:
    encoded = "https://hooks.example.com/webhooks/hubspot?from=a%3Ab"
    assert sign_v3(SECRET, "POST", encoded, BODY, TS) == sign_v3(
        SECRET, "POST", "https://hooks.example.com/webhooks/hubspot?from=a:b", BODY, TS)


class Publisher:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail

    async def __call__(self, events: list[dict[str, Any]]) -> None:
        if self.fail:
            raise RuntimeError("broker down")
        self.batches.append(events)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _post(app: Any, body: bytes, *, ts: str = TS, secret: str = SECRET, base: str = "https://hooks.example.com",
                extra: dict[str, str] | None = None) -> tuple[int, str]:
    async with TestClient(TestServer(app)) as client:
        signature = sign_v3(secret, "POST", base + "/webhooks/hubspot", body, ts)
        response = await client.post("/webhooks/hubspot", data=body, headers={
            "X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": ts,
            "Content-Type": "application/json", **(extra or {})})
        metrics = await (await client.get("/metrics")).text()
        return response.status, metrics


def app_with(publisher: Publisher, **kw: Any) -> Any:
    return make_app(SECRET, publisher, clock=lambda: NOW, public_base_url="https://hooks.example.com", **kw)


def test_ingress_publishes_then_answers_2xx() -> None:
    publisher = Publisher()
    status, metrics = run(_post(app_with(publisher), BODY))
    assert status == 204 and publisher.batches == [json.loads(BODY)]
    assert 'clientshift_hubspot_webhook_requests_total{outcome="accepted"}' in metrics


def test_ingress_answers_5xx_when_the_broker_fails() -> None:
    status, _ = run(_post(app_with(Publisher(fail=True)), BODY))
    assert status == 503


@pytest.mark.parametrize("ts, secret", [(TS, "forged-secret"), (str(int(NOW * 1000) - 301_000), SECRET),
                                        (str(int(NOW * 1000) + 301_000), SECRET)], ids=["forged", "stale", "future"])
def test_ingress_rejects_bad_signatures(ts: str, secret: str) -> None:
    publisher = Publisher()
    status, metrics = run(_post(app_with(publisher), BODY, ts=ts, secret=secret))
    assert status == 401 and publisher.batches == []
    assert 'clientshift_hubspot_webhook_requests_total{outcome="unauthorized"}' in metrics


def test_ingress_signs_against_the_public_url_behind_a_proxy() -> None:
    # Signed for the public origin, received by the app on an internal address: accepted only because
    # public_base_url is configured; without it the same request is refused.
    publisher = Publisher()
    assert run(_post(app_with(publisher), BODY))[0] == 204
    plain = make_app(SECRET, publisher, clock=lambda: NOW)
    assert run(_post(plain, BODY))[0] == 401


@pytest.mark.parametrize("body", [b"{not json", b'{"an": "object"}', b"[1, 2]"])
def test_ingress_rejects_malformed_json(body: bytes) -> None:
    status, _ = run(_post(app_with(Publisher()), body))
    assert status == 400


def test_ingress_rejects_oversized_bodies() -> None:
    publisher = Publisher()
    status, metrics = run(_post(app_with(publisher, max_body=1000), b"[" + b" " * 2000 + b"]"))
    assert status == 413 and publisher.batches == []


def test_health_endpoints() -> None:
    async def go() -> tuple[int, int, int]:
        async with TestClient(TestServer(make_app(SECRET, Publisher(), ready=lambda: False))) as client:
            return ((await client.get("/healthz")).status, (await client.get("/readyz")).status,
                    (await client.get("/metrics")).status)
    assert run(go()) == (200, 503, 200)
