"""The connector interface every CRM implements.

A connector takes a batch of actions and reports one outcome per action. It never raises for a single
action's failure: that is an outcome. It raises `ConnectorPaused` only when the CRM cannot take any
write for a while (a daily quota spent), so the caller stops consuming instead of burning retries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from workers.actions import Action
from workers.fastinit import fast_frozen_init


class Outcome(str, enum.Enum):
    DONE = "done"  # written now
    DUPLICATE = "duplicate"  # already there (same key seen, or the value was already right): nothing written
    RETRYABLE = "retryable_error"  # try again later (429, 5xx, timeout)
    PERMANENT = "permanent_error"  # will never work as sent (400, unknown record): dead-letter it


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None  # seconds the CRM asked us to wait, when it said

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.action.key, "outcome": self.outcome.value, "detail": self.detail}


class ConnectorPaused(Exception):
    """The CRM refuses all writes until `resume_in` seconds from now (e.g. HubSpot's daily limit)."""

    def __init__(self, message: str, resume_in: float) -> None:
        super().__init__(message)
        self.resume_in = resume_in


@runtime_checkable
class Connector(Protocol):
    name: str

    def apply(self, actions: Sequence[Action]) -> list[ActionResult]:
        """Apply a batch (any size; the connector splits it as its CRM needs). One result per action,
        in the same order."""
        ...

    def close(self) -> None: ...
