"""The local sandbox CRM: a SQLite file that keeps each account's tags and tasks.

It behaves like a careful real CRM: it refuses a task whose key it already has, and a tag write that
would not change anything is reported as a duplicate, so replaying the same stream twice leaves it
unchanged the second time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from connectors.base import ActionResult, Outcome
from workers.actions import TAG, Action

DEFAULT_DB = "clientshift-sandbox.db"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's turn

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY, name TEXT, kind TEXT
);
CREATE TABLE IF NOT EXISTS tags (
    account TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, reason TEXT, updated_at TEXT,
    action_key TEXT NOT NULL, PRIMARY KEY (account, name)
);
CREATE TABLE IF NOT EXISTS tag_writes (
    action_key TEXT PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, at TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    action_key TEXT PRIMARY KEY, account TEXT NOT NULL, kind TEXT NOT NULL, title TEXT NOT NULL,
    body TEXT, priority TEXT, due TEXT, owner_id TEXT, created_for TEXT NOT NULL, seq INTEGER NOT NULL
);
"""


class SandboxConnector:
    name = "sandbox"

    def __init__(self, path: str | Path = DEFAULT_DB, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.path = str(path)
        # Several worker processes may share one file: WAL plus a busy timeout lets them take turns.
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._set_up(sleep)

    def _set_up(self, sleep: Callable[[float], None]) -> None:
        # Switching a new file to WAL needs it to itself, and SQLite answers "database is locked" at once,
        # without the busy timeout, while another process is writing to it in its first (rollback) mode:
        # two workers starting on one new file did. Their turn comes soon; wait for it here.
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                sleep(0.05)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SandboxConnector:
        env = settings.get("env") or {}
        return cls(settings.get("sandbox_db") or env.get("CLIENTSHIFT_SANDBOX_DB") or DEFAULT_DB)

    def apply(self, actions: Sequence[Action]) -> list[ActionResult]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                results = [self._apply_one(action) for action in actions]
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return results

    def _apply_one(self, action: Action) -> ActionResult:
        db = self._db
        db.execute(
            "INSERT INTO accounts(account, name, kind) VALUES (?, ?, ?) ON CONFLICT(account) DO UPDATE SET "
            "name = COALESCE(excluded.name, accounts.name), kind = COALESCE(excluded.kind, accounts.kind)",
            (action.account, action.account_name, action.account_kind))
        if action.type == TAG:
            # The key first: a replayed history must not walk the tag back through old values.
            known = db.execute("INSERT INTO tag_writes(action_key, account, name, value, at) VALUES (?,?,?,?,?) "
                               "ON CONFLICT(action_key) DO NOTHING",
                               (action.key, action.account, action.name, action.value, action.at)).rowcount == 0
            if known:
                return ActionResult(action, Outcome.DUPLICATE, "this tag write was applied before")
            current = db.execute("SELECT value FROM tags WHERE account = ? AND name = ?",
                                 (action.account, action.name)).fetchone()
            if current is not None and current[0] == action.value:
                return ActionResult(action, Outcome.DUPLICATE, "value already set")
            db.execute(
                "INSERT INTO tags(account, name, value, reason, updated_at, action_key) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(account, name) DO UPDATE SET value = excluded.value, reason = excluded.reason, "
                "updated_at = excluded.updated_at, action_key = excluded.action_key",
                (action.account, action.name, action.value, action.reason, action.at, action.key))
            return ActionResult(action, Outcome.DONE)
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks").fetchone()[0]
        inserted = db.execute(
            "INSERT INTO tasks(action_key, account, kind, title, body, priority, due, owner_id, created_for, seq) "
            "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(action_key) DO NOTHING",
            (action.key, action.account, action.kind, action.title, action.body, action.priority, action.due,
             action.owner_id, action.at, seq)).rowcount
        if not inserted:
            return ActionResult(action, Outcome.DUPLICATE, "a task with this key exists")
        return ActionResult(action, Outcome.DONE)

    def snapshot(self) -> dict[str, Any]:
        """Everything the sandbox holds, in a stable order (for `crm show` and for tests)."""
        with self._lock:
            accounts = self._db.execute("SELECT account, name, kind FROM accounts ORDER BY account").fetchall()
            tags = self._db.execute(
                "SELECT account, name, value, reason, updated_at FROM tags ORDER BY account, name").fetchall()
            tasks = self._db.execute(
                "SELECT action_key, account, kind, title, priority, due, owner_id, created_for FROM tasks "
                "ORDER BY account, created_for, action_key").fetchall()
        return {
            "accounts": [{"account": a, "name": n, "kind": k} for a, n, k in accounts],
            "tags": [{"account": a, "name": n, "value": v, "reason": r, "updated_at": u} for a, n, v, r, u in tags],
            "tasks": [{"key": key, "account": a, "kind": kind, "title": t, "priority": p, "due": d, "owner_id": o,
                       "at": at} for key, a, kind, t, p, d, o, at in tasks],
        }

    def close(self) -> None:
        self._db.close()
