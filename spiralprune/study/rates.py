"""Training rates measured on this machine, per width and engine: the plan's cost model.

One model-epoch (390 steps of batch 128 plus an evaluation) costs very different time at
different widths, on different engines and on different machines, and not in proportion to
the parameter count (a width-256 model has 2,900x the weights of a width-3 one and trains
~40x slower on 2 CPU cores). So the plan does not scale one number: ``measure`` trains a
few short calibration cells, one population per width of ``WIDTHS`` on the vmap engine and
a few small search shapes on the lanes engine (20 steps each, after a compiling call), and
``model_epoch_s`` interpolates the seconds per model-epoch between the measured cells in log
parameters and log seconds (flat beyond the ends). The table is cached per machine
(``cache_path``: device kind, core count, jax version) so a dry run measures once (~30 s on
2 CPU cores) and then answers at once; ``load(fresh=True)`` measures again.

Groups trained side by side (``study.prune.workers``: one thread per core on a CPU) share the
cores a single population already uses: at small widths two groups go nearly twice as fast
as one, at width 64 hardly faster. ``measure`` times each vmap cell again with ``workers``
copies at once and keeps the speedup (``side_by_side``); the plan divides by it per shape.

Moving masks (GMP, RigL, LTH's rounds) train full width on the vmap engine at the measured
vmap rate; a hook's pruning steps are a few in thousands of steps, inside the estimate's
tolerance. The rates are those of an idle machine only if the machine was idle when measured:
``measure`` records the load average it saw.
"""

import concurrent.futures
import datetime
import functools
import json
import os
import pathlib
import re
import time

import jax
import numpy as np

from spiralprune import compaction, datasets, masking, models, populations, training

STEPS = 390            # steps per epoch of the study's recipe: the unit of the rates
# Assumed cost of one model-epoch (390 steps of batch 128 plus an evaluation): a + b * params
# seconds on the vmap engine, divided by ``lanes`` on the lanes engine; a latency floor of
# step_s per step of each population call; compile_s per compiled group. Used where nothing
# was measured (``--config.estimate=assumed``, a run's ETA before its dry run ever measured
# this machine) and for the other kind of device's estimate.
# cpu: fitted to ~40 width-16 and ~100 width-3/7 model-epochs/s on 2 cores (configs/search.py);
#   lanes 4.0 puts the Quick start's phase one at 56 s for 59 s measured. Linear in params, it
#   is pessimistic for wide models (0.2 width-256 model-epochs/s where 0.6-1.3 are measured):
#   a measured table replaces it.
# gpu: fitted to the device check on one H200 (BENCHMARKS.md): vmap 38,500 (3,3,3) and 27,500
#   width-16 model-epochs/s at P = 16,384, 5,700-6,600 at width 64, 530-560 at width 256; lanes
#   2.2-3.1x vmap at the compacted shapes (2.4 between); 46 us a step for a pruning group of
#   207 width-16 runs; compiling 3.5-8 s a group at widths 3-64 and ~16 s at width 256. With
#   these the plan gives the (3,3,3) phase two 1 min 34 s and the (7,3,3) subset 1 min 54 s
#   with compiling, measured at 75 s and 147 s.
ASSUMED = {"cpu": dict(a=3e-3, b=3.5e-5, step_s=0.0, compile_s=5.0, lanes=4.0, platform="cpu"),
           "gpu": dict(a=2.6e-5, b=1.4e-8, step_s=5e-5, compile_s=8.0, lanes=2.4,
                       platform="gpu")}
WIDTHS = (3, 8, 16, 32, 64, 128, 256)   # vmap cells, (w, w, w)
LANES_SHAPES = ((3, 3, 3), (7, 3, 3))   # lanes cells: the search's compacted shapes
CALIBRATION_STEPS = 20                  # minibatches per timed cell
FORMAT = "spiralprune-rates/3"   # 2: side_by_side measured; 3: vmap cells at the call size trained


def cache_dir() -> pathlib.Path:
    """Where measured tables are kept: ``$SPIRALPRUNE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/spiralprune`` (``~/.cache/spiralprune``)."""
    env = os.environ.get("SPIRALPRUNE_CACHE_DIR", "").strip()
    if env:
        return pathlib.Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return pathlib.Path(xdg or pathlib.Path.home() / ".cache") / "spiralprune"


def machine() -> dict:
    """What the rates depend on: platform, device kind and count, usable cores, jax version."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    devices = jax.local_devices()
    return {"platform": jax.default_backend(), "device_kind": devices[0].device_kind,
            "devices": len(devices), "cores": int(cores or 1), "jax": jax.__version__}


def cache_path(m: dict | None = None) -> pathlib.Path:
    """The cache file of machine ``m`` (default: this one)."""
    m = m or machine()
    key = "-".join(str(m[k]) for k in ("platform", "device_kind", "devices", "cores", "jax"))
    return cache_dir() / f"rates-{re.sub(r'[^A-Za-z0-9_.]+', '_', key)}.json"


def _cell(widths, runs: int, steps: int, engine: str, workers: int = 1
          ) -> tuple[float, float, float]:
    """(seconds per model-epoch, compile seconds, side-by-side speedup) of one population of
    ``runs`` dense models.

    The same population is timed warm at 1 and at 2 epochs of ``steps`` minibatches: the
    difference is one epoch's steps alone, without the init, the final evaluation and the
    host transfers a run pays once (scaled up to 390 steps those fixed costs would count
    19.5 times: the plan then overestimated a lanes search by ~1.7x). With ``workers`` > 1 the
    warm 2-epoch call is then made by ``workers`` threads at once, as the pruning stage trains
    groups: the speedup is ``workers`` x one call's time over their wall time, in [1, workers]
    (1.0 when ``workers`` is 1)."""
    x, y = datasets.cubist_spiral()
    batch = training.Spec().batch_size
    n = min(len(x), max(1, int(steps)) * batch)
    scale = STEPS / max(1, n // batch)
    like = models.init(jax.random.key(0), tuple(widths))
    variants = populations.make_variants(masks=masking.ones_like(like), lr=np.full(runs, 0.1),
                                         schedule=["constant"] * runs, seed=np.arange(runs))
    warm, cold = {}, {}
    for epochs in (1, 2):
        spec = training.Spec(widths=tuple(widths), epochs=epochs, engine=engine)
        t0 = time.perf_counter()
        populations.run(variants, (x[:n], y[:n]), spec=spec)
        t1 = time.perf_counter()
        populations.run(variants, (x[:n], y[:n]), spec=spec)
        cold[epochs], warm[epochs] = t1 - t0, time.perf_counter() - t1
    epoch_s = warm[2] - warm[1]
    if epoch_s <= 0.05 * warm[1]:   # noise swamped the difference: the whole warm call
        epoch_s = warm[1]
    speedup = 1.0
    if workers > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            t0 = time.perf_counter()
            list(pool.map(lambda _: populations.run(variants, (x[:n], y[:n]), spec=spec),
                          range(workers)))
            both = time.perf_counter() - t0
        speedup = float(np.clip(workers * warm[2] / max(both, 1e-9), 1.0, workers))
    return epoch_s * scale / runs, max(cold[1] - warm[1], 0.0), speedup


def _runs(widths, platform: str, engine: str = "vmap") -> int:
    """Calibration population size: on a CPU's vmap engine the runs of one compiled call
    (``populations.cpu_call_runs``: the call size every population of the shape trains at,
    whose rate a run's cost is; at most 256, where small models' rates flatten); on the lanes
    engine the population of a search chunk (lanes gains with the population: at (3,3,3) it
    trains 2,048 runs 1.6x faster a run than 256 on 2 CPU cores)."""
    if engine == "lanes":
        return 2048 if platform == "cpu" else 16384
    if platform != "cpu":
        return 4096
    return min(256, populations.cpu_call_runs(widths))


def measure(widths=None, lanes_shapes=None, steps: int | None = None,
            workers: int | None = None) -> dict:
    """Measures this machine's rates (a few seconds a cell; about a minute on 2 CPU cores).

    Args:
      widths: vmap cells, one population at (w, w, w) each (default ``WIDTHS``).
      lanes_shapes: lanes cells (only shapes the lanes engine can run are measured; default
        ``LANES_SHAPES``).
      steps: minibatches per timed epoch, scaled to the recipe's 390 (default
        ``CALIBRATION_STEPS``).
      workers: groups the pruning stage trains at once (default ``study.prune.workers()``).

    Returns:
      the table: machine, date, load average seen, and per engine a list of
      [params, seconds per model-epoch]; ``compile_s`` the mean compile time of a cell;
      ``side_by_side``: workers and a list of [params, speedup of that many vmap
      populations at once over one].
    """
    widths = WIDTHS if widths is None else widths
    lanes_shapes = LANES_SHAPES if lanes_shapes is None else lanes_shapes
    steps = CALIBRATION_STEPS if steps is None else steps
    if workers is None:   # the stage owns how many groups train at once (it imports us)
        from spiralprune.study import prune

        workers = prune.workers()
    m = machine()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    table = dict(format=FORMAT, machine=m, load_average=round(float(load), 2),
                 measured=datetime.datetime.now(datetime.timezone.utc).isoformat(
                     timespec="seconds"), vmap=[], lanes=[],
                 side_by_side={"workers": int(workers), "speedup": []})
    compiles = []
    cells = [("vmap", (int(w),) * 3) for w in widths] + [("lanes", tuple(s))
                                                       for s in lanes_shapes]
    for eng, shape in cells:
        spec = training.Spec(widths=shape, epochs=1)
        if eng not in populations.engines_able(spec):
            continue
        sec, comp, fast = _cell(shape, _runs(shape, m["platform"], eng), steps, eng,
                                workers if eng == "vmap" else 1)
        table[eng].append([models.num_params(shape), sec])
        if eng == "vmap" and workers > 1:
            table["side_by_side"]["speedup"].append([models.num_params(shape), fast])
        compiles.append(comp)
    table["compile_s"] = float(np.mean(compiles)) if compiles else 0.0
    return table


def load(fresh: bool = False, path: pathlib.Path | None = None) -> tuple[dict, str]:
    """This machine's table from its cache, measuring (and caching) it when absent or ``fresh``.

    Returns:
      (table, a line saying where it came from).
    """
    path = path or cache_path()
    table = None if fresh else cached(path)
    if table:   # else absent, unreadable or stale: measure again
        return table, f"rates measured on this machine {table['measured'][:10]} ({path})"
    t0 = time.perf_counter()
    table = measure()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1))
        os.replace(tmp, path)
        where = f"cached in {path}"
    except OSError as e:
        where = f"not cached: {e.strerror or e}"
    return table, f"rates measured on this machine in {time.perf_counter() - t0:.0f} s ({where})"


def assumed(platform: str | None = None) -> dict:
    """The assumed rates of ``platform`` (default this machine's): "cpu", else the GPU's."""
    platform = platform or jax.default_backend()
    return dict(ASSUMED["cpu" if platform == "cpu" else "gpu"])


def cached(path: pathlib.Path | None = None) -> dict | None:
    """This machine's cached table if there is a valid one (this machine, this format), else
    None; never measures."""
    path = path or cache_path()
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(table, dict) and table.get("format") == FORMAT and \
        table.get("machine") == machine()
    return table if ok else None


def current() -> dict:
    """This machine's rates without measuring: its cached table if there is one (a dry run
    measures it), else the assumed rates."""
    table = cached()
    return with_table(assumed(), table) if table else assumed()


def platform(rates: dict) -> str:
    """The platform a cost model describes: "cpu", or an accelerator's ("gpu", ...)."""
    return str(rates.get("platform") or (rates.get("table") or {}).get("machine", {}).get(
        "platform") or jax.default_backend())


def with_table(base: dict, table: dict) -> dict:
    """``base`` (its latency floor kept) with the measured ``table`` and its compile time."""
    return dict(base, table=table, compile_s=float(table["compile_s"]))


def model_epoch_s(rates: dict, widths, engine: str = "vmap") -> float:
    """Seconds per model-epoch of shape ``widths`` on ``engine``.

    With a measured table (``rates["table"]``): log-log interpolation between the measured
    cells of ``engine`` by parameter count, flat beyond the first and last cell (an engine
    with no cell uses vmap's divided by the assumed lanes factor). Else the assumed
    ``a + b * params``, divided by ``rates["lanes"]`` on the lanes engine.
    """
    widths = (int(widths),) * 3 if np.isscalar(widths) else tuple(int(w) for w in widths)
    n = models.num_params(widths)
    table = rates.get("table")
    if table:
        cells = table.get(engine) or table["vmap"]
        pts = np.asarray(sorted(cells), float)
        per = float(np.exp(np.interp(np.log(n), np.log(pts[:, 0]), np.log(pts[:, 1]))))
        return per / (rates.get("lanes", 1.0) if engine == "lanes" and not table.get(engine)
                      else 1.0)
    per = rates["a"] + rates["b"] * n
    return per / (rates.get("lanes", 1.0) if engine == "lanes" else 1.0)


def side_by_side(rates: dict, widths, workers: int) -> float:
    """How much faster ``workers`` populations of ``widths`` train at once than one after
    another, in [1, workers].

    With a measured table of the same ``workers``: log-parameter interpolation between its
    cells (flat beyond the ends). Else ``workers`` (the old assumption: one core each).
    """
    workers = max(1, int(workers))
    table = (rates.get("table") or {}).get("side_by_side") or {}
    cells = table.get("speedup") or []
    if workers == 1 or int(table.get("workers", 0)) != workers or not cells:
        return float(workers)
    widths = (int(widths),) * 3 if np.isscalar(widths) else tuple(int(w) for w in widths)
    pts = np.asarray(sorted(cells), float)
    fast = float(np.interp(np.log(models.num_params(widths)), np.log(pts[:, 0]), pts[:, 1]))
    return float(np.clip(fast, 1.0, workers))


def run_cost(rates: dict, widths, runs: float, epochs: float, steps: int, calls: int,
             engine: str = "vmap", workers: int = 1) -> float:
    """Seconds to train ``runs`` models of ``widths`` for ``epochs`` of ``steps`` in ``calls``
    population calls on ``engine`` (compiling not included), while ``workers`` groups train
    side by side (each slowed by ``workers / side_by_side``: divide the sum by ``workers``)."""
    per = model_epoch_s(rates, widths, engine) * steps / STEPS
    per *= workers / side_by_side(rates, widths, workers)
    return max(runs * epochs * per, calls * epochs * steps * rates.get("step_s", 0.0))


def engine_of(widths, dense: bool) -> str:
    """The engine ``populations.run`` picks for fixed masks of ``widths`` (``dense``), else
    vmap (a pruner's own training)."""
    if not dense:
        return "vmap"
    return populations.engine(training.Spec(widths=tuple(int(w) for w in widths), epochs=1))


@functools.lru_cache(maxsize=64)
def compacted_shapes(width: int, budgets: tuple, epochs: int) -> tuple[tuple, tuple]:
    """The shapes a compacted at-init group of ``width`` trains at, estimated, and the share
    of its runs at each.

    Estimated from the masks of the ``random`` pruner (one run per budget, drawn as
    ``compaction.run`` draws them), bucketed by ``compaction.buckets``. Random masks spread
    their weights over more units than a saliency pruner's do (at widths 16-256 and the
    study's budgets SNIP, GraSP and SynFlow compact to 2-10x fewer parameters), so the
    estimate errs long for those.
    """
    budgets = tuple(int(b) for b in budgets)
    spec = training.Spec(widths=(int(width),) * 3, epochs=int(epochs), method="random")
    like = models.init(jax.random.key(0), int(width))
    p = len(budgets)
    variants = populations.make_variants(masks=masking.ones_like(like), lr=np.full(p, 0.1),
                                         schedule=["constant"] * p, seed=np.arange(p),
                                         budget=np.asarray(budgets))
    x, y = datasets.cubist_spiral()
    _, masks = compaction.starts(variants, (x[:128], y[:128]), spec=spec)
    shapes, which = compaction.buckets(compaction.active_widths(masks), int(epochs))
    share = np.bincount(which, minlength=len(shapes)) / p
    return (tuple(tuple(int(w) for w in s) for s in shapes), tuple(float(f) for f in share))
