"""The one retry policy for every connector: retry what is retryable, with backoff and jitter, honour
a CRM's Retry-After, give up into a permanent outcome (which the caller dead-letters), never drop."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from connectors.base import ActionResult, Connector, Outcome
from workers.actions import Action


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 30.0
    jitter: float = 0.5
    # A CRM's Retry-After is obeyed up to this; beyond it something is wrong and backoff resumes.
    max_retry_after: float = 300.0

    def waiter(self) -> Callable[[RetryCallState], float]:
        backoff = wait_exponential_jitter(multiplier=self.initial_wait, max=self.max_wait, jitter=self.jitter)

        def wait(state: RetryCallState) -> float:
            pending: list[ActionResult] = state.outcome.result() if state.outcome else []
            asked = max((r.retry_after or 0.0 for r in pending), default=0.0)
            return max(min(asked, self.max_retry_after), backoff(state))

        return wait


def _last_result(state: RetryCallState) -> object:
    # After the last attempt, its result (the actions still retryable) rather than tenacity's RetryError.
    return state.outcome.result() if state.outcome else None


def apply_with_retry(connector: Connector, actions: Sequence[Action], policy: RetryPolicy = RetryPolicy(),
                     sleep: Callable[[float], None] = time.sleep) -> list[ActionResult]:
    """Apply actions, retrying the retryable ones; returns a final result for every action, in order.

    Retryable results left after the last attempt come back as PERMANENT ("gave up after N attempts"),
    so nothing is silently lost: the caller dead-letters them.
    """
    final: dict[str, ActionResult] = {}
    pending = list(actions)

    def attempt() -> list[ActionResult]:
        nonlocal pending
        results = connector.apply(pending)
        retry = []
        for result in results:
            final[result.action.key] = result
            if result.outcome is Outcome.RETRYABLE:
                retry.append(result)
        pending = [r.action for r in retry]
        return retry

    retrying = Retrying(stop=stop_after_attempt(policy.attempts), wait=policy.waiter(), sleep=sleep,
                        retry=retry_if_result(bool), retry_error_callback=_last_result)
    retrying(attempt)
    out = []
    for action in actions:
        result = final[action.key]
        if result.outcome is Outcome.RETRYABLE:
            result = ActionResult(action, Outcome.PERMANENT,
                                  f"gave up after {policy.attempts} attempts: {result.detail}")
        out.append(result)
    return out
