"""The study's plan and its progress display: what each stage trains, and how long it takes.

The plan lists, per search stage and per pruning grid, the runs in the grid, this task's share,
what of it the workdir has not recorded yet, the compiled groups and an estimated time, read
from the sub-workdirs before anything trains (``--dry_run`` prints it and stops). Phase two's
size is known once phase one has picked its configuration; until then the plan assumes the
config's ``assumed_winners``. The estimate uses a cost model per model-epoch: the assumed rates
per device kind (``ASSUMED``), scaled (``--config.estimate=measured``, the default) by a rate
measured here on a small calibration population. ``StudyProgress`` is the one progress line
over every stage (runs done / to do, runs/s, an ETA weighted by the plan's costs, the current
stage) whose callbacks the stages (``study.search``, ``study.prune``) call.
"""

import contextlib
import dataclasses
import io
import os
import pathlib
import time

import jax
import numpy as np

from spiralprune import (
    compaction,
    enumeration,
    grids,
    models,
    populations,
    recording,
    runner,
    search,
)
from spiralprune.configs import study as study_config
from spiralprune.study import prune as prune_stage
from spiralprune.study import rates as rates_mod
from spiralprune.study import search as search_stage

_STEPS = rates_mod.STEPS   # steps per epoch of the study's recipe, the unit of the rates
ASSUMED = rates_mod.ASSUMED   # the assumed rates per device kind (spiralprune.study.rates)


# The figure stage of a study drawn from scratch on 2 CPU cores (the Quick start's: 8 s, plus
# compiling the no-path Monte Carlo): in the ETA until the figures are drawn. Parts whose records
# did not change are cached and take well under a second.
FIGURES_S = 30.0


# One duration format for every progress line and estimate (populations owns it).
format_seconds = populations.format_seconds


def sub_config(config, name: str):
    """Returns the sub-config of stage ``name`` with the study's task fields set.

    Args:
      config: a configs/study.py ConfigDict.
      name: one of configs/study.py's STAGES.

    Returns:
      a copy of ``config[name]``.
    """
    sub = config[name].copy_and_resolve_references()
    sub.task_index, sub.num_tasks = int(config.task_index), int(config.num_tasks)
    return sub


# ---------------------------------------------------------------------------------------
# The plan: every stage's runs, this task's share, what is recorded, and a time estimate.

@dataclasses.dataclass
class Part:
    """One line of the plan: a search stage, or the pruning groups of one init."""

    stage: str        # the study stage (a sub-workdir)
    part: str         # the record stage, or the pruning grid
    runs: int         # in the grid, all tasks
    mine: int         # this task's share
    todo: int         # this task's share not recorded yet
    groups: int       # compiled programs (one per static shape)
    model_epochs: float   # of the runs to do (LTH counts its rounds)
    seconds: float    # estimated time of the runs to do, compiling included
    note: str = ""


def cost_model(config, measure: bool) -> tuple[dict, str]:
    """Returns the cost model for this device and a line that says where it came from.

    ``--config.estimate=measured`` (the default) takes this machine's measured table
    (``spiralprune.study.rates``: seconds per model-epoch per width and engine, cached per
    machine); a dry run measures it the first time (~30 s on 2 CPU cores), a run uses it when
    cached and the assumed rates otherwise. ``estimate=assumed`` takes the assumed rates,
    ``estimate=remeasure`` measures again.

    Args:
      config: a configs/study.py ConfigDict; its ``estimate`` picks the rates.
      measure: whether measuring is allowed (a dry run; a run never spends time on it).

    Returns:
      (rates: ``rates.ASSUMED``'s fields, plus ``table`` where measured; a line naming them).
    """
    platform = jax.default_backend()
    base = rates_mod.assumed(platform)
    kind = jax.local_devices()[0].device_kind
    how_config = config.get("estimate", "measured")
    cached = rates_mod.cached() is not None   # a stale or foreign table does not count
    if how_config == "assumed" or not (measure or cached):
        rates, how = base, f"assumed rates for {platform} ({kind})"
    else:
        try:
            table, how = rates_mod.load(fresh=how_config == "remeasure")
            rates = rates_mod.with_table(base, table)
            busy = loaded(table.get("load_average"), table.get("machine", {}).get("cores"))
            if busy:
                how += (f", measured while the machine was loaded ({busy}: the estimate errs "
                        "long; --config.estimate=remeasure on an idle machine measures again)")
        except Exception as e:  # noqa: BLE001 - an estimate must never stop a dry run
            rates = base
            how = (f"assumed rates for {platform} ({kind}; measuring failed: "
                   f"{type(e).__name__})")
    w16 = 1 / rates_mod.model_epoch_s(rates, 16)
    return rates, f"{how}: {w16:,.0f} width-16 model-epochs/s, {rates['compile_s']:.1f} s a group"


def loaded(load: float | None = None, cores: int | None = None) -> str:
    """"load average L on C cores" when other work kept over half the CPU cores busy, else ""
    (also where the OS cannot say). ``load``: the 1-minute load average a rates table recorded
    before measuring (default: now); ``cores``: its machine's (default: this one's)."""
    try:
        load = os.getloadavg()[0] if load is None else float(load)
    except (OSError, AttributeError):
        return ""
    cores = int(cores or os.cpu_count() or 1)
    return f"load average {load:.1f} on {cores} cores" if load > 0.5 * cores else ""


def other_estimate(config, workdir, parts, plans: dict | None = None,
                   other: list | None = None) -> str:
    """The same plan's time on the other kind of device, from its fitted rates (``ASSUMED``):
    one GPU on a CPU machine, 2 CPU cores on a GPU one (``other``: that plan, if made)."""
    gpu_here = jax.default_backend() != "cpu"
    if other is None:
        other = plan(config, workdir, ASSUMED["cpu" if gpu_here else "gpu"], plans)
    what = ("2 CPU cores (the rates fitted on 2 cores)" if gpu_here else
            "one GPU (the rates fitted to the device check on one H200, BENCHMARKS.md)")
    return (f"on {what}: {format_seconds(sum(p.seconds for p in other))} for the same "
            f"{sum(p.todo for p in parts):,} runs")


def _cost(rates: dict, widths, runs: int, epochs: float, steps: int, calls: int,
          dense: bool = False) -> float:
    """Seconds to train ``runs`` models of ``widths`` for ``epochs`` in ``calls`` calls.

    ``dense``: fixed masks (a search stage, a compacted bucket), which train on the engine
    ``populations.engine`` picks for the shape (lanes where small enough); else vmap.
    """
    return rates_mod.run_cost(rates, widths, runs, epochs, steps, calls,
                              rates_mod.engine_of(widths, dense))


def _share(total: int, chunk: int, task: int, tasks: int, done: set) -> tuple[int, int, int]:
    """(this task's runs, its runs not recorded, its chunks) of a grid of near-equal chunks."""
    # The chunks of spiralprune.search's stages: at most ``chunk`` runs, near-equal in size.
    ranges = grids.near_equal_chunks(total, chunk)
    mine = grids.task_share(list(enumerate(ranges)), task, tasks)
    return (sum(b - a for _, (a, b) in mine),
            sum(b - a for i, (a, b) in mine if f"{i:06d}" not in done), len(mine))


def search_part(stage: str, label: str, shapes, share, runs: int, epochs: int, chunk: int,
                rates: dict, note: str = "", *, done=frozenset(), task_index: int = 0,
                num_tasks: int = 1) -> Part:
    """One line of the plan for a search stage of ``runs`` runs in near-equal chunks of at
    most ``chunk``: this task's share of them, those not in ``done`` (chunk ids), their time.

    Args:
      shapes: the (d1, d2, d3) shapes the runs train as; share: the fraction of runs at each.
    """
    mine, todo, calls = _share(runs, chunk, task_index, num_tasks, set(done))
    secs = sum(_cost(rates, w, todo * f, epochs, _STEPS, calls, dense=True)
               for w, f in zip(shapes, share))
    secs += rates["compile_s"] * len(shapes) if todo else 0.0
    return Part(stage, label, runs, mine, todo, len(shapes), todo * epochs, secs, note)


def existing_store(path: pathlib.Path) -> recording.Store | None:
    """Returns the records in ``path`` opened read-only, or None where there are none yet."""
    return recording.Store.open(path) if (path / "config.json").exists() else None


def _search_parts(config, name: str, workdir: pathlib.Path, rates: dict) -> list[Part]:
    """The parts of search stage ``name``: phase one, then phase two of each target."""
    sub = sub_config(config, name)
    store = existing_store(workdir / name)
    task, tasks, chunk = int(sub.task_index), int(sub.num_tasks), search_stage.chunk_size(sub)
    lrs, names, epochs = tuple(sub.lrs), tuple(sub.schedules), int(sub.epochs)
    parts = []

    def part(stage, widths, runs, note, share=None):
        # widths: one shape, or several with ``share`` the fraction of runs at each.
        parts.append(search_part(name, stage, [widths] if share is None else widths,
                                 [1.0] if share is None else share, runs, epochs, chunk,
                                 rates, note, done=store.done(stage) if store else set(),
                                 task_index=task, num_tasks=tasks))

    if sub.phase_one:
        configs = search.configurations(int(sub.width), sub.max_structured_params)
        shapes, bucket = search.phase_one_shapes(int(sub.width), sub.init, configs,
                                                 len(lrs) * len(names), epochs)
        share = np.bincount(bucket, minlength=len(shapes)) / max(len(configs), 1)
        part(search.PHASE_ONE, shapes, len(configs) * len(lrs) * len(names),
             f"{len(configs):,} configurations x {len(lrs)} lr x {len(names)} schedules, "
             f"width {sub.width}"
             + (f" trained as {len(shapes)} shapes up to {tuple(np.max(shapes, 0).tolist())}"
                if len(shapes) > 1 else
                f" trained as {shapes[0]}" if shapes[0] != (int(sub.width),) * 3 else "")
             + f", {sub.init} init", share)
    winners = (store.get_json("phase1_winners") if store else None) or {}
    seen = set()
    for i, target in enumerate(float(t) for t in sub.targets):
        if sub.phase_two_config is not None:
            cfg, how = tuple(sub.phase_two_config), "fixed by the config"
        elif f"{target:g}" in winners:
            cfg, how = winners[f"{target:g}"], "phase one's winner"
            if cfg is None:
                continue
        else:
            cfg, how = tuple(config.assumed_winners[name][i]), "winner assumed until phase one"
        said = io.StringIO()
        with contextlib.redirect_stdout(said):  # its notes go into the plan's lines instead
            plan = search_stage.phase_two_plan(sub, cfg)
        if plan is None:
            parts.append(Part(name, "phase two skipped", 0, 0, 0, 0, 0.0, 0.0,
                              said.getvalue().strip().splitlines()[-1]))
        if plan is None or plan["stage"] in seen:
            continue
        seen.add(plan["stage"])
        space = enumeration.ModelMaskSpace(plan["config"], max_weights=plan["max_weights"],
                                           first_k=plan["first_k"])
        part(plan["stage"], plan["config"], len(space) * len(plan["lrs"]) * len(names),
             f"{target:.1%}: {tuple(plan['config'])} ({how}), {plan['note']}, "
             f"{len(space):,} masks x {len(plan['lrs'])} lr x {len(names)} schedules")
    return parts


def _prune_parts(config, workdir: pathlib.Path, rates: dict, plans: dict | None = None
                 ) -> list[Part]:
    """The parts of the study's pruning stage (``prune_parts`` of its plan, made from its
    sub-config unless ``plans`` holds it)."""
    pp = (plans or {}).get("prune") or sub_config(config, "prune")
    return prune_parts(pp, workdir / "prune", rates)


def prune_parts(sub, workdir, rates: dict) -> list[Part]:
    """The parts of a pruning grid: one per init, its groups (method, width) together.

    A group's chunks are the ones its run cuts (``prune.chunking``); its time is its runs'
    (``prune.run_seconds``: compacted groups at their estimated shapes) plus compiling (one
    program, or one per compacted bucket shape).

    Args:
      sub: the pruning stage's ``prune.Plan`` (or the configs/prune.py ConfigDict, with its
        task fields, it is made of).
      workdir: the pruning workdir (may not exist yet).
      rates: the cost model.
    """
    pp = prune_stage.plan(sub)
    groups = pp.groups
    store = existing_store(pathlib.Path(workdir))
    per_chunk = prune_stage.chunking(pp, store, rates)
    chunks = [c for g in groups
              for c in runner.cut(g.stage, grids.chunks(len(g.rows), per_chunk[g.stage]))]
    mine = grids.task_share(chunks, pp.task_index, pp.num_tasks)
    done = {g.stage: (store.done(g.stage) if store else set()) for g in groups}
    by_init = {}
    # chunks trained at once (one per core on a CPU), each slowed by what they share
    # (``rates.side_by_side``, measured per shape): a part's seconds are its groups' / side
    init_of = {g.stage: g.init for g in groups}
    per_init = {init: sum(1 for c in mine if init_of[c.stage] == init
                          and c.name not in done[c.stage]) for init in set(init_of.values())}
    # this machine's side-by-side chunks; for another device's estimate, that device's (one
    # chunk at a time on an accelerator, one per core of the 2-core CPU the rates were fitted on)
    platform = rates_mod.platform(rates)
    here = platform == jax.default_backend()
    workers = (prune_stage.workers() if here else
               1 if platform != "cpu" else min(2, prune_stage.MAX_CPU_WORKERS))
    compact = prune_stage.compacted(pp, platform)
    side = {init: max(1, min(workers, n)) for init, n in per_init.items()}
    longest = {}
    for g in groups:
        my = [c for c in mine if c.stage == g.stage]
        left = [c for c in my if c.name not in done[g.stage]]
        todo, calls = sum(c.runs for c in left), len(left)
        epochs = prune_stage.epochs_per_run(pp, g)
        label = "random-init grid" if g.init == "torch" else f"{g.init} grid"
        p = by_init.setdefault(g.init, Part("prune", label, 0, 0, 0, 0, 0.0, 0.0))
        p.runs += len(g.rows)
        p.mine += sum(c.runs for c in my)
        p.todo += todo
        p.groups += 1
        p.model_epochs += todo * epochs
        if todo:
            programs = 1
            if compact and compaction.compacts(pp.spec(g)):
                programs += sum(
                    len(rates_mod.compacted_shapes(g.width, b, pp.epochs)[0])
                    for b, _, _ in prune_stage.compacted_rounds(pp, g) if b is not None)
            compile_s = rates["compile_s"] * programs
            p.seconds += (todo * prune_stage.run_seconds(pp, g, rates, max(calls, 1),
                                                         side[g.init]) + compile_s)
            # a chunk is one worker's (free workers take the next chunks of a long group,
            # ``runner.run``): the part lasts at least as long as its longest chunk alone
            biggest = max(c.runs for c in left)
            longest[g.init] = max(longest.get(g.init, 0.0), compile_s + biggest *
                                  prune_stage.run_seconds(pp, g, rates, 1, 1))
    for init, p in by_init.items():
        p.seconds = max(p.seconds / side[init], longest.get(init, 0.0))
        widths = sorted({g.width for g in groups if g.init == init})
        methods = sorted({g.method for g in groups if g.init == init})
        p.note = f"{len(methods)} methods x widths {widths}"
        if compact:
            p.note += " (fixed masks compacted; their shapes estimated from random masks)"
    order = ("torch",) + models.BENCH_INITS
    return [by_init[i] for i in sorted(by_init, key=lambda i: (i not in order, order.index(i)
                                                                if i in order else 0, i))]


def plan(config, workdir, rates: dict | None = None, plans: dict | None = None) -> list[Part]:
    """Returns the study's plan for this task, reading what the workdir already holds.

    Args:
      config: a configs/study.py ConfigDict (checked).
      workdir: the study workdir (may not exist yet).
      rates: the cost model (default: the assumed one for this device).
      plans: the frozen stage plans ``pipeline.check`` made (planned here when absent).

    Returns:
      one Part per search stage and per pruning grid, in the order they run.
    """
    workdir = pathlib.Path(workdir)
    rates = rates or ASSUMED["cpu" if jax.default_backend() == "cpu" else "gpu"]
    parts = []
    for name in study_config.stages(config):
        parts += (_prune_parts(config, workdir, rates, plans) if name == "prune"
                  else _search_parts(config, name, workdir, rates))
    return parts


def format_plan(parts: list[Part], other: list[Part] | None = None,
                other_name: str = "") -> str:
    """The plan as a text table with a total line; ``other``: the same plan's estimate on the
    other kind of device, as a column headed ``other_name``."""
    extra = bool(other) and len(other) == len(parts)
    head = (f"{'stage':<16} {'part':<22} {'runs':>9} {'this task':>10} {'to train':>9} "
            f"{'groups':>6} {'model-ep.':>10} {'est.':>9}"
            + (f" {other_name:>10}" if extra else "") + "  what")
    lines = [head, "-" * len(head)]
    for k, p in enumerate(parts):
        lines.append(f"{p.stage:<16} {p.part:<22} {p.runs:>9,} {p.mine:>10,} {p.todo:>9,} "
                     f"{p.groups:>6} {p.model_epochs:>10,.0f} "
                     f"{format_seconds(p.seconds):>9}"
                     + (f" {format_seconds(other[k].seconds):>10}" if extra else "")
                     + f"  {p.note}")
    lines.append(f"{'total':<16} {'':<22} {sum(p.runs for p in parts):>9,} "
                 f"{sum(p.mine for p in parts):>10,} {sum(p.todo for p in parts):>9,} "
                 f"{sum(p.groups for p in parts):>6} "
                 f"{sum(p.model_epochs for p in parts):>10,.0f} "
                 f"{format_seconds(sum(p.seconds for p in parts)):>9}"
                 + (f" {format_seconds(sum(p.seconds for p in other)):>10}" if extra else ""))
    return "\n".join(lines)


def print_plan(config, workdir, parts: list[Part], source: str,
               plans: dict | None = None) -> None:
    """Prints the study's header line, the plan and where its estimate came from.

    Args:
      config: a configs/study.py ConfigDict.
      workdir: the study workdir.
      parts: ``plan(config, workdir, rates)``.
      source: the line of ``cost_model`` that names the rates.
      plans: the frozen stage plans (``pipeline.check``).
    """
    task = f"task {config.task_index} of {config.num_tasks}"
    print(f"== study {config.preset}: {workdir} ({task}, {len(jax.local_devices())} "
          f"{jax.local_devices()[0].device_kind} device(s)) ==", flush=True)
    gpu_here = jax.default_backend() != "cpu"
    other = plan(config, workdir, ASSUMED["cpu" if gpu_here else "gpu"], plans)
    print(format_plan(parts, other, "2 CPU cores" if gpu_here else "one GPU"), flush=True)
    print(f"estimate: {source}; phase two's size is known once phase one has picked its "
          "configuration", flush=True)
    print(f"estimate {other_estimate(config, workdir, parts, plans, other)}", flush=True)
    if config.get("figures", False):
        print(f"then the figures: about {format_seconds(FIGURES_S)} (in the ETA; parts whose "
              "records did not change are skipped)", flush=True)


# ---------------------------------------------------------------------------------------
# Progress: one display over every stage.

class StudyProgress:
    """One progress line for the whole study: runs done / to do, runs/s, ETA, stage.

    The ETA weighs runs by the plan's estimated cost (a width-256 LTH run costs thousands
    of width-3 phase-two runs) and scales it by how fast the work done so far actually went.
    """

    def __init__(self, parts: list[Part], every_s: float = 5.0, printer=None,
                 figures_s: float = 0.0):
        """Starts the clock.

        Args:
          parts: the plan; a stage's k-th reported label is its k-th search part (phase one,
            then phase two per target), and the pruning parts are one (prune reports once).
            A reported count replaces the planned one (phase two is sized by phase one).
          every_s: seconds between lines (a stage's last chunk always prints).
          printer: line printer (default: print, flushed).
          figures_s: estimated seconds of the figure stage after training (in the ETA until
            ``figures_done``).
        """
        self.figures_s = float(figures_s)
        self.stages = {name: [] for name in dict.fromkeys(p.stage for p in parts)}
        for p in parts:
            rows = self.stages[p.stage]
            if p.stage == "prune" and rows:
                rows[0]["runs"] += p.todo
                rows[0]["secs"] += p.seconds
            else:
                rows.append({"runs": p.todo, "secs": p.seconds, "done": 0})
        self._labels = {name: [] for name in self.stages}
        self.every_s, self._last, self._t0 = every_s, 0.0, time.perf_counter()
        self.printer = printer or (lambda s: print(s, flush=True))

    @property
    def trained(self) -> int:
        """Runs trained since the start."""
        return sum(r["done"] for rows in self.stages.values() for r in rows)

    def factory(self, stage: str):
        """The ``label -> callback(done, total)`` factory handed to a stage's binary."""
        def make(label):
            labels = self._labels.setdefault(stage, [])
            rows = self.stages.setdefault(stage, [])
            if label not in labels:
                labels.append(label)
            while len(rows) < len(labels):   # a part the plan did not foresee
                rows.append({"runs": 0, "secs": 0.0, "done": 0})
            row = rows[labels.index(label)]

            def tick(done, total):
                if int(total) != row["runs"]:
                    row["secs"], row["runs"] = self._per_run(stage, row) * int(total), int(total)
                row["done"] = int(done)
                self._show(stage, label, done >= total)
            return tick
        return make

    def _per_run(self, stage: str, row: dict) -> float:
        if row["runs"]:
            return row["secs"] / row["runs"]
        rows = [r for r in self.stages[stage] if r["runs"]]
        return sum(r["secs"] for r in rows) / max(sum(r["runs"] for r in rows), 1)

    def finish(self, stage: str) -> None:
        """Marks ``stage`` over: its runs to do become what it trained."""
        for row in self.stages.setdefault(stage, []):
            row["secs"], row["runs"] = self._per_run(stage, row) * row["done"], row["done"]

    def figures_done(self) -> None:
        """The figure stage is over: the ETA no longer counts it."""
        self.figures_s = 0.0

    def eta(self) -> float:
        """Seconds left: planned training cost left, scaled by actual over planned cost so far,
        plus the figure stage's estimate."""
        rows = [r for rs in self.stages.values() for r in rs]
        cost = [(r["secs"] / r["runs"] if r["runs"] else 0.0, r) for r in rows]
        done = sum(c * r["done"] for c, r in cost)
        left = sum(c * (r["runs"] - r["done"]) for c, r in cost)
        elapsed = time.perf_counter() - self._t0
        scale = min(max(elapsed / done, 0.25), 4.0) if done > 0 else 1.0
        return left * scale + self.figures_s

    def _show(self, stage: str, label: str, force: bool) -> None:
        now = time.perf_counter()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        total = sum(r["runs"] for rs in self.stages.values() for r in rs)
        step = list(self.stages).index(stage) + 1
        self.printer(populations.progress_line(
            f"study {step}/{len(self.stages)} {stage}: {label}", self.trained, total,
            now - self._t0, self.eta()))
