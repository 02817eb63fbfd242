"""The study presets: ``get_config(preset)`` returns a ``ConfigDict``.

The runbook (commands, runtimes, expected results, the meaning of every field) is the
docstring of ``experiments/configs/study.py``, the file passed to ``--config=``.
"""

import ml_collections

from spiralprune.configs import prune as prune_config
from spiralprune.configs import search as search_config

PRESETS = ("quick", "paper", "demo", "smoke")
SEARCHES = ("search", "bench95_search", "bench995_search")
STAGES = ("search", "prune", "bench95_search", "bench995_search")
# The Quick start's pruning side: the study's BENCH-95 grid at one lr, one schedule, one
# repeat (the study: lrs 0.05, 0.1, 0.2 x 3 schedules x 5 repeats). The search side is not
# reduced. Printed at the start of the run and written into summary.md.
QUICK_LR, QUICK_SCHEDULE = 0.1, "cosine"
QUICK_REDUCED = (
    f"reduced from the study: the pruners train at lr {QUICK_LR} with the {QUICK_SCHEDULE} "
    "schedule, one repeat (the study: lrs 0.05, 0.1, 0.2 x constant, cosine, step x 5 "
    "repeats, 45 runs per method, width and budget); the search is the study's full BENCH-95 "
    "grid (phase one 558 runs, phase two every mask of the winner x 2 lrs x 3 schedules)")


def _miniature_search(c: ml_collections.ConfigDict, width: int, targets, max_runs: int,
                      max_weights: int) -> ml_collections.ConfigDict:
    """Scales a search preset down to 10 epochs at width D with a capped phase two."""
    c.width = width
    c.targets = tuple(targets)
    c.lrs = (0.05,)
    c.epochs = 10
    c.milestones = (3, 6)   # 15 and 30 of 50 epochs, scaled to 10
    c.cosine_t_max = 10
    c.phase_two_config = None   # phase one's winners feed phase two
    c.max_phase_two_runs = max_runs
    c.subset_config = None
    c.subset_max_weights = max_weights
    c.subset_first_k_layer = 1
    c.subset_first_k = 3
    c.subset_lrs = (0.05,)
    return c


def _grid(init, methods, width, budgets, **axes) -> dict:
    """One pruning grid at one width in the layout of configs/prune.py."""
    return {"init": init, "methods": tuple(methods), "widths": (width,),
            "budgets": tuple(budgets), **axes}


def stages(config) -> tuple[str, ...]:
    """The stages a study config runs, in STAGES order (every stage if it names none)."""
    names = tuple(config.get("stages") or STAGES)
    unknown = sorted(set(names) - set(STAGES))
    if unknown or not names:
        raise ValueError(f"stages must be a non-empty subset of {STAGES}, got {names}")
    return tuple(n for n in STAGES if n in names)


def apply_seed(config) -> None:
    """Sets every stage's base seed to ``config.seed`` when it is set (in place)."""
    if config.get("seed") is None:
        return
    seed = int(config.seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {config.seed}")
    with config.unlocked():
        for name in SEARCHES:
            config[name].base_seed = seed
        config.prune.seed = seed


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    """Returns the study preset ``arg``.

    Args:
      arg: one of PRESETS.

    Returns:
      a ConfigDict nesting the sub-configs of every stage (see the module docstring).
    """
    if arg not in PRESETS:
        raise ValueError(f"unknown study preset {arg!r}; choose from {PRESETS}")
    c = ml_collections.ConfigDict()
    c.preset = arg
    c.stages = STAGES
    c.reduced = ""   # what the preset leaves out of the study, said in the output (or "")
    c.seed = ml_collections.config_dict.placeholder(int)   # None: each stage's own seed
    c.targets = (0.95, 0.995)
    c.fixed_inits = "shipped"
    c.estimate = "measured"   # a dry run measures this device on a calibration population
    c.figures = True
    c.figure_args = {}   # keyword arguments of spiralprune.study.figures.run()
    c.task_index = 0
    c.num_tasks = 1
    c.search = search_config.get_config("paper")
    c.bench95_search = search_config.get_config("bench95")
    c.bench995_search = search_config.get_config("bench995")
    # The original trained the (6,3,2) subset at lr 0.05 only, as the (7,3,3) one: its 485,838
    # runs are 370,152 (search) + 40,014 (pruning) + 558 + 2,496 (BENCH-95 search) + 2,034 +
    # 23,528 masks x 3 (BENCH-995 search), so 3 runs per mask, not 6.
    c.bench995_search.subset_lrs = (0.05,)
    c.prune = prune_config.get_config("paper")
    # Fixed-mask groups train compacted on a CPU (spiralprune.compaction, "auto"): equal to
    # full width up to float32 rounding, and the width-128/256 grids take hours instead of
    # days there; at full width on a GPU, where compiling the buckets' programs costs more.
    # Presets whose records are shipped (the Quick start's, below) train at full width.
    c.prune.compact = "auto"
    c.assumed_winners = {"search": ((3, 3, 3), (7, 3, 3)), "bench95_search": ((3, 2, 2),),
                         "bench995_search": ((6, 3, 2),)}
    if arg == "quick":
        # The study's BENCH-95 experiment at paper scale: the search unreduced, the nine
        # pruners (and dense, random) from the same init at widths 3 and 16 on the study's
        # BENCH-95 budgets 15..26, at one lr and schedule.
        c.stages = ("prune", "bench95_search")
        c.targets = (0.95,)
        c.reduced = QUICK_REDUCED
        c.prune = prune_config.get_config("paper")
        c.prune.preset = "quick_study"
        c.prune.grids = {"bench95": _grid(
            "bench95", ("dense", "random") + prune_config.PRUNING_METHODS, 16,
            prune_config.BENCH95_BUDGETS, lrs=(QUICK_LR,), schedules=(QUICK_SCHEDULE,),
            repeats=1)}
        c.prune.grids.bench95.widths = (3, 16)
        c.assumed_winners = {"search": ((3, 3, 3), (7, 3, 3)), "bench95_search": ((3, 2, 2),),
                             "bench995_search": ((6, 3, 2),)}
    elif arg == "demo":
        c.reduced = ("a pipeline demo, not the study: 10 epochs, width 4, targets 70% and 75%; "
                     "its numbers change with the machine and say nothing about the finding")
        c.targets = (0.7, 0.75)
        _miniature_search(c.search, 4, c.targets, 1300, 14)
        c.search.preset = "demo"
        _miniature_search(c.bench95_search, 4, c.targets[:1], 1300, 14)
        _miniature_search(c.bench995_search, 4, c.targets[1:], 1300, 14)
        c.prune = prune_config.get_config("quick")
        c.prune.grids.random.budgets = (15, 20, 26, 40, 60)
        c.prune.grids.bench95.budgets = (16, 20, 26)
        c.prune.grids.bench995 = _grid("bench995", ("snip", "gmp"), 6, (16, 24, 30),
                                       lrs=(0.1, 0.2), schedules=("cosine",), repeats=1)
        # what phase one picked on a 2-core CPU (the plan's guess until phase one has run)
        c.assumed_winners = {"search": ((3, 2, 4), (3, 2, 4)), "bench95_search": ((3, 1, 3),),
                             "bench995_search": ((4, 2, 1),)}
    elif arg == "smoke":
        c.targets = (0.5, 0.55)
        c.search = search_config.get_config("smoke")
        for name, init, target, cap in (("bench95_search", "bench95", 0.5, 17),
                                        ("bench995_search", "bench995", 0.55, 22)):
            c[name] = search_config.get_config("smoke")
            c[name].init, c[name].targets, c[name].max_structured_params = init, (target,), cap
        c.prune = prune_config.get_config("smoke")
        c.prune.grids.bench995 = _grid("bench995", ("random",), 3, (20,), lrs=(0.1,),
                                       schedules=("constant",), repeats=2)
        c.assumed_winners = {"search": ((2, 1, 1), (2, 1, 1)), "bench95_search": ((2, 1, 1),),
                             "bench995_search": ((2, 1, 1),)}
        c.figure_args = {"grid": 64, "no_path_trials": 20, "no_path_widths": (3, 8)}
    return c
