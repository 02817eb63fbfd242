"""Population training benchmarks: model-epochs per second against shape, engine and P.

The presets (``spiralprune.configs.benchmark``: quick, engines, compaction, plan, ...) say
what each cell measures; ``run(config)`` measures them, prints the table and appends it with
its provenance (command, device, CPU, load, date, jax) to ``config.output`` (BENCHMARKS.md).
The binary ``experiments/benchmark.py`` is flags plus ``run``.
"""

import datetime
import os
import re
import sys
import tempfile
import time

import jax
import numpy as np

from spiralprune import compaction, datasets, masking, models, populations, training
from spiralprune.study import estimates


def command_line() -> str:
    """This run's command for BENCHMARKS.md, paths of this machine written as DIR (the file
    ships; a machine's paths mean nothing elsewhere)."""
    return re.sub(r"(--config\.(root|output)=)/\S+", r"\1DIR", " ".join(sys.argv))


def flops_per_model_epoch(widths, n: int = datasets.NUM_POINTS, batch: int = 128) -> float:
    """Dense training flops per model-epoch: ~6 flops per weight per sample (fwd + bwd)."""
    return 6.0 * models.num_weights(widths) * (n // batch) * batch


def device_name() -> str:
    """A short description of the default device (kind and count)."""
    devs = jax.local_devices()
    return f"{len(devs)} x {devs[0].device_kind} ({devs[0].platform})"


def _variants(widths, p: int, sparsity: float, seed: int):
    rng = np.random.default_rng(seed)
    kernels = [rng.random((p,) + s) >= sparsity for s in models.layer_shapes(widths)]
    return populations.make_variants(masks=masking.from_kernels(kernels), lr=np.full(p, 0.1),
                                     schedule=np.arange(p) % 3, seed=np.arange(p) + seed)


def _timed(v, data, spec) -> tuple[float, float]:
    """(seconds of a warm call, seconds of the first call) of ``populations.run``."""
    t0 = time.perf_counter()
    populations.run(v, data, spec=spec)          # compile + warm up at this exact shape
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    populations.run(v, data, spec=spec)
    return time.perf_counter() - t0, first


def measure(widths, p: int, config, data, seed: int | None = None,
            engine: str = "vmap") -> dict:
    """Training and fixed seconds of a population of P models of one shape on one engine.

    Two runs of the same population, ``epochs`` and ``2 * epochs`` long: their difference is
    the training time of ``epochs`` epochs alone (no compilation, no final evaluation, no
    transfers); the rest of the short run is the fixed cost (evaluation on all 49,982 points,
    init, host-device copies), paid once per run whatever the number of epochs.

    Returns:
      dict of epoch_s (seconds per epoch for all P models), fixed_s (fixed seconds for all P),
      run_s (the warm ``epochs``-epoch run, evaluation included) and compile_s (the first
      call's excess over a warm one, at ``epochs`` epochs). Without ``config.epoch_split``
      only the short run is made (one compilation) and epoch_s, fixed_s are NaN.
    """
    v = _variants(widths, p, config.sparsity, config.seed if seed is None else seed)
    times = []
    for epochs in (config.epochs, 2 * config.epochs)[:2 if config.epoch_split else 1]:
        spec = training.Spec(widths=widths, epochs=epochs, precision=config.precision,
                             engine=engine)
        times.append(_timed(v, data, spec))
    short, first = times[0]
    per_epoch = (max(times[1][0] - short, 1e-9) / config.epochs if config.epoch_split
                 else float("nan"))
    return dict(epoch_s=per_epoch, fixed_s=max(short - per_epoch * config.epochs, 0.0),
                run_s=short, compile_s=max(first - short, 0.0))


def measure_loop(widths, config, data) -> dict:
    """``measure`` for models trained one after another (compiled, P = 1), per model."""
    results = [measure(widths, 1, config, data, seed=config.seed + i)
               for i in range(config.loop_models)]
    return {k: float(np.mean([r[k] for r in results])) for k in results[0]}


def _timed_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_compaction(width: int, config, data) -> dict:
    """One at-init pruning group at ``width``, compacted against full width, evaluation included.

    The group is the pruning grid's (``config.method`` at every budget of ``config.budgets``
    below N_w, one lr, one schedule, the torch init). Full width is timed at ``full_epochs``
    and ``2 * full_epochs`` epochs (warm calls after a first one), so its per-epoch and fixed
    seconds project a ``config.epochs``-epoch run without training one at width 256 for
    minutes; compacted training (``compaction.run``: full-width init and masks, buckets,
    scatter back) is timed at ``config.epochs`` epochs, cold (its first call: compiling the
    masks step and every bucket's program) and warm. Warm times are the fastest of
    ``config.repeats`` (interleaved for full width): a loaded machine only slows a run.

    Returns:
      dict of runs, buckets, full_epoch_s, full_fixed_s, full_s (projected), compact_cold_s,
      compact_s (warm) and the speedups warm (full_s / compact_s) and cold
      (full_s / compact_cold_s).
    """
    budgets = [b for b in config.budgets if b < models.num_weights(width)]
    p = len(budgets)
    like = models.init(jax.random.key(0), width)
    v = populations.make_variants(masks=masking.ones_like(like), lr=np.full(p, config.lr),
                                  schedule=[config.schedule] * p,
                                  seed=np.arange(p) + config.seed, budget=budgets)

    def spec(epochs):
        return training.Spec(widths=(width,) * 3, epochs=epochs, method=config.method,
                             milestones=tuple(config.milestones),
                             cosine_t_max=config.cosine_t_max, precision=config.precision)
    lengths = (config.full_epochs, 2 * config.full_epochs)
    for epochs in lengths:
        populations.run(v, data, spec=spec(epochs))   # compile and warm up
    full = [float("inf")] * 2
    for _ in range(config.repeats):   # interleaved; the fastest of each kept (load only slows)
        for i, epochs in enumerate(lengths):
            full[i] = min(full[i], _timed_call(lambda e=epochs: populations.run(
                v, data, spec=spec(e))))
    epoch_s = max(full[1] - full[0], 1e-9) / config.full_epochs
    fixed_s = max(full[0] - epoch_s * config.full_epochs, 0.0)
    full_s = fixed_s + epoch_s * config.epochs
    cold = _timed_call(lambda: compaction.run(v, data, spec=spec(config.epochs)))
    warm = min(_timed_call(lambda: compaction.run(v, data, spec=spec(config.epochs)))
               for _ in range(config.repeats))
    _, masks = compaction.starts(v, data, spec=spec(config.epochs))
    shapes, _ = compaction.buckets(compaction.active_widths(masks), config.epochs)
    return dict(width=width, runs=p, buckets=len(shapes),
                largest="x".join(map(str, shapes.max(0))), full_epoch_s=epoch_s,
                full_fixed_s=fixed_s, full_s=full_s, compact_cold_s=cold, compact_s=warm,
                speedup=full_s / warm, speedup_cold=full_s / cold)


_COMPACTION_HEADER = (
    "| width | runs | buckets | largest bucket | full epoch s | full fixed s | full run s "
    "(projected) | compacted cold s | compacted warm s | speedup warm | speedup cold |",
    "|---|---|---|---|---|---|---|---|---|---|---|")


def _table(config, header: tuple, fmt, cells, what: str) -> list[dict]:
    """Measures each of ``cells`` (zero-argument callables returning a row), printing the
    Markdown table as it goes, then appends it to ``config.output`` under a dated heading with
    the command, CPU, load and jax version, followed by ``what`` (what a row measured)."""
    print(header[0] + "\n" + header[1], flush=True)
    rows = []
    for cell in cells:
        rows.append(cell())
        print(fmt(rows[-1]), flush=True)
    if config.output:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        lines = ["", f"### benchmark `{config.preset}` on {device_name()}, "
                     f"{datetime.date.today().isoformat()}", "",
                 f"Command: `python {command_line()}`; CPU: {cpu_model()}; load average at the "
                 f"end {load}; jax {jax.__version__}. {what}", "", *header]
        with open(config.output, "a") as f:
            f.write("\n".join(lines + [fmt(r) for r in rows]) + "\n")
    return rows


def run_compaction(config) -> list[dict]:
    """The ``compaction`` preset: ``measure_compaction`` at every width, one table."""
    data = datasets.cubist_spiral()
    what = (
        f"One {config.method} group of the random-init "
        f"pruning grid per width ({len(config.budgets)} budgets below N_w, lr {config.lr}, "
        f"{config.schedule}, the whole spiral, evaluation included) trained for "
        f"{config.epochs} epochs. Full width: the {config.epochs}-epoch time projected "
        f"from warm {config.full_epochs}- and {2 * config.full_epochs}-epoch runs "
        "(fixed + epochs x per-epoch seconds; each the fastest of "
        f"{config.repeats} interleaved repeats). Compacted: `compaction.run` measured at "
        f"{config.epochs} epochs; cold is its first call (the full-width masks step and "
        f"every bucket compiled), warm the fastest of {config.repeats} further calls.")
    return _table(config, _COMPACTION_HEADER, _fmt_compaction,
                  [lambda w=int(w): measure_compaction(w, config, data) for w in config.widths],
                  what)


def measure_calls(widths, p: int, config, data) -> dict:
    """A population of ``p`` runs of ``widths`` for ``config.epochs`` epochs (evaluation
    included), in one vmap call (``populations.uncapped_cpu_calls``) against calls of
    ``populations.cpu_call_runs`` runs; each warm, interleaved, the fastest of
    ``config.repeats``."""
    v = _variants(widths, p, config.sparsity, config.seed)
    spec = training.Spec(widths=widths, epochs=config.epochs, engine="vmap",
                         precision=config.precision)

    def one_call():
        with populations.uncapped_cpu_calls():
            populations.run(v, data, spec=spec)

    def capped():
        populations.run(v, data, spec=spec)
    arms = {"one": one_call, "capped": capped}
    for fn in arms.values():
        fn()   # compile and warm up
    best = dict.fromkeys(arms, float("inf"))
    for _ in range(config.repeats):
        for name, fn in arms.items():
            best[name] = min(best[name], _timed_call(fn))
    per = populations.cpu_call_runs(widths)
    return dict(width="x".join(map(str, widths)), runs=p, call=per, calls=-(-p // per),
                one_s=best["one"], capped_s=best["capped"],
                one_rate=p * config.epochs / best["one"],
                capped_rate=p * config.epochs / best["capped"],
                speedup=best["one"] / best["capped"])


_CALLS_HEADER = ("| widths | runs | runs a call | calls | one call s | capped s | one call "
                 "model-epochs/s | capped model-epochs/s | speedup |",
                 "|---|---|---|---|---|---|---|---|---|")


def run_calls(config) -> list[dict]:
    """The ``calls`` preset: ``measure_calls`` for each (width, population) pair."""
    data = datasets.cubist_spiral()
    what = (f"Each population: {int(config.sparsity * 100)}% of weights masked, "
            f"{config.epochs} epoch(s) on the whole spiral, evaluation included; one vmap call "
            "against calls of `populations.cpu_call_runs` runs, warm, the fastest of "
            f"{config.repeats} interleaved repeats.")
    return _table(config, _CALLS_HEADER, _fmt_calls,
                  [lambda w=w, p=p: measure_calls(models.check_widths(w), int(p), config, data)
                   for w, p in zip(config.widths, config.populations)], what)


def _fmt_calls(r: dict) -> str:
    return (f"| {r['width']} | {r['runs']:,} | {r['call']} | {r['calls']} | {r['one_s']:.1f} | "
            f"{r['capped_s']:.1f} | {r['one_rate']:.1f} | {r['capped_rate']:.1f} | "
            f"{r['speedup']:.2f}x |")


def run_plan(config) -> list[dict]:
    """The ``plan`` preset: the plan's estimates against wall time (``study.estimates``)."""
    with tempfile.TemporaryDirectory() as tmp:
        table, rows = estimates.check(config.root or tmp, tuple(config.checks))
    text = estimates.format_rows(rows)
    print(text, flush=True)
    if config.output:
        cells = ", ".join(f"{n:,} params {1 / s:,.0f}/s" for n, s in table["vmap"])
        lanes = ", ".join(f"{n:,} params {1 / s:,.0f}/s" for n, s in table["lanes"])
        side = table.get("side_by_side") or {}
        lanes += ("; side by side, " + f"{side['workers']} groups at once: " + ", ".join(
            f"{n:,} params {f:.2f}x" for n, f in side["speedup"])) if side.get("speedup") else ""
        lines = ["", f"### benchmark `plan` on {device_name()}, {datetime.date.today()}", "",
                 f"Command: `python {command_line()}`; CPU: {cpu_model()}; load average "
                 f"{table['load_average']:.1f} when the rates were measured; jax "
                 f"{jax.__version__}. Rates measured afresh (model-epochs/s; vmap: {cells}; "
                 f"lanes: {lanes}; {table['compile_s']:.1f} s a compile), then each check's "
                 "estimate from them and its wall time from a fresh workdir.", "", text]
        with open(config.output, "a") as f:
            f.write("\n".join(lines) + "\n")
    return rows


def _fmt_compaction(r: dict) -> str:
    return (f"| {r['width']} | {r['runs']} | {r['buckets']} | {r['largest']} | "
            f"{r['full_epoch_s']:.2f} | {r['full_fixed_s']:.2f} | {r['full_s']:.1f} | "
            f"{r['compact_cold_s']:.1f} | {r['compact_s']:.1f} | {r['speedup']:.1f}x | "
            f"{r['speedup_cold']:.1f}x |")


def check(config) -> None:
    """One-line ValueError for a config that cannot run, before any cell (the loop baseline
    included) trains: populations, widths, epochs, repeats, engines. The ``plan`` preset has
    no cells (its checks run the study's own presets, which check themselves)."""
    if config.preset == "plan":
        unknown = [c for c in config.checks if c not in estimates.CHECKS]
        if unknown or not config.checks:
            raise ValueError(f"checks {tuple(config.checks)!r}: choose from {estimates.CHECKS}")
        return
    pops = list(config.get("populations", ()) or ())
    if config.preset != "compaction" and (not pops or not all(
            isinstance(p, int) and not isinstance(p, bool) and p >= 1 for p in pops)):
        raise ValueError(f"populations must be whole numbers >= 1, got {config.populations!r}")
    if config.preset == "calls" and len(pops) != len(config.widths):
        raise ValueError(f"calls: one population per width, got {len(pops)} populations for "
                         f"{len(config.widths)} widths")
    for w in config.widths:
        models.check_widths(w)
    for name in ("epochs", "repeats"):
        if not isinstance(config[name], int) or config[name] < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {config[name]!r}")
    if config.preset != "compaction":
        if not isinstance(config.loop_models, int) or config.loop_models < 0:
            raise ValueError(f"loop_models must be a whole number >= 0, got "
                             f"{config.loop_models!r}")
        unknown = [e for e in config.engines if e not in ("vmap", "lanes")]
        if unknown or not config.engines:
            raise ValueError(f"engines {tuple(config.engines)!r}: choose from "
                             "('vmap', 'lanes')")


def run(config) -> list[dict]:
    """Runs every cell of the config, prints the table and appends it to config.output.

    Cells: every shape of ``config.widths`` x engine of ``config.engines`` (those that can run
    it) x P of ``config.populations`` (P stops growing for a shape and engine once a cell's
    warm run takes over ``max_cell_s / 3`` or its compilation over ``max_compile_s``), plus
    a "loop" row per shape (vmap, P = 1, one model after another) when ``loop_models`` > 0.
    With ``config.repeats`` > 1 the engine cells are measured that many times, the engines
    alternating at each P, and each cell keeps its fastest repeat (load only slows runs).
    """
    check(config)
    if config.preset == "compaction":
        return run_compaction(config)
    if config.preset == "plan":
        return run_plan(config)
    if config.preset == "calls":
        return run_calls(config)
    data = datasets.cubist_spiral()
    rows = []
    print(_HEADER[0] + "\n" + _HEADER[1], flush=True)
    for width in config.widths:
        widths = models.check_widths(width)
        flops = flops_per_model_epoch(widths)
        cells = []
        if config.loop_models:
            cells.append(("vmap", "loop", 1, measure_loop(widths, config, data)))
        able = populations.engines_able(training.Spec(widths=widths))
        todo = [(e, p) for p in config.populations for e in config.engines if e in able]
        best, stopped = {}, set()
        for _ in range(config.repeats):   # engines alternate at each P, so load hits both
            for engine, p in todo:
                if (engine, p) not in best and engine in stopped:
                    continue
                m = measure(widths, p, config, data, engine=engine)
                if (engine, p) in best:   # a repeat is warm: keep the first compile time
                    old = best[engine, p]
                    m = {**m, "compile_s": old["compile_s"]} if m["run_s"] < old["run_s"] else old
                elif m["run_s"] * 3 > config.max_cell_s or m["compile_s"] > config.max_compile_s:
                    stopped.add(engine)
                best[engine, p] = m
        cells += [(e, p, p, best[e, p]) for e in config.engines for p in config.populations
                  if (e, p) in best]
        for engine, label, p, m in cells:
            rate = p / m["epoch_s"] if config.epoch_split else float("nan")
            rows.append(dict(width="x".join(map(str, widths)), engine=engine, P=label, **m,
                             rate=rate, rate_eval=p * config.epochs / m["run_s"],
                             gflops=rate * flops / 1e9))
            print(_fmt_row(rows[-1]), flush=True)
    if config.output:
        _append(config, rows)
    return rows


_HEADER = ("| widths | engine | P | epoch s | fixed s | compile s | model-epochs/s | "
           "with eval | GFLOP/s |", "|---|---|---|---|---|---|---|---|---|")


def _fmt_row(r: dict) -> str:
    return (f"| {r['width']} | {r['engine']} | {r['P']} | {r['epoch_s']:.3f} | "
            f"{r['fixed_s']:.2f} | {r['compile_s']:.1f} | {r['rate']:,.1f} | "
            f"{r['rate_eval']:,.1f} | {r['gflops']:,.2f} |")


def _append(config, rows) -> None:
    stamp = datetime.date.today().isoformat()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    if config.epoch_split:
        split = ("`epoch s`: seconds per training epoch of all P models (difference of a "
                 f"{config.epochs}- and a {2 * config.epochs}-epoch run); `fixed s`: the "
                 "once-per-run rest (final evaluation on all points, init, copies) for all P; ")
    else:
        split = "`epoch s`, `fixed s`: not split (one run per cell); "
    lines = [
        "", f"### benchmark `{config.preset}` on {device_name()}, {stamp}", "",
        f"Command: `python {command_line()}`; CPU: {cpu_model()}; load average at the end "
        f"{load}; matmul precision `{config.precision}`, "
        f"{int(config.sparsity * 100)}% of weights masked, jax {jax.__version__}. " + split
        + "`compile s`: the first call's excess over a warm one; `with eval`: model-epochs/s "
        f"of the whole warm {config.epochs}-epoch run, evaluation included; fastest of "
        f"{config.repeats} interleaved repeats; loop rows are per model, trained one after "
        "another.", "", *_HEADER] + [_fmt_row(r) for r in rows]
    with open(config.output, "a") as f:
        f.write("\n".join(lines) + "\n")


def cpu_model() -> str:
    """The host CPU's model name and core count (``lscpu``'s), or "unknown"."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        return f"{len(names)} x {names[0]}" if names else "unknown"
    except OSError:
        return "unknown"
