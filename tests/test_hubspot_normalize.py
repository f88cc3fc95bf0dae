"""Webhook events -> canonical events, and echo suppression of our own writes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.hubspot.echo import InMemoryLastWritten, drop_echoes, is_echo
from connectors.hubspot.normalize import Associations, ignoring, mapping_from, normalize, webhook_problem
from connectors.hubspot.settings import written_properties
from workers.events import parse_event


def ev(**kw: object) -> dict[str, object]:
    # Shape of HubSpot's documented webhook payload items.
    base = {"eventId": 100, "subscriptionId": 2, "portalId": 62515, "appId": 54321, "occurredAt": 1759999999000,
            "attemptNumber": 0, "changeSource": "CRM_UI", "sourceId": "userId:45678"}
    return {**base, **kw}


def test_mapping_defaults_produce_valid_canonical_events() -> None:
    events = [
        ev(subscriptionType="company.creation", objectId=11, changeFlag="CREATED", occurredAt=1000),
        ev(subscriptionType="company.propertyChange", objectId=11, propertyName="clientshift_csm_owner_id",
           propertyValue="101", occurredAt=2000),
        ev(subscriptionType="company.propertyChange", objectId=11, propertyName="clientshift_plan",
           propertyValue="premier", occurredAt=3000),
        ev(subscriptionType="contact.associationChange", fromObjectId=7, toObjectId=11,
           associationType="CONTACT_TO_COMPANY", associationRemoved=False, occurredAt=3500),
        ev(subscriptionType="deal.associationChange", fromObjectId=9, toObjectId=11,
           associationType="DEAL_TO_COMPANY", associationRemoved=False, occurredAt=3600),
        ev(subscriptionType="deal.propertyChange", objectId=9, propertyName="dealstage", propertyValue="closedwon",
           occurredAt=4000),
        ev(subscriptionType="company.propertyChange", objectId=11, propertyName="clientshift_csm_owner_id",
           propertyValue="", occurredAt=5000),
    ]
    out = normalize(events)
    assert [e["type"] for e in out] == ["crm.account.created", "crm.csm.assigned", "crm.subscription.changed",
                                        "crm.order.placed", "crm.csm.unassigned"]
    parsed = [parse_event(e) for e in out]  # the published contract
    assert all(p.subject == "11" and p.source == "hubspot/portal/62515" for p in parsed)
    assert out[0]["time"] == "1970-01-01T00:00:01.000Z"
    assert parsed[1].data == {"owner_id": "101"} and parsed[3].data == {"order_id": "deal-9"}


def test_out_of_order_and_redelivered_events() -> None:
    created = ev(subscriptionType="company.creation", objectId=11, occurredAt=1000, eventId=5)
    csm = ev(subscriptionType="company.propertyChange", objectId=11, propertyName="clientshift_csm_owner_id",
             propertyValue="101", occurredAt=2000, eventId=5)  # same eventId: not unique at HubSpot
    redelivered = {**csm, "attemptNumber": 1}
    out = normalize([csm, redelivered, created])
    assert [e["type"] for e in out] == ["crm.account.created", "crm.csm.assigned"]
    again = normalize([created, csm])
    assert [e["id"] for e in again] == [e["id"] for e in out]  # deterministic ids across batches


def test_contact_events_need_a_company() -> None:
    deal = ev(subscriptionType="deal.propertyChange", objectId=9, propertyName="dealstage", propertyValue="closedwon")
    assert normalize([deal]) == []
    out = normalize([deal], associations=Associations(lookup=lambda kind, oid: "77" if (kind, oid) == ("deal", "9") else None))
    assert out[0]["subject"] == "77"


def test_generic_object_subscriptions_and_custom_mapping() -> None:
    mapping = mapping_from({"csm_property": "hubspot_owner_id", "closed_won_stages": ["won"]})
    out = normalize([ev(subscriptionType="object.propertyChange", objectTypeId="0-2", objectId=5,
                        propertyName="hubspot_owner_id", propertyValue="202")], mapping)
    assert out[0]["type"] == "crm.csm.assigned" and out[0]["subject"] == "5"


def test_our_own_written_properties_are_not_input() -> None:
    assert normalize([ev(subscriptionType="company.propertyChange", objectId=5, propertyName="relationship_status",
                         propertyValue="client")]) == []


def test_what_the_connector_writes_is_never_input_whatever_the_mapping_file_says() -> None:
    # A renamed tag passed through, and the default ignore list replaced: without the guard, each of our
    # writes would come back as an event on whichever worker its webhook reaches, where the echo store
    # (one per process) may not know it.
    careless = mapping_from({"passthrough_properties": ["customer_tier", "relationship_reason", "industry"],
                             "ignored_properties": []})
    changes = [ev(subscriptionType="company.propertyChange", objectId=5, eventId=n, propertyName=name,
                  propertyValue="x") for n, name in enumerate(["customer_tier", "relationship_reason", "industry"])]
    assert sorted(e["data"]["name"] for e in normalize(changes, careless)) == ["customer_tier", "industry",
                                                                               "relationship_reason"]
    guarded = ignoring(careless, written_properties("customer_tier"))
    assert [e["data"]["name"] for e in normalize(changes, guarded)] == ["industry"]
    assert set(written_properties("customer_tier")) <= set(guarded.ignored_properties)
    assert ignoring(guarded, written_properties("customer_tier")) == guarded  # nothing added twice


def test_echoes_of_our_writes_are_dropped_and_counted() -> None:
    from prometheus_client import REGISTRY

    store = InMemoryLastWritten()
    store.record("companies", "5", "clientshift_plan", "premier")
    ours = ev(subscriptionType="company.propertyChange", objectId=5, propertyName="clientshift_plan",
              propertyValue="premier", changeSource="INTEGRATION", sourceId="4242")
    by_hand = {**ours, "changeSource": "CRM_UI", "sourceId": "userId:1"}  # a user set the same value
    other_app = {**ours, "sourceId": "9999"}
    other_value = {**ours, "propertyValue": "basic"}
    before = REGISTRY.get_sample_value("clientshift_hubspot_echoes_dropped_total") or 0.0
    kept = drop_echoes([ours, by_hand, other_app, other_value], store, app_id="4242")
    assert kept == [by_hand, other_app, other_value]
    assert REGISTRY.get_sample_value("clientshift_hubspot_echoes_dropped_total") == before + 1
    assert not is_echo(ours, InMemoryLastWritten(), "4242")  # nothing written: not an echo


def test_connector_writes_feed_the_echo_store() -> None:
    # The connector records each successful tag write; the ingress side consults the same store.
    store = InMemoryLastWritten(max_entries=2)
    for n in range(3):
        store.record("companies", str(n), "relationship_status", "client")
    assert store.get("companies", "0", "relationship_status") is None  # bounded
    assert store.get("companies", "2", "relationship_status") == "client"


BAD_WEBHOOKS = {
    "no subscription type": ({"objectId": 1, "occurredAt": 1000}, "subscriptionType must be a string"),
    "occurredAt as text": (ev(subscriptionType="company.creation", objectId=1, occurredAt="soon"),
                           "occurredAt must be epoch milliseconds, got 'soon'"),
    "occurredAt missing": ({"subscriptionType": "company.creation", "objectId": 1},
                           "occurredAt must be epoch milliseconds, got None"),
    "occurredAt a list": (ev(subscriptionType="company.creation", objectId=1, occurredAt=[1]), "got [1]"),
    "occurredAt past year 9000": (ev(subscriptionType="company.creation", objectId=1, occurredAt=10**20),
                                  "outside the engine's calendar"),
    "no object id": (ev(subscriptionType="company.propertyChange", propertyName="x"), "objectId must be"),
    "a list for a value": (ev(subscriptionType="company.propertyChange", objectId=1, propertyName="x",
                              propertyValue=["a"]), "propertyValue must be text or a number, got ['a']"),
    "association without ends": (ev(subscriptionType="contact.associationChange", fromObjectId=1),
                                 "toObjectId must be"),
}


@pytest.mark.parametrize("case", sorted(BAD_WEBHOOKS))
def test_what_is_not_a_webhook_event_is_named_before_normalizing(case: str) -> None:
    event, reason = BAD_WEBHOOKS[case]
    problem = webhook_problem(event)
    assert problem is not None and reason in problem
    assert webhook_problem(ev(subscriptionType="company.creation", objectId=11, occurredAt="1000")) is None


_values = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6)
           | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
_fields = {
    "subscriptionType": ["company.creation", "company.propertyChange", "deal.propertyChange",
                         "contact.associationChange", "deal.associationChange", "object.propertyChange"],
    "objectId": [1, "1"], "occurredAt": [1767225600000, "1767225600000"], "portalId": [1],
    "propertyName": ["clientshift_csm_owner_id", "dealstage", "clientshift_plan", "x"],
    "propertyValue": ["closedwon", "", "csm"], "objectTypeId": ["0-2", "0-3"],
    "associationType": ["CONTACT_TO_COMPANY", "DEAL_TO_COMPANY"], "fromObjectId": [1], "toObjectId": [2],
    "associationRemoved": [True, False], "changeSource": ["INTEGRATION"], "sourceId": ["54321"],
}
_webhooks = st.fixed_dictionaries({}, optional={k: _values | st.sampled_from(v) for k, v in _fields.items()})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_webhooks, max_size=8))
def test_normalize_takes_any_batch_of_events_that_pass_the_check(batch) -> None:
    """Before the check, one event with occurredAt "soon" (or none) failed its whole batch, and the worker
    met the batch again on every restart."""
    kept = drop_echoes([e for e in batch if webhook_problem(e) is None], InMemoryLastWritten(), "54321")
    for canonical in normalize(kept, mapping_from({"passthrough_properties": ["x"]}), Associations()):
        parse_event(canonical)  # and what comes out is a valid canonical event
