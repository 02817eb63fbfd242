#!/usr/bin/env bash
# The study's remaining pieces that a 2-core CPU cannot finish in a session, on one GPU, in one
# command of under 10 minutes (from a copy of the repository on the accelerator machine):
#
#   OUT=/path/to/out bash experiments/reproduce_gpu.sh
#
# Runs, each capped so the whole stays under 10 minutes, the two pieces that gain most from a
# GPU (estimated on one H200 against 2 CPU cores): BENCH-995 phase two on (5,4,2) up to 38
# nonzeros (106,128 runs: about 2 min against 1 h 53 min) and the width sweep at 256 (1,863
# runs, LTH's first rounds and GMP and RigL at full width: about 11 min against 4 h 10 min;
# cut by its cap, it resumes on the next call). The other pieces run on a CPU in under 2 hours
# each and ship from there (540 s of caps). Records land in $OUT/reproduce (resumable: a piece
# cut by its cap resumes when the command runs again with the same OUT); each piece's report is
# printed and its summary written
# to $OUT/summaries/<piece>.json, to be shipped on a CPU machine with
#   python experiments/reproduce.py --config=experiments/configs/reproduce.py:<piece> \
#       --workdir=$OUT/reproduce --config.train=False --config.ship=True
# Same environment set-up as experiments/device_check.sh (carried ml-collections wheel).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-./workdirs/reproduce_gpu_out}
if ! "$PY" -c "import ml_collections" 2>/dev/null; then
  SITE=${DEVICE_CHECK_SITE:-$(mktemp -d)}
  "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
    --target "$SITE" third_party/wheels/ml_collections-*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT/reproduce" "$OUT/summaries"
run() {   # piece, cap in seconds, extra flags
  local piece=$1 cap=$2; shift 2
  echo "[reproduce_gpu.sh] $piece (cap ${cap}s) $(date +%T)"
  timeout "$cap" "$PY" experiments/reproduce.py \
    --config="experiments/configs/reproduce.py:$piece" --workdir="$OUT/reproduce" "$@" \
    2>&1 | tee -a "$OUT/log.txt"
  "$PY" -c "import json, sys; from spiralprune.study import reproduce as r; \
json.dump(r.summarize('$piece', '$OUT/reproduce', \
seeds=(0, 1, 2) if '$piece' == 'random_phase_one' else None), \
open('$OUT/summaries/$piece.json', 'w'), indent=1, default=str)" || true
}
run bench995_phase_two_542 110
run sweep_w256 430
echo "[reproduce_gpu.sh] done $(date +%T)"
