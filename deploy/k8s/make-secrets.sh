#!/usr/bin/env bash
# Prints the Secrets that deploy/k8s's pods read, as YAML for `kubectl apply`:
#
#   # PostgreSQL you already run (an external URL):
#   SWEEPDOC_DATABASE_URL='postgresql+psycopg://user:password@db.example:5432/sweepdoc' \
#       deploy/k8s/make-secrets.sh | kubectl apply -n ml -f -
#   # PostgreSQL in the cluster (overlays/gpu-cloudnative-pg):
#   deploy/k8s/make-secrets.sh --cloudnative-pg | kubectl apply -n ml -f -
#
# Secret `sweepdoc`: `database-url`, the SWEEPDOC_DATABASE_URL of every pod (API, workers,
# migration Job), and `api-token`, the API's SWEEPDOC_API_TOKEN (taken from the environment
# when set, else a new random one; read it back with `kubectl get secret sweepdoc -o
# jsonpath='{.data.api-token}' | base64 -d`). With --cloudnative-pg also `sweepdoc-db-owner`,
# the basic-auth Secret CloudNativePG creates the database owner from, with the password the
# URL carries. Run it once per namespace: each run makes new random values.
# Secret values go through files in a private temporary folder, never on a command line
# (where `ps` would show them).
set -euo pipefail

usage="usage: SWEEPDOC_DATABASE_URL=postgresql+psycopg://… $0  |  $0 --cloudnative-pg"
# The CloudNativePG Cluster of components/cloudnative-pg: its name, database and owner.
CNPG_CLUSTER=sweepdoc-db
CNPG_DATABASE=sweepdoc
CNPG_OWNER=sweepdoc

mode=external
case "${1:-}" in
  "") ;;
  --cloudnative-pg) mode=cloudnative-pg ;;
  -h|--help) echo "$usage"; exit 0 ;;
  *) echo "$usage" >&2; exit 2 ;;
esac

random_hex() {  # 32 random bytes as 64 hex digits: safe in a URL and an HTTP header
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

if [ "$mode" = cloudnative-pg ]; then
  random_hex >"$work/password"
  printf 'postgresql+psycopg://%s:%s@%s-rw:5432/%s' \
    "$CNPG_OWNER" "$(cat "$work/password")" "$CNPG_CLUSTER" "$CNPG_DATABASE" >"$work/url"
else
  url="${SWEEPDOC_DATABASE_URL:-}"
  if [ -z "$url" ]; then
    echo "error: SWEEPDOC_DATABASE_URL is not set; set it to your PostgreSQL URL, or pass" \
      "--cloudnative-pg for a database in the cluster" >&2
    exit 2
  fi
  # Never SQLite here: pods on several nodes share the database, and a SQLite file on a
  # network volume cannot be locked safely.
  case "$url" in
    postgresql+psycopg://*) ;;
    *) echo "error: SWEEPDOC_DATABASE_URL must start with postgresql+psycopg:// (PostgreSQL" \
         "through psycopg 3, the driver the image has)" >&2
       exit 2 ;;
  esac
  printf '%s' "$url" >"$work/url"
fi

if [ -n "${SWEEPDOC_API_TOKEN:-}" ]; then
  if [ "${#SWEEPDOC_API_TOKEN}" -lt 16 ]; then
    echo "error: SWEEPDOC_API_TOKEN must be at least 16 characters" >&2
    exit 2
  fi
  printf '%s' "$SWEEPDOC_API_TOKEN" >"$work/token"
else
  random_hex >"$work/token"
fi

kubectl create secret generic sweepdoc --dry-run=client -o yaml \
  --from-file=database-url="$work/url" --from-file=api-token="$work/token"
if [ "$mode" = cloudnative-pg ]; then
  echo "---"
  kubectl create secret generic sweepdoc-db-owner --dry-run=client -o yaml \
    --type=kubernetes.io/basic-auth \
    --from-literal=username="$CNPG_OWNER" --from-file=password="$work/password"
fi
