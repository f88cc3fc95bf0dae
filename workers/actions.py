"""Actions: the tags and tasks a decision asks the CRM for, each with an idempotency key.

An action's key is derived from the account, what it does and what triggered it (an event id or a
deadline instant), so processing the same history again yields the same keys and a connector can
refuse the second copy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from string import Template
from typing import Any, Mapping

import orjson

from workers.fastinit import fast_frozen_init
from workers.rules.policy import Policy
from workers.state import AccountState
from workers.timeutil import DAY, format_rfc3339

TAG = "tag"
TASK = "task"


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Action:
    type: str  # "tag" | "task"
    account: str
    key: str
    at: str  # when the decision was taken (event or deadline time), RFC 3339
    trigger: str
    reason: str
    account_kind: str | None = None
    account_name: str | None = None
    # tag
    name: str | None = None
    value: str | None = None
    # task
    kind: str | None = None
    title: str | None = None
    body: str | None = None
    priority: str | None = None
    due: str | None = None
    owner_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name in ACTION_FIELDS if (value := getattr(self, name)) is not None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Action:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    @classmethod
    def from_json(cls, raw: bytes) -> Action:
        """An action as the sink reads it from the actions topic; ValueError, with what is wrong, for
        anything that is not one (a record someone else wrote there), so the sink can dead-letter it."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ValueError(f"must be a JSON object, got {type(doc).__name__}")
        needed: tuple[str, ...] = ("type", "account", "key", "at", "trigger", "reason")
        needed += ("name", "value") if doc.get("type") == TAG else ("kind", "title")
        if doc.get("type") not in (TAG, TASK):
            raise ValueError(f"type must be {TAG!r} or {TASK!r}, got {doc.get('type')!r}")
        wrong = [name for name in needed if not isinstance(doc.get(name), str)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: missing or not a string")
        # Every field is text: a connector could fail on anything else, and retry the batch forever.
        wrong = [name for name in ACTION_FIELDS if doc.get(name) is not None and not isinstance(doc[name], str)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not a string")
        return cls.from_dict(doc)


ACTION_FIELDS = tuple(f.name for f in fields(Action))  # every field is text or None (from_json checks)


def plan_actions(before: AccountState, status: str, rule: str, flags: tuple[str, ...], now: float,
                 trigger: str, policy: Policy) -> list[Action]:
    """The actions one evaluation calls for, given the state before it (pure)."""
    # The tag follows the status, so it is due exactly when the status changes (including the first
    # evaluation); every task trigger is a change of status or of a flag. Most evaluations change neither.
    tag_due = status != before.status
    changed = tag_due or flags != before.flags
    firing = [spec for spec in policy.tasks if spec.fires(before.status, status, before.flags, flags)] if changed else []
    if not tag_due and not firing:
        return []  # the common case: nothing changed, so nothing to format
    reason = _reason(rule, policy)
    common: dict[str, Any] = {
        "account": before.account,
        "at": format_rfc3339(now),
        "trigger": trigger,
        "reason": reason,
        "account_kind": before.kind,
        "account_name": before.name,
    }
    actions: list[Action] = []
    if tag_due:
        actions.append(Action(type=TAG, key=f"{before.account}|tag:{policy.tag_name}={status}|{trigger}",
                              name=policy.tag_name, value=status, **common))
    if not firing:
        return actions
    template_values = {
        "account": before.account,
        "account_name": before.name or before.account,
        "status": status,
        "previous_status": before.status or "none",
        "reason": reason,
        "csm_name": (before.csm or {}).get("owner_name") or "the account team",
    }
    owner = (before.csm or {}).get("owner_id")
    for spec in firing:
        actions.append(Action(
            type=TASK, key=f"{before.account}|{spec.kind}|{trigger}", kind=spec.kind,
            title=Template(spec.title).safe_substitute(template_values),
            body=Template(spec.body).safe_substitute(template_values),
            priority=spec.priority, due=format_rfc3339(now + spec.due_in_days * DAY), owner_id=owner,
            **common))
    return actions


def _reason(rule: str, policy: Policy) -> str:
    for candidate in policy.status_rules:
        if candidate.name == rule and candidate.description:
            return f"{rule}: {candidate.description}"
    return rule
