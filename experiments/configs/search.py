"""The combinatorial search (docs/search.md): the sparsest models over a target accuracy.

Runbook (from the repository root):

  python experiments/search.py --config=experiments/configs/search.py:quick
  python experiments/search.py --config=experiments/configs/search.py:paper \
      --workdir=./workdirs/search_paper
  # search one configuration directly (phase one still runs unless phase_one=False):
  python experiments/search.py --config=experiments/configs/search.py:paper \
      --config.phase_one=False --config.phase_two_config='(3,3,3)'

The workdir defaults to ./workdirs/search_<preset>. A killed run resumes at its first missing
chunk when started again with the same config; another config in the same workdir is refused.
Cluster job array: add --task_index=$i --num_tasks=$n (tasks may share one workdir on a shared
filesystem, or write their own and be merged with ``recording.merge``). Each task runs its share
of phase one and stops while other tasks' phase-one chunks are missing; run the array again when
phase one is complete to share phase two; a finished workdir just prints the summary again.

Presets:

  paper: the study. D = 16, targets 95% and 99.5%, lrs {0.05, 0.1} x 3 schedules, 50 epochs.
    Phase one: 4,096 configurations x 6 = 24,576 runs of block-masked width-16 models.
    Phase two for 95%: every mask of the winner ((3,3,3) in the study: 25,992 masks x 6 =
    155,952 runs). For 99.5%: the study's Appendix D subset of (7,3,3) (w1 + w2 + w3 < 33,
    the first 3 W2 masks per nonzero count, lr 0.05 only: 63,208 masks x 3 = 189,624 runs).
    Another winner gets its full product unless that exceeds max_phase_two_runs, then the
    same subset rule (it says so).
    Runtime: an estimated 10 hours on 2 CPU cores, not run end to end (18.5 M model-epochs:
    phase one's 1.2 M at ~140 width-16 model-epochs/s on the vmap engine, phase two's at
    ~1,000 (3,3,3) and ~520 (7,3,3) on the lanes engine); on one H100 an estimated 15-30 minutes
    (from ~25,000 width-16 model-epochs/s of an earlier prototype; not measured with this binary).
    Expected (ref): phase one picks (3,3,3) for 95% and (7,3,3) for 99.5%; the sparsest model
    over 95% has 30 nonzeros (96.04%), over 99.5% 45 nonzeros (99.59%). Seeds differ from
    the study's, so expect the same picture, not the same digits.
  bench95 / bench995: the fixed-init grids (docs/search.md): phase one restricted to fewer
    structured parameters than (3,3,3) / (7,3,3); phase two over all (3,2,2) masks / the
    (6,3,2) subset (w1 + w2 + w3 < 31, first 6 W2 masks per count). Expected (ref): 26
    nonzeros at 96.47% / 38 at 99.70%. On 2 CPU cores BENCH-95 (3,054 runs) takes about
    2 min 20 s; BENCH-995 (2,034 + 70,584 runs) an estimated 1.5-2 hours. Minutes on a GPU.
  quick: a faithful miniature, about 2 minutes on 2 CPU cores. Reduced: D = 4 (64
    configurations, 192 phase-one runs), 10 epochs (step milestones 3 and 6, cosine T_max
    10), lr 0.05 only, targets 70% and 75%, and phase two searches (3,2,2) exhaustively
    (416 masks x 3 schedules = 1,248 runs) whatever phase one picks. Not reduced: the full
    49,982-point spiral, the recipe (batch 128, momentum, weight decay), all three schedules,
    every mask of the configuration.
    Expected (2-core CPU): phase one picks a configuration of about 34 structured params
    (e.g. (3,2,4)) for both targets; phase two finds a 21-nonzero model at 72% and a
    22-nonzero model at 79% (10 epochs are far from the study's 50: accuracies are lower).
  smoke: seconds, for tests: D = 2, 1 epoch, lr 0.1, constant and cosine, phase two over the
    4 masks of (2,1,1), chunks of 4 runs.
"""


# The builder lives in the library (importable without this folder); this file is the
# runbook passed to --config=.
from spiralprune.configs.search import PRESETS, get_config

__all__ = ["PRESETS", "get_config"]
