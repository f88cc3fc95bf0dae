"""Property tests: determinism, idempotence, and per-account independence of replay."""

from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.recording import RecordingConnector
from workers.replay import replay
from workers.rules import load_policy
from workers.timeutil import format_rfc3339

POLICY = load_policy()
START = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
ACCOUNTS = ["a", "b", "c"]


@st.composite
def event_data(draw, kind):
    ref = draw(st.sampled_from(["1", "2"]))
    return {
        "order.placed": lambda: {"order_id": ref + draw(st.sampled_from(["x", "y", "z"]))},
        "order.refunded": lambda: {"order_id": ref + "x"},
        "subscription.started": lambda: {"subscription_id": ref, "plan": draw(st.sampled_from(["csm", "basic"]))},
        "subscription.changed": lambda: {"subscription_id": ref, "plan": draw(st.sampled_from(["success", "basic"]))},
        "subscription.cancelled": lambda: {"subscription_id": ref},
        "csm.assigned": lambda: {"owner_id": ref},
        "csm.unassigned": dict,
        "contract.signed": lambda: {"contract_id": ref, "start": draw(st.sampled_from(["2026-01-01", "2026-03-01"])),
                                    "end": draw(st.sampled_from(["2026-09-01", "2027-06-01", None]))},
        "contract.ended": lambda: {"contract_id": ref},
        "service.purchased": lambda: {"service": draw(st.sampled_from(["consulting", "onboarding"]))},
        "meeting.held": dict,
        "ticket.opened": dict,
    }[kind]()


@st.composite
def streams(draw):
    """A time-ordered stream over a few accounts, with some duplicate deliveries mixed in."""
    size = draw(st.integers(1, 25))
    offsets = sorted(draw(st.lists(st.floats(0, 500), min_size=size, max_size=size)))
    events = []
    for n, offset in enumerate(offsets):
        kind = draw(st.sampled_from(["order.placed", "order.refunded", "subscription.started",
                                     "subscription.changed", "subscription.cancelled", "csm.assigned",
                                     "csm.unassigned", "contract.signed", "contract.ended", "service.purchased",
                                     "meeting.held", "ticket.opened"]))
        events.append({"specversion": "1.0", "id": f"p-{n}", "source": "prop", "type": f"crm.{kind}",
                       "subject": draw(st.sampled_from(ACCOUNTS)),
                       "time": format_rfc3339(round(START + offset * 86_400)), "data": draw(event_data(kind))})
        if draw(st.booleans()) and draw(st.booleans()):
            events.append(dict(events[-1]))
    return events


AS_OF = START + 700 * 86_400
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(streams())
def test_replay_is_deterministic(stream):
    first = replay(stream, POLICY, as_of=AS_OF)
    second = replay(stream, POLICY, as_of=AS_OF)
    assert first.to_json() == second.to_json()
    assert first.decisions == second.decisions


@FAST
@given(streams())
def test_replaying_twice_adds_no_actions(stream):
    crm = RecordingConnector()
    first = replay(stream, POLICY, as_of=AS_OF, connector=crm)
    written = list(crm.applied)
    again = replay(stream, POLICY, as_of=AS_OF, connector=crm)
    assert crm.applied == written
    assert all(r.outcome.value == "duplicate" for r in again.outcomes)
    doubled = replay(stream + stream, POLICY, as_of=AS_OF)
    assert doubled.actions == first.actions


@FAST
@given(streams())
def test_one_account_alone_gets_what_the_whole_stream_gives_it(stream):
    whole = replay(stream, POLICY, as_of=AS_OF)
    for account in {e["subject"] for e in stream}:
        alone = replay([e for e in stream if e["subject"] == account], POLICY, as_of=AS_OF)
        assert alone.accounts[account] == whole.accounts[account]
        assert alone.actions == [a for a in whole.actions if a.account == account]
        assert alone.decisions == [d for d in whole.decisions if d.account == account]


@FAST
@given(streams())
def test_the_changelog_row_is_the_state_as_json_and_reads_back_as_the_same_state(stream):
    import orjson

    from workers.state import AccountState

    for state in replay(stream, POLICY, as_of=AS_OF).accounts.values():
        row = state.to_json()
        assert row == orjson.dumps(state.to_dict())
        assert AccountState.from_dict(orjson.loads(row)) == state
