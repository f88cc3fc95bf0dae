"""The sink agent's work on one batch of actions: through the connector, retried until the connector
has given a result for every action; what is not an action, or is refused for good, goes to the DLQ.

The agent acknowledges a batch only after this returns, so nothing is committed before then. Outcomes
per action (done, duplicate, retryable, permanent) are the connector's job and the one retry policy's
(connectors.retry); this is the loop around them for whole-batch trouble: a CRM that refuses all
writes for a while (`ConnectorPaused`), or a connector that fails in a way it did not classify (a
bug, a local file locked by another process). Either way the batch waits and goes again: dropping it
would lose its actions until the next restart, dead-lettering it would blame the actions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Awaitable, Callable, Sequence

from connectors.base import ActionResult, Connector, ConnectorPaused, Outcome
from connectors.retry import RetryPolicy, apply_with_retry
from workers import metrics
from workers.actions import Action
from workers.kafka.dead_letters import DeadLetters

log = logging.getLogger("clientshift.worker")

MAX_WAIT = 60.0  # seconds between two tries of one batch, at most


async def deliver(actions: Sequence[Action], connector: Callable[[], Connector | None], name: str,
                  policy: RetryPolicy = RetryPolicy(),
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> list[ActionResult] | None:
    """Results for every action, in order; None on a dry run (`connector()` gives no connector)."""
    failures = 0
    while True:
        try:
            target = connector()
            if target is None:
                return None
            with metrics.CRM_LATENCY.labels(name).time():
                results = await asyncio.to_thread(apply_with_retry, target, actions, policy)
            metrics.PAUSED.labels(name).set(0)
            return results
        except ConnectorPaused as paused:
            metrics.PAUSED.labels(name).set(1)
            log.error("CRM refuses writes; sink paused", extra={"connector": name, "resume_in": paused.resume_in})
            await sleep(min(paused.resume_in, MAX_WAIT))
        except Exception as exc:  # noqa: BLE001 - whatever it is, the batch is kept and tried again
            failures += 1
            wait = min(policy.initial_wait * 2 ** failures, MAX_WAIT)
            metrics.SINK_FAILURES.labels(name).inc()
            # The type and the start of the message only: a connector's error may quote a CRM response.
            log.error("connector failed a batch; retrying it", extra={
                "connector": name, "error": type(exc).__name__, "detail": str(exc)[:200], "retry_in": wait,
                "actions": len(actions)})
            await sleep(wait)


async def apply_batch(values: Sequence[bytes], connector: Callable[[], Connector | None], name: str,
                      letters: DeadLetters) -> None:
    """One batch the sink agent took from the actions topic, through the connector. A record that is not
    an action, and an action the CRM refused for good, go to the DLQ; the rest is counted by outcome."""
    actions = []
    for value in values:
        try:
            actions.append(Action.from_json(value))
        except ValueError as exc:  # not ours: one record someone else wrote must not stop the sink
            await letters.send("action", f"not an action: {exc}", value, None)
    if not actions:
        return
    results = await deliver(actions, connector, name)
    if results is None:  # dry run: planned, not written
        metrics.ACTIONS.labels(name, "dry_run").inc(len(actions))
        return
    for outcome, count in Counter(result.outcome for result in results).items():
        metrics.ACTIONS.labels(name, outcome.value).inc(count)
    for result in results:
        if result.outcome is Outcome.PERMANENT:
            await letters.send("action", result.detail, json.dumps(result.action.to_dict()).encode(), None,
                               result.action.account.encode(), account=result.action.account,
                               key=result.action.key, connector=name)
