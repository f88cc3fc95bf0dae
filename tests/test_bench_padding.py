"""workers.bench_replay.padded: `bench worker --event-bytes` makes events the requested size without
changing what the engine decides (the padding is text no rule reads)."""

from __future__ import annotations

import json

from workers.bench_replay import generate, padded
from workers.events import parse_event
from workers.replay import replay
from workers.rules.policy import load_policy


def test_padded_events_are_the_requested_size_valid_and_decide_the_same():
    stream = generate(400, 40, seed=3)
    big = padded(stream, 1_000, seed=3)
    sizes = [len(json.dumps(event)) for event in big]
    assert all(990 <= size <= 1_000 for size in sizes), (min(sizes), max(sizes))
    for event in big:
        parse_event(json.dumps(event).encode())  # still the contract
    policy = load_policy(None)
    plain, padded_result = replay(stream, policy), replay(big, policy)
    assert padded_result.to_json_dict() == plain.to_json_dict()
    assert plain.actions  # a stream that decides something, so the comparison means something


def test_an_event_already_that_large_is_left_as_it_is():
    stream = generate(20, 5, seed=3)
    assert padded(stream, 50, seed=3) == stream
