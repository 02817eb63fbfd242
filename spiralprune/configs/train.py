"""The train presets: ``get_config(preset)`` returns a ``ConfigDict``.

The runbook (commands, runtimes, expected results, the meaning of every field) is the
docstring of ``experiments/configs/train.py``, the file passed to ``--config=``.
"""

import ml_collections

PRESETS = ("quick", "paper", "smoke")


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
    """Returns the preset ``arg`` (one of PRESETS)."""
    if arg not in PRESETS:
        raise ValueError(f"unknown train preset {arg!r}; choose from {PRESETS}")
    c = ml_collections.ConfigDict()
    c.width = 16
    c.keep = (1.0, 0.5, 0.25, 0.1)
    c.lrs = (0.05, 0.1, 0.2)
    c.schedules = ("constant", "cosine", "step")
    c.repeats = 1
    c.epochs = 50
    c.milestones = (15, 30)
    c.cosine_t_max = 50
    c.seed = 0
    if arg == "quick":
        c.width = 8
        c.lrs = (0.1,)
        c.epochs = 5
        c.milestones = (2, 4)
        c.cosine_t_max = 5
        c.repeats = 2
    elif arg == "smoke":
        c.width = 3
        c.keep = (1.0, 0.5)
        c.lrs = (0.1,)
        c.schedules = ("constant",)
        c.epochs = 1
    return c
