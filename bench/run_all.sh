#!/usr/bin/env bash
# Every CPU benchmark of docs/benchmarks.md, one after another (never two at once: they share
# the cores), then the page's tables from their result files. About 45 minutes on 2 cores.
# The GPU check is separate: bench/gpu_check.sh on a machine with a GPU.
#
#     bash bench/run_all.sh [NAME ...]       # default: all of them, in this order
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
export PYTHONUNBUFFERED=1

all=(service_overhead optuna_compare scale_workers queue_latency api_throughput diagnose_speed)
for name in "${@:-${all[@]}}"; do
  echo "== $name ($(date -u +%H:%M:%S))"
  "$PY" "bench/$name.py"
done
"$PY" bench/report.py
