"""The study's remaining search claims, piece by piece (spiralprune.study.reproduce).

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

Each run prints the piece's summary; ``--config.ship=True`` also writes it into the package
data (spiralprune/data/reproduce.json) with its provenance (command, device, date, commit),
which the figures (``--config.figures=DIR``) and REPRODUCTION.md read.
"""

import ml_collections

from spiralprune.study import reproduce

PRESETS = tuple(reproduce.PIECES)


def get_config(arg: str = "random_phase_one") -> ml_collections.ConfigDict:
    """Returns the piece ``arg`` (one of PRESETS) with its run options."""
    reproduce.piece(arg)   # one-line error for an unknown piece
    c = ml_collections.ConfigDict()
    c.piece = arg
    c.seeds = (0,) if arg != "retrain_995" else tuple(reproduce.PIECES[arg].seeds)
    c.ship = False
    c.figures = ""   # a directory: draw the shipped summaries' figures there
    c.task_index = 0
    c.num_tasks = 1
    return c
