"""`clientshift run` refuses bad configuration at start, with the reason, instead of crashing later."""

import os
import subprocess
import sys


def run(env, tmp_path):
    return subprocess.run([sys.executable, "-m", "workers.cli", "run"], env={**os.environ, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def test_unknown_connector_is_refused_at_start(tmp_path):
    result = run({"CLIENTSHIFT_CONNECTOR": "salesforce"}, tmp_path)
    assert result.returncode == 2
    assert "no connector named 'salesforce'; installed: hubspot, recording, sandbox" in result.stderr


def test_broken_rules_file_is_refused_at_start_with_its_position(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("status:\n  - name: x\n    status: client\n    when: has_csm &&\n")
    result = run({"CLIENTSHIFT_RULES": str(rules)}, tmp_path)
    assert result.returncode == 2
    assert f"{rules}:4:" in result.stderr and "rule 'x'" in result.stderr and "Syntax error" in result.stderr
