"""The study's remaining claims, piece by piece (spiralprune.study.reproduce).

Runbook (from the repository root; each piece resumes where it stopped when rerun with the
same --workdir, which holds one workdir per piece):

  python experiments/reproduce.py --config=experiments/configs/reproduce.py:random_phase_one \
      --config.seeds=0,1,2
    Phase one at the random init, width 16, over the 353 configurations with at most 61
    structured parameters (2 lrs x 3 schedules, 50 epochs: 2,118 runs a seed, on the vmap
    engine at width 16). About 13 min a seed on 2 idle CPU cores. Expected (the paper, over
    all 4,096 configurations): (3,3,3) for 95%, (7,3,3) for 99.5%.
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:bench995_phase_two_632
    Phase two from the BENCH-995 init on the study's (6,3,2) subset, masks of at most 38
    nonzeros (13,572 masks x lr 0.05 x 3 schedules = 40,716 runs), lanes engine. About 40 min
    on 2 idle CPU cores. Expected (the paper): 38 nonzeros at 99.70%.
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:bench995_phase_two_542
    The same rule on our own BENCH-995 phase one's winner (5,4,2): 35,376 masks, 106,128
    runs, about 1.7 h.
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:random_subset_733
    The study's (7,3,3) subset at the random init, masks of at most 45 nonzeros (40,107
    masks, 120,321 runs): about 2.3 h on 2 idle CPU cores; a few minutes on one GPU.
    Expected (the paper): 45 nonzeros at 99.59%.
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:retrain_995
    Every (7,3,3) mask over 99.5% in random_subset_733 (and the 44-nonzero mask of the one-GPU
    run) retrained from base seeds 1..10 at every schedule; its summary names the sparsest
    model over 99.5% in a majority of seeds. Needs random_subset_733 complete.
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:dense_995_56_67
    Dense configurations of 56 to 67 structured parameters (164, around (7,3,3)'s 61) at the
    random init, block-masked width 16 as phase one trains them, lr 0.05 x 3 schedules, from
    base seeds 1..10 (4,920 runs, about 30 min on 2 idle CPU cores): the smallest that
    reaches 99.5% in a majority of its seeds is a 99.5% model that retrains anywhere (its
    summary ships a model card; spiralprune.study.reproduce.retrain_model trains it again).
    ``dense_995_68_80``: the same from 68 to 80 (195 configurations, 5,850 runs).
    ``dense_995_ladder``: larger dense models, cubes (d,d,d) d = 5..12 and funnels (2d,d,d)
    d = 4..8 (81 to 361 structured params), lrs 0.05 and 0.1, seeds 1..10 (780 runs, about
    5 min): how large a dense model must be for most seeds to cross 99.5%.
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:sweep_w64
    The study's random-init pruning grid at one width (all nine pruners x lrs 0.05, 0.1, 0.2 x
    3 schedules x the 23 budgets, one run each: 1,863 runs, LTH 5 x 50 epochs). Pieces:
    sweep_w3_8 (widths 3..8, 9,639 runs, 43 min measured on 2 idle CPU cores), sweep_w16
    (about 15 min), sweep_w32 (about 40 min), sweep_w64 (41 min measured), sweep_w128 (about
    1 to 1.5 h) and sweep_w256 (3 to 4 h: LTH's first rounds and GMP and RigL train at full
    width; minutes on one GPU). Together: the study's 18,954 runs, the records of its Figures
    11 and 17. A piece longer than a session runs as tasks into one workdir, e.g. sweep_w256
    in three of 1 to 1.5 h each (--config.task_index=0, 1, 2 --config.num_tasks=3;
    --config.dry_run=True says each task's share and time).
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:reduced_w128_256
    Widths 128 and 256 on one lr and schedule of the grid (lr 0.05, constant: where the best
    of the nine reached 95% with the fewest nonzeros at widths 32 and 64): 414 runs, a ninth of
    sweep_w128 and sweep_w256, stated as a reduction in its summary; 40-70 min on 2 CPU cores.
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:optimal_widths
    Widths 3 and 7 with 5 repeats (14,175 runs, 35-40 min estimated): how many runs match or
    beat the search's sparsest model at its target (the study: 2 of its 18,954 runs).
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:bench995_pruning
    The study's BENCH-995 pruning grid: widths 6 and 16, 14 budgets, 5 repeats (11,340 runs).
  python experiments/reproduce.py --config=experiments/configs/reproduce.py:neurons_sweep_w3_32
    Our own pruner ``neurons`` on the width sweep's grid at widths 3..32 (1,485 runs; its
    3 restarts cost about 2.8x GMP, at full width); ``neurons_sweep_w64`` the same at width
    64 (207 runs). Their fewest nonzeros per width join the sweep's figure, highlighted.
    ``neurons_bench995``: the same pruner on the BENCH-995 grid (1,260 runs), drawn beside the
    nine in bench995_pruning's figure.

Each run prints the piece's summary; ``--config.train=False`` summarizes what is recorded and
trains nothing; ``--config.ship=True`` also writes the summary into the package data
(spiralprune/data/reproduce.json) with its provenance (command, device, date, commit), which
the figures (``--config.figures=DIR``) and REPRODUCTION.md read.
"""

# The builder lives in the library; this file is the runbook passed to --config=.
from spiralprune.configs.reproduce import get_config

__all__ = ["get_config"]
