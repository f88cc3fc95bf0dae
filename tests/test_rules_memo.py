"""Memoised rule answers are CEL's answers: for the default policy and for policies whose conditions
defeat bucketing (arithmetic on a day counter, raw properties)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.rules import load_policy
from workers.rules.memo import Memo
from workers.rules.policy import parse_policy

DEFAULT = load_policy()

TRICKY = parse_policy("""
version: 1
status:
  - {name: busy, status: client, when: "days_since_contact != null && days_since_contact * 2 < meetings"}
  - {name: vip, status: client, when: "'tier' in properties && properties['tier'] == 'gold'"}
  - {name: rest, status: customer, when: "true"}
flags:
  - {name: soon, when: "contract_ends_in_days != null && contract_ends_in_days <= 30 && status == 'client'"}
  - {name: quiet, when: "days_since_contact != null && 45 < days_since_contact"}
tag: {name: relationship_status}
tasks: []
""")

day_counter = st.one_of(st.none(), st.integers(min_value=-400, max_value=400))
facts = st.fixed_dictionaries({
    "has_csm": st.booleans(), "csm_plan": st.booleans(), "professional_services": st.booleans(),
    "long_contract": st.booleans(), "ever_purchased": st.booleans(),
    "orders_180d": st.integers(0, 6), "meetings": st.integers(0, 900), "tickets": st.integers(0, 5),
    "days_since_contact": day_counter, "contract_ends_in_days": day_counter,
    "account_kind": st.sampled_from(["", "company", "person"]),
    "active_plans": st.lists(st.sampled_from(["csm", "basic"]), max_size=2),
    "properties": st.dictionaries(st.sampled_from(["tier", "region"]), st.sampled_from(["gold", "silver"])),
})


def uncached(policy):
    return replace(policy, _status_memo=None, _flags_memo=None)


@settings(max_examples=400, deadline=None)
@given(st.lists(facts, min_size=1, max_size=30))
def test_memoised_answers_equal_cel_answers(many):
    for policy in (DEFAULT, TRICKY):
        plain = uncached(policy)
        for f in many:  # one memo across the whole list, so later facts hit entries earlier ones made
            status = policy.decide_status(f)
            assert status == plain.decide_status(f)
            with_status = {**f, "status": status[0]}
            assert policy.decide_flags(with_status) == plain.decide_flags(with_status)


def test_the_default_policy_buckets_its_day_counters_and_reads_few_facts():
    assert DEFAULT._flags_memo.buckets == {"days_since_contact": (91,), "contract_ends_in_days": (61,)}
    assert set(DEFAULT._status_memo.reads) == {"has_csm", "csm_plan", "professional_services", "long_contract",
                                               "ever_purchased"}
    base = {"orders_180d": 0, "contract_ends_in_days": None, "status": "client"}
    # 91..400 days of silence are one answer: one entry, not 310.
    before = len(DEFAULT._flags_memo.answers)
    for days in range(91, 401):
        assert DEFAULT.decide_flags({**base, "days_since_contact": days}) == ("at_risk",)
    assert len(DEFAULT._flags_memo.answers) - before <= 1


def test_a_counter_used_in_arithmetic_keeps_its_exact_value_and_properties_skip_the_memo():
    assert "days_since_contact" not in TRICKY._status_memo.buckets
    assert "contract_ends_in_days" in TRICKY._flags_memo.buckets
    assert TRICKY._status_memo.key({"properties": {"tier": "gold"}, "days_since_contact": 3, "meetings": 7}) is None


def test_the_memo_is_bounded(monkeypatch):
    import workers.rules.memo as memo_module
    monkeypatch.setattr(memo_module, "MAX_ENTRIES", 10)
    memo = Memo(["meetings > 1"], ["meetings"], {})
    for n in range(25):
        assert memo.answer({"meetings": n}, lambda f: f["meetings"] > 1) == (n > 1)
    assert len(memo.answers) <= 10
