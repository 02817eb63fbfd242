"""Benchmarks population training: model-epochs per second against shape, engine and P.

  python experiments/benchmark.py --config=experiments/configs/benchmark.py:quick
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:engines
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:compaction
  python experiments/benchmark.py --config=experiments/configs/benchmark.py:plan

See experiments/configs/benchmark.py for presets and what each cell measures. The
measurement is ``spiralprune.study.benchmark.run``; it prints the table and appends it, with
command, device, CPU, load, date and jax version, to --config.output (BENCHMARKS.md).
"""

import pathlib

from absl import flags

from spiralprune.study import benchmark, cli


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    flags.FLAGS.config.lock()
    benchmark.run(flags.FLAGS.config)


if __name__ == "__main__":
    cli.define_config("benchmark", "config", f"{pathlib.Path(__file__).parent}/configs/"
                      "benchmark.py:quick", "benchmark preset")
    cli.run("benchmark", main)  # user errors: one line on stderr, exit status 2
