"""Prune with every method of the study and record accuracy against nonzero parameters.

Runbook:
  python experiments/prune.py --workdir=./workdirs/prune_quick      # preset "quick" (the default)
    CPU (2 cores): about 2 minutes, mostly compiling its 12 programs (one per init, method
    and width). SNIP, SynFlow, GMP, RigL and LTH at widths 3 and 8 with budgets
    {20, 30, 40, 60} (those < N_w: only 20 at width 3), plus SNIP and GMP from BENCH-95 at
    width 3; lr {0.1, 0.2}, cosine schedule, 10 epochs on the full spiral (LTH 5 x 10),
    milestones and T_max scaled to 10 epochs: 58 runs. Expected: every mask keeps exactly
    its budget (mask_nnz_weights == budget); GMP reaches 95% with ~47 nonzero parameters,
    SNIP, RigL and LTH with ~75-80, SynFlow and the BENCH-95 runs stay below 95%, and no
    run reaches 99.5% in 10 epochs. Measured (2 busy CPU cores, 88 s wall):
                     runs best_acc nnz@95.0% nnz@99.5%
    init    method
    bench95 gmp         4   0.8768         -         -
            snip        4   0.9090         -         -
    torch   gmp        10   0.9660        47         -
            lth        10   0.9643        81         -
            rigl       10   0.9632        76         -
            snip       10   0.9535        75         -
            synflow    10   0.9070         -         -
  python experiments/prune.py --config=experiments/configs/prune.py:paper --workdir=DIR
    The study's three grids (docs/pruners.md): 40,014 runs of 50 epochs (LTH 5 x 50),
    about 2.9 M model-epochs in 135 compiled groups. Estimated, not measured: 1-3 hours on
    one H100 (the groups are small, at most 630 runs, so steps are latency-bound), several
    days on 2 CPU cores (~40 width-16 model-epochs/s, far fewer at width 256). Split it over
    a job array with --task_index=i --num_tasks=n (one workdir per task; ``recording.merge``
    joins them). Expected (the paper): no pruning method reaches 95% with as few as the
    combinatorial search's 30 nonzeros (26 from BENCH-95), nor 99.5% with 45 (38 from
    BENCH-995).
  python experiments/prune.py --config=experiments/configs/prune.py:bench95 --workdir=DIR
    The study's whole BENCH-95 grid: the nine methods (and dense) from the BENCH-95 init at
    widths 3 and 16, budgets 15..26, lrs 0.05/0.1/0.2 x constant/cosine/step x 5 repeats,
    50 epochs (LTH 5 x 50): 9,810 runs. Measured on 2 CPU cores (Intel Xeon, 2026-11-30):
    about 1.5 hours, run in two sittings (resumed). Result: no pruner goes below the
    search's 26 nonzeros at 95%; one GMP run of 1,080 ties it (26 at 96.23%, width 3);
    FORCE needs 30, ProsPr and LTH 31, SNIP and Iter SNIP 32, RigL and SynFlow 33, GraSP
    never reaches 95%. The closing table gives the spread over the 5 repeats.
  python experiments/prune.py --config=experiments/configs/prune.py:smoke --workdir=DIR
    About 10 s: random and GMP at width 3 on 640 points, 1 epoch; used by the tests.

A killed run resumes at the first unrecorded chunk when started again with the same workdir
and config. ``--config.epochs=10`` style overrides work (they change the stored config, so use
a new workdir).
"""

import ml_collections

PRESETS = ("quick", "paper", "bench95", "smoke")
PRUNING_METHODS = ("gmp", "lth", "snip", "grasp", "synflow", "iter_snip", "force", "prospr",
                   "rigl")
SCHEDULES = ("constant", "cosine", "step")
STUDY_LRS = (0.05, 0.1, 0.2)
STUDY_WIDTHS = (3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256)
STUDY_BUDGETS = tuple(range(15, 27)) + (30, 33, 37, 40, 44, 50, 53, 55, 57, 60, 65)
BENCH95_BUDGETS = tuple(range(15, 27))
BENCH995_BUDGETS = (16, 18, 20, 22, 24, 25, 26, 27, 28, 29, 30, 32, 34, 36)


def _grid(init, methods, widths, budgets, lrs=STUDY_LRS, schedules=SCHEDULES, repeats=1):
    return {"init": init, "methods": tuple(methods), "widths": tuple(widths),
            "budgets": tuple(budgets), "lrs": tuple(lrs), "schedules": tuple(schedules),
            "repeats": repeats}


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    """Returns the preset ``arg`` (one of PRESETS).

    Fields: grids (name -> init, methods, widths, budgets (those >= N_w are skipped, as the
    study), lrs, schedules, repeats), the training recipe (epochs, batch_size, milestones,
    cosine_t_max, precision), method_args (method -> {name: value}), num_points (0 = the whole
    spiral, else a fixed random subset), chunk_size (runs per recorded chunk), seed, and the
    task split (task_index, num_tasks; set by flags).
    """
    if arg not in PRESETS:
        raise ValueError(f"unknown prune preset {arg!r}; choose from {PRESETS}")
    c = ml_collections.ConfigDict()
    c.preset = arg
    c.grids = {
        "random": _grid("torch", PRUNING_METHODS, STUDY_WIDTHS, STUDY_BUDGETS),
        "bench95": _grid("bench95", PRUNING_METHODS, (3, 16), BENCH95_BUDGETS, repeats=5),
        "bench995": _grid("bench995", PRUNING_METHODS, (6, 16), BENCH995_BUDGETS, repeats=5),
    }
    c.epochs = 50
    c.batch_size = 128
    c.milestones = (15, 30)
    c.cosine_t_max = 50
    c.precision = "highest"
    # The study's code: GMP 199-step cubic schedule, RigL update every 100 steps (the paper
    # says 200), LTH 5 rounds; exact budgets (reference_counts False) everywhere.
    c.method_args = {"gmp": {"gmp_steps": 199}, "rigl": {"rigl_delta": 100},
                     "lth": {"lth_rounds": 5}}
    c.num_points = 0
    c.chunk_size = 256
    c.seed = 0
    c.task_index = 0
    c.num_tasks = 1
    if arg == "bench95":
        # The study's whole BENCH-95 grid, and dense training from the same init beside it.
        c.grids = {"bench95": c.grids["bench95"]}
        c.grids.bench95.methods = ("dense",) + PRUNING_METHODS
    elif arg == "quick":
        quick = dict(lrs=(0.1, 0.2), schedules=("cosine",))
        c.grids = {
            "random": _grid("torch", ("snip", "synflow", "gmp", "rigl", "lth"), (3, 8),
                            (20, 30, 40, 60), **quick),
            "bench95": _grid("bench95", ("snip", "gmp"), (3,), (20, 26), **quick),
        }
        c.epochs = 10
        c.milestones = (3, 6)   # 15 and 30 of 50 epochs, scaled to 10
        c.cosine_t_max = 10
        c.chunk_size = 64
    elif arg == "smoke":
        c.grids = {
            "random": _grid("torch", ("random", "gmp"), (3,), (15, 20, 30), lrs=(0.1,),
                            schedules=("constant", "cosine")),
            "bench95": _grid("bench95", ("random",), (3,), (20,), lrs=(0.1,),
                             schedules=("constant",), repeats=2),
        }
        c.epochs = 1
        c.batch_size = 64
        c.milestones = (1,)
        c.cosine_t_max = 1
        c.method_args = {"gmp": {"gmp_steps": 4}}
        c.num_points = 640
        c.chunk_size = 2
    return c
