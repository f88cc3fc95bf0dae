import subprocess
import sys
from pathlib import Path

import pytest

from workers.rules import RulesError, load_policy

DEFAULT = (Path(__file__).resolve().parents[1] / "workers" / "rules" / "default.yaml").read_text()


def check(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "workers.cli", "rules", "check", str(path)],
                            capture_output=True, text=True, timeout=60)
    return path, result


def position_of(text, needle):
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


def test_the_default_rules_pass(tmp_path):
    path, result = check(tmp_path, DEFAULT)
    assert result.returncode == 0
    assert "ok (3 status rules, 2 flags, 4 tasks)" in result.stdout


@pytest.mark.parametrize("broken,needle,rule,message", [
    ("when: ever_purchased\n", "ever_purchasd", "has_purchased", "undeclared reference to 'ever_purchasd'"),
    ("orders_180d >= 3", "orders_180d >= 'three'", "upgrade_candidate", "no matching overload for '_>=_'"),
    ("when: has_csm || csm_plan", "has_csm ||| csm_plan", "formal_relationship", "Syntax error"),
])
def test_errors_name_file_rule_and_line_column(tmp_path, broken, needle, rule, message):
    replacement = broken.replace("ever_purchased", needle) if "ever_purchased" in broken else needle
    if "|||" in needle:
        replacement = "when: has_csm ||| csm_plan"
    text = DEFAULT.replace(broken, replacement, 1)
    path, result = check(tmp_path, text)
    assert result.returncode == 1
    line, column = position_of(text, needle if "|||" not in needle else "||| csm_plan")
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(f"{path}:{line}:")
    assert f"rule '{rule}'" in first and message in first
    reported_column = int(first.split(":")[2])
    assert column <= reported_column <= column + len(needle)


def test_a_condition_that_is_not_boolean_is_rejected(tmp_path):
    text = DEFAULT.replace("when: ever_purchased\n", "when: orders_180d + 1\n")
    path, result = check(tmp_path, text)
    assert result.returncode == 1
    assert "rule 'has_purchased': condition must be bool, but it is INT" in result.stderr


def test_unknown_status_trigger_and_yaml_syntax_errors(tmp_path):
    bad = DEFAULT.replace("status: customer", "status: vip").replace("flag_raised: at_risk", "flag_raised: at_risky")
    with pytest.raises(RulesError) as caught:
        path = tmp_path / "r.yaml"
        path.write_text(bad)
        load_policy(path)
    text = str(caught.value)
    assert "rule 'has_purchased': status must be one of prospect, customer, client, got 'vip'" in text
    assert "rule 'at_risk_checkin': flag_raised names 'at_risky'" in text
    path, result = check(tmp_path, "status:\n  - name: x\n    when: [unclosed\n")
    assert result.returncode == 1
    assert f"{path}:4:" in result.stderr and "YAML syntax error" in result.stderr


def test_a_rule_that_errors_at_run_time_counts_as_false_for_that_rule_only(tmp_path):
    text = DEFAULT.replace("(days_since_contact != null && days_since_contact > 90)", "days_since_contact > 90")
    path = tmp_path / "r.yaml"
    path.write_text(text)
    policy = load_policy(path)
    facts = {"has_csm": False, "csm_plan": False, "professional_services": False, "long_contract": False,
             "ever_purchased": True, "orders_180d": 5, "meetings": 0, "tickets": 0, "days_since_contact": None,
             "contract_ends_in_days": None, "account_kind": "", "active_plans": [], "properties": {},
             "status": "customer"}
    assert policy.decide_flags(facts) == ("upgrade_candidate",)


def test_day_counter_flip_points_follow_the_comparison():
    from workers.rules.policy import day_thresholds

    assert day_thresholds(["days_since_contact > 90"])["days_since_contact"] == (91,)
    assert day_thresholds(["days_since_contact >= 90"])["days_since_contact"] == (90,)
    assert day_thresholds(["30 < days_since_contact"])["days_since_contact"] == (31,)
    assert day_thresholds(["contract_ends_in_days <= 60"])["contract_ends_in_days"] == (61,)
    assert day_thresholds(["contract_ends_in_days == 7"])["contract_ends_in_days"] == (7, 8)
    # Used in arithmetic: every literal of the condition, both sides of it, to be safe.
    assert day_thresholds(["days_since_contact * 2 > 10"])["days_since_contact"] == (2, 3, 10, 11)
