import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from factory import line
from workers.replay import read_event_files, replay
from workers.rules import load_policy
from workers.timeutil import parse_rfc3339

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def cli(*args, cwd=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "workers.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, input=stdin, timeout=120)


@pytest.mark.parametrize("stream,as_of", [("events.jsonl", None), ("events.jsonl", "2027-12-31T00:00:00Z"),
                                          ("late-and-interleaved.jsonl", None)])
def test_golden_replays(stream, as_of, clientshift_replay, clientshift_golden):
    result = clientshift_replay(EXAMPLES / stream, as_of=as_of)
    suffix = f"-as-of-{as_of[:10]}" if as_of else ""
    clientshift_golden(result, ROOT / "tests" / "golden" / f"{Path(stream).stem}{suffix}.json")


def test_late_event_is_applied_at_the_account_watermark():
    result = replay(read_event_files([EXAMPLES / "late-and-interleaved.jsonl"]))
    delta = result.accounts["delta"]
    # The late meeting (Jan 15) arrived after Feb 1: it counts as contact at Feb 1, not before.
    assert delta.last_meeting_at == parse_rfc3339("2026-01-15T10:00:00Z")
    decision = next(d for d in result.decisions if d.trigger == "event:late-feed/l-3")
    assert decision.at == parse_rfc3339("2026-02-01T10:00:00Z")


def test_cli_json_has_the_documented_shape_and_is_byte_identical_across_runs(tmp_path):
    first = cli("replay", EXAMPLES / "events.jsonl", "--format", "json", "--dry-run")
    second = cli("replay", EXAMPLES / "events.jsonl", "--format", "json", "--dry-run")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    doc = json.loads(first.stdout)
    assert set(doc) == {"accounts", "actions", "stats"}
    assert [a["account"] for a in doc["accounts"]] == sorted(a["account"] for a in doc["accounts"])
    assert doc["stats"] == {"events": 34, "duplicates": 1, "invalid": 0, "too_late": 0}
    tag = next(a for a in doc["actions"] if a["type"] == "tag")
    assert {"account", "type", "key", "at", "name", "value"} <= set(tag)
    task = next(a for a in doc["actions"] if a["type"] == "task")
    assert {"account", "type", "key", "at", "kind", "title"} <= set(task)
    times = [a["at"] for a in doc["actions"]]
    assert times == sorted(times)  # the example stream is time-ordered, so the actions are too


def test_cli_reports_invalid_lines_with_file_and_line_and_goes_on(tmp_path):
    stream = tmp_path / "mixed.jsonl"
    stream.write_text("\n".join([
        line("order.placed", "a", "2026-01-01T00:00:00Z", order_id="1"),
        "{broken",
        line("order.placed", "b", "2026-01-02T00:00:00Z"),
        line("csm.assigned", "c", "2026-01-03T00:00:00Z", owner_id="5"),
    ]) + "\n")
    result = cli("replay", stream, "--format", "json", "--dry-run")
    assert result.returncode == 1
    assert f"{stream}:2: invalid event: not valid JSON" in result.stderr
    assert f"{stream}:3: invalid event: data: \"order_id\" is a required property" in result.stderr
    doc = json.loads(result.stdout)
    assert [(a["account"], a["status"]) for a in doc["accounts"]] == [("a", "customer"), ("c", "client")]
    assert doc["stats"]["invalid"] == 2


def test_replaying_twice_into_the_sandbox_leaves_it_unchanged(tmp_path):
    db = tmp_path / "crm.db"
    first = cli("replay", EXAMPLES / "events.jsonl", "--sandbox-db", db)
    assert first.returncode == 0, first.stderr
    dump = lambda: list(sqlite3.connect(db).iterdump())  # noqa: E731
    after_first = dump()
    second = cli("replay", EXAMPLES / "events.jsonl", "--sandbox-db", db)
    assert second.returncode == 0
    assert dump() == after_first
    assert "36 duplicate" in second.stderr and "done" not in second.stderr
    shown = cli("crm", "show", "--sandbox-db", db, "--format", "json")
    snapshot = json.loads(shown.stdout)
    statuses = {t["account"]: t["value"] for t in snapshot["tags"]}
    replayed = json.loads(cli("replay", EXAMPLES / "events.jsonl", "--format", "json", "--dry-run").stdout)
    assert statuses == {a["account"]: a["status"] for a in replayed["accounts"]}
    assert len(snapshot["tasks"]) == sum(1 for a in replayed["actions"] if a["type"] == "task")


def test_table_output_names_every_account_and_status(tmp_path):
    result = cli("replay", EXAMPLES / "events.jsonl", "--sandbox-db", tmp_path / "crm.db")
    assert result.returncode == 0
    for account, status in [("acme", "client"), ("hooli", "prospect"), ("wayne", "customer")]:
        row = next(r for r in result.stdout.splitlines() if f" {account} " in r)
        assert status in row


def test_piped_tables_keep_their_rows_whole_unless_columns_says_otherwise():
    """Without a terminal Rich would cut tables to 80 columns: `acme`'s rule and tag would read
    `formal_relat…` and `relationship…` in a file or a CI log."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}

    def acme_row(extra_env):
        result = subprocess.run([sys.executable, "-m", "workers.cli", "replay", EXAMPLES / "events.jsonl", "--dry-run"],
                                capture_output=True, text=True, timeout=120, env={**env, **extra_env})
        assert result.returncode == 0, result.stderr
        return next(r for r in result.stdout.splitlines() if " acme " in r)

    whole = acme_row({})
    assert "formal_relationship" in whole and "relationship_status=client" in whole and "…" not in whole
    assert "…" in acme_row({"COLUMNS": "80"})


def test_dry_run_writes_nothing(tmp_path):
    result = cli("replay", EXAMPLES / "events.jsonl", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_replaying_the_stream_twice_in_one_run_adds_nothing():
    lines = list(read_event_files([EXAMPLES / "events.jsonl"]))
    once = replay(lines)
    twice = replay(lines + lines)
    assert twice.actions == once.actions
    assert twice.stats["duplicates"] == once.stats["duplicates"] + len(lines)


def test_python_api_with_a_custom_rules_file(tmp_path):
    rules = (ROOT / "workers" / "rules" / "default.yaml").read_text().replace("orders_180d >= 3", "orders_180d >= 1")
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    result = replay(read_event_files([EXAMPLES / "events.jsonl"]), load_policy(path))
    offers = [a.account for a in result.actions if a.kind == "offer_csm_plan"]
    assert "globex" in offers and "jane.doe" in offers
