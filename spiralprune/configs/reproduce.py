"""The reproduce presets: one per piece of ``spiralprune.study.reproduce.PIECES``.

The runbook (commands, runtimes, expected results) is the docstring of
``experiments/configs/reproduce.py``, the file passed to ``--config=``.
"""

import ml_collections


def get_config(arg: str = "random_phase_one") -> ml_collections.ConfigDict:
    """Returns the piece ``arg`` with its run options (seeds, ship, figures, task split)."""
    from spiralprune.study import reproduce  # the pieces live with their runner

    p = reproduce.piece(arg)   # one-line error naming the pieces
    c = ml_collections.ConfigDict()
    c.piece = arg
    c.seeds = tuple(p.seeds) if isinstance(p, (reproduce.Retrain, reproduce.Dense)) else (0,)
    c.train = True   # False: summarize what is recorded (e.g. to ship it), train nothing
    c.dry_run = False   # True: print the plan and its estimate here and on one GPU, train nothing
    c.ship = False
    c.figures = ""   # a directory: redraw the shipped summaries' figures there
    c.task_index = 0
    c.num_tasks = 1
    return c
