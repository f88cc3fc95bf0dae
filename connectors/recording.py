"""The recording connector: remembers every action it is given, refusing repeated keys like a CRM
would. For tests and for `--connector recording` runs that should touch nothing; optionally appends
what it applied to a JSON-lines file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from connectors.base import ActionResult, Outcome
from workers.actions import Action


class RecordingConnector:
    name = "recording"

    def __init__(self, path: str | Path | None = None) -> None:
        self.applied: list[Action] = []
        self._keys: set[str] = set()
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - lives with the connector

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RecordingConnector:
        env = settings.get("env") or {}
        return cls(settings.get("recording_file") or env.get("CLIENTSHIFT_RECORDING_FILE"))

    def apply(self, actions: Sequence[Action]) -> list[ActionResult]:
        results = []
        for action in actions:
            if action.key in self._keys:
                results.append(ActionResult(action, Outcome.DUPLICATE, "key already recorded"))
                continue
            self._keys.add(action.key)
            self.applied.append(action)
            if self._file:
                self._file.write(json.dumps(action.to_dict(), sort_keys=True) + "\n")
            results.append(ActionResult(action, Outcome.DONE))
        if self._file:
            self._file.flush()
        return results

    def close(self) -> None:
        if self._file:
            self._file.close()
