"""Facts: what the rules can know about an account at an instant `now`, and when that could change.

Pure functions of (state, now, params). The change points are what makes time-based transitions
(a contract ending, a service ageing out, 90 days of silence) happen at the instant they become true,
in replay and live alike, without the rules ever reading a clock.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping

from workers.state import AccountState
from workers.timeutil import DAY, END_OF_TIME, days_until, whole_days_since


def _open_contracts(state: AccountState) -> Iterator[Mapping[str, Any]]:
    """Signed and not ended (an `ended` for a contract never signed leaves no start)."""
    return (c for c in state.contracts.values() if not c.get("ended") and "start" in c)


def _active_contracts(state: AccountState, now: float) -> Iterator[Mapping[str, Any]]:
    for contract in _open_contracts(state):
        end = contract.get("end")
        if contract["start"] <= now and (end is None or end > now):
            yield contract


def contact_anchor(state: AccountState, client_since: float | None) -> float | None:
    """Last meeting, or becoming a client if that is later."""
    last_meeting = state.last_meeting_at
    if client_since is None:
        return last_meeting
    return client_since if last_meeting is None or client_since > last_meeting else last_meeting


def compute_facts(state: AccountState, now: float, params: Mapping[str, Any]) -> dict[str, Any]:
    """The facts the status rules read. `days_since_contact` uses the client anchor known so far;
    `with_status` refines it once the status of this evaluation is decided.

    One pass over each collection with plain loops: this runs for every evaluation (an event, a
    deadline) and was the engine's largest cost written with comprehensions and `any`."""
    live_orders = orders_180d = 0
    orders_window = params["orders_window_days"] * DAY
    for order in state.orders.values():
        if not order.get("refunded") and "at" in order:
            live_orders += 1
            if 0 <= now - order["at"] < orders_window:
                orders_180d += 1
    active_plans = sorted({s["plan"] for s in state.subscriptions.values() if s.get("active")})
    csm_plans = params["csm_plans"]
    csm_plan = False
    for plan in active_plans:
        if plan in csm_plans:
            csm_plan = True
            break
    professional_services = False
    if state.services:
        services_window = params["professional_services_window_days"] * DAY
        categories = params["professional_service_categories"]
        for category, at in state.services:
            if category in categories and 0 <= now - at < services_window:
                professional_services = True
                break
    long_contract = False
    nearest_end: float | None = None
    if state.contracts:
        min_long = params["long_contract_min_days"] * DAY
        for contract in _active_contracts(state, now):
            end = contract.get("end")
            if end is None:
                long_contract = True
                continue
            if end - contract["start"] >= min_long:
                long_contract = True
            if nearest_end is None or end < nearest_end:
                nearest_end = end
    return {
        "has_csm": state.csm is not None,
        "csm_plan": csm_plan,
        "professional_services": professional_services,
        "long_contract": long_contract,
        "ever_purchased": bool(live_orders or state.subscriptions or state.contracts or state.services),
        "orders_180d": orders_180d,
        "meetings": state.meetings,
        "tickets": state.tickets,
        "days_since_contact": _days_since_contact(state, state.client_since if state.status == "client" else None, now),
        "contract_ends_in_days": None if nearest_end is None else days_until(nearest_end, now),
        "account_kind": state.kind or "",
        "active_plans": active_plans,
        "properties": state.properties,  # read-only: states are never mutated
    }


def with_status(facts: dict[str, Any], state: AccountState, status: str, client_since: float | None,
                now: float) -> dict[str, Any]:
    """The facts flag rules read: the status rules' facts plus the status just decided."""
    return {**facts, "status": status,
            "days_since_contact": _days_since_contact(state, client_since if status == "client" else None, now)}


def _days_since_contact(state: AccountState, client_since: float | None, now: float) -> int | None:
    anchor = contact_anchor(state, client_since)
    return None if anchor is None else whole_days_since(anchor, now)


def next_change(state: AccountState, status: str, client_since: float | None, now: float,
                params: Mapping[str, Any],
                day_thresholds: Mapping[str, tuple[int, ...]]) -> float | None:
    """The earliest instant after `now` at which some fact can change with no new event, or None.

    Day counters change every day, so rather than waking daily we wake where a counter reaches a value
    at which some rule's answer flips (see workers.rules.policy.day_thresholds).
    """
    # The smallest candidate after `now`, kept as they come rather than gathered into a list: this runs
    # for every evaluation.
    soonest = math.inf
    if state.services:
        services_window = params["professional_services_window_days"] * DAY
        categories = params["professional_service_categories"]
        for category, at in state.services:
            if category in categories and now < at + services_window < soonest:
                soonest = at + services_window
    orders_window = params["orders_window_days"] * DAY
    for order in state.orders.values():
        if not order.get("refunded") and "at" in order and now < order["at"] + orders_window < soonest:
            soonest = order["at"] + orders_window
    if state.contracts:
        ends_flips = day_thresholds["contract_ends_in_days"]
        for contract in _open_contracts(state):
            start = contract["start"]
            if now < start < soonest:
                soonest = start
            end = contract.get("end")
            if end is not None:
                if now < end < soonest:
                    soonest = end
                # ceil((end - t) / day) drops from b to b - 1 at end - (b - 1) days.
                for flip in ends_flips:
                    if now < end - (flip - 1) * DAY < soonest:
                        soonest = end - (flip - 1) * DAY
    anchor = contact_anchor(state, client_since if status == "client" else None)
    if anchor is not None:
        # floor((t - anchor) / day) reaches b at anchor + b days.
        for flip in day_thresholds["days_since_contact"]:
            if now < anchor + flip * DAY < soonest:
                soonest = anchor + flip * DAY
    return None if soonest >= END_OF_TIME else soonest  # also when there is none (math.inf)
