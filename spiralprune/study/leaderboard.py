"""A leaderboard: given pruners beside the nine built-ins and the search's sparsest models.

  python experiments/leaderboard.py [--config=experiments/configs/leaderboard.py:bench95]
      [--config.methods=my_pkg.my_module:my_pruner,snip] [--workdir=./workdirs/leaderboard]

The given pruners (built-in names, registered names or import paths ``package.module:function``)
train on the configured grid through the pruning-grid stage, ``study.prune`` (one records folder
per pruner under WORKDIR/prune, so a rerun or a new pruner trains only what is missing); the
built-ins' records come from a cache (the Quick start's workdir, or the records shipped in the
package) and the search from the shipped frontier (``spiralprune.frontier``). Every pruner is
checked before any training (``pruning.checks.check``: one-line errors naming it).

Writes WORKDIR/leaderboard.md (the table, per target: fewest nonzeros reaching it, accuracy,
gap to the search in nonzeros and as a ratio, nonzeros on disconnected paths, FLOPs),
leaderboard.csv and leaderboard.png (accuracy against nonzeros, the search on top).
"""

import logging
import pathlib
import time

import numpy as np
import pandas as pd

from spiralprune import analysis, frontier, models, plotting, recording
from spiralprune.configs import prune as prune_configs
from spiralprune.configs import search as search_configs
from spiralprune.pruning import checks, plugins, registry
from spiralprune.study import prune
from spiralprune.study import search as search_stage

logging.getLogger("jax._src.xla_bridge").addFilter(
    lambda record: "Unable to initialize backend" not in record.getMessage())

QUICK_PRUNE_WORKDIR = pathlib.Path("workdirs") / "study_quick" / "prune"


def methods(config) -> tuple[str, ...]:
    """The pruners to train: a comma-separated string ("(a,b)" too) or a sequence."""
    raw = config.methods
    if isinstance(raw, str):
        raw = raw.strip().strip("()[]").split(",")
    names = tuple(dict.fromkeys(str(m).strip().strip("'\"") for m in raw if str(m).strip()))
    if not names:
        raise ValueError("no pruner given: --config.methods=name[,package.module:function]")
    return names


def prune_config(config, method: str):
    """The experiments/prune.py config training ``method`` on the leaderboard's grid."""
    c = prune_configs.get_config("paper")
    c.preset = f"leaderboard_{config.preset}"
    c.grids = {"leaderboard": {
        "init": config.init, "methods": (method,), "widths": tuple(config.widths),
        "budgets": tuple(config.budgets), "lrs": tuple(config.lrs),
        "schedules": tuple(config.schedules), "repeats": int(config.repeats)}}
    for name in ("epochs", "batch_size", "cosine_t_max", "precision", "num_points",
                 "chunk_size", "seed"):
        c[name] = config[name]
    c.milestones = tuple(config.milestones)
    args = config.method_args.to_dict() if hasattr(config.method_args, "to_dict") else {}
    c.method_args = {method: args[method]} if method in args else {}
    c.targets = tuple(config.targets)
    return c


def builtin_runs(config) -> tuple[pd.DataFrame, str]:
    """The built-ins' records on the grid's init, and where they come from."""
    choice = str(config.builtins)
    if choice == "none":
        return pd.DataFrame(), "none"
    df = pd.DataFrame()
    if choice == "auto":   # the Quick start's records where they hold this init
        if QUICK_PRUNE_WORKDIR.is_dir():
            df = recording.load_runs(str(QUICK_PRUNE_WORKDIR))
        held = "init" in df and (df["init"] == config.init).any()
        choice = str(QUICK_PRUNE_WORKDIR) if held else "shipped"
    if choice == "shipped":
        path = frontier.pruner_file(config.init)
        df = frontier.pruner_runs(path)
        p = frontier.pruner_provenance(path)
        source = (f"shipped records ({p['runs']} runs: {p['grid']}; commit {p['commit'][:7]}, "
                  f"{p['date']})")
    else:
        if df.empty:   # not read above
            df = recording.load_runs(choice)
        source = f"records in {choice}"
    df = df[(df["init"] == config.init) & df["method"].isin(registry.METHODS)]
    return df.reset_index(drop=True), source


def search_frontier(config, workdir: pathlib.Path) -> tuple[pd.DataFrame, dict]:
    """The search's points and, per target, its sparsest model (shipped unless asked)."""
    targets = tuple(float(t) for t in config.targets)
    path = str(config.search_workdir or "")
    if config.recompute:
        sc = search_configs.get_config(str(config.search_preset))
        sc.init = config.init
        path = str(workdir / "search")
        search_stage.run(sc, path)
    if path:
        e = frontier.from_workdir(path, config.init, targets)
        pts = pd.DataFrame(e["points"]).assign(source="measured")
        best = {t: dict(e["targets"][f"{t:g}"], source="measured", label=e["label"])
                for t in targets if f"{t:g}" in e["targets"]}
        return pts, best
    best = {t: frontier.sparsest(config.init, t) for t in targets}
    return frontier.points(config.init), {t: b for t, b in best.items() if b}


def _flops(method, width, budget, nnz, config, trained_here: bool) -> float:
    # Each pruner's own pruning cost (``Pruner.cost``; a user's pruner that states none: only
    # training its sparse model). Cached built-ins trained the study's recipe (50 epochs on all
    # points, batch 128).
    recipe = ({"epochs": int(config.epochs), "n": int(config.num_points) or 49_982,
               "batch": int(config.batch_size)} if trained_here else {})
    try:
        return float(analysis.flops(method, width, int(budget), nnz=float(nnz),
                                    **recipe)["total"])
    except ValueError:
        return float("nan")


def table(runs: pd.DataFrame, search_best: dict, config, new=()) -> pd.DataFrame:
    """Per target and method: fewest nonzeros reaching it and the gap to the search."""
    rows = []
    for t in (float(x) for x in config.targets):
        ref = search_best.get(t)
        if ref:
            rows.append({"target": t, "method": "search", "new": False, "runs": np.nan,
                         "nnz": ref["nnz"], "accuracy": ref["accuracy"],
                         "at": "({},{},{})".format(*ref["config"]), "gap": 0, "ratio": 1.0,
                         "disconnected": ref.get("disconnected", np.nan), "flops": np.nan,
                         "source": ref["source"]})
        for method, g in runs.groupby("method", sort=True):
            hit = g[g["accuracy"] >= t].sort_values(["nnz", "accuracy"],
                                                    ascending=[True, False], kind="stable")
            row = {"target": t, "method": method, "new": method in new, "runs": len(g),
                   "best_acc": float(g["accuracy"].max())}
            if len(hit):
                r = hit.iloc[0]
                row |= {"nnz": int(r["nnz"]), "accuracy": float(r["accuracy"]),
                        "at": f"w{int(r['width'])} f={int(r['budget'])}",
                        "disconnected": int(r["disconnected"]),
                        "flops": _flops(method, int(r["width"]), int(r["budget"]), r["nnz"],
                                        config, method in new)}
                if ref:
                    row |= {"gap": int(r["nnz"]) - int(ref["nnz"]),
                            "ratio": int(r["nnz"]) / int(ref["nnz"])}
            rows.append(row)
    df = pd.DataFrame(rows)
    df["reached"] = df["nnz"].notna()
    df = df.sort_values(["target", "reached", "nnz", "accuracy"],
                        ascending=[True, False, True, False], kind="stable")
    return df.drop(columns="reached").reset_index(drop=True)


def format_table(df: pd.DataFrame, config) -> str:
    """The table as Markdown, one section per target; "-" where the method never reaches it."""
    out = []
    for t, g in df.groupby("target", sort=True):
        out += [f"### {t:.1%} accuracy ({models.setting(config.init)} init)", "",
                "| method | nnz | accuracy | at | gap to search | ratio | disconnected | FLOPs "
                "| best acc | runs |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in g.itertuples():
            def cell(v, fmt):
                return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt(v)
            name = plugins.short_name(r.method) + (" (new)" if r.new else "")
            if r.method == "search":
                name = f"**search** ({r.source})"
            out.append("| " + " | ".join([
                name, cell(r.nnz, lambda v: f"{int(v)}"), cell(r.accuracy, lambda v: f"{v:.2%}"),
                cell(getattr(r, "at", None), str),
                cell(getattr(r, "gap", None), lambda v: f"{int(v):+d}"),
                cell(getattr(r, "ratio", None), lambda v: f"{v:.2f}x"),
                cell(getattr(r, "disconnected", None), lambda v: f"{int(v)}"),
                cell(r.flops, lambda v: f"{v:.2g}"),
                cell(getattr(r, "best_acc", None), lambda v: f"{v:.2%}"),
                cell(r.runs, lambda v: f"{int(v)}")]) + " |")
        out.append("")
    return "\n".join(out)


def figure(runs: pd.DataFrame, search_pts: pd.DataFrame, config, path, search_label="search"):
    """Accuracy against nonzeros per method (dense left out), the search's front on top."""
    shown = runs[runs["method"] != "dense"].assign(
        method=lambda d: d["method"].map(plugins.short_name))
    ax = plotting.accuracy_vs_nonzeros(shown, by="method", search=search_pts,
                                       targets=tuple(config.targets), search_label=search_label)
    widths = ", ".join(str(w) for w in config.widths)
    plural = "s" if len(config.widths) > 1 else ""
    ax.set_title(f"Leaderboard: {models.setting(str(config.init))} init, width{plural} "
                 f"{widths}, {config.epochs} epochs")
    ax.figure.savefig(path, dpi=120)


def run(config, workdir) -> dict:
    """Trains the given pruners (what is not recorded yet) and writes the leaderboard.

    Returns:
      {"table": DataFrame, "runs": every run shown, "markdown": str, "files": [paths],
       "seconds": wall time, "builtins": where the built-ins' records came from}.
    """
    t0 = time.perf_counter()
    workdir = pathlib.Path(workdir)
    names = methods(config)
    for m in names:   # every pruner checked before any training
        for w in config.widths:
            budgets = [int(b) for b in config.budgets if int(b) < models.num_weights(w)]
            checks.validate(m, w, budgets, config.init)
    cached, source = builtin_runs(config)
    trained = []
    for m in names:
        if (m in registry.METHODS and str(config.builtins) != "none"
                and (cached["method"] == m).any()):
            continue   # a built-in the cache holds is not retrained
        df = prune.run(prune_config(config, m), workdir / "prune" / plugins.stage_name(m),
                       targets=tuple(config.targets))
        trained.append(df)
    new = tuple(m for m in names if m not in registry.METHODS or str(config.builtins) == "none")
    runs = pd.concat([cached] + trained, ignore_index=True) if trained else cached
    search_pts, search_best = search_frontier(config, workdir)
    tab = table(runs, search_best, config, new)
    md = format_table(tab, config)
    header = (f"# Leaderboard ({config.preset}): {', '.join(names)}\n\n"
              f"Built-ins: {source}. Search: "
              + "; ".join(f"{t:.1%}: {b['nnz']} nonzeros at {b['accuracy']:.2%} ({b['label']})"
                          for t, b in search_best.items()) + ".\n"
              "FLOPs: the study's Table 1 count (forward, nonzero parameters, pruning and "
              "training); a pruner outside the built-ins is counted as training its model only."
              "\n\n")
    workdir.mkdir(parents=True, exist_ok=True)
    files = [workdir / "leaderboard.md", workdir / "leaderboard.csv"]
    files[0].write_text(header + md)
    tab.to_csv(files[1], index=False)
    if config.figure:
        files.append(workdir / "leaderboard.png")
        sources = {b.get("source") for b in search_best.values()}
        figure(runs, search_pts, config, files[-1],
               "search (the paper's points)" if sources == {"paper"} else "search")
    seconds = time.perf_counter() - t0
    print(header + md, flush=True)
    print(f"[leaderboard] {len(names)} pruner(s) in {seconds:.1f} s; wrote "
          f"{', '.join(str(f) for f in files)}", flush=True)
    return {"table": tab, "runs": runs, "markdown": header + md, "files": files,
            "seconds": seconds, "builtins": source}
