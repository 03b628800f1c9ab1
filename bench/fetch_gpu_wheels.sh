#!/usr/bin/env bash
# Download into .whl/ the wheels that the GPU machine lacks to run sweepdoc (the web stack),
# for CPython 3.12 on manylinux x86_64, and check that they are exactly the right set.
#
# The GPU machine (/work/.library/device/KINDS.md) has python3 3.12 with torch, torchvision,
# numpy, scikit-learn, matplotlib, typer, rich, httpx, pyyaml, click, anyio, ... but no
# optuna, FastAPI, SQLAlchemy, pydantic and their own needs. WHEELS below is the closure of
# pyproject.toml's runtime dependencies (less torch and torchvision), resolved for cp312,
# minus what that image already holds, plus typing-extensions: pydantic needs >= 4.16 and
# the image's version is unknown (a newer one is harmless to everything else there).
# Versions are those of the project's .venv, which the test suite runs on.
#
#     bash bench/fetch_gpu_wheels.sh            # download into .whl/, then check the set
#     bash bench/fetch_gpu_wheels.sh --check    # only the check (pip resolution, no download)
#
# The check asks pip to resolve every runtime dependency for cp312 manylinux (a dry run
# with WHEELS as constraints) and compares the result, less the GPU image's packages, with
# WHEELS: a missing or superfluous wheel fails it. .whl/ is git-ignored; the device tool
# carries it with carry [".whl"] (bench/gpu_check.sh says how). About 16 MiB, 21 wheels.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
DEST=.whl
MAX_MIB=48  # the device tool carries 64 MiB with the working tree: leave the tree room

WHEELS=(
  a2wsgi==1.10.10
  alembic==1.20.1
  annotated-types==0.8.0
  bottle==0.13.4
  colorlog==6.12.0
  fastapi==0.165.0
  mako==1.4.3
  opentelemetry-api==1.45.2
  optuna==5.0.0
  optuna-dashboard==0.21.0
  psycopg==3.3.9
  psycopg-binary==3.3.9
  pydantic==2.14.4
  pydantic-core==2.50.5
  pydantic-settings==2.16.3
  python-dotenv==1.2.4
  sqlalchemy==2.1.9
  starlette==1.10.0
  typing-extensions==4.16.0
  typing-inspection==0.4.5
  uvicorn==0.54.0
)

# Already on the GPU image (KINDS.md, "Python packages already there", read 2026-11-17):
# only the ones the project's dependency closure reaches; the check subtracts them.
GPU_IMAGE_HAS=(
  annotated-doc anyio certifi click cloudpickle contourpy cycler fonttools h11 httpcore
  httpx idna joblib kiwisolver markdown-it-py markupsafe matplotlib mdurl narwhals numpy
  packaging pillow pygments pyparsing python-dateutil pyyaml rich scikit-learn scipy
  shellingham six threadpoolctl tqdm typer typing-extensions zipp
)
# Carried although the image has it (see the header).
CARRIED_ANYWAY=(typing-extensions)

PLATFORM_ARGS=(
  --only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
  --platform manylinux1_x86_64
)

# pyproject.toml's runtime dependencies without torch and torchvision (the image has both,
# built for its CUDA; a wheel from here would replace them with a CPU build).
runtime_requirements() {
  "$PYTHON" - <<'EOF'
import re
import tomllib

deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for dep in deps:
    name = re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0].lower()
    if name not in ("torch", "torchvision"):
        print(dep)
EOF
}

check_closure() {
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  printf '%s\n' "${WHEELS[@]}" >"$tmp/constraints.txt"
  mapfile -t requirements < <(runtime_requirements)
  echo "resolving ${#requirements[@]} runtime requirements for cp312 manylinux x86_64 ..."
  "$PYTHON" -m pip install --quiet --dry-run --ignore-installed --report "$tmp/report.json" \
    "${PLATFORM_ARGS[@]}" --target "$tmp/site" -c "$tmp/constraints.txt" "${requirements[@]}"
  WHEELS_PINNED="${WHEELS[*]}" IMAGE_HAS="${GPU_IMAGE_HAS[*]}" \
    CARRIED_ANYWAY="${CARRIED_ANYWAY[*]}" "$PYTHON" - "$tmp/report.json" "${requirements[@]}" <<'EOF'
import json
import os
import re
import sys

from packaging.requirements import Requirement


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


pinned = {norm(n): v for n, v in (w.split("==") for w in os.environ["WHEELS_PINNED"].split())}
image = {norm(n) for n in os.environ["IMAGE_HAS"].split()}
anyway = {norm(n) for n in os.environ["CARRIED_ANYWAY"].split()}
report, top = sys.argv[1], sys.argv[2:]
resolved = {norm(i["metadata"]["name"]): i["metadata"] for i in json.load(open(report))["install"]}
# Markers are read for the GPU machine's interpreter, not this one.
target = {
    "python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
}


def applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**target, "extra": e}) for e in extras | {""})


# Walk down from the project's requirements. A package the image has ends the walk there
# (its own needs are on the image too: python-dateutil 4 from PyPI wants tzdata, the
# image's older one does not); every other package is carried and its needs walked.
needed: dict[str, str] = {}
todo = [(Requirement(r), set[str]()) for r in top]
while todo:
    req, extras = todo.pop()
    name = norm(req.name)
    if not applies(req, extras) or name in needed:
        continue
    if name in image and name not in anyway:
        continue
    needed[name] = resolved[name]["version"]
    todo += [(Requirement(r), set(req.extras)) for r in resolved[name].get("requires_dist") or []]
missing = sorted(set(needed) - set(pinned))
extra = sorted(set(pinned) - set(needed))
wrong = sorted(n for n in set(needed) & set(pinned) if needed[n] != pinned[n])
print(f"pip resolved {len(resolved)} packages for cp312; {len(needed)} must be carried")
if missing or extra or wrong:
    sys.exit(f"WHEELS is wrong: missing {missing}, not needed {extra}, other version {wrong}")
print("check passed: WHEELS is exactly what the GPU image lacks")
EOF
}

download() {
  rm -rf "$DEST"
  mkdir -p "$DEST"
  "$PYTHON" -m pip download --quiet --no-deps "${PLATFORM_ARGS[@]}" -d "$DEST" "${WHEELS[@]}"
  local count size_kib
  count=$(find "$DEST" -type f -name '*.whl' | wc -l)
  size_kib=$(du -sk "$DEST" | cut -f1)
  echo "$count wheels, $((size_kib / 1024)) MiB ($size_kib KiB) in $DEST/"
  if [ "$count" -ne "${#WHEELS[@]}" ]; then
    echo "expected ${#WHEELS[@]} wheels, got $count" >&2
    exit 1
  fi
  if [ "$size_kib" -gt $((MAX_MIB * 1024)) ]; then
    echo "$DEST/ is over $MAX_MIB MiB: the device tool would refuse the tree" >&2
    exit 1
  fi
}

case "${1:-}" in
  --check) check_closure ;;
  "") download && check_closure ;;
  *) echo "usage: bash bench/fetch_gpu_wheels.sh [--check]" >&2; exit 2 ;;
esac
