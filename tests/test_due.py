"""workers.kafka.due: due deadline rows in time order, checked against the table they index."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.kafka.due import SLACK, DueIndex, is_deadline


def row(due: float, partition: int = 0) -> dict:
    return {"due": due, "partition": partition}


def test_due_rows_come_out_in_time_order_and_only_once():
    table = {"a": row(30.0), "b": row(10.0), "c": row(20.0), "d": row(99.0)}
    index = DueIndex()
    index.rebuild(table.items())
    assert [account for account, _ in index.due(30.0, table.get)] == ["b", "c", "a"]
    assert list(index.due(30.0, table.get)) == []  # taken out: the timer does not see them twice
    assert [account for account, _ in index.due(100.0, table.get)] == ["d"]


def test_a_row_that_moved_or_went_comes_out_at_its_new_time_or_not_at_all():
    table = {"a": row(10.0), "b": row(10.0)}
    index = DueIndex()
    index.rebuild(table.items())
    table["a"] = row(50.0)  # what the worker's keep() does: the table, and a push
    index.add("a", 50.0)
    del table["b"]  # no deadline any more
    assert list(index.due(20.0, table.get)) == []
    assert list(index.due(50.0, table.get)) == [("a", row(50.0))]


def test_entries_left_by_rows_that_moved_do_not_pile_up():
    # One account whose deadline moves on with every event, months ahead: each move leaves an entry that
    # will not come up for months. The worker's timer rebuilds a stale index from the table.
    table: dict[str, dict] = {f"other-{n}": row(5e9 + n) for n in range(3000)}
    index = DueIndex()
    index.rebuild(table.items())
    largest = 0
    for n in range(50_000):
        table["a"] = row(2e9 + n)
        index.add("a", 2e9 + n)
        largest = max(largest, len(index))
        if index.stale:
            index.rebuild(table.items())
    assert largest <= 2 * 3001 + SLACK + 1
    assert len(index) <= 2 * 3001 + SLACK
    assert list(index.due(2e9 + 50_000, table.get)) == [("a", row(2e9 + 49_999))]


def test_a_new_index_is_stale_until_built_from_the_table():
    index = DueIndex()
    assert index.stale
    index.rebuild([("a", row(1.0))])
    assert not index.stale and len(index) == 1


NOT_DEADLINES = {"no due": {"partition": 0}, "due as text": {"due": "tomorrow", "partition": 0},
                 "due not a number": {"due": float("nan"), "partition": 0}, "due true": {"due": True, "partition": 0},
                 "no partition": {"due": 1.0}, "partition as text": {"due": 1.0, "partition": "0"},
                 "a string": "soon", "a list": [1.0, 0], "nothing": None}


def test_rows_that_are_not_deadlines_are_left_out_and_named_and_never_come_out_as_due():
    # Restored from a changelog another writer wrote to: they used to crash the deadline timer.
    table: dict = {"a": row(10.0), **NOT_DEADLINES, 5: row(10.0), ("x",): row(10.0)}
    index = DueIndex()
    left_out = index.rebuild(table.items())
    assert left_out == [*NOT_DEADLINES, 5, ("x",)]
    assert list(index.due(1e9, table.get)) == [("a", row(10.0))]
    assert not any(is_deadline("a", value) for value in NOT_DEADLINES.values())
    assert not is_deadline(5, row(10.0))
    assert is_deadline("a", row(10.0)) and is_deadline("a", {"due": 7, "partition": 3})


def test_a_row_replaced_by_one_that_is_not_a_deadline_does_not_come_out():
    table: dict = {"a": row(10.0), "b": row(10.0)}
    index = DueIndex()
    index.rebuild(table.items())
    table["a"] = {"due": 10.0}  # restored over the indexed row before the next rebuild
    assert list(index.due(20.0, table.get)) == [("b", row(10.0))]


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.floats(0, 100)), max_size=40), st.floats(0, 100))
def test_it_finds_exactly_what_a_scan_of_the_table_finds(writes, now):
    table: dict[str, dict] = {}
    index = DueIndex()
    index.rebuild(table.items())
    for account, due in writes:
        if table.get(account) != row(due):
            table[account] = row(due)
            index.add(account, due)
    scanned = sorted((entry["due"], account) for account, entry in table.items() if entry["due"] <= now)
    assert [(entry["due"], account) for account, entry in index.due(now, table.get)] == scanned
