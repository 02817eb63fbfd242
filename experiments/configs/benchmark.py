"""Benchmark presets: model-epochs per second of population training against shape, engine and P.

Runbook:
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:quick
    CPU (2 cores): about 5 minutes. Widths 3 and 16, P in {1, 16, 256, 1024}, both engines.
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:engines
    The engines side by side at the search's compacted shapes (3,3,3), (7,3,3), (3,2,2),
    (6,3,2) and at width 8 and 16, P in {64, 256, 1024}: about 12-15 minutes on 2 CPU cores.
    Expected on 2 cores: lanes ~8x vmap at (3,3,3), 5-5.5x at (3,2,2), (7,3,3) and (6,3,2)
    (the vmap cells vary by ~5% from run to run), slower than vmap at width 8; lanes does not
    run width 16 (too many weights).
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:gpu
    One GPU: widths 3, 7, 16, 64, 256 and P = 1, 4, ..., 2^17 (cells stop growing P for a
    width once a cell takes longer than ``max_cell_s``); about 10-15 minutes on an H100.
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:compaction
    Compacted training of fixed masks against full width: one SNIP group of the random-init
    pruning grid (the study's 23 budgets, lr 0.1, cosine, 50 epochs, evaluation included) at
    widths 64, 128 and 256. Full width is timed at 1 and 2 epochs and projected to 50 (at
    width 256 one full-width epoch of the group takes ~10 s on 2 CPU cores); about 10
    minutes on 2 idle CPU cores. Expected: compacted >= 20x faster at width 256 once compiled.
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:plan
    The plan's estimates against wall time (``spiralprune.study.estimates``): this machine's
    rates measured afresh, then the Quick start from scratch, a width-64 slice of the sweep
    (SNIP compacted and GMP, 46 runs) and a BENCH-995 phase-two slice (3,072 runs), each
    estimated first: about 12 minutes on 2 idle CPU cores. Expected: each within +-30%.
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:calls
    The vmap engine's calls on a CPU: a population of widths 16-256 (1,024 runs at width 16
    down to 32 at width 256, half the weights masked, one epoch, evaluation included) trained
    in one call against calls of ``populations.cpu_call_runs`` runs (what ``run`` does on a
    CPU), interleaved, the fastest of 2 each: about 8 minutes on 2 idle CPU cores.
  Add --config.precision=default to measure TF32 matmuls on a GPU (full float32 is the default).

Each cell trains P masked models of one width for ``epochs`` and for ``2 * epochs`` epochs,
each after a warm-up call of the same shape (compilation excluded); the difference is the
training time alone, reported as model-epochs/s and as achieved float32 throughput from the
recipe's ~6 N_w flops per sample per step (168 MFLOP per model-epoch at width 16). The rest
of the short run (final evaluation on all 49,982 points, init, copies) is reported as the
fixed cost. The "loop" row trains models one after another with the compiled single-model
program: what a per-model trainer does at best. Results are printed and appended
to BENCHMARKS.md with the device and date.
"""

# The builder lives in the library (importable without this folder); this file is the
# runbook passed to --config=.
from spiralprune.configs.benchmark import PRESETS, SEARCH_SHAPES, get_config

__all__ = ["PRESETS", "SEARCH_SHAPES", "get_config"]
