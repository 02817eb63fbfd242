"""Train one population of masked MLPs and print a summary.

Runbook:
  python experiments/train.py                       # preset "quick": CPU, about 1 minute
  python experiments/train.py --config=experiments/configs/train.py:paper   # 50 epochs
    The paper preset trains 36 width-16 models (4 sparsities x 3 lrs x 3 schedules) for the
    study's full 50 epochs: well under a minute on a GPU, ~5 minutes on 2 CPU cores.

Each run trains the study's recipe (SGD momentum 0.9, wd 5e-4, batch 128) on the full Cubist
Spiral with a random mask keeping ``keep`` of the weights; the summary gives the accuracy per
sparsity. "quick" trains 24 width-8 models for 5 epochs in ~10 s: the dense ones reach
~88% on average (the best 100%), the randomly masked ones stay near chance, which is the
study's point about random sparsity.
"""


# The builder lives in the library (importable without this folder); this file is the
# runbook passed to --config=.
from spiralprune.configs.train import PRESETS, get_config

__all__ = ["PRESETS", "get_config"]
