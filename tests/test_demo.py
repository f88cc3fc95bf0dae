"""`clientshift demo`, the README's first command, run as a newcomer runs it: its own broker, a worker,
the example events, and the sandbox CRM printed at the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from workers.replay import read_event_files, replay

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "events.jsonl"


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in text.splitlines()
            if line.startswith("│")]


def test_the_demo_runs_the_product_end_to_end_and_prints_what_replay_computes(tmp_path):
    # The timeout only keeps a hang from stalling CI; the demo prints how long it took.
    result = subprocess.run([sys.executable, "-m", "workers.cli", "demo"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "same as `clientshift replay`: yes; worker exited 0" in result.stdout
    replayed = replay(list(read_event_files([EXAMPLES])))
    tasks = [a for a in replayed.actions if a.type == "task"]
    # account, name, kind, relationship_status, tasks
    printed = {row[0]: (row[3], int(row[4])) for row in table_rows(result.stdout) if len(row) == 5}
    assert printed == {account: (state.status, sum(1 for t in tasks if t.account == account))
                       for account, state in replayed.accounts.items()}
    assert len(tasks) > 0 and any(status == "client" for status, _ in printed.values())
