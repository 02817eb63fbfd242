"""The combinatorial search: phase one picks a configuration per target, phase two its masks.

  python experiments/search.py --config=experiments/configs/search.py:quick \
      [--workdir=./workdirs/search_quick] [--task_index=0 --num_tasks=1]

The runbook (presets, runtimes, expected results) is the docstring of
experiments/configs/search.py. Writes records to the workdir (resumable), ``phase1.png`` (best
accuracy of every configuration against its structured parameters, targets and winners marked)
and the note ``summary``.
"""

import math
import pathlib

import jax
import matplotlib.backends.backend_agg
import numpy as np

from spiralprune import (
    enumeration,
    masking,
    models,
    plotting,
    populations,
    recording,
    search,
)

_MAX_LAYER_LIST = 2_000_000  # layer mask lists beyond this are not enumerated


def chunk_size(config) -> int:
    """Runs per recorded chunk: the config's, else 1024 on a CPU and 16384 on an accelerator."""
    if config.chunk_size is not None:
        return int(config.chunk_size)
    return 1024 if jax.default_backend() == "cpu" else 16384


def phase_two_plan(config, target_config) -> dict | None:
    """How phase two searches ``target_config``: the full product or the study's subset.

    Args:
      config: the search config.
      target_config: (d1, d2, d3) to search.

    Returns:
      dict(config, stage, max_weights, first_k, lrs, note), or None (with a printed reason)
      when the configuration's layer mask lists are too large to enumerate.
    """
    cfg = tuple(int(d) for d in target_config)
    for d_in, d_out in enumeration.layer_shapes(cfg):
        # Multisets of d_out nonzero rows bound the eligible list of a layer from above.
        if math.comb(2**d_in - 1 + d_out - 1, d_out) > _MAX_LAYER_LIST:
            print(f"phase two of {cfg} skipped: its ({d_in}, {d_out}) layer has too many "
                  "eligible masks to enumerate; set phase_two_config to a smaller configuration")
            return None
    subset = dict(config=cfg, stage=f"phase2_{'-'.join(map(str, cfg))}_subset",
                  max_weights=config.subset_max_weights,
                  first_k={int(config.subset_first_k_layer): int(config.subset_first_k)},
                  lrs=tuple(config.subset_lrs))
    if config.subset_config is not None and cfg == tuple(config.subset_config):
        return dict(subset, note="the study's subset")
    runs = len(enumeration.ModelMaskSpace(cfg)) * len(config.lrs) * len(config.schedules)
    if runs <= config.max_phase_two_runs:
        return dict(config=cfg, stage=f"phase2_{'-'.join(map(str, cfg))}", max_weights=None,
                    first_k=None, lrs=tuple(config.lrs), note="full product")
    print(f"phase two of {cfg}: the full product has {runs:,} runs > max_phase_two_runs="
          f"{config.max_phase_two_runs:,}; applying the study's subset rule instead")
    return dict(subset, note=f"subset rule (the full product has {runs:,} runs)")


def plot_phase_one(df, winners: dict, path) -> None:
    """Saves best accuracy per configuration against structured parameters as a PNG (Agg).

    Args:
      df: phase-one rows.
      winners: target -> (d1, d2, d3) or None; targets are drawn as lines, winners marked.
      path: the PNG file to write.
    """
    ax = plotting.phase_one_scatter(df, targets=tuple(winners),
                                    winners=[w for w in winners.values() if w is not None])
    matplotlib.backends.backend_agg.FigureCanvasAgg(ax.figure)
    plotting.save(ax.figure, path, dpi=120)


_MAX_CONFIGURATIONS = 10_000_000  # phase one enumerates width**3 configurations


def _float32_positive(x) -> bool:
    with np.errstate(over="ignore", under="ignore"):
        v = np.float32(float(x))
    return bool(np.isfinite(v) and v > 0)


def check(config, name: str = "search") -> None:
    """One-line ValueErrors for a search config that cannot run, before anything is written.

    Args:
      config: a configs/search.py ConfigDict.
      name: how messages name the config (the study passes its stage name).
    """
    missing = [f for f in ("targets", "width", "lrs", "schedules", "phase_one", "init")
               if f not in config]
    if missing:
        raise ValueError(f"{name}: not a search config (no field {missing[0]!r}); use "
                         "experiments/configs/search.py")
    targets = tuple(float(t) for t in config.targets)
    if not targets:
        raise ValueError(f"{name}.targets is empty")
    width = int(config.width)
    for field in ("lrs", "schedules", "targets"):
        values = [str(v) for v in config[field]]
        if len(set(values)) != len(values):
            raise ValueError(f"{name}.{field} {tuple(config[field])} repeats a value (each "
                             "would train or count twice)")
    if config.init in models.BENCH_INITS and width > 16:
        raise ValueError(f"{name}: init {config.init} is 16 wide; cannot search width {width}")
    seed = config.get("base_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
        raise ValueError(f"{name}.base_seed must be a whole number in [0, 2^32), got {seed!r}")
    if int(config.get("subset_first_k", 1)) < 1:
        raise ValueError(f"{name}.subset_first_k must be >= 1, got {config.subset_first_k}")
    lrs, names = search._check_common(width, config.lrs, config.schedules, targets,
                                      config.init, config.epochs, chunk_size(config),
                                      int(config.task_index), int(config.num_tasks))
    for lr in config.lrs:
        if not _float32_positive(lr):
            raise ValueError(f"{name}: learning rate {lr} is 0 or infinite in float32, the "
                             "precision it trains in")
    if config.phase_two_config is not None:
        masking.check_config(config.phase_two_config, width)
    elif not config.phase_one:
        raise ValueError(f"{name}: phase_one=False needs phase_two_config")
    recipe = dict(milestones=tuple(config.milestones), cosine_t_max=config.cosine_t_max)
    populations.check_memory(search._spec((width,) * 3, config.epochs, "random", recipe),
                             what=f"{name} at width {width}")
    if config.phase_one:
        if width**3 > _MAX_CONFIGURATIONS:
            raise ValueError(f"{name}: phase one at width {width} has {width**3:,} "
                             f"configurations (at most {_MAX_CONFIGURATIONS:,})")
        if not len(search.configurations(width, config.max_structured_params)):
            raise ValueError(f"{name}: no configuration of width {width} has fewer than "
                             f"{config.max_structured_params} structured parameters")
    for lr in config.subset_lrs:
        if not math.isfinite(float(lr)) or float(lr) <= 0:
            raise ValueError(f"{name}.subset_lrs must be positive and finite, got "
                             f"{tuple(config.subset_lrs)}")
    if int(config.max_phase_two_runs) < 1:
        raise ValueError(f"{name}.max_phase_two_runs must be >= 1, got "
                         f"{config.max_phase_two_runs}")
    del lrs, names


def _row(row) -> dict | None:
    if row is None:
        return None
    keys = ("nnz", "nnz_weights", "accuracy", "lr", "schedule", "mask_index", "seed", "d1", "d2",
            "d3")
    return {k: row[k].item() if hasattr(row[k], "item") else row[k] for k in keys}


def run(config, workdir, progress=None) -> dict:
    """Runs (or resumes) the search into ``workdir`` and returns the summary.

    Args:
      config: a configs/search.py ConfigDict.
      workdir: the records directory; it must be new or hold the same config (task fields
        aside: tasks may share a workdir).
      progress: optional factory ``stage label -> callback(runs done, runs to do)`` (the
        study's one progress display); default ``populations.Progress(label)``.

    Returns:
      the summary (also stored as the note "summary"): status, phase_one, targets.
    """
    if not str(workdir).strip():
        raise ValueError("workdir is empty; leave --workdir out for the default")
    workdir = pathlib.Path(workdir)
    check(config)  # everything that can be refused is refused before the first byte is written
    targets = tuple(float(t) for t in config.targets)
    recorded = config.to_dict()
    for name in ("task_index", "num_tasks"):
        recorded.pop(name)
    store = recording.Store(workdir, recorded, kind="search")
    common = dict(width=config.width, schedules=tuple(config.schedules), init=config.init,
                  epochs=config.epochs, base_seed=config.base_seed, chunk_size=chunk_size(config),
                  recipe=dict(milestones=tuple(config.milestones),
                              cosine_t_max=config.cosine_t_max),
                  task_index=config.task_index, num_tasks=config.num_tasks)
    device = jax.local_devices()[0].device_kind
    progress = progress or populations.Progress
    summary = {"preset": config.preset, "workdir": str(workdir), "status": "complete",
               "phase_one": None, "targets": {}}
    df1 = None
    if config.phase_one:
        print(f"phase one: width {config.width}, init {config.init}, lrs {tuple(config.lrs)}, "
              f"schedules {tuple(config.schedules)}, {config.epochs} epochs, on {device}",
              flush=True)
        df1 = search.phase_one(store, lrs=tuple(config.lrs), targets=targets,
                               max_structured_params=config.max_structured_params,
                               progress=progress("phase1"), **common)
        summary["phase_one"] = {"runs": len(df1), "total_runs": df1.attrs["total_runs"],
                                "complete": df1.attrs["complete"]}
        if not df1.attrs["complete"]:
            summary["status"] = "phase one incomplete"
            print(f"phase one: {len(df1)}/{df1.attrs['total_runs']} runs recorded; run again "
                  "when every task has finished phase one")
            store.put_json("summary", summary)
            return summary
        winners = {t: search.select_configuration(df1, t) for t in targets}
        plot_phase_one(df1, winners, workdir / "phase1.png")
        summary["phase_one"]["plot"] = str(workdir / "phase1.png")
    phase_two = {}  # stage -> DataFrame, each searched once even if several targets share it
    plans = {}  # configuration -> its phase-two plan, made (and its notes printed) once
    for target in targets:
        entry = {"selected": None, "searched": None, "sparsest": None}
        summary["targets"][f"{target:g}"] = entry
        if df1 is not None and (win := winners[target]) is not None:
            acc = df1.groupby(["d1", "d2", "d3"])["accuracy"].max().loc[win]
            entry["selected"] = {"config": win, "structured_params": search.structured_params(win),
                                 "accuracy": float(acc)}
        cfg = config.phase_two_config or (entry["selected"] or {}).get("config")
        if cfg is None:
            print(f"target {target:.2%}: no configuration reaches it; no phase two")
            continue
        if tuple(cfg) not in plans:
            plans[tuple(cfg)] = phase_two_plan(config, cfg)
        plan = plans[tuple(cfg)]
        if plan is None:
            summary["status"] = "phase two skipped"
            continue
        if plan["stage"] not in phase_two:
            print(f"{plan['stage']}: {plan['config']} ({plan['note']}), lrs {plan['lrs']}",
                  flush=True)
            phase_two[plan["stage"]] = search.phase_two(
                store, **{**common, "config": plan["config"], "stage": plan["stage"],
                          "lrs": plan["lrs"], "max_weights": plan["max_weights"],
                          "first_k": plan["first_k"]},
                target=target, progress=progress(plan["stage"]))
        df2 = phase_two[plan["stage"]]
        entry["searched"] = {**plan, "runs": len(df2), "total_runs": df2.attrs["total_runs"],
                             "complete": df2.attrs["complete"]}
        if df2.empty:  # a task whose share of phase two is still to come: no rows yet
            entry["sparsest"], entry["models_over_target"] = None, 0
        else:
            entry["sparsest"] = _row(search.sparsest(df2, target))
            entry["models_over_target"] = int((df2["accuracy"] >= target).sum())
            entry["result"] = _result(df1, entry["sparsest"], target)
        if not df2.attrs["complete"]:
            summary["status"] = "phase two incomplete"
    store.put_json("summary", summary)
    _print_summary(summary)
    return summary


def _result(df1, sp, target: float):
    """The search's result as the summary, leaderboard and frontier count it (docs/search.md):
    the sparsest count over both phases and the best accuracy at it, which is phase one's
    dense run of the winner where that run beat phase two's training of the same (unpruned)
    mask. None when phase two's model is also the best run at its count."""
    if sp is None or df1 is None or df1.empty:
        return None
    same = df1[(df1["nnz"] == sp["nnz"]) & (df1["accuracy"] >= target)]
    if same.empty or float(same["accuracy"].max()) <= float(sp["accuracy"]):
        return None
    r = same.sort_values("accuracy", ascending=False, kind="stable").iloc[0]
    return {"nnz": int(r["nnz"]), "accuracy": float(r["accuracy"]),
            "config": [int(r["d1"]), int(r["d2"]), int(r["d3"])], "stage": "phase1"}


def _print_summary(summary: dict) -> None:
    print(f"== search {summary['preset']}: {summary['status']} ==")
    for target, entry in summary["targets"].items():
        sel, sp, se = entry["selected"], entry["sparsest"], entry["searched"]
        line = f"target {float(target):.2%}: "
        if sel:
            line += (f"phase one picks {tuple(sel['config'])} ({sel['structured_params']} "
                     f"structured params, best {sel['accuracy']:.2%})")
        else:
            line += "phase one picks nothing" if summary["phase_one"] else "phase one skipped"
        if se:
            line += (f"; phase two searched {tuple(se['config'])} ({se['note']}): "
                     f"{se['runs']:,}/{se['total_runs']:,} runs")
        print(line)
        if sp:
            print(f"  sparsest over {float(target):.2%}: {sp['nnz']} nonzeros "
                  f"({sp['nnz_weights']} weights) at {sp['accuracy']:.2%}, lr {sp['lr']:g}, "
                  f"{sp['schedule']}, mask {sp['mask_index']} "
                  f"({entry['models_over_target']:,} model"
                  f"{'s' * (entry['models_over_target'] != 1)} over the target)")
            if res := entry.get("result"):
                print(f"  the search's result (both phases; docs/search.md): {res['nnz']} "
                      f"nonzeros at {res['accuracy']:.2%}, phase one's dense "
                      f"{tuple(res['config'])} run; the line above is phase two's training of "
                      "that count (the model the figures draw)")
        elif se:
            print(f"  no model of the phase-two search reaches {float(target):.2%}")
