#!/usr/bin/env bash
# The one-shot GPU check (bench/gpu_check.py says what it measures): trainer images/s
# against a minimal loop and a torchvision DataLoader loop, bf16 on vs off, 1/2/4 workers
# sharing the GPU, a 10-trial lr study through `serve`, packed trials against trials alone
# (issue 15: goal ≥ 3× trials per GPU-hour). Under 8 minutes on one H100/H200;
# prints one table, writes bench/results/gpu_check.json and, when $OUT is set, the same to
# $OUT/gpu_check.json (it comes back with the device tool's reply).
#
# The GPU machine has PyTorch but not the web stack, and no internet. Here, first:
#     bash bench/fetch_gpu_wheels.sh        # 21 wheels, 16 MiB, into .whl/ (git-ignored)
# then one device-tool call, carrying the wheels (about 8 minutes of device time):
#     run(command="bash bench/gpu_check.sh", carry=[".whl"], timeout_s=600)
#     (or only the packing section: run(command="bash bench/gpu_check.sh --sections packing", ...))
# This script does the rest there: it installs the carried wheels, as the device README says,
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#         --target /tmp/site .whl/*.whl
#     export PYTHONPATH=<repo root>:/tmp/site
# and sweepdoc itself runs from the repository root without `pip install -e`: its packages
# import from the root (PYTHONPATH) and its commands run as `python3 -m service serve ...`,
# `python3 -m service worker --device cuda ...`. Record the table with the device name.
#
#     bash bench/gpu_check.sh --smoke       # anywhere, CPU, tiny sizes (GPU_CHECK_SMOKE=1 too)
#     bash bench/gpu_check.sh --sections train,precision
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The project's virtualenv where there is one (this machine), else the image's python3.
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
SITE=/tmp/site

args=("$@")
if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
  args+=(--smoke)
fi

# Install the carried wheels only where the web stack is missing: cp312 wheels on another
# Python (this machine's 3.11 virtualenv) would shadow its own working packages.
if ! "$PYTHON" -c "import optuna, fastapi, sqlalchemy, pydantic_settings" 2>/dev/null; then
  if ! compgen -G ".whl/*.whl" >/dev/null; then
    echo "no web stack in $PYTHON and no .whl/: run bench/fetch_gpu_wheels.sh here and" \
      "carry .whl" >&2
    exit 1
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
  --format=csv,noheader || true
exec "$PYTHON" bench/gpu_check.py "${args[@]}"
