"""HubSpot write-back through the real hubspot-api-client against the local, spec-checked server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubspot_server import TOKEN, HubSpotServer, Storm, hubspot_env, hubspot_server  # noqa: E402,F401

from connectors.base import ConnectorPaused, Outcome  # noqa: E402
from connectors.hubspot import HubSpotConnector  # noqa: E402
from connectors.hubspot.settings import HubSpotSettings, Secret  # noqa: E402
from connectors.retry import RetryPolicy, apply_with_retry  # noqa: E402
from workers.actions import Action  # noqa: E402

AT = "2026-03-01T12:00:00Z"


def tag(account: str, value: str = "customer", trigger: str = "e1", kind: str | None = None) -> Action:
    return Action(type="tag", account=account, key=f"{account}|tag:relationship_status={value}|{trigger}", at=AT,
                  trigger=trigger, reason="has_purchased: bought something", account_kind=kind,
                  name="relationship_status", value=value)


def task(account: str, kind: str = "welcome_client", trigger: str = "e1", owner: str | None = "101",
         account_kind: str | None = None) -> Action:
    return Action(type="task", account=account, key=f"{account}|{kind}|{trigger}", at=AT, trigger=trigger,
                  reason="formal_relationship", account_kind=account_kind, kind=kind, title=f"Welcome {account}",
                  body="Say hello", priority="HIGH", due="2026-03-08T12:00:00Z", owner_id=owner)


def companies(server: HubSpotServer, n: int) -> list[str]:
    return [server.state.add("companies", {"name": f"c{i}", "domain": f"c{i}.example"}) for i in range(n)]


@pytest.fixture
def connector(hubspot_env: dict[str, str]) -> HubSpotConnector:
    return HubSpotConnector.from_settings({"env": hubspot_env})


def test_250_tags_go_out_in_3_batch_updates(hubspot_server: HubSpotServer, connector: HubSpotConnector) -> None:
    ids = companies(hubspot_server, 250)
    results = connector.apply([tag(i) for i in ids])
    assert [r.outcome for r in results] == [Outcome.DONE] * 250
    assert hubspot_server.count("POST", r"/companies/batch/update$") == 3
    assert hubspot_server.count("POST", r"/companies/batch/read$") == 3
    record = hubspot_server.state.objects["companies"][ids[-1]]["properties"]
    assert record["relationship_status"] == "customer"
    assert record["relationship_reason"].startswith("has_purchased")
    assert record["relationship_updated_at"] == AT


def test_properties_are_created_once(hubspot_server: HubSpotServer, hubspot_env: dict[str, str]) -> None:
    HubSpotConnector.from_settings({"env": hubspot_env}).start()
    props = hubspot_server.state.properties
    assert props["companies"]["relationship_status"]["type"] == "enumeration"
    assert {o["value"] for o in props["companies"]["relationship_status"]["options"]} == {"prospect", "customer", "client"}
    assert "clientshift_action_key" in props["tasks"] and "clientshift" in hubspot_server.state.groups["contacts"]
    creates = hubspot_server.count("POST", r"^/crm/v3/properties/")
    HubSpotConnector.from_settings({"env": hubspot_env}).start()  # a restart: reads, creates nothing
    assert hubspot_server.count("POST", r"^/crm/v3/properties/") == creates


def test_compare_before_write_skips_records_already_right(hubspot_server: HubSpotServer,
                                                           connector: HubSpotConnector) -> None:
    ids = companies(hubspot_server, 10)
    connector.apply([tag(i) for i in ids[:4]])
    before = hubspot_server.count("POST", r"/batch/update$")
    results = connector.apply([tag(i, trigger="e2") for i in ids])
    assert [r.outcome for r in results] == [Outcome.DUPLICATE] * 4 + [Outcome.DONE] * 6
    assert hubspot_server.count("POST", r"/batch/update$") == before + 1
    # All already right: no write request at all.
    connector.apply([tag(i, trigger="e3") for i in ids])
    assert hubspot_server.count("POST", r"/batch/update$") == before + 1


def test_two_decisions_for_one_record_in_a_batch_write_the_last(hubspot_server: HubSpotServer,
                                                                 connector: HubSpotConnector) -> None:
    (cid,) = companies(hubspot_server, 1)
    results = connector.apply([tag(cid, "customer"), tag(cid, "client", trigger="e2")])
    assert [r.outcome for r in results] == [Outcome.DUPLICATE, Outcome.DONE]
    assert hubspot_server.state.objects["companies"][cid]["properties"]["relationship_status"] == "client"


def test_task_is_created_once_across_restarts(hubspot_server: HubSpotServer, hubspot_env: dict[str, str]) -> None:
    ids = companies(hubspot_server, 3)
    first = HubSpotConnector.from_settings({"env": hubspot_env})
    assert [r.outcome for r in first.apply([task(i) for i in ids])] == [Outcome.DONE] * 3
    restarted = HubSpotConnector.from_settings({"env": hubspot_env})  # no memory of the first
    assert [r.outcome for r in restarted.apply([task(i) for i in ids])] == [Outcome.DUPLICATE] * 3
    for i in ids:
        (created,) = hubspot_server.state.tasks_with("clientshift_action_key", f"{i}|welcome_client|e1")
        props = created["properties"]
        assert props["hs_task_subject"] == f"Welcome {i}" and props["hs_task_priority"] == "HIGH"
        assert props["hubspot_owner_id"] == "101" and props["hs_timestamp"] == "2026-03-08T12:00:00Z"
        assert ("tasks", created["id"], "companies", i, 192) in hubspot_server.state.associations
    assert hubspot_server.count("POST", r"/objects/tasks/search$") == 2  # one IN search per apply, for 3 keys


def test_person_accounts_write_to_contacts(hubspot_server: HubSpotServer, connector: HubSpotConnector) -> None:
    pid = hubspot_server.state.add("contacts", {"email": "a@example.com"})
    results = connector.apply([tag(pid, kind="person"), task(pid, account_kind="person")])
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.DONE]
    assert hubspot_server.state.objects["contacts"][pid]["properties"]["relationship_status"] == "customer"
    (created,) = hubspot_server.state.objects["tasks"].values()
    assert ("tasks", created["id"], "contacts", pid, 204) in hubspot_server.state.associations


def test_accounts_from_other_systems_resolve_by_id_property(hubspot_server: HubSpotServer,
                                                            hubspot_env: dict[str, str]) -> None:
    ids = companies(hubspot_server, 3)
    connector = HubSpotConnector.from_settings({"env": {**hubspot_env, "CLIENTSHIFT_HUBSPOT_ID_PROPERTY": "domain"}})
    results = connector.apply([tag("c1.example"), task("c2.example"), tag("nowhere.example")])
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.DONE, Outcome.PERMANENT]
    assert "domain='nowhere.example'" in results[2].detail
    assert hubspot_server.state.objects["companies"][ids[1]]["properties"]["relationship_status"] == "customer"
    (created,) = hubspot_server.state.objects["tasks"].values()
    assert ("tasks", created["id"], "companies", ids[2], 192) in hubspot_server.state.associations


def test_unknown_record_is_permanent(hubspot_server: HubSpotServer, connector: HubSpotConnector) -> None:
    result, = connector.apply([tag("999999")])
    assert result.outcome is Outcome.PERMANENT and "no companies record with id 999999" in result.detail


def test_400_is_permanent_with_hubspots_message_and_spares_the_rest(hubspot_server: HubSpotServer,
                                                                     connector: HubSpotConnector) -> None:
    ids = companies(hubspot_server, 3)
    results = connector.apply([tag(ids[0]), tag(ids[1], value="bogus"), tag(ids[2]), task(ids[0], owner="999")])
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.PERMANENT, Outcome.DONE, Outcome.PERMANENT]
    assert "bogus was not one of the allowed options" in results[1].detail
    assert "999 is not a valid owner id" in results[3].detail


def test_207_partial_batch_is_reported_per_record(hubspot_server: HubSpotServer, connector: HubSpotConnector) -> None:
    ids = companies(hubspot_server, 4)
    connector.start()
    hubspot_server.inject(status=207, path=r"/batch/update$", partial_ids=(ids[2],))
    results = connector.apply([tag(i) for i in ids])
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.DONE, Outcome.PERMANENT, Outcome.DONE]
    assert "Injected per-record failure" in results[2].detail


@pytest.mark.parametrize("retry_after, expected", [("3", 3.0), (None, None)])
def test_secondly_429_is_retryable_with_retry_after(hubspot_server: HubSpotServer, connector: HubSpotConnector,
                                                     retry_after: str | None, expected: float | None) -> None:
    ids = companies(hubspot_server, 2)
    connector.start()
    hubspot_server.inject(status=429, path=r"/batch/update$", retry_after=retry_after)
    results = connector.apply([tag(i) for i in ids])
    assert [r.outcome for r in results] == [Outcome.RETRYABLE] * 2
    assert [r.retry_after for r in results] == [expected] * 2


def test_daily_429_pauses_the_connector(hubspot_server: HubSpotServer, connector: HubSpotConnector) -> None:
    ids = companies(hubspot_server, 2)
    connector.start()
    hubspot_server.inject(status=429, path=r"/batch/read$", policy="DAILY")
    with pytest.raises(ConnectorPaused) as raised:
        connector.apply([tag(i) for i in ids])
    assert "daily" in str(raised.value).lower() and raised.value.resume_in >= 60


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retryable(hubspot_server: HubSpotServer, connector: HubSpotConnector, status: int) -> None:
    ids = companies(hubspot_server, 2)
    connector.start()
    hubspot_server.inject(status=status, path=r"/objects/tasks/search$")
    results = connector.apply([task(i) for i in ids])
    assert [r.outcome for r in results] == [Outcome.RETRYABLE] * 2
    assert hubspot_server.state.objects["tasks"] == {}


def test_timeout_is_retryable_and_not_retried_by_the_client(hubspot_server: HubSpotServer,
                                                             hubspot_env: dict[str, str]) -> None:
    ids = companies(hubspot_server, 1)
    # A timeout well above what the validating local server takes on a loaded CI machine, so only the
    # injected delay can reach it.
    connector = HubSpotConnector.from_settings({"env": {**hubspot_env, "CLIENTSHIFT_HUBSPOT_TIMEOUT": "1"}})
    connector.start()
    hubspot_server.inject(path=r"/batch/read$", delay=3.0)
    result, = connector.apply([tag(ids[0])])
    assert result.outcome is Outcome.RETRYABLE and "Timeout" in result.detail
    assert hubspot_server.count("POST", r"/batch/read$") == 1  # urllib3 did not retry behind our back


def test_storm_every_write_lands_exactly_once(hubspot_server: HubSpotServer, connector: HubSpotConnector) -> None:
    ids = companies(hubspot_server, 300)
    connector.start()
    hubspot_server.storm = Storm(rate=0.35, statuses=(429, 429, 500, 502, 503), seed=3,
                                  after_apply_share=0.8)
    actions = [tag(i) for i in ids] + [task(i) for i in ids[:250]]
    waits: list[float] = []
    attempts = 0
    original = connector.apply

    def counting(batch):  # type: ignore[no-untyped-def]
        nonlocal attempts
        attempts += 1
        return original(batch)

    connector.apply = counting  # type: ignore[method-assign]
    results = apply_with_retry(connector, actions, RetryPolicy(attempts=40, initial_wait=0.01, max_wait=0.05, jitter=0.01),
                               sleep=waits.append)
    hubspot_server.storm = None
    assert all(r.outcome in (Outcome.DONE, Outcome.DUPLICATE) for r in results), [r.detail for r in results
                                                                                  if r.outcome is Outcome.PERMANENT][:3]
    table = hubspot_server.state.objects["companies"]
    assert all(table[i]["properties"]["relationship_status"] == "customer" for i in ids)
    keys = [t["properties"]["clientshift_action_key"] for t in hubspot_server.state.objects["tasks"].values()]
    assert sorted(keys) == sorted(f"{i}|welcome_client|e1" for i in ids[:250])  # each once, none twice
    statuses = {status for _, status, _ in hubspot_server.fault_log}
    assert 429 in statuses and statuses & {500, 502, 503}
    assert any(applied for _, _, applied in hubspot_server.fault_log)  # some writes landed, then "failed"
    print(f"\nstorm: {len(hubspot_server.fault_log)} injected faults, {attempts} apply attempts, "
          f"{len(waits)} waits, simulated wait {sum(waits):.3f}s, {hubspot_server.total_requests()} requests")


def test_requests_per_1000_status_changes_and_tasks(hubspot_server: HubSpotServer, connector: HubSpotConnector) -> None:
    ids = companies(hubspot_server, 1000)
    connector.start()
    setup = hubspot_server.total_requests()
    results = connector.apply([tag(i) for i in ids])
    tags_requests = hubspot_server.total_requests() - setup
    results += connector.apply([task(i) for i in ids])
    task_requests = hubspot_server.total_requests() - setup - tags_requests
    assert all(r.outcome is Outcome.DONE for r in results)
    assert tags_requests == 20  # 10 batch reads + 10 batch updates
    assert task_requests == 30  # 10 reads + 10 key searches + 10 batch creates
    print(f"\n1000 tag actions: {tags_requests} requests; 1000 task actions: {task_requests} requests")


def test_settings_never_show_the_token(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("pat-na1-very-secret\n")
    settings = HubSpotSettings.from_env({"HUBSPOT_ACCESS_TOKEN_FILE": str(secret_file)})
    assert settings.access_token.reveal() == "pat-na1-very-secret"
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings)
    assert "very-secret" not in repr(HubSpotConnector(settings))
    assert settings.base_url == "https://api.hubapi.com"
    assert Secret("x") == Secret("x")


def test_test_server_catches_requests_that_break_the_spec(hubspot_server: HubSpotServer) -> None:
    # The server is only worth trusting if it notices a bad request.
    http = urllib3.PoolManager()
    http.request("POST", hubspot_server.url + "/crm/v3/objects/companies/batch/update",
                 body=json.dumps({"inputs": [{"properties": "not-an-object"}]}),
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert any("batch/update" in v for v in hubspot_server.violations)
    hubspot_server.violations.clear()


@pytest.mark.parametrize("retry_after", ["2", None])
def test_sustained_secondly_429_storm_with_the_shared_policy(hubspot_server: HubSpotServer,
                                                              connector: HubSpotConnector,
                                                              retry_after: str | None) -> None:
    ids = companies(hubspot_server, 100)
    connector.start()
    hubspot_server.inject(status=429, path=r"/batch/update$", retry_after=retry_after, times=5)
    waits: list[float] = []
    results = apply_with_retry(connector, [tag(i) for i in ids], RetryPolicy(), sleep=waits.append)
    assert [r.outcome for r in results] == [Outcome.DONE] * 100
    assert hubspot_server.count("POST", r"/batch/update$") == 6 and len(waits) == 5
    if retry_after:
        assert all(w >= 2.0 for w in waits)  # Retry-After honoured as a floor
    print(f"\nsustained 429 (Retry-After={retry_after}): 6 attempts, simulated wait {sum(waits):.2f}s {waits}")
