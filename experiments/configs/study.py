"""The whole study in one command (docs/search.md, docs/pruners.md): search, pruning, report.

Runbook (from the repository root):

  python experiments/study.py --config=experiments/configs/study.py:quick
    The Quick start: the study's BENCH-95 experiment at paper scale, into
    ./workdirs/study_quick. 50 epochs on all 49,982 points, the 95% target, the study's
    fixed BENCH-95 init (its 16-wide init, sliced top-left):
      bench95_search   the study's grid, not reduced: phase one over the 93 configurations
                       with fewer structured parameters than (3,3,3) x lrs {0.05, 0.1} x
                       3 schedules (558 runs), phase two over every mask of the winner x
                       2 lrs x 3 schedules ((3,2,2): 416 masks, 2,496 runs).
      prune            the nine pruners, dense and random from the same init at widths 3
                       and 16 on the study's BENCH-95 budgets 15..26, REDUCED to lr 0.1, the
                       cosine schedule and one repeat (the study: 3 lrs x 3 schedules x 5
                       repeats): 242 runs. The reduction is printed and written into
                       summary.md; the whole grid is the prune binary's bench95 preset.
    It prints and writes summary.md: per method the fewest nonzeros reaching 95% beside the
    search's sparsest model, and one line saying whether the study's finding holds in this
    run (naming any pruner that matches or beats the search). Runtime and the results over
    three base seeds: README.md and REPRODUCTION.md. Expected (the paper): phase one picks
    (3,2,2), the sparsest model over 95% has 26 nonzeros (paper: 26 at 96.47%), and no
    pruner reaches 95% with 26 or fewer.
  python experiments/study.py --config=experiments/configs/study.py:demo
    A pipeline demo of every stage, not the study: 10 epochs instead of 50, width D = 4,
    targets 70% and 75%, a small pruning grid; about 3 minutes on 2 CPU cores. Its numbers
    change from machine to machine and say nothing about the finding:
      search           D = 4 (64 configurations x lr 0.05 x 3 schedules = 192 phase-one
                       runs); each target's phase-one winner is searched by phase two (the
                       full product if at most 1,300 runs, else the study's subset rule scaled
                       down: w1 + w2 + w3 < 14, the first 3 W2 masks per count, lr 0.05).
      prune            SNIP, SynFlow, GMP, RigL, LTH at widths 3 and 8, budgets
                       {15, 20, 26, 40, 60} below N_w, lrs {0.1, 0.2}, cosine (LTH 5 x 10
                       epochs); SNIP and GMP from BENCH-95 at width 3 and from BENCH-995 at
                       width 6 (budgets {16, 20, 26} / {16, 24, 30}).
      bench95_search   from the BENCH-95 init (top-left 4 x 4 slice): phase one over the
                       configurations with fewer structured parameters than (3,3,3), phase
                       two of the 70% winner.
      bench995_search  from BENCH-995: fewer than (7,3,3) (all of D = 4), the 75% winner.
    The table is printed and written to summary.md, the figures to figures/.
  python experiments/study.py --config=experiments/configs/study.py:paper \
      --workdir=./workdirs/study_paper [--dry_run]
    The study's grids (docs/search.md), 50 epochs: 370,152 search runs (phase one 24,576;
    phase two (3,3,3) 155,952 and the (7,3,3) subset 189,624 if phase one picks the study's
    winners), 40,014 pruning runs, and the fixed-init searches (BENCH-95: 558 + 2,496;
    BENCH-995: 2,034 + the (6,3,2) subset 70,584): 485,838 runs, exactly the original's
    count. Estimated by ``--dry_run`` from rates fitted to the device check on one H200
    (which measured its (3,3,3) phase two in 75 s and the (7,3,3) subset in 147 s), not run
    as a whole: about 37 minutes on one H200 (28 of them the 135 pruning groups, two thirds
    of that compiling), about 6 days on 2 CPU cores. Split it over a job array
    (--task_index/--num_tasks, see experiments/study.py).
    Expected (the paper): the search finds 30 nonzeros at 96.04% ((3,3,3)) for 95% and 45
    at 99.59% ((7,3,3)) for 99.5%; from BENCH-95 26 at 96.47% ((3,2,2)); from BENCH-995 38
    at 99.70% ((6,3,2)); no pruner reaches 95% or 99.5% with as few nonzeros. Seeds differ
    from the study's: expect the same picture, not the same digits.
  python experiments/study.py --config=experiments/configs/study.py:smoke --workdir=DIR
    About 15 s of training plus 10 s of (reduced) figures on 2 CPU cores: the smoke presets
    chained (D = 2, 1 epoch, a BENCH-995 pruning grid added); used by the tests.

Fields: stages (the stages to run, a subset of STAGES; every stage by default), seed (when
set, the base seed of every stage: ``--config.seed=1`` reruns the study with other seeds),
reduced (what the preset leaves out of the study; printed and written into summary.md),
targets (the table's targets, one or two; the searches must use them: search all of them,
bench95_search the first, bench995_search the second), the nested sub-configs search,
bench95_search, bench995_search (configs/search.py) and prune (configs/prune.py), fixed_inits
("shipped": BENCH-95 / BENCH-995), assumed_winners (phase two's configurations assumed by the
plan and the ETA before phase one has picked them), estimate ("measured": a dry run
measures this device on a small calibration population; "assumed": fixed rates), figures
(draw every figure at the end) and figure_args (keyword arguments of experiments/figures.py's
run()), task_index and num_tasks (set by flags; they override the sub-configs').
"""

import ml_collections

from experiments.configs import prune as prune_config
from experiments.configs import search as search_config

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
    c.figure_args = {}   # keyword arguments of experiments/figures.py's run()
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
