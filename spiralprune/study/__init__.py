"""Everything that takes a config, a workdir or records: the study callable from Python.

  from spiralprune import configs, study
  result = study.pipeline.run(configs.study.get_config("smoke"), "workdirs/study_smoke")
  study.figures.run(["workdirs/study_smoke"], "figures_smoke")
  study.leaderboard.run(configs.leaderboard.get_config("smoke"), "workdirs/leaderboard")

Modules: ``pipeline`` (the whole study: run, merge, summary table), ``plan`` (the plan, its cost
model and the study's progress line), ``search`` (the search stage: phase one, then phase two of
each target's winner), ``prune`` (the pruning-grid stage), ``train`` (one population of randomly
masked models), ``figures`` (figures and tables from records), ``leaderboard`` (given pruners
beside the built-ins and the search), ``device_check`` (the accelerator check's stages) and
``cli`` (one-line user errors of the binaries in experiments/), ``reproduce`` (the study's
remaining search claims as resumable pieces, and their shipped summaries), ``sweep`` (the
width sweep's tables and figures), ``rates`` (this machine's measured training rates, the
plan's cost model reads them), ``estimates`` (the plan's estimates checked against wall time)
and ``benchmark`` (population training benchmarks, BENCHMARKS.md's tables).
"""

from spiralprune.study import (
    benchmark,
    cli,
    device_check,
    estimates,
    figures,
    leaderboard,
    pipeline,
    plan,
    prune,
    rates,
    reproduce,
    search,
    sweep,
    train,
)

__all__ = ["benchmark", "cli", "device_check", "estimates", "figures", "leaderboard",
           "pipeline", "plan", "prune", "rates", "reproduce", "search", "sweep", "train"]
