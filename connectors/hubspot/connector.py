"""The HubSpot connector: tags become record properties, tasks become HubSpot tasks.

Per `apply` call, per object type (companies / contacts):
1. one batch read per 100 accounts resolves each account to a record (by record id, or by a unique
   `id_property`) and returns the current tag values at the same time;
2. tags whose value is already right are DUPLICATE (compare before write); the rest go out in batch
   updates of up to 100 records, with per-record results from HTTP 207 answers;
3. tasks: one search per 100 action keys (IN filter on the task key property) finds tasks created
   before (by this or an earlier process); the rest are created in batches of up to 100 with the key
   stored on the task, associated to their record.
The connector never loops on retries: each failure becomes an outcome (with Retry-After when HubSpot
gave one) and connectors/retry.py decides. A spent daily quota raises ConnectorPaused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from hubspot.crm.objects import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicAssociationsForObject,
    PublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
    SimplePublicObjectInputForCreate,
)

from connectors.base import ActionResult, ConnectorPaused, Outcome
from connectors.hubspot import metrics
from connectors.hubspot.client import HubSpotClient, HubSpotError
from connectors.hubspot.echo import InMemoryLastWritten, LastWritten
from connectors.hubspot.properties import ensure_properties
from connectors.hubspot.settings import HubSpotSettings, settings_from
from workers.actions import TAG, TASK, Action

BATCH_LIMIT = 100  # HubSpot batch endpoints take at most 100 inputs
SEARCH_IN_LIMIT = 100  # values per IN filter we send in one search
SEARCH_PAGE = 200  # the search API's maximum page size
T = TypeVar("T")


@dataclass
class _Record:
    id: str
    properties: dict[str, str | None] = field(default_factory=dict)


class HubSpotConnector:
    name = "hubspot"

    def __init__(self, settings: HubSpotSettings, client: HubSpotClient | None = None,
                 last_written: LastWritten | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.client = client or HubSpotClient(settings)
        self.last_written: LastWritten = last_written if last_written is not None else InMemoryLastWritten()
        self._wall_clock = wall_clock
        self._started = False
        self._created_keys: set[str] = set()  # covers the search index's lag within one process

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HubSpotConnector:
        """Entry point factory: `settings["env"]` is the environment mapping; `settings["last_written"]`,
        when given, is the echo store the worker's webhook normalizer reads."""
        return cls(settings_from(settings), last_written=settings.get("last_written"))

    def __repr__(self) -> str:
        return f"HubSpotConnector(base_url={self.settings.base_url!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, tag_names: tuple[str, ...] = ("relationship_status",)) -> None:
        """Create the properties we write if missing (idempotent). Raises HubSpotError on failure."""
        if self.settings.ensure_properties:
            ensure_properties(self.client, self.settings, tag_names)
        self._started = True

    def close(self) -> None:
        self.client.close()

    # -- apply -----------------------------------------------------------------------------------

    def apply(self, actions: Sequence[Action]) -> list[ActionResult]:
        results: dict[int, ActionResult] = {}
        indexed = list(enumerate(actions))
        try:
            if not self._started:
                tags = tuple(dict.fromkeys(a.name for a in actions if a.type == TAG and a.name))
                self.start(tags or ("relationship_status",))
            by_object: dict[str, list[tuple[int, Action]]] = {}
            for index, action in indexed:
                if action.type not in (TAG, TASK):
                    results[index] = ActionResult(action, Outcome.PERMANENT, f"unknown action type {action.type!r}")
                    continue
                by_object.setdefault(self.settings.object_for(action.account_kind), []).append((index, action))
            for object_type, items in by_object.items():
                self._apply_object(object_type, items, results)
        except HubSpotError as exc:
            # Start-up (property creation) failed: nothing was attempted for the pending actions.
            self._raise_if_paused(exc)
            for index, action in indexed:
                results.setdefault(index, self._failure(action, exc))
        out = [results[i] for i, _ in indexed]
        for result in out:
            metrics.ACTIONS.labels(result.action.type, result.outcome.value).inc()
        return out

    def _apply_object(self, object_type: str, items: list[tuple[int, Action]],
                      results: dict[int, ActionResult]) -> None:
        tag_names = sorted({a.name for _, a in items if a.type == TAG and a.name})
        records = self._resolve(object_type, [a.account for _, a in items], tag_names, items, results)
        tags = [(i, a) for i, a in items if a.type == TAG and i not in results]
        tasks = [(i, a) for i, a in items if a.type == TASK and i not in results]
        self._write_tags(object_type, tags, records, results)
        self._create_tasks(object_type, tasks, records, results)

    # -- resolve accounts to records -------------------------------------------------------------

    def _resolve(self, object_type: str, accounts: list[str], tag_names: list[str],
                 items: list[tuple[int, Action]], results: dict[int, ActionResult]) -> dict[str, _Record]:
        """Account id -> record (with current tag values). Unresolvable accounts get their outcome."""
        id_property = self.settings.id_property
        wanted = list(tag_names) + ([id_property] if id_property else [])
        records: dict[str, _Record] = {}
        failed: dict[str, HubSpotError] = {}
        for chunk in _chunks(list(dict.fromkeys(accounts)), BATCH_LIMIT):
            request = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=a) for a in chunk], properties=wanted,
                properties_with_history=[], id_property=id_property)
            try:
                response = self.client.call(f"{object_type}.batch.read",
                                            self.client.api.crm.objects.batch_api.read_with_http_info,
                                            object_type, request)
            except HubSpotError as exc:
                self._raise_if_paused(exc)
                failed.update({a: exc for a in chunk})
                continue
            for obj in response.data.results or []:
                props = dict(obj.properties or {})
                account = props.get(id_property) if id_property else obj.id
                if account is not None:
                    records[str(account)] = _Record(obj.id, props)
        for index, action in items:
            if action.account in failed:
                results[index] = self._failure(action, failed[action.account])
            elif action.account not in records:
                how = f"{id_property}={action.account!r}" if id_property else f"id {action.account}"
                results[index] = ActionResult(action, Outcome.PERMANENT, f"no {object_type} record with {how}")
        return records

    # -- tags ------------------------------------------------------------------------------------

    def _write_tags(self, object_type: str, tags: list[tuple[int, Action]], records: dict[str, _Record],
                    results: dict[int, ActionResult]) -> None:
        # One write per record and property: HubSpot rejects a batch naming a record twice, and the
        # last decision in the batch is the one that should stand.
        last: dict[tuple[str, str], tuple[int, Action]] = {}
        for index, action in tags:
            if not action.name or action.value is None:
                results[index] = ActionResult(action, Outcome.PERMANENT, "tag action without name/value")
                continue
            last[(records[action.account].id, action.name)] = (index, action)
        winners = {index for index, _ in last.values()}
        pending: dict[str, list[tuple[int, Action]]] = {}
        for index, action in tags:
            if index in results:
                continue
            if index not in winners:
                results[index] = ActionResult(action, Outcome.DUPLICATE, "superseded by a later action in the batch")
                continue
            record = records[action.account]
            if record.properties.get(action.name) == action.value:  # type: ignore[arg-type]  # a tag has a name
                results[index] = ActionResult(action, Outcome.DUPLICATE, f"{action.name} already {action.value}")
                continue
            pending.setdefault(record.id, []).append((index, action))
        for chunk in _chunks(list(pending.items()), BATCH_LIMIT):
            self._update_chunk(object_type, chunk, results)

    def _properties_for(self, actions: Iterable[Action]) -> dict[str, str]:
        props: dict[str, str] = {}
        for action in actions:
            props[action.name] = action.value  # type: ignore[index,assignment]  # a tag has both
            props[self.settings.reason_property] = action.reason
            props[self.settings.updated_at_property] = action.at
        return props

    def _update_chunk(self, object_type: str, chunk: list[tuple[str, list[tuple[int, Action]]]],
                      results: dict[int, ActionResult]) -> None:
        inputs = [SimplePublicObjectBatchInput(id=record_id, properties=self._properties_for(a for _, a in acts))
                  for record_id, acts in chunk]
        try:
            response = self.client.call(f"{object_type}.batch.update",
                                        self.client.api.crm.objects.batch_api.update_with_http_info,
                                        object_type, BatchInputSimplePublicObjectBatchInput(inputs=inputs))
        except HubSpotError as exc:
            self._raise_if_paused(exc)
            if exc.status == 400 and len(chunk) > 1:
                # A 400 names one bad input but fails them all: send each alone to isolate it.
                for single in chunk:
                    self._update_chunk(object_type, [single], results)
                return
            for _, acts in chunk:
                for index, action in acts:
                    results[index] = self._failure(action, exc)
            return
        done = {obj.id for obj in response.data.results or []}
        errors = _errors_by_id(getattr(response.data, "errors", None))
        for record_id, acts in chunk:
            for index, action in acts:
                if record_id in done:
                    self.last_written.record(object_type, record_id, action.name, action.value)  # type: ignore[arg-type]
                    results[index] = ActionResult(action, Outcome.DONE, f"{action.name}={action.value}")
                elif record_id in errors:
                    results[index] = self._record_failure(action, errors[record_id])
                else:
                    # Neither done nor named in an error: HubSpot did not say, so try again.
                    results[index] = ActionResult(action, Outcome.RETRYABLE, "record missing from batch result")

    # -- tasks -----------------------------------------------------------------------------------

    def _create_tasks(self, object_type: str, tasks: list[tuple[int, Action]], records: dict[str, _Record],
                      results: dict[int, ActionResult]) -> None:
        if not tasks:
            return
        key_property = self.settings.task_key_property
        # Two actions with one key in a batch are one task.
        first: dict[str, int] = {}
        for index, action in tasks:
            if action.key in first or action.key in self._created_keys:
                results[index] = ActionResult(action, Outcome.DUPLICATE, "task already created for this key")
            else:
                first[action.key] = index
        keys = list(first)
        existing: set[str] = set()
        for chunk in _chunks(keys, SEARCH_IN_LIMIT):
            try:
                existing |= self._existing_task_keys(chunk)
            except HubSpotError as exc:
                self._raise_if_paused(exc)
                for key in chunk:
                    index = first.pop(key)
                    results[index] = self._failure(dict(tasks)[index], exc)
        to_create: list[tuple[int, Action]] = []
        actions = dict(tasks)
        for key, index in first.items():
            if key in existing:
                self._created_keys.add(key)
                results[index] = ActionResult(actions[index], Outcome.DUPLICATE, f"task with {key_property} exists")
            else:
                to_create.append((index, actions[index]))
        for batch in _chunks(to_create, BATCH_LIMIT):
            self._create_chunk(object_type, batch, records, results)

    def _existing_task_keys(self, keys: list[str]) -> set[str]:
        key_property = self.settings.task_key_property
        found: set[str] = set()
        after: str | None = None
        while True:
            request = PublicObjectSearchRequest(
                filter_groups=[FilterGroup(filters=[Filter(property_name=key_property, operator="IN", values=keys)])],
                properties=[key_property], sorts=["hs_object_id"], limit=SEARCH_PAGE, after=after)
            response = self.client.call("tasks.search", self.client.api.crm.objects.search_api.do_search_with_http_info,
                                        "tasks", request, search=True)
            for obj in response.data.results or []:
                value = (obj.properties or {}).get(key_property)
                if value:
                    found.add(value)
            paging = response.data.paging
            if not (paging and paging.next and paging.next.after):
                return found
            after = paging.next.after

    def _task_input(self, object_type: str, action: Action, record: _Record) -> dict[str, Any]:
        settings = self.settings
        properties = {
            "hs_task_subject": action.title or action.kind or "Clientshift task",
            "hs_task_body": action.body or "",
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": (action.priority or "NONE").upper(),
            "hs_timestamp": action.due or action.at,
            settings.task_key_property: action.key,
        }
        if action.owner_id:
            properties["hubspot_owner_id"] = action.owner_id
        type_id = (settings.task_contact_association_type if object_type == settings.person_object
                   else settings.task_company_association_type)
        associations = [PublicAssociationsForObject(
            to=PublicObjectId(id=record.id),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=type_id)])]
        return {"properties": properties, "associations": associations}

    def _create_chunk(self, object_type: str, chunk: list[tuple[int, Action]], records: dict[str, _Record],
                      results: dict[int, ActionResult]) -> None:
        key_property = self.settings.task_key_property
        if len(chunk) == 1:
            self._create_one(object_type, chunk[0], records, results)
            return
        inputs = [SimplePublicObjectBatchInputForCreate(**self._task_input(object_type, a, records[a.account]))
                  for _, a in chunk]
        try:
            response = self.client.call("tasks.batch.create", self.client.api.crm.objects.batch_api.create_with_http_info,
                                        "tasks", BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
        except HubSpotError as exc:
            self._raise_if_paused(exc)
            if exc.status == 400:
                # One bad input (say an unknown owner) fails the batch: create each alone to isolate it.
                for single in chunk:
                    self._create_one(object_type, single, records, results)
                return
            for index, action in chunk:
                results[index] = self._failure(action, exc)
            return
        created = {(obj.properties or {}).get(key_property): obj.id for obj in response.data.results or []}
        errors = getattr(response.data, "errors", None) or []
        detail = "; ".join(e.message for e in errors if e.message)[:300]
        for index, action in chunk:
            if action.key in created:
                self._created_keys.add(action.key)
                results[index] = ActionResult(action, Outcome.DONE, f"task {created[action.key]}")
            else:
                # Not created: retry. The key search on the next attempt keeps this from duplicating.
                results[index] = ActionResult(action, Outcome.RETRYABLE, detail or "task missing from batch result")

    def _create_one(self, object_type: str, item: tuple[int, Action], records: dict[str, _Record],
                    results: dict[int, ActionResult]) -> None:
        index, action = item
        try:
            response = self.client.call("tasks.create", self.client.api.crm.objects.basic_api.create_with_http_info,
                                        "tasks", SimplePublicObjectInputForCreate(
                                            **self._task_input(object_type, action, records[action.account])))
        except HubSpotError as exc:
            self._raise_if_paused(exc)
            results[index] = self._failure(action, exc)
            return
        self._created_keys.add(action.key)
        results[index] = ActionResult(action, Outcome.DONE, f"task {response.data.id}")

    # -- outcomes --------------------------------------------------------------------------------

    def _raise_if_paused(self, exc: HubSpotError) -> None:
        if exc.daily_limit:
            raise ConnectorPaused(f"HubSpot daily API limit reached: {exc.message}", self._until_daily_reset(exc))
        if exc.status in (401, 403):
            # A revoked token or a missing scope fails every write alike: stop and alert rather than
            # dead-letter the whole stream.
            raise ConnectorPaused(f"HubSpot refused our credentials ({exc.status}): {exc.message}", 300.0)

    def _until_daily_reset(self, exc: HubSpotError) -> float:
        if exc.retry_after:
            return exc.retry_after
        # The daily quota resets at midnight in the portal's time zone, which we do not know: wait for
        # the next UTC midnight (at least a minute) and let the retry after the pause tell.
        now = datetime.fromtimestamp(self._wall_clock(), timezone.utc)
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return max(60.0, (midnight - now).total_seconds())

    @staticmethod
    def _failure(action: Action, exc: HubSpotError) -> ActionResult:
        if exc.retryable:
            return ActionResult(action, Outcome.RETRYABLE, str(exc), retry_after=exc.retry_after)
        return ActionResult(action, Outcome.PERMANENT, str(exc))

    @staticmethod
    def _record_failure(action: Action, error: Any) -> ActionResult:
        status = str(getattr(error, "status", "") or "")
        message = f"HubSpot {error.category}: {error.message}"
        if status.isdigit() and (int(status) >= 500 or int(status) == 429):
            return ActionResult(action, Outcome.RETRYABLE, message)
        return ActionResult(action, Outcome.PERMANENT, message)


def _errors_by_id(errors: Any) -> dict[str, Any]:
    by_id: dict[str, Any] = {}
    for error in errors or []:
        for record_id in (error.context or {}).get("ids", []):
            by_id[str(record_id)] = error
    return by_id


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
