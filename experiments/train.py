"""Trains a population of randomly masked MLPs on the Cubist Spiral and prints a summary.

  python experiments/train.py [--config=experiments/configs/train.py:quick]

The runbook is the docstring of experiments/configs/train.py; the work is
``spiralprune.study.train.run``.
"""

import pathlib

from absl import flags

from spiralprune.study import cli, train


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    train.run(flags.FLAGS.config)


if __name__ == "__main__":
    cli.define_config("train", "config", f"{pathlib.Path(__file__).parent}/configs/train.py:quick",
                      "preset")
    cli.run("train", main)  # user errors: one line on stderr, exit status 2
