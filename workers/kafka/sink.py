"""One batch of actions through the connector, for the sink agent: retried until the connector has
given a result for every action.

The agent acknowledges a batch only after this returns, so nothing is committed before then. Outcomes
per action (done, duplicate, retryable, permanent) are the connector's job and the one retry policy's
(connectors.retry); this is the loop around them for whole-batch trouble: a CRM that refuses all
writes for a while (`ConnectorPaused`), or a connector that fails in a way it did not classify (a
bug, a local file locked by another process). Either way the batch waits and goes again: dropping it
would lose its actions until the next restart, dead-lettering it would blame the actions.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Sequence

from connectors.base import ActionResult, Connector, ConnectorPaused
from connectors.retry import RetryPolicy, apply_with_retry
from workers import metrics
from workers.actions import Action

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
