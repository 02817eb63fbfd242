"""The prune presets: ``get_config(preset)`` returns a ``ConfigDict``.

The runbook (commands, runtimes, expected results, the meaning of every field) is the
docstring of ``experiments/configs/prune.py``, the file passed to ``--config=``.
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
    spiral, else a fixed random subset), chunk_size (the most runs per recorded chunk),
    chunk_seconds (a chunk's estimated training time at most: fewer runs where runs are slow,
    so a killed run loses at most that; not part of the records' identity), seed, and the
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
    c.chunk_seconds = 600.0
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
