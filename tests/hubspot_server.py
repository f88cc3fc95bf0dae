"""A local HubSpot: the CRM endpoints Clientshift uses, in memory, held to HubSpot's OpenAPI specs.

Every request received and every response sent is validated with openapi-core against the official
specs in shared/hubspot-openapi; anything off is appended to `violations` (the fixture fails the test
on teardown). Faults can be injected: 429 (secondly with or without Retry-After, daily), 5xx, 207
partial batches, slow answers, and failures *after* a write was applied (the nasty case for
idempotency). It never talks to the internet.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SPEC_HOST = "https://api.hubapi.com"  # requests are validated as if sent to the spec's own server
TOKEN = "test-token"


def spec_dir() -> Path:
    env = os.environ.get("CLIENTSHIFT_HUBSPOT_OPENAPI_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "hubspot-openapi")
    for candidate in candidates:
        if (candidate / "objects-v3.json").exists():
            return candidate
    raise FileNotFoundError("HubSpot OpenAPI specs not found; set CLIENTSHIFT_HUBSPOT_OPENAPI_DIR")


def _patch_quirks(spec: dict[str, Any]) -> dict[str, Any]:
    """Narrow fixes for the spec quirks listed in shared/hubspot-openapi/README.md."""
    # Quirk 1: the shared `Error` response is declared as `*/*`; openapi-core then treats the JSON body
    # as an opaque string and fails it against the object schema. HubSpot sends application/json.
    for response in spec.get("components", {}).get("responses", {}).values():
        content = response.get("content", {})
        if "*/*" in content and "application/json" not in content:
            content["application/json"] = content.pop("*/*")
    # Quirk 2: search requests declare after/limit/properties/sorts required; the live API treats them
    # as optional (the first page has no `after`). Only these four, only on the search request.
    search = spec.get("components", {}).get("schemas", {}).get("PublicObjectSearchRequest")
    if search and "required" in search:
        search["required"] = [r for r in search["required"] if r not in ("after", "limit", "properties", "sorts")]
    # Quirk 3: `example: null` all over is legal OpenAPI 3.0 and harmless to openapi-core: left alone.
    return spec


@lru_cache(maxsize=None)
def load_specs() -> dict[str, Any]:
    """Parse the specs once per process (slow); keyed by file stem."""
    from openapi_core import OpenAPI

    # openapi-core cannot check HubSpot's oauth2 security scheme (it warns "Unsupported scheme type");
    # the server checks the Bearer token itself and answers 401 otherwise.
    out = {}
    for path in sorted(spec_dir().glob("*.json")):
        out[path.stem] = OpenAPI.from_dict(_patch_quirks(json.loads(path.read_text(encoding="utf-8"))))
    return out


def spec_for(path: str) -> str:
    if path.startswith("/crm/v4/"):
        return "associations-v4"
    if path.startswith("/crm/v3/properties/"):
        return "properties-v3"
    for name, stem in (("companies", "companies-v3"), ("contacts", "contacts-v3"), ("tasks", "tasks-v3")):
        if re.match(rf"^/crm/v3/objects/{name}(/|$)", path):
            return stem
    return "objects-v3"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Fault:
    """One injected misbehaviour for requests whose path matches `path` (regex), `times` times."""

    status: int = 0  # 0: no error status (use with delay)
    path: str = ".*"
    method: str | None = "POST"
    times: int = 1
    retry_after: str | None = None
    policy: str = "TEN_SECONDLY_ROLLING"
    delay: float = 0.0
    after_apply: bool = False  # apply the write, then answer with the error anyway
    partial_ids: tuple[str, ...] = ()  # 207: these records fail, the rest succeed

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and (self.method is None or self.method == method) and re.search(self.path, path) is not None


class ApiError(Exception):
    def __init__(self, status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.category, self.extra = status, message, category, extra


@dataclass
class Storm:
    """Random faults on writes (deterministic with `seed`); each request rolls once."""

    rate: float
    statuses: tuple[int, ...] = (429, 502, 503)
    seed: int = 7
    path: str = r"/batch/(update|create)$|/objects/tasks$|/search$|/batch/read$"
    after_apply_share: float = 0.3
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def roll(self, method: str, path: str) -> Fault | None:
        if method != "POST" or not re.search(self.path, path) or self.rng.random() >= self.rate:
            return None
        status = self.rng.choice(self.statuses)
        writes = bool(re.search(r"/batch/(update|create)$|/objects/tasks$", path))
        return Fault(status=status, retry_after=self.rng.choice([None, "0.01", "2"]) if status == 429 else None,
                     after_apply=writes and status >= 500 and self.rng.random() < self.after_apply_share)


class HubSpotState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"companies": {}, "contacts": {}, "tasks": {}, "deals": {}}
        self.properties: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in self.objects}
        self.groups: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in self.objects}
        self.associations: list[tuple[str, str, str, str, int]] = []  # from type, from id, to type, to id, type id
        self.owners: set[str] = {"101", "102"}
        self._ids = itertools.count(1001)
        for object_type in self.objects:
            self.groups[object_type][f"{object_type}information"] = {
                "name": f"{object_type}information", "label": "Information", "displayOrder": 0, "archived": False}
            for name in ("name", "domain", "hs_object_id", "hubspot_owner_id", "createdate", "hs_lastmodifieddate",
                         "hs_task_subject", "hs_task_body", "hs_task_status", "hs_task_priority", "hs_timestamp",
                         "dealstage", "email"):
                self.properties[object_type][name] = self._property(name, f"{object_type}information", "string")

    @staticmethod
    def _property(name: str, group: str, type_: str, field_type: str = "text",
                  options: list[dict[str, Any]] | None = None, unique: bool = False) -> dict[str, Any]:
        return {"name": name, "label": name, "type": type_, "fieldType": field_type, "groupName": group,
                "description": "", "options": options or [], "hasUniqueValue": unique, "archived": False,
                "hidden": False, "displayOrder": -1, "formField": False, "calculated": False,
                "externalOptions": False, "hubspotDefined": False, "createdAt": _now_iso(), "updatedAt": _now_iso()}

    def new_id(self) -> str:
        return str(next(self._ids))

    def add(self, object_type: str, properties: dict[str, str], record_id: str | None = None) -> str:
        with self.lock:
            record_id = record_id or self.new_id()
            now = _now_iso()
            props = {"hs_object_id": record_id, "createdate": now, "hs_lastmodifieddate": now, **properties}
            self.objects[object_type][record_id] = {"id": record_id, "properties": props, "createdAt": now,
                                                    "updatedAt": now}
            return record_id

    def add_many_companies(self, count: int, start_id: int = 1) -> None:
        """Bulk seed (for backfill tests): ids start_id..start_id+count-1, name company-N."""
        with self.lock:
            now = _now_iso()
            table = self.objects["companies"]
            for n in range(start_id, start_id + count):
                rid = str(n)
                table[rid] = {"id": rid, "createdAt": now, "updatedAt": now,
                              "properties": {"hs_object_id": rid, "name": f"company-{n}", "createdate": now,
                                             "hs_lastmodifieddate": now}}

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int) -> None:
        with self.lock:
            self.associations.append((from_type, from_id, to_type, to_id, type_id))

    def tasks_with(self, prop: str, value: str) -> list[dict[str, Any]]:
        return [t for t in self.objects["tasks"].values() if t["properties"].get(prop) == value]


class HubSpotServer:
    """Start with `start()`; `url` is the base URL for `HubSpot(host=...)`."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.state = HubSpotState()
        self.violations: list[str] = []
        self.requests: Counter[str] = Counter()  # "METHOD /path" -> count
        self.faults: list[Fault] = []
        self.storm: Storm | None = None
        self.fault_log: list[tuple[str, int, bool]] = []  # path, status, applied before failing
        self.rate_headers = True
        self.specs = load_specs()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> HubSpotServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hubspot-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- test helpers ----------------------------------------------------------------------------

    def inject(self, **kwargs: Any) -> Fault:
        fault = Fault(**kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def count(self, method: str, path_regex: str) -> int:
        return sum(n for key, n in self.requests.items()
                   if key.split(" ", 1)[0] == method and re.search(path_regex, key.split(" ", 1)[1]))

    def total_requests(self) -> int:
        return sum(self.requests.values())

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
            if self.storm:
                return self.storm.roll(method, path)
        return None

    # -- validation ------------------------------------------------------------------------------

    def validate_request(self, method: str, path: str, query: dict[str, Any], headers: dict[str, str],
                         body: bytes) -> Any:
        from openapi_core.testing import MockRequest

        request = MockRequest(SPEC_HOST, method.lower(), path, args=query, headers=headers, data=body or None,
                              content_type=headers.get("Content-Type", "application/json").split(";")[0])
        errors = list(self.specs[spec_for(path)].iter_request_errors(request))
        for error in errors:
            self.violations.append(f"request {method} {path}: {_describe(error)}")
        return request

    def validate_response(self, request: Any, method: str, path: str, status: int, body: bytes,
                          headers: dict[str, str]) -> None:
        from openapi_core.testing import MockResponse

        response = MockResponse(body, status_code=status, headers=headers, content_type="application/json")
        for error in self.specs[spec_for(path)].iter_response_errors(request, response):
            self.violations.append(f"response {status} to {method} {path}: {_describe(error)}")

    # -- dispatch --------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw_path)
        path, query = parts.path, {k: v if len(v) > 1 else v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests[f"{method} {path}"] += 1
        request = self.validate_request(method, path, query, headers, body)
        extra_headers: dict[str, str] = {}
        fault = self._take_fault(method, path)
        try:
            if headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Authentication credentials not found.", "INVALID_AUTHENTICATION")
            if fault and fault.delay:
                time.sleep(fault.delay)  # a slow server, for client timeouts; not test synchronisation
            failing = fault is not None and fault.status >= 400
            if failing and not fault.after_apply:
                raise self._fault_error(fault, extra_headers)
            payload = json.loads(body) if body else None
            status, result = self.route(method, path, query, payload, fault)
            if failing and fault.after_apply:
                raise self._fault_error(fault, extra_headers)
        except ApiError as exc:
            status = exc.status
            result = {"status": "error", "message": exc.message, "category": exc.category,
                      "correlationId": str(uuid.uuid4()), **exc.extra}
        if fault and fault.status:
            self.fault_log.append((path, fault.status, fault.after_apply))
        out = json.dumps(result).encode() if result is not None else b""
        response_headers = {"Content-Type": "application/json;charset=utf-8", **extra_headers}
        if self.rate_headers:
            response_headers.setdefault("X-HubSpot-RateLimit-Max", "190")
            response_headers.setdefault("X-HubSpot-RateLimit-Remaining", "189")
            response_headers.setdefault("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
        self.validate_response(request, method, path, status, out, response_headers)
        return status, response_headers, out

    def _fault_error(self, fault: Fault, headers: dict[str, str]) -> ApiError:
        if fault.status == 429:
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            daily = fault.policy == "DAILY"
            headers["X-HubSpot-RateLimit-Daily-Remaining" if daily else "X-HubSpot-RateLimit-Remaining"] = "0"
            # HubSpot's documented 429 body has errorType/policyName but no `category`, which the spec's
            # Error schema requires; we send both so the answer is realistic *and* valid.
            return ApiError(429, "You have reached your daily limit." if daily else
                            "You have reached your ten_secondly_rolling limit.", "RATE_LIMITS",
                            errorType="RATE_LIMIT", policyName=fault.policy)
        return ApiError(fault.status, "Internal error" if fault.status == 500 else "Bad gateway or unavailable",
                        "INTERNAL_ERROR")

    def route(self, method: str, path: str, query: dict[str, Any], body: Any, fault: Fault | None) -> tuple[int, Any]:
        s = self.state
        with s.lock:
            m = re.fullmatch(r"/crm/v3/properties/(\w+)/groups", path)
            if m:
                return self.groups(method, m.group(1), body)
            m = re.fullmatch(r"/crm/v3/properties/(\w+)", path)
            if m:
                return self.props(method, m.group(1), body)
            m = re.fullmatch(r"/crm/v3/objects/(\w+)/batch/read", path)
            if m and method == "POST":
                return self.batch_read(m.group(1), body)
            m = re.fullmatch(r"/crm/v3/objects/(\w+)/batch/update", path)
            if m and method == "POST":
                return self.batch_update(m.group(1), body, fault)
            m = re.fullmatch(r"/crm/v3/objects/(\w+)/batch/create", path)
            if m and method == "POST":
                return self.batch_create(m.group(1), body)
            m = re.fullmatch(r"/crm/v3/objects/(\w+)/search", path)
            if m and method == "POST":
                return self.search(m.group(1), body)
            m = re.fullmatch(r"/crm/v3/objects/(\w+)", path)
            if m and method == "POST":
                return 201, self._create_one(m.group(1), body)
            m = re.fullmatch(r"/crm/v4/objects/(\w+)/(\w+)/associations/(\w+)", path)
            if m and method == "GET":
                return self.associations_of(*m.groups())
        raise ApiError(404, f"no route for {method} {path}", "OBJECT_NOT_FOUND")

    # -- handlers --------------------------------------------------------------------------------

    def _table(self, object_type: str) -> dict[str, dict[str, Any]]:
        if object_type not in self.state.objects:
            raise ApiError(400, f"Unable to infer object type from: {object_type}")
        return self.state.objects[object_type]

    def groups(self, method: str, object_type: str, body: Any) -> tuple[int, Any]:
        groups = self.state.groups.setdefault(object_type, {})
        if method == "GET":
            return 200, {"results": list(groups.values())}
        if body["name"] in groups:
            raise ApiError(409, f"A property group named {body['name']} already exists.", "CONFLICT")
        groups[body["name"]] = {"name": body["name"], "label": body["label"],
                                "displayOrder": body.get("displayOrder", -1), "archived": False}
        return 201, groups[body["name"]]

    def props(self, method: str, object_type: str, body: Any) -> tuple[int, Any]:
        props = self.state.properties.setdefault(object_type, {})
        if method == "GET":
            return 200, {"results": list(props.values())}
        if body["name"] in props:
            raise ApiError(409, f"Property {body['name']} already exists", "CONFLICT")
        if body["groupName"] not in self.state.groups.get(object_type, {}):
            raise ApiError(400, f"property group {body['groupName']} does not exist")
        prop = self.state._property(body["name"], body["groupName"], body["type"], body["fieldType"],
                                    [{"label": o["label"], "value": o["value"], "hidden": o.get("hidden", False),
                                      "displayOrder": o.get("displayOrder", 0)} for o in body.get("options", [])],
                                    body.get("hasUniqueValue", False))
        prop["label"] = body["label"]
        prop["description"] = body.get("description", "")
        props[body["name"]] = prop
        return 201, prop

    def _check_properties(self, object_type: str, properties: dict[str, Any]) -> None:
        known = self.state.properties[object_type]
        for name, value in properties.items():
            if name not in known:
                raise ApiError(400, f'Property values were not valid: [{{"isValid":false,"message":"Property '
                                    f'\\"{name}\\" does not exist","error":"PROPERTY_DOESNT_EXIST","name":"{name}"}}]')
            options = known[name]["options"]
            if known[name]["type"] == "enumeration" and value not in {o["value"] for o in options}:
                raise ApiError(400, f'Property values were not valid: [{{"isValid":false,"message":"{value} was not'
                                    f' one of the allowed options","error":"INVALID_OPTION","name":"{name}"}}]')
        owner = properties.get("hubspot_owner_id")
        if owner and owner not in self.state.owners:
            raise ApiError(400, f'Property values were not valid: [{{"isValid":false,"message":"{owner} is not a '
                                f'valid owner id","error":"INVALID_OWNER_ID","name":"hubspot_owner_id"}}]')

    @staticmethod
    def _public(record: dict[str, Any], properties: list[str] | None) -> dict[str, Any]:
        props = record["properties"]
        wanted = properties if properties else ["hs_object_id", "createdate", "hs_lastmodifieddate"]
        return {"id": record["id"], "properties": {k: props.get(k) for k in wanted if k in props},
                "createdAt": record["createdAt"], "updatedAt": record["updatedAt"], "archived": False}

    @staticmethod
    def _batch(results: list[Any], errors: list[dict[str, Any]]) -> tuple[int, Any]:
        now = _now_iso()
        out: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        if errors:
            out["errors"] = errors
            out["numErrors"] = len(errors)
            return 207, out
        return 200, out

    @staticmethod
    def _error(category: str, message: str, ids: list[str], status: str = "error") -> dict[str, Any]:
        return {"status": status, "category": category, "message": message, "context": {"ids": ids},
                "errors": [], "links": {}}

    def batch_read(self, object_type: str, body: dict[str, Any]) -> tuple[int, Any]:
        table = self._table(object_type)
        id_property = body.get("idProperty")
        if len(body["inputs"]) > 100:
            raise ApiError(400, "Batch size exceeded: at most 100 inputs")
        found, missing = [], []
        for item in body["inputs"]:
            if id_property:
                match = next((r for r in table.values() if r["properties"].get(id_property) == item["id"]), None)
            else:
                match = table.get(item["id"])
            if match:
                found.append(self._public(match, body.get("properties")))
            else:
                missing.append(item["id"])
        errors = [self._error("OBJECT_NOT_FOUND", f"Could not get some {object_type} objects, they may be "
                              "deleted or not exist.", missing)] if missing else []
        return self._batch(found, errors)

    def batch_update(self, object_type: str, body: dict[str, Any], fault: Fault | None) -> tuple[int, Any]:
        table = self._table(object_type)
        inputs = body["inputs"]
        if len(inputs) > 100:
            raise ApiError(400, "Batch size exceeded: at most 100 inputs")
        ids = [i["id"] for i in inputs]
        if len(set(ids)) != len(ids):
            raise ApiError(400, "Duplicate IDs found in batch input")
        for item in inputs:
            self._check_properties(object_type, item["properties"])
        failing = set(fault.partial_ids) if fault and fault.status == 207 else set()
        results, missing, injected = [], [], []
        for item in inputs:
            record = table.get(item["id"])
            if record is None:
                missing.append(item["id"])
            elif item["id"] in failing:
                injected.append(item["id"])
            else:
                record["properties"].update(item["properties"])
                record["updatedAt"] = record["properties"]["hs_lastmodifieddate"] = _now_iso()
                results.append(self._public(record, list(item["properties"])))
        errors = []
        if missing:
            errors.append(self._error("OBJECT_NOT_FOUND", f"Could not get some {object_type} objects", missing))
        if injected:
            errors.append(self._error("VALIDATION_ERROR", "Injected per-record failure", injected))
        return self._batch(results, errors)

    def _create_one(self, object_type: str, item: dict[str, Any]) -> dict[str, Any]:
        self._table(object_type)
        self._check_properties(object_type, item.get("properties", {}))
        for assoc in item.get("associations", []):
            target = assoc["to"]["id"]
            type_ids = {t["associationTypeId"] for t in assoc["types"]}
            to_type = "companies" if type_ids & {192} else "contacts" if type_ids & {204} else None
            if to_type is None or target not in self.state.objects[to_type]:
                raise ApiError(400, f"association target {target} with types {sorted(type_ids)} is not valid")
        record_id = self.state.add(object_type, dict(item.get("properties", {})))
        for assoc in item.get("associations", []):
            for spec in assoc["types"]:
                to_type = "companies" if spec["associationTypeId"] == 192 else "contacts"
                self.state.associate(object_type, record_id, to_type, assoc["to"]["id"], spec["associationTypeId"])
        return self._public(self.state.objects[object_type][record_id], list(item.get("properties", {})))

    def batch_create(self, object_type: str, body: dict[str, Any]) -> tuple[int, Any]:
        inputs = body["inputs"]
        if len(inputs) > 100:
            raise ApiError(400, "Batch size exceeded: at most 100 inputs")
        for item in inputs:  # HubSpot validates the whole batch before creating anything
            self._check_properties(object_type, item.get("properties", {}))
        snapshot = copy.deepcopy((self.state.objects[object_type], self.state.associations))
        try:
            results = [self._create_one(object_type, item) for item in inputs]
        except ApiError:
            self.state.objects[object_type], self.state.associations = snapshot
            raise
        status, out = self._batch(results, [])
        return 201, out

    def search(self, object_type: str, body: dict[str, Any]) -> tuple[int, Any]:
        table = self._table(object_type)
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
        if limit > 200:
            raise ApiError(400, "limit must be at most 200")
        if after + limit > 10_000:
            # The search API's hard stop, as HubSpot answers it.
            raise ApiError(400, "There was a problem with the request.", "VALIDATION_ERROR")
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or sum(len(g.get("filters", [])) for g in groups) > 18:
            raise ApiError(400, "too many filters")
        rows = [r for r in table.values() if not groups or any(all(_match(r, f) for f in g["filters"]) for g in groups)]
        sorts = body.get("sorts") or []
        if sorts:
            key = sorts[0].lstrip("-")
            rows.sort(key=lambda r: _sort_value(r["properties"].get(key)), reverse=sorts[0].startswith("-"))
        else:
            rows.sort(key=lambda r: int(r["id"]))
        page = rows[after:after + limit]
        out: dict[str, Any] = {"total": len(rows), "results": [self._public(r, body.get("properties")) for r in page]}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return 200, out

    def associations_of(self, object_type: str, object_id: str, to_type: str) -> tuple[int, Any]:
        results = [{"toObjectId": to_id, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id}]}
                   for f_type, f_id, t_type, to_id, type_id in self.state.associations
                   if f_type == object_type and f_id == object_id and t_type == to_type]
        return 200, {"results": results}


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    return (0, int(value)) if str(value).isdigit() else (1, str(value))


def _match(record: dict[str, Any], flt: dict[str, Any]) -> bool:
    value = record["properties"].get(flt["propertyName"])
    op = flt["operator"]
    if op == "HAS_PROPERTY":
        return value not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return value in (None, "")
    if op == "IN":
        return value in set(flt.get("values") or [])
    if op == "EQ":
        return value == flt.get("value")
    if op == "NEQ":
        return value != flt.get("value")
    if value is None:
        return False
    left, right = _sort_value(value), _sort_value(flt.get("value"))
    return {"GT": left > right, "GTE": left >= right, "LT": left < right, "LTE": left <= right}.get(op, False)


def _describe(error: Exception) -> str:
    cause = error.__cause__
    details = getattr(error, "schema_errors", None) or getattr(cause, "schema_errors", None)
    text = f"{type(error).__name__}: {error}"
    if details:
        text += " [" + "; ".join(e.message for e in details) + "]"
    return text


class _Handler(BaseHTTPRequestHandler):
    owner: HubSpotServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        try:
            status, response_headers, out = self.owner.handle(self.command, self.path, headers, body)
        except Exception as exc:  # a bug in the fake must fail the test, not hang the client
            self.owner.violations.append(f"server error on {self.command} {self.path}: {exc!r}")
            status, response_headers, out = 500, {"Content-Type": "application/json"}, b"{}"
        try:
            self.send_response(status)
            for key, value in response_headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def make_server(**kwargs: Any) -> HubSpotServer:
    return HubSpotServer(**kwargs).start()


try:
    import pytest
except ImportError:  # importable without pytest (e.g. for a manual demo)
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture
    def hubspot_server() -> Any:
        """A fresh local HubSpot per test; fails the test on any OpenAPI violation."""
        server = make_server()
        try:
            yield server
        finally:
            server.stop()
        assert server.violations == [], "\n".join(server.violations[:20])

    @pytest.fixture
    def hubspot_env(hubspot_server: HubSpotServer) -> dict[str, str]:
        return {"HUBSPOT_ACCESS_TOKEN": TOKEN, "HUBSPOT_BASE_URL": hubspot_server.url,
                "CLIENTSHIFT_HUBSPOT_RATE_PER_10S": "100000", "CLIENTSHIFT_HUBSPOT_SEARCH_RATE_PER_S": "100000",
                "HUBSPOT_APP_ID": "4242", "CLIENTSHIFT_HUBSPOT_TIMEOUT": "5"}
