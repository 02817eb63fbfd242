"""The device check: everything the project claims for accelerators, measured in one command.

  python experiments/device_check.py --config=experiments/configs/device_check.py:gpu --out=DIR

The runbook, presets and goals are the docstring of experiments/configs/device_check.py; the
stages, caps and report are ``spiralprune.study.device_check``.
"""

import pathlib

from absl import flags

from spiralprune.study import cli, device_check


def main(argv):
    del argv  # positional arguments are refused by the flags parser
    out = flags.FLAGS.out
    res = device_check.run(flags.FLAGS.config, out)
    print(device_check.render(res), flush=True)
    print(f"[device_check] wrote {pathlib.Path(out) / 'report.md'} and report.json", flush=True)


if __name__ == "__main__":
    cli.define_config("device_check", "config",
                      f"{pathlib.Path(__file__).parent}/configs/device_check.py:gpu",
                      "preset: experiments/configs/device_check.py:<gpu|tiny>")
    flags.DEFINE_string("out", None, "folder for report.md and report.json")
    flags.mark_flag_as_required("out")
    cli.run("device_check", main)  # user errors: one line on stderr, exit status 2
