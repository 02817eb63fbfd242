"""Regenerates the study's figures and tables from recorded workdirs (docs/README.md).

  python experiments/figures.py --workdirs=./workdirs/study --out=./figures
  python experiments/figures.py --workdirs=workdirs/search_quick,workdirs/prune_quick --out=figs

Each path is searched recursively for workdirs (a directory with ``config.json`` and
``store.json``): search workdirs (``experiments/search.py``) and prune workdirs
(``experiments/prune.py``), e.g. a study directory holding ``search/``, ``prune/``,
``bench95_search/`` and ``bench995_search/``. Nothing is trained: every figure is drawn from the
records (and the stored final parameters) by the library's analysis, plotting and playground
functions. Written to ``--out``: PNGs, the playground HTML pages and ``summary.md`` (every table,
with links to the figures); a prune grid with several repeats also gets its spread over repeats
(a table and ``repeats_<init>_<target>.png``). A part whose records are missing (no prune
workdir, no phase two) is skipped with a note in summary.md; an empty or missing workdir, or
records without the columns a figure needs, is a one-line error (exit status 2).

Figures are cached: each part (a search's figures, the fronts, the disconnected paths, the
FLOPs, the no-path curve) is redrawn only when its inputs changed: a hash of the records it
reads, its arguments and the drawing code, kept in ``figures_cache.json`` in ``--out`` (a part
whose files are missing is redrawn). A rerun on unchanged records takes seconds and says what
it skipped; progress is printed as "[figures] k/n part".

Runtime: seconds for the smoke and quick presets on a CPU, the random-pruning Monte Carlo
included (one compiled call per curve); the paper's records take a few minutes the first time,
mostly loading the stored parameters of every pruned run for the disconnected-path counts.
"""

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import re
import time

import matplotlib.backends.backend_agg
import matplotlib.figure
import matplotlib.ticker
import numpy as np
import pandas as pd

from spiralprune import analysis, datasets, models, playground, plotting, recording, search

KINDS = ("search", "prune")
TARGETS = (0.95, 0.995)
STUDY_WIDTHS = (3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256)
# Random pruning keeping as many weights per layer as the dense winners of phase one, (3,3,3)
# and (7,3,3): the theorem's n_l fixed while the width grows.
NO_PATH_COUNTS = {"(3,3,3): 6, 9, 9, 3 weights": (6, 9, 9, 3),
                  "(7,3,3): 14, 21, 9, 3 weights": (14, 21, 9, 3)}
FLOPS_SETTING = (16, 55)  # the study's Table 1: width 16, budget 55 weights
_COLUMNS = {
    "phase1": ("d1", "d2", "d3", "accuracy", "nnz", "structured_params"),
    "phase2": ("d1", "d2", "d3", "accuracy", "nnz", "nnz_weights", "mask_index", "lr",
               "schedule"),
    "prune": ("init", "method", "width", "accuracy", "nnz"),
}
_STORE_FILES = ("config.json", "store.json")
CACHE_FILE = "figures_cache.json"
_CACHE_VERSION = 1


@dataclasses.dataclass
class Records:
    """The rows of one search or prune workdir.

    Attributes:
      path: the workdir.
      label: a short unique name for file names and headings (its path below the given root).
      kind: "search" or "prune".
      store: the read-only ``recording.Store``.
      rows: every recorded row (``Store.load``).
    """

    path: pathlib.Path
    label: str
    kind: str
    store: recording.Store
    rows: pd.DataFrame

    @property
    def setting(self) -> str:
        """The init setting a search compares with: "random", "bench95" or "bench995"."""
        return models.setting(self.store.config.get("init", "random"))

    @property
    def targets(self) -> tuple:
        """The search config's targets (empty for a prune workdir)."""
        return tuple(float(t) for t in self.store.config.get("targets", ())) \
            if self.kind == "search" else ()


def _workdirs_under(root: pathlib.Path) -> list[pathlib.Path]:
    found = []
    for here, dirs, files in os.walk(root):
        dirs.sort()
        if all(name in files for name in _STORE_FILES):
            found.append(pathlib.Path(here))
            dirs[:] = [d for d in dirs if d not in ("shards", "notes")]
    return found


def _label(path: pathlib.Path, root: pathlib.Path) -> str:
    rel = path.relative_to(root).as_posix()
    name = path.resolve().name if rel == "." else rel
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "workdir"


def _check_columns(rec_path, rows: pd.DataFrame, columns) -> None:
    for c in columns:
        if c not in rows.columns:
            raise ValueError(f"records in {rec_path} lack column {c!r}")


def discover(workdirs) -> tuple[list[Records], list[str]]:
    """Finds the search and prune workdirs under each path and loads their rows.

    Args:
      workdirs: paths (str or PathLike), each a workdir or a directory holding workdirs at any
        depth.

    Returns:
      (records, notes): the non-empty search and prune workdirs in path order, and one line per
      workdir that was skipped (another kind, or no rows yet).

    Raises:
      ValueError (one line): no paths, a path that does not exist, a path without any workdir,
      no rows in any workdir, or rows without the columns the figures need.
    """
    roots = [pathlib.Path(w) for w in workdirs]
    if not roots:
        raise ValueError("no workdirs given")
    records, notes, labels = [], [], set()
    for root in roots:
        if not root.is_dir():
            raise ValueError(f"workdir {root} does not exist")
        found = _workdirs_under(root)
        if not found:
            raise ValueError(f"no spiralprune records under {root} (no config.json and "
                             "store.json)")
        for path in found:
            store = recording.Store.open(path)
            if store.kind not in KINDS:  # a study's own workdir only holds the others
                if store.kind != "study":
                    notes.append(f"`{path}` holds {store.kind!r} records: not drawn")
                continue
            rows = store.load()
            if rows.empty:
                notes.append(f"`{path}` ({store.kind}) holds no records yet: skipped")
                continue
            if store.kind == "prune":
                _check_columns(path, rows, _COLUMNS["prune"])
            else:
                for part in ("phase1", "phase2"):
                    if rows["stage"].str.startswith(part).any():
                        _check_columns(path, rows, _COLUMNS[part])
            label, i = _label(path, root), 2
            while label in labels:
                label, i = f"{_label(path, root)}_{i}", i + 1
            labels.add(label)
            records.append(Records(path, label, store.kind, store, rows))
    if not records:
        raise ValueError(f"no search or prune rows under {', '.join(map(str, roots))}")
    return records, notes


def params_tree(flat: dict) -> dict:
    """Nests stored params ``{"layer0/kernel": a, ...}`` as ``{"layer0": {"kernel": a}, ...}``.

    Args:
      flat: ``Store.load_params`` output (leaves may carry a leading P axis).

    Returns:
      the params dict of ``models`` (layers ``models.LAYERS``, leaves kernel and bias).
    """
    tree = {}
    for name, a in flat.items():
        layer, _, leaf = name.partition("/")
        tree.setdefault(layer, {})[leaf] = a
    for layer in models.LAYERS:
        if set(tree.get(layer, {})) != {"kernel", "bias"}:
            raise ValueError(f"stored params lack {layer}/kernel or {layer}/bias")
    return tree


def chunk_params(store: recording.Store, stage: str, chunk: str, rows) -> dict:
    """The stored params of several runs of one shard, stacked on a leading P axis.

    Args:
      store: the workdir's store.
      stage, chunk: the shard.
      rows: (P,) row indices within the shard.

    Returns:
      a params tree with leaves (P, ...).
    """
    flats = [store.load_params(stage, chunk, int(r)) for r in rows]
    if not flats or not flats[0]:
        raise ValueError(f"{store.workdir}: shard {stage}/{chunk} stores no params")
    return params_tree({k: np.stack([f[k] for f in flats]) for k in flats[0]})


def effective_counts(store: recording.Store, rows: pd.DataFrame) -> pd.DataFrame:
    """Effective and disconnected nonzeros of recorded runs, one shard at a time (vectorised).

    Args:
      store: the workdir's store; the runs' final params must be stored.
      rows: ``Store.load`` rows of that store (any subset).

    Returns:
      ``rows`` with the columns effective_nnz, effective_weights and disconnected added
      (``analysis.effective_nonzeros`` of each run's stored params), same index.
    """
    parts = []
    for (stage, chunk), g in rows.groupby(["stage", "chunk"], sort=False):
        counts = analysis.effective_nonzeros(chunk_params(store, stage, chunk, g["row"]))
        parts.append(pd.DataFrame({k: np.asarray(counts[k]) for k in
                                   ("effective_nnz", "effective_weights", "disconnected")},
                                  index=g.index))
    rows = rows.drop(columns=["effective_nnz", "effective_weights", "disconnected"],
                     errors="ignore")
    if not parts:
        return rows.assign(effective_nnz=[], effective_weights=[], disconnected=[])
    return rows.join(pd.concat(parts))


def with_effective(store: recording.Store, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with effective_nnz and disconnected: as recorded, else from the stored params.

    Records written since the binaries record ``analysis.record_columns`` carry both columns;
    older records get them from ``effective_counts`` (one shard at a time).

    Args:
      store: the workdir's store.
      rows: ``Store.load`` rows of that store.

    Returns:
      ``rows`` with both columns (int), same index.
    """
    cols = ["effective_nnz", "disconnected"]
    if set(cols) <= set(rows.columns) and rows[cols].notna().all().all():
        return rows.astype({c: int for c in cols})
    return effective_counts(store, rows)


# --- Formatting. ---


def md_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (values as ``str``)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def reach_cell(nnz, accuracy) -> str:
    """Fewest nonzeros and its accuracy as "30 (96.04%)", or "-" where never reached."""
    if pd.isna(nnz):
        return "-"
    return f"{int(nnz)} ({100 * float(accuracy):.2f}%)"


def target_column(target: float, prefix: str = "nnz") -> str:
    """Column title of a target in the tables, e.g. "nnz @95%"."""
    return f"{prefix} @{100 * target:g}%"


def reach_table(df: pd.DataFrame, targets, by=("method",), x: str = "nnz") -> pd.DataFrame:
    """Per group: runs, best accuracy and the fewest ``x`` reaching each target.

    Args:
      df: rows with the columns ``by``, ``x`` and accuracy.
      targets: accuracy levels.
      by: grouping columns.
      x: the nonzero count column.

    Returns:
      DataFrame: by..., runs, best accuracy, one "nnz @T%" column per target (``reach_cell``),
      from ``analysis.fewest_reaching``.
    """
    by = list(by)
    fewest = analysis.fewest_reaching(df, targets=tuple(targets), by=tuple(by), x=x)
    out = df.groupby(by, sort=True).agg(runs=("accuracy", "size"), best=("accuracy", "max"))
    out = out.reset_index()
    out["best accuracy"] = [f"{100 * v:.2f}%" for v in out.pop("best")]
    for t in targets:
        hit = fewest[np.isclose(fewest["target"], t)]
        cells = {tuple(r[by]): reach_cell(r[x], r["accuracy"]) for _, r in hit.iterrows()}
        out[target_column(t, "nnz" if x == "nnz" else "effective nnz")] = [
            cells[tuple(r)] for r in out[by].itertuples(index=False)]
    return out


def _search_last(table: pd.DataFrame) -> pd.DataFrame:
    """The search's rows after the pruners' (as in the figures' legends)."""
    return table.sort_values("method", key=lambda m: m.str.startswith("search"), kind="stable")


def _visible(targets, accuracy) -> tuple:
    """Targets worth a line on a plot whose best accuracy is ``accuracy``."""
    top = float(np.nanmax(accuracy)) if len(accuracy) else 1.0
    return tuple(t for t in targets if t <= top + 0.05)


def _pct(t: float) -> str:
    return f"{100 * t:g}%"


def _digest(*parts) -> str:
    """sha256 of records (DataFrames: columns and values) and JSON-able arguments."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, (tuple, list)):
            h.update(b"[" + _digest(*part).encode() + b"]")
        elif isinstance(part, pd.DataFrame):
            h.update(repr([(str(c), str(t)) for c, t in part.dtypes.items()]).encode())
            try:
                h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
            except TypeError:  # unhashable cells (lists): their text
                h.update(part.to_csv(index=False).encode())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


@functools.cache
def _code_digest() -> str:
    """Hash of the drawing code: a change to it redraws every figure."""
    files = [pathlib.Path(__file__)] + [pathlib.Path(m.__file__) for m in
                                        (analysis, plotting, playground, search)]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


class _Out:
    """Collects the figures written into the output directory."""

    def __init__(self, out_dir: pathlib.Path):
        self.dir, self.files = out_dir, []

    def save(self, fig: matplotlib.figure.Figure, name: str) -> str:
        matplotlib.backends.backend_agg.FigureCanvasAgg(fig)
        plotting.save(fig, self.dir / name, dpi=120)
        self.files.append(str(self.dir / name))
        return name

    def html(self, params, name: str, **kwargs) -> str:
        playground.to_html(params, self.dir / name, **kwargs)
        self.files.append(str(self.dir / name))
        return name


class _Cache:
    """Which parts of the figures are up to date: ``figures_cache.json`` in the output folder.

    Each part is stored as {hash, files (names in the folder), lines (its markdown), notes}; a
    part is reused when its hash matches and all its files exist.
    """

    def __init__(self, out: _Out, progress, total: int):
        self.out, self.progress, self.total, self.done = out, progress, total, 0
        self.path = out.dir / CACHE_FILE
        try:
            old = json.loads(self.path.read_text())
            self.parts = old["parts"] if old.get("version") == _CACHE_VERSION else {}
        except (OSError, ValueError, KeyError, TypeError):
            self.parts = {}
        self.drawn, self.skipped = [], []

    def part(self, name: str, inputs: tuple, draw) -> tuple[list[str], list[str]]:
        """(lines, notes) of one part: cached, or ``draw()`` (returning them) when stale."""
        self.done += 1
        key = _digest(name, _code_digest(), *inputs)
        entry = self.parts.get(name)
        where = f"[figures] {self.done}/{self.total} {name}"
        if (entry and entry.get("hash") == key
                and all((self.out.dir / f).is_file() for f in entry["files"])):
            self.out.files += [str(self.out.dir / f) for f in entry["files"]]
            self.skipped.append(name)
            self.progress(f"{where}: unchanged, skipped")
            return list(entry["lines"]), list(entry["notes"])
        self.progress(where)
        start, first = time.monotonic(), len(self.out.files)
        lines, notes = draw()
        files = [pathlib.Path(f).name for f in self.out.files[first:]]
        self.parts[name] = {"hash": key, "files": files, "lines": lines, "notes": notes}
        recording.write_file(self.path, json.dumps({"version": _CACHE_VERSION,
                                                    "parts": self.parts}, indent=1))
        self.drawn.append(name)
        if time.monotonic() - start > 5:
            self.progress(f"{where}: {len(files)} files in {time.monotonic() - start:.0f} s")
        return lines, notes


# --- Sections of summary.md; each returns its markdown lines. ---


def _search_section(rec: Records, targets, out: _Out, grid: int, data) -> list[str]:
    lines = [f"## Combinatorial search `{rec.label}` ({rec.setting} init)", "",
             f"Workdir `{rec.path}`, preset {rec.store.config.get('preset', '?')}, "
             f"{len(rec.rows):,} runs recorded."]
    df1 = rec.rows[rec.rows["stage"] == "phase1"]
    if df1.empty:
        lines += ["", "_No phase-one records: phase-one scatter skipped._"]
    else:
        wanted = rec.targets or tuple(targets)
        ax = plotting.phase_one_scatter(df1, targets=_visible(wanted, df1["accuracy"]))
        ax.set_title(f"Phase one of {rec.label} ({rec.setting} init):\nbest accuracy per "
                     "neuron configuration", fontsize=11)
        name = out.save(ax.figure, f"phase1_{rec.label}.png")
        lines += ["", "Phase one: every neuron configuration's best accuracy against its "
                  "structured parameters; the configuration with the fewest parameters reaching "
                  "each target is circled.", "", f"![phase one]({name})", ""]
        win = [{"target": _pct(t), "configuration": str(c), "structured params":
                search.structured_params(c) if c else "-"}
               for t in wanted for c in [search.select_configuration(df1, t)]]
        lines += [md_table(pd.DataFrame(win))]
    df2 = rec.rows[rec.rows["stage"].str.startswith("phase2")]
    if df2.empty:
        return lines + ["", "_No phase-two records: no sparsest models to draw._"]
    lines += ["", f"### Sparsest models of `{rec.label}`", "",
              "Fewest nonzero parameters among the phase-two models reaching each target; the "
              "decision boundary and the playground picture (neuron maps, weights as curves, "
              "disconnected paths dashed grey) of each, and an interactive HTML page. The "
              "accuracy is phase two's training of the model; the search's headline result "
              "(summary, leaderboard) is the best run of that count over both phases, which "
              "can be phase one's dense run of the configuration (docs/search.md).", ""]
    table, drawn = [], {}
    for t in sorted(set(rec.targets) | set(targets)):
        row = search.sparsest(df2, t)
        if row is None:
            table.append({"target": _pct(t), "nnz": "-", "weights": "-", "effective nnz": "-",
                          "accuracy": "-", "configuration": "-", "mask": "-", "lr": "-",
                          "schedule": "-", "figures": "no model reaches it"})
            continue
        key = (row["stage"], row["chunk"], int(row["row"]))
        if key not in drawn:
            drawn[key] = _draw_model(rec, row, out, grid, data, f"{rec.label}_{len(drawn)}")
        files, eff = drawn[key]
        table.append({"target": _pct(t), "nnz": int(row["nnz"]),
                      "weights": int(row["nnz_weights"]), "effective nnz": eff,
                      "accuracy": f"{100 * float(row['accuracy']):.2f}%",
                      "configuration": f"({int(row['d1'])},{int(row['d2'])},{int(row['d3'])})",
                      "mask": int(row["mask_index"]), "lr": f"{float(row['lr']):g}",
                      "schedule": row["schedule"],
                      "figures": ", ".join(f"[{what}]({f})" for what, f in
                                           zip(("boundary", "picture", "html"), files))})
    lines += [md_table(pd.DataFrame(table))]
    for files, _ in drawn.values():
        lines += ["", f"![decision boundary]({files[0]}) ![playground]({files[1]})"]
    return lines


def _draw_model(rec: Records, row, out: _Out, grid: int, data, tag: str):
    """Decision boundary, playground PNG and HTML of one stored model; (files, effective nnz)."""
    params = params_tree(rec.store.params_of(row))
    eff = int(analysis.effective_nonzeros(params)["effective_nnz"])
    model = (f"{rec.label} ({rec.setting} init): configuration "
             f"({int(row['d1'])},{int(row['d2'])},{int(row['d3'])}), mask "
             f"{int(row['mask_index'])}")
    what = f"{model}, {int(row['nnz'])} nonzeros"
    ax = plotting.decision_boundary(params, data=data, n=grid)
    ax.set_title(f"{what}\n{ax.get_title()}", fontsize=10)
    boundary = out.save(ax.figure, f"sparsest_{tag}_boundary.png")
    fig = playground.figure(params, n=grid, data=data, accuracy=float(row["accuracy"]))
    fig.suptitle(model, fontsize=12)
    picture = out.save(fig, f"sparsest_{tag}_playground.png")
    page = out.html(params, f"sparsest_{tag}_playground.html", n=min(grid, 128),
                    title=f"spiralprune: {model}", accuracy=float(row["accuracy"]))
    return (boundary, picture, page), eff


def search_rows(records, setting: str, effective: bool = False) -> pd.DataFrame:
    """Every run of the searches of one init setting (phase one and two), the search's front.

    Args:
      records: ``discover``'s records.
      setting: "random", "bench95" or "bench995".
      effective: add effective_nnz: recorded, else from the stored params of phase two and,
        for phase one (no stored params), nnz: a block-masked model is dense in its block, so
        every nonzero lies on a path.

    Returns:
      DataFrame: stage, accuracy, nnz (and effective_nnz); empty if no search has the setting.
    """
    parts = []
    for r in records:
        if r.kind != "search" or r.setting != setting:
            continue
        rows = r.rows
        if effective:
            phase1 = (rows["stage"] == "phase1").to_numpy()
            eff = (rows["effective_nnz"] if "effective_nnz" in rows else rows["nnz"] * np.nan)
            eff = eff.astype(float).where(~phase1 | eff.notna(), rows["nnz"])
            eff[~phase1] = with_effective(r.store, rows[~phase1])["effective_nnz"]
            rows = rows.assign(effective_nnz=eff)
        parts.append(rows[["stage", "accuracy", "nnz"] + (["effective_nnz"] if effective
                                                          else [])])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _fronts_section(prune: pd.DataFrame, records, targets, out: _Out) -> list[str]:
    lines = ["## Pruning against the combinatorial search", "",
             "Accuracy against nonzero parameters (weights and biases) of every pruned run, each "
             "method's frontier as a step line, and the search's frontier (every model it "
             "trained, phase one and two) in black; one figure per init setting and width, and "
             "one with all widths where the pruners ran at more than one. Dense training is a "
             "dotted line at its best accuracy (its hundreds of nonzeros would stretch the "
             "axis); the dashed lines are the targets the setting's search used."]
    for setting, df in prune.groupby("setting", sort=True):
        srch = search_rows(records, setting)
        used = sorted({float(t) for r in records if r.kind == "search"
                       and r.setting == setting for t in r.targets})
        if srch.empty:
            lines += ["", f"_No search records with the {setting} init: its fronts are drawn "
                      "without the search's frontier._"]
        widths = sorted(int(w) for w in df["width"].unique())
        pics = []
        for width in widths + ([None] if len(widths) > 1 else []):
            part = df if width is None else df[df["width"] == width]
            dense = part[part["method"] == "dense"]
            part = part[part["method"] != "dense"] if len(dense) < len(part) else part
            acc = np.concatenate([part["accuracy"], srch["accuracy"] if len(srch) else []])
            nnz = np.concatenate([part["nnz"], srch["nnz"] if len(srch) else []])
            ax = plotting.accuracy_vs_nonzeros(
                part, by="method", search=srch if len(srch) else None,
                targets=tuple(used) or _visible(targets, acc),
                logx=nnz.max() > 20 * max(nnz.min(), 1))
            if len(dense) and len(dense) < len(df):
                best = dense.loc[dense["accuracy"].idxmax()]
                colour = plotting.METHOD_STYLES["dense"][0]
                ax.axhline(float(best["accuracy"]), color=colour, ls=":", lw=1.2, zorder=1)
                ax.plot([], [], color=colour, ls=":", label=f"dense ({int(best['nnz'])} "
                        f"nonzeros): {float(best['accuracy']):.2%}")
                ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                          borderaxespad=0, markerscale=1.5)
            which = "all widths" if width is None else f"width {width}"
            ax.set_title(f"Accuracy against nonzeros: {setting} init, pruners at {which}")
            pics.append(out.save(ax.figure, f"fronts_{setting}_"
                                 + ("all" if width is None else f"w{width}") + ".png"))
        lines += ["", f"### {setting} init", ""] + [f"![fronts]({p})" for p in pics]
    return lines


def _reach_section(prune: pd.DataFrame, records, targets) -> list[str]:
    lines = ["## Fewest nonzeros reaching the targets", "",
             "Per method (all widths, learning rates and schedules) the fewest nonzero "
             "parameters of a run reaching each accuracy, with that run's accuracy "
             "(`analysis.fewest_reaching`); the last row is the combinatorial search of the "
             "same init (phase one and two). \"-\": never reached."]
    for setting, df in prune.groupby("setting", sort=True):
        table = reach_table(df, targets)
        srch = search_rows(records, setting)
        if len(srch):
            row = reach_table(srch.assign(method="search"), targets)
            table = pd.concat([table, row], ignore_index=True)
        lines += ["", f"### {setting} init", "", md_table(table), "", "Per width:", "",
                  md_table(reach_table(df, targets, by=("method", "width")))]
    return lines


def _repeats_section(prune: pd.DataFrame, records, targets, out: _Out) -> list[str]:
    """The spread over repeats of each method's fewest nonzeros (grids with several repeats)."""
    lines = ["## Spread over repeats", "",
             "Per method, the fewest nonzero parameters reaching each target *within one "
             "repeat* (over every width, budget, learning rate and schedule of the grid; "
             "`analysis.repeat_spread`), then best, median and worst over the repeats, and how "
             "many repeats reach the target at all; the search's sparsest model of the same "
             "init is the black line."]
    for setting, df in prune.groupby("setting", sort=True):
        df = df[df["method"] != "dense"]
        if df.empty or df.groupby("method")["repeat"].nunique().max() < 2:
            continue
        spread = analysis.repeat_spread(df, targets=tuple(targets))
        srch = search_rows(records, setting)
        table = pd.DataFrame({
            "method": spread["method"], "target": [_pct(t) for t in spread["target"]],
            "repeats reaching it": [f"{a}/{b}" for a, b in zip(spread["reached"],
                                                                spread["repeats"])],
            **{c: ["-" if np.isnan(v) else f"{int(v)}" for v in spread[c]]
               for c in ("best", "median", "worst")},
            "per repeat": [", ".join("-" if np.isnan(v) else f"{int(v)}" for v in per)
                           for per in spread["per_repeat"]]})
        lines += ["", f"### {setting} init", "", md_table(table)]
        for t in targets:
            if not (np.isclose(spread["target"], t) & (spread["reached"] > 0)).any():
                continue
            hit = srch[srch["accuracy"] >= t] if len(srch) else srch
            best = int(hit["nnz"].min()) if len(hit) else None
            ax = plotting.repeat_spread(spread, target=t, search_nnz=best)
            ax.set_title(f"{setting} init: fewest nonzeros reaching {_pct(t)}, per repeat")
            name = out.save(ax.figure, f"repeats_{setting}_{_pct(t).rstrip('%')}.png")
            lines += ["", f"![spread over repeats at {_pct(t)}]({name})"]
    return lines


def _disconnected_section(prune_recs, records, targets, out: _Out) -> list[str]:
    eff = [with_effective(rec.store, rec.rows).assign(
        setting=[models.setting(i) for i in rec.rows["init"]]) for rec in prune_recs]
    for rec in records:
        if rec.kind == "search":
            df2 = rec.rows[rec.rows["stage"].str.startswith("phase2")]
            if len(df2):
                eff.append(with_effective(rec.store, df2).assign(
                    setting=rec.setting, method="search (phase two)"))
    eff = pd.concat(eff, ignore_index=True)
    lines = ["## Disconnected paths", "",
             "A nonzero weight or bias is effective only if it lies on an input-to-output path "
             "of nonzero weights (`analysis.effective_nonzeros` of each run's stored final "
             "parameters). Per method: mean measured and effective nonzeros, mean parameters on "
             "disconnected paths, the share of runs with any, the most in one run; then the "
             "fewest *effective* nonzeros reaching each target."]
    for setting, df in eff.groupby("setting", sort=True):
        g = df.groupby("method", sort=True)
        table = pd.DataFrame({
            "runs": g.size(), "mean nnz": g["nnz"].mean().map("{:.1f}".format),
            "mean effective nnz": g["effective_nnz"].mean().map("{:.1f}".format),
            "mean disconnected": g["disconnected"].mean().map("{:.2f}".format),
            "runs with disconnected": (g["disconnected"].apply(lambda s: (s > 0).mean())
                                       .map(lambda v: f"{100 * v:.1f}%")),
            "max disconnected": g["disconnected"].max().astype(int)}).reset_index()
        table = _search_last(table)
        fig = matplotlib.figure.Figure(figsize=(13, 5), layout="constrained")
        left, right = fig.subplots(1, 2)
        # Dense runs have no disconnected paths, and their hundreds of nonzeros would squeeze
        # every pruned run into a corner: tables only.
        drawn = df[df["method"] != "dense"]
        names = sorted(drawn["method"].unique(), key=lambda m: (m.startswith("search"), m))
        for method in names:
            part = drawn[drawn["method"] == method]
            colour, marker = plotting.method_style(method, names)
            on_top = method.startswith("search")
            left.scatter(part["nnz"], part["effective_nnz"], s=24 if on_top else 18,
                         alpha=0.9 if on_top else 0.7, marker=marker, color=colour,
                         edgecolors="none", label=method,
                         zorder=plotting.SEARCH_ZORDER if on_top else 2)
        top = float(drawn["nnz"].max())
        left.plot([0, top], [0, top], color="#888888", lw=0.8, ls="--", zorder=0,
                  label="effective = measured")
        left.set(xlabel="measured nonzero parameters", ylabel="effective nonzero parameters",
                 title=f"{setting} init: effective against measured nonzeros"
                 + ("\n(dense runs: in the table only)" if len(drawn) < len(df) else ""))
        left.grid(alpha=0.3)
        left.legend(fontsize=8, loc="upper left")
        pruned = drawn[drawn["method"] != "search (phase two)"]
        srch = search_rows(records, setting, effective=True)
        if len(pruned):
            plotting.accuracy_vs_nonzeros(
                pruned, by="method", x="effective_nnz", search=srch if len(srch) else None,
                targets=_visible(targets, df["accuracy"]), ax=right)
            if top > 20 * max(float(drawn["nnz"].min()), 1):  # many widths: zeros stay visible
                left.set_xscale("symlog", linthresh=10)
                left.set_yscale("symlog", linthresh=10)
                right.set_xscale("symlog", linthresh=10)
                for axis in (left.xaxis, left.yaxis, right.xaxis):
                    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                        lambda v, _: f"{v:g}"))
            right.set_xlabel("effective nonzero parameters")
            right.set_title(f"{setting} init: accuracy against effective nonzeros")
        else:
            right.set_axis_off()
        name = out.save(fig, f"disconnected_{setting}.png")
        lines += ["", f"### {setting} init", "", md_table(table), "",
                  md_table(_search_last(reach_table(df, targets, x="effective_nnz"))), "",
                  f"![disconnected paths]({name})"]
    return lines


def _flops_section(out: _Out) -> tuple[list[str], list[str]]:
    width, budget = FLOPS_SETTING
    try:
        df = analysis.flops_table(width, budget)
    except Exception as e:  # a failing cost model must not cost the other figures: noted
        return [], [f"FLOPs table skipped: analysis.flops_table failed ({type(e).__name__}: "
                    f"{e})"]
    shown = pd.DataFrame({"method": df["method"],
                          **{c: df[c].map("{:.3e}".format)
                             for c in ("prune", "train", "flops", "flops_fwd_bwd")},
                          "relative to dense": df["relative"].map("{:.3f}".format)})
    fig = matplotlib.figure.Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.add_subplot()
    ys = np.arange(len(df))[::-1]
    # Side by side on a log axis: a stacked bar would hide pruning costs 1000x below training.
    ax.barh(ys + 0.2, df["train"], height=0.4, color="#4a78a8", label="train")
    ax.barh(ys - 0.2, df["prune"], height=0.4, color="#f59322",
            label="prune (no bar: the method has no pruning cost)")
    ax.set_yticks(ys, df["method"])
    ax.set_xscale("log")
    positive = np.concatenate([df["train"], df["prune"]]).astype(float)
    ax.set_xlim(left=max(positive[positive > 0].min() / 3, 1.0))
    ax.set_xlabel("floating-point operations, forward pass, nonzero parameters (log scale)")
    ax.set_title(f"Cost to prune and train one model: computed (a count, not measured)\n"
                 f"at the study's Table 1 setting, width {width}, budget {budget} weights",
                 fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2,
              frameon=False)
    name = out.save(fig, "flops.png")
    return ["## FLOPs to prune and train", "",
            f"The study's Table 1 setting: width {width}, budget {budget} weights, 50 epochs of "
            "390 x 128 samples. `flops` is Table 1's count: one FLOP per nonzero parameter "
            "(biases included) and sample in the forward pass, over pruning and training "
            "(prune, train); `flops_fwd_bwd` counts the same passes with their backward passes "
            "(2 + 4 FLOPs). Sparse models' biases are modelled as uniformly placed weights "
            "would keep them (docs/pruners.md, \"FLOPs\"; `analysis.flops_table`).", "",
            md_table(shown), "",
            f"![FLOPs]({name})"], []


def _no_path_section(out: _Out, widths, trials: int) -> list[str]:
    fig = matplotlib.figure.Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    table = None
    for (label, counts), marker in zip(NO_PATH_COUNTS.items(), "os"):
        ok = [w for w in widths if all(c <= i * o for c, (i, o) in
                                       zip(counts, models.layer_shapes(w)))]
        if not ok:
            continue
        curve = analysis.no_path_curve(ok, counts, trials=trials)
        ax.errorbar(curve["width"], curve["probability"], yerr=curve["stderr"], marker=marker,
                    capsize=2, label=f"{label} ({trials:,} trials per width)")
        col = curve.set_index("width")["probability"].map("{:.3f}".format).rename(label)
        table = col.to_frame() if table is None else table.join(col, how="outer")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(widths), [str(w) for w in widths])
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("width (d1 = d2 = d3)")
    ax.set_ylabel("P(no input-to-output path)")
    ax.set_title("Random pruning at fixed weights per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")  # the curves rise from bottom left to top right
    name = out.save(fig, "no_path.png")
    shown = table.fillna("-").reset_index() if table is not None else pd.DataFrame()
    return ["## Random pruning leaves no path", "",
            "Monte Carlo check of the study's theorem: keeping a fixed number of weights per "
            "layer at random, the probability that no path joins the inputs to the output "
            "grows to 1 with the width (`analysis.no_path_curve`; \"-\": more weights than the "
            "layer has).", "", md_table(shown), "", f"![no path]({name})"]


def run(workdirs: list[str], out_dir: str, *, targets=None, grid: int = 512,
        no_path_trials: int = 1000, no_path_widths=STUDY_WIDTHS, progress=None) -> dict:
    """Draws every figure and table the records allow into ``out_dir``, reusing cached parts.

    Args:
      workdirs: paths searched recursively for search and prune workdirs.
      out_dir: output directory (created if missing); files of the same names are replaced.
      targets: accuracy levels of the tables; default 95%, 99.5% and every search's targets.
      grid: side of the decision-boundary and playground grids (512 in the study).
      no_path_trials: Monte Carlo trials per width of the no-path curve.
      no_path_widths: widths of the no-path curve.
      progress: optional callable taking one line ("[figures] 3/7 fronts", "... unchanged,
        skipped" for a part whose inputs are unchanged since the last run); None is silent.

    Returns:
      {"figures": paths of the PNG and HTML files (drawn now or kept), "summary": summary.md's
      text, "drawn": names of the parts drawn, "skipped": names of the parts kept as cached}.

    Raises:
      ValueError (one line) on an empty or missing workdir or records without needed columns.
    """
    progress = progress or (lambda line: None)
    start = time.monotonic()
    records, notes = discover(workdirs)
    out = _Out(pathlib.Path(out_dir))
    out.dir.mkdir(parents=True, exist_ok=True)
    searches = [r for r in records if r.kind == "search"]
    prunes = [r for r in records if r.kind == "prune"]
    if targets is None:
        targets = sorted(set(TARGETS).union(*(r.targets for r in searches)))
    targets = tuple(float(t) for t in targets)
    lines = ["# spiralprune: figures and tables", "",
             "Regenerated by `experiments/figures.py` from these workdirs:", "",
             md_table(pd.DataFrame([{"workdir": f"`{r.path}`", "kind": r.kind,
                                     "preset": r.store.config.get("preset", "?"),
                                     "stages": len(r.rows["stage"].unique()),
                                     "runs": len(r.rows)} for r in records])),
             "", f"Targets: {', '.join(_pct(t) for t in targets)}."]
    spiral = functools.cache(datasets.cubist_spiral)

    def no_notes(f):
        return lambda: (f(), [])

    search_inputs = tuple(x for r in searches for x in (r.label, r.setting, r.rows))
    parts = []  # (name, inputs, draw () -> (lines, notes))
    for rec in searches:
        parts.append((f"search {rec.label}", (rec.rows, rec.store.config, str(rec.path),
                                              targets, grid),
                      no_notes(functools.partial(
                          lambda r: _search_section(r, targets, out, grid, spiral()), rec))))
    if not searches:
        notes.append("no search records: phase-one scatter, sparsest models and the search's "
                      "frontier skipped")
    prune = None
    if prunes:
        prune = pd.concat([r.rows.assign(setting=[models.setting(i) for i in r.rows["init"]])
                           for r in prunes], ignore_index=True)
        parts.append(("fronts", (prune, search_inputs, targets),
                      no_notes(lambda: _fronts_section(prune, records, targets, out))))
        if ("repeat" in prune and (prune[prune["method"] != "dense"]
                                   .groupby(["setting", "method"])["repeat"].nunique() > 1).any()):
            parts.append(("spread over repeats", (prune, search_inputs, targets),
                          no_notes(lambda: _repeats_section(prune, records, targets, out))))
    else:
        notes.append("no prune records: fronts, fewest-nonzeros tables per method skipped")
    if prunes or any(r.rows["stage"].str.startswith("phase2").any() for r in searches):
        parts.append(("disconnected paths", (prune, search_inputs, targets),
                      no_notes(lambda: _disconnected_section(prunes, records, targets, out))))
    else:
        notes.append("no stored parameters (no prune or phase-two records): disconnected paths "
                     "skipped")
    parts.append(("FLOPs", (FLOPS_SETTING,), lambda: _flops_section(out)))
    widths, trials = tuple(no_path_widths), int(no_path_trials)
    parts.append(("no-path Monte Carlo", (widths, trials, NO_PATH_COUNTS),
                  no_notes(lambda: _no_path_section(out, widths, trials))))
    cache = _Cache(out, progress, len(parts))
    for name, inputs, draw in parts:
        part, more = cache.part(name, inputs, draw)
        if name == "disconnected paths" and prune is not None:  # tables only: always fresh
            lines += [""] + _reach_section(prune, records, targets)
        lines += ([""] + part) if part else []
        notes += more
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    summary = "\n".join(lines) + "\n"
    recording.write_file(out.dir / "summary.md", summary)
    took = time.monotonic() - start
    if not cache.drawn:
        progress(f"[figures] all {len(parts)} parts unchanged since the last run: nothing "
                 f"redrawn ({took:.1f} s)")
    elif cache.skipped:
        progress(f"[figures] {len(cache.drawn)} parts drawn, {len(cache.skipped)} unchanged and "
                 f"skipped ({', '.join(cache.skipped)}) in {took:.1f} s")
    else:
        progress(f"[figures] {len(cache.drawn)} parts drawn in {took:.1f} s")
    return {"figures": out.files, "summary": summary, "drawn": cache.drawn,
            "skipped": cache.skipped}
