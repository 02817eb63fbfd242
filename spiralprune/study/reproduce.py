"""The study's remaining search claims as resumable pieces, and their shipped summaries.

Each piece is one search experiment of the study (or a reduction of it that is stated in its
name, its summary and REPRODUCTION.md) that the full ``study.py:paper`` run would also cover,
cut so that it finishes in at most about two hours on 2 CPU cores and resumes where it stopped:

- ``random_phase_one``: phase one at the random init, width 16, restricted to the 353
  configurations with at most 61 structured parameters ((7,3,3) has 61): the only ones that can
  win at 99.5% if the study's (7,3,3) is the winner, and every candidate for 95%. One workdir
  per base seed (``random_phase_one_seed<S>``).
- ``bench995_phase_two_632``: phase two from the BENCH-995 init on the study's (6,3,2) subset
  (w1 + w2 + w3 < 31, the first 6 W2 masks per count, lr 0.05), restricted to masks of at most
  38 nonzero parameters (the study's sparsest: 38): 13,572 of its 23,528 masks.
- ``bench995_phase_two_542``: the same rule on our own BENCH-995 phase one's winner (5,4,2).
- ``random_subset_733``: the study's (7,3,3) subset at the random init restricted to masks of at
  most 45 nonzero parameters (the study's sparsest: 45): 40,107 of its 63,208 masks.
- ``retrain_995``: every (7,3,3) mask that reached 99.5% in ``random_subset_733`` (and the mask
  of the one-GPU run that reached 99.67% with 44 nonzeros), retrained from base seeds 1..10 at
  lr 0.05 with every schedule (base seed 0 is the search's own run), one workdir per seed.

The pruning side, from the study's random-init grid (every pruner x lrs 0.05, 0.1, 0.2 x three
schedules x the budgets below N_w, one run each: 18,954 runs over the 11 widths):

- ``sweep_w3_8``, ``sweep_w16``, ``sweep_w32``, ``sweep_w64``, ``sweep_w128``, ``sweep_w256``:
  the width sweep, one workdir per piece (a run's seed hashes its own fields, never the widths
  beside it, so the pieces together are exactly the study's grid);
- ``optimal_widths``: widths 3 and 7 (the search's (3,3,3) and (7,3,3)) with 5 repeats, for the
  count of runs that match or beat the search's sparsest model (repeat 0 is the sweep's run);
- ``bench995_pruning``: the study's BENCH-995 grid (widths 6 and 16, 14 budgets, 5 repeats);
- ``neurons_sweep_w3_32``, ``neurons_sweep_w64``: our own pruner ``neurons``
  (``spiralprune.pruning.neurons``) on the sweep's grid at widths 3..32 and 64, drawn beside the
  nine in the fewest-nonzeros-by-width figure; ``neurons_bench995`` the same on the BENCH-995
  grid, drawn beside the nine in that grid's figure.

Restricting phase two to masks of at most N nonzeros cannot change which model is the sparsest
over the target as long as one of them reaches it: a mask with more nonzeros cannot be sparser.
It does change the frontier above N, which the summaries do not report.

A piece's records use the study's stage names and run seeds, so a run of a piece is the same
run as in the full search (``study.py:paper``): the restriction only leaves runs out.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess

import jax
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from spiralprune import (
    analysis,
    configs,
    enumeration,
    frontier,
    models,
    plotting,
    populations,
    recording,
    search,
    symmetry,
)
from spiralprune.study import figures as study_figures
from spiralprune.study import plan as study_plan
from spiralprune.study import prune as prune_stage
from spiralprune.study import rates as rates_mod
from spiralprune.study import sweep

RECIPE = {"milestones": (15, 30), "cosine_t_max": 50}
SCHEDULES = ("constant", "cosine", "step")
SUMMARY_FILE = pathlib.Path(__file__).resolve().parent.parent / "data" / "reproduce.json"
SUMMARY_FORMAT = "spiralprune-reproduce/1"
# The one-GPU run of the (7,3,3) subset (device check, one H200): mask 30825, 44 nonzeros,
# 99.67% at lr 0.05, constant, base seed 0.
GPU_MASK_733 = 30825


@dataclasses.dataclass(frozen=True)
class PhaseOne:
    """Phase one of the search (``search.phase_one``) over the configurations of at most
    ``max_structured_params - 1`` structured parameters, one workdir per base seed."""

    name: str
    width: int = 16
    init: str = "random"
    lrs: tuple = (0.05, 0.1)
    max_structured_params: int = 62   # strict bound, as search.phase_one takes it
    targets: tuple = (0.95, 0.995)
    epochs: int = 50
    chunk_size: int = 1024

    def store_config(self, seed: int) -> dict:
        return dict(experiment=self.name, width=self.width, init=self.init,
                    lrs=list(self.lrs), schedules=list(SCHEDULES), epochs=self.epochs,
                    max_structured_params=self.max_structured_params, base_seed=int(seed),
                    recipe=RECIPE, chunk_size=self.chunk_size)

    def workdir(self, root, seed: int) -> pathlib.Path:
        return pathlib.Path(root) / f"{self.name}_seed{int(seed)}"


@dataclasses.dataclass(frozen=True)
class PhaseTwo:
    """Phase two of one configuration (``search.phase_two``) on a study subset, restricted to
    the masks of at most ``max_nnz`` nonzero parameters."""

    name: str
    config: tuple
    init: str
    max_weights: int
    first_k: tuple   # ((layer, k),)
    max_nnz: int
    target: float
    lrs: tuple = (0.05,)
    width: int = 16
    epochs: int = 50
    chunk_size: int = 1024

    @property
    def stage(self) -> str:   # the stage name the full search uses (experiments/search.py)
        return f"phase2_{'-'.join(map(str, self.config))}_subset"

    def space(self) -> enumeration.ModelMaskSpace:
        return enumeration.ModelMaskSpace(self.config, max_weights=self.max_weights,
                                          first_k=dict(self.first_k))

    def mask_indices(self) -> np.ndarray:
        space = self.space()
        return np.flatnonzero(space.param_counts(np.arange(len(space))) <= self.max_nnz)

    def store_config(self, seed: int = 0) -> dict:
        return dict(experiment=self.name, config=list(self.config), width=self.width,
                    init=self.init, lrs=list(self.lrs), schedules=list(SCHEDULES),
                    epochs=self.epochs, max_weights=self.max_weights,
                    first_k={str(k): v for k, v in self.first_k}, max_nnz=self.max_nnz,
                    base_seed=int(seed), recipe=RECIPE, chunk_size=self.chunk_size)

    def workdir(self, root, seed: int = 0) -> pathlib.Path:
        return pathlib.Path(root) / self.name


@dataclasses.dataclass(frozen=True)
class Retrain:
    """Retrains the masks of ``source`` that reached ``target`` (plus ``extra`` masks) from
    other base seeds, every schedule, one workdir per seed."""

    name: str
    source: str
    target: float
    seeds: tuple = tuple(range(1, 11))
    extra: tuple = (GPU_MASK_733,)

    def workdir(self, root, seed: int) -> pathlib.Path:
        return pathlib.Path(root) / self.name / f"seed{int(seed)}"


@dataclasses.dataclass(frozen=True)
class Dense:
    """Dense (d1, d2, d3) configurations of ``min_structured_params`` to
    ``max_structured_params - 1`` structured parameters at the random init (phase one's
    block-masked width-16 models), each trained from several base seeds: the smallest that
    reaches the target in a majority of its seeds at one lr and schedule is a model that
    retrains anywhere, where a single run over the target may be a lucky draw."""

    name: str
    min_structured_params: int
    max_structured_params: int   # strict
    target: float = 0.995
    seeds: tuple = tuple(range(1, 11))
    lrs: tuple = (0.05,)
    width: int = 16
    epochs: int = 50
    chunk_size: int = 1024
    shapes: tuple = ()   # explicit configurations instead (those in the params range)

    def configs(self) -> np.ndarray:
        c = (np.asarray(self.shapes, np.int64).reshape(-1, 3) if self.shapes else
             search.configurations(self.width, self.max_structured_params))
        keep = [self.min_structured_params <= search.structured_params(x)
                < self.max_structured_params for x in c]
        return c[np.asarray(keep, bool)]

    def store_config(self, seed: int) -> dict:
        extra = {"configs": self.configs().tolist()} if self.shapes else {}
        return dict(experiment=self.name, width=self.width, init="random",
                    lrs=list(self.lrs), schedules=list(SCHEDULES), epochs=self.epochs,
                    min_structured_params=self.min_structured_params,
                    max_structured_params=self.max_structured_params, base_seed=int(seed),
                    recipe=RECIPE, chunk_size=self.chunk_size, **extra)

    def workdir(self, root, seed: int) -> pathlib.Path:
        return pathlib.Path(root) / self.name / f"seed{int(seed)}"


@dataclasses.dataclass(frozen=True)
class Pruning:
    """A part of one of the study's pruning grids (``configs.prune``'s ``paper`` preset)."""

    name: str
    grid: str
    widths: tuple
    repeats: int = 1
    preset: str = "paper"   # the prune preset whose grid and recipe it takes
    methods: tuple = ()   # the pruners to train (default: the grid's, the study's nine)
    lrs: tuple = ()         # a reduction of the grid's lrs (default: the grid's)
    schedules: tuple = ()   # and of its schedules
    leaderboard: str = ""   # the leaderboard preset whose built-ins its shipped records are

    def config(self):
        c = configs.prune.get_config(self.preset)
        c.preset = self.name
        c.grids = {self.grid: c.grids[self.grid]}
        c.grids[self.grid].widths = tuple(self.widths)
        c.grids[self.grid].repeats = int(self.repeats)
        if self.methods:
            c.grids[self.grid].methods = tuple(self.methods)
        if self.lrs:
            c.grids[self.grid].lrs = tuple(float(v) for v in self.lrs)
        if self.schedules:
            c.grids[self.grid].schedules = tuple(self.schedules)
        c.compact = True   # fixed-mask groups train compacted (spiralprune.compaction)
        return c

    def workdir(self, root, seed: int = 0) -> pathlib.Path:
        return pathlib.Path(root) / self.name


PIECES = {
    "random_phase_one": PhaseOne("random_phase_one"),
    "bench995_phase_two_632": PhaseTwo("bench995_phase_two_632", (6, 3, 2), "bench995", 31,
                                       ((1, 6),), 38, 0.995),
    "bench995_phase_two_542": PhaseTwo("bench995_phase_two_542", (5, 4, 2), "bench995", 31,
                                       ((1, 6),), 38, 0.995),
    "random_subset_733": PhaseTwo("random_subset_733", (7, 3, 3), "random", 33, ((1, 3),), 45,
                                  0.995),
    "retrain_995": Retrain("retrain_995", "random_subset_733", 0.995),
    # dense configurations around (7,3,3)'s 61 structured parameters, ten seeds each
    "dense_995_56_67": Dense("dense_995_56_67", 56, 68),
    "dense_995_68_80": Dense("dense_995_68_80", 68, 81),
    # a ladder of larger dense models (cubes d = 5..12 and funnels (2d, d, d), d = 4..8: 81 to
    # 361 structured params) at phase one's two lrs: where a majority of seeds crosses 99.5%
    "dense_995_ladder": Dense("dense_995_ladder", 0, 10 ** 6, lrs=(0.05, 0.1), shapes=tuple(
        [(d, d, d) for d in range(5, 13)] + [(2 * d, d, d) for d in range(4, 9)])),
    "sweep_w3_8": Pruning("sweep_w3_8", "random", (3, 4, 5, 6, 7, 8)),
    **{f"sweep_w{w}": Pruning(f"sweep_w{w}", "random", (w,)) for w in (16, 32, 64, 128, 256)},
    "optimal_widths": Pruning("optimal_widths", "random", (3, 7), repeats=5),
    "bench995_pruning": Pruning("bench995_pruning", "bench995", (6, 16), repeats=5,
                                leaderboard="bench995"),
    # our own pruner on the width sweep's grid (widths 3..64), beside the nine
    "neurons_sweep_w3_32": Pruning("neurons_sweep_w3_32", "random", (3, 4, 5, 6, 7, 8, 16, 32),
                                   methods=("neurons",)),
    "neurons_sweep_w64": Pruning("neurons_sweep_w64", "random", (64,), methods=("neurons",)),
    # widths 128 and 256 on one lr x schedule of the nine (lr 0.05, constant: the pair where
    # the best of the nine reached 95% with the fewest nonzeros at widths 32 and 64), a ninth
    # of their grid, until the whole of sweep_w128 and sweep_w256 has run
    "reduced_w128_256": Pruning("reduced_w128_256", "random", (128, 256), lrs=(0.05,),
                                schedules=("constant",)),
    # and on the BENCH-995 grid, beside the nine's bench995_pruning
    "neurons_bench995": Pruning("neurons_bench995", "bench995", (6, 16), repeats=5,
                                methods=("neurons",)),
}
NEURONS_SWEEP = tuple(n for n in PIECES if n.startswith("neurons_sweep"))
SWEEP = tuple(n for n in PIECES if n.startswith("sweep_"))
# reductions of the sweep, drawn at the widths no complete sweep piece holds, the reduction
# stated in the figures' titles
REDUCED_SWEEP = ("reduced_w128_256",)
# The search's sparsest model per target and its configuration's width (the study's numbers).
OPTIMAL = {0.95: (3, 30), 0.995: (7, 45)}


def default_seeds(p, seeds=None) -> tuple:
    """``seeds``, or the piece's own: its ``seeds`` field (retrain, dense), else (0,)."""
    if seeds is not None and len(seeds):
        return tuple(int(s) for s in seeds)
    return tuple(getattr(p, "seeds", (0,)))


def piece(name: str):
    """The piece called ``name`` (one-line ValueError naming the pieces otherwise)."""
    if name not in PIECES:
        raise ValueError(f"unknown piece {name!r}; choose from {', '.join(PIECES)}")
    return PIECES[name]


def _progress(label):
    return populations.Progress(label)


def run_phase_one(p: PhaseOne, root, seed: int, *, progress=_progress, **tasks) -> pd.DataFrame:
    store = recording.Store(p.workdir(root, seed), p.store_config(seed), kind="search")
    return search.phase_one(store, width=p.width, lrs=p.lrs, schedules=SCHEDULES,
                            targets=p.targets, init=p.init,
                            max_structured_params=p.max_structured_params, epochs=p.epochs,
                            recipe=RECIPE, base_seed=int(seed), chunk_size=p.chunk_size,
                            progress=progress(f"{p.name} seed {seed}"), **tasks)


def run_dense(p: Dense, root, seed: int, *, progress=_progress, configs=None, workdir=None,
              store_config=None, lrs=None, schedules=SCHEDULES, **tasks) -> pd.DataFrame:
    """One base seed of a ``Dense`` piece (or, with ``configs``/``lrs``/``schedules``, a part
    of it: a run's seed does not depend on the others trained beside it)."""
    store = recording.Store(workdir or p.workdir(root, seed), store_config or
                            p.store_config(seed), kind="search")
    return search.phase_one(store, width=p.width, lrs=lrs or p.lrs, schedules=schedules,
                            init="random", epochs=p.epochs, recipe=RECIPE, base_seed=int(seed),
                            chunk_size=p.chunk_size, progress=progress(f"{p.name} seed {seed}"),
                            configs=p.configs() if configs is None else configs, **tasks)


def dense_summary(frames: dict, target: float) -> dict:
    """Per (configuration, lr, schedule): how many base seeds reach the target.

    Args:
      frames: base seed -> that seed's records (d1, d2, d3, structured_params, lr, schedule,
        accuracy).

    Returns:
      {"target", "base_seeds", "models": rows sorted by structured params then seeds over,
      "sparsest_majority": the first row over the target in a majority of its seeds, or None}.
    """
    df = pd.concat([f.assign(base_seed=s) for s, f in frames.items()], ignore_index=True)
    rows = []
    for (d1, d2, d3, lr, sched), g in df.groupby(["d1", "d2", "d3", "lr", "schedule"]):
        g = g.sort_values("base_seed")
        rows.append({"config": [int(d1), int(d2), int(d3)], "lr": float(lr),
                     "schedule": str(sched),
                     "structured_params": int(g["structured_params"].iloc[0]),
                     "seeds": int(len(g)), "over_target": int((g["accuracy"] >= target).sum()),
                     "mean_accuracy": float(g["accuracy"].mean()),
                     "base_seeds": [int(b) for b in g["base_seed"]],
                     "accuracies": [float(a) for a in g["accuracy"]]})
    rows.sort(key=lambda r: (r["structured_params"], -r["over_target"], -r["mean_accuracy"]))
    majority = [r for r in rows if 2 * r["over_target"] > r["seeds"]]
    by_config = {}
    for r in rows:   # per configuration its best (lr, schedule): most seeds over, then mean
        key = tuple(r["config"])
        if key not in by_config or (r["over_target"], r["mean_accuracy"]) > (
                by_config[key]["over_target"], by_config[key]["mean_accuracy"]):
            by_config[key] = {k: r[k] for k in ("config", "structured_params", "lr", "schedule",
                                                "seeds", "over_target", "mean_accuracy")}
    return {"target": float(target), "base_seeds": sorted(int(s) for s in frames),
            "models": rows, "sparsest_majority": majority[0] if majority else None,
            "by_config": sorted(by_config.values(),
                                key=lambda r: (r["structured_params"], r["config"]))}


def run_phase_two(p: PhaseTwo, root, *, progress=_progress, mask_indices=None, seed: int = 0,
                  workdir=None, store_config=None, **tasks) -> pd.DataFrame:
    idx = p.mask_indices() if mask_indices is None else np.asarray(mask_indices, np.int64)
    store = recording.Store(workdir or p.workdir(root), store_config or p.store_config(seed),
                            kind="search")
    return search.phase_two(store, config=p.config, width=p.width, lrs=p.lrs,
                            schedules=SCHEDULES, target=p.target, init=p.init,
                            max_weights=p.max_weights, first_k=dict(p.first_k),
                            mask_indices=idx, epochs=p.epochs, recipe=RECIPE,
                            base_seed=int(seed), chunk_size=p.chunk_size, stage=p.stage,
                            progress=progress(p.name), **tasks)


def candidates(p: Retrain, root) -> np.ndarray:
    """The mask indices ``p`` retrains: the source's masks over the target, and ``extra``.

    Raises:
      ValueError: the source piece has not finished (its candidates are not known yet).
    """
    src = piece(p.source)
    try:
        df = recording.load_runs(src.workdir(root))
    except ValueError as e:
        raise ValueError(f"{p.name} needs {p.source} first: {e}") from None
    total = len(src.mask_indices()) * len(src.lrs) * len(SCHEDULES)
    if len(df) < total:
        raise ValueError(f"{p.name} needs {p.source} complete: {len(df):,} of {total:,} runs "
                         "recorded; run that piece first")
    over = np.unique(df.loc[df["accuracy"] >= p.target, "mask_index"].to_numpy(np.int64))
    # one mask per structure: masks equal up to hidden-unit permutations train alike in
    # distribution at the random init (spiralprune.symmetry), so retraining one says it all
    ids, _ = symmetry.structures(src.space(), over)
    _, first = np.unique(ids, return_index=True)
    return np.unique(np.concatenate([over[first], np.asarray(p.extra, np.int64)]))


def structure_table(df: pd.DataFrame, p: PhaseTwo, target: float, min_seeds: int = 3) -> dict:
    """Phase-two runs grouped by structure (``spiralprune.symmetry``): at the random init the
    masks of one structure are independent seeds of it, so each (structure, lr, schedule)
    gives a fraction of seeds reaching the target without retraining anything.

    Returns:
      {"structures": number of structures run, "reliable": the sparsest (structure, lr,
      schedule) reaching the target in a majority of at least ``min_seeds`` seeds (or None),
      "top": up to 20 such rows, fewest nonzeros first}.
    """
    ids, n = symmetry.structures(p.space(), df["mask_index"].to_numpy(np.int64))
    d = df.assign(structure=ids, over=df["accuracy"] >= target)
    g = (d.groupby(["structure", "lr", "schedule"], sort=False)
         .agg(nnz=("nnz", "first"), seeds=("over", "size"), over=("over", "sum"),
              mean_accuracy=("accuracy", "mean"), mask_index=("mask_index", "min"))
         .reset_index())
    ok = g[(g["seeds"] >= min_seeds) & (2 * g["over"] > g["seeds"])]
    ok = ok.sort_values(["nnz", "over", "mean_accuracy"], ascending=[True, False, False])
    rows = [{"structure": int(r.structure), "mask_index": int(r.mask_index), "nnz": int(r.nnz),
             "lr": float(r.lr), "schedule": str(r.schedule), "seeds": int(r.seeds),
             "over_target": int(r.over), "mean_accuracy": float(r.mean_accuracy)}
            for r in ok.head(20).itertuples()]
    return {"structures": int(n), "min_seeds": min_seeds, "reliable": rows[0] if rows else None,
            "top": rows}


def run_retrain(p: Retrain, root, seed: int, *, progress=_progress, **tasks) -> pd.DataFrame:
    src = piece(p.source)
    idx = candidates(p, root)
    cfg = dict(src.store_config(seed), experiment=p.name, source=p.source,
               mask_indices=idx.tolist())
    return run_phase_two(src, root, progress=lambda label: progress(f"{p.name} seed {seed}"),
                         mask_indices=idx, seed=seed, workdir=p.workdir(root, seed),
                         store_config=cfg, **tasks)


def run(name: str, root, *, seeds=None, progress=_progress, task_index: int = 0,
        num_tasks: int = 1) -> dict:
    """Runs (or resumes) piece ``name`` into ``root``/<piece workdir> and returns its summary.

    Args:
      name: a key of PIECES.
      root: the directory holding every piece's workdir.
      seeds: base seeds (phase one: one workdir each; retrain: its own seeds when None).
      progress: factory ``label -> callback(done, total)``.
      task_index, num_tasks: a job array's share of each stage's chunks.
    """
    p = piece(name)
    seeds = default_seeds(p, seeds)
    tasks = dict(task_index=task_index, num_tasks=num_tasks)
    if isinstance(p, PhaseOne):
        for s in seeds:
            run_phase_one(p, root, s, progress=progress, **tasks)
    elif isinstance(p, PhaseTwo):
        run_phase_two(p, root, progress=progress, **tasks)
    elif isinstance(p, Pruning):
        config = p.config()
        config.task_index, config.num_tasks = task_index, num_tasks
        prune_stage.run(config, p.workdir(root))
    elif isinstance(p, Dense):
        for s in default_seeds(p, seeds):
            run_dense(p, root, s, progress=progress, **tasks)
    else:
        for s in default_seeds(p, seeds):
            run_retrain(p, root, s, progress=progress, **tasks)
    return summarize(name, root, seeds=seeds)


# --- Summaries (what ships as package data). ---


def _config(row) -> list:
    return [int(row["d1"]), int(row["d2"]), int(row["d3"])]


def phase_one_summary(df: pd.DataFrame, targets=(0.95, 0.995)) -> dict:
    """Per target the winner, the runner-up (the next configuration by structured params
    reaching it) and the best accuracy of every configuration.

    Args:
      df: phase-one records (d1, d2, d3, accuracy, structured_params).
      targets: accuracy levels.
    """
    if df.empty:
        return {"runs": 0, "configurations": 0, "targets": {}, "best": []}
    if "structured_params" not in df:
        df = df.assign(structured_params=[search.structured_params(c)
                                          for c in df[["d1", "d2", "d3"]].to_numpy()])
    best = (df.groupby(["d1", "d2", "d3"], as_index=False)
            .agg(accuracy=("accuracy", "max"), structured_params=("structured_params", "first"))
            .sort_values(["structured_params", "accuracy", "d1", "d2", "d3"],
                         ascending=[True, False, True, True, True], kind="stable"))
    out = {"runs": int(len(df)), "configurations": int(len(best)), "targets": {},
           "best": [[*_config(r), int(r["structured_params"]), float(r["accuracy"])]
                    for _, r in best.iterrows()]}
    for t in targets:
        ok = best[best["accuracy"] >= t]
        entry = {"winner": None, "runner_up": None,
                 "best_below": None}
        if len(ok):
            w = ok.iloc[0]
            entry["winner"] = {"config": _config(w), "structured_params":
                               int(w["structured_params"]), "accuracy": float(w["accuracy"])}
            if len(ok) > 1:
                r = ok.iloc[1]
                entry["runner_up"] = {"config": _config(r), "structured_params":
                                      int(r["structured_params"]),
                                      "accuracy": float(r["accuracy"])}
        miss = best[best["accuracy"] < t].sort_values("accuracy", ascending=False)
        if len(miss):   # the closest miss: how far from the target the rest stayed
            m = miss.iloc[0]
            entry["best_below"] = {"config": _config(m), "structured_params":
                                   int(m["structured_params"]), "accuracy": float(m["accuracy"])}
        out["targets"][f"{t:g}"] = entry
    return out


def phase_two_summary(df: pd.DataFrame, target: float) -> dict:
    """The sparsest model over the target, how many runs reach it, and the frontier (best
    accuracy at every nonzero count; ``frontier.from_records``' layout)."""
    out = {"runs": int(len(df)), "target": float(target), "sparsest": None,
           "runs_over_target": int((df["accuracy"] >= target).sum())}
    best = search.sparsest(df, target)
    if best is not None:
        out["sparsest"] = {"nnz": int(best["nnz"]), "accuracy": float(best["accuracy"]),
                           "mask_index": int(best["mask_index"]), "lr": float(best["lr"]),
                           "schedule": str(best["schedule"]), "seed": int(best["seed"]),
                           "config": _config(best)}
    df = df.assign(stage=df["stage"], disconnected=df.get("disconnected", 0))
    out["points"] = frontier.from_records(df, (target,))["points"]
    return out


def retrain_summary(frames: dict, target: float, original: pd.DataFrame | None = None) -> dict:
    """Per (mask, schedule): the fraction of base seeds whose run reaches the target.

    Args:
      frames: base seed -> that seed's retrain records.
      target: the accuracy level.
      original: the source's records (base seed 0), included when given.
    """
    parts = [f.assign(base_seed=s) for s, f in frames.items()]
    if original is not None:
        idx = set(np.concatenate([f["mask_index"].to_numpy() for f in frames.values()]))
        parts.append(original[original["mask_index"].isin(idx)].assign(base_seed=0))
    df = pd.concat(parts, ignore_index=True)
    rows = []
    for (m, sched), g in df.groupby(["mask_index", "schedule"], sort=True):
        g = g.sort_values("base_seed")
        rows.append({"mask_index": int(m), "schedule": str(sched), "nnz": int(g["nnz"].iloc[0]),
                     "seeds": int(len(g)), "over_target": int((g["accuracy"] >= target).sum()),
                     "mean_accuracy": float(g["accuracy"].mean()),
                     "base_seeds": [int(b) for b in g["base_seed"]],
                     "accuracies": [float(a) for a in g["accuracy"]]})
    rows.sort(key=lambda r: (r["nnz"], -r["over_target"], r["mask_index"]))
    majority = [r for r in rows if 2 * r["over_target"] > r["seeds"]]
    return {"target": float(target), "base_seeds": sorted(int(s) for s in frames)
            + ([0] if original is not None else []), "models": rows,
            "sparsest_majority": majority[0] if majority else None}


def _complete(df: pd.DataFrame) -> bool:
    return bool(df.attrs.get("complete", True))


def optimal_count(df: pd.DataFrame, optimal=None) -> dict:
    """Runs that match or beat the search's sparsest model at its target: at most its nonzeros
    and accuracy at or over the target, at the search configuration's width (the study's
    "optimal width") and at any width.

    Args:
      df: pruning records (method, width, nnz, accuracy, ...).
      optimal: {target: (width, the search's nonzeros)}; default ``OPTIMAL`` (the study's).
    """
    out = {}
    for t, (w, n) in (optimal or OPTIMAL).items():
        hit = df[(df["accuracy"] >= t) & (df["nnz"] <= n)]
        at_w = hit[hit["width"] == w]
        cols = [c for c in ("method", "width", "budget", "lr", "schedule", "repeat", "seed",
                            "nnz", "accuracy") if c in df]
        out[f"{t:g}"] = {"width": w, "search_nnz": n, "runs_at_width": int((df["width"] == w)
                                                                          .sum()),
                         "runs": int(len(df)), "matches_at_width": int(len(at_w)),
                         "matches": int(len(hit)),
                         "which": [{c: (v.item() if hasattr(v, "item") else v)
                                    for c, v in r.items()}
                                   for r in hit[cols].to_dict("records")][:50]}
    return out


def pruning_summary(df: pd.DataFrame) -> dict:
    """Per (method, width, target) the sparsest run reaching it (``sweep.fewest``) and per
    (method, width) the monotone frontier of accuracy against nonzeros (enough to redraw the
    study's per-width panels without the records)."""
    table = sweep.fewest(df)
    fronts = []
    for (method, width), g in df.groupby(["method", "width"], sort=True):
        f = plotting.frontier(g)
        fronts.append({"method": str(method), "width": int(width),
                       "nnz": [int(v) for v in f["nnz"]],
                       "accuracy": [float(v) for v in f["accuracy"]]})
    rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
            for r in table.to_dict("records")]
    return {"runs": int(len(df)), "fewest": rows, "fronts": fronts}


def further_pruning(store: recording.Store, df: pd.DataFrame, data, target: float,
                    per_method: int = 40) -> dict:
    """The study's Section 7.2: do the pruners' models over ``target`` prune further?

    Each method's ``per_method`` sparsest runs over the target (ties to the higher accuracy)
    are pruned further by magnitude, one weight at a time from the smallest, while the
    accuracy on ``data`` stays >= the target (``analysis.further_prune``, greedy, ``floor``).

    Returns:
      {"target", "per_method", "runs" (pruned further), "fewest": per method the sparsest
      model after further pruning (method, width, budget, lr, schedule, repeat, nnz_before,
      accuracy_before, nnz, accuracy, removed), sorted by nnz}.
    """
    ok = df[df["accuracy"] >= target].sort_values(["nnz", "accuracy"], ascending=[True, False],
                                                  kind="stable")
    best, runs = {}, 0
    for method, g in ok.groupby("method", sort=True):
        for _, r in g.head(per_method).iterrows():
            out = analysis.further_prune(study_figures.params_tree(store.params_of(r)), data,
                                         floor=target)
            runs += 1
            row = {"method": str(method), "width": int(r["width"]), "budget": int(r["budget"]),
                   "lr": float(r["lr"]), "schedule": str(r["schedule"]),
                   "repeat": int(r["repeat"]), "nnz_before": int(r["nnz"]),
                   "accuracy_before": float(r["accuracy"]), "nnz": int(out["nnz"]),
                   "accuracy": float(out["accuracy"]), "removed": int(out["removable"])}
            if method not in best or (row["nnz"], -row["accuracy"]) < (
                    best[method]["nnz"], -best[method]["accuracy"]):
                best[method] = row
    return {"target": float(target), "per_method": int(per_method), "runs": runs,
            "fewest": sorted(best.values(), key=lambda r: (r["nnz"], -r["accuracy"]))}


def summarize(name: str, root, seeds=None) -> dict:
    """The summary of piece ``name`` from its records in ``root`` (what has run so far)."""
    p = piece(name)
    seeds = default_seeds(p, seeds)
    if isinstance(p, Pruning):
        wd = p.workdir(root)
        total = sum(len(g.rows) for g in prune_stage.plan(p.config()).groups)
        out = {"piece": name, "kind": "pruning", "grid": p.grid, "widths": list(p.widths),
               "repeats": p.repeats, "total_runs": total, "runs": 0, "complete": False}
        if p.lrs or p.schedules:   # a reduction of the study's grid says so
            grid = p.config().grids[p.grid]
            out["reduced"] = {"lrs": [float(v) for v in grid.lrs],
                              "schedules": [str(v) for v in grid.schedules]}
        if (wd / "config.json").exists():
            df = recording.load_runs(wd)
            out.update(pruning_summary(df), complete=len(df) == total)
            if p.grid == "random":
                out["optimal"] = optimal_count(df)
            if p.grid == "bench995" and out["complete"]:
                out["further"] = further_pruning(
                    recording.Store.open(wd), df, prune_stage.plan(p.config()).data, 0.995)
        return out
    if isinstance(p, PhaseOne):
        per_seed = {}
        for s in seeds:
            wd = p.workdir(root, s)
            if (wd / "config.json").exists():
                df = recording.load_runs(wd)
                total = search.configurations(p.width, p.max_structured_params).shape[0] * \
                    len(p.lrs) * len(SCHEDULES)
                per_seed[str(s)] = dict(phase_one_summary(df, p.targets), total_runs=total,
                                        complete=len(df) == total)
        return {"piece": name, "kind": "phase_one", "seeds": per_seed}
    if isinstance(p, Dense):
        frames = {s: recording.load_runs(p.workdir(root, s)) for s in default_seeds(p, seeds)
                  if (p.workdir(root, s) / "config.json").exists()}
        per_seed = len(p.configs()) * len(p.lrs) * len(SCHEDULES)
        out = {"piece": name, "kind": "dense", "configurations": len(p.configs()),
               "runs_per_seed": per_seed, "seeds_complete": sorted(
                   int(s) for s, f in frames.items() if len(f) == per_seed)}
        if frames:
            out.update(dense_summary(frames, p.target))
            out["models"] = out["models"][:40]   # the smallest; the records hold the rest
            if out["sparsest_majority"] is not None:
                out["model"] = dense_card(p, out["sparsest_majority"])
        return out
    if isinstance(p, PhaseTwo):
        wd = p.workdir(root)
        total = len(p.mask_indices()) * len(p.lrs) * len(SCHEDULES)
        if not (wd / "config.json").exists():
            return {"piece": name, "kind": "phase_two", "runs": 0, "total_runs": total}
        df = recording.load_runs(wd)
        out = {"piece": name, "kind": "phase_two", "config": list(p.config), "init": p.init,
               "max_nnz": p.max_nnz, "total_runs": total, "complete": len(df) == total,
               **phase_two_summary(df, p.target)}
        if p.init == "random" and len(df):
            out["by_structure"] = structure_table(df, p, p.target)
        return out
    frames = {}
    for s in seeds:
        wd = p.workdir(root, s)
        if (wd / "config.json").exists():
            frames[s] = recording.load_runs(wd)
    src = piece(p.source)
    original = (recording.load_runs(src.workdir(root))
                if (src.workdir(root) / "config.json").exists() else None)
    if not frames:
        return {"piece": name, "kind": "retrain", "seeds_run": []}
    out = {"piece": name, "kind": "retrain", **retrain_summary(frames, p.target, original)}
    if out["sparsest_majority"] is not None:
        out["model"] = model_card(src, out["sparsest_majority"])
    return out


def model_card(src: PhaseTwo, row: dict) -> dict:
    """What anyone needs to retrain a model: the source piece, its configuration, mask (index
    and the four kernel masks, 0/1, (in, out) each), lr, schedule, the base seeds and the
    accuracy each reached here (``retrain_model`` trains it again)."""
    kernels = src.space().kernel_masks(np.asarray([row["mask_index"]], np.int64))
    seeds = sorted(int(s) for s in row.get("base_seeds", ()))
    return {"source": src.name, "config": list(src.config), "width": src.width,
            "init": src.init, "epochs": src.epochs, "mask_index": int(row["mask_index"]),
            "nnz": int(row["nnz"]), "lr": float(src.lrs[0]), "schedule": str(row["schedule"]),
            "base_seeds": seeds, "accuracies": [float(a) for a in row["accuracies"]],
            "kernels": [np.asarray(k[0], np.int8).tolist() for k in kernels]}


def dense_card(src: Dense, row: dict) -> dict:
    """``model_card`` of a dense configuration: the width-``src.width`` model under its block
    masks (phase one's, ``masking.block_masks(config, width)``), lr, schedule, base seeds and
    their accuracies."""
    return {"source": src.name, "config": list(row["config"]), "width": src.width,
            "mask": f"masking.block_masks({tuple(row['config'])}, {src.width})",
            "init": "random", "epochs": src.epochs, "structured_params":
            int(row["structured_params"]), "lr": float(row["lr"]),
            "schedule": str(row["schedule"]), "base_seeds": list(row["base_seeds"]),
            "accuracies": list(row["accuracies"])}


def shipped_model(piece_name: str = "retrain_995", path=SUMMARY_FILE) -> dict:
    """The shipped model card of a retrain piece (``model_card``); a one-line ValueError if
    that piece has not shipped one."""
    card = load_summaries(path).get(piece_name, {}).get("model")
    if not card:
        raise ValueError(f"no model shipped for {piece_name!r} in {path}; run the piece and "
                         "ship it (experiments/reproduce.py --config.ship=True)")
    return card


def retrain_model(workdir, card: dict | None = None, seeds=None, *, progress=None,
                  **tasks) -> pd.DataFrame:
    """Trains a shipped model (``shipped_model()`` by default) again on this machine, from its
    base seeds (or ``seeds``): one run per seed, the same run seeds as the piece that found it.

    What retrains is the fraction of seeds over the target, not each seed's accuracy: a run
    trained alone agrees with the same run trained in the piece's population to float32
    rounding (the population's batched matmuls sum in another order), and near the edge of
    trainability 50 epochs amplify that difference (a dense (10,5,5) at lr 0.05, cosine: equal
    losses to 1e-7 after 3 epochs, 0.83 against 0.67 accuracy after 5). The piece's own
    population, rerun, gives its records back exactly.

    Returns:
      one row per base seed (base_seed, mask_index, nnz, lr, schedule, accuracy, ...).
    """
    card = card or shipped_model()
    src = piece(card["source"])
    seeds = card["base_seeds"] if seeds is None else [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no base seeds to retrain from")
    frames = []
    if isinstance(src, Dense):
        src = dataclasses.replace(src, epochs=int(card["epochs"]), width=int(card["width"]))
        for s in seeds:
            cfg = dict(src.store_config(s), experiment="retrain_model", config=card["config"],
                       lrs=[card["lr"]], schedules=[card["schedule"]])
            df = run_dense(src, workdir, s, progress=lambda label: progress,
                           configs=[card["config"]], lrs=(card["lr"],),
                           schedules=(card["schedule"],),
                           workdir=pathlib.Path(workdir) / f"seed{s}", store_config=cfg, **tasks)
            frames.append(df.assign(base_seed=s))
        return pd.concat(frames, ignore_index=True)
    for s in seeds:
        store = recording.Store(pathlib.Path(workdir) / f"seed{s}",
                                dict(src.store_config(s), experiment="retrain_model",
                                     epochs=int(card["epochs"]),
                                     mask_index=card["mask_index"],
                                     schedule=card["schedule"]), kind="search")
        df = search.phase_two(store, config=tuple(card["config"]), width=card["width"],
                              lrs=(card["lr"],), schedules=(card["schedule"],), target=None,
                              init=card["init"], max_weights=src.max_weights,
                              first_k=dict(src.first_k), mask_indices=[card["mask_index"]],
                              epochs=card["epochs"], recipe=RECIPE, base_seed=s,
                              chunk_size=src.chunk_size, stage=src.stage,
                              progress=progress, **tasks)
        frames.append(df.assign(base_seed=s))
    return pd.concat(frames, ignore_index=True)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=pathlib.Path(__file__).parent, check=True
                              ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _device() -> str:
    """This machine in words: the accelerator, or the CPU model and its cores."""
    dev = jax.local_devices()[0]
    if dev.platform != "cpu":
        return f"{len(jax.local_devices())} x {dev.device_kind}"
    model = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, CPU only"


def provenance(command: str, device: str | None = None) -> dict:
    """Command, device, date and commit for a summary that joins the package data (the
    workdir, a path of one machine, is written as WORKDIR). The command is the one that
    trains the records: the flags that only summarize, ship or draw them are dropped."""
    command = re.sub(r"--workdir=\S+", "--workdir=WORKDIR", command)
    command = re.sub(r"\s+--config\.(train|ship|figures|dry_run)=\S*", "", command)
    return {"command": command, "device": device or _device(),
            "date": datetime.date.today().isoformat(), "commit": _commit()}


def leaderboard_records(name: str, root) -> tuple[pd.DataFrame, object]:
    """The records of pruning piece ``name`` on its leaderboard preset's grid (init, widths,
    budgets, lrs, schedules, repeats; the built-in methods), and that preset's config."""
    from spiralprune.configs import leaderboard as leaderboard_config
    from spiralprune.pruning import registry
    p = piece(name)
    if not isinstance(p, Pruning) or not p.leaderboard:
        raise ValueError(f"piece {name!r} ships no leaderboard records")
    c = leaderboard_config.get_config(p.leaderboard)
    wd = p.workdir(root)
    df = recording.load_runs(wd) if (wd / "config.json").exists() else pd.DataFrame()
    if df.empty:
        return df, c
    lr = df["lr"].to_numpy(float)
    keep = ((df["init"] == c.init) & df["width"].isin([int(w) for w in c.widths])
            & df["budget"].isin([int(b) for b in c.budgets])
            & np.isclose(lr[:, None], np.asarray(c.lrs, float)[None]).any(axis=1)
            & df["schedule"].isin([str(v) for v in c.schedules])
            & (df["repeat"] < int(c.repeats)) & df["method"].isin(registry.METHODS))
    return df[keep].reset_index(drop=True), c


def ship_leaderboard(name: str, root, command: str = "") -> pathlib.Path:
    """Writes piece ``name``'s records on its leaderboard preset's grid as that init's shipped
    built-in records (``frontier.PRUNERS_FILES``), with provenance: the leaderboard then
    compares a user's pruner with the nine there without training them."""
    df, c = leaderboard_records(name, root)
    groups = prune_stage.plan(piece(name).config()).groups
    expected = len({g.method for g in groups}) * sum(
        1 for w in c.widths for b in c.budgets if int(b) < models.num_weights(int(w))
    ) * len(c.lrs) * len(c.schedules) * int(c.repeats)
    if df.empty or len(df) != expected:
        raise ValueError(f"piece {name!r} holds {len(df)} of the {expected} runs of leaderboard "
                         f"preset {c.preset!r}'s grid; run the piece to the end first")
    prov = provenance(command or f"reproduce {name}")
    prov.update(stage="prune", runs=int(len(df)), grid=(
        f"{c.init} init, widths {', '.join(map(str, c.widths))}, budgets "
        f"{', '.join(map(str, c.budgets))}, lr {', '.join(map(str, c.lrs))}, "
        f"{', '.join(c.schedules)} schedule, {c.repeats} repeats, 50 epochs (LTH 5 x 50) on all "
        f"49,982 points: piece {name}'s records on leaderboard preset {c.preset}'s grid"))
    path = frontier.PRUNERS_FILES[c.init]
    frontier.build_pruners_file(df, prov, path)
    return path


def load_summaries(path=SUMMARY_FILE) -> dict:
    """The shipped summaries: piece name -> summary (with its ``provenance``)."""
    path = pathlib.Path(path)
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != SUMMARY_FORMAT:
        raise ValueError(f"{path} is not a {SUMMARY_FORMAT} file")
    return data["pieces"]


def ship(summary: dict, prov: dict, path=SUMMARY_FILE) -> None:
    """Adds (or replaces) one piece's summary, with provenance, in the shipped file."""
    pieces = load_summaries(path)
    pieces[summary["piece"]] = dict(summary, provenance=prov)
    data = {"format": SUMMARY_FORMAT,
            "description": "Summaries of the study's search claims run piece by piece "
                           "(spiralprune.study.reproduce): phase-one winners per seed, "
                           "phase-two sparsest models and frontiers, retrain fractions.",
            "pieces": dict(sorted(pieces.items()))}
    recording.write_file(path, json.dumps(data, indent=1) + "\n")


# --- Figures (drawn from the shipped summaries alone). ---


def phase_one_frame(summary: dict, seed: str) -> pd.DataFrame:
    """One seed's best accuracy per configuration as phase-one records (d1, d2, d3,
    structured_params, accuracy), for ``plotting.phase_one_scatter``."""
    rows = summary["seeds"][seed]["best"]
    return pd.DataFrame(rows, columns=["d1", "d2", "d3", "structured_params", "accuracy"])


def draw_phase_one(summary: dict, path) -> None:
    """The study's Figure 5 layout: best accuracy of every configuration against its structured
    parameters, one panel per base seed, the winners for 95% and 99.5% annotated."""

    seeds = sorted(summary["seeds"], key=int)
    fig = Figure(figsize=(5.2 * len(seeds), 4.8), layout="constrained")
    axes = fig.subplots(1, len(seeds), squeeze=False, sharey=True)[0]
    for ax, s in zip(axes, seeds):
        df = phase_one_frame(summary, s)
        plotting.phase_one_scatter(df, targets=(0.95, 0.995), ax=ax)
        info = summary["seeds"][s]
        for cfg, label in (((3, 3, 3), "the study's 95% winner"),
                           ((7, 3, 3), "the study's 99.5% winner")):
            hit = df[(df["d1"] == cfg[0]) & (df["d2"] == cfg[1]) & (df["d3"] == cfg[2])]
            if len(hit) and label.endswith("99.5% winner"):
                ax.scatter(hit["structured_params"], hit["accuracy"], s=70, marker="D",
                           facecolors="none", edgecolors="#ff7f0e", lw=1.4,
                           label=f"{cfg}: {label}")
        miss = info.get("targets", {}).get("0.995", {})
        if miss and miss.get("winner") is None and miss.get("best_below"):
            b = miss["best_below"]
            ax.annotate(f"best: {tuple(b['config'])} {b['accuracy']:.2%}\n(none reaches 99.5%)",
                        (b["structured_params"], b["accuracy"]), xytext=(-190, -45),
                        textcoords="offset points", fontsize=8,
                        arrowprops=dict(arrowstyle="-", lw=0.6))
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title(f"random init, base seed {s}: {info['configurations']} configurations"
                     + ("" if info.get("complete", True) else " (incomplete)"), fontsize=9)
        ax.set_ylim(0.45, 1.005)
    fig.suptitle("Phase one at the random init: width 16, the configurations with at most 61\n"
                 "structured parameters, 2 lrs x 3 schedules, 50 epochs", fontsize=10)
    plotting.save(fig, path, dpi=130)


def draw_phase_two(summaries: list, path, paper=None) -> None:
    """Best accuracy at every nonzero count of phase-two pieces (one line each), the target and
    the paper's sparsest model marked."""
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    colours = ("#000000", "#4a78a8", "#d62728")
    for c, s in zip(colours, summaries):
        pts = pd.DataFrame(s["points"])
        if pts.empty:
            continue
        ax.plot(pts["nnz"], pts["accuracy"], "o-", ms=3, lw=1, color=c,
                label=f"{tuple(s['config'])}, masks <= {s['max_nnz']} nonzeros"
                      + ("" if s.get("complete") else " (incomplete)"))
        if s.get("sparsest"):
            b = s["sparsest"]
            ax.annotate(f"{b['nnz']} at {b['accuracy']:.2%}", (b["nnz"], b["accuracy"]),
                        xytext=(-90, -28), textcoords="offset points", fontsize=8, color=c,
                        arrowprops=dict(arrowstyle="-", color=c, lw=0.6))
    t = summaries[0]["target"]
    ax.axhline(t, ls="--", lw=0.8, color="#888888")
    ax.text(ax.get_xlim()[0], t, f" {t:.1%}", va="top", fontsize=8, color="#555555")
    if paper is not None:
        n, a = paper
        ax.plot([n], [a], marker="*", ms=11, color="#ff7f0e", ls="none",
                label=f"the paper: {n} at {a:.2%}")
    ax.set_xlabel("nonzero parameters (weights + biases)")
    ax.set_ylabel("best accuracy at that count")
    lowest = min((p["accuracy"] for s in summaries for p in s["points"]), default=0.9)
    ax.set_ylim(0.9 if lowest >= 0.9 else max(0.5, lowest - 0.02), 1.0005)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=1))
    ax.legend(fontsize=8, loc="lower right")
    init = {"bench95": "BENCH-95", "bench995": "BENCH-995"}.get(summaries[0]["init"],
                                                                 summaries[0]["init"])
    runs = sum(s.get("runs", 0) for s in summaries)
    over = sum(s.get("runs_over_target", 0) for s in summaries)
    ax.set_title(f"Phase two from the {init} init: {runs:,} runs, {over:,} over {t:.1%}",
                 fontsize=10)
    plotting.save(fig, path, dpi=130)


def draw_dense(summaries: list, path, retrained: dict | None = None) -> None:
    """Seeds over the target against structured params, one point per dense configuration at
    its best lr and schedule (``by_config`` of dense pieces); the majority line, the smallest
    configuration above it and, optionally, a retrained mask's {"label", "nnz", "over",
    "seeds"} (the search's sparsest) for contrast."""
    fig = Figure(figsize=(6.8, 4.4), layout="constrained")
    ax = fig.subplots()
    colours = ("#9e9e9e", "#4a78a8", "#2ca02c")
    seeds = max((r["seeds"] for s in summaries for r in s["by_config"]), default=10)
    rng = np.random.default_rng(0)   # a small vertical jitter: many points share a count
    for c, s in zip(colours, summaries):
        rows = pd.DataFrame(s["by_config"])
        ax.plot(rows["structured_params"],
                rows["over_target"] + rng.uniform(-0.12, 0.12, len(rows)), "o", ms=4,
                color=c, alpha=0.8, ls="none",
                label=f"{s['piece']} ({len(rows)} configurations)")
    ax.axhline(seeds / 2, ls="--", lw=0.8, color="#888888")
    ax.text(ax.get_xlim()[1], seeds / 2, f"half of {seeds} seeds ", ha="right", va="bottom",
            fontsize=8, color="#555555")
    best = [s["sparsest_majority"] for s in summaries if s.get("sparsest_majority")]
    if best:
        m = min(best, key=lambda r: r["structured_params"])
        ax.plot([m["structured_params"]], [m["over_target"]], marker="*", ms=14, ls="none",
                color=plotting.HIGHLIGHT_STYLES[0], markeredgecolor="black",
                markeredgewidth=0.5, zorder=plotting.SEARCH_ZORDER,
                label=f"smallest over half: {tuple(m['config'])}, {m['structured_params']} "
                      f"params, lr {m['lr']:g} {m['schedule']} ({m['over_target']}/{m['seeds']})")
    if retrained:
        ax.plot([retrained["nnz"]], [retrained["over"] * seeds / retrained["seeds"]], marker="X",
                ms=10, ls="none", color="#ff7f0e", markeredgecolor="black",
                markeredgewidth=0.5, label=retrained["label"])
    t = summaries[0]["target"]
    ax.set_xlabel("parameters (a dense model: weights + biases; a mask: its nonzeros)")
    ax.set_ylabel(f"base seeds over {t:.1%} (of {seeds})")
    ax.set_ylim(-0.5, seeds + 0.5)
    ax.legend(fontsize=7.5, loc="upper left")
    ax.set_title(f"Dense models at the random init: how many of {seeds} seeds cross {t:.1%}",
                 fontsize=10)
    plotting.save(fig, path, dpi=130)


def fronts_frame(summaries: list) -> pd.DataFrame:
    """The shipped per-(method, width) frontiers of pruning summaries as records."""
    return pd.DataFrame([{"method": f["method"], "width": f["width"], "nnz": n, "accuracy": a}
                         for s in summaries for f in s["fronts"]
                         for n, a in zip(f["nnz"], f["accuracy"])])


def reduced_widths(full: list, reduced: list) -> tuple[dict, list]:
    """The widths of reduced sweep pieces (``REDUCED_SWEEP``) that no complete full sweep
    piece covers, added to the full pieces' summaries for the sweep's figures.

    Returns:
      ({width: (lrs, schedules) of its reduction}, the full summaries plus each reduced one
      cut to those widths).
    """
    covered = {int(w) for s in full if s.get("complete") for w in s.get("widths", ())}
    out, widths = list(full), {}
    for s in reduced:
        keep = [int(w) for w in s.get("widths", ()) if int(w) not in covered]
        if not keep:
            continue
        r = s.get("reduced") or {}
        for w in keep:
            widths[w] = (tuple(r.get("lrs", ())), tuple(r.get("schedules", ())))
        out.append({**s, "fronts": [f for f in s["fronts"] if int(f["width"]) in keep],
                    "fewest": [f for f in s["fewest"] if int(f["width"]) in keep]})
    return widths, out


def _by_reduction(widths: dict) -> dict:
    out = {}
    for w, key in sorted(widths.items()):
        out.setdefault(key, []).append(w)
    return out


def draw_all(out_dir, path=SUMMARY_FILE) -> list:
    """Draws every figure the shipped summaries allow into ``out_dir``; returns the paths."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pieces, drawn = load_summaries(path), []
    if pieces.get("random_phase_one", {}).get("seeds"):
        drawn.append(out_dir / "random_phase_one.png")
        draw_phase_one(pieces["random_phase_one"], drawn[-1])
    b995 = [pieces[n] for n in ("bench995_phase_two_632", "bench995_phase_two_542")
            if pieces.get(n, {}).get("points")]
    if b995:
        drawn.append(out_dir / "bench995_phase_two.png")
        draw_phase_two(b995, drawn[-1], paper=frontier.PAPER["bench995"][0.995][:2])
    sweep_pieces = [pieces[n] for n in SWEEP if pieces.get(n, {}).get("fronts")]
    reduced, sweep_pieces = reduced_widths(sweep_pieces, [pieces[n] for n in REDUCED_SWEEP
                                                          if pieces.get(n, {}).get("fronts")])
    paper = pd.DataFrame([{"nnz": n, "accuracy": a}
                          for n, a, _ in frontier.PAPER["random"].values()])
    if sweep_pieces:
        fronts = fronts_frame(sweep_pieces)
        widths = sorted(fronts["width"].unique())
        note = ("the study's random-init grid, one run per pruner, lr, schedule and budget; "
                f"widths {', '.join(str(w) for w in widths if w not in reduced)}")
        for (lrs, schedules), ws in sorted(_by_reduction(reduced).items()):
            note += (f"; widths {', '.join(map(str, ws))}: lr {', '.join(map(str, lrs))}, "
                     f"{', '.join(schedules)} only")
        for t, fname in ((0.95, "width_sweep_95.png"), (0.995, "width_sweep_995.png")):
            drawn.append(out_dir / fname)
            sweep.draw_fronts(fronts, drawn[-1], search=paper, target=t,
                              title=f"Every pruner's frontier per width; black: the paper's "
                                    f"search points\n({note})")
        drawn.append(out_dir / "fewest_by_width.png")
        ours = [r for n in NEURONS_SWEEP for r in pieces.get(n, {}).get("fewest", [])]
        sweep.draw_fewest(pd.DataFrame([r for sp in sweep_pieces for r in sp["fewest"]]
                                       + ours), drawn[-1],
                          search={t: n for t, (n, _, _) in frontier.PAPER["random"].items()},
                          highlight=("neurons",) if ours else (),
                          title=f"Fewest nonzeros per pruner against width; search: the "
                                f"paper's\n({note}"
                                + ("; neurons: ours, the same grid" if ours else "") + ")")
    if pieces.get("bench995_pruning", {}).get("fronts"):
        search_pts = pd.DataFrame([pt for sp in b995 for pt in sp["points"]])
        drawn.append(out_dir / "bench995_pruning.png")
        ours = bool(pieces.get("neurons_bench995", {}).get("fronts"))
        sweep.draw_fronts(fronts_frame([pieces[n] for n in ("bench995_pruning",
                                                            "neurons_bench995")
                                        if pieces.get(n, {}).get("fronts")]), drawn[-1],
                          search=search_pts if len(search_pts) else None, target=0.995,
                          columns=2, highlight=("neurons",) if ours else (),
                          title="From the BENCH-995 init: every pruner's frontier at widths 6 "
                          "and 16 (5 repeats)\nblack: the search's phase two (masks of at most "
                          "38 nonzeros)" + ("; neurons: ours, the same grid" if ours else ""))
    dense = [pieces[n] for n in PIECES if isinstance(PIECES[n], Dense)
             and pieces.get(n, {}).get("by_config")]
    if dense:
        drawn.append(out_dir / "dense_995.png")
        best = max(pieces.get("retrain_995", {}).get("models") or [], default=None,
                   key=lambda r: (r["over_target"], -r["nnz"]))   # the search's lucky draw
        draw_dense(dense, drawn[-1], retrained=best and {
            "label": f"(7,3,3) mask {best['mask_index']}, {best['nnz']} nonzeros, "
                     f"{best['schedule']}: {best['over_target']}/{best['seeds']} seeds "
                     "(retrain_995)", "nnz": best["nnz"], "over": best["over_target"],
            "seeds": best["seeds"]})
    if pieces.get("random_subset_733", {}).get("points"):
        drawn.append(out_dir / "random_subset_733.png")
        draw_phase_two([pieces["random_subset_733"]], drawn[-1],
                       paper=frontier.PAPER["random"][0.995][:2])
    return drawn


def _fmt_cfg(entry) -> str:
    if not entry:
        return "-"
    return (f"{tuple(entry['config'])} ({entry['structured_params']} params, "
            f"{entry['accuracy']:.2%})")


def report(summary: dict) -> str:
    """A few lines a person reads: winners per seed, the sparsest model, retrain fractions."""
    lines = [f"{summary['piece']}:"]
    if summary["kind"] == "phase_one":
        for s, info in summary["seeds"].items():
            state = "" if info.get("complete") else f" (incomplete: {info['runs']:,} of " \
                f"{info['total_runs']:,} runs)"
            lines.append(f"  base seed {s}{state}")
            for t, e in info["targets"].items():
                lines.append(f"    {float(t):.1%}: winner {_fmt_cfg(e['winner'])}; runner-up "
                             f"{_fmt_cfg(e['runner_up'])}; best below {_fmt_cfg(e['best_below'])}")
    elif summary["kind"] == "phase_two":
        state = "complete" if summary.get("complete") else "incomplete"
        lines.append(f"  {summary.get('runs', 0):,} of {summary['total_runs']:,} runs ({state})")
        b = summary.get("sparsest")
        lines.append(f"  sparsest over {summary.get('target', 0):.1%}: " + (
            f"{b['nnz']} nonzeros at {b['accuracy']:.2%} (mask {b['mask_index']}, lr {b['lr']}, "
            f"{b['schedule']}, seed {b['seed']})" if b else "none")
            + f"; {summary.get('runs_over_target', 0):,} runs over it")
        if "by_structure" in summary:
            st = summary["by_structure"]
            r = st["reliable"]
            lines.append(f"  {st['structures']:,} structures (masks equal up to hidden-unit "
                         "permutations); sparsest over the target in a majority of its seeds "
                         f"(>= {st['min_seeds']}): " + (
                             f"{r['nnz']} nonzeros, mask {r['mask_index']}, {r['schedule']}, "
                             f"{r['over_target']}/{r['seeds']} seeds" if r else "none"))
    elif summary["kind"] == "dense":
        lines.append(f"  {summary['configurations']} configurations x "
                     f"{summary['runs_per_seed'] // max(summary['configurations'], 1)} "
                     f"(lr, schedule); base seeds complete: {summary.get('seeds_complete')}")
        most = sorted(summary.get("by_config") or summary.get("models", []),
                      key=lambda r: (-r["over_target"], r["structured_params"]))[:8]
        lines.append("  the configurations with the most seeds over the target (each at its "
                     "best lr and schedule):")
        for r in most:
            lines.append(f"    {tuple(r['config'])} ({r['structured_params']} params) lr "
                         f"{r['lr']} {r['schedule']}: {r['over_target']}/{r['seeds']} seeds over "
                         f"the target, mean {r['mean_accuracy']:.2%}")
        m = summary.get("sparsest_majority")
        lines.append("  smallest over the target in a majority of seeds: " + (
            f"{tuple(m['config'])} ({m['structured_params']} params), lr {m['lr']}, "
            f"{m['schedule']}, {m['over_target']}/{m['seeds']} seeds" if m else "none"))
    elif summary["kind"] == "pruning":
        state = "complete" if summary.get("complete") else "incomplete"
        lines.append(f"  {summary['runs']:,} of {summary['total_runs']:,} runs ({state}); "
                     "fewest nonzeros reaching each target per method and width:")
        if summary.get("reduced"):
            r = summary["reduced"]
            lines.insert(-1, f"  a reduction of the study's grid: lrs {r['lrs']}, schedules "
                         f"{r['schedules']} only")
        rows = pd.DataFrame(summary.get("fewest") or [])
        if len(rows):
            rows["cell"] = [("-" if n is None or pd.isna(n) else f"{int(n)}")
                            for n in rows["nnz"]]
            wide = rows.pivot_table(index=["method", "target"], columns="width", values="cell",
                                    aggfunc="first")
            lines += ["    " + ln for ln in wide.to_string().splitlines()]
        for t, o in (summary.get("optimal") or {}).items():
            lines.append(f"  {float(t):.1%}: {o['matches_at_width']} of {o['runs_at_width']:,} "
                         f"runs at width {o['width']} reach it with <= {o['search_nnz']} "
                         f"nonzeros (the search's); {o['matches']} of {o['runs']:,} at any width")
        if summary.get("further"):
            f = summary["further"]
            lines.append(f"  pruned further by magnitude while >= {f['target']:.1%} (each "
                         f"method's {f['per_method']} sparsest runs over it, {f['runs']} runs):")
            for r in f["fewest"]:
                lines.append(f"    {r['method']}: {r['nnz_before']} -> {r['nnz']} nonzeros "
                             f"({r['accuracy']:.2%}; width {r['width']}, budget {r['budget']}, "
                             f"lr {r['lr']:g}, {r['schedule']}, repeat {r['repeat']})")
    else:
        m = summary.get("sparsest_majority")
        lines.append(f"  base seeds {summary.get('base_seeds')}: "
                     f"{len(summary.get('models', []))} (mask, schedule) models")
        for r in summary.get("models", [])[:10]:
            lines.append(f"    mask {r['mask_index']} {r['schedule']}: {r['nnz']} nonzeros, "
                         f"{r['over_target']}/{r['seeds']} seeds over the target, mean "
                         f"{r['mean_accuracy']:.2%}")
        lines.append("  sparsest over the target in a majority of seeds: " + (
            f"mask {m['mask_index']} ({m['schedule']}), {m['nnz']} nonzeros" if m else "none"))
        if summary.get("model"):
            c = summary["model"]
            lines.append(f"  shipped as a model card (config {tuple(c['config'])}, lr {c['lr']}, "
                         f"{c['schedule']}, base seeds {c['base_seeds']}); retrain it with "
                         "spiralprune.study.reproduce.retrain_model(DIR)")
    return "\n".join(lines)


# --- The plan of a piece: runs to train and the time they take here and on one GPU. ---


def search_part(label: str, shapes, share, runs: int, workdir, epochs: int, chunk: int,
                rates: dict, note: str, *, task_index: int = 0,
                num_tasks: int = 1) -> study_plan.Part:
    """A search piece's plan line (``study_plan.search_part``) from its workdir's records."""
    store = study_plan.existing_store(pathlib.Path(workdir))
    done = {c for stage in (store.stages() if store else []) for c in store.done(stage)}
    return study_plan.search_part("reproduce", label, shapes, share, runs, epochs, chunk,
                                  rates, note, done=done, task_index=task_index,
                                  num_tasks=num_tasks)


def plan(name: str, root, *, seeds=None, rates: dict | None = None, task_index: int = 0,
         num_tasks: int = 1) -> list:
    """The piece's parts (``study.plan.Part``): its runs, this task's share of them, those not
    recorded in ``root`` yet and their estimated time under ``rates`` (default this
    machine's, ``rates.current``)."""
    p = piece(name)
    seeds = default_seeds(p, seeds)
    rates = rates or rates_mod.current()
    tasks = dict(task_index=task_index, num_tasks=num_tasks)
    if isinstance(p, Pruning):
        config = p.config()
        config.task_index, config.num_tasks = task_index, num_tasks
        return study_plan.prune_parts(config, p.workdir(root), rates)
    parts = []
    if isinstance(p, PhaseOne):
        configs_ = search.configurations(p.width, p.max_structured_params)
        shapes, bucket = search.phase_one_shapes(p.width, p.init, configs_,
                                                 len(p.lrs) * len(SCHEDULES), p.epochs)
        share = np.bincount(bucket, minlength=len(shapes)) / max(len(configs_), 1)
        for s in seeds:
            parts.append(search_part(
                f"phase one seed {s}", shapes, share,
                len(configs_) * len(p.lrs) * len(SCHEDULES), p.workdir(root, s), p.epochs,
                p.chunk_size, rates, f"{len(configs_):,} configurations x {len(p.lrs)} lr x "
                f"{len(SCHEDULES)} schedules as {len(shapes)} shapes", **tasks))
        return parts
    if isinstance(p, Dense):
        n = len(p.configs()) * len(p.lrs) * len(SCHEDULES)
        return [search_part(f"seed {s}", [(p.width,) * 3], [1.0], n, p.workdir(root, s),
                            p.epochs, p.chunk_size, rates,
                            f"{len(p.configs())} dense configurations x {len(p.lrs)} lr x "
                            f"{len(SCHEDULES)} schedules, block-masked width {p.width}", **tasks)
                for s in default_seeds(p, seeds)]
    if isinstance(p, PhaseTwo):
        n = len(p.mask_indices())
        return [search_part(p.stage, [p.config], [1.0], n * len(p.lrs) * len(SCHEDULES),
                            p.workdir(root), p.epochs, p.chunk_size, rates,
                            f"{n:,} masks of <= {p.max_nnz} nonzeros x {len(p.lrs)} lr x "
                            f"{len(SCHEDULES)} schedules at {p.config}", **tasks)]
    src = piece(p.source)
    try:
        n = len(candidates(p, root))
    except ValueError as e:
        return [study_plan.Part("reproduce", p.name, 0, 0, 0, 0, 0.0, 0.0, str(e))]
    for s in default_seeds(p, seeds):
        parts.append(search_part(f"retrain seed {s}", [src.config], [1.0],
                                 n * len(src.lrs) * len(SCHEDULES), p.workdir(root, s),
                                 src.epochs, src.chunk_size, rates,
                                 f"{n} masks x {len(src.lrs)} lr x {len(SCHEDULES)} schedules",
                                 **tasks))
    return parts


def print_plan(name: str, root, *, seeds=None, rates: dict | None = None, task_index: int = 0,
               num_tasks: int = 1) -> list:
    """Prints the piece's plan with this machine's and one GPU's estimate; returns its parts."""
    rates = rates or rates_mod.current()
    tasks = dict(task_index=task_index, num_tasks=num_tasks)
    here = plan(name, root, seeds=seeds, rates=rates, **tasks)
    gpu_here = jax.default_backend() != "cpu"
    other = plan(name, root, seeds=seeds, rates=rates_mod.assumed("cpu" if gpu_here else "gpu"),
                 **tasks)
    print(f"== reproduce {name}: "
          f"{piece(name).workdir(root, default_seeds(piece(name), seeds)[0])}"
          + (f" (task {task_index} of {num_tasks})" if num_tasks > 1 else "") + " ==")
    print(study_plan.format_plan(here, other, "2 CPU cores" if gpu_here else "one GPU"))
    how = ("rates measured on this machine " + rates["table"]["measured"][:10]
           if rates.get("table") else
           "assumed rates (measure this machine's with the study's dry run, "
           "experiments/study.py --dry_run, or spiralprune.study.rates.load())")
    print(f"estimate: {how}")
    return here


def main(name: str, root, *, seeds=None, ship_it: bool = False, figures: str = "",
         task_index: int = 0, num_tasks: int = 1, command: str = "", train: bool = True,
         dry_run: bool = False) -> dict:
    """What the binary does: run (or resume) a piece, print its report, optionally ship its
    summary into the package data and redraw the figures (``train=False``: summarize what is
    recorded, train nothing; ``dry_run``: print the plan and its estimate, train nothing)."""
    if dry_run:
        rates, _ = rates_mod.load()
        print_plan(name, root, seeds=seeds, rates=rates_mod.with_table(rates_mod.assumed(),
                                                                       rates),
                   task_index=task_index, num_tasks=num_tasks)
        return {}
    summary = (run(name, root, seeds=seeds, task_index=task_index, num_tasks=num_tasks)
               if train else summarize(name, root, seeds=seeds))
    print(report(summary), flush=True)
    if ship_it:
        ship(summary, provenance(command or f"reproduce {name}"))
        print(f"shipped into {SUMMARY_FILE}")
        p = piece(name)
        if isinstance(p, Pruning) and p.leaderboard and summary.get("complete"):
            path = ship_leaderboard(name, root, command)
            print(f"shipped its records on leaderboard preset {p.leaderboard!r}'s grid into "
                  f"{path}")
    if figures:
        for p in draw_all(figures):
            print(f"wrote {p}")
    return summary
