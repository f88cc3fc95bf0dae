"""The injectable wall clock of the deadline timer (workers.kafka.clock)."""

from __future__ import annotations

import pytest

from workers.kafka.clock import make_clock
from workers.timeutil import parse_rfc3339


def test_a_file_clock_follows_its_file_and_keeps_its_time_while_the_file_is_being_rewritten(tmp_path):
    path = tmp_path / "clock"
    path.write_text("2026-01-01T00:00:00Z\n")
    clock = make_clock(f"file:{path}")
    assert clock() == parse_rfc3339("2026-01-01T00:00:00Z")
    path.write_text("")  # the moment between a rewrite's truncation and its write
    assert clock() == parse_rfc3339("2026-01-01T00:00:00Z")
    path.write_text("2027-04-01T00:00:00Z")
    assert clock() == parse_rfc3339("2027-04-01T00:00:00Z")


@pytest.mark.parametrize("content", ["", "next tuesday"])
def test_a_file_clock_with_no_time_to_give_says_which_file(tmp_path, content):
    path = tmp_path / "clock"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"clock file {path}"):
        make_clock(f"file:{path}")()


def test_a_file_clock_refuses_a_file_that_holds_something_else_than_a_time(tmp_path):
    path = tmp_path / "clock"
    path.write_text("2026-01-01T00:00:00Z")
    clock = make_clock(f"file:{path}")
    clock()
    path.write_text("2026-01-01")  # no time of day, no offset: not a moment
    with pytest.raises(ValueError, match="has no UTC offset"):
        clock()
