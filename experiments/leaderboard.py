"""A leaderboard: given pruners beside the nine built-ins and the search's sparsest models.

  python experiments/leaderboard.py [--config=experiments/configs/leaderboard.py:bench95]
      [--config.methods=my_pkg.my_module:my_pruner,snip] [--workdir=DIR]

--workdir defaults to workdirs/leaderboard/<preset> (``leaderboard.default_workdir``).

The runbook is the docstring of experiments/configs/leaderboard.py; the work is
``spiralprune.study.leaderboard.run``.
"""

import pathlib

from absl import flags

from spiralprune.study import cli, leaderboard


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    leaderboard.run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
    cli.define_config("leaderboard", "config",
                      f"{pathlib.Path(__file__).parent}/configs/leaderboard.py:bench95",
                      "preset: experiments/configs/leaderboard.py:<bench95|random16|smoke>")
    flags.DEFINE_string("workdir", None, "records, table and figure (default "
                        "workdirs/leaderboard/<preset>, see spiralprune.study.cli.workdirs_root)")
    cli.run("leaderboard", main)  # user errors: one line on stderr, exit status 2
