"""The ground truth shipped as data: the combinatorial search's frontier, and cached pruner runs.

``data/frontier.json`` holds, per init and source, the search's frontier: at every nonzero
count its runs reached, the best accuracy (with the configuration, lr and schedule of that
run), and per target the sparsest model reaching it, with provenance (command, device, date,
commit, runs). Sources:

- "measured": this project's own run of the search (BENCH-95: the Quick start, 50 epochs, the
  study's whole BENCH-95 grid, on a 2-core CPU);
- "paper": the study's published points, clearly labelled as the paper's (random init: 30
  nonzeros at 96.04% for 95% and 45 at 99.59% for 99.5%; BENCH-95: 26 at 96.47%; BENCH-995:
  38 at 99.70%), until a run of ours exists.

``data/pruners_bench95.json`` holds the records of the nine pruners (and dense and random) on
the Quick start's BENCH-95 grid (widths 3 and 16, budgets 15..26, lr 0.1, cosine, one repeat),
so a leaderboard trains only the pruners it is given; ``data/pruners_torch16.json`` the same
on the random-init grid at width 16 (the study's budgets, lr 0.1, cosine, three repeats).

Comparisons read these instead of rerunning the search; ``from_workdir`` rebuilds a frontier
from a search workdir (``experiments/leaderboard.py --config.search_workdir=DIR``), and
``build_file`` regenerates the shipped file.
"""

import datetime
import functools
import json
import pathlib

import numpy as np
import pandas as pd

from spiralprune import models, recording

DATA = pathlib.Path(__file__).resolve().parent / "data"
FRONTIER_FILE = DATA / "frontier.json"
PRUNERS_FILE = DATA / "pruners_bench95.json"
# The shipped built-in records per init (the leaderboard presets' grids).
PRUNERS_FILES = {"bench95": PRUNERS_FILE, "torch": DATA / "pruners_torch16.json",
                 "bench995": DATA / "pruners_bench995.json"}
FORMAT = "spiralprune-frontier/1"
PRUNERS_FORMAT = "spiralprune-pruner-runs/1"
SOURCES = ("measured", "paper")
# The init names records use ("torch") and the names the study's tables use ("random").

# The study's published sparsest models (docs/search.md), per init and target.
PAPER = {
    "random": {0.95: (30, 0.9604, (3, 3, 3)), 0.995: (45, 0.9959, (7, 3, 3))},
    "bench95": {0.95: (26, 0.9647, (3, 2, 2))},
    "bench995": {0.995: (38, 0.9970, (6, 3, 2))},
}
PRUNER_COLUMNS = ("init", "method", "width", "budget", "lr", "schedule", "repeat", "seed",
                  "accuracy", "loss", "diverged", "nnz_weights", "nnz", "mask_nnz_weights",
                  "effective_nnz", "disconnected")


@functools.lru_cache(maxsize=4)
def _read(path: str) -> dict:
    return json.loads(pathlib.Path(path).read_text())


def load(path=FRONTIER_FILE) -> dict:
    """The frontier file as a dict (``format``, ``frontiers``: one entry per init and source)."""
    data = _read(str(path))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    return data


def entries(init: str | None = None, source: str | None = None, path=FRONTIER_FILE) -> list:
    """The frontier entries for ``init`` and ``source`` (None: any), measured ones first."""
    out = [e for e in load(path)["frontiers"]
           if (init is None or e["init"] == models.setting(init))
           and (source is None or e["source"] == source)]
    return sorted(out, key=lambda e: SOURCES.index(e["source"]))


def entry(init: str, source: str | None = None, path=FRONTIER_FILE) -> dict:
    """The best entry for ``init``: measured if there is one, else the paper's."""
    found = entries(init, source, path)
    if not found:
        known = sorted({e["init"] for e in load(path)["frontiers"]})
        raise ValueError(f"no search frontier for init {init!r} (source {source}); "
                         f"known: {known}")
    return found[0]


def points(init: str, source: str | None = None, path=FRONTIER_FILE) -> pd.DataFrame:
    """The search's best accuracy at every nonzero count it reached (columns nnz, accuracy,
    config, lr, schedule, frontier), or the paper's sparsest points when that is all there is.
    """
    e = entry(init, source, path)
    rows = e.get("points") or [dict(t, target=float(k)) for k, t in e["targets"].items()]
    df = pd.DataFrame(rows)
    df["source"] = e["source"]
    return df.sort_values("nnz", kind="stable").reset_index(drop=True)


def sparsest(init: str, target: float, source: str | None = None, path=FRONTIER_FILE):
    """The sparsest search model reaching ``target``: a dict (nnz, accuracy, config, source,
    label), or None if the frontier holds no such model.

    Any target: a level the entry does not list is read off its points (the fewest nonzeros
    whose best accuracy reaches it, as ``from_records`` counts), so 90% needs no new search.
    """
    for e in entries(init, source, path):
        hit = e["targets"].get(f"{float(target):g}") or _from_points(e, float(target))
        if hit is not None:
            return dict(hit, source=e["source"], label=e["label"])
    return None


def _from_points(e: dict, target: float):
    """The first point (fewest nonzeros; points hold the best accuracy per count) reaching it."""
    for p in sorted(e.get("points") or [], key=lambda p: p["nnz"]):
        if p["accuracy"] >= target:
            return {k: p[k] for k in ("nnz", "accuracy", "config", "lr", "schedule",
                                      "disconnected") if k in p}
    return None


# --- Building the file. ---


def from_records(df: pd.DataFrame, targets=(0.95, 0.995)) -> dict:
    """Frontier points and per-target sparsest models from search records.

    Args:
      df: search records (columns stage, nnz, accuracy, d1, d2, d3, lr, schedule,
        disconnected).
      targets: accuracy levels.

    Returns:
      {"points": [...], "targets": {"0.95": {...}, ...}}. Points: per nonzero count the best
      accuracy over every run of both phases (its stage, configuration, lr, schedule, and
      whether it is on the monotone frontier). Targets, as the study's summary counts them:
      the fewest nonzeros among the search's models (both phases: phase two holds the
      winner's unpruned mask, so the count is phase two's) reaching the target, and the best
      accuracy at that count.
    """
    d = df.dropna(subset=["accuracy"]).sort_values(["nnz", "accuracy"],
                                                   ascending=[True, False], kind="stable")
    best = d.groupby("nnz", sort=True).head(1)
    top = -np.inf
    pts = []
    for r in best.itertuples():
        on = float(r.accuracy) > top
        top = max(top, float(r.accuracy))
        pts.append({"nnz": int(r.nnz), "accuracy": float(r.accuracy), "stage": str(r.stage),
                    "config": [int(r.d1), int(r.d2), int(r.d3)], "lr": float(r.lr),
                    "schedule": str(r.schedule), "disconnected": int(r.disconnected),
                    "frontier": bool(on)})
    hits = {}
    for t in targets:
        ok = d[d["accuracy"] >= t]
        if len(ok):
            r = ok.iloc[0]   # sorted by nnz, then accuracy descending
            hits[f"{float(t):g}"] = {"nnz": int(r["nnz"]), "accuracy": float(r["accuracy"]),
                                     "config": [int(r["d1"]), int(r["d2"]), int(r["d3"])],
                                     "lr": float(r["lr"]), "schedule": str(r["schedule"]),
                                     "disconnected": int(r["disconnected"])}
    return {"points": pts, "targets": hits}


def from_workdir(workdir, init: str, targets=(0.95, 0.995)) -> dict:
    """A "measured" frontier entry from a search workdir (no provenance beyond its size)."""
    df = recording.load_runs(workdir)
    entry_ = {"init": models.setting(init), "source": "measured",
              "label": f"search ({pathlib.Path(workdir).name})", **from_records(df, targets)}
    entry_["provenance"] = {"workdir": pathlib.Path(workdir).name, "runs": int(len(df))}
    return entry_


def paper_entries() -> list[dict]:
    """The study's published sparsest models, one entry per init."""
    out = []
    for init, hits in PAPER.items():
        out.append({
            "init": init, "source": "paper", "label": "search (the paper's published points)",
            "targets": {f"{t:g}": {"nnz": n, "accuracy": a, "config": list(c)}
                        for t, (n, a, c) in hits.items()},
            "points": [],
            "provenance": {"source": "the study's published results (Sparsest Models Elude "
                                     "Pruning, ICML 2024); not rerun by this project"}})
    return out


def build_file(measured: list[dict], path=FRONTIER_FILE) -> dict:
    """Writes the frontier file: ``measured`` entries (with provenance) and the paper's."""
    data = {"format": FORMAT,
            "description": "The combinatorial search's frontier per init and source: the best "
                           "accuracy at every nonzero count (points) and the sparsest model "
                           "reaching each target (targets). 'measured' entries are this "
                           "project's runs, 'paper' entries the study's published points.",
            "written": datetime.date.today().isoformat(),
            "frontiers": list(measured) + paper_entries()}
    recording.write_file(path, json.dumps(data, indent=1) + "\n")
    _read.cache_clear()
    return data


# --- Cached pruner runs (the leaderboard's built-ins). ---


def pruner_file(init: str) -> pathlib.Path:
    """The shipped built-in records for ``init``.

    Raises:
      ValueError: no records are shipped for that init (one line, naming those that are).
    """
    if init not in PRUNERS_FILES:
        raise ValueError(f"no built-in pruner records are shipped for init {init!r} (shipped: "
                         f"{', '.join(sorted(PRUNERS_FILES))}); train them with "
                         "--config.builtins=none and their names in --config.methods")
    return PRUNERS_FILES[init]


def pruner_runs(path=PRUNERS_FILE) -> pd.DataFrame:
    """The shipped records of the built-in pruners on a leaderboard grid (``pruner_file``)."""
    data = _read(str(path))
    if data.get("format") != PRUNERS_FORMAT:
        raise ValueError(f"{path} is not a {PRUNERS_FORMAT} file")
    return pd.DataFrame(data["columns"])


def pruner_provenance(path=PRUNERS_FILE) -> dict:
    """Where the shipped pruner records come from (command, device, date, commit, grid)."""
    return dict(_read(str(path))["provenance"])


def build_pruners_file(df: pd.DataFrame, provenance: dict, path=PRUNERS_FILE) -> None:
    """Writes the shipped pruner records (the columns ``PRUNER_COLUMNS`` of ``df``)."""
    cols = {}
    for c in PRUNER_COLUMNS:
        v = df[c].to_numpy()
        if v.dtype.kind == "f":   # accuracies exact: rounding could cross a target
            cols[c] = [float(x) if c == "accuracy" else round(float(x), 6) for x in v]
        elif v.dtype.kind in "iu":
            cols[c] = [int(x) for x in v]
        elif v.dtype.kind == "b":
            cols[c] = [bool(x) for x in v]
        else:
            cols[c] = [str(x) for x in v]
    data = {"format": PRUNERS_FORMAT, "provenance": provenance, "columns": cols}
    recording.write_file(path, json.dumps(data, separators=(",", ":")) + "\n")
    _read.cache_clear()
