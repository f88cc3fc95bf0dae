"""Build canonical events for tests without repeating the envelope."""

from __future__ import annotations

import itertools
import json
from typing import Any

from workers.events import CanonicalEvent, parse_event

_ids = itertools.count(1)


def raw(type_: str, subject: str, time: str, source: str = "test", id_: str | None = None,
        **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": id_ or f"t-{next(_ids)}", "source": source, "type": f"crm.{type_}",
            "subject": subject, "time": time, "data": data}


def ev(type_: str, subject: str, time: str, **data: Any) -> CanonicalEvent:
    return parse_event(raw(type_, subject, time, **data))


def line(type_: str, subject: str, time: str, **data: Any) -> str:
    return json.dumps(raw(type_, subject, time, **data))
