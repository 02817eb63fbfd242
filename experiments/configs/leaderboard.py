"""Where does a pruner land against the nine pruners and the sparsest models? One command.

Runbook (from the repository root):

  python experiments/leaderboard.py --config.methods=my_pkg.my_module:my_pruner
    Preset "bench95" (the default): the Quick start's BENCH-95 pruning grid (the study's
    BENCH-95 init at widths 3 and 16, budgets 15..26, lr 0.1, cosine schedule, one repeat,
    50 epochs on all 49,982 points: 24 runs per pruner). Only the given pruners train; the nine
    built-ins (and dense, random) are read from ./workdirs/study_quick/prune when the Quick
    start has run, else from the records shipped in the package, and the search from the
    shipped frontier (26 nonzeros at 96.36% in this project's run; the paper: 26 at 96.47%).
    Writes leaderboard.md / .csv / .png into --workdir (default workdirs/leaderboard/<preset>
    of the checkout holding the current directory, or $SPIRALPRUNE_WORKDIRS/leaderboard/<preset>:
    ``spiralprune.study.cli.workdirs_root``); every pruner and grid gets its own records folder
    there, so adding a pruner or going back to a grid trains only what is missing, and the
    report's fields (targets, figure, preset name) never retrain.
    Measured on 2 busy CPU cores for the worked example (``connected``): see README.md.
  python experiments/leaderboard.py --config=experiments/configs/leaderboard.py:random16 \
      --config.methods=my_pkg.my_module:my_pruner
    The study's random init (PyTorch's default, a fresh draw per repeat) at width 16: the
    study's 23 budgets 15..65, lr 0.1, cosine, three repeats, 50 epochs, targets 95% and 99.5%
    (69 runs per pruner, LTH 5 x 50 epochs; 40-70 s for a pruner at init, about 3 min for
    LTH, on 2 busy CPU cores).
    The built-ins are read from the records shipped in the package; the search is the
    paper's published points (30 nonzeros at 96.04%, 45 at 99.59%), labelled as the paper's,
    until a run of the random-init search exists.
  python experiments/leaderboard.py --config=experiments/configs/leaderboard.py:bench995 \
      --config.methods=my_pkg.my_module:my_pruner
    The study's BENCH-995 experiment (its Section 7): the BENCH-995 init at widths 6 and 16,
    its 14 budgets 16..36, lr 0.05, cosine, five repeats, 50 epochs, targets 95% and 99.5%
    (140 runs per pruner; about 3 min for ``neurons`` on 2 CPU cores beside another job).
    The built-ins are the records of piece ``bench995_pruning`` on this grid, shipped in the
    package (GMP, the only one of the nine over 99.5%, needs 46 nonzeros); the search is the
    paper's point (38 nonzeros at 99.70%), labelled as the paper's.
  python experiments/leaderboard.py --config=experiments/configs/leaderboard.py:smoke
    A pipeline check in well under a minute of training: width 3, budgets 20 and 26, one epoch
    on 640 points; its accuracies say nothing (the built-ins beside it trained 50 epochs).

Fields: methods (pruner names: built-in or registered names, or import paths
``package.module:function``; a comma-separated string or a tuple), init, widths, budgets, lrs,
schedules, repeats, targets (any accuracy levels: the search's sparsest model at each is read
off its frontier), the training recipe (epochs, batch_size, milestones,
cosine_t_max, precision, num_points), method_args (method -> {name: value}), chunk_size,
seed, builtins ("auto": the Quick start's workdir if present, else "shipped"; "shipped";
"none"; or a prune workdir), search_workdir (a search workdir to read the frontier from
instead of the shipped one), recompute (run the search's preset ``search_preset`` into
WORKDIR/search first and use it), figure (draw the front figure).
"""


# The builder lives in the library (importable without this folder); this file is the
# runbook passed to --config=.
from spiralprune.configs.leaderboard import PRESETS, get_config

__all__ = ["PRESETS", "get_config"]
