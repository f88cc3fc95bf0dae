"""The corrections to Faust's ordering that the worker's delivery guarantee relies on (workers.kafka.faust_fixes).

The crash test exercises them against the real broker; these pin the orderings themselves, which a
crash test can only catch when its timing happens to hit the race."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from workers.kafka import faust_fixes


class Consumer:
    """Records the calls Faust's recovery makes, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def resume_partitions(self, tps) -> None:
        self.calls.append(f"resume {sorted(tps)}")

    async def perform_seek(self) -> None:
        await asyncio.sleep(0)  # a real seek yields to the loop: that is when records used to slip in
        self.calls.append("seek")


def recovery_with(consumer: Consumer) -> SimpleNamespace:
    return SimpleNamespace(app=SimpleNamespace(consumer=consumer))


def test_stream_partitions_are_resumed_only_after_the_seek(monkeypatch):
    async def faust_order(self, generation_id: int = 0) -> None:
        # What Faust's Recovery.on_recovery_completed does: resume, then seek.
        self.app.consumer.resume_partitions({"events-0", "events-1"})
        await self.app.consumer.perform_seek()
        self.app.consumer.calls.append("ready")

    monkeypatch.setattr(faust_fixes, "_on_recovery_completed", faust_order)
    consumer = Consumer()
    asyncio.run(faust_fixes._seek_then_resume(recovery_with(consumer)))
    assert consumer.calls == ["seek", "resume ['events-0', 'events-1']", "ready"]
    assert "resume_partitions" not in vars(consumer) and "perform_seek" not in vars(consumer)


def test_partitions_held_back_are_resumed_when_recovery_returns_without_a_seek(monkeypatch):
    async def rebalancing_again(self, generation_id: int = 0) -> None:
        self.app.consumer.resume_partitions({"events-2"})  # then a new generation makes Faust return early

    monkeypatch.setattr(faust_fixes, "_on_recovery_completed", rebalancing_again)
    consumer = Consumer()
    asyncio.run(faust_fixes._seek_then_resume(recovery_with(consumer)))
    assert consumer.calls == ["resume ['events-2']"]
    assert "perform_seek" not in vars(consumer)


def test_the_worker_writes_out_before_faust_flushes_for_a_commit(monkeypatch):
    order: list[str] = []

    async def faust_flush(self) -> None:
        order.append("faust flush")

    async def write_out() -> None:
        order.append("write-out")

    monkeypatch.setattr(faust_fixes, "_producer_flush", faust_flush)
    class Producer:  # weak-referenceable, as Faust's is
        pass

    producer = Producer()
    app = SimpleNamespace(producer=producer)
    faust_fixes.flush_before_commit(app, write_out)
    faust_fixes.flush_before_commit(app, write_out)  # registering twice (an agent restart) runs it once
    asyncio.run(faust_fixes._flush_with_pending_outputs(producer))
    assert order == ["write-out", "faust flush"]
