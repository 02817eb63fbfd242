"""The combinatorial search (docs/search.md): the sparsest models that reach a target accuracy.

Phase one (structured) trains, for every neuron configuration (d1, d2, d3) in {1..D}^3, the
width-D model masked to its top-left blocks, for every learning rate and schedule; the chosen
configuration is the one with the fewest parameters among those reaching the target. Phase two
(unstructured) trains every model mask of that configuration (``enumeration.ModelMaskSpace``)
from a fresh initialisation, compacted to the configuration's shape, and the sparsest model over
the target is the one with the fewest nonzero parameters.

Both phases walk a flat grid of runs (configuration or mask index slowest, then lr, then
schedule) in recorded chunks (``recording.Store``): a chunk is trained as one population, written
atomically, and skipped when resumed, so an interrupted search ends with exactly the rows of an
uninterrupted one. A run's seed is hashed from the fields that identify it, never its chunk.
Chunks are dealt round robin to ``num_tasks`` tasks (a cluster job array).
"""

import json

import jax
import numpy as np
import pandas as pd

from spiralprune import (
    analysis,
    datasets,
    enumeration,
    grids,
    masking,
    models,
    populations,
    recording,
    runner,
    schedules,
    training,
)

INITS = ("random",) + models.BENCH_INITS
PHASE_ONE = "phase1"


def structured_params(config) -> int:
    """Parameters of the dense (d1, d2, d3) model (weights and biases, docs/search.md).

    Args:
      config: (d1, d2, d3).

    Returns:
      ``3 d1 + (d1 d2 + d2) + (d2 d3 + d3) + (d3 + 1)`` as an int.
    """
    d1, d2, d3 = models.check_widths(config)
    return 3 * d1 + (d1 * d2 + d2) + (d2 * d3 + d3) + (d3 + 1)


def configurations(width: int, max_structured_params: int | None = None) -> np.ndarray:
    """Phase one's configurations: {1..width}^3 (d3 fastest), optionally fewer parameters.

    Args:
      width: the maximum width D (>= 1).
      max_structured_params: keep only configurations with strictly fewer structured params.

    Returns:
      int64 array (C, 3) of (d1, d2, d3).
    """
    if int(width) < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    d = np.arange(1, int(width) + 1)
    configs = np.stack(np.meshgrid(d, d, d, indexing="ij"), -1).reshape(-1, 3)
    if max_structured_params is not None:
        keep = [structured_params(c) < max_structured_params for c in configs]
        configs = configs[np.asarray(keep, bool)]
    return configs.astype(np.int64)


def phase_one_shapes(width: int, init: str, configs, runs_per_config: int,
                     epochs: int) -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """The shapes phase one trains, and each configuration's (index into them).

    A random init trains every configuration as the (D, D, D) model under block masks: its
    draw depends on the shape. A fixed init trains each configuration compacted to a smaller
    shape holding it: the top-left blocks of the (D, D, D) model under its block masks are
    the same model (the rows and columns cut away are masked to zero and never feed an active
    unit), so each run computes the same numbers with fewer zeros (up to float summation
    order). The shapes are ``phase_one_buckets``: for BENCH-95's 93 configurations (fewer than
    37 structured parameters, at most 26 weights each) four shapes of 38-59 weights, trained
    by the lanes engine, instead of (7, 10, 10) (194 weights) or (16, 16, 16) (560).

    Args:
      width: the maximum width D.
      init: "random", "bench95" or "bench995".
      configs: (C, 3) phase one's configurations.
      runs_per_config: runs of each configuration (lrs x schedules).
      epochs: training epochs.

    Returns:
      (shapes [(w1, w2, w3), ...], assignment (C,) int64 index into shapes).
    """
    if init == "random" or not len(configs):
        return [(int(width),) * 3], np.zeros(len(configs), np.int64)
    shapes, bucket = phase_one_buckets(configs, runs_per_config, epochs)
    return [tuple(int(v) for v in shape) for shape in shapes], bucket


# The cost model that groups phase one's configurations into buckets (``phase_one_buckets``),
# in seconds on 2 CPU cores: one compilation of a bucket's lanes program (3.6-5.3 s measured),
# and training one weight of one run for one epoch (~32 us, a round figure a little under the
# lanes engine's measured 35-40 us per weight at (3,2,2) to (7,3,3), BENCHMARKS.md). It only
# weighs compilation against training. The shapes it picks decide phase one's numbers at
# float32 rounding, so these constants are part of the grid: changing them moves results.
BUCKET_COMPILE_S = 4.0
BUCKET_WEIGHT_EPOCH_S = 1.0 / 30_800


def phase_one_buckets(configs, runs_per_config: int, epochs: int, *,
                      lanes_apart: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The shapes a fixed init's phase one trains its configurations at, and which is whose.

    Each configuration trains compacted to a bucket shape holding it (its top-left block of
    the bucket's model under its block masks, which is the same model, as in
    ``phase_one_shapes``). One shape for all of them, (7, 10, 10) for BENCH-95, is 194 weights
    for configurations of at most 26; one shape each would compile 93 programs. Starting from
    one bucket per configuration, the pair of buckets whose merge (their elementwise largest
    shape) saves the most estimated seconds is merged, until no merge saves any: a bucket
    costs ``BUCKET_COMPILE_S`` plus its runs x weights x epochs x ``BUCKET_WEIGHT_EPOCH_S``.
    Merges stay within the lanes engine's automatic range (``populations.LANES_AUTO_MAX_WEIGHTS``
    weights) unless both buckets are already beyond it, or ``lanes_apart`` is False (the
    buckets of ``compaction``, where a few runs of a small shape would otherwise pay a
    compilation of their own to train in seconds). Deterministic: the buckets depend only
    on the configurations, runs per configuration and epochs (ties go to the first pair in
    order), so a run's bucket, and so its numbers, never depend on how the grid is chunked.

    Args:
      configs: (C, 3) configurations.
      runs_per_config: runs of each configuration (lrs x schedules).
      epochs: training epochs.
      lanes_apart: keep merges from crossing the lanes engine's automatic range.

    Returns:
      (shapes (K, 3) int64, assignment (C,) int64 index into shapes).
    """
    configs = np.asarray(configs, np.int64).reshape(-1, 3)
    shapes, inverse = np.unique(configs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse).astype(np.float64) * int(runs_per_config)
    run_s = int(epochs) * BUCKET_WEIGHT_EPOCH_S
    limit = populations.LANES_AUTO_MAX_WEIGHTS

    owner = np.arange(len(shapes))
    alive = np.ones(len(shapes), bool)
    while alive.sum() > 1:
        idx = np.flatnonzero(alive)
        s, n = shapes[idx], counts[idx]
        w = models.weights_of_shapes(s)
        merged = np.maximum(s[:, None], s[None, :])
        mw = models.weights_of_shapes(merged)
        cost = BUCKET_COMPILE_S + n * w * run_s
        gain = cost[:, None] + cost[None, :] - (BUCKET_COMPILE_S
                                                 + (n[:, None] + n[None, :]) * mw * run_s)
        ok = (mw <= limit) | ((w[:, None] > limit) & (w[None, :] > limit)) | (not lanes_apart)
        ok &= np.triu(np.ones(ok.shape, bool), 1)
        gain = np.where(ok, gain, 0.0)
        i, j = np.unravel_index(np.argmax(gain), gain.shape)
        if gain[i, j] <= 0:
            break
        a, b = idx[i], idx[j]
        shapes[a], counts[a], alive[b] = merged[i, j], counts[a] + counts[b], False
        owner[owner == b] = a
    keep = np.flatnonzero(alive)
    label = np.full(len(shapes), -1)
    label[keep] = np.arange(len(keep))
    return shapes[keep].astype(np.int64), label[owner[inverse]].astype(np.int64)


def _check_common(width, lrs, schedule_names, targets, init, epochs, chunk_size, task_index,
                  num_tasks) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """One-line ValueErrors for bad grid inputs; returns lrs and schedule names as tuples."""
    if int(width) < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    lrs = tuple(float(lr) for lr in lrs)
    schedule_names = tuple(str(s) for s in schedule_names)
    if not lrs or not schedule_names:
        raise ValueError(f"empty grid: lrs={lrs}, schedules={schedule_names}")
    if any(not np.isfinite(lr) or lr <= 0 for lr in lrs):
        raise ValueError(f"learning rates must be positive and finite, got {lrs}")
    for name in schedule_names:
        schedules.index(name)
    for t in targets:
        _check_target(t)
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {INITS}")
    if int(epochs) < 1 or int(chunk_size) < 1:
        raise ValueError(f"epochs and chunk_size must be >= 1, got {epochs}, {chunk_size}")
    grids.check_task(task_index, num_tasks)
    return lrs, schedule_names


def _check_target(target) -> None:
    if not 0 < float(target) <= 1:
        raise ValueError(f"target accuracy must be in (0, 1], got {target}")


def _claim_stage(store: recording.Store, stage: str, grid: dict) -> None:
    """Records the grid a stage is run with; a one-line ValueError if it was run with another."""
    grid = json.loads(json.dumps(grid))
    old = store.get_json(f"grid_{stage}")
    if old is not None and old != grid:
        diff = sorted(k for k in grid.keys() | old.keys() if grid.get(k) != old.get(k))
        raise ValueError(f"stage {stage!r} of {store.workdir} was run with another grid "
                         f"(differs in {diff}); use a new workdir or stage")
    if old is None:
        store.put_json(f"grid_{stage}", grid)


def _run_stage(store, stage, total, chunk_size, task_index, num_tasks, build,
               progress) -> pd.DataFrame:
    """Trains and records this task's chunks of a flat grid that are not done yet
    (``runner``: claims, progress, refusal of shards that are not the grid's).

    Args:
      build: ``(flat run indices (R,)) -> (parts, rows dict, keep_params bool)``; ``parts`` is
        a list of (positions into the chunk, variants, spec): populations trained separately
        (e.g. at different shapes) whose results are put back in the chunk's order.
        ``keep_params`` needs a single part.
      progress: optional callback (runs done, runs to do) over all of this task's chunks.

    Returns:
      the stage's recorded rows with attrs total_runs and complete.
    """
    # Near-equal chunks of at most chunk_size runs, so padding the last one costs little.
    chunks = runner.cut(stage, grids.near_equal_chunks(total, chunk_size))
    _, todo = runner.pending(store, chunks, task_index, num_tasks)
    data = datasets.cubist_spiral()
    # One compiled shape per stage where it can: chunks are padded to the same compute chunk
    # (a part smaller than it is cut into equal chunks of its own).
    size = chunks[0].runs if chunks else 1

    def pop_chunk_of(spec):
        return min(size, populations.auto_chunk(spec, size, jax.local_devices()))

    def precompile(part):
        _, variants, spec = part
        populations.precompile(variants, data, spec=spec, chunk_size=pop_chunk_of(spec))

    def compute(chunk, tick):
        parts, rows, keep_params = build(np.arange(chunk.start, chunk.stop, dtype=np.int64))
        if keep_params and len(parts) != 1:
            raise ValueError("keep_params needs one population per chunk")
        cols, done = {}, 0
        # Parts of other shapes are other programs: the next compiles while one trains.
        for pos, variants, spec in populations.compiled_ahead(parts, precompile):
            out = populations.run(variants, data, spec=spec, chunk_size=pop_chunk_of(spec),
                                  progress=lambda d, _, base=done: tick(base + d))
            got = {"accuracy": out["accuracy"], "loss": out["loss"],
                   "diverged": out["diverged"], "nnz_weights": out["nnz_weights"],
                   "nnz": out["nnz"], **analysis.record_columns(out["params"])}
            for key, value in got.items():
                value = np.asarray(value)
                if key not in cols:
                    cols[key] = np.zeros((chunk.runs,) + value.shape[1:], value.dtype)
                cols[key][pos] = value
            done += len(pos)
        rows |= cols
        params = None
        if keep_params:
            params = {f"{layer}/{leaf}": out["params"][layer][leaf]
                      for layer in models.LAYERS for leaf in ("kernel", "bias")}
        store.write(stage, chunk.index, rows, params, first_row=chunk.start)

    runner.run(store, todo, compute, progress=progress)
    df = store.load(stage)
    df.attrs.update(total_runs=total, complete=len(store.done(stage)) == len(chunks))
    return df


def _split(flat, num_lrs: int, num_schedules: int):
    """Flat run index -> (outer index, lr index, schedule index); schedule varies fastest."""
    outer, rest = np.divmod(flat, num_lrs * num_schedules)
    return (outer,) + tuple(np.divmod(rest, num_schedules))


def _block_kernels(configs: np.ndarray, width) -> list[np.ndarray]:
    """Kernel block masks, layer l of shape (K, in, out), of configurations (K, 3).

    Args:
      configs: (K, 3) neuron configurations.
      width: the trained widths: an int D (the (D, D, D) model) or a (w1, w2, w3) tuple
        covering every configuration.
    """
    k = len(configs)
    dims = [np.full(k, 2), configs[:, 0], configs[:, 1], configs[:, 2], np.ones(k, np.int64)]
    widths = models.check_widths(width)
    full = (2,) + widths + (1,)
    return [(np.arange(full[i])[None, :, None] < dims[i][:, None, None])
            & (np.arange(full[i + 1])[None, None, :] < dims[i + 1][:, None, None])
            for i in range(4)]


def _spec(widths, epochs, init, recipe, dist_widths=None) -> training.Spec:
    kind = "torch" if init == "random" else "given"
    return training.Spec(widths=widths, epochs=int(epochs), init=kind, dist_widths=dist_widths,
                         **dict(recipe or {}))


def phase_one(store: recording.Store, *, width: int, lrs, schedules: tuple = schedules.SCHEDULES,
              targets=(), init: str = "random", max_structured_params: int | None = None,
              epochs: int = 50, recipe: dict | None = None, base_seed: int = 0,
              chunk_size: int = 4096, progress=None, task_index: int = 0,
              num_tasks: int = 1, configs=None) -> pd.DataFrame:
    """Phase one: trains every configuration x lr x schedule as block-masked width-D models.

    Args:
      store: the experiment's records; stage "phase1"; done chunks are skipped.
      width: the maximum width D; every run trains the (D, D, D) model under block masks
        (from a fixed init, compacted to a smaller shape: ``phase_one_shapes``).
      lrs: (L,) base learning rates.
      schedules: (S,) schedule names.
      targets: accuracies in (0, 1] to validate and, once the phase is complete, to select
        winners for (note "phase1_winners").
      init: "random" (PyTorch default at width D) or "bench95"/"bench995" (fixed, top-left).
      max_structured_params: only configurations with strictly fewer structured parameters
        (the study's fixed-init grids: fewer than (3,3,3) or (7,3,3)).
      epochs: training epochs.
      recipe: further ``training.Spec`` fields (milestones, cosine_t_max, precision, ...).
      base_seed: the experiment's seed; run seeds hash ("phase1", d1, d2, d3, lr, schedule).
      chunk_size: at most this many runs per recorded chunk (near-equal chunks).
      progress: optional callback (runs done, runs to do), e.g. ``populations.Progress``.
      task_index: this task's index in [0, num_tasks) (chunks are dealt round robin).
      num_tasks: number of tasks sharing the grid.
      configs: optional (C, 3) configurations to train instead of every one (with
        ``max_structured_params`` None); a run's seed does not depend on which others train.

    Returns:
      the recorded rows of the stage (all chunks done so far, by any task): stage, chunk, row,
      d1, d2, d3, lr, schedule, seed, init, accuracy, loss, diverged, nnz_weights, nnz,
      effective_nnz, disconnected (analysis.record_columns),
      structured_params; ``attrs["total_runs"]`` and ``attrs["complete"]``.
    """
    lrs, names = _check_common(width, lrs, schedules, targets, init, epochs, chunk_size,
                               task_index, num_tasks)
    width = int(width)
    given_configs = configs is not None
    if given_configs:
        if max_structured_params is not None:
            raise ValueError("give configs or max_structured_params, not both")
        configs = np.asarray(configs, np.int64).reshape(-1, 3)
        if not len(configs) or configs.min() < 1 or configs.max() > width:
            raise ValueError(f"configs must be (d1, d2, d3) triples in 1..{width}, got "
                             f"{configs.tolist()[:4]}")
        if len(np.unique(configs, axis=0)) != len(configs):
            raise ValueError("configs repeats a configuration (it would train and count twice)")
    else:
        configs = configurations(width, max_structured_params)
    total = len(configs) * len(lrs) * len(names)
    if total == 0:
        raise ValueError(f"empty grid: no configuration of width {width} has fewer than "
                         f"{max_structured_params} structured parameters")
    shapes, bucket = phase_one_shapes(width, init, configs, len(lrs) * len(names), epochs)
    specs = [_spec(shape, epochs, init, recipe) for shape in shapes]  # validates the recipe
    _claim_stage(store, PHASE_ONE, dict(width=width, lrs=lrs, schedules=names, init=init,
                                        max_structured_params=max_structured_params,
                                        epochs=int(epochs), recipe=dict(recipe or {}),
                                        base_seed=int(base_seed), chunk_size=int(chunk_size),
                                        **({"configs": configs.tolist()} if given_configs
                                           else {}),
                                        # a fixed init's shapes decide its numbers (float32
                                        # rounding); records made at other shapes are refused
                                        **({} if init == "random" else {"shapes": shapes})))
    givens = [None if init == "random" else models.bench_init(init, shape) for shape in shapes]

    def build(flat):
        c, li, si = _split(flat, len(lrs), len(names))
        cfg, lr, sched = configs[c], np.asarray(lrs)[li], np.asarray(names)[si]
        seed = grids.run_seeds(base_seed, PHASE_ONE, cfg[:, 0], cfg[:, 1], cfg[:, 2], lr, sched)
        parts = []
        for k in np.unique(bucket[c]):   # one population per bucket shape in this chunk
            pos = np.flatnonzero(bucket[c] == k)
            variants = populations.make_variants(
                masks=masking.from_kernels(_block_kernels(cfg[pos], shapes[k])), lr=lr[pos],
                schedule=sched[pos], seed=seed[pos], params=givens[k])
            parts.append((pos, variants, specs[k]))
        rows = {"d1": cfg[:, 0], "d2": cfg[:, 1], "d3": cfg[:, 2], "lr": lr, "schedule": sched,
                "seed": seed, "init": np.full(len(flat), init),
                "structured_params": np.array([structured_params(x) for x in cfg])}
        return parts, rows, False

    df = _run_stage(store, PHASE_ONE, total, chunk_size, task_index, num_tasks, build, progress)
    if df.attrs["complete"] and len(targets):
        store.put_json("phase1_winners", {f"{float(t):g}": select_configuration(df, t)
                                          for t in targets})
    return df


def select_configuration(df: pd.DataFrame, target: float) -> tuple[int, int, int] | None:
    """The phase-one winner: the fewest structured parameters among configurations reaching.

    A configuration reaches the target when its best accuracy over lr x schedule is
    ``>= target`` (the study's "reaching"; diverged runs count with the accuracy they got).
    Ties in structured parameters go to the higher best accuracy, then to the
    lexicographically smallest (d1, d2, d3).

    Args:
      df: phase-one rows with columns d1, d2, d3, accuracy.
      target: accuracy in (0, 1].

    Returns:
      (d1, d2, d3) as ints, or None if no configuration reaches the target.
    """
    _check_target(target)
    best = df.groupby(["d1", "d2", "d3"], as_index=False)["accuracy"].max()
    best = best[best["accuracy"] >= target]
    if best.empty:
        return None
    best = best.assign(params=[structured_params(c) for c in best[["d1", "d2", "d3"]].values])
    best = best.sort_values(["params", "accuracy", "d1", "d2", "d3"],
                            ascending=[True, False, True, True, True])
    return tuple(int(v) for v in best.iloc[0][["d1", "d2", "d3"]])


def phase_two(store: recording.Store, *, config, width: int, lrs,
              schedules: tuple = schedules.SCHEDULES, target: float | None = None,
              init: str = "random", max_weights: int | None = None, first_k: dict | None = None,
              mask_indices=None, epochs: int = 50, recipe: dict | None = None,
              base_seed: int = 0, chunk_size: int = 4096, progress=None, task_index: int = 0,
              num_tasks: int = 1, stage: str = "phase2") -> pd.DataFrame:
    """Phase two: trains every model mask of ``config`` x lr x schedule, compacted.

    Random init draws the compacted (d1, d2, d3) model from the width-D distribution
    (``Spec.dist_widths``), as the study trained width-D models under the masks; "bench*"
    uses the top-left slice of the fixed init. Kernel masks are built per chunk from mask
    indices, never for the whole product.

    Args:
      store: the experiment's records; done chunks of ``stage`` are skipped.
      config: the neuron configuration (d1, d2, d3), each <= width.
      width: the maximum width D.
      lrs: (L,) base learning rates.
      schedules: (S,) schedule names.
      target: optional accuracy in (0, 1] (validated only).
      init: "random", "bench95" or "bench995".
      max_weights: the study's subset cap: w1 + w2 + w3 < max_weights.
      first_k: {layer: k}: only the first k masks per nonzero count of that layer.
      mask_indices: optional (M,) indices into the (subset) mask space; default all of them.
      epochs: training epochs.
      recipe: further ``training.Spec`` fields (milestones, cosine_t_max, precision, ...).
      base_seed: the experiment's seed; run seeds hash (stage, mask_index, lr, schedule).
      chunk_size: at most this many runs per recorded chunk (near-equal chunks).
      progress: optional callback (runs done, runs to do).
      task_index: this task's index in [0, num_tasks).
      num_tasks: number of tasks sharing the grid.
      stage: the record stage.

    Returns:
      the recorded rows of ``stage`` (stage, chunk, row, mask_index, lr, schedule, seed, init,
      d1, d2, d3, mask_nnz (the mask's parameter count), accuracy, loss, diverged,
      nnz_weights, nnz) with ``attrs["total_runs"]`` and ``attrs["complete"]``; every run's
      final params are stored as "layer0/kernel", ... (``store.params_of(row)``).
    """
    lrs, names = _check_common(width, lrs, schedules, () if target is None else (target,),
                               init, epochs, chunk_size, task_index, num_tasks)
    width = int(width)
    config = masking.check_config(config, width)
    space = enumeration.ModelMaskSpace(config, max_weights=max_weights, first_k=first_k)
    if mask_indices is not None:
        mask_indices = np.asarray(mask_indices, np.int64).reshape(-1)
        space.layer_indices(mask_indices)  # one-line ValueError for an index out of range
    num_masks = len(space) if mask_indices is None else len(mask_indices)
    total = num_masks * len(lrs) * len(names)
    if total == 0:
        raise ValueError(f"empty grid: no model mask of {config} under max_weights={max_weights}")
    dist = (width,) * 3 if init == "random" else None
    spec = _spec(config, epochs, init, recipe, dist)
    _claim_stage(store, stage, dict(
        config=config, width=width, lrs=lrs, schedules=names, init=init, max_weights=max_weights,
        first_k={str(k): v for k, v in (first_k or {}).items()}, epochs=int(epochs),
        mask_indices=None if mask_indices is None else mask_indices.tolist(),
        recipe=dict(recipe or {}), base_seed=int(base_seed), chunk_size=int(chunk_size)))
    given = None if init == "random" else models.bench_init(init, config)

    def build(flat):
        m, li, si = _split(flat, len(lrs), len(names))
        idx = m if mask_indices is None else mask_indices[m]
        lr, sched = np.asarray(lrs)[li], np.asarray(names)[si]
        seed = grids.run_seeds(base_seed, stage, idx, lr, sched)
        variants = populations.make_variants(masks=masking.from_kernels(space.kernel_masks(idx)),
                                             lr=lr, schedule=sched, seed=seed, params=given)
        k = len(flat)
        rows = {"mask_index": idx, "lr": lr, "schedule": sched, "seed": seed,
                "init": np.full(k, init), "d1": np.full(k, config[0]),
                "d2": np.full(k, config[1]), "d3": np.full(k, config[2]),
                "mask_nnz": space.param_counts(idx)}
        return [(np.arange(k), variants, spec)], rows, True

    return _run_stage(store, stage, total, chunk_size, task_index, num_tasks, build, progress)


def sparsest(df: pd.DataFrame, target: float) -> pd.Series | None:
    """The sparsest model over the target: fewest nnz with accuracy >= target.

    Ties go to the higher accuracy, then to the first row (mask index, lr, schedule order).

    Args:
      df: rows with columns nnz and accuracy (phase two's); may be empty.
      target: accuracy in (0, 1].

    Returns:
      the winning row, or None if no run reaches the target (or there are no rows).
    """
    _check_target(target)
    if df.empty:   # e.g. a task of a job array whose share of phase two has no rows yet
        return None
    over = df[df["accuracy"] >= target]
    if over.empty:
        return None
    order = np.lexsort((np.arange(len(over)), -over["accuracy"].to_numpy(),
                        over["nnz"].to_numpy()))
    return over.iloc[order[0]]
