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
    datasets,
    enumeration,
    grids,
    masking,
    models,
    populations,
    recording,
    search,
    training,
)
from spiralprune.configs import study as study_config
from spiralprune.study import prune as prune_stage
from spiralprune.study import search as search_stage

_STEPS = 390   # steps per epoch of the study's recipe, the unit of the assumed rates
# Assumed cost of one model-epoch (390 steps of batch 128 plus an evaluation): a + b * params
# seconds on the vmap engine, divided by ``lanes`` where a search stage's shape trains on the
# lanes engine; a latency floor of step_s per step of each population call; compile_s per
# compiled group.
# cpu: fitted to ~40 width-16 and ~100 width-3/7 model-epochs/s on 2 cores (configs/search.py).
#   lanes: first measured end to end at 2.2x (BENCH-95 phase two, 2,496 (3,2,2) runs), since
#   re-tuned to 4.6x and more (BENCHMARKS.md); 4.0 puts the Quick start's phase one at 56 s
#   for 59 s measured, its phase two at 2 min 07 s for 80 s (compiling included).
# gpu: fitted to the device check on one H200 (BENCHMARKS.md): vmap 38,500 (3,3,3) and 27,500
#   width-16 model-epochs/s at P = 16,384, 5,700-6,600 at width 64, 530-560 at width 256; lanes
#   2.2-3.1x vmap at the compacted shapes (2.75 at (3,3,3), 2.25 at (7,3,3): 2.4 between);
#   46 us a step for a pruning group of 207 width-16 runs; compiling 3.5-8 s a group at widths
#   3-64 and ~16 s at width 256. With these the plan gives the (3,3,3) phase two 1 min 34 s and
#   the (7,3,3) subset 1 min 54 s with compiling, measured at 75 s and 147 s.
ASSUMED = {"cpu": dict(a=3e-3, b=3.5e-5, step_s=0.0, compile_s=5.0, lanes=4.0),
           "gpu": dict(a=2.6e-5, b=1.4e-8, step_s=5e-5, compile_s=8.0, lanes=2.4)}


# The figure stage of a study drawn from scratch on 2 CPU cores (the Quick start's: 8 s, plus
# compiling the no-path Monte Carlo): in the ETA until the figures are drawn. Parts whose records
# did not change are cached and take well under a second.
FIGURES_S = 30.0


def format_seconds(seconds: float) -> str:
    """A duration for people: "42 s", "4 min 12 s", "3 h 05 min", "11.6 days" ("?" if unknown).

    Rounded to the second below an hour, to the minute below a day, to a tenth of a day above.
    """
    if not np.isfinite(seconds):
        return "?"
    seconds = max(float(seconds), 0.0)
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    m, s = divmod(int(round(seconds)), 60)
    if m == 0:
        return f"{s} s"
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h} h {m:02d} min" if h < 24 else "1.0 days"


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

    Args:
      config: a configs/study.py ConfigDict; its ``estimate`` picks assumed or measured rates.
      measure: whether measuring is allowed (only a dry run measures; a run plans its ETA
        with the assumed rates rather than spend time on it).

    Returns:
      (rates with ASSUMED's fields, a line naming the rates and the width-16 throughput).
    """
    platform = jax.default_backend()
    base = dict(ASSUMED["cpu" if platform == "cpu" else "gpu"])
    kind = jax.local_devices()[0].device_kind
    if config.get("estimate", "measured") == "assumed" or not measure:
        rates, how = base, f"assumed rates for {platform} ({kind})"
    else:
        t0, busy = time.perf_counter(), loaded()
        try:
            rates = measure_rates(base)
            how = f"rates measured on {kind} in {time.perf_counter() - t0:.0f} s"
            if busy:
                how += f" while the machine was loaded ({busy}: the estimate errs long)"
        except Exception as e:  # noqa: BLE001 - an estimate must never stop a dry run
            rates = base
            how = (f"assumed rates for {platform} ({kind}; measuring failed: "
                   f"{type(e).__name__})")
    w16 = 1 / (rates["a"] + models.num_params(16) * rates["b"])
    return rates, f"{how}: {w16:,.0f} width-16 model-epochs/s, {rates['compile_s']:.1f} s a group"


def loaded() -> str:
    """"load average L on C cores" when other work keeps over half the CPU cores busy (the
    1-minute load average before measuring), else "" (also where the OS cannot say)."""
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (OSError, AttributeError):
        return ""
    return f"load average {load:.1f} on {cores} cores" if load > 0.5 * cores else ""


def other_estimate(config, workdir, parts) -> str:
    """The same plan's time on the other kind of device, from its fitted rates (``ASSUMED``):
    one GPU on a CPU machine, 2 CPU cores on a GPU one."""
    gpu_here = jax.default_backend() != "cpu"
    other = plan(config, workdir, ASSUMED["cpu" if gpu_here else "gpu"])
    what = ("2 CPU cores (the rates fitted on 2 cores)" if gpu_here else
            "one GPU (the rates fitted to the device check on one H200, BENCHMARKS.md)")
    return (f"on {what}: {format_seconds(sum(p.seconds for p in other))} for the same "
            f"{sum(p.todo for p in parts):,} runs")


def measure_rates(base: dict, widths=(16,), runs_per_device: int = 256,
                  steps: int = 20) -> dict:
    """Measures the cost model on this device: a tiny calibration population, a few seconds.

    Per width, one population of ``runs_per_device`` models trains one epoch of ``steps``
    minibatches (a slice of the data) twice: the first call compiles, the second is timed, and
    the per-step cost is scaled to the recipe's 390-step epoch. One width (the default, one
    compile) scales ``base``'s a and b by the measured over the assumed cost at that width; two
    widths fit ``a + b * params`` through both.

    Args:
      base: the assumed model (its latency floor is kept).
      widths: one width to scale ``base`` at, or two to fit ``a + b * params`` through.
      runs_per_device: the population size per local device (small: on a GPU this
        underestimates large-population throughput, so the estimate errs long).
      steps: minibatches of the calibration epoch (390 is a full epoch).

    Returns:
      ``base`` with a, b and compile_s measured.
    """
    x, y = datasets.cubist_spiral()
    n = min(len(x), max(1, int(steps)) * training.Spec().batch_size)
    data, scale = (x[:n], y[:n]), _STEPS / max(1, n // training.Spec().batch_size)
    p = runs_per_device * len(jax.local_devices())
    points = []
    for w in widths:
        spec = training.Spec(widths=(w,) * 3, epochs=1)
        like = models.init(jax.random.key(0), w)
        variants = populations.make_variants(masks=masking.ones_like(like), lr=np.full(p, 0.1),
                                             schedule=["constant"] * p, seed=np.arange(p))
        t0 = time.perf_counter()
        populations.run(variants, data, spec=spec)
        t1 = time.perf_counter()
        populations.run(variants, data, spec=spec)
        t2 = time.perf_counter()
        points.append((models.num_params(w), (t2 - t1) * scale / p, (t1 - t0) - (t2 - t1)))
    compile_s = max(sum(k for _, _, k in points) / len(points), 0.0)
    if len(points) == 1:
        (n0, c0, _), = points
        factor = c0 / (base["a"] + base["b"] * n0)
        return dict(base, a=base["a"] * factor, b=base["b"] * factor, compile_s=compile_s)
    (n0, c0, _), (n1, c1, _) = points[:2]
    b = max((c1 - c0) / (n1 - n0), 0.0)
    return dict(base, a=max(c0 - b * n0, 1e-7), b=b, compile_s=compile_s)


def _cost(rates: dict, widths, runs: int, epochs: float, steps: int, calls: int,
          dense: bool = False) -> float:
    """Seconds to train ``runs`` models of ``widths`` for ``epochs`` in ``calls`` calls.

    ``dense``: fixed masks (a search stage), which the lanes engine trains when the shape is
    small enough (``populations.engine``), ``rates["lanes"]`` times faster.
    """
    per = (rates["a"] + rates["b"] * models.num_params(widths)) * steps / _STEPS
    if dense and populations.engine(training.Spec(widths=widths, epochs=1)) == "lanes":
        per /= rates.get("lanes", 1.0)
    return max(runs * epochs * per, calls * epochs * steps * rates["step_s"])


def _share(total: int, chunk: int, task: int, tasks: int, done: set) -> tuple[int, int, int]:
    """(this task's runs, its runs not recorded, its chunks) of a grid of near-equal chunks."""
    # The chunks of spiralprune.search's stages: at most ``chunk`` runs, near-equal in size.
    ranges = grids.near_equal_chunks(total, chunk)
    mine = grids.task_share(list(enumerate(ranges)), task, tasks)
    return (sum(b - a for _, (a, b) in mine),
            sum(b - a for i, (a, b) in mine if f"{i:06d}" not in done), len(mine))


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
        done = store.done(stage) if store else set()
        mine, todo, calls = _share(runs, chunk, task, tasks, done)
        shapes = [widths] if share is None else widths
        share = [1.0] if share is None else share
        secs = sum(_cost(rates, w, todo * f, epochs, _STEPS, calls, dense=True)
                   for w, f in zip(shapes, share))
        secs += rates["compile_s"] * len(shapes) if todo else 0.0
        parts.append(Part(name, stage, runs, mine, todo, len(shapes), todo * epochs, secs, note))

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


def _prune_parts(config, workdir: pathlib.Path, rates: dict) -> list[Part]:
    """The parts of the pruning stage: one per init, its groups (method, width) together."""
    sub = sub_config(config, "prune")
    groups = prune_stage.plan(sub)
    store = existing_store(workdir / "prune")
    work = [(g, i, a, b) for g in groups
            for i, (a, b) in enumerate(grids.chunks(len(g.rows), int(sub.chunk_size)))]
    mine = grids.task_share(work, int(sub.task_index), int(sub.num_tasks))
    done = {g.stage: (store.done(g.stage) if store else set()) for g in groups}
    points = int(sub.num_points) or len(datasets.cubist_spiral()[1])
    steps = points // int(sub.batch_size)
    by_init = {}
    for g in groups:
        my = [(i, a, b) for grp, i, a, b in mine if grp is g]
        todo = sum(b - a for i, a, b in my if f"{i:06d}" not in done[g.stage])
        calls = sum(1 for i, _, _ in my if f"{i:06d}" not in done[g.stage])
        epochs = prune_stage.epochs_per_run(sub, g)
        label = "random-init grid" if g.init == "torch" else f"{g.init} grid"
        p = by_init.setdefault(g.init, Part("prune", label, 0, 0, 0, 0, 0.0, 0.0))
        p.runs += len(g.rows)
        p.mine += sum(b - a for _, a, b in my)
        p.todo += todo
        p.groups += 1
        p.model_epochs += todo * epochs
        p.seconds += _cost(rates, g.width, todo, epochs, steps, calls) + (
            rates["compile_s"] if todo else 0.0)
    side_by_side = prune_stage.workers()   # groups trained at once (one per core on a CPU)
    for init, p in by_init.items():
        p.seconds /= max(1, min(side_by_side, p.groups))
        widths = sorted({g.width for g in groups if g.init == init})
        methods = sorted({g.method for g in groups if g.init == init})
        p.note = f"{len(methods)} methods x widths {widths}"
    order = ("torch",) + models.BENCH_INITS
    return [by_init[i] for i in sorted(by_init, key=lambda i: (i not in order, order.index(i)
                                                                if i in order else 0, i))]


def plan(config, workdir, rates: dict | None = None) -> list[Part]:
    """Returns the study's plan for this task, reading what the workdir already holds.

    Args:
      config: a configs/study.py ConfigDict (checked).
      workdir: the study workdir (may not exist yet).
      rates: the cost model (default: the assumed one for this device).

    Returns:
      one Part per search stage and per pruning grid, in the order they run.
    """
    workdir = pathlib.Path(workdir)
    rates = rates or ASSUMED["cpu" if jax.default_backend() == "cpu" else "gpu"]
    parts = []
    for name in study_config.stages(config):
        parts += (_prune_parts(config, workdir, rates) if name == "prune"
                  else _search_parts(config, name, workdir, rates))
    return parts


def format_plan(parts: list[Part]) -> str:
    """The plan as a text table with a total line."""
    head = (f"{'stage':<16} {'part':<22} {'runs':>9} {'this task':>10} {'to train':>9} "
            f"{'groups':>6} {'model-ep.':>10} {'est.':>9}  what")
    lines = [head, "-" * len(head)]
    for p in parts:
        lines.append(f"{p.stage:<16} {p.part:<22} {p.runs:>9,} {p.mine:>10,} {p.todo:>9,} "
                     f"{p.groups:>6} {p.model_epochs:>10,.0f} "
                     f"{format_seconds(p.seconds):>9}  {p.note}")
    lines.append(f"{'total':<16} {'':<22} {sum(p.runs for p in parts):>9,} "
                 f"{sum(p.mine for p in parts):>10,} {sum(p.todo for p in parts):>9,} "
                 f"{sum(p.groups for p in parts):>6} "
                 f"{sum(p.model_epochs for p in parts):>10,.0f} "
                 f"{format_seconds(sum(p.seconds for p in parts)):>9}")
    return "\n".join(lines)


def print_plan(config, workdir, parts: list[Part], source: str) -> None:
    """Prints the study's header line, the plan and where its estimate came from.

    Args:
      config: a configs/study.py ConfigDict.
      workdir: the study workdir.
      parts: ``plan(config, workdir, rates)``.
      source: the line of ``cost_model`` that names the rates.
    """
    task = f"task {config.task_index} of {config.num_tasks}"
    print(f"== study {config.preset}: {workdir} ({task}, {len(jax.local_devices())} "
          f"{jax.local_devices()[0].device_kind} device(s)) ==", flush=True)
    print(format_plan(parts), flush=True)
    print(f"estimate: {source}; phase two's size is known once phase one has picked its "
          "configuration", flush=True)
    print(f"estimate {other_estimate(config, workdir, parts)}", flush=True)
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
        done = self.trained
        total = sum(r["runs"] for rs in self.stages.values() for r in rs)
        rate = done / max(now - self._t0, 1e-9)
        step = list(self.stages).index(stage) + 1
        self.printer(f"[study {step}/{len(self.stages)} {stage}: {label}] {done:,}/{total:,} "
                     f"runs  {rate:,.1f} runs/s  ETA {format_seconds(self.eta())}")
