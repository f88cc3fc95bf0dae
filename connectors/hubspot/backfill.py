"""Backfill: read every existing company through the search API and emit canonical events.

The search API stops at 10,000 results per query, so instead of paging one query past that we run a
series of queries ordered by hs_object_id ascending, each starting after the last id seen. The last id
is checkpointed (a small file) after each page, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from hubspot.crm.objects import Filter, FilterGroup, PublicObjectSearchRequest

from connectors.hubspot import metrics
from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.settings import HubSpotSettings, settings_from

PAGE = 200
WINDOW = 10_000  # results one search query can page through


@dataclass
class BackfillStats:
    records: int = 0
    events: int = 0
    requests: int = 0
    last_id: int | None = None
    resumed_from: int | None = None


def _load_checkpoint(path: Path | None) -> int | None:
    if path is None or not path.exists():
        return None
    return int(json.loads(path.read_text(encoding="utf-8"))["last_hs_object_id"])


def _save_checkpoint(path: Path | None, last_id: int) -> None:
    if path is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"last_hs_object_id": last_id}), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint


def company_events(record: Any, portal: str, settings: HubSpotSettings, plan_property: str,
                   now_ms: int) -> list[dict[str, Any]]:
    """Canonical events describing one company as it stands now."""
    props = record.properties or {}
    rid = str(record.id)
    created = props.get("createdate")
    created_at = _iso(created) if created else _iso_ms(now_ms)
    source = f"hubspot/portal/{portal}"
    events = [{"specversion": "1.0", "id": f"hs-backfill-{rid}-created", "source": source,
               "type": "crm.account.created", "subject": rid, "time": created_at,
               "data": {"kind": "company", **({"name": props["name"]} if props.get("name") else {})}}]
    snapshot = _iso_ms(now_ms)
    csm = props.get(settings.csm_property)
    if csm:
        events.append({"specversion": "1.0", "id": f"hs-backfill-{rid}-csm-{csm}", "source": source,
                       "type": "crm.csm.assigned", "subject": rid, "time": snapshot, "data": {"owner_id": str(csm)}})
    plan = props.get(plan_property)
    if plan:
        events.append({"specversion": "1.0", "id": f"hs-backfill-{rid}-plan-{plan}", "source": source,
                       "type": "crm.subscription.changed", "subject": rid, "time": snapshot,
                       "data": {"subscription_id": f"company-{rid}-plan", "plan": str(plan)}})
    return events


def backfill_companies(client_or_settings: HubSpotClient | HubSpotSettings | Mapping[str, Any],
                       emit: Callable[[dict[str, Any]], None], checkpoint: Path | None = None,
                       progress: Callable[[int], None] | None = None, *, portal: str = "unknown",
                       plan_property: str = "clientshift_plan",
                       clock: Callable[[], float] = time.time) -> BackfillStats:
    """Emit canonical events for every company; resumable from `checkpoint`. `progress(n)` gets the
    running count of records read."""
    client = client_or_settings if isinstance(client_or_settings, HubSpotClient) else \
        HubSpotClient(settings_from(client_or_settings))
    settings = client.settings
    stats = BackfillStats(resumed_from=_load_checkpoint(checkpoint))
    last_id = stats.resumed_from
    properties = ["hs_object_id", "name", "domain", "createdate", settings.csm_property, plan_property]
    search = client.api.crm.objects.search_api.do_search_with_http_info
    now_ms = int(clock() * 1000)
    while True:
        # One query per window: hs_object_id > last seen, ascending, paged by `after` below 10,000.
        filters = [Filter(property_name="hs_object_id", operator="GT", value=str(last_id))] if last_id is not None else []
        after: str | None = None
        window_count = 0
        exhausted = False
        while True:
            request = PublicObjectSearchRequest(filter_groups=[FilterGroup(filters=filters)] if filters else [],
                                                sorts=["hs_object_id"], properties=properties, limit=PAGE, after=after)
            response = client.call("companies.search", search, settings.company_object, request, search=True)
            stats.requests += 1
            results = response.data.results or []
            for record in results:
                for event in company_events(record, portal, settings, plan_property, now_ms):
                    emit(event)
                    stats.events += 1
                stats.records += 1
                last_id = int(record.id)
            metrics.BACKFILL_RECORDS.inc(len(results))
            window_count += len(results)
            if results:
                _save_checkpoint(checkpoint, last_id)  # type: ignore[arg-type]
                stats.last_id = last_id
            if progress:
                progress(stats.records)
            paging = response.data.paging
            has_next = bool(paging and paging.next and paging.next.after)
            if not results or not has_next:
                exhausted = True
                break
            if window_count + PAGE > WINDOW:
                break  # the next page would cross the 10,000 wall: start a new query after last_id
            after = paging.next.after
        if exhausted:
            return stats


def _iso(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _iso_ms(int(value))
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
