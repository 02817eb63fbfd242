"""Runs one piece of the study's remaining search claims (configs/reproduce.py's runbook).

  python experiments/reproduce.py --config=experiments/configs/reproduce.py:<piece> \
      [--workdir=./workdirs/reproduce] [--config.seeds=0,1,2] [--config.ship=True]
"""

import json
import sys

from absl import flags

from spiralprune.study import cli, reproduce


def main(argv):
    del argv
    c = flags.FLAGS.config
    summary = reproduce.main(c.piece, flags.FLAGS.workdir, seeds=tuple(c.seeds), ship_it=c.ship,
                             figures=c.figures, task_index=c.task_index,
                             num_tasks=c.num_tasks, command=" ".join(sys.argv))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("points", "best")},
                     indent=1, default=str)[:4000])


if __name__ == "__main__":
    cli.define_config("reproduce", "config", "experiments/configs/reproduce.py:random_phase_one",
                      "piece")
    flags.DEFINE_string("workdir", "./workdirs/reproduce", "directory of the pieces' workdirs")
    cli.run("reproduce", main)
