"""Echo suppression: our own property writes come back as propertyChange webhooks; drop them.

An event is an echo when it was written through an integration (changeSource API/INTEGRATION, or
sourceId naming our app) *and* it carries the value we last wrote to that record's property. Both
checks matter: the source alone would also drop another integration's writes on shared apps, the
value alone would drop a user setting the same value by hand in the UI.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Iterable, Mapping, Protocol

from connectors.hubspot import metrics

_INTEGRATION_SOURCES = {"API", "INTEGRATION", "CRM_API"}
_OBJECT_TYPES = {"company": "companies", "contact": "contacts", "deal": "deals", "ticket": "tickets"}


class LastWritten(Protocol):
    """What the connector last wrote, per (object type, record id, property)."""

    def record(self, object_type: str, record_id: str, prop: str, value: str) -> None: ...

    def get(self, object_type: str, record_id: str, prop: str) -> str | None: ...


class InMemoryLastWritten:
    """Bounded LRU; enough for one process (ingress and connector in the same process, or tests)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._data: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def record(self, object_type: str, record_id: str, prop: str, value: str) -> None:
        with self._lock:
            key = (object_type, str(record_id), prop)
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def get(self, object_type: str, record_id: str, prop: str) -> str | None:
        with self._lock:
            return self._data.get((object_type, str(record_id), prop))


def object_type_of(subscription_type: str) -> str:
    head = subscription_type.split(".", 1)[0]
    return _OBJECT_TYPES.get(head, head)


def is_echo(event: Mapping[str, Any], store: LastWritten, app_id: str | None) -> bool:
    """True when a webhook event reports a write this connector made."""
    subscription = str(event.get("subscriptionType", ""))
    if not subscription.endswith(".propertyChange"):
        return False
    source = str(event.get("changeSource") or "").upper()
    source_id = str(event.get("sourceId") or "")
    ours = bool(app_id) and (source_id == str(app_id) or source_id.endswith(f":{app_id}"))
    if not ours and source not in _INTEGRATION_SOURCES:
        return False
    if app_id and source_id and not ours:
        return False  # written by another app
    written = store.get(object_type_of(subscription), str(event.get("objectId")), str(event.get("propertyName")))
    return written is not None and written == event.get("propertyValue")


def drop_echoes(events: Iterable[Mapping[str, Any]], store: LastWritten, app_id: str | None) -> list[Mapping[str, Any]]:
    """The events that are not our own writes; each dropped one is counted."""
    kept = []
    for event in events:
        if is_echo(event, store, app_id):
            metrics.ECHOES_DROPPED.inc()
        else:
            kept.append(event)
    return kept
