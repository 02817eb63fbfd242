"""The combinatorial search: phase one picks a configuration per target, phase two its masks.

  python experiments/search.py --config=experiments/configs/search.py:quick \
      [--workdir=./workdirs/search_quick] [--task_index=0 --num_tasks=1]

The runbook is the docstring of experiments/configs/search.py; the work is
``spiralprune.study.search.run``.
"""

import pathlib

from absl import flags

from spiralprune.study import cli, search


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    config = flags.FLAGS.config
    for name in ("task_index", "num_tasks"):
        if getattr(flags.FLAGS, name) is not None:
            config[name] = getattr(flags.FLAGS, name)
    given = flags.FLAGS.workdir   # "--workdir=" (empty) is refused, never the default
    search.run(config, given if given is not None else f"./workdirs/search_{config.preset}")


if __name__ == "__main__":
    cli.define_config("search", "config",
                      f"{pathlib.Path(__file__).parent}/configs/search.py:quick", "preset")
    flags.DEFINE_string("workdir", None, "records directory (default ./workdirs/search_<preset>)")
    flags.DEFINE_integer("task_index", None, "this task of a job array (default: the config's)")
    flags.DEFINE_integer("num_tasks", None, "tasks in the job array (default: the config's)")
    cli.run("search", main)  # user errors: one line on stderr, exit status 2
