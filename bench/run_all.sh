#!/usr/bin/env bash
# Every CPU benchmark of docs/benchmarks.md, one after another (never two at once: they share
# the cores), then the page's tables from their result files. About 30 minutes on 2 cores.
# The GPU check is separate: bench/gpu_check.sh on a machine with a GPU.
#
#     bash bench/run_all.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
export PYTHONUNBUFFERED=1

run() {
  echo "== $* ($(date -u +%H:%M:%S))"
  "$PY" "$@"
}

run bench/service_overhead.py --dataset digits
run bench/service_overhead.py --dataset mnist
run bench/optuna_compare.py
run bench/pack.py --optuna
run bench/scale_workers.py
run bench/queue_latency.py
run bench/api_throughput.py
run bench/load_api.py
run bench/reap_latency.py
run bench/diagnose_speed.py
run bench/closed_loop.py
"$PY" bench/report.py
