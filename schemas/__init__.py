"""Versioned JSON Schemas: the contracts other teams produce against.

The files in this package are the single source of truth; the code loads and validates against the
same files it publishes.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

CRM_EVENT_V1 = "crm-event.v1.json"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return a published schema by file name, e.g. ``load_schema("crm-event.v1.json")``."""
    text = resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def validator(name: str = CRM_EVENT_V1) -> Any:
    """A compiled draft 2020-12 validator for one published schema.

    jsonschema-rs rather than the pure-Python jsonschema: ~200k events/s against ~2.5k/s on this
    schema, which decided whether validation or Kafka would bound the worker."""
    return jsonschema_rs.Draft202012Validator(load_schema(name), validate_formats=False)
