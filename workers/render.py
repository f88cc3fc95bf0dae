"""Human output: Rich tables for replay results and the sandbox CRM."""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Console
from rich.table import Table

from workers.replay import ReplayResult


def replay_tables(result: ReplayResult, console: Console) -> None:
    outcomes = {r.action.key: r.outcome.value for r in result.outcomes}
    tags: dict[str, list[str]] = {}
    tasks: dict[str, list[str]] = {}
    for action in result.actions:
        if action.type == "tag":
            tags.setdefault(action.account, []).append(f"{action.name}={action.value}")
        else:
            tasks.setdefault(action.account, []).append(str(action.kind))
    accounts = Table(title="Accounts", show_lines=False)
    for column in ("account", "status", "flags", "decided by", "tags written", "tasks"):
        accounts.add_column(column)
    for name in sorted(result.accounts):
        state = result.accounts[name]
        accounts.add_row(name, _status(state.status), ", ".join(state.flags) or "-", state.reason or "-",
                         (tags.get(name) or ["-"])[-1], ", ".join(tasks.get(name, [])) or "-")
    console.print(accounts)
    actions = Table(title="Actions (in the order they happened)")
    for column in ("at", "account", "action", "detail", "crm"):
        actions.add_column(column)
    for action in result.actions:
        detail = f"{action.name} = {action.value}" if action.type == "tag" else f"{action.kind}: {action.title}"
        actions.add_row(action.at, action.account, action.type, detail, outcomes.get(action.key, "planned"))
    console.print(actions)
    stats = result.stats
    console.print(f"{stats['events']} events, {stats['duplicates']} duplicates ignored, "
                  f"{stats['invalid']} invalid, {stats['too_late']} too late; {len(result.actions)} actions")


def crm_tables(snapshot: Mapping[str, Any], console: Console) -> None:
    tags: dict[str, dict[str, str]] = {}
    for tag in snapshot["tags"]:
        tags.setdefault(tag["account"], {})[tag["name"]] = tag["value"]
    tasks: dict[str, int] = {}
    for task in snapshot["tasks"]:
        tasks[task["account"]] = tasks.get(task["account"], 0) + 1
    accounts = Table(title="Sandbox CRM: accounts")
    for column in ("account", "name", "kind", "relationship_status", "tasks"):
        accounts.add_column(column)
    for row in snapshot["accounts"]:
        name = row["account"]
        accounts.add_row(name, row["name"] or "-", row["kind"] or "-",
                         _status(tags.get(name, {}).get("relationship_status")), str(tasks.get(name, 0)))
    console.print(accounts)
    table = Table(title="Sandbox CRM: tasks")
    for column in ("account", "kind", "title", "priority", "due", "owner"):
        table.add_column(column)
    for task in snapshot["tasks"]:
        table.add_row(task["account"], task["kind"], task["title"], task["priority"] or "-", task["due"] or "-",
                      task["owner_id"] or "-")
    console.print(table)


def _status(status: str | None) -> str:
    colour = {"client": "green", "customer": "cyan", "prospect": "yellow"}.get(status or "", "white")
    return f"[{colour}]{status or '-'}[/{colour}]"
