"""HubSpot webhook events -> canonical CloudEvents (schemas/crm-event.v1.json). Pure functions.

HubSpot delivers events out of order, in batches, at least once, and `eventId` is not unique; so a
batch is ordered by occurredAt and deduplicated on a key derived from the event's content, and that
key (hashed) is the canonical id: a redelivery yields the same id and the consumer drops it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from workers.timeutil import END_OF_TIME, START_OF_TIME

# Generic (object.*) subscriptions name the object by type id.
OBJECT_TYPE_IDS = {"0-1": "contact", "0-2": "company", "0-3": "deal", "0-5": "ticket"}


@dataclass(frozen=True)
class EventMapping:
    """Which HubSpot changes mean what. Build from a dict/YAML with `mapping_from(dict)`."""

    closed_won_stages: tuple[str, ...] = ("closedwon",)
    deal_stage_property: str = "dealstage"
    deal_amount_property: str = "amount"
    csm_property: str = "clientshift_csm_owner_id"
    plan_property: str = "clientshift_plan"
    # Other company properties passed through as crm.property.changed
    passthrough_properties: tuple[str, ...] = ()
    # Properties we write ourselves: their changes are never input.
    ignored_properties: tuple[str, ...] = ("relationship_status", "relationship_reason", "relationship_updated_at")


DEFAULT_MAPPING = EventMapping()


def mapping_from(raw: Mapping[str, Any] | None) -> EventMapping:
    """A mapping from configuration (YAML loaded to a dict); unknown keys are an error."""
    if not raw:
        return DEFAULT_MAPPING
    allowed = set(EventMapping.__dataclass_fields__)
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"unknown HubSpot mapping keys: {sorted(unknown)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return EventMapping(**values)


def ignoring(mapping: EventMapping, written: Iterable[str]) -> EventMapping:
    """The mapping with every property Clientshift writes ignored as input, whatever the mapping file
    says (a renamed tag, a replaced `ignored_properties`): a change of ours must never come back as an
    event, whichever worker its webhook reaches. The echo store (connectors.hubspot.echo) only knows
    what its own process wrote."""
    extra = tuple(dict.fromkeys(name for name in written if name not in mapping.ignored_properties))
    return replace(mapping, ignored_properties=mapping.ignored_properties + extra) if extra else mapping


@dataclass
class Associations:
    """contact/deal id -> company id, fed by association-change events and a caller's lookup."""

    lookup: Callable[[str, str], str | None] | None = None  # (object kind, object id) -> company id
    known: dict[tuple[str, str], str] = field(default_factory=dict)

    def company_of(self, kind: str, object_id: str) -> str | None:
        if (kind, object_id) in self.known:
            return self.known[(kind, object_id)]
        return self.lookup(kind, object_id) if self.lookup else None


# occurredAt must fall in the engine's calendar, in milliseconds.
_FIRST_MS, _END_MS = int(START_OF_TIME * 1000), int(END_OF_TIME * 1000)


def webhook_problem(event: Mapping[str, Any]) -> str | None:
    """Why a webhook event cannot be normalized, or None when it can.

    HubSpot always sends these fields so; anything else on the raw topic (a proxy's mistake, a hand-made
    test message) is dead-lettered with this reason, instead of failing the whole batch in `normalize`,
    which would stop the worker on every restart.
    """
    subscription = event.get("subscriptionType")
    if not isinstance(subscription, str) or "." not in subscription:
        return f"subscriptionType must be a string like 'company.propertyChange', got {_short(subscription)}"
    occurred = event.get("occurredAt")
    if isinstance(occurred, str) and occurred.isdecimal():
        occurred = int(occurred)
    if isinstance(occurred, bool) or not isinstance(occurred, int):
        return f"occurredAt must be epoch milliseconds, got {_short(event.get('occurredAt'))}"
    if not _FIRST_MS <= occurred < _END_MS:
        return f"occurredAt {occurred} is outside the engine's calendar (years 1000 to 8999)"
    value = event.get("propertyValue")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
        return f"propertyValue must be text or a number, got {_short(value)}"
    ids = ("fromObjectId", "toObjectId") if subscription.endswith(".associationChange") else ("objectId",)
    for name in ids:
        value = event.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
            return f"{name} must be a HubSpot record id, got {_short(value)}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def dedupe_key(event: Mapping[str, Any]) -> str:
    parts = [event.get("portalId"), event.get("subscriptionType"), event.get("objectTypeId"), event.get("objectId"),
             event.get("propertyName"), event.get("propertyValue"), event.get("occurredAt"),
             event.get("fromObjectId"), event.get("toObjectId"), event.get("associationRemoved")]
    return "|".join("" if p is None else str(p) for p in parts)


def order_and_dedupe(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: set[str] = set()
    out = []
    for event in sorted(events, key=lambda e: (int(e.get("occurredAt") or 0), dedupe_key(e))):
        key = dedupe_key(event)
        if key not in seen:
            seen.add(key)
            out.append(event)
    return out


def _rfc3339(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _kind_and_action(event: Mapping[str, Any]) -> tuple[str, str]:
    kind, _, action = str(event.get("subscriptionType", "")).partition(".")
    if kind == "object":
        kind = OBJECT_TYPE_IDS.get(str(event.get("objectTypeId")), str(event.get("objectTypeId")))
    return kind, action


def normalize(events: Iterable[Mapping[str, Any]], mapping: EventMapping = DEFAULT_MAPPING,
              associations: Associations | None = None) -> list[dict[str, Any]]:
    """Map a webhook batch to canonical events, ordered by time; events that mean nothing are dropped.
    Every event must pass `webhook_problem`."""
    associations = associations or Associations()
    out: list[dict[str, Any]] = []
    for event in order_and_dedupe(events):
        kind, action = _kind_and_action(event)
        if action == "associationChange":
            _learn_association(event, associations)
            continue
        made = _one(event, kind, action, mapping, associations)
        if made is not None:
            out.append(made)
    return out


def _learn_association(event: Mapping[str, Any], associations: Associations) -> None:
    association = str(event.get("associationType", ""))  # e.g. CONTACT_TO_COMPANY
    source, _, target = association.lower().partition("_to_")
    if target == "company" and source in ("contact", "deal"):
        key = (source, str(event.get("fromObjectId")))
        if event.get("associationRemoved"):
            associations.known.pop(key, None)
        else:
            associations.known[key] = str(event.get("toObjectId"))


def _one(event: Mapping[str, Any], kind: str, action: str, mapping: EventMapping,
         associations: Associations) -> dict[str, Any] | None:
    object_id = str(event.get("objectId"))
    prop = event.get("propertyName")
    value = event.get("propertyValue")
    if prop in mapping.ignored_properties:
        return None
    subject: str | None
    if kind == "company":
        subject = object_id
    elif kind in ("contact", "deal"):
        subject = associations.company_of(kind, object_id)
        if subject is None:
            return None  # no account to attribute it to (yet)
    else:
        return None
    if kind == "company" and action == "creation":
        return _event(event, "crm.account.created", subject, {"kind": "company"})
    if action != "propertyChange":
        return None
    if kind == "deal" and prop == mapping.deal_stage_property and value in mapping.closed_won_stages:
        return _event(event, "crm.order.placed", subject, {"order_id": f"deal-{object_id}"})
    if kind == "company" and prop == mapping.csm_property:
        if value in (None, ""):
            return _event(event, "crm.csm.unassigned", subject, {})
        return _event(event, "crm.csm.assigned", subject, {"owner_id": str(value)})
    if kind == "company" and prop == mapping.plan_property and value not in (None, ""):
        return _event(event, "crm.subscription.changed", subject,
                      {"subscription_id": f"company-{object_id}-plan", "plan": str(value)})
    if kind == "company" and prop in mapping.passthrough_properties:
        return _event(event, "crm.property.changed", subject, {"name": prop, "value": value})
    return None


def _event(event: Mapping[str, Any], type_: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
    key = dedupe_key(event)
    return {
        "specversion": "1.0",
        "id": "hs-" + hashlib.sha256(f"{type_}|{key}".encode()).hexdigest()[:32],
        "source": f"hubspot/portal/{event.get('portalId')}",
        "type": type_,
        "subject": subject,
        "time": _rfc3339(int(event["occurredAt"])),
        "data": data,
    }
