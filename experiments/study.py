"""The whole study in one command: search, pruning, fixed-init experiments, figures, table.

  python experiments/study.py --config=experiments/configs/study.py:quick \
      [--workdir=./workdirs/study_quick] [--dry_run] [--task_index=i --num_tasks=n]
  python experiments/study.py --merge --workdir=OUT --sources=A,B,C

The runbook (presets, runtimes, expected results) is the docstring of experiments/configs/study.py;
the layout of a study workdir, job arrays, merging and multi-host runs are described in
``spiralprune.study.pipeline``, which does the work (``pipeline.run``, ``pipeline.merge``).
With ``--distributed`` the binary calls ``jax.distributed.initialize()`` before anything else
and each host is task ``jax.process_index()`` of ``jax.process_count()``.
"""

import pathlib

import jax
from absl import flags

from spiralprune.study import cli, pipeline


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    f = flags.FLAGS
    if f.distributed:
        jax.distributed.initialize()  # before anything touches a device
    config = f.config
    if f.merge:
        if f.dry_run or f.task_index is not None or f.num_tasks is not None:
            raise ValueError("--merge takes --workdir and --sources only")
        if not f.workdir:
            raise ValueError("--merge needs --workdir (the destination)")
        pipeline.merge(f.sources, f.workdir)
        return
    with config.unlocked():
        tasks = (jax.process_index(), jax.process_count()) if f.distributed else None
        for i, name in enumerate(("task_index", "num_tasks")):
            value = getattr(f, name)
            if tasks and value is not None and value != tasks[i]:
                raise ValueError(f"--{name}={value} conflicts with jax.distributed "
                                 f"({name} {tasks[i]}); leave it out")
            config[name] = value if value is not None else (
                tasks[i] if tasks else config[name])
    # "--workdir=" (empty) is refused by pipeline.run, never taken for the default.
    workdir = f.workdir if f.workdir is not None else f"./workdirs/study_{config.preset}"
    pipeline.run(config, workdir, dry_run=f.dry_run)


if __name__ == "__main__":
    cli.define_config("study", "config", f"{pathlib.Path(__file__).parent}/configs/study.py:quick",
                      "preset: experiments/configs/study.py:<quick|paper|smoke>")
    flags.DEFINE_string("workdir", None, "the study workdir (default ./workdirs/study_<preset>)")
    flags.DEFINE_integer("task_index", None, "this task of a job array (default: the config's)")
    flags.DEFINE_integer("num_tasks", None, "tasks in the job array (default: the config's)")
    flags.DEFINE_bool("dry_run", False, "print the plan and an estimate; train nothing")
    flags.DEFINE_bool("merge", False, "merge --sources (task workdirs) into --workdir")
    flags.DEFINE_list("sources", None, "task workdirs to merge (with --merge)")
    flags.DEFINE_bool("distributed", False, "call jax.distributed.initialize() first; each "
                      "host is then task jax.process_index() of jax.process_count()")
    cli.run("study", main)  # user errors: one line on stderr, exit status 2
