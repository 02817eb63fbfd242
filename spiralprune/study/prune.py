"""Prunes populations with every method of the study and records accuracy against nonzeros.

  python experiments/prune.py --workdir=DIR [--config=experiments/configs/prune.py:quick]
      [--task_index=i --num_tasks=n]

Grid -> rows (init, method, width, budget, lr, schedule, repeat) -> one population per
(init, method, width) group (one compiled program, ``populations.run``) -> chunks recorded
atomically with ``recording.Store`` (stage ``prune_<init>_<method>_w<width>``) -> a restarted
run skips recorded chunks -> a table of the fewest nonzero parameters reaching 95% and 99.5%.
On a CPU, groups train side by side, one per core (``workers``); on an accelerator one at a
time, the next compiling while one trains. A run's seed is a hash of its own row
(``grids.run_seeds``), so its result does not depend on its batch-mates, its chunk, the task
that ran it or the groups trained beside it.
"""

import dataclasses
import functools
import os
import time

import jax
import numpy as np
import pandas as pd

from spiralprune import (
    analysis,
    compaction,
    datasets,
    grids,
    masking,
    models,
    populations,
    recording,
    runner,
    schedules,
    training,
)
from spiralprune.pruning import checks, lottery, plugins, registry, signatures
from spiralprune.study import rates as rates_mod

KIND = "prune"
TARGETS = (0.95, 0.995)
# Groups trained at once on a CPU (at most; env SPIRALPRUNE_PRUNE_WORKERS overrides). A group
# of a dozen runs keeps about one core busy, so on 2 cores two groups at a time train 2.1x
# faster than one after another (BENCHMARKS.md), with the same records bit for bit.
MAX_CPU_WORKERS = 8
# A recorded chunk trains in about this many seconds at most by the plan's estimate (config
# field ``chunk_seconds``): the most a killed run loses. ``chunk_size`` caps its runs.
CHUNK_SECONDS = 600.0


@dataclasses.dataclass(frozen=True)
class Group:
    """The rows of one (init, method, width): one compiled population."""

    init: str
    method: str
    width: int
    rows: pd.DataFrame

    @property
    def stage(self) -> str:
        # An import path's ":" cannot name a stage: plugins.stage_name makes it "-".
        return f"prune_{self.init}_{plugins.stage_name(self.method)}_w{self.width}"


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """A pruning config turned, once, into what trains (``plan``): the groups with their
    recipes, the data's size, the chunking's limits, compaction and this task's share.
    Everything below ``plan`` reads this, never the ConfigDict."""

    groups: tuple          # Group, in the grids' order
    specs: dict            # stage -> training.Spec of its group
    num_points: int        # 0: the whole spiral
    batch_size: int
    epochs: int
    chunk_size: int        # the most runs a recorded chunk holds
    chunk_seconds: float   # the most a chunk trains by the estimate
    compact: object        # False, True or "auto" (``compacted``)
    task_index: int
    num_tasks: int
    targets: tuple         # the printed table's accuracy levels
    record: dict           # the records' identity: the config less task and chunking fields

    def spec(self, group: Group) -> training.Spec:
        return self.specs[group.stage]

    @functools.cached_property
    def data(self):
        """The training points (``num_points`` of the spiral, or all of it)."""
        return _data(self.num_points, self.batch_size)


def plan(config) -> Plan:
    """Validates the config and expands its grids into groups of rows, before any compute.

    Budgets >= N_w are skipped (the study keeps only budgets below N_w); everything else
    that cannot run (unknown method or init, budget < 1, widths an init cannot provide, bad lr,
    schedule or method_args) is a one-line ValueError. A method is a built-in name, a name
    registered with ``spiralprune.pruning.register`` or an import path
    ``package.module:function`` (``--config.grids.bench95.methods="('snip','pkg.mod:fn')"``);
    a pruner outside the built-ins is run once per width first (``checks.check``: it must import,
    take the right arguments, return masks like params, score without NaN, keep the budget).

    Returns:
      the frozen ``Plan`` (a ``Plan`` given is returned as it is).
    """
    if isinstance(config, Plan):
        return config
    grids.check_task(int(config.task_index), int(config.num_tasks))
    if int(config.chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {config.chunk_size}")
    if not float(config.get("chunk_seconds", CHUNK_SECONDS)) > 0:
        raise ValueError(f"chunk_seconds must be > 0, got {config.chunk_seconds}")
    compact = config.get("compact", False)
    if not any(compact is v or (isinstance(compact, str) and compact == v) for v in COMPACT):
        raise ValueError(f"compact must be one of False, True or 'auto', got {compact!r}")
    for method in config.method_args:
        checks.check_method_args(method, _method_args(config, method))
    groups = []
    if not 0 <= int(config.seed) < 2 ** 32:
        raise ValueError(f"seed must be in [0, 2^32), got {config.seed}")
    for name, g in config.grids.items():
        if int(g.repeats) < 1:
            raise ValueError(f"grid {name!r}: repeats must be >= 1, got {g.repeats}")
        for lr in g.lrs:
            if not float(lr) > 0:
                raise ValueError(f"grid {name!r}: learning rates must be > 0, got {lr}")
            with np.errstate(over="ignore", under="ignore"):
                lr32 = np.float32(float(lr))
            if not (np.isfinite(lr32) and lr32 > 0):
                raise ValueError(f"grid {name!r}: learning rate {lr} is 0 or infinite in "
                                 "float32, the precision it trains in")
        for field in ("methods", "widths", "budgets", "lrs", "schedules"):
            values = [str(v) for v in g[field]]
            if len(set(values)) != len(values):
                raise ValueError(f"grid {name!r}: {field} {tuple(g[field])} repeats a value "
                                 "(each would train and count twice)")
        if not len(g.budgets):
            raise ValueError(f"grid {name!r}: budgets is empty")
        for s in g.schedules:
            schedules.index(s)
        for method in g.methods:
            for width in g.widths:
                budgets = [int(b) for b in g.budgets if int(b) < models.num_weights(width)]
                if method == "dense" and budgets:   # no budget: one dense run, not one each
                    budgets = [models.num_weights(width)]
                checks.validate(method, width, [int(b) for b in g.budgets if int(b) < 1] +
                                  budgets, g.init)
                if not budgets:
                    continue
                rows = pd.DataFrame(grids.product({
                    "budget": budgets, "lr": [float(x) for x in g.lrs],
                    "schedule": list(g.schedules), "repeat": list(range(int(g.repeats)))}))
                rows.insert(0, "width", width)
                rows.insert(0, "method", method)
                rows.insert(0, "init", g.init)
                rows["seed"] = grids.run_seeds(int(config.seed), *(
                    rows[c].to_numpy(str if c in ("init", "method", "schedule") else None)
                    for c in ("init", "method", "width", "budget", "lr", "schedule", "repeat")))
                groups.append(Group(g.init, method, int(width), rows))
    stages = [grp.stage for grp in groups]
    if len(set(stages)) != len(stages):
        raise ValueError("two grids share an (init, method, width) group; merge them")
    if not groups:
        raise ValueError("the grids produce no runs: every budget is >= N_w of its width "
                         "(or a grid has no methods, widths, lrs or schedules)")
    record = config.to_dict()
    for name in ("task_index", "num_tasks", "chunk_seconds"):   # how work is split and cut
        record.pop(name, None)                                  # is not the records' identity
    specs = {grp.stage: _group_spec(config, grp) for grp in groups}
    return Plan(groups=tuple(groups), specs=specs, num_points=int(config.num_points),
                batch_size=int(config.batch_size), epochs=int(config.epochs),
                chunk_size=int(config.chunk_size),
                chunk_seconds=float(config.get("chunk_seconds", CHUNK_SECONDS)),
                compact=compact, task_index=int(config.task_index),
                num_tasks=int(config.num_tasks),
                targets=tuple(float(t) for t in (config.get("targets", None) or TARGETS)),
                record=record)


def check(config) -> Plan:
    """``plan`` plus everything else a run could refuse, before anything is written.

    Also checks num_points, the training recipe of every group (epochs, batch size,
    milestones, precision) and that one run of each group fits the device's memory
    (``populations.check_memory``).

    Returns:
      the ``Plan``.
    """
    p = plan(config)
    p.data   # noqa: B018 - num_points and batch_size refused here, before any compute
    for grp in p.groups:
        populations.check_memory(p.spec(grp), what=f"method {grp.method!r} at width {grp.width}")
    return p


def _method_args(config, method: str) -> dict:
    args = config.method_args.get(method, None)
    return {} if args is None else dict(args.to_dict() if hasattr(args, "to_dict") else args)


def _data(num_points: int, batch_size: int):
    x, y = datasets.cubist_spiral()
    n = int(num_points)
    if n:
        if not 0 < n <= len(y):
            raise ValueError(f"num_points must be in [0, {len(y)}], got {n}")
        sub = np.sort(np.random.default_rng(0).choice(len(y), n, replace=False))
        x, y = x[sub], y[sub]
    if int(batch_size) >= 1 and len(y) < int(batch_size):
        raise ValueError(f"batch_size {batch_size} is larger than the {len(y)} training "
                         "points: an epoch would have no step (lower batch_size or raise "
                         "num_points)")
    return x, y


def _group_spec(config, group: Group) -> training.Spec:
    given = group.init in models.BENCH_INITS
    args = tuple(sorted(_method_args(config, group.method).items()))
    return training.Spec(widths=(group.width,) * 3, epochs=int(config.epochs),
                         batch_size=int(config.batch_size),
                         milestones=tuple(config.milestones),
                         cosine_t_max=int(config.cosine_t_max),
                         init="given" if given else group.init, precision=config.precision,
                         method=group.method, method_args=args)


def _variants(group: Group, rows: pd.DataFrame, spec):
    like = models.init(jax.random.key(0), group.width)
    params = (models.bench_init(group.init, group.width) if spec.init == "given" else None)
    return populations.make_variants(
        masks=masking.ones_like(like), lr=rows["lr"].to_numpy(),
        schedule=rows["schedule"].to_numpy(str), seed=rows["seed"].to_numpy(),
        budget=rows["budget"].to_numpy(), params=params)


COMPACT = (False, True, "auto")


def compacted(p: Plan, platform: str | None = None) -> bool:
    """Whether fixed-mask groups (at-init pruners, dense) and LTH's rounds after the first
    train compacted (``compaction``) on ``platform`` (default: this machine's backend).

    The config's ``compact``: False (the default), True, or "auto" (on a CPU, where the
    zeros a full-width model multiplies are the cost; at full width on an accelerator, where
    compiling each bucket's program costs more than the zeros). Off by default because the
    records the existing presets made (the Quick start's, the shipped built-ins') were trained
    at full width, and compacted training equals them only to float32 rounding.
    """
    value = p.compact
    if isinstance(value, str) and value == "auto":
        return (platform or jax.default_backend()) == "cpu"
    return bool(value)


def _train_chunk(group: Group, rows: pd.DataFrame, data, spec, pop_chunk: int,
                 compact: bool = False):
    variants = _variants(group, rows, spec)
    nans = checks.population_nans(group.method, variants, data, spec=spec)
    if nans.any():   # check() scored one key: a user pruner may score NaN for others
        first = rows.iloc[int(np.argmax(nans > 0))]
        raise ValueError(f"pruner {group.method!r} scores NaN in {int((nans > 0).sum())} of "
                         f"{len(rows)} runs of {group.stage} (first: {_run_name(first)}); "
                         "nothing of them was trained or recorded")
    # Fixed masks (at-init pruners, dense, LTH's later rounds) may train compacted; GMP and
    # RigL (their masks move to the end) at full width.
    train = compaction.run if compact else populations.run
    out = train(variants, data, spec=spec, chunk_size=pop_chunk)
    kept = np.asarray(masking.nnz_weights(out["masks"]))
    over = checks.over_budget(group.method, kept, rows["budget"].to_numpy())
    if over.any():
        i = int(np.argmax(over))
        raise ValueError(f"pruner {group.method!r} ended {int(over.sum())} of {len(rows)} runs "
                         f"of {group.stage} above their budget (first: {_run_name(rows.iloc[i])}"
                         f", {int(kept[i])} weights kept): it must reach the budget by its last "
                         "call; nothing of them was recorded")
    cols = {c: rows[c].to_numpy() for c in rows.columns}
    cols["schedule"] = cols["schedule"].astype(str)
    cols["init"] = cols["init"].astype(str)
    cols["method"] = cols["method"].astype(str)
    for key in training.RECORD_KEYS[2:]:   # every number of the record (params stored apart)
        cols[key] = np.asarray(out[key])
    cols["mask_nnz_weights"] = kept
    cols |= analysis.record_columns(out["params"])
    flat = {f"{layer}/{leaf}": np.asarray(out["params"][layer][leaf])
            for layer in models.LAYERS for leaf in ("kernel", "bias")}
    return cols, flat


def _run_name(row) -> str:
    return (f"budget {int(row['budget'])}, lr {float(row['lr']):g}, schedule {row['schedule']}, "
            f"repeat {int(row['repeat'])}, seed {int(row['seed'])}")


# A compacted group's stand-in width for ordering groups and weighing the ETA: the study's
# budgets (at most 65 weights) leave at most a few dozen active units per layer
# (BENCHMARKS.md, "compaction": the largest bucket at width 256 is 28 x 18 x 43).
COMPACTED_WIDTH = 16


def workers() -> int:
    """How many groups train at once: one per usable core on a CPU (at most
    ``MAX_CPU_WORKERS``), one on an accelerator (not measured there; the next group compiles
    while one trains instead); ``SPIRALPRUNE_PRUNE_WORKERS`` overrides."""
    env = os.environ.get("SPIRALPRUNE_PRUNE_WORKERS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"SPIRALPRUNE_PRUNE_WORKERS must be a whole number >= 1, got {env!r}")
        return int(env)
    if jax.default_backend() != "cpu":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(int(cores or 1), MAX_CPU_WORKERS))


def epochs_per_run(p: Plan, group: Group) -> float:
    """A run's training epochs in ``group``, in time: the pruner's own count where it says
    (``Pruner.epochs``: LTH trains its rounds one after another, ``neurons`` its restarts)."""
    spec = p.spec(group)
    pruner = registry.get(spec.method)
    if pruner.epochs is None:
        return int(spec.epochs)
    return float(pruner.epochs(spec, signatures.resolve_args(spec.method, spec.args,
                                                              pruner.args)))


def run_seconds(p: Plan, group: Group, rates: dict, calls: int = 1, workers: int = 1) -> float:
    """Estimated seconds of one run of ``group`` (compiling not included) under ``rates``
    (``spiralprune.study.rates``), trained in a population of the group's runs, while
    ``workers`` groups train side by side (``rates.run_cost``).

    A compacted group (``compacted`` config, fixed masks) at the shapes its runs are estimated
    to compact to (``rates.compacted_shapes``); moving masks at full width on vmap.
    """
    points = p.num_points or len(datasets.cubist_spiral()[1])
    steps = points // p.batch_size
    epochs = epochs_per_run(p, group)
    runs = len(group.rows)
    spec = p.spec(group)
    full = rates_mod.run_cost(rates, (group.width,) * 3, runs, epochs, steps, calls,
                              workers=workers) / runs
    if not (compacted(p, rates_mod.platform(rates)) and compaction.compacts(spec)):
        return full
    total = 0.0
    for budgets, epochs_at, dense in compacted_rounds(p, group):
        if budgets is None:   # LTH's first round: full width
            total += rates_mod.run_cost(rates, (group.width,) * 3, runs, epochs_at, steps, calls,
                                        workers=workers)
            continue
        shapes, share = rates_mod.compacted_shapes(group.width, budgets, p.epochs)
        total += sum(rates_mod.run_cost(rates, w, runs * f, epochs_at, steps, calls,
                                        rates_mod.engine_of(w, dense=dense), workers)
                     for w, f in zip(shapes, share))
    return total / runs


def compacted_rounds(p: Plan, group: Group) -> list:
    """What a compacted group trains, for the estimate: (weights kept per distinct budget,
    or None for full width; epochs; whether on the fixed-mask engines) per stage of a run.

    At-init pruners and dense: one stage at their budgets. LTH: its first round at full
    width, then each later round at that round's kept counts (``compaction.lth_targets``).
    """
    budgets = tuple(sorted({int(b) for b in group.rows["budget"]}))
    spec = p.spec(group)
    if spec.method != "lth":
        return [(budgets, p.epochs, True)]
    args = lottery.resolve_args(spec)
    rounds = int(args["lth_rounds"])
    counts = compaction.lth_targets(models.num_weights(group.width), budgets, rounds,
                                    bool(args["reference_counts"]))
    return [(None, p.epochs, False)] + [
        (tuple(int(c) for c in counts[:, r]), p.epochs, False)
        for r in range(1, rounds)]


def chunk_rows(p: Plan, group: Group, rates: dict | None = None) -> int:
    """Runs per recorded chunk of ``group``: as many as train in ``chunk_seconds`` by the
    estimate (``run_seconds``; ``rates`` default: this machine's cached table, else the
    assumed rates), at least 1 and at most ``chunk_size``."""
    rates = rates or rates_mod.current()
    per = run_seconds(p, group, rates)
    return int(np.clip(p.chunk_seconds // max(per, 1e-9), 1, p.chunk_size))


def chunking(p: Plan, store: recording.Store | None = None,
             rates: dict | None = None) -> dict[str, int]:
    """Runs per chunk of every group, as the workdir records them.

    A group's chunking is fixed the first time a writer reaches it (the store's note
    ``chunks_<stage>``, written once for every writer sharing the workdir, so tasks, resumes
    and other machines cut the same chunks); a stage recorded before chunkings were noted keeps
    ``chunk_size``. ``store=None`` (a plan, before anything is written) reads notes only.
    """
    out = {}
    for grp in p.groups:
        note = f"chunks_{grp.stage}"
        have = None
        if store is not None:
            have = store.get_json(note)
            if have is None and store.done(grp.stage):
                have = p.chunk_size   # recorded before chunkings were noted
        if have is None:
            have = chunk_rows(p, grp, rates)
        if store is not None and not store.read_only:
            have = store.put_json_once(note, int(have))
        out[grp.stage] = int(have)
    return out


def _pop_chunk(rows_per_chunk: int, group: Group) -> int:
    """Runs per compiled call for a group: one shape per group."""
    return min(int(rows_per_chunk), len(group.rows))


def table(df: pd.DataFrame, targets=TARGETS) -> pd.DataFrame:
    """Per (init, method): runs, best accuracy and the fewest nonzeros reaching each target.

    The init is named as in the study's tables (``setting``: the torch init is "random").
    """
    if df.empty or "accuracy" not in df:
        return pd.DataFrame()
    df = df.assign(init=[models.setting(i) for i in df["init"]])
    out = df.groupby(["init", "method"]).agg(runs=("accuracy", "size"),
                                             best_acc=("accuracy", "max"))
    for target in targets:
        reach = df[df["accuracy"] >= target].groupby(["init", "method"])["nnz"].min()
        out[f"nnz@{target:.1%}"] = reach.reindex(out.index).astype("Int64")
    if "repeat" in df and df.groupby(["init", "method"])["repeat"].nunique().max() > 1:
        # The spread over repeats: within each repeat the fewest reaching the target.
        spread = analysis.repeat_spread(df, targets=tuple(targets), by=("init", "method"))
        for target in targets:
            rows = spread[np.isclose(spread["target"], target)].set_index(["init", "method"])
            out[f"repeats@{target:.1%}"] = [
                _spread_cell(rows.loc[key]) for key in out.index]
    return out


def _spread_cell(r) -> str:
    """Best-worst over the repeats reaching a target, and how many do: "26-33 (5/5)"."""
    counts = f"({int(r['reached'])}/{int(r['repeats'])})"
    if not r["reached"]:
        return f"- {counts}"
    best, worst = int(r["best"]), int(r["worst"])
    return (f"{best}" if best == worst else f"{best}-{worst}") + f" {counts}"


def format_table(summary: pd.DataFrame) -> str:
    """The table as text, "-" where no run reached the target, pruners given by import path
    named by their short names (``plugins.display_names``)."""
    shown = summary.copy()
    if "method" in (shown.index.names or ()):   # import paths by their short names
        names = plugins.display_names(shown.index.get_level_values("method"))
        shown.index = shown.index.set_levels(
            [names.get(v, v) for v in shown.index.levels[shown.index.names.index("method")]],
            level="method", verify_integrity=False)
    shown["best_acc"] = shown["best_acc"].map(lambda v: f"{v:.4f}")
    for col in shown.columns[2:]:
        if col.startswith("nnz@"):
            shown[col] = shown[col].map(lambda v: "-" if pd.isna(v) else str(int(v)))
    return shown.to_string()


def run(config, workdir, progress=None, targets=None) -> pd.DataFrame:
    """Runs (or resumes) the configured grids into ``workdir``; returns every recorded row.

    Args:
      config: a configs/prune.py ConfigDict, or the ``Plan`` made of one (``plan``).
      workdir: the records directory; new, or holding the same config (the task fields are
        not recorded, so tasks may share a workdir and a merged workdir resumes).
      progress: optional factory ``label -> callback(runs done, runs to do)`` (the study's
        one progress display); default a ``populations.Progress`` printer.
      targets: accuracy levels of the printed table (e.g. the study's); default the config's
        ``targets`` if it has any, else 95% and 99.5%.

    Returns:
      every recorded row (all tasks' chunks found in the workdir).
    """
    if not str(workdir).strip():
        raise ValueError("workdir is empty; give --workdir=DIR")
    p = check(config)  # everything refusable is refused before the first byte is written
    side_by_side = workers()   # a bad SPIRALPRUNE_PRUNE_WORKERS is refused before writing
    store = recording.Store(workdir, p.record, kind=KIND)
    per_chunk = chunking(p, store)   # how chunks are cut is the store's note
    by_stage = {grp.stage: grp for grp in p.groups}
    chunks = [c for grp in p.groups
              for c in runner.cut(grp.stage, grids.chunks(len(grp.rows), per_chunk[grp.stage]))]
    mine, todo = runner.pending(store, chunks, p.task_index, p.num_tasks)
    total = sum(c.runs for c in todo)
    print(f"[prune] {len(p.groups)} groups, {sum(len(g.rows) for g in p.groups)} runs in the "
          f"grid; this task: {len(mine)} chunks, {len(mine) - len(todo)} already recorded, "
          f"{total} runs to train on {jax.local_devices()[0].device_kind}", flush=True)
    progress = (progress or (lambda label: populations.Progress(
        label, printer=lambda s: print(s, flush=True))))("prune")
    t0, compact = time.perf_counter(), compacted(p)

    def precompile(stage):
        grp, first = by_stage[stage], min((c for c in todo if c.stage == stage),
                                          key=lambda c: c.index)
        spec = p.spec(grp)
        if compact and compaction.compacts(spec):
            return   # its programs are the buckets', known once its masks are
        populations.precompile(_variants(grp, grp.rows.iloc[first.start:first.stop], spec),
                               p.data, spec=spec,
                               chunk_size=_pop_chunk(per_chunk[grp.stage], grp))

    def compute(chunk, tick):
        grp = by_stage[chunk.stage]
        cols, flat = _train_chunk(grp, grp.rows.iloc[chunk.start:chunk.stop], p.data,
                                  p.spec(grp), _pop_chunk(per_chunk[grp.stage], grp), compact)
        store.write(grp.stage, chunk.index, cols, flat, first_row=chunk.start)

    # Each group is its own program. On a CPU a group of a dozen runs keeps about one core
    # busy, so groups train side by side, the longest first, each compiling while the others
    # train, and a worker with no group left takes the next chunk of the longest one (LTH at
    # a large width is most of a grid); one at a time elsewhere, the next compiling on a
    # second thread while one trains.
    rates = rates_mod.current()

    def cost(stage):   # a group's share of the time, for the order and the ETA (cheap: no
        grp = by_stage[stage]   # compacted shapes drawn; fixed masks at width 16 at most)
        width = min(grp.width, COMPACTED_WIDTH) if compact and compaction.compacts(
            p.spec(grp)) else grp.width
        return len(grp.rows) * epochs_per_run(p, grp) * rates_mod.model_epoch_s(rates, width)
    finished = runner.run(store, todo, compute, progress=progress, workers=side_by_side,
                          precompile=precompile, cost=cost)
    if finished:
        print(f"[prune] trained {finished} runs in {time.perf_counter() - t0:.1f} s", flush=True)
    df = store.load()
    summary = table(df, p.targets if targets is None else tuple(float(t) for t in targets))
    if not summary.empty:
        print(format_table(summary), flush=True)
    return df
