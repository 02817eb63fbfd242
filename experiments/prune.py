"""Prunes populations with every method of the study and records accuracy against nonzeros.

  python experiments/prune.py --workdir=DIR [--config=experiments/configs/prune.py:quick]
      [--task_index=i --num_tasks=n]

The runbook is the docstring of experiments/configs/prune.py; the work is
``spiralprune.study.prune.run`` (grid, groups, chunks, records, table).
"""

import pathlib

from absl import flags

from spiralprune.study import cli, prune


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    config = flags.FLAGS.config
    with config.unlocked():
        config.task_index = flags.FLAGS.task_index
        config.num_tasks = flags.FLAGS.num_tasks
    prune.run(config, flags.FLAGS.workdir)


if __name__ == "__main__":
    cli.define_config("prune", "config", f"{pathlib.Path(__file__).parent}/configs/prune.py:quick",
                      "preset: experiments/configs/prune.py:<quick|paper|smoke>")
    flags.DEFINE_string("workdir", None, "directory of the records (resumes if it exists)")
    flags.DEFINE_integer("task_index", 0, "this task's index in a job array")
    flags.DEFINE_integer("num_tasks", 1, "number of tasks in the job array")
    flags.mark_flag_as_required("workdir")
    cli.run("prune", main)  # user errors: one line on stderr, exit status 2
