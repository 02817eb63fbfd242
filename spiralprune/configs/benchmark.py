"""The benchmark presets: ``get_config(preset)`` returns a ``ConfigDict``.

The runbook (commands, runtimes, expected results) is the docstring of
``experiments/configs/benchmark.py``, the file passed to ``--config=``.
"""

import ml_collections

from spiralprune.configs import prune as prune_config

PRESETS = ("quick", "engines", "gpu", "compaction", "plan", "calls", "smoke")
SEARCH_SHAPES = ((3, 3, 3), (7, 3, 3), (3, 2, 2), (6, 3, 2))


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    """Returns the benchmark preset ``arg`` (one of PRESETS)."""
    if arg not in PRESETS:
        raise ValueError(f"unknown benchmark preset {arg!r}; choose from {PRESETS}")
    c = ml_collections.ConfigDict()
    c.preset = arg
    c.epochs = 1
    c.precision = "highest"
    c.sparsity = 0.5          # fraction of weights masked (masked models, as the study trains)
    c.loop_models = 2         # models trained one by one for the P=1 loop baseline
    c.max_cell_s = 120.0
    c.max_compile_s = 600.0   # stop growing P for a shape and engine past this compile time
    c.epoch_split = True      # time epochs and 2 * epochs (two compilations per cell)
    c.repeats = 1             # measure each engine cell this often (interleaved), keep the best
    c.output = "BENCHMARKS.md"
    c.seed = 0
    c.engines = ("vmap", "lanes")
    if arg == "quick":
        c.widths = (3, 16)
        c.populations = (1, 16, 256, 1024)
    elif arg == "engines":
        c.widths = SEARCH_SHAPES + ((8, 8, 8), (16, 16, 16))
        c.populations = (64, 256, 1024)
        c.loop_models = 0
        c.epochs = 2
        c.epoch_split = False   # one compilation per cell: whole runs, evaluation included
        c.max_compile_s = 60.0  # stop growing P where a compilation takes minutes
        c.repeats = 2           # a shared CPU: both engines alternate, the best time is kept
    elif arg == "compaction":
        c.widths = (64, 128, 256)
        c.method = "snip"
        c.budgets = prune_config.STUDY_BUDGETS
        c.lr = 0.1
        c.schedule = "cosine"
        c.epochs = 50
        c.milestones = (15, 30)
        c.cosine_t_max = 50
        c.full_epochs = 1       # full width timed at 1 and 2 epochs, projected to ``epochs``
        c.repeats = 2           # a shared CPU: the fastest of 2 warm calls each
    elif arg == "calls":
        c.widths = (16, 32, 64, 128, 256)
        c.populations = (1024, 512, 256, 64, 32)   # one per width: a pruning group's call
        c.repeats = 2           # interleaved, the fastest of each kept (load only slows)
        c.loop_models = 0
    elif arg == "plan":
        c.checks = ("quick", "sweep_w64_slice", "bench995_slice")
        c.root = ""   # the checks' workdirs: a temporary folder when empty
    elif arg == "gpu":
        c.widths = SEARCH_SHAPES + (16, 64, 256)
        c.populations = tuple(4**i for i in range(9)) + (1 << 17,)
        c.loop_models = 3
    else:
        c.widths = ((3, 2, 2),)
        c.populations = (1, 4)
        c.loop_models = 1
        c.output = ""
    return c
