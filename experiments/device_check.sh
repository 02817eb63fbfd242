#!/usr/bin/env bash
# The device check in one command, from a copy of the repository on an accelerator machine:
#
#   OUT=/path/to/out bash experiments/device_check.sh [PRESET] [--config.FIELD=VALUE ...]
#
# PRESET is gpu (default) or tiny (a CPU smoke run). If ml_collections cannot be imported, the
# carried wheel in third_party/wheels is installed (no network, no dependencies: absl-py and
# PyYAML must be there) into $DEVICE_CHECK_SITE (default: a new temporary folder) on PYTHONPATH;
# --target rather than --user, since the machine's python3 may be a virtualenv. The repository
# root goes on PYTHONPATH (no install). The report, its JSON and the log land in
# $OUT/device_check/ (report.md, report.json, log.txt; OUT defaults to ./workdirs/device_check_out);
# the report is also printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PRESET=${1:-gpu}
[[ $# -gt 0 ]] && shift
OUT=${OUT:-./workdirs/device_check_out}
if ! "$PY" -c "import ml_collections" 2>/dev/null; then
  SITE=${DEVICE_CHECK_SITE:-$(mktemp -d)}
  echo "[device_check.sh] installing the carried ml-collections wheel into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
    --target "$SITE" third_party/wheels/ml_collections-*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/device_check"
"$PY" -c "import jax; print('[device_check.sh] jax', jax.__version__, jax.devices())"
"$PY" experiments/device_check.py --config="experiments/configs/device_check.py:$PRESET" \
  --out="$OUT/device_check" "$@" 2>&1 | tee "$OUT/device_check/log.txt"
