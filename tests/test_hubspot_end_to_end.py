"""Webhook in -> status change -> HubSpot task and property out, on the real broker, with real worker and
ingress processes and the spec-checked local HubSpot server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from connectors.hubspot.webhooks import sign_v3
from hubspot_server import TOKEN, hubspot_server  # noqa: F401
from test_worker_kafka import Harness, broker  # noqa: F401
from workers.kafka.ports import free_port
from workers.kafka.topics import high_watermarks
from workers.replay import read_event_files, replay

SECRET = "webhook-client-secret"
APP_ID = "4242"


def post(port: int, events: list[dict], *, secret: str = SECRET, age_ms: int = 0) -> int:
    body = json.dumps(events).encode()
    uri = f"http://127.0.0.1:{port}/webhooks/hubspot"
    timestamp = str(int(time.time() * 1000) - age_ms)
    request = urllib.request.Request(uri, data=body, method="POST", headers={
        "Content-Type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", uri, body, timestamp)})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def webhook(company: str, prop: str, value: str, *, source: str = "CRM_UI", source_id: str = "userId:7",
            event_id: int = 1) -> dict:
    return {"eventId": event_id, "subscriptionId": 11, "portalId": 62515, "appId": int(APP_ID),
            "occurredAt": int(time.time() * 1000), "subscriptionType": "company.propertyChange", "attemptNumber": 0,
            "objectId": int(company), "propertyName": prop, "propertyValue": value, "changeSource": source,
            "sourceId": source_id}


@pytest.fixture
def ingress(harness_hubspot):
    h = harness_hubspot
    port = free_port()
    env = {**os.environ, **h.env(), "HUBSPOT_CLIENT_SECRET": SECRET, "CLIENTSHIFT_INGRESS_PORT": str(port)}
    log = (h.work / "ingress.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "workers.cli", "ingress", "hubspot"], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, (h.work / "ingress.log").read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.1)  # polling a port that is about to open
    yield port
    process.terminate()
    assert process.wait(timeout=20) == 0  # SIGTERM: graceful
    log.close()


@pytest.fixture
def harness_hubspot(broker, tmp_path, hubspot_server):  # noqa: F811
    h = Harness(broker, tmp_path)
    base_env = h.env

    def env() -> dict[str, str]:
        return {**base_env(), "CLIENTSHIFT_CONNECTOR": "hubspot", "HUBSPOT_ACCESS_TOKEN": TOKEN,
                "HUBSPOT_BASE_URL": hubspot_server.url, "HUBSPOT_APP_ID": APP_ID,
                "CLIENTSHIFT_HUBSPOT_RATE_PER_10S": "100000", "CLIENTSHIFT_HUBSPOT_SEARCH_RATE_PER_S": "100000"}

    h.env = env
    h.hubspot = hubspot_server
    yield h
    for worker in h.workers:
        worker.kill()


def test_webhook_to_hubspot_task_and_property(harness_hubspot, ingress):
    h = harness_hubspot
    company = h.hubspot.state.add("companies", {"name": "Acme"})
    worker = h.worker()
    worker.wait_ready()
    assert post(ingress, [webhook(company, "clientshift_csm_owner_id", "101")], secret="forged") == 401
    assert post(ingress, [webhook(company, "clientshift_csm_owner_id", "101")], age_ms=6 * 60_000) == 401
    assert post(ingress, [webhook(company, "clientshift_csm_owner_id", "101")]) == 204
    # HubSpot redelivers: same content, another attempt. It must not create a second task.
    assert post(ingress, [webhook(company, "clientshift_csm_owner_id", "101", event_id=2)]) == 204
    h.quiet()
    record = h.hubspot.state.objects["companies"][company]["properties"]
    assert record["relationship_status"] == "client"
    assert record["relationship_reason"].startswith("formal_relationship")
    tasks = list(h.hubspot.state.objects["tasks"].values())
    assert len(tasks) == 1
    # The webhook named no account name, so the title falls back to the account id.
    assert tasks[0]["properties"]["hs_task_subject"] == f"Welcome {company} as a client"
    assert tasks[0]["properties"]["hubspot_owner_id"] == "101"
    assert tasks[0]["properties"]["clientshift_action_key"].startswith(f"{company}|welcome_client|")
    assert any(a[:4] == ("tasks", tasks[0]["id"], "companies", company) for a in h.hubspot.state.associations)

    # Our own write comes back as a webhook: recognised, counted, dropped; no new event reaches the core.
    events_before = sum(high_watermarks(h.settings, [h.settings.topics.events]).values())
    assert post(ingress, [webhook(company, "relationship_status", "client", source="INTEGRATION",
                                  source_id=APP_ID)]) == 204
    h.quiet()
    assert "clientshift_hubspot_echoes_dropped_total 1.0" in worker.get("/metrics")[1]
    assert sum(high_watermarks(h.settings, [h.settings.topics.events]).values()) == events_before
    assert len(h.hubspot.state.objects["tasks"]) == 1


def test_backfill_cli_emits_replayable_events(hubspot_server, tmp_path):  # noqa: F811
    for n in range(3):
        hubspot_server.state.add("companies", {"name": f"c{n}", "clientshift_csm_owner_id": "9" if n == 0 else ""})
    out = tmp_path / "seed.jsonl"
    env = {**os.environ, "HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": hubspot_server.url}
    result = subprocess.run([sys.executable, "-m", "workers.cli", "backfill", "hubspot", "--out", str(out),
                             "--checkpoint", str(tmp_path / "ckpt")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "3 companies" in result.stderr
    replayed = replay(read_event_files([out]))
    assert replayed.stats["invalid"] == 0
    assert sorted(s.status for s in replayed.accounts.values()) == ["client", "prospect", "prospect"]
