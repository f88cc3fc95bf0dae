"""What the worker holds between write-outs (workers.kafka.pending.Pending): a failed write-out is put back
in front of what came after it, so the retry sends everything, in order, with each account's latest state."""

from __future__ import annotations

from workers.engine import Engine
from workers.kafka.pending import Pending, WriteOutClock
from workers.rules import load_policy
from factory import ev

ENGINE = Engine(load_policy())


def step(account: str, n: int, previous=None):
    state = previous or ENGINE.new_state(account)
    return ENGINE.handle(state, ev("csm.assigned", account, f"2026-01-0{n}T00:00:00Z", owner_id=str(n)))


def test_a_failed_write_out_goes_back_in_front_with_the_latest_states():
    failed, later = Pending(), Pending()
    first = step("a", 1)
    failed.add(first, partition=2)
    failed.events = 1
    later.add(step("a", 2, first.state), partition=2)
    later.add(step("b", 3), partition=0)
    later.events = 2
    retry = failed.then(later)
    assert [a.key for a in retry.actions] == [a.key for a in failed.actions + later.actions]
    assert retry.actions and retry.decisions == failed.decisions + later.decisions
    assert retry.states["a"] == later.states["a"] and retry.partition_of("b") == 0
    assert retry.events == 3 and bool(retry) and not Pending()


def test_a_steady_trickle_is_written_out_by_the_second_look_at_the_latest():
    clock = WriteOutClock(half_batch=250)
    batch = Pending()
    assert not clock.due(batch)  # nothing to write
    clock.looked_at(batch)
    batch.events = 1  # a decision right after a look
    assert not clock.due(batch)  # young: may still gather company
    clock.looked_at(batch)
    batch.events = 2  # events keep coming in between looks, as a steady trickle does
    assert clock.due(batch)  # it held decisions a look ago: written now, not at the next commit
    fresh = Pending()  # what the write-out left behind
    fresh.events = 1
    assert not clock.due(fresh)


def test_a_half_full_batch_is_written_out_at_the_first_look():
    clock = WriteOutClock(half_batch=250)
    batch = Pending()
    batch.events = 250
    assert clock.due(batch)
