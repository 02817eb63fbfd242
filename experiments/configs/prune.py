"""Prune with every method of the study and record accuracy against nonzero parameters.

Runbook:
  python experiments/prune.py --workdir=/tmp/prune_quick      # preset "quick" (the default)
    CPU (2 cores): about 3 minutes, mostly compilation (one program per method and width).
    SNIP, SynFlow, GMP and RigL at widths 3 and 8, budgets {20, 40, 60} (< N_w), lr 0.1, cosine
    schedule, 4 epochs on the full spiral (milestones and T_max scaled to 4 epochs), plus LTH
    (4 x 1 epoch... see ``quick``) and BENCH-95 at width 3. Expected: every run keeps exactly its
    budget (mask nnz == budget; measured nnz_weights <= budget); the table shows which
    methods reach 95% in 4 epochs (typically GMP and SNIP at width 8 with 40-60 weights) and
    that none reaches 99.5% that quickly.
  python experiments/prune.py --config=experiments/configs/prune.py:paper --workdir=DIR
    The study's three grids (SPEC.md section 6): 40,014 runs of 50 epochs (LTH 5 x 50).
    Estimated (not measured here): ~1-2 hours on one H100; far too slow for a 2-core CPU
    (weeks). Split it over a job array with --task_index=i --num_tasks=n (one workdir per
    task; ``recording.merge`` joins them). Expected (the paper): no method reaches 95% with
    fewer than ~40-50 nonzeros, against 30 for the combinatorial search; 99.5% needs far more.
  python experiments/prune.py --config=experiments/configs/prune.py:smoke --workdir=DIR
    Seconds: two cheap methods at width 3 on 640 points; used by the tests.

A killed run resumes at the first unrecorded chunk when started again with the same workdir
and config. ``--config.epochs=10`` style overrides work (they change the stored config, so use
a new workdir).
"""

import ml_collections

PRESETS = ("quick", "paper", "smoke")
PRUNING_METHODS = ("gmp", "lth", "snip", "grasp", "synflow", "iter_snip", "force", "prospr",
                   "rigl")
SCHEDULES = ("constant", "cosine", "step")
STUDY_LRS = (0.05, 0.1, 0.2)
STUDY_WIDTHS = (3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256)
STUDY_BUDGETS = tuple(range(15, 27)) + (30, 33, 37, 40, 44, 50, 53, 55, 57, 60, 65)
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
        "bench95": _grid("bench95", PRUNING_METHODS, (3, 16), range(15, 27), repeats=5),
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
    if arg == "quick":
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
