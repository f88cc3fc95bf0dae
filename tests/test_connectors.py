import pytest

from connectors.base import ActionResult, Connector, Outcome
from connectors.recording import RecordingConnector
from connectors.registry import UnknownConnector, available, load_connector
from connectors.retry import RetryPolicy, apply_with_retry
from connectors.sandbox import SandboxConnector
from workers.actions import Action


def tag(account, value, key):
    return Action(type="tag", account=account, key=key, at="2026-01-01T00:00:00Z", trigger="t", reason="r",
                  name="relationship_status", value=value)


def task(account, key, kind="welcome_client"):
    return Action(type="task", account=account, key=key, at="2026-01-01T00:00:00Z", trigger="t", reason="r",
                  kind=kind, title="Welcome", priority="MEDIUM", due="2026-01-04T00:00:00Z")


def test_sandbox_refuses_a_second_task_with_the_same_key_across_instances(tmp_path):
    db = tmp_path / "crm.db"
    first = SandboxConnector(db)
    assert [r.outcome for r in first.apply([task("a", "k1"), task("a", "k1")])] == [Outcome.DONE, Outcome.DUPLICATE]
    first.close()
    reopened = SandboxConnector(db)
    assert reopened.apply([task("a", "k1")])[0].outcome is Outcome.DUPLICATE
    assert reopened.apply([task("a", "k2")])[0].outcome is Outcome.DONE
    assert [t["key"] for t in reopened.snapshot()["tasks"]] == ["k1", "k2"]


def test_sandbox_waits_its_turn_while_another_process_writes_to_a_new_file(tmp_path):
    import sqlite3

    db = tmp_path / "crm.db"
    other = sqlite3.connect(db, isolation_level=None)  # another worker, first on the file: rollback mode
    other.execute("CREATE TABLE elsewhere(x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO elsewhere VALUES (1)")  # and mid-write: SQLite refuses the WAL switch at once
    waits = []

    def other_finishes_while_we_wait(seconds: float) -> None:
        waits.append(seconds)
        if other.in_transaction:
            other.execute("COMMIT")

    crm = SandboxConnector(db, sleep=other_finishes_while_we_wait)
    assert waits  # it did find the file locked, and waited instead of failing
    assert crm.apply([task("a", "k1")])[0].outcome is Outcome.DONE
    assert crm._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    crm.close()
    other.close()


def test_sandbox_tags_compare_before_write_and_remember_keys(tmp_path):
    crm = SandboxConnector(tmp_path / "crm.db")
    outcomes = [r.outcome for r in crm.apply([tag("a", "customer", "k1"), tag("a", "customer", "k2"),
                                              tag("a", "client", "k3"), tag("a", "customer", "k1")])]
    assert outcomes == [Outcome.DONE, Outcome.DUPLICATE, Outcome.DONE, Outcome.DUPLICATE]
    assert crm.snapshot()["tags"][0]["value"] == "client"  # the replayed old key k1 did not walk it back


def test_recording_connector_dedupes_by_key(tmp_path):
    out = tmp_path / "actions.jsonl"
    crm = RecordingConnector(out)
    crm.apply([task("a", "k1"), task("a", "k1"), tag("a", "client", "k2")])
    crm.close()
    assert [a.key for a in crm.applied] == ["k1", "k2"]
    assert len(out.read_text().splitlines()) == 2


def test_registry_finds_built_in_connectors_through_entry_points(tmp_path):
    assert {"sandbox", "recording"} <= set(available())
    crm = load_connector("sandbox", {"env": {}, "sandbox_db": str(tmp_path / "x.db")})
    assert isinstance(crm, Connector) and crm.name == "sandbox"
    with pytest.raises(UnknownConnector, match="no connector named 'nope'"):
        load_connector("nope", {"env": {}})


class Flaky:
    """A connector that fails each action a set number of times before accepting it."""

    name = "flaky"

    def __init__(self, failures, retry_after=None, permanent=()):
        self.failures = dict(failures)
        self.retry_after = retry_after
        self.permanent = set(permanent)
        self.calls = []

    def apply(self, actions):
        self.calls.append([a.key for a in actions])
        out = []
        for action in actions:
            if action.key in self.permanent:
                out.append(ActionResult(action, Outcome.PERMANENT, "400: bad property"))
            elif self.failures.get(action.key, 0) > 0:
                self.failures[action.key] -= 1
                out.append(ActionResult(action, Outcome.RETRYABLE, "503", retry_after=self.retry_after))
            else:
                out.append(ActionResult(action, Outcome.DONE))
        return out

    def close(self):
        pass


def test_retry_policy_retries_only_what_failed_and_honours_retry_after():
    waits = []
    crm = Flaky({"k2": 2}, retry_after=7.0)
    actions = [task("a", "k1"), task("a", "k2"), task("a", "k3")]
    results = apply_with_retry(crm, actions, RetryPolicy(attempts=5, initial_wait=0.01, max_wait=1), waits.append)
    assert [r.outcome for r in results] == [Outcome.DONE] * 3
    assert crm.calls == [["k1", "k2", "k3"], ["k2"], ["k2"]]
    assert waits and all(w >= 7.0 for w in waits)


def test_retry_policy_gives_up_into_permanent_never_drops():
    crm = Flaky({"k1": 99}, permanent={"k2"})
    waits = []
    results = apply_with_retry(crm, [task("a", "k1"), task("a", "k2")],
                               RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.05), waits.append)
    assert [r.outcome for r in results] == [Outcome.PERMANENT, Outcome.PERMANENT]
    assert results[0].detail.startswith("gave up after 3 attempts: 503")
    assert results[1].detail == "400: bad property"
    assert len(crm.calls) == 3 and len(waits) == 2
    assert waits[1] > 0
