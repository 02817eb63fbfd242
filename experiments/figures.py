"""Regenerates the study's figures and tables from recorded workdirs (docs/README.md).

  python experiments/figures.py --workdirs=./workdirs/study --out=./figures
  python experiments/figures.py --workdirs=workdirs/search_quick,workdirs/prune_quick --out=figs

What is drawn, the cache and the runtimes: ``spiralprune.study.figures``.
"""

import pathlib

from absl import flags

from spiralprune.study import cli, figures


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    workdirs = [w for w in flags.FLAGS.workdirs.split(",") if w]
    result = figures.run(workdirs, flags.FLAGS.out, progress=lambda line: print(line, flush=True))
    print(f"wrote {len(result['figures'])} figures and "
          f"{pathlib.Path(flags.FLAGS.out) / 'summary.md'}")


if __name__ == "__main__":
    flags.DEFINE_string("workdirs", None, "comma-separated workdirs (searched recursively)")
    flags.DEFINE_string("out", "./figures", "output directory of the PNGs and summary.md")
    flags.mark_flag_as_required("workdirs")
    cli.run("figures", main)  # user errors: one line on stderr, exit status 2
