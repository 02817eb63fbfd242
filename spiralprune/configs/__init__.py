"""The presets of every binary: ``<name>.get_config(preset)`` returns a ``ConfigDict``.

``experiments/configs/<name>.py`` (the file passed to ``--config=``) re-exports ``get_config``
and holds the runbook: commands, runtimes, expected results and the fields.

  from spiralprune.configs import study
  config = study.get_config("smoke")
"""

from spiralprune.configs import (
    benchmark,
    device_check,
    leaderboard,
    prune,
    reproduce,
    search,
    study,
    train,
)

__all__ = ["benchmark", "device_check", "leaderboard", "prune", "reproduce", "search", "study",
           "train"]
