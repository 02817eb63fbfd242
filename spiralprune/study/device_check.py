"""The device check: everything the project claims for accelerators, measured in one command.

  python experiments/device_check.py --config=experiments/configs/device_check.py:gpu --out=DIR

Stages (throughput, phase two of (3,3,3), the width-16 pruning grid, the (7,3,3) subset) run one
after another, each under its own wall-time cap and all under one total budget, so a slow stage
cannot eat the others: a stage is stopped between units of work (populations, recorded chunk
shares, methods) and reported as capped with what it measured. A stage that fails is reported
with its error and the next one runs. ``DIR/report.md`` (printed at the end) and
``DIR/report.json`` are rewritten after every unit. See experiments/configs/device_check.py for
the runbook, presets and goals.
"""

import dataclasses
import datetime
import json
import math
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

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
from spiralprune.configs import prune as prune_config
from spiralprune.study import prune as prune_stage

FLOPS_PER_PARAM_SAMPLE = 6   # 2 forward + 4 backward
SECTIONS = {"throughput": "Throughput", "phase_two": "Phase two", "prune": "Pruning grid",
            "subset": "Phase-two subset"}


# ---------------------------------------------------------------------------------------------
# Clocks: compile time (JAX's own events), stage caps, the total budget.

_COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration",
                   "/jax/core/compile/backend_compile_duration")
_compile = {"seconds": 0.0, "listening": False}


def _on_event(event, duration, **_):
    if event in _COMPILE_EVENTS:
        _compile["seconds"] += float(duration)


def compile_seconds() -> float:
    """Seconds JAX has spent tracing, lowering and compiling in this process so far."""
    if not _compile["listening"]:
        try:
            jax.monitoring.register_event_duration_secs_listener(_on_event)
        except AttributeError:   # no monitoring API: compile time is reported as 0
            pass
        _compile["listening"] = True
    return _compile["seconds"]


def engine_field() -> bool:
    """Whether ``training.Spec`` has an ``engine`` field (training engine selection)."""
    return "engine" in {f.name for f in dataclasses.fields(training.Spec)}


def memory() -> dict:
    """Device 0's memory stats in bytes (peak and limit), None where the backend has none."""
    try:
        stats = jax.local_devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = {}
    return {"peak_bytes": stats.get("peak_bytes_in_use"), "limit_bytes": stats.get("bytes_limit")}


class RunTimer:
    """Times every ``populations.run`` call made while it is active (library code included).

    The stages call the library's binaries and search; wrapping the one population entry point
    splits a stage's wall time into compile, ``populations.run`` (training, chunk transfers) and
    the host work around it (building variants, record columns, writing and loading records).
    """

    def __enter__(self):
        self.seconds, self.compile_s, self.calls, self._run = 0.0, 0.0, 0, populations.run

        def timed(*args, **kwargs):
            t0, c0 = time.perf_counter(), compile_seconds()
            try:
                return self._run(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.compile_s += compile_seconds() - c0
                self.calls += 1

        populations.run = timed
        return self

    def __exit__(self, *exc):
        populations.run = self._run


class StageClock:
    """A stage's cap: ``stop`` says whether to start another unit of work.

    The first unit always runs; a later one does not when the time used plus ``estimate`` (the
    expected length of the next unit, 0 where units differ) would pass the cap.
    """

    def __init__(self, cap_s: float):
        self.cap_s = float(cap_s)
        self.t0 = time.perf_counter()
        self.units = 0
        self.capped = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def stop(self, estimate: float = 0.0) -> bool:
        if self.units and self.elapsed() + estimate > self.cap_s:
            self.capped = True
        else:
            self.units += 1
        return self.capped


# ---------------------------------------------------------------------------------------------
# Stages. Each takes (stage config, clock, check) and fills check.stage[...] as it goes.


def _subset(x, y, n: int, seed: int):
    if not n:
        return x, y
    if not 0 < n <= len(y):
        raise ValueError(f"num_points must be in [0, {len(y)}], got {n}")
    sub = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
    return x[sub], y[sub]


def _cell_variants(kind: str, widths, p: int, seed: int):
    rng = np.random.default_rng(seed)
    lr = np.where(np.arange(p) % 2, 0.1, 0.05)
    sched = np.arange(p) % 3
    seeds = seed * 1_000_003 + np.arange(p)
    if kind == "block":   # phase one: random neuron configurations of the (D, D, D) model
        configs = np.stack([rng.integers(1, w + 1, p) for w in widths], -1)
        dims = [np.full(p, 2)] + [configs[:, i] for i in range(3)] + [np.ones(p, np.int64)]
        full = (2,) + tuple(widths) + (1,)
        kernels = [(np.arange(full[i])[None, :, None] < dims[i][:, None, None])
                   & (np.arange(full[i + 1])[None, None, :] < dims[i + 1][:, None, None])
                   for i in range(4)]
        masks = masking.from_kernels(kernels)
    else:
        masks = masking.ones_like(models.init(jax.random.key(0), widths))
    masks = jax.tree.map(np.asarray, masks)
    return populations.make_variants(masks=masks, lr=lr, schedule=sched, seed=seeds)


def _cells(cfg):
    """Throughput cells in run order: every shape's first population size, then the second..."""
    cells = [(name, kind, tuple(int(w) for w in widths), tuple(int(p) for p in pops))
             for name, kind, widths, pops in cfg.cells]
    for kind in {c[1] for c in cells}:
        if kind not in ("block", "compact", "dense"):
            raise ValueError(f"unknown throughput cell kind {kind!r}")
    rounds = max((len(c[3]) for c in cells), default=0)
    return [(name, kind, widths, pops[r]) for r in range(rounds)
            for name, kind, widths, pops in cells if r < len(pops)]


def stage_throughput(cfg, clock: StageClock, check) -> None:
    """Model-epochs/s and GFLOP/s per (shape, P, engine, precision); precision/engine gaps."""
    x, y = _subset(*datasets.cubist_spiral(), int(cfg.num_points), check.config.seed)
    samples = datasets.steps_per_epoch(len(y), int(cfg.batch_size)) * int(cfg.batch_size)
    devices = jax.local_devices()
    has_engine = engine_field()
    engines = tuple(cfg.engines) if has_engine else ("vmap",)
    out = check.stage["throughput"]
    out.update(cells=[], gaps=[], engine_field=has_engine, samples_per_epoch=samples,
               epochs=int(cfg.epochs))
    for name, kind, widths, p in _cells(cfg):
        dist = (16, 16, 16) if kind == "compact" else None
        variants = _cell_variants(kind, widths, p, check.config.seed)
        weights = models.num_weights(widths)
        accs = {}
        for engine in engines:
            if engine == "lanes" and (kind == "block" or weights > int(cfg.lanes_max_weights)):
                continue
            for precision in (cfg.lanes_precisions if engine == "lanes" else cfg.precisions):
                if clock.stop():
                    return
                kw = {"engine": engine} if has_engine else {}
                spec = training.Spec(widths=widths, epochs=int(cfg.epochs), dist_widths=dist,
                                     batch_size=int(cfg.batch_size), precision=precision, **kw)
                auto = populations.auto_chunk(spec, p, devices)
                c0, t0 = compile_seconds(), time.perf_counter()
                try:
                    res = populations.run(variants, (x, y), spec=spec)
                except Exception as e:  # noqa: BLE001 - e.g. out of memory: report, go on
                    out["cells"].append(dict(cell=name, kind=kind, widths=list(widths), P=p,
                                             engine=engine, precision=precision,
                                             error=f"{type(e).__name__}: {str(e)[:300]}"))
                    print(f"[device_check] {name} P={p} {engine}/{precision}: "
                          f"{out['cells'][-1]['error']}", file=sys.stderr, flush=True)
                    check.save()
                    continue
                wall = time.perf_counter() - t0
                comp = min(compile_seconds() - c0, wall)
                train = max(wall - comp, 1e-9)
                rate = p * int(cfg.epochs) / train
                params = models.num_params(widths)
                accs[engine, precision] = np.asarray(res["accuracy"], np.float64)
                out["cells"].append(dict(
                    cell=name, kind=kind, widths=list(widths), params=params, P=p,
                    engine=engine, precision=precision, auto_chunk=auto,
                    chunk=populations.balanced_chunk(p, auto, len(devices)),
                    wall_s=wall, compile_s=comp, model_epochs_per_s=rate,
                    gflops=rate * FLOPS_PER_PARAM_SAMPLE * params * samples / 1e9,
                    mean_accuracy=float(np.mean(accs[engine, precision])),
                    diverged=int(np.sum(res["diverged"])), **memory()))
                check.save()
        for (e1, p1), (e2, p2) in [((e, "highest"), (e, "default")) for e in engines] + [
                (("vmap", "highest"), ("lanes", "highest"))]:
            if (e1, p1) in accs and (e2, p2) in accs:
                diff = np.abs(accs[e1, p1] - accs[e2, p2])
                out["gaps"].append(dict(cell=name, P=p, a=f"{e1}/{p1}", b=f"{e2}/{p2}",
                                        max_abs_accuracy_diff=float(np.nanmax(diff)),
                                        mean_abs_accuracy_diff=float(np.nanmean(diff))))
        check.save()


def _phase_two_args(cfg) -> dict:
    first_k = {int(cfg.first_k_layer): int(cfg.first_k)} if int(cfg.first_k) else None
    return dict(config=tuple(int(v) for v in cfg.config), width=int(cfg.width),
                lrs=tuple(float(v) for v in cfg.lrs), schedules=tuple(cfg.schedules),
                target=float(cfg.target), max_weights=int(cfg.max_weights) or None,
                first_k=first_k, epochs=int(cfg.epochs), recipe=cfg.recipe.to_dict(),
                chunk_size=int(cfg.chunk_size))


def stage_phase_two(cfg, clock: StageClock, check, name: str = "phase_two") -> None:
    """``search.phase_two`` in ``pieces`` task shares; wall, compile, rate, sparsest model."""
    args = _phase_two_args(cfg)
    space = enumeration.ModelMaskSpace(args["config"], max_weights=args["max_weights"],
                                       first_k=args["first_k"])
    total = len(space) * len(args["lrs"]) * len(args["schedules"])
    spec = training.Spec(widths=args["config"], epochs=args["epochs"],
                         dist_widths=(args["width"],) * 3, **args["recipe"])
    recorded = grids.near_equal_chunks(total, args["chunk_size"])
    size = recorded[0][1] - recorded[0][0]
    auto = populations.auto_chunk(spec, size, jax.local_devices())
    pick = getattr(populations, "engine", None)   # the engine "auto" picks, where engines exist
    out = check.stage[name]
    out.update(engine=pick(spec, jax.local_devices()) if pick else "vmap")
    out.update(config=list(args["config"]), masks=len(space), total_runs=total, runs=0,
               epochs=args["epochs"], target=args["target"], reference=str(cfg.reference),
               recorded_chunks=len(recorded), recorded_chunk=size, auto_chunk=auto,
               compute_chunk=min(size, auto), pieces=int(cfg.pieces), pieces_done=0)
    store = recording.Store(check.workdir / name, {"stage": name, **args}, kind="search")
    last = 0.0
    df = None
    for piece in range(int(cfg.pieces)):
        if clock.stop(estimate=last):
            break
        t0 = time.perf_counter()
        # One printer per piece: its rate and ETA are the piece's (a piece counts its own runs).
        progress = populations.Progress(f"{name} {piece + 1}/{cfg.pieces}", every_s=10.0,
                                        printer=lambda s: print(s, flush=True))
        df = search.phase_two(store, **args, stage=name, progress=progress, task_index=piece,
                              num_tasks=int(cfg.pieces))
        last = time.perf_counter() - t0
        best = search.sparsest(df, args["target"])
        out.update(pieces_done=piece + 1, runs=len(df), **_sparsest(df, args["target"], best),
                   sparsest_file=_save_sparsest(store, best, check.out / f"{name}_sparsest.npz"))
        check.save()
    if df is not None:
        out.update(complete=bool(df.attrs.get("complete")),
                   diverged=int(df["diverged"].sum()) if len(df) else 0,
                   best_accuracy=float(df["accuracy"].max()) if len(df) else None)


def _save_sparsest(store, best, path: pathlib.Path) -> str | None:
    """Writes ``best`` (``search.sparsest``'s row, or None) to ``path``: its final params as
    "layer0/kernel", ..., and its config, mask, lr, schedule, seed, nnz and accuracy, so a
    model found on the device can be checked elsewhere; returns the file name, or None."""
    if best is None:
        return None
    meta = {k: np.asarray(best[k]) for k in ("d1", "d2", "d3", "mask_index", "lr", "seed",
                                              "nnz", "accuracy")}
    np.savez(path, **store.params_of(best), **meta, schedule=np.asarray(str(best["schedule"])),
             stage=np.asarray(str(best["stage"])))
    return path.name


def _sparsest(df, target, best) -> dict:
    """The report's fields for ``best`` (``search.sparsest(df, target)``)."""
    over = int((df["accuracy"] >= target).sum()) if len(df) else 0
    if best is None:
        return {"sparsest": None, "runs_over_target": over}
    return {"runs_over_target": over, "sparsest": dict(
        nnz=int(best["nnz"]), accuracy=float(best["accuracy"]),
        mask_index=int(best["mask_index"]), lr=float(best["lr"]),
        schedule=str(best["schedule"]))}


def stage_subset(cfg, clock: StageClock, check) -> None:
    """The study's phase-two subset: the same code as phase two, another grid."""
    stage_phase_two(cfg, clock, check, name="subset")


def stage_prune(cfg, clock: StageClock, check) -> None:
    """The random-init pruning grid, one ``experiments/prune.py`` run per method."""
    out = check.stage["prune"]
    out.update(width=int(cfg.width), methods=[], runs=0, total_runs=0)
    configs = []
    for method in cfg.methods:
        pc = prune_config.get_config("paper")
        pc.grids = {"random": {"init": "torch", "methods": (method,), "widths": (int(cfg.width),),
                               "budgets": tuple(int(b) for b in cfg.budgets),
                               "lrs": tuple(float(v) for v in cfg.lrs),
                               "schedules": tuple(cfg.schedules), "repeats": 1}}
        for key, value in cfg.overrides.items():
            setattr(pc, key, value)
        pp = prune_stage.plan(pc)   # validates every method before any compute
        configs.append((method, pc, pp, sum(len(g.rows) for g in pp.groups)))
    out["total_runs"] = sum(n for *_, n in configs)
    walls = []
    for method, pc, pp, n in configs:
        if clock.stop(estimate=float(np.mean(walls)) if walls else 0.0):
            return
        c0, t0 = compile_seconds(), time.perf_counter()
        df = prune_stage.run(pp, check.workdir / f"prune_{method}")
        wall = time.perf_counter() - t0
        walls.append(wall)
        reach = df[df["accuracy"] >= 0.95]["nnz"]
        out["methods"].append(dict(
            method=method, runs=len(df), planned=n, wall_s=wall,
            compile_s=min(compile_seconds() - c0, wall),
            chunk=min(int(pc.chunk_size), n), best_accuracy=float(df["accuracy"].max()),
            min_nnz_95=int(reach.min()) if len(reach) else None, **memory()))
        out["runs"] += len(df)
        check.save()


STAGES = {"throughput": stage_throughput, "phase_two": stage_phase_two, "prune": stage_prune,
          "subset": stage_subset}


# ---------------------------------------------------------------------------------------------
# The check: runs stages, keeps their numbers, renders the report.


def _commit() -> str:
    root = pathlib.Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - no git or not a repository (a copied working tree)
        return "unknown"


class Check:
    """One device check: its config, output folder, per-stage numbers and the report."""

    def __init__(self, config, out_dir):
        self.config = config
        self.out = pathlib.Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        dev = jax.local_devices()
        self.meta = dict(preset=config.preset, device=f"{len(dev)} x {dev[0].device_kind}",
                         platform=dev[0].platform, jax=jax.__version__, commit=_commit(),
                         date=datetime.datetime.now().isoformat(timespec="seconds"),
                         engine_field=engine_field(), total_s=float(config.total_s),
                         command=" ".join(sys.argv) or "(in process)")
        self.stage = {}
        self.status = {}
        self.t0 = time.perf_counter()
        self.workdir = None

    def run(self) -> dict:
        unknown = [s for s in self.config.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stages {unknown}; choose from {tuple(STAGES)}")
        tmp = None
        if self.config.workdir:
            self.workdir = pathlib.Path(self.config.workdir)
        else:
            tmp = self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="device_check_"))
        compile_seconds()   # start listening before the first compilation
        try:
            for name in self.config.stages:
                self._run_stage(name)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        self.meta["wall_s"] = time.perf_counter() - self.t0
        self.save()
        return self.results()

    def _run_stage(self, name: str) -> None:
        cfg = self.config[name]
        left = float(self.config.total_s) - (time.perf_counter() - self.t0)
        cap = min(float(cfg.cap_s), left)
        self.stage[name] = {}
        st = self.status[name] = dict(cap_s=cap, status="running")
        if left <= float(self.config.min_stage_s) or cap <= 0:
            st.update(status="skipped", reason=f"{left:.0f} s of the total budget left")
            self.save()
            return
        print(f"[device_check] stage {name}: cap {cap:.0f} s", flush=True)
        clock = StageClock(cap)
        c0 = compile_seconds()
        with RunTimer() as timer:
            try:
                STAGES[name](cfg, clock, self)
                st["status"] = "capped" if clock.capped else "done"
            except Exception as e:  # noqa: BLE001 - report it and go on with the next stage
                st.update(status="failed", error=f"{type(e).__name__}: {e}",
                          traceback=traceback.format_exc()[-4000:])
                print(st["traceback"], file=sys.stderr, flush=True)
        wall, comp = clock.elapsed(), compile_seconds() - c0
        train = max(timer.seconds - timer.compile_s, 0.0)   # compile + train + host = wall
        st.update(wall_s=wall, compile_s=comp, train_s=train,
                  host_s=max(wall - train - comp, 0.0), run_calls=timer.calls,
                  units=clock.units, **memory())
        st["compile_fraction"] = st["compile_s"] / max(st["wall_s"], 1e-9)
        s = self.stage[name]
        if s.get("total_runs") and s.get("runs") and s["runs"] < s["total_runs"]:
            st["projected_full_s"] = st["wall_s"] * s["total_runs"] / s["runs"]
        self.save()

    def results(self) -> dict:
        return {"meta": self.meta, "status": self.status, "stages": self.stage}

    def save(self) -> None:
        """Rewrites report.json and report.md with everything measured so far."""
        self.meta["elapsed_s"] = time.perf_counter() - self.t0
        recording.write_file(self.out / "report.json",
                             json.dumps(self.results(), indent=1, default=_jsonable) + "\n")
        recording.write_file(self.out / "report.md", render(self.results()))


def _jsonable(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


# ---------------------------------------------------------------------------------------------
# The markdown report.


def _n(v, fmt: str = ",.0f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, fmt)


def _gib(v) -> str:
    return "-" if v is None else f"{v / 2**30:.2f}"


def _table(header, rows) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def render(res: dict) -> str:
    m, status, stages = res["meta"], res["status"], res["stages"]
    lines = [f"# Device check `{m['preset']}`", "",
             f"{m['device']} ({m['platform']}), jax {m['jax']}, commit {m['commit']}, "
             f"{m['date']}; `training.Spec` engine field: {'yes' if m['engine_field'] else 'no'}; "
             f"total budget {m['total_s']:.0f} s, elapsed {m.get('elapsed_s', 0):.0f} s.", "",
             f"Command: `{m['command']}`", "", "## Stages", ""]
    rows = [(name, st["status"], _n(st["cap_s"], ".0f"), _n(st.get("wall_s"), ".1f"),
             _n(st.get("compile_s"), ".1f"),
             _n(100 * st["compile_fraction"], ".0f") if "compile_fraction" in st else "-",
             _n(st.get("train_s"), ".1f"), _n(st.get("host_s"), ".1f"),
             _n(st.get("projected_full_s"), ".0f"), _gib(st.get("peak_bytes")))
            for name, st in status.items()]
    lines += _table(("stage", "status", "cap s", "wall s", "compile s", "compile %", "train s",
                     "host s", "projected full s", "peak GiB (process)"), rows)
    lines += ["", "Capped: stopped between units of work at its cap; its numbers are what it "
              "measured, and `projected full s` scales its wall time to all its runs. `train s`: "
              "time inside `populations.run` less its compilation (training, evaluation, chunk "
              "transfers); `host s`: the rest less compilation (building variants, record "
              "columns, writing and reading records). Peak memory is the process's peak so far "
              "(device memory stats; - where the backend has none)."]
    for name, st in status.items():
        if st["status"] == "failed":
            lines += ["", f"**{name} failed**: `{st['error']}`"]
    for name, s in stages.items():
        lines += ["", f"## {SECTIONS[name]}", ""]
        if status[name]["status"] == "skipped":
            lines.append(f"Skipped: {status[name].get('reason', '')}.")
            continue
        lines += RENDER[name](s)
    return "\n".join(lines) + "\n"


def _render_throughput(s: dict) -> list[str]:
    if "cells" not in s:
        return ["Nothing measured."]
    lines = [f"{s['epochs']} epoch(s) of {s['samples_per_epoch']:,} samples per run; "
             "GFLOP/s counts 6 flops per parameter per training sample (2 forward, 4 backward); "
             "rates exclude compilation (JAX's trace, lowering and compile events).", ""]
    ok = [c for c in s["cells"] if "error" not in c]
    rows = [(c["cell"], "x".join(map(str, c["widths"])), c["kind"], f"{c['P']:,}", c["engine"],
             c["precision"], f"{c['auto_chunk']:,}/{c['chunk']:,}", _n(c["wall_s"], ".2f"),
             _n(c["compile_s"], ".2f"), _n(c["model_epochs_per_s"]), _n(c["gflops"], ",.1f"),
             _n(c["mean_accuracy"], ".4f"), _gib(c["peak_bytes"])) for c in ok]
    lines += _table(("cell", "widths", "kind", "P", "engine", "precision", "auto/used chunk",
                     "wall s", "compile s", "model-epochs/s", "GFLOP/s", "mean acc",
                     "peak GiB"), rows)
    failed = [c for c in s["cells"] if "error" in c]
    if failed:
        lines += ["", "Cells that failed (e.g. did not fit):", ""]
        lines += [f"- {c['cell']} P={c['P']:,} {c['engine']}/{c['precision']}: `{c['error']}`"
                  for c in failed]
    if s.get("gaps"):
        lines += ["", "Final-accuracy differences on the same runs:", ""]
        lines += _table(("cell", "P", "a", "b", "max |diff|", "mean |diff|"),
                        [(g["cell"], f"{g['P']:,}", g["a"], g["b"],
                          _n(g["max_abs_accuracy_diff"], ".4f"),
                          _n(g["mean_abs_accuracy_diff"], ".5f")) for g in s["gaps"]])
    return lines


def _render_phase_two(s: dict) -> list[str]:
    if "config" not in s:
        return ["Nothing measured."]
    best = s.get("sparsest")
    found = ("none over the target" if best is None else
             f"{best['nnz']} nonzeros at {best['accuracy']:.2%} (mask {best['mask_index']}, "
             f"lr {best['lr']:g}, {best['schedule']})"
             + (f"; its final params in `{s['sparsest_file']}`" if s.get("sparsest_file")
                else ""))
    return [f"Configuration {tuple(s['config'])}: {s['masks']:,} masks, {s['runs']:,} of "
            f"{s['total_runs']:,} runs trained ({s['pieces_done']} of {s['pieces']} pieces), "
            f"{s['epochs']} epoch(s), engine {s.get('engine', 'vmap')}; recorded chunks "
            f"{s['recorded_chunks']} of "
            f"{s['recorded_chunk']:,} runs, auto chunk {s['auto_chunk']:,}, compute chunk "
            f"{s['compute_chunk']:,}.", "",
            f"Sparsest over {s['target']:.1%}: {found}; {s.get('runs_over_target', 0):,} runs "
            f"over the target, best accuracy {_n(s.get('best_accuracy'), '.4f')}, "
            f"{s.get('diverged', 0)} diverged. Reference: {s['reference']}."]


def _render_prune(s: dict) -> list[str]:
    if "methods" not in s:
        return ["Nothing measured."]
    rows = [(r["method"], f"{r['runs']}/{r['planned']}", r["chunk"], _n(r["wall_s"], ".1f"),
             _n(r["compile_s"], ".1f"), _n(r["best_accuracy"], ".4f"), _n(r["min_nnz_95"]),
             _gib(r["peak_bytes"])) for r in s["methods"]]
    return ([f"Width {s['width']}: {s['runs']:,} of {s['total_runs']:,} runs trained.", ""]
            + _table(("method", "runs", "chunk", "wall s", "compile s", "best acc",
                      "min nnz >= 95%", "peak GiB"), rows))


RENDER = {"throughput": _render_throughput, "phase_two": _render_phase_two,
          "prune": _render_prune, "subset": _render_phase_two}


def run(config, out_dir) -> dict:
    """Runs the configured device check, writes DIR/report.md and DIR/report.json.

    Returns:
      {"meta", "status", "stages"}: the numbers of report.json.
    """
    return Check(config, out_dir).run()
