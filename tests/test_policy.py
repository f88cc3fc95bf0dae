"""The default policy, fact by fact, rule by rule, with the time edges at exactly 60/90/180/365 days."""

from datetime import datetime, timedelta, timezone

import pytest

from factory import ev
from workers.facts import compute_facts
from workers.replay import replay
from workers.rules import load_policy
from workers.state import AccountState, apply_event
from workers.timeutil import parse_rfc3339

POLICY = load_policy()
T0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def at(days: float = 0, **delta) -> str:
    return (T0 + timedelta(days=days, **delta)).isoformat().replace("+00:00", "Z")


def run(*events, as_of: str | None = None):
    return replay(list(events), POLICY, as_of=parse_rfc3339(as_of) if as_of else None)


def facts_after(*events, now: str):
    state = AccountState("a")
    for event in events:
        state = apply_event(state, event, event.time)
    return compute_facts(state, parse_rfc3339(now), POLICY.params)


def final(result, account="a"):
    state = result.accounts[account]
    return state.status, state.flags


def tasks(result):
    return [(a.kind, a.at) for a in result.actions if a.type == "task"]


# --- facts ---------------------------------------------------------------------------------------

def test_has_csm_follows_assign_and_unassign():
    assigned = ev("csm.assigned", "a", at(0), owner_id="7")
    assert facts_after(assigned, now=at(1))["has_csm"] is True
    assert facts_after(assigned, ev("csm.unassigned", "a", at(2)), now=at(3))["has_csm"] is False


@pytest.mark.parametrize("plan,expected", [("csm", True), ("success", True), ("premier", True), ("standard", False)])
def test_csm_plan_needs_an_active_subscription_on_a_csm_plan(plan, expected):
    started = ev("subscription.started", "a", at(0), subscription_id="s", plan=plan)
    assert facts_after(started, now=at(1))["csm_plan"] is expected
    cancelled = ev("subscription.cancelled", "a", at(2), subscription_id="s")
    assert facts_after(started, cancelled, now=at(3))["csm_plan"] is False


def test_plan_change_away_from_csm_plan_ends_csm_plan():
    events = [ev("subscription.started", "a", at(0), subscription_id="s", plan="csm"),
              ev("subscription.changed", "a", at(5), subscription_id="s", plan="standard")]
    assert facts_after(*events, now=at(6))["csm_plan"] is False


def test_professional_services_last_exactly_365_days():
    bought = ev("service.purchased", "a", at(0), service="consulting")
    assert facts_after(bought, now=at(365, seconds=-1))["professional_services"] is True
    assert facts_after(bought, now=at(365))["professional_services"] is False


def test_services_outside_the_categories_do_not_count():
    assert facts_after(ev("service.purchased", "a", at(0), service="onboarding"), now=at(1))[
        "professional_services"] is False


@pytest.mark.parametrize("end,expected", [("2027-01-01", True), ("2026-12-31", False), (None, True)])
def test_long_contract_means_at_least_365_days_or_open_ended(end, expected):
    signed = ev("contract.signed", "a", at(0), contract_id="c", start="2026-01-01", end=end)
    assert facts_after(signed, now=at(1))["long_contract"] is expected


def test_a_contract_is_active_only_from_start_until_end_and_not_after_ended():
    signed = ev("contract.signed", "a", at(0), contract_id="c", start="2026-03-01", end=None)
    assert facts_after(signed, now="2026-02-28T23:59:59Z")["long_contract"] is False
    assert facts_after(signed, now="2026-03-01T00:00:00Z")["long_contract"] is True
    ended = ev("contract.ended", "a", at(100), contract_id="c")
    assert facts_after(signed, ended, now=at(101))["long_contract"] is False


def test_contract_ends_in_days_is_the_nearest_active_end_or_null():
    a = ev("contract.signed", "a", at(0), contract_id="c1", start="2026-01-01", end="2026-12-01")
    b = ev("contract.signed", "a", at(0), contract_id="c2", start="2026-01-01", end="2026-06-01")
    assert facts_after(a, b, now="2026-05-02T00:00:00Z")["contract_ends_in_days"] == 30
    assert facts_after(now="2026-05-02T00:00:00Z")["contract_ends_in_days"] is None


def test_ever_purchased_ignores_refunded_orders():
    order = ev("order.placed", "a", at(0), order_id="o")
    assert facts_after(order, now=at(1))["ever_purchased"] is True
    assert facts_after(order, ev("order.refunded", "a", at(1), order_id="o"), now=at(2))["ever_purchased"] is False
    # A refund that arrives before its order still wins.
    assert facts_after(ev("order.refunded", "a", at(0), order_id="o"), ev("order.placed", "a", at(1), order_id="o"),
                       now=at(2))["ever_purchased"] is False


def test_orders_180d_counts_live_orders_in_the_window():
    orders = [ev("order.placed", "a", at(i), order_id=f"o{i}") for i in range(3)]
    assert facts_after(*orders, now=at(180, seconds=-1))["orders_180d"] == 3
    assert facts_after(*orders, now=at(180))["orders_180d"] == 2  # the first order is exactly 180 days old
    assert facts_after(*orders, now=at(182))["orders_180d"] == 0
    refund = ev("order.refunded", "a", at(3), order_id="o2")
    assert facts_after(*orders, refund, now=at(4))["orders_180d"] == 2


def test_raw_properties_reach_the_rules():
    changed = ev("property.changed", "a", at(0), name="industry", value="retail")
    assert facts_after(changed, now=at(1))["properties"] == {"industry": "retail"}


# --- status ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("event,status", [
    (ev("csm.assigned", "a", at(0), owner_id="1"), "client"),
    (ev("subscription.started", "a", at(0), subscription_id="s", plan="premier"), "client"),
    (ev("service.purchased", "a", at(0), service="advisory"), "client"),
    (ev("contract.signed", "a", at(0), contract_id="c", start="2026-01-01", end=None), "client"),
    (ev("subscription.started", "a", at(0), subscription_id="s", plan="basic"), "customer"),
    (ev("order.placed", "a", at(0), order_id="o"), "customer"),
    (ev("meeting.held", "a", at(0)), "prospect"),
])
def test_status_first_match_wins(event, status):
    assert final(run(event))[0] == status


def test_every_status_change_writes_a_tag_with_the_deciding_rule():
    result = run(ev("account.created", "a", at(0), name="A"), ev("order.placed", "a", at(1), order_id="o"),
                 ev("csm.assigned", "a", at(2), owner_id="9"), ev("meeting.held", "a", at(3)))
    tags = [(a.value, a.reason.split(":")[0]) for a in result.actions if a.type == "tag"]
    assert tags == [("prospect", "no_purchase"), ("customer", "has_purchased"), ("client", "formal_relationship")]


# --- flags and the tasks they raise ------------------------------------------------------------------

def test_at_risk_after_more_than_90_days_without_contact_fires_without_new_events():
    result = run(ev("csm.assigned", "a", at(0), owner_id="1"), ev("meeting.held", "a", at(10)),
                 as_of=at(10 + 90))
    assert final(result) == ("client", ())  # exactly 90 days: not yet
    result = run(ev("csm.assigned", "a", at(0), owner_id="1"), ev("meeting.held", "a", at(10)),
                 as_of=at(10 + 91))
    assert final(result) == ("client", ("at_risk",))
    assert tasks(result) == [("welcome_client", at(0)), ("at_risk_checkin", at(101))]


def test_becoming_client_counts_as_contact():
    result = run(ev("meeting.held", "a", at(0)), ev("csm.assigned", "a", at(50), owner_id="1"), as_of=at(140))
    assert final(result) == ("client", ())  # 90 days since becoming client on day 50
    result = run(ev("meeting.held", "a", at(0)), ev("csm.assigned", "a", at(50), owner_id="1"), as_of=at(141))
    assert final(result) == ("client", ("at_risk",))


def test_at_risk_when_contract_ends_within_60_days_exactly():
    signed = ev("contract.signed", "a", "2026-01-01T00:00:00Z", contract_id="c", start="2026-01-01", end="2027-06-01")
    meeting = ev("meeting.held", "a", "2027-03-31T00:00:00Z")
    before = run(signed, meeting, as_of="2027-04-01T23:59:59Z")  # 61 days (rounded up) left
    assert final(before) == ("client", ())
    edge = run(signed, meeting, as_of="2027-04-02T00:00:00Z")  # exactly 60 days left
    assert final(edge) == ("client", ("at_risk",))
    assert ("at_risk_checkin", "2027-04-02T00:00:00Z") in tasks(edge)


def test_at_risk_check_in_only_when_the_flag_goes_up():
    result = run(ev("csm.assigned", "a", at(0), owner_id="1"), ev("ticket.opened", "a", at(95)),
                 ev("ticket.opened", "a", at(96)), as_of=at(200))
    assert [k for k, _ in tasks(result)].count("at_risk_checkin") == 1


def test_upgrade_candidate_at_three_orders_in_180_days_and_offer_once():
    orders = [ev("order.placed", "a", at(d), order_id=f"o{d}") for d in (0, 60, 120, 150)]
    result = run(*orders)
    assert final(result) == ("customer", ("upgrade_candidate",))
    assert [k for k, _ in tasks(result)] == ["offer_csm_plan"]
    assert tasks(result)[0][1] == at(120)
    # The window slides: 180 days after the second order only two remain in it.
    later = run(*orders, as_of=at(60 + 180))
    assert final(later) == ("customer", ())


def test_client_whose_contract_lapses_and_csm_leaves_gets_a_retention_review():
    result = run(ev("contract.signed", "a", at(0), contract_id="c", start="2026-01-01", end="2027-02-01"),
                 ev("csm.assigned", "a", at(1), owner_id="42", owner_name="Dana"),
                 ev("meeting.held", "a", at(300)),
                 ev("csm.unassigned", "a", at(320)),
                 as_of="2027-03-01T00:00:00Z")
    assert final(result)[0] == "customer"
    review = [a for a in result.actions if a.kind == "retention_review"]
    assert len(review) == 1
    assert review[0].at == "2027-02-01T00:00:00Z"  # fired by the contract end, no event that day
    assert review[0].trigger == "deadline:2027-02-01T00:00:00Z"
    assert review[0].priority == "HIGH"


def test_professional_services_ageing_out_demotes_without_new_events():
    result = run(ev("service.purchased", "a", at(0), service="implementation"), as_of=at(366))
    assert final(result)[0] == "customer"
    # Silent for 91 days first (at risk), then the service ages out on day 365 exactly.
    assert tasks(result) == [("welcome_client", at(0)), ("at_risk_checkin", at(91)), ("retention_review", at(365))]


def test_welcome_task_carries_csm_owner_and_rules_file_wording():
    result = run(ev("account.created", "a", at(0), name="Acme"), ev("csm.assigned", "a", at(1), owner_id="77"))
    (welcome,) = [a for a in result.actions if a.type == "task"]
    assert welcome.title == "Welcome Acme as a client"
    assert welcome.owner_id == "77"  # the task goes to the CSM whose assignment made the account a client
    assert welcome.due == at(1 + 3)
    result = run(ev("csm.assigned", "a", at(0), owner_id="77"), ev("csm.unassigned", "a", at(1)),
                 ev("service.purchased", "a", at(2), service="consulting"))
    assert [a.owner_id for a in result.actions if a.kind == "welcome_client"] == ["77", None]
