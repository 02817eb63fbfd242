"""A leaderboard: given pruners beside the nine built-ins and the search's sparsest models.

  python experiments/leaderboard.py [--config=experiments/configs/leaderboard.py:bench95]
      [--config.methods=my_pkg.my_module:my_pruner,snip] [--workdir=./workdirs/leaderboard/bench95]

The given pruners (built-in names, registered names or import paths ``package.module:function``)
train on the configured grid through the pruning-grid stage, ``study.prune`` (one records folder
per pruner and grid under WORKDIR/prune, ``records_dir``, so a rerun, a new pruner or a grid
used before trains only what is missing; targets and the figure are the report's and never
retrain). The default workdir is WORKDIRS/leaderboard/<preset> (``default_workdir``: each preset
its own; WORKDIRS as ``cli.workdirs_root`` resolves it); the
built-ins' records come from a cache (the Quick start's workdir, or the records shipped in the
package) and the search from the shipped frontier (``spiralprune.frontier``). Every pruner is
checked before any training (``pruning.checks.check``: one-line errors naming it).

Writes WORKDIR/leaderboard.md (the table, per target: the search first, then the pruners by
fewest nonzeros reaching it, then accuracy; those that never reach it by their best accuracy;
the accuracy, gap to the search in nonzeros and as a ratio, nonzeros on disconnected paths,
FLOPs), leaderboard.csv (the same rows; one name per pruner, ``display_names``, the import path
in its own column) and leaderboard.png (accuracy against nonzeros, the search on top, the
given pruners highlighted and first in the legend).
"""

import json
import pathlib
import time

import numpy as np
import pandas as pd

from spiralprune import analysis, frontier, models, plotting, recording
from spiralprune.configs import prune as prune_configs
from spiralprune.configs import search as search_configs
from spiralprune.pruning import plugins, registry
from spiralprune.study import cli, prune
from spiralprune.study import search as search_stage


def quick_prune_workdir() -> pathlib.Path:
    """The Quick start's pruning records (``cli.workdirs_root``/study_quick/prune)."""
    return cli.workdirs_root() / "study_quick" / "prune"


def methods(config) -> tuple[str, ...]:
    """The pruners to train: a comma-separated string ("(a,b)" too) or a sequence."""
    raw = config.methods
    if isinstance(raw, str):
        raw = raw.strip().strip("()[]").split(",")
    names = tuple(dict.fromkeys(str(m).strip().strip("'\"") for m in raw if str(m).strip()))
    if not names:
        raise ValueError("no pruner given: --config.methods=name[,package.module:function]")
    return names


display_names = plugins.display_names   # one naming rule (the prune table uses it too)


def prune_config(config, method: str):
    """The experiments/prune.py config training ``method`` on the leaderboard's grid.

    Only what changes a record is in it (the grid and the training recipe): the preset's name,
    the targets and the figure are the leaderboard's report, so changing them never retrains.
    """
    c = prune_configs.get_config("paper")
    c.preset = "leaderboard"
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
    return c


def records_dir(config, method: str, workdir) -> pathlib.Path:
    """Where ``method``'s runs on this grid are recorded: WORKDIR/prune/<pruner>-<grid key>.

    The key is the recorded config's hash (``recording.config_hash``: grid and recipe), so
    two grids (the presets, or a changed budget list) keep their records side by side in one
    workdir and switching back to a grid reuses its records.
    """
    key = recording.config_hash(prune_config(config, method).to_dict())[:10]
    return pathlib.Path(workdir) / "prune" / f"{plugins.stage_name(method)}-{key}"


def builtin_runs(config) -> tuple[pd.DataFrame, str]:
    """The built-ins' records on the grid's init, and where they come from."""
    choice = str(config.builtins)
    if choice == "none":
        return pd.DataFrame(), "none"
    df = pd.DataFrame()
    if choice == "auto":   # the Quick start's records where they hold this init
        quick = quick_prune_workdir()
        if quick.is_dir():
            df = recording.load_runs(str(quick))
        held = "init" in df and (df["init"] == config.init).any()
        choice = str(quick) if held else "shipped"
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


def table(runs: pd.DataFrame, search_best: dict, config, new=(), asked=()) -> pd.DataFrame:
    """Per target and method: fewest nonzeros reaching it and the gap to the search.

    Ranked per target: the search first, then the methods reaching the target by fewest
    nonzeros, then best accuracy at that count, then those that never reach it by their best
    accuracy. ``method`` is the one display name (``display_names``); ``path`` the name the
    pruner was given by (an import path), ``asked`` whether it was given, ``new`` whether it
    trained here.
    """
    shown = display_names(list(asked) + sorted(set(runs["method"]) if len(runs) else []))
    rows = []
    for t in (float(x) for x in config.targets):
        ref = search_best.get(t)
        if ref:
            rows.append({"target": t, "method": "search", "path": "", "asked": False,
                         "new": False, "runs": np.nan,
                         "nnz": ref["nnz"], "accuracy": ref["accuracy"],
                         "at": "({},{},{})".format(*ref["config"]), "gap": 0, "ratio": 1.0,
                         "disconnected": ref.get("disconnected", np.nan), "flops": np.nan,
                         "source": ref["source"]})
        for method, g in runs.groupby("method", sort=True):
            hit = g[g["accuracy"] >= t].sort_values(["nnz", "accuracy"],
                                                    ascending=[True, False], kind="stable")
            row = {"target": t, "method": shown[method],
                   "path": method if method != shown[method] else "",
                   "asked": method in asked, "new": method in new, "runs": len(g),
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
    for col in ("nnz", "accuracy", "best_acc"):
        if col not in df:
            df[col] = np.nan
    df["_rank"] = np.where(df["method"] == "search", 0, np.where(df["nnz"].notna(), 1, 2))
    df = df.sort_values(["target", "_rank", "nnz", "accuracy", "best_acc", "method"],
                        ascending=[True, True, True, False, False, True], kind="stable",
                        na_position="last")
    return df.drop(columns="_rank").reset_index(drop=True)


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
            name = f"**{r.method}**" if r.asked else r.method
            name += " (new)" if r.new else ""
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


def figure(runs: pd.DataFrame, search_pts: pd.DataFrame, config, path, search_label="search",
           asked=()):
    """Accuracy against nonzeros per method (dense left out), the search's front on top and
    the pruners given (``asked``) highlighted: strong colours, bold, first in the legend."""
    names = display_names(list(asked) + sorted(set(runs["method"])))
    shown = runs[runs["method"] != "dense"].assign(method=lambda d: d["method"].map(names))
    ax = plotting.accuracy_vs_nonzeros(shown, by="method", search=search_pts,
                                       targets=tuple(config.targets), search_label=search_label,
                                       highlight=[names[m] for m in asked])
    widths = ", ".join(str(w) for w in config.widths)
    plural = "s" if len(config.widths) > 1 else ""
    ax.set_title(f"Leaderboard: {models.setting(str(config.init))} init, width{plural} "
                 f"{widths}, {config.epochs} epochs")
    plotting.save(ax.figure, path, dpi=120)


# The recipe the built-ins' cached and shipped records trained (the study's).
BUILTIN_RECIPE = {"epochs": 50, "batch_size": 128, "num_points": 0, "precision": "highest"}


def default_workdir(config) -> pathlib.Path:
    """WORKDIRS/leaderboard/<preset> (``cli.workdirs_root``): each preset its own."""
    return cli.workdirs_root() / "leaderboard" / str(config.preset)


def check(config) -> tuple[str, ...]:
    """Everything the leaderboard would refuse, before any training: one-line ValueErrors.

    Returns:
      the pruners to train (``methods``).
    """
    return _checked(config, _check_fields(config))[0]


def _check_fields(config) -> tuple[str, ...]:
    """The config's own fields refused in one line (``check`` then plans every pruner)."""
    names = methods(config)
    targets = list(config.targets) if not isinstance(config.targets, str) else []
    if not targets or not all(isinstance(t, (int, float)) and 0 < float(t) <= 1
                              for t in targets):
        raise ValueError(f"targets must be a non-empty list of accuracies in (0, 1], got "
                         f"{config.targets!r}")
    widths = [int(w) for w in config.widths]
    budgets = [int(b) for b in config.budgets]
    if not widths or not budgets:
        raise ValueError("widths and budgets must not be empty")
    if len(set(budgets)) != len(budgets):
        raise ValueError(f"budgets {tuple(budgets)} repeat a value (each would train twice)")
    largest = max(models.num_weights(w) for w in widths)
    held_nowhere = [b for b in budgets if b >= largest]
    if held_nowhere:
        raise ValueError(
            f"budget{'s' if len(held_nowhere) > 1 else ''} {', '.join(map(str, held_nowhere))} "
            f"fit{'' if len(held_nowhere) > 1 else 's'} no width of {tuple(widths)} (a budget "
            f"must be below N_w, the weights of the width: at most {largest - 1} here)")
    if str(config.search_workdir) and not config.recompute:
        try:
            recording.Store.open(str(config.search_workdir))
        except ValueError:
            raise ValueError(f"search_workdir {config.search_workdir} holds no search records"
                             ) from None
    search_configs.get_config(str(config.search_preset))   # unknown: refused, even unused
    return names


def _checked(config, names) -> tuple[tuple[str, ...], dict]:
    """``names`` and each one's frozen pruning plan: every pruner run once per width, and the
    whole prune config (recipe, lrs, schedules, memory) checked, before any training."""
    return names, {m: prune.check(prune_config(config, m)) for m in names}


def plan_notes(config, cached: pd.DataFrame) -> list[str]:
    """Lines for the plan: budgets some width cannot hold, and a grid or recipe other than
    the one the built-ins' records trained (the comparison is then not like for like)."""
    notes = []
    for w in (int(w) for w in config.widths):
        skipped = [int(b) for b in config.budgets if int(b) >= models.num_weights(w)]
        if skipped:
            notes.append(f"width {w} holds budgets below {models.num_weights(w)} only: "
                         f"{', '.join(map(str, skipped))} train at the other widths")
    if cached.empty:
        return notes
    held = set(zip(cached["width"].astype(int), cached["budget"].astype(int),
                   cached["lr"].astype(float), cached["schedule"].astype(str)))
    mine = {(int(w), int(b), float(lr), str(s)) for w in config.widths for b in config.budgets
            for lr in config.lrs for s in config.schedules if int(b) < models.num_weights(w)}
    recipe = {k: config[k] for k in BUILTIN_RECIPE if config[k] != BUILTIN_RECIPE[k]}
    repeats = int(cached["repeat"].max()) + 1 if "repeat" in cached else 1
    if not mine <= held or recipe or int(config.repeats) > repeats:
        what = []
        if not mine <= held:
            what.append(f"{len(mine - held)} of {len(mine)} (width, budget, lr, schedule) "
                        "points are not in their grid")
        if recipe:
            what.append("recipe " + ", ".join(f"{k}={v}" for k, v in recipe.items())
                        + " (theirs: " + ", ".join(f"{k}={BUILTIN_RECIPE[k]}" for k in recipe)
                        + ")")
        if int(config.repeats) > repeats:
            what.append(f"{config.repeats} repeats (theirs: {repeats})")
        notes.append("warning: the grid differs from the built-ins' records (" + "; ".join(what)
                     + "): the comparison is not like for like (builtins='none' trains the "
                     "built-ins named in methods on this grid)")
    return notes


def other_pruners(config, workdir, names) -> list[str]:
    """Pruners recorded in ``workdir`` on this grid that ``names`` leaves out (a report shows
    the pruners of its command only), by their import paths or names."""
    asked = {records_dir(config, m, workdir).name for m in names}
    out = []
    for path in sorted((pathlib.Path(workdir) / "prune").glob("*/config.json")):
        if path.parent.name in asked:
            continue
        try:
            methods = json.loads(path.read_text())["grids"]["leaderboard"]["methods"]
        except (OSError, ValueError, KeyError, TypeError):
            continue   # not a leaderboard record folder
        if len(methods) == 1 and records_dir(config, methods[0], workdir).name == \
                path.parent.name:
            out.append(str(methods[0]))
    return out


def run(config, workdir=None) -> dict:
    """Trains the given pruners (what is not recorded yet) and writes the leaderboard.

    Args:
      config: a leaderboard ConfigDict (``spiralprune.configs.leaderboard``).
      workdir: where records, table and figure go; None: ``default_workdir(config)``.

    Returns:
      {"table": DataFrame, "runs": every run shown, "markdown": str, "files": [paths],
       "seconds": wall time, "builtins": where the built-ins' records came from}.
    """
    t0 = time.perf_counter()
    workdir = pathlib.Path(default_workdir(config) if workdir is None else workdir)
    if not str(workdir).strip():
        raise ValueError("--workdir is empty; leave it out for the default "
                         f"({default_workdir(config)})")
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"workdir {workdir} is not a directory")
    names, plans = _checked(config, _check_fields(config))
    cached, source = builtin_runs(config)
    notes = plan_notes(config, cached)
    others = other_pruners(config, workdir, names)
    if others:
        shown_others = display_names(others)
        notes.append("also recorded in this workdir on this grid, not shown: "
                     + ", ".join(shown_others[m] for m in others)
                     + " (name them in --config.methods too to show them beside these)")
    for note in notes:
        print(f"[leaderboard] {note}", flush=True)
    targets = tuple(float(t) for t in config.targets)
    trained = []
    for m in names:
        if (m in registry.METHODS and str(config.builtins) != "none"
                and (cached["method"] == m).any()):
            continue   # a built-in the cache holds is not retrained
        df = prune.run(plans[m], records_dir(config, m, workdir), targets=targets)
        trained.append(df)
    new = tuple(m for m in names if m not in registry.METHODS or str(config.builtins) == "none")
    runs = pd.concat([cached] + trained, ignore_index=True) if trained else cached
    search_pts, search_best = search_frontier(config, workdir)
    tab = table(runs, search_best, config, new, asked=names)
    md = format_table(tab, config)
    shown = display_names(list(names))
    reached = "; ".join(f"{t:.1%}: {b['nnz']} nonzeros at {b['accuracy']:.2%} ({b['label']})"
                        for t, b in search_best.items()) or "reaches no target"
    header = (f"# Leaderboard ({config.preset}): {', '.join(shown[m] for m in names)}\n\n"
              f"Built-ins: {source}. Search: {reached}.\n"
              "FLOPs: the study's Table 1 count (forward, nonzero parameters, pruning and "
              "training); a pruner outside the built-ins is counted as training its model only."
              "\n\n")
    workdir.mkdir(parents=True, exist_ok=True)
    files = [workdir / "leaderboard.md", workdir / "leaderboard.csv"]
    recording.write_file(files[0], header + md)
    tab.to_csv(files[1], index=False)
    if config.figure:
        files.append(workdir / "leaderboard.png")
        sources = {b.get("source") for b in search_best.values()}
        figure(runs, search_pts, config, files[-1],
               "search (the paper's points)" if sources == {"paper"} else "search",
               asked=names)
    seconds = time.perf_counter() - t0
    print(header + md, flush=True)
    print(f"[leaderboard] {len(names)} pruner(s) in {seconds:.1f} s; wrote "
          f"{', '.join(str(f) for f in files)}", flush=True)
    return {"table": tab, "runs": runs, "markdown": header + md, "files": files,
            "seconds": seconds, "builtins": source}
