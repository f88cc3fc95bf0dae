"""workers.kafka.row_sizes: the early warning for state rows that approach Kafka's message limit."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY

from workers.kafka.row_sizes import RowSizes
from workers.state import AccountState


def gauge() -> float | None:
    return REGISTRY.get_sample_value("clientshift_state_row_bytes_max")


def test_each_account_over_the_mark_is_warned_about_once_with_its_size(caplog):
    sizes = RowSizes(warn_at=1000)
    with caplog.at_level(logging.WARNING, logger="clientshift.worker"):
        for account, size in [("a", 1500), ("b", 1200), ("a", 1600), ("b", 1300), ("c", 2000)]:
            sizes.over(account, size)
    warned = [(r.account, r.row_bytes) for r in caplog.records if r.getMessage() == "account state row is large"]
    assert warned == [("a", 1500), ("b", 1200), ("c", 2000)]


def test_the_gauge_holds_the_largest_row_written_so_far():
    sizes = RowSizes(warn_at=1000)
    start = sizes.largest
    base = int(gauge() or 0)  # the registry is process-wide: start above whatever another test set
    for size in (base + 10, base + 30, base + 20):
        sizes.largest_of_batch(size)
    assert gauge() == base + 30 and sizes.largest == base + 30 and start == 0


def test_a_row_grows_with_history_so_the_warning_has_something_to_watch():
    """The reason for the watch: every event id stays in the row."""
    from workers.engine import Engine
    from workers.events import parse_event
    from workers.rules.policy import load_policy

    engine = Engine(load_policy(None))
    state = AccountState(account="acme")
    sizes = []
    for n in range(200):
        event = parse_event({"specversion": "1.0", "id": f"evt-{n:05d}", "source": "test", "type": "crm.meeting.held",
                             "subject": "acme", "time": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}Z", "data": {}})
        state = engine.handle(state, event).state
        sizes.append(len(state.to_json()))
    assert sizes[-1] - sizes[99] >= 100 * len("test/evt-00000")  # at least the ids kept
