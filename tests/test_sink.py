"""The sink's loop around the connector (workers.kafka.sink.deliver): a batch is retried until every
action has a result, whatever whole-batch trouble the connector runs into on the way."""

from __future__ import annotations

import asyncio
import logging

from connectors.base import ActionResult, ConnectorPaused, Outcome
from connectors.retry import RetryPolicy
from workers import metrics
from workers.actions import Action
from workers.kafka.sink import MAX_WAIT, deliver

ACTIONS = [Action(type="task", account="a", key=f"a|welcome|{n}", at="2026-01-01T00:00:00Z", trigger="t",
                  reason="r", kind="welcome_client", title="Welcome") for n in range(3)]


class Troubled:
    """A connector that raises the given errors, one per call, then applies everything."""

    name = "troubled"

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.applied: list[list[str]] = []

    def apply(self, actions):
        self.applied.append([a.key for a in actions])
        if self.errors:
            raise self.errors.pop(0)
        return [ActionResult(a, Outcome.DONE) for a in actions]


def run(connector, name: str) -> tuple[list | None, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    results = asyncio.run(deliver(ACTIONS, lambda: connector, name, RetryPolicy(initial_wait=0.5), sleep))
    return results, waits


def failures(name: str) -> float:
    return metrics.SINK_FAILURES.labels(name)._value.get()


def test_a_batch_the_connector_fails_unexpectedly_is_kept_and_retried_with_backoff(caplog):
    crm = Troubled(RuntimeError("database is locked"), OSError("disk hiccup"), RuntimeError("again"))
    with caplog.at_level(logging.ERROR, logger="clientshift.worker"):
        results, waits = run(crm, "troubled-1")
    assert [r.outcome for r in results] == [Outcome.DONE] * 3
    assert crm.applied == [[a.key for a in ACTIONS]] * 4  # the whole batch each time, nothing dropped
    assert waits == [1.0, 2.0, 4.0]
    assert failures("troubled-1") == 3
    logged = [r for r in caplog.records if r.getMessage() == "connector failed a batch; retrying it"]
    assert [(r.error, r.detail) for r in logged] == [("RuntimeError", "database is locked"),
                                                    ("OSError", "disk hiccup"), ("RuntimeError", "again")]


def test_the_wait_between_tries_is_capped():
    crm = Troubled(*[RuntimeError("down")] * 9)
    results, waits = run(crm, "troubled-2")
    assert len(results) == 3 and waits[-1] == MAX_WAIT and max(waits) == MAX_WAIT


def test_a_paused_crm_holds_the_batch_for_as_long_as_it_says_then_it_goes():
    crm = Troubled(ConnectorPaused("daily limit", resume_in=12.5))
    results, waits = run(crm, "troubled-3")
    assert waits == [12.5] and [r.outcome for r in results] == [Outcome.DONE] * 3
    assert metrics.PAUSED.labels("troubled-3")._value.get() == 0  # and the gauge is back down


def test_a_dry_run_has_no_connector_and_writes_nothing():
    assert asyncio.run(deliver(ACTIONS, lambda: None, "dry-run")) is None


def test_the_sink_reads_back_every_action_the_engine_plans_and_names_what_is_not_one():
    import orjson
    import pytest

    tag = Action(type="tag", account="a", key="a|tag|1", at="2026-01-01T00:00:00Z", trigger="t", reason="r",
                 name="relationship_status", value="client")
    for action in (tag, *ACTIONS):
        assert Action.from_json(orjson.dumps(action.to_dict())) == action
    bad = {
        b"{not json": "not valid JSON",
        b"[1]": "must be a JSON object, got list",
        orjson.dumps({**tag.to_dict(), "type": "email"}): "type must be 'tag' or 'task', got 'email'",
        orjson.dumps({k: v for k, v in tag.to_dict().items() if k != "value"}): "value: missing or not a string",
        orjson.dumps({**ACTIONS[0].to_dict(), "key": 7, "title": None}): "key, title: missing or not a string",
        orjson.dumps({**ACTIONS[0].to_dict(), "due": 5, "owner_id": ["o"]}): "due, owner_id: not a string",
    }
    for raw, reason in bad.items():
        with pytest.raises(ValueError, match=reason):
            Action.from_json(raw)
