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
    as a whole: about 40 minutes on one H200 (28 of them the pruning grids' groups, one at a
    time, much of that compiling); about 22 hours on 2 idle CPU cores at full width from
    rates the dry run measures on the machine (2026-12-07; the random-init grid at full
    width is 8.8 h of it). On a CPU the pruning grids' fixed masks train compacted
    (``prune.compact="auto"``), as the width-sweep pieces of experiments/reproduce.py do
    (the random-init grid in about 4.7 h). Split it over a job array
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
(draw every figure at the end) and figure_args (keyword arguments of spiralprune.study.figures'
run()), task_index and num_tasks (set by flags; they override the sub-configs').
"""


# The builder lives in the library (importable without this folder); this file is the
# runbook passed to --config=.
from spiralprune.configs.study import PRESETS, get_config

__all__ = ["PRESETS", "get_config"]
