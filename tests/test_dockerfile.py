"""The container image definition (Dockerfile + .dockerignore), checked without a Docker engine.

* hadolint (from scripts/install-helm-tools.sh: a pinned PyPI wheel) with no finding at all;
* checkov's Dockerfile checks;
* the structure the deployment relies on: pinned slim base, two stages, no build tools in the
  runtime stage, non-root UID 10001, `clientshift` entrypoint with `run` as the default command,
  the healthcheck (run for real against a local server), ports, environment;
* the build context: the files .dockerignore lets through are enough to build the project, and
  the wheel built from exactly them carries the console script and the package data.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
INSTALL_SCRIPT = REPO / "scripts" / "install-helm-tools.sh"
BASE_IMAGE = re.compile(r"python:3\.11\.\d+-slim-bookworm")


# ------------------------------------------------------------------------------ a small parser


def parse(text: str) -> list[list[tuple[str, str]]]:
    """Dockerfile -> stages, each a list of (INSTRUCTION, arguments), continuations joined."""
    lines: list[str] = []
    buf = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + stripped)
        buf = ""
    assert not buf, "dangling line continuation"
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        elif not stages:
            assert instruction == "ARG", f"{instruction} before the first FROM"
            continue
        stages[-1].append((instruction, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[tuple[str, str]]]:
    return parse(DOCKERFILE.read_text())


def args_of(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [a for i, a in stage if i == instruction]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in args_of(stage, "ENV"):
        for token in shlex.split(args):
            key, sep, value = token.partition("=")
            assert sep, f"use ENV key=value: {args}"
            env[key] = value
    return env


# ------------------------------------------------------------------------------------- linters


def test_hadolint_clean() -> None:
    out = subprocess.run(["bash", str(INSTALL_SCRIPT), "hadolint"], check=True, capture_output=True,
                         text=True, timeout=600).stdout.split()
    assert len(out) == 1
    hadolint = out[0]
    proc = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", "-f", "json", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout) == [], proc.stdout + proc.stderr
    # The linter is live: the same file with an unpinned base and an unpinned pip install fails.
    broken = BASE_IMAGE.sub("python:latest", DOCKERFILE.read_text(), count=1) + "\nRUN pip install requests\n"
    proc = subprocess.run([hadolint, "--no-color", "-f", "json", "-"], input=broken, capture_output=True,
                          text=True, timeout=60)
    codes = {finding["code"] for finding in json.loads(proc.stdout)}
    assert {"DL3007", "DL3013"} <= codes, codes


def test_checkov_dockerfile_checks_pass() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "checkov.main", "-f", str(DOCKERFILE), "--framework", "dockerfile",
         "--skip-download", "-o", "json", "--soft-fail"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r["check_type"] == "dockerfile"]
    results = report["results"]
    assert results["failed_checks"] == [], [f["check_id"] for f in results["failed_checks"]]
    passed = {p["check_id"] for p in results["passed_checks"]}
    # HEALTHCHECK present, USER set, no latest/untagged base, not root in the end.
    assert {"CKV_DOCKER_2", "CKV_DOCKER_3", "CKV_DOCKER_7", "CKV_DOCKER_8"} <= passed, passed


# ------------------------------------------------------------------------------------ structure


def test_two_stages_on_the_same_pinned_slim_base(stages: list[list[tuple[str, str]]]) -> None:
    assert len(stages) == 2
    froms = [stage[0][1] for stage in stages]
    bases = [f.split()[0] for f in froms]
    assert all(BASE_IMAGE.fullmatch(b) for b in bases), bases
    assert bases[0] == bases[1], "the venv is copied across stages: both must use the same Python"
    assert [f.split()[-1] for f in froms] == ["builder", "runtime"]


def test_builder_installs_the_project_into_a_venv(stages: list[list[tuple[str, str]]]) -> None:
    builder = stages[0]
    runs = " ".join(args_of(builder, "RUN"))
    assert "python -m venv /opt/clientshift" in runs
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", runs)
    assert "/opt/clientshift/bin" in env_of(builder)["PATH"]


def test_runtime_stage_has_no_build_tools(stages: list[list[tuple[str, str]]]) -> None:
    runtime = stages[1]
    runs = " ".join(args_of(runtime, "RUN"))
    for tool in ("apt-get", "apt ", "gcc", "build-essential", "pip ", "make", "curl", "wget"):
        assert tool not in runs, tool
    copies = args_of(runtime, "COPY")
    assert copies == ["--from=builder /opt/clientshift /opt/clientshift"], "only the venv comes across"
    assert not args_of(runtime, "ADD")


def test_runtime_runs_as_uid_10001(stages: list[list[tuple[str, str]]]) -> None:
    runtime = stages[1]
    assert args_of(runtime, "USER")[-1] == "10001"
    runs = " ".join(args_of(runtime, "RUN"))
    assert re.search(r"useradd .*--uid 10001 ", runs) and re.search(r"groupadd .*--gid 10001 ", runs)
    assert "install -d -o 10001 -g 10001" in runs and "/var/lib/clientshift" in runs
    # Everything after USER runs unprivileged: no RUN may follow it.
    instructions = [i for i, _ in runtime]
    assert "RUN" not in instructions[instructions.index("USER"):]


def test_entrypoint_and_default_command(stages: list[list[tuple[str, str]]]) -> None:
    runtime = stages[1]
    (entrypoint,) = args_of(runtime, "ENTRYPOINT")
    (cmd,) = args_of(runtime, "CMD")
    assert json.loads(entrypoint) == ["clientshift"] and json.loads(cmd) == ["run"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "clientshift" in scripts, "ENTRYPOINT must be a console script of the project"


def test_environment_and_ports(stages: list[list[tuple[str, str]]]) -> None:
    env = env_of(stages[1])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["CLIENTSHIFT_DATA_DIR"] == "/var/lib/clientshift"
    assert env["PATH"].startswith("/opt/clientshift/bin:")
    (expose,) = args_of(stages[1], "EXPOSE")
    assert set(expose.split()) == {"6066", "8080"}
    # The chart's defaults agree with the image.
    values = (REPO / "helm" / "clientshift" / "values.yaml").read_text()
    assert re.search(r"^  port: 6066$", values, re.M) and re.search(r"^  port: 8080$", values, re.M)
    assert "runAsUser: 10001" in values


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(_Handler.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _healthcheck_command(stages: list[list[tuple[str, str]]]) -> list[str]:
    (healthcheck,) = args_of(stages[1], "HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return json.loads(command)


def test_healthcheck_hits_the_worker_liveness_endpoint(stages: list[list[tuple[str, str]]]) -> None:
    cmd = _healthcheck_command(stages)
    assert cmd[:2] == ["python", "-c"], "exec form with the image's python (slim has no curl)"
    code = cmd[2]
    assert "http://127.0.0.1:6066/healthz" in code
    # Run the exact command against a local server on a free port: healthy, unhealthy, down.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    local = code.replace("127.0.0.1:6066", f"127.0.0.1:{port}")
    try:
        _Handler.status = 200
        assert subprocess.run([sys.executable, "-c", local], capture_output=True, timeout=30).returncode == 0
        _Handler.status = 503
        assert subprocess.run([sys.executable, "-c", local], capture_output=True, timeout=30).returncode != 0
    finally:
        server.shutdown()
        server.server_close()
    assert subprocess.run([sys.executable, "-c", local], capture_output=True, timeout=30).returncode != 0


# --------------------------------------------------------------------------------- build context


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """One .dockerignore pattern (Go filepath.Match plus `**`) as a regex over slash paths."""
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out += "[" + pattern[i + 1:end].replace("!", "^", 1) + "]"
            i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, regex in rules:
        if any(regex.match(c) for c in candidates):
            result = not negate
    return result


def build_context(dest: Path) -> list[str]:
    rules = dockerignore_rules()
    kept = []
    for root, dirs, files in os.walk(REPO):
        rel_root = os.path.relpath(root, REPO)
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name)).replace(os.sep, "/")
            if not excluded(rel, rules):
                kept.append(rel)
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dest / rel)
    return sorted(kept)


def test_dockerignore_matcher_follows_docker_semantics() -> None:
    rules = [(False, _pattern_regex("*")), (True, _pattern_regex("workers")),
             (False, _pattern_regex("**/__pycache__"))]
    assert excluded("tests/test_x.py", rules) and excluded(".env", rules)
    assert not excluded("workers/cli.py", rules) and not excluded("workers/rules/default.yaml", rules)
    assert excluded("workers/__pycache__/cli.cpython-311.pyc", rules)


def test_build_context_is_allow_listed_and_builds(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    kept = build_context(context)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "pyproject.toml" in kept
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str) and (REPO / readme).exists():
        assert readme in kept
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        assert any(k.startswith(f"{package}/") for k in kept), f"package {package} missing from the context"
    for k in kept:
        assert not k.startswith(("tests/", "helm/", ".ci/", ".git", "scripts/")), k
        assert "__pycache__" not in k and not k.endswith((".pyc", ".env"))
    # Build the project from exactly that context, as the builder stage does.
    wheels = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                           "-w", str(wheels), str(context)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = wheels.glob("clientshift-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert re.search(r"^clientshift = workers\.cli:app$", entry_points, re.M)
    assert "workers/rules/default.yaml" in names
    assert any(re.fullmatch(r"schemas/[^/]+\.json", n) for n in names)
