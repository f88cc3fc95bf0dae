"""The harness that drives worker processes (workers.kafka.supervisor): when a worker stops answering,
the error carries the worker's own last words, so a crash in CI explains itself."""

from __future__ import annotations

import pytest

from workers.kafka.supervisor import WorkerNotAnswering, WorkerProcess


def test_a_worker_that_stops_answering_is_reported_with_the_end_of_its_log(tmp_path):
    log = tmp_path / "worker.log"
    worker = WorkerProcess({}, log, command=("-c", "print('x' * 5000); print('Crashed reason=ValueError')"))
    worker.start().process.wait()
    with pytest.raises(WorkerNotAnswering) as caught:
        worker.get("/status")
    message = str(caught.value)
    assert f"port {worker.port}" in message and "exited with 0" in message and str(log) in message
    assert message.endswith("Crashed reason=ValueError\n")  # the log's end, not its start
    assert len(message) < 3300
