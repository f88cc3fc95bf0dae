"""The worker formats a timestamp for every decision it writes, so format_rfc3339 has a fast path for
whole seconds; it must print exactly what datetime prints, everywhere."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, strategies as st

from workers.timeutil import format_rfc3339, parse_rfc3339


def by_datetime(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


@given(st.integers(min_value=-62_135_596_800, max_value=253_402_300_799))
def test_whole_seconds_print_as_datetime_prints_them(seconds):
    assert format_rfc3339(float(seconds)) == by_datetime(float(seconds))
    assert format_rfc3339(seconds) == by_datetime(seconds)


@given(st.floats(min_value=-62_135_596_800, max_value=253_402_300_799, allow_nan=False))
def test_any_instant_prints_as_datetime_prints_it(epoch):
    assert format_rfc3339(epoch) == by_datetime(epoch)


def test_edges_of_the_fast_path_round_trip():
    for text in ("1970-01-01T00:00:00Z", "1970-01-01T23:59:59Z", "2024-02-29T12:00:00Z",
                 "9999-12-31T23:59:59Z", "2026-01-01T00:00:00.250Z", "1969-12-31T23:59:59Z"):
        assert format_rfc3339(parse_rfc3339(text)) == text


def test_rounding_to_the_microsecond_matches_datetime_at_the_tricky_places():
    tricky = [0.0000005, 0.0000015, 0.0000025, 0.9999995, 0.9999994, 59.9999996, 86_399.9999996,
              1_767_225_599.9999996, 1_767_225_600.0005, 1_767_225_600.0015, 1_767_225_600.001,
              253_402_300_798.9999999, 253_402_300_799.5]
    for epoch in tricky:
        assert format_rfc3339(epoch) == by_datetime(epoch), epoch
