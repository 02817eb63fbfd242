"""Prune with every method of the study and record accuracy against nonzero parameters.

Runbook:
  python experiments/prune.py --workdir=./workdirs/prune_quick      # preset "quick" (the default)
    CPU (2 cores): about 2 minutes, mostly compiling its 12 programs (one per init, method
    and width). SNIP, SynFlow, GMP, RigL and LTH at widths 3 and 8 with budgets
    {20, 30, 40, 60} (those < N_w: only 20 at width 3), plus SNIP and GMP from BENCH-95 at
    width 3; lr {0.1, 0.2}, cosine schedule, 10 epochs on the full spiral (LTH 5 x 10),
    milestones and T_max scaled to 10 epochs: 58 runs. Expected: every mask keeps exactly
    its budget (mask_nnz_weights == budget); GMP reaches 95% with ~47 nonzero parameters,
    SNIP, RigL and LTH with ~75-80, SynFlow and the BENCH-95 runs stay below 95%, and no
    run reaches 99.5% in 10 epochs. Measured (2 busy CPU cores, 88 s wall):
                     runs best_acc nnz@95.0% nnz@99.5%
    init    method
    bench95 gmp         4   0.8768         -         -
            snip        4   0.9090         -         -
    torch   gmp        10   0.9660        47         -
            lth        10   0.9643        81         -
            rigl       10   0.9632        76         -
            snip       10   0.9535        75         -
            synflow    10   0.9070         -         -
  python experiments/prune.py --config=experiments/configs/prune.py:paper --workdir=DIR
    The study's three grids (docs/pruners.md): 40,014 runs of 50 epochs (LTH 5 x 50),
    about 2.9 M model-epochs in 135 compiled groups. Estimated, not measured: 1-3 hours on
    one H100 (the groups are small, at most 630 runs, so steps are latency-bound), several
    days on 2 CPU cores (~40 width-16 model-epochs/s, far fewer at width 256). Split it over
    a job array with --task_index=i --num_tasks=n (one workdir per task; ``recording.merge``
    joins them). Expected (the paper): no pruning method reaches 95% with as few as the
    combinatorial search's 30 nonzeros (26 from BENCH-95), nor 99.5% with 45 (38 from
    BENCH-995).
  python experiments/prune.py --config=experiments/configs/prune.py:bench95 --workdir=DIR
    The study's whole BENCH-95 grid: the nine methods (and dense) from the BENCH-95 init at
    widths 3 and 16, budgets 15..26, lrs 0.05/0.1/0.2 x constant/cosine/step x 5 repeats,
    50 epochs (LTH 5 x 50): 9,810 runs. Measured on 2 CPU cores (Intel Xeon, 2026-11-30):
    about 1.5 hours, run in two sittings (resumed). Result: no pruner goes below the
    search's 26 nonzeros at 95%; one GMP run of 1,080 ties it (26 at 96.23%, width 3);
    FORCE needs 30, ProsPr and LTH 31, SNIP and Iter SNIP 32, RigL and SynFlow 33, GraSP
    never reaches 95%. The closing table gives the spread over the 5 repeats.
  python experiments/prune.py --config=experiments/configs/prune.py:smoke --workdir=DIR
    About 10 s: random and GMP at width 3 on 640 points, 1 epoch; used by the tests.

A killed run resumes at the first unrecorded chunk when started again with the same workdir
and config. ``--config.epochs=10`` style overrides work (they change the stored config, so use
a new workdir).
"""


# The builder lives in the library (importable without this folder); this file is the
# runbook passed to --config=.
from spiralprune.configs.prune import PRESETS, get_config

__all__ = ["PRESETS", "get_config"]
