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

import ml_collections

PRESETS = ("gpu", "tiny")
PRUNE_METHODS = ("dense", "random", "gmp", "lth", "rigl", "snip", "grasp", "synflow",
                 "iter_snip", "force", "prospr")
STUDY_BUDGETS = tuple(range(15, 27)) + (30, 33, 37, 40, 44, 50, 53, 55, 57, 60, 65)
SCHEDULES = ("constant", "cosine", "step")


def _phase_two(**kw) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.cap_s = 150.0
    c.config = (3, 3, 3)
    c.width = 16
    c.lrs = (0.05, 0.1)
    c.schedules = SCHEDULES
    c.target = 0.95
    c.max_weights = 0          # 0: no cap; else the study's subset rule w1 + w2 + w3 < this
    c.first_k_layer = 1        # 0-based layer of the first-k rule (1 is W2)
    c.first_k = 0              # 0: every mask; else the first k masks per nonzero count
    c.epochs = 50
    c.recipe = ml_collections.ConfigDict()   # further training.Spec fields
    c.chunk_size = 16384       # runs per recorded chunk (search.py's accelerator default)
    c.pieces = 5               # task shares run one after another; the cap is checked between
    c.reference = "the study: 30 nonzeros at 96.04%; prototype on one H100: 133 s, 30 nonzeros"
    c.update(kw)
    return c


def get_config(arg: str = "gpu") -> ml_collections.ConfigDict:
    """Returns the preset ``arg`` (one of PRESETS).

    Fields: total_s (the whole check's budget in seconds), min_stage_s (a stage starting with
    less left is skipped), stages (which run, in order), workdir ("" = a temporary directory,
    deleted at the end), and one sub-config per stage with its cap_s (see the module docstring).
    Throughput cells are (name, kind, widths, population sizes): kind "block" trains the
    (D, D, D) model under random block masks, "compact" the given shape drawn from the width-16
    init distribution, "dense" the given shape unmasked.
    """
    if arg not in PRESETS:
        raise ValueError(f"unknown device_check preset {arg!r}; choose from {PRESETS}")
    c = ml_collections.ConfigDict()
    c.preset = arg
    c.total_s = 460.0
    c.min_stage_s = 30.0
    c.stages = ("throughput", "phase_two", "prune", "subset")
    c.workdir = ""
    c.seed = 0

    t = c.throughput = ml_collections.ConfigDict()
    t.cap_s = 150.0
    t.epochs = 3
    t.batch_size = 128
    t.num_points = 0           # 0: the whole spiral, else a fixed random subset
    t.precisions = ("highest", "default")
    t.engines = ("vmap", "lanes")   # used only when training.Spec has an ``engine`` field
    t.lanes_max_weights = 100
    t.lanes_precisions = ("highest",)   # lanes multiply-adds elementwise: no TF32 to compare
    t.cells = (
        ("w16_block", "block", (16, 16, 16), (16384, 4096, 65536)),
        ("c333", "compact", (3, 3, 3), (16384, 65536, 2048)),
        ("c733", "compact", (7, 3, 3), (16384, 65536)),
        ("c322", "compact", (3, 2, 2), (16384,)),
        ("c632", "compact", (6, 3, 2), (16384,)),
        ("w64", "dense", (64, 64, 64), (2048, 256, 8192)),
        ("w256", "dense", (256, 256, 256), (256, 32, 1024)),
    )

    c.phase_two = _phase_two()
    c.subset = _phase_two(
        cap_s=460.0, config=(7, 3, 3), lrs=(0.05,), max_weights=33, first_k=3, pieces=6,
        target=0.995, reference="the study: 45 nonzeros at 99.59%; prototype on one H100: "
                                "182 s, 45 nonzeros at 99.58%")

    p = c.prune = ml_collections.ConfigDict()
    p.cap_s = 150.0
    p.width = 16
    p.methods = PRUNE_METHODS
    p.budgets = STUDY_BUDGETS
    p.lrs = (0.05, 0.1, 0.2)
    p.schedules = SCHEDULES
    p.overrides = ml_collections.ConfigDict()   # fields of configs/prune.py's paper preset

    if arg == "tiny":
        c.total_s = 120.0
        c.min_stage_s = 0.0
        t.cap_s = 60.0
        t.epochs = 1
        t.num_points = 640
        t.cells = (("c322", "compact", (3, 2, 2), (32,)),)
        tiny_recipe = dict(batch_size=1024, milestones=(1,), cosine_t_max=1)
        c.phase_two = _phase_two(cap_s=60.0, config=(2, 1, 1), lrs=(0.1,),
                                 schedules=("constant", "cosine"), epochs=1, chunk_size=4,
                                 pieces=2, reference="toy scale")
        c.phase_two.recipe = ml_collections.ConfigDict(tiny_recipe)
        # The subset rule on (2,1,1) (w1 + w2 + w3 < 8, first mask per W2 count; it keeps all
        # 4 masks) in one chunk of 4: the same compiled program as phase two.
        c.subset = _phase_two(cap_s=60.0, config=(2, 1, 1), lrs=(0.1,), schedules=("constant",),
                              max_weights=8, first_k=1, epochs=1, chunk_size=4, pieces=1,
                              target=0.6, reference="toy scale")
        c.subset.recipe = ml_collections.ConfigDict(tiny_recipe)
        p.cap_s = 60.0
        p.width = 3
        p.methods = ("random", "gmp")
        p.budgets = (15, 20)
        p.lrs = (0.1,)
        p.schedules = ("cosine",)
        p.overrides = ml_collections.ConfigDict(dict(
            epochs=1, batch_size=64, milestones=(1,), cosine_t_max=1, num_points=640,
            method_args={"gmp": {"gmp_steps": 4}}))
    return c
