"""Trains a population of randomly masked MLPs on the Cubist Spiral and prints a summary.

  python experiments/train.py [--config=experiments/configs/train.py:quick]
"""

import time

import numpy as np
import pandas as pd

from spiralprune import datasets, grids, masking, models, populations, training


def run(config) -> pd.DataFrame:
    """Trains the configured population and returns one row per run."""
    width = models.check_widths(config.width)
    keeps = np.asarray(config.keep, np.float64)
    if np.any((keeps <= 0) | (keeps > 1)):
        raise ValueError(f"keep fractions must be in (0, 1], got {tuple(config.keep)}")
    for field in ("keep", "lrs", "schedules"):
        values = [str(v) for v in config[field]]
        if len(set(values)) != len(values):
            raise ValueError(f"{field} {tuple(config[field])} repeats a value (each would "
                             "train twice)")
    if int(config.repeats) < 1:
        raise ValueError(f"repeats must be >= 1, got {config.repeats}")
    if isinstance(config.seed, bool) or not 0 <= int(config.seed) < 2 ** 32:
        raise ValueError(f"seed must be in [0, 2^32), got {config.seed}")
    g = grids.product({"keep": config.keep, "lr": config.lrs, "schedule": config.schedules,
                       "repeat": list(range(config.repeats))})
    seeds = grids.run_seeds(config.seed, g["keep"], g["lr"], g["schedule"], g["repeat"])
    p = len(seeds)
    kernels = []
    for shape in models.layer_shapes(width):
        u = np.stack([np.random.default_rng(s).random(shape) for s in seeds])
        kernels.append(u < g["keep"].reshape(-1, 1, 1))
    variants = populations.make_variants(masks=masking.from_kernels(kernels), lr=g["lr"],
                                         schedule=g["schedule"], seed=seeds)
    spec = training.Spec(widths=width, epochs=config.epochs, milestones=config.milestones,
                         cosine_t_max=config.cosine_t_max)
    print(f"training {p} model{'s' * (p != 1)} of width {width} for {config.epochs} "
          f"epoch{'s' * (config.epochs != 1)} "
          f"on {populations.jax.local_devices()[0].device_kind}", flush=True)
    t0 = time.perf_counter()
    out = populations.run(variants, datasets.cubist_spiral(), spec=spec,
                          progress=populations.Progress("train"))
    seconds = time.perf_counter() - t0
    df = pd.DataFrame({**g, "seed": seeds, "accuracy": out["accuracy"], "loss": out["loss"],
                       "nnz": out["nnz"], "nnz_weights": out["nnz_weights"]})
    summary = df.groupby("keep").agg(runs=("accuracy", "size"), nnz=("nnz", "mean"),
                                     mean_acc=("accuracy", "mean"), best_acc=("accuracy", "max"))
    print(summary.sort_index(ascending=False).to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"{p} run{'s' * (p != 1)} x {config.epochs} epoch{'s' * (config.epochs != 1)} in "
          f"{seconds:.1f} s "
          f"({p * config.epochs / seconds:,.1f} model-epochs/s, compile included)")
    return df
