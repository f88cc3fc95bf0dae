"""A pytest plugin for projects that replay recorded streams and compare with golden files.

    def test_my_stream(clientshift_replay, clientshift_golden):
        result = clientshift_replay("streams/q1.jsonl", as_of="2026-06-30T00:00:00Z")
        clientshift_golden(result, "golden/q1.json")

Run pytest with --clientshift-update-golden to (re)write golden files after a reviewed change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from workers.replay import ReplayResult, read_event_files, replay
from workers.rules.policy import load_policy
from workers.timeutil import parse_rfc3339


def pytest_addoption(parser: Any) -> None:
    parser.addoption("--clientshift-update-golden", action="store_true", default=False,
                     help="rewrite Clientshift golden files instead of comparing with them")


@pytest.fixture
def clientshift_replay() -> Callable[..., ReplayResult]:
    def run(*files: str | Path, rules: str | Path | None = None, as_of: str | None = None) -> ReplayResult:
        return replay(read_event_files(list(files)), load_policy(rules),
                      as_of=parse_rfc3339(as_of) if as_of else None)

    return run


@pytest.fixture
def clientshift_golden(request: Any) -> Callable[[ReplayResult, str | Path], None]:
    update = request.config.getoption("--clientshift-update-golden")

    def compare(result: ReplayResult, golden: str | Path) -> None:
        path = Path(golden)
        text = json.dumps(result.to_json_dict(), indent=1, ensure_ascii=False) + "\n"
        if update or not path.exists():
            if not update:
                pytest.fail(f"golden file {path} is missing; run with --clientshift-update-golden to create it")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            return
        expected = path.read_text(encoding="utf-8")
        assert text == expected, f"replay differs from {path} (rerun with --clientshift-update-golden if intended)"

    return compare
