"""The device check: one command that measures on an accelerator what the project claims for it.

Runbook (from the repository root, on a machine with one H100/H200 and JAX with CUDA):

  OUT=DIR bash experiments/device_check.sh
    installs the carried ml-collections wheel (third_party/wheels) if it is missing, then runs
  python experiments/device_check.py --config=experiments/configs/device_check.py:gpu \
      --out=$OUT/device_check
    and writes $OUT/device_check/report.md (also printed), report.json (every number) and,
    for the phase-two stages, {phase_two,subset}_sparsest.npz: the sparsest run's final params
    and its config, mask, lr, schedule, seed, nnz and accuracy, to check the model elsewhere.
    Expected runtime: at most ``total_s`` = 460 s of stages (under 8 minutes with start-up),
    whatever the device does: each stage runs under its own wall-time cap and is stopped between
    populations / chunks / methods when it reaches it (the report then says "capped" and gives
    what it measured so far and a projection); a stage starting with less than ``min_stage_s``
    of the total left is skipped. The report is rewritten after every unit of work, so a killed
    run still leaves its numbers. On one H200 (2026-11-30, total_s 450, pruning cap 130 s) the
    stages took 111 s (throughput, capped: compiling is 83% of it), 75 s (phase two), 64 s
    (pruning) and 147 s (subset), 398 s in all; the throughput stage needed 289 s to finish
    every cell, so its cap is now 150 s, which still leaves the subset its ~150 s.

  python experiments/device_check.py --config=experiments/configs/device_check.py:tiny --out=DIR
    The same code path at toy scale on a CPU: about 35 s of CPU time on the 2-core Xeon,
    almost all of it compiling six small programs (90 s wall on a heavily shared machine);
    run by tests/device_check_test.py.

What ``gpu`` measures (stages in this order):

  throughput: model-epochs/s and achieved GFLOP/s (6 flops per parameter per training sample:
    2 forward + 4 backward; evaluation not counted), with compilation (JAX's trace, lowering
    and backend compile events) reported separately and subtracted, at the study's shapes:
    block-masked width 16 (phase one, pruning), compacted (3,3,3), (7,3,3), (3,2,2), (6,3,2)
    (phase two, drawn from the width-16 init distribution), dense widths 64 and 256
    (pruning), each at a few population sizes (the first of each shape first, so a capped stage
    still covers every shape); matmul precision "highest" (float32) and "default" (TF32 on
    Hopper) side by side on the same runs, with the largest difference in final accuracy; and
    both training engines ("vmap", "lanes") when ``training.Spec`` has an ``engine`` field
    (lanes only at compacted shapes with at most ``lanes_max_weights`` weights, and only at
    "highest": it does no matrix products), with the accuracy gap between them. 3 epochs per
    run, so the once-per-run evaluation on all points (about a ninth of the compute) is
    included in the rates. Chunk sizes chosen (``populations.auto_chunk``,
    ``balanced_chunk``) and peak device memory per cell.
  phase_two: the study's phase two of (3,3,3) in full (25,992 masks x lrs {0.05, 0.1} x 3
    schedules = 155,952 runs, 50 epochs) through ``search.phase_two`` into a temporary
    workdir, in ``pieces`` task shares so a cap stops it between recorded chunks: wall time,
    compile time, model-epochs/s and the sparsest model over 95% (the study: 30 nonzeros at
    96.04%; a plain jit(vmap(scan)) prototype on one H100: 133 s, 30 nonzeros).
  prune: the study's random-init pruning grid at width 16 (budgets 15..26, 30, ..., 65 x lrs
    {0.05, 0.1, 0.2} x 3 schedules = 207 runs per pruner, 9 for dense) for dense, random and
    the nine pruners through ``experiments/prune.py`` (GMP and LTH with their host count
    callbacks, RigL), with the study's recipe: wall and compile time per method.
  subset: the study's (7,3,3) phase-two subset (w1 + w2 + w3 < 33, first 3 W2 masks per count,
    lr 0.05: 189,624 runs) with whatever time remains (prototype on one H100: 182 s, 45
    nonzeros at 99.58%).

Every stage's wall time is split into compilation, training (time inside ``populations.run``
less compilation: steps, evaluation, chunk transfers) and host work (building variants, record
columns, writing and reading records), so a number that falls short says where its time went.

Goals (one H100/H200, float32): phase two (3,3,3) <= 60 s finding a 30-nonzero model over 95%;
width-16 training >= 30,000 model-epochs/s (aim 100,000+); the pruning grid <= 15 minutes;
compile time < 20% of any stage.
"""


# The builder lives in the library (importable without this folder); this file is the
# runbook passed to --config=.
from spiralprune.configs.device_check import PRESETS, get_config

__all__ = ["PRESETS", "get_config"]
