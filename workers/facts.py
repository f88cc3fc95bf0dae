"""Facts: what the rules can know about an account at an instant `now`, and when that could change.

Pure functions of (state, now, params). The change points are what makes time-based transitions
(a contract ending, a service ageing out, 90 days of silence) happen at the instant they become true,
in replay and live alike, without the rules ever reading a clock.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from workers.state import AccountState
from workers.timeutil import DAY, days_until, whole_days_since


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
    candidates = [t for t in (state.last_meeting_at, client_since) if t is not None]
    return max(candidates) if candidates else None


def compute_facts(state: AccountState, now: float, params: Mapping[str, Any]) -> dict[str, Any]:
    """The facts the status rules read. `days_since_contact` uses the client anchor known so far;
    `with_status` refines it once the status of this evaluation is decided."""
    services_window = params["professional_services_window_days"] * DAY
    orders_window = params["orders_window_days"] * DAY
    categories = params["professional_service_categories"]
    csm_plans = params["csm_plans"]
    live_orders = [o for o in state.orders.values() if not o.get("refunded") and "at" in o]
    active_plans = sorted({s["plan"] for s in state.subscriptions.values() if s.get("active")})
    active = list(_active_contracts(state, now))
    ends = [c["end"] for c in active if c.get("end") is not None]
    min_long = params["long_contract_min_days"] * DAY
    return {
        "has_csm": state.csm is not None,
        "csm_plan": any(plan in csm_plans for plan in active_plans),
        "professional_services": any(
            category in categories and 0 <= now - at < services_window for category, at in state.services),
        "long_contract": any(c.get("end") is None or c["end"] - c["start"] >= min_long for c in active),
        "ever_purchased": bool(live_orders or state.subscriptions or state.contracts or state.services),
        "orders_180d": sum(1 for o in live_orders if 0 <= now - o["at"] < orders_window),
        "meetings": state.meetings,
        "tickets": state.tickets,
        "days_since_contact": _days_since_contact(state, state.client_since if state.status == "client" else None, now),
        "contract_ends_in_days": days_until(min(ends), now) if ends else None,
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
    candidates: list[float] = []
    services_window = params["professional_services_window_days"] * DAY
    orders_window = params["orders_window_days"] * DAY
    candidates.extend(at + services_window for category, at in state.services
                      if category in params["professional_service_categories"])
    candidates.extend(o["at"] + orders_window for o in state.orders.values() if not o.get("refunded") and "at" in o)
    for contract in _open_contracts(state):
        candidates.append(contract["start"])
        end = contract.get("end")
        if end is not None:
            candidates.append(end)
            # ceil((end - t) / day) drops from b to b - 1 at end - (b - 1) days.
            candidates.extend(end - (flip - 1) * DAY for flip in day_thresholds["contract_ends_in_days"])
    anchor = contact_anchor(state, client_since if status == "client" else None)
    if anchor is not None:
        # floor((t - anchor) / day) reaches b at anchor + b days.
        candidates.extend(anchor + flip * DAY for flip in day_thresholds["days_since_contact"])
    upcoming = [t for t in candidates if t > now]
    return min(upcoming) if upcoming else None
