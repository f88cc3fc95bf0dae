"""`clientshift run --config FILE` (workers.config_file): the file speaks the environment's names, the
environment wins, and typos and secrets are refused with the key that is wrong."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from workers.config_file import KNOWN, PREFIX, ConfigError, apply_config, read_config
from workers.kafka.settings import Settings, Topics

ROOT = Path(__file__).resolve().parent.parent


def settings_from(path: Path, environ: dict[str, str] | None = None) -> Settings:
    env = dict(environ or {})
    apply_config(read_config(path), env)
    return Settings.from_env(env)


def distinct(kind: type, n: int) -> object:
    """A value of the field's type that no default has."""
    if kind is bool or kind == "bool":
        return True
    if kind in (int, "int"):
        return 200_000 + n  # above every setting's minimum (the largest, the record limit's, is 131,072)
    if kind in (float, "float"):
        return 0.25 + n
    return f"value-{n}"


def test_every_worker_setting_and_topic_can_come_from_the_file(tmp_path):
    lines, expected = [], {}
    for n, f in enumerate(fields(Settings)):
        if f.name in ("topics", "security_protocol", "event_loop"):  # these three are checked below
            continue
        value = distinct(f.type.split(" |")[0] if isinstance(f.type, str) else f.type, n)
        lines.append(f"{f.name}: {str(value).lower() if isinstance(value, bool) else value}")
        expected[f.name] = value
    lines.append("broker_security_protocol: SASL_SSL")
    lines.append("event_loop: asyncio")  # one of a few names, not free text (the default is uvloop)
    lines.append("topic:")
    lines += [f"  {t.name}: crm.{t.name}" for t in fields(Topics)]
    path = tmp_path / "clientshift.yaml"
    path.write_text("\n".join(lines) + "\n")
    settings = settings_from(path)
    assert {name: getattr(settings, name) for name in expected} == expected
    assert settings.security_protocol == "SASL_SSL" and settings.event_loop == "asyncio"
    assert settings.topics == Topics(**{t.name: f"crm.{t.name}" for t in fields(Topics)})


def test_the_environment_overrides_the_file_and_null_leaves_the_default(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("group_id: from-file\npartitions: 12\nrules:\n")
    settings = settings_from(path, {"CLIENTSHIFT_GROUP_ID": "from-env"})
    assert (settings.group_id, settings.partitions, settings.rules) == ("from-env", 12, None)


@pytest.mark.parametrize("text, message", [
    ("group: x\n", r"c.yaml: group: unknown setting \(did you mean group_id\?\)"),
    ("topic:\n  event: x\n", r"c.yaml: topic.event: unknown setting \(did you mean topic_events\?\)"),
    ("partitions: [1, 2]\n", r"c.yaml: partitions: expected text, a number or true/false, got list"),
    ("- broker\n", r"c.yaml: expected a mapping of settings, got list"),
    ("broker: [\n", r"c.yaml: not valid YAML"),
])
def test_a_bad_file_is_refused_naming_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_config(path)


@pytest.mark.parametrize("text, name", [
    ("sasl_password: hunter2-secret\n", "CLIENTSHIFT_SASL_PASSWORD"),
    ("hubspot:\n  access_token: hunter2-secret\n", "CLIENTSHIFT_HUBSPOT_ACCESS_TOKEN"),
])
def test_secrets_are_refused_without_repeating_them(tmp_path, text, name):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        read_config(path)
    assert f"set {name} (or {name}_FILE) in the environment" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_a_path_to_a_mounted_secret_is_allowed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sasl_password_file: /var/run/secrets/kafka/password\n")
    assert read_config(path) == {"CLIENTSHIFT_SASL_PASSWORD_FILE": "/var/run/secrets/kafka/password"}


def test_every_setting_the_code_reads_is_known_to_the_file_or_deliberately_not():
    """A new CLIENTSHIFT_* variable must be settable from the file too (or be listed here, with why)."""
    not_from_a_file = {
        "CLIENTSHIFT_SASL_PASSWORD",  # a secret
        "CLIENTSHIFT_CONFIG",  # names the file itself
        "CLIENTSHIFT_BENCH_FAUST_FIXES",  # set by the benchmark for its baseline process
        "CLIENTSHIFT_INGRESS_PORT",  # read by the command line as it parses, before a file is read
    }
    read = set()
    for source in [*ROOT.joinpath("workers").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")]:
        read |= set(re.findall(r'"(CLIENTSHIFT_[A-Z0-9_]*[A-Z0-9])"', source.read_text()))
    read.discard("CLIENTSHIFT_TOPIC")  # the prefix the topic names are built from
    assert read - KNOWN - not_from_a_file == set()
    assert len(read & KNOWN) > 30  # the scan found the settings, not nothing


def test_run_reads_the_file_and_reports_its_errors(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        return subprocess.run([sys.executable, "-m", "workers.cli", "run", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

    good = tmp_path / "good.yaml"
    # An unreachable broker and a connector that does not exist: the worker stops at its start-up
    # check, which it can only reach with the file's settings.
    good.write_text("broker: 127.0.0.1:1\nconnector: nosuch\n")
    result = run("--config", str(good))
    assert result.returncode == 2
    assert "no connector named 'nosuch'" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("conector: hubspot\n")
    result = run("--config", str(bad))
    assert result.returncode == 2
    assert f"{bad}: conector: unknown setting (did you mean connector?)" in result.stderr


def test_the_readme_example_is_a_valid_config(tmp_path):
    readme = ROOT.joinpath("README.md").read_text()
    example = re.search(r"```yaml\n# clientshift.yaml\n(.*?)```", readme, re.S)
    assert example is not None
    path = tmp_path / "clientshift.yaml"
    path.write_text(example.group(1))
    settings = settings_from(path)
    assert (settings.broker, settings.security_protocol, settings.partitions) == (
        "b-1.example:9096,b-2.example:9096", "SASL_SSL", 12)
    assert read_config(path)["CLIENTSHIFT_HUBSPOT_ID_PROPERTY"] == "domain"


def test_the_kafka_commands_read_the_file_too(tmp_path):
    """`lag` (like `produce`, `record`, `ingress`, `backfill`) takes its broker and group from the file."""
    from workers.kafka.local_broker import LocalBroker

    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    def lag(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "workers.cli", "lag", "--config", str(path)], env=env,
                              capture_output=True, text=True, timeout=120)

    with LocalBroker() as broker:
        path = tmp_path / "c.yaml"
        path.write_text(f"broker: {broker.bootstrap}\ngroup_id: from-the-file\ntopic:\n  events: c.events\n")
        before = lag(path)  # no topic created yet: said, not shown as an empty table
        from workers.kafka.topics import ensure_topics

        ensure_topics(settings_from(path))  # the commands' own environment stays without the file's values
        after = lag(path)
    assert before.returncode == 1
    assert "not on the broker: c.events, clientshift.ticks, clientshift.actions" in before.stderr
    assert after.returncode == 0, after.stderr
    assert "consumer group from-the-file" in after.stdout and "c.events" in after.stdout
    assert "not on the broker" not in after.stderr
