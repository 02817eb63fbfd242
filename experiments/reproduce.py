"""Runs one piece of the study's remaining claims (the runbook: experiments/configs/reproduce.py).

  python experiments/reproduce.py --config=experiments/configs/reproduce.py:<piece> \
      [--workdir=DIR] [--config.seeds=0,1,2] [--config.ship=True] [--config.dry_run=True]

--workdir (the folder holding one workdir per piece) defaults to workdirs/reproduce
(``spiralprune.study.cli.workdirs_root``).

The work is ``spiralprune.study.reproduce.main``.
"""

import pathlib
import sys

from absl import flags

from spiralprune.study import cli, reproduce


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    c = flags.FLAGS.config
    if flags.FLAGS.workdir == "":
        raise ValueError("--workdir is empty; give a folder or leave it out for the default")
    root = flags.FLAGS.workdir or cli.workdirs_root() / "reproduce"
    reproduce.main(c.piece, root, seeds=tuple(c.seeds), ship_it=c.ship,
                   figures=c.figures, task_index=c.task_index, num_tasks=c.num_tasks,
                   train=c.train, dry_run=c.dry_run,
                   command=" ".join(["python", "experiments/reproduce.py", *sys.argv[1:]]))


if __name__ == "__main__":
    cli.define_config("reproduce", "config",
                      f"{pathlib.Path(__file__).parent}/configs/reproduce.py:random_phase_one",
                      "piece")
    flags.DEFINE_string("workdir", None, "the folder of the pieces' workdirs (default "
                        "workdirs/reproduce, see spiralprune.study.cli.workdirs_root)")
    cli.run("reproduce", main)  # user errors: one line on stderr, exit status 2
