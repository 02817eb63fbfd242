"""The whole study in one command: search, pruning, fixed-init experiments, figures, table.

  python experiments/study.py --config=experiments/configs/study.py:quick \
      [--workdir=./workdirs/study_quick] [--dry_run] [--task_index=i --num_tasks=n]
  python experiments/study.py --merge --workdir=OUT --sources=A,B,C

The runbook (presets, runtimes, expected results) is the docstring of experiments/configs/study.py.

Layout. One study workdir holds one sub-workdir per stage, each a ``recording.Store`` of its
own binary: ``search/`` (``experiments/search.py``: phase one, then phase two of each target's
winner, read from phase one's records), ``prune/`` (``experiments/prune.py``: the random-init
grid and the BENCH-95 / BENCH-995 grids), ``bench95_search/`` and ``bench995_search/`` (the
searches from the fixed inits), in that order; the study's own config, notes and
``summary.md`` sit at the top, and the figures in ``figures/``. Sub-workdirs rather than one
Store because each binary already checks its config, resumes per chunk and splits its grid
over tasks; the study only chains them, and its own config check (the whole nested config,
task fields aside) refuses a workdir of another study before anything trains. A stage that is
already complete is skipped quickly (its store knows its done chunks), so a killed study
resumes where it stopped, and a lost or corrupt shard is recomputed.

Scale. Populations are sharded over the local devices. ``--task_index=i --num_tasks=n``
splits every stage's chunks round robin over the tasks of a job array. Tasks may share one
workdir on a shared filesystem: run the array, and again after phase one is complete (each
search's phase two needs all of its phase one; a task reports what it waits for), then once
without task flags to write the table and the figures (it trains nothing that is recorded).
Without a shared filesystem give each task its own workdir and join them with
``--merge --workdir=OUT --sources=A,B,...`` (``recording.merge`` per sub-workdir); to share
phase two as well, merge OUT back into each task's workdir and run the array again. Rows can
also be read from several workdirs at once with ``recording.load_runs``.

Multi-host: with ``--distributed`` the binary calls ``jax.distributed.initialize()`` (no
arguments) before anything else; JAX finds the coordinator, the process count and this
process's id itself under SLURM (srun), Open MPI (mpirun), mpi4py, Kubernetes and Cloud TPU
(elsewhere it reads only JAX_COORDINATOR_ADDRESS and fails in one line). Each host is then one
task of the job array: task_index and num_tasks default to ``jax.process_index()`` and
``jax.process_count()`` (an explicit flag that disagrees is an error), each host trains its
share on its own local devices (the study needs no communication between hosts), and all
hosts write into one workdir on a shared filesystem (or their own, merged afterwards). On a
cluster without those launchers, skip --distributed and pass --task_index/--num_tasks, e.g.
in a SLURM array ``--task_index=$SLURM_ARRAY_TASK_ID --num_tasks=$SLURM_ARRAY_TASK_COUNT``.

Progress and control: one progress line (study runs done / to do, runs/s, ETA, current
stage); ``--dry_run`` prints the plan (stages, run counts, compiled groups, estimated time)
and trains nothing. Both live in ``spiralprune.study.plan``. A dry run's estimate scales the
cost model (``plan.ASSUMED``) by a rate measured here on a small calibration population
(seconds); ``--config.estimate=assumed`` skips the measurement. Bad input (unknown preset,
task_index outside [0, num_tasks), a workdir of another config) is one line on stderr and
exit status 2 (``spiralprune.study.cli``).
"""

import json
import pathlib
import time

import jax
import numpy as np
import pandas as pd

from spiralprune import (
    grids,
    models,
    recording,
    search,
    training,
)
from spiralprune.configs import study as study_config
from spiralprune.study import plan as study_plan
from spiralprune.study import prune as prune_stage
from spiralprune.study import search as search_stage

KIND = "study"
STAGES = study_config.STAGES
SEARCHES = study_config.SEARCHES
_TASK_FIELDS = recording.TASK_FIELDS
# Fields that change what is shown, never what is recorded: not part of a workdir's identity.
_PRESENTATION = ("figures", "figure_args", "estimate", "assumed_winners", "reduced")


def _strip(cfg):
    """The config as plain JSON data without task fields (what the workdirs record)."""
    if isinstance(cfg, dict):
        return {k: _strip(v) for k, v in cfg.items() if k not in _TASK_FIELDS}
    return [_strip(v) for v in cfg] if isinstance(cfg, (list, tuple)) else cfg


def recorded_config(config) -> dict:
    """Returns the study config as recorded in its workdir.

    Args:
      config: a configs/study.py ConfigDict.

    Returns:
      a dict of JSON values without the task fields and the presentation fields (figures,
      figure_args, estimate, assumed_winners), which never change a record.
    """
    data = {k: v for k, v in config.to_dict().items() if k not in _PRESENTATION}
    return json.loads(json.dumps(_strip(data)))



def check(config) -> dict:
    """One-line ValueErrors for a study config that cannot run, before anything trains.

    Args:
      config: a configs/study.py ConfigDict.

    Returns:
      the frozen plans made on the way, by stage (``{"prune": prune.Plan}`` when the
      pruning stage is active), so the study plans each once.
    """
    grids.check_task(int(config.task_index), int(config.num_tasks))
    active = study_config.stages(config)
    targets = tuple(float(t) for t in config.targets)
    if not 1 <= len(targets) <= 2 or not all(0 < t <= 1 for t in targets):
        raise ValueError(f"targets must be one or two accuracies in (0, 1], got {targets}")
    if "bench995_search" in active and len(targets) != 2:
        raise ValueError(f"bench995_search searches the second target; targets {targets} "
                         "has one")
    want = {"search": targets, "bench95_search": targets[:1], "bench995_search": targets[1:]}
    for name, expected in want.items():
        if name not in active:
            continue
        got = tuple(float(t) for t in config[name].targets)
        if got != expected:
            raise ValueError(f"{name}.targets {got} must be {expected} (the study's targets "
                             f"{targets}); override config.targets and the searches' together")
    if config.fixed_inits != "shipped":
        raise ValueError(
            f"fixed_inits={config.fixed_inits!r} is not supported: spiralprune's search and "
            "prune take fixed inits by name only (models.bench_init); 'shipped' runs BENCH-95 "
            "and BENCH-995, and the inits this study's search found are written to "
            "notes/found_inits.json")
    if config.estimate not in ("assumed", "measured", "remeasure"):
        raise ValueError("estimate must be 'assumed', 'measured' or 'remeasure', got "
                         f"{config.estimate!r}")
    for name in (n for n in SEARCHES if n in active):  # what search.run would refuse later
        search_stage.check(study_plan.sub_config(config, name), name)
    if "prune" in active:
        return {"prune": prune_stage.check(study_plan.sub_config(config, "prune"))}
    return {}


def _check_workdir(workdir: pathlib.Path, config) -> None:
    """One-line ValueError if the workdir (or a stage's) holds records of another config."""
    def first_diff(a, b, key=""):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(a.keys() | b.keys()):
                if (d := first_diff(a.get(k), b.get(k), f"{key}.{k}" if key else k)) is not None:
                    return d
            return None
        return None if a == b else key or "(root)"

    mine = recorded_config(config)
    checks = [(workdir, mine, KIND)] + [(workdir / n, mine[n], n.split("_")[-1])
                                        for n in study_config.stages(config)]
    for path, want, kind in checks:
        if (path / "config.json").exists():
            store = recording.Store.open(path)
            diff = first_diff(_strip(store.config), want)
            if store.kind != kind:
                raise ValueError(f"workdir {path} holds {store.kind!r} records, not {kind!r}")
            if diff is not None:
                raise ValueError(f"workdir {path} holds a different config (first difference "
                                 f"at {diff!r}); use a new workdir or the original config")


# ---------------------------------------------------------------------------------------
# The summary table.

def _reach(df: pd.DataFrame, target: float, where) -> tuple:
    """(fewest nnz with accuracy >= target, the best accuracy at that nnz, where) or Nones."""
    over = df[df["accuracy"] >= target]
    if over.empty:
        return None, None, None
    nnz = int(over["nnz"].min())
    best = over[over["nnz"] == nnz].sort_values("accuracy", ascending=False, kind="stable")
    return nnz, float(best["accuracy"].iloc[0]), where(best.iloc[0])


def summary_table(config, workdir) -> pd.DataFrame:
    """Per setting (init) and method: the fewest nonzeros reaching each target, and where.

    A search row ("search") counts all the search's runs, both phases (phase one's block
    models are sparse models too, and phase two holds the winner's unpruned mask, so the
    sparsest model over a target is phase two's); a pruning row every run of that method
    from that init, all widths together.

    Args:
      config: a configs/study.py ConfigDict.
      workdir: the study workdir.

    Returns:
      a DataFrame indexed by (setting, method) with runs, best_acc and per target t
      ``nnz@t``, ``acc@t`` (the best accuracy at that count) and ``at@t`` (the search's
      configuration or the pruner's width).
    """
    workdir = pathlib.Path(workdir)
    targets = tuple(float(t) for t in config.targets)
    rows = []

    def add(setting, method, runs, df, where):
        entry = {"setting": setting, "method": method, "runs": runs,
                 "best_acc": float(df["accuracy"].max()) if len(df) else np.nan}
        for t in targets:
            entry[f"nnz@{t:.1%}"], entry[f"acc@{t:.1%}"], entry[f"at@{t:.1%}"] = (
                _reach(df, t, where) if len(df) else (None, None, None))
        rows.append(entry)

    for name in SEARCHES:
        if (store := study_plan.existing_store(workdir / name)) is None:
            continue
        df = store.load()
        if df.empty:
            continue
        add(config[name].init, "search", len(df), df,
            lambda r: f"({int(r['d1'])},{int(r['d2'])},{int(r['d3'])})")
    if (store := study_plan.existing_store(workdir / "prune")) is not None:
        df = store.load()
        for (init, method), g in (df.groupby(["init", "method"]) if len(df) else ()):
            add("random" if init == "torch" else init, method, len(g), g,
                lambda r: f"w{int(r['width'])}")
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    order = {s: i for i, s in enumerate(("random", "bench95", "bench995"))}
    table["_s"] = table["setting"].map(lambda s: order.get(s, len(order)))
    table["_m"] = table["method"] != "search"
    table = table.sort_values(["_s", "_m", "method"], kind="stable").drop(columns=["_s", "_m"])
    return table.set_index(["setting", "method"])


def format_table(table: pd.DataFrame, targets) -> str:
    """The summary table as a Markdown table ("-": no run reached the target)."""
    if table.empty:
        return "(no records)"
    head = ["setting", "method", "runs", "best acc"]
    for t in targets:
        head += [f"nnz >= {float(t):.1%}", "acc", "at"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (setting, method), r in table.iterrows():
        cells = [setting, method, f"{int(r['runs']):,}", f"{r['best_acc']:.2%}"]
        for t in targets:
            n, a, w = (r[f"{k}@{float(t):.1%}"] for k in ("nnz", "acc", "at"))
            cells += ["-", "", ""] if n is None or pd.isna(n) else [str(int(n)), f"{a:.2%}", w]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headlines(table: pd.DataFrame, targets) -> list[str]:
    """Per setting and target: the search's fewest nonzeros against the best pruner's."""
    out = []
    for setting in dict.fromkeys(table.index.get_level_values(0)):
        sub = table.loc[setting]
        for t in targets:
            col = f"nnz@{float(t):.1%}"
            if "search" not in sub.index or pd.isna(sub.loc["search", col]):
                continue
            pr = sub.drop(index="search")[col].dropna()
            best = (f"the best pruner needs {int(pr.min())} ({pr.astype(float).idxmin()})"
                    if len(pr) else "no pruner reaches it")
            out.append(f"{setting}, {float(t):.1%}: the search needs "
                       f"{int(sub.loc['search', col])} nonzeros; {best}")
    return out


def finding(table: pd.DataFrame, targets) -> str:
    """One line: does the study's finding (no pruner as sparse as the search) hold here?

    The finding holds for a setting and target when the search reaches the target and every
    pruning method that reaches it needs more nonzeros than the search. A pruner that needs
    as few or fewer is said loudly, by name, with its count.

    Args:
      table: ``summary_table(...)``.
      targets: the study's targets.

    Returns:
      the verdict line ("FINDING HOLDS: ...", "FINDING DOES NOT HOLD: ..." or "NO VERDICT:
      ..." when no search reached a target).
    """
    held, broken = [], []
    for setting in dict.fromkeys(table.index.get_level_values(0)) if len(table) else ():
        sub = table.loc[setting]
        for t in targets:
            col = f"nnz@{float(t):.1%}"
            if "search" not in sub.index or pd.isna(sub.loc["search", col]):
                continue
            need = int(sub.loc["search", col])
            pruners = sub.drop(index="search")[col].dropna().astype(int)
            pruners = pruners.drop(index=[m for m in ("dense",) if m in pruners.index])
            beat = pruners[pruners <= need]
            where = f"{setting} at {float(t):.1%}"
            if len(beat):
                broken.append(f"{where}: " + ", ".join(
                    f"{m} reaches it with {int(n)} nonzeros" for m, n in beat.items())
                    + f", the search with {need}")
            else:
                best = (f"the best pruner needs {int(pruners.min())} ({pruners.idxmin()})"
                        if len(pruners) else "no pruner reaches it")
                held.append(f"{where} the search needs {need} nonzeros, {best}")
    if broken:
        return "FINDING DOES NOT HOLD in this run: " + "; ".join(broken)
    if held:
        return ("FINDING HOLDS in this run (no pruner is as sparse as the search): "
                + "; ".join(held))
    return "NO VERDICT: no search reached a target in this run"


# ---------------------------------------------------------------------------------------
# The inits the search found (recorded; not yet usable as fixed inits, see check()).

def found_init(search_workdir, target: float, width: int = 16) -> dict:
    """Reconstructs the init of the sparsest phase-two model over ``target``, 16 wide.

    Phase two draws each compacted (d1, d2, d3) model's init from its own seed with the
    width-D distribution, so that block is exactly reconstructible (the tests retrain it);
    the rest of a width-16 model never existed and is drawn from the width-16 distribution
    with a key derived from the same seed (the same distribution only when D = 16).

    Args:
      search_workdir: a complete random-init search workdir.
      target: accuracy in (0, 1].
      width: the width of the returned init.

    Returns:
      dict(params (width 16), block (the exact (d1, d2, d3) init), config, seed, mask_index,
      lr, schedule, nnz, accuracy), or {} when no phase-two model reaches the target.
    """
    store = recording.Store.open(search_workdir)
    if store.config.get("init") != "random":
        raise ValueError(f"{search_workdir} searched from a fixed init; nothing to reconstruct")
    df = store.load()
    row = search.sparsest(df[df["stage"].str.startswith("phase2")], target)
    if row is None:
        return {}
    cfg = tuple(int(row[k]) for k in ("d1", "d2", "d3"))
    dist = (int(store.config["width"]),) * 3
    block = models.init(training.run_keys(int(row["seed"]))["init"], cfg, dist_widths=dist)
    full = models.init(jax.random.fold_in(jax.random.key(int(row["seed"])), width), width)
    params = {}
    for layer in models.LAYERS:
        k, b = np.array(full[layer]["kernel"]), np.array(full[layer]["bias"])
        bk, bb = np.asarray(block[layer]["kernel"]), np.asarray(block[layer]["bias"])
        k[:bk.shape[0], :bk.shape[1]], b[:bb.shape[0]] = bk, bb
        params[layer] = {"kernel": k, "bias": b}
    return dict(params=params, block=jax.tree.map(np.asarray, block), config=cfg,
                seed=int(row["seed"]), mask_index=int(row["mask_index"]), lr=float(row["lr"]),
                schedule=str(row["schedule"]), nnz=int(row["nnz"]),
                accuracy=float(row["accuracy"]))


def _record_found_inits(config, workdir: pathlib.Path, store: recording.Store) -> None:
    if config.search.init != "random" or study_plan.existing_store(workdir / "search") is None:
        return
    note = {}
    for t in config.targets:
        found = found_init(workdir / "search", float(t))
        if found:
            found["params"] = jax.tree.map(lambda a: a.tolist(), found.pop("params"))
            found.pop("block")
            note[f"{float(t):g}"] = found
    store.put_json("found_inits", note)


# ---------------------------------------------------------------------------------------
# Running, merging, figures.

def _figures(workdir: pathlib.Path, kwargs: dict) -> dict:
    """Draws every figure with experiments/figures.py; reports and continues on failure.

    Progress is printed per part ("[figures] k/n part"); parts whose records and arguments are
    unchanged since the last run are kept, not redrawn (figures.py's cache).
    """
    sources = [str(workdir / n) for n in STAGES if (workdir / n / "config.json").exists()]
    try:
        from spiralprune.study import figures
        out = figures.run(sources, str(workdir / "figures"), **kwargs,
                          progress=lambda line: print(line, flush=True))
    except Exception as e:  # noqa: BLE001 - figures must never lose a finished study
        msg = f"{type(e).__name__}: {e}".splitlines()[0]
        print(f"[study] figures skipped ({msg})", flush=True)
        return {"figures": [], "error": msg}
    print(f"[study] {len(out.get('figures', []))} figures in {workdir / 'figures'}", flush=True)
    return out


def run(config, workdir, *, dry_run: bool = False) -> dict:
    """Runs (or resumes) the whole study into ``workdir``; or, dry, prints its plan.

    Args:
      config: a configs/study.py ConfigDict.
      workdir: the study workdir (new, or one holding the same config).
      dry_run: print the plan and an estimate, train and write nothing.

    Returns:
      dict(status, stages (stage -> its status), workdir), plus table (DataFrame) and
      headlines when every stage has finished, figures when drawn, plan when dry.
    """
    study_config.apply_seed(config)
    plans = check(config)
    if not str(workdir).strip():
        raise ValueError("workdir is empty; leave --workdir out for the default")
    workdir = pathlib.Path(workdir)
    for path in [workdir] + [workdir / n for n in study_config.stages(config)]:
        if path.exists() and not path.is_dir():   # refused before the plan is printed
            raise ValueError(f"workdir {path} is not a directory")
    _check_workdir(workdir, config)
    rates, source = study_plan.cost_model(config, measure=dry_run)
    parts = study_plan.plan(config, workdir, rates, plans)
    study_plan.print_plan(config, workdir, parts, source, plans)
    if config.reduced:
        print(f"[study] {config.preset}: {config.reduced}", flush=True)
    if dry_run:
        print("dry run: nothing trained", flush=True)
        return {"status": "dry run", "plan": parts, "workdir": str(workdir),
                "estimate_s": sum(p.seconds for p in parts)}
    store = recording.Store(workdir, recorded_config(config), kind=KIND)
    active = study_config.stages(config)
    todo = {name: sum(p.todo for p in parts if p.stage == name) for name in active}
    progress = study_plan.StudyProgress(
        parts, figures_s=study_plan.FIGURES_S if config.figures else 0.0)
    stages, t0 = {}, time.perf_counter()
    for name in active:
        sub = study_plan.sub_config(config, name)
        print(f"== study stage {active.index(name) + 1}/{len(active)}: {name} "
              f"({todo[name]:,} runs to train here) ==", flush=True)
        if name == "prune":
            df = prune_stage.run(plans["prune"], workdir / name,
                                 progress=progress.factory(name), targets=tuple(config.targets))
            total = sum(len(g.rows) for g in plans["prune"].groups)
            stages[name] = ("complete" if len(df) == total
                            else f"incomplete: {len(df):,}/{total:,} runs recorded")
        else:
            stages[name] = search_stage.run(sub, workdir / name,
                                             progress=progress.factory(name))["status"]
        progress.finish(name)
    result = {"status": "complete", "stages": stages, "workdir": str(workdir),
              "seconds": time.perf_counter() - t0, "trained": progress.trained}
    waiting = [n for n, s in stages.items() if "incomplete" in s]
    if waiting:
        result["status"] = "incomplete"
        print(f"== study {config.preset}: incomplete (task {config.task_index} of "
              f"{config.num_tasks}): "
              + "; ".join(f"{n}: {stages[n]}" for n in waiting)
              + ". Run again when the other tasks have finished (or merge their workdirs) ==",
              flush=True)
        store.put_json("summary", result)
        return result
    table = summary_table(config, workdir)
    text = format_table(table, config.targets)
    lines = headlines(table, config.targets)
    verdict = finding(table, config.targets)
    result.update(table=table, headlines=lines, finding=verdict)
    _record_found_inits(config, workdir, store)
    scope = f"\n_{config.preset}: {config.reduced}._\n" if config.reduced else ""
    recording.write_file(
        workdir / "summary.md",
        f"# Study {config.preset}: fewest nonzero parameters reaching each target\n{scope}\n"
        f"**{verdict}**\n\n{text}\n\n" + "".join(f"- {line}\n" for line in lines))
    store.put_json("summary", {k: v for k, v in result.items() if k != "table"}
                   | {"table": json.loads(table.reset_index().to_json(orient="records"))})
    print(f"== study {config.preset}: complete in "
          f"{study_plan.format_seconds(result['seconds'])} ==", flush=True)
    print(text, flush=True)
    for line in lines:
        print(line, flush=True)
    print(verdict, flush=True)
    if config.figures:
        result["figures"] = _figures(workdir, config.figure_args.to_dict())
        progress.figures_done()
    else:
        print("[study] figures skipped (config.figures is False)", flush=True)
    return result


def merge(sources, workdir) -> recording.Store:
    """Joins the workdirs of several tasks of one study into ``workdir``.

    Args:
      sources: study workdirs of the same config (task fields aside).
      workdir: the destination (new, or a workdir of the same study).

    Returns:
      the destination's study Store; run the study on it to finish and report.
    """
    sources = [pathlib.Path(s) for s in sources or ()]
    if not sources:
        raise ValueError("--merge needs --sources=A,B,...")
    stores = []
    for s in sources:
        store = recording.Store.open(s)
        if store.kind != KIND:
            raise ValueError(f"{s} holds {store.kind!r} records, not a study")
        if _strip(store.config) != _strip(stores[0].config if stores else store.config):
            raise ValueError(f"cannot merge {s} with {sources[0]}: different study configs")
        stores.append(store)
    dst = recording.Store(workdir, _strip(stores[0].config), kind=KIND)
    for name in STAGES:
        subs = [s / name for s in sources if (s / name / "config.json").exists()]
        if subs:
            recording.merge(subs, pathlib.Path(workdir) / name)
    print(f"[study] merged {len(sources)} workdirs into {workdir}; run the study on it to "
          "finish and report", flush=True)
    return dst
