"""The study's plots: phase-one configurations, accuracy against nonzeros, decision boundaries.

Every plotting function takes an optional ``ax`` (a new Figure and Axes are made if None),
draws into it and returns it; nothing here calls ``plt.show`` or touches pyplot's global state.
Records are pandas DataFrames as loaded by ``recording``; each function names the columns it
needs and raises a one-line ValueError when one is missing or the table is empty.
"""

import io
import pathlib

import jax.numpy as jnp
import matplotlib.axes
import matplotlib.figure
import matplotlib.ticker
import numpy as np
import pandas as pd

from spiralprune import analysis, base, datasets, models, playground, recording

_CHUNK = 65_536

# One colour and marker per method, in every figure of the study: a method keeps its colour
# from one figure to the next. The combinatorial search is black and drawn on top.
SEARCH_COLOUR = "#000000"
METHOD_STYLES = {
    "search": (SEARCH_COLOUR, "o"),
    "dense": ("#7f7f7f", "*"),
    "random": ("#637939", "h"),
    "snip": ("#1f77b4", "o"),
    "grasp": ("#ff7f0e", "s"),
    "synflow": ("#2ca02c", "^"),
    "iter_snip": ("#d62728", "D"),
    "force": ("#9467bd", "v"),
    "prospr": ("#8c564b", "P"),
    "gmp": ("#e377c2", "X"),
    "rigl": ("#17becf", "<"),
    "lth": ("#bcbd22", ">"),
}
# Names outside the table (another ``by`` column, e.g. schedules) take these, in sorted order
# of the names: hues far apart (ColorBrewer Dark2), so two or three names never look alike.
_SPARE = (("#1b9e77", "o"), ("#d95f02", "s"), ("#7570b3", "^"), ("#e7298a", "D"),
          ("#66a61e", "v"), ("#a6761d", "P"))
SEARCH_ZORDER = 6
# The pruners a figure highlights (e.g. a leaderboard's new ones): strong colours outside the
# table, black-edged stars, bold step lines, listed first; the other methods are dimmed.
HIGHLIGHT_STYLES = ("#e41a1c", "#7b2fff", "#00a6a6", "#ff8c00")


def save(fig: matplotlib.figure.Figure, path, **savefig_kwargs) -> None:
    """``fig.savefig(path, ...)`` rendered in memory, then written atomically
    (``recording.write_file``): a full disk is one line naming the file and leaves no 0-byte
    image. The format follows the file's suffix (PNG without one)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=pathlib.Path(path).suffix[1:] or "png", **savefig_kwargs)
    recording.write_file(path, buf.getvalue())


def method_style(name, others=()) -> tuple[str, str]:
    """(colour, marker) of a method: ``METHOD_STYLES``; any label starting "search" is the search.

    Args:
      name: the method (or any group label).
      others: every label of the figure; a name outside the table takes a spare style by its
        rank among the figure's names outside the table.

    Returns:
      (colour as "#rrggbb", matplotlib marker).
    """
    name = str(name)
    if name in METHOD_STYLES:
        return METHOD_STYLES[name]
    if name.startswith("search") or name.startswith("combinatorial search"):
        return METHOD_STYLES["search"]
    unknown = sorted({str(o) for o in others} - set(METHOD_STYLES) | {name})
    return _SPARE[unknown.index(name) % len(_SPARE)]


def _new_axes(ax, figsize=(6.4, 4.8)) -> matplotlib.axes.Axes:
    if ax is not None:
        return ax
    return matplotlib.figure.Figure(figsize=figsize, layout="constrained").add_subplot()


def frontier(df: pd.DataFrame, x: str = "nnz", y: str = "accuracy") -> pd.DataFrame:
    """The monotone (Pareto) frontier: rows that no row with fewer or equal ``x`` beats on ``y``.

    Walking ``x`` upwards (ties: higher ``y`` first), a row is kept when its ``y`` is strictly
    above every ``y`` seen so far: the fewest nonzeros reaching each accuracy level. Rows with
    a NaN ``x`` or ``y`` are ignored.

    Args:
      df: records with columns ``x`` and ``y``.
      x: the cost column (smaller is better).
      y: the quality column (larger is better).

    Returns:
      the frontier rows of ``df`` (all columns), sorted by ``x`` ascending, index reset.
    """
    analysis.check_records(df, (x, y))
    d = df.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False], kind="stable")
    values = d[y].to_numpy(float)
    best = np.maximum.accumulate(values)
    keep = np.ones(len(values), bool)
    keep[1:] = values[1:] > best[:-1]
    return d[keep].reset_index(drop=True)


def _log_x(ax) -> None:
    """Log x axis labelled 1, 2, 5, 10, 20, ... in plain numbers."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _percent_y(ax) -> None:
    """Accuracies (fractions) labelled as percentages."""
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=None))


def _target_lines(ax, targets) -> None:
    for t in targets:
        ax.axhline(t, color="#888888", lw=0.8, ls="--", zorder=0)
        # At the left edge: the fronts' dense end (top right) often sits on the line.
        ax.annotate(f"{100 * t:g}%", (0.0, t), xycoords=("axes fraction", "data"),
                    xytext=(3, 2), textcoords="offset points", ha="left", va="bottom",
                    fontsize=8, color="#555555")


def phase_one_scatter(df: pd.DataFrame, *, targets=(0.95, 0.995), winners=None, logx=True,
                      ax=None) -> matplotlib.axes.Axes:
    """Accuracy against structured parameter count of the phase-one configurations.

    Args:
      df: phase-one records with columns d1, d2, d3, accuracy, structured_params (one row per
        configuration, learning rate and schedule; the best accuracy per configuration is drawn).
      targets: accuracy levels drawn as dashed lines.
      winners: configurations (d1, d2, d3) to annotate; None annotates, for each target, the
        configuration with the fewest structured parameters reaching it (ties: higher accuracy).
      logx: logarithmic x axis.
      ax: Axes to draw into (new if None).

    Returns:
      the Axes.
    """
    cols = ["d1", "d2", "d3"]
    analysis.check_records(df, cols + ["accuracy", "structured_params"])
    best = df.groupby(cols, as_index=False).agg(accuracy=("accuracy", "max"),
                                               structured_params=("structured_params", "first"))
    ax = _new_axes(ax)
    ax.scatter(best["structured_params"], best["accuracy"], s=10, alpha=0.6, color="#4a78a8",
               edgecolors="none", label="configuration (best lr, schedule)")
    _target_lines(ax, targets)
    if winners is None:
        winners = []
        for t in targets:
            ok = best[best["accuracy"] >= t].sort_values(
                ["structured_params", "accuracy"], ascending=[True, False], kind="stable")
            if len(ok):
                winners.append(tuple(int(v) for v in ok.iloc[0][cols]))
    for w in dict.fromkeys(tuple(int(v) for v in w) for w in winners):
        row = best[(best["d1"] == w[0]) & (best["d2"] == w[1]) & (best["d3"] == w[2])]
        if not len(row):
            raise ValueError(f"winner {w} is not among the configurations")
        px, py = row.iloc[0]["structured_params"], row.iloc[0]["accuracy"]
        ax.scatter([px], [py], s=40, facecolors="none", edgecolors="#c0392b", lw=1.4, zorder=3)
        ax.annotate(f"({w[0]},{w[1]},{w[2]})", (px, py), xytext=(6, -12),
                    textcoords="offset points", fontsize=9, color="#c0392b")
    if logx:
        _log_x(ax)
    ax.set_xlabel("structured parameters")
    ax.set_ylabel("accuracy (best over lr and schedule)")
    _percent_y(ax)
    ax.set_title("Phase one: neuron configurations")
    ax.grid(alpha=0.3)
    return ax


def accuracy_vs_nonzeros(df: pd.DataFrame, *, by: str = "method", search=None,
                         targets=(0.95, 0.995), frontier: bool = True, logx: bool = False,
                         x: str = "nnz", y: str = "accuracy", ax=None,
                         search_label: str = "search",
                         highlight=()) -> matplotlib.axes.Axes:
    """Accuracy against nonzero parameters per method, with each method's frontier.

    Args:
      df: pruning records with columns ``x``, ``y`` and ``by``.
      by: the column whose values get their own colour and marker (and legend entry).
      search: optional records of the combinatorial search (columns ``x``, ``y``); its frontier
        is drawn bold black on top.
      targets: accuracy levels drawn as dashed lines.
      frontier: draw each method's monotone frontier as a step line.
      logx: logarithmic x axis.
      x, y: column names of the nonzero count and the accuracy.
      ax: Axes to draw into (new if None).
      search_label: the search's legend entry (e.g. saying whose points they are).
      highlight: values of ``by`` to stand out (``HIGHLIGHT_STYLES``, bold, first in the
        legend, in the order given); the others are drawn lighter.

    Returns:
      the Axes.
    """
    analysis.check_records(df, (x, y, by))
    ax = _new_axes(ax, figsize=(8.5, 5))
    names = [str(n) for n in df[by].unique()]
    highlight = [str(h) for h in highlight if str(h) in names]
    dim = bool(highlight)
    for name, group in df.groupby(by, sort=True):
        if str(name) in highlight:
            continue
        colour, marker = method_style(name, names)
        ax.scatter(group[x], group[y], s=18, alpha=0.45 if dim else 0.7, color=colour,
                   marker=marker, edgecolors="none", label=str(name))
        if frontier:
            _step(ax, _front(group, x, y), x, y, color=colour, lw=0.9 if dim else 1.2,
                  alpha=0.6 if dim else 1.0)
    for i, name in enumerate(highlight):
        group = df[df[by].astype(str) == name]
        colour = HIGHLIGHT_STYLES[i % len(HIGHLIGHT_STYLES)]
        ax.scatter(group[x], group[y], s=70, color=colour, marker="*", edgecolors="black",
                   linewidths=0.5, zorder=SEARCH_ZORDER - 2, label=name)
        if frontier:
            _step(ax, _front(group, x, y), x, y, color=colour, lw=2.4,
                  zorder=SEARCH_ZORDER - 2)
    if search is not None:
        analysis.check_records(search, (x, y))
        front = _front(search, x, y)
        _step(ax, front, x, y, color=SEARCH_COLOUR, lw=2.6, zorder=SEARCH_ZORDER - 1)
        ax.scatter(front[x], front[y], s=28, color=SEARCH_COLOUR, zorder=SEARCH_ZORDER,
                   marker=METHOD_STYLES["search"][1], label=search_label)
    _target_lines(ax, targets)
    if logx:
        _log_x(ax)
    ax.set_xlabel("nonzero parameters (weights and biases)")
    ax.set_ylabel("accuracy")
    _percent_y(ax)
    ax.grid(alpha=0.3)
    # Outside the Axes, so it never hides a point; highlighted names (if any) first, then the
    # search, then the others.
    handles, labels = ax.get_legend_handles_labels()
    first = highlight + [search_label] if highlight else []
    order = sorted(range(len(labels)), key=lambda i: (
        first.index(labels[i]) if labels[i] in first else len(first), i))
    legend = ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8,
                       loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                       markerscale=1.5)
    for text in legend.get_texts():
        if text.get_text() in highlight:
            text.set_fontweight("bold")
    return ax


def repeat_spread(spread: pd.DataFrame, *, target: float, search_nnz=None, by: str = "method",
                  ax=None) -> matplotlib.axes.Axes:
    """Per method, the fewest nonzeros reaching ``target`` in each repeat, on one line each.

    Each repeat is a dot; a bar spans best to worst; a method whose repeats do not all reach
    the target says so ("k/n repeats reach it"); the search's sparsest model is a black
    vertical line. Methods are sorted by their best (never-reaching ones last).

    Args:
      spread: ``analysis.repeat_spread`` rows (columns ``by``, target, repeats, reached, best,
        worst, per_repeat).
      target: the accuracy level to draw (rows of other targets are ignored).
      search_nnz: the search's fewest nonzeros reaching ``target`` (None: no line).
      by: the method column.
      ax: Axes to draw into (new if None).

    Returns:
      the Axes.
    """
    analysis.check_records(spread, (by, "target", "repeats", "reached", "best", "worst",
                                    "per_repeat"))
    rows = spread[np.isclose(spread["target"], target)]
    if rows.empty:
        raise ValueError(f"no spread rows for target {target:g}")
    rows = rows.assign(_never=rows["best"].isna()).sort_values(
        ["_never", "best", "worst", by], kind="stable").iloc[::-1]
    ax = _new_axes(ax, figsize=(8.5, 0.45 * len(rows) + 1.6))
    names = [str(n) for n in rows[by]]
    reached = rows["best"].dropna()
    right = max([float(rows["worst"].max()) if len(reached) else 0.0]
                + ([float(search_nnz)] if search_nnz is not None else []) + [1.0])
    left = min([float(reached.min())] if len(reached) else [right])
    for i, r in enumerate(rows.itertuples(index=False)):
        name = str(getattr(r, by))
        colour, marker = method_style(name, names)
        got = np.array([v for v in r.per_repeat if not np.isnan(v)])
        if len(got):
            ax.plot([r.best, r.worst], [i, i], color=colour, lw=2, alpha=0.5)
            # Repeats landing on the same count are spread vertically, so each one shows.
            counts = {}
            for v in got:
                k = counts[v] = counts.get(v, -1) + 1
                ax.scatter(v, i + 0.12 * k - 0.06 * (list(got).count(v) - 1), s=30,
                           color=colour, marker=marker, edgecolors="none",
                           zorder=SEARCH_ZORDER + 1)   # a tie with the search stays visible
        if r.reached < r.repeats:
            ax.text(right + 0.5, i, f"{r.reached}/{r.repeats} repeats reach it",
                    va="center", fontsize=8, color="#555555")
    if search_nnz is not None:
        ax.axvline(float(search_nnz), color=SEARCH_COLOUR, lw=2, zorder=SEARCH_ZORDER,
                   label=f"search: {int(search_nnz)}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(range(len(rows)), names)
    ax.set_xlim(left - 2, right + (8 if (rows["reached"] < rows["repeats"]).any() else 2))
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(f"fewest nonzero parameters reaching {target:.1%} accuracy, per repeat")
    ax.grid(alpha=0.3, axis="x")
    return ax


_front = frontier  # the name ``frontier`` is a flag inside accuracy_vs_nonzeros


def _step(ax, front: pd.DataFrame, x: str, y: str, **kw) -> None:
    """A frontier as a step line: each accuracy holds from its count up to the next point."""
    xs, ys = front[x].to_numpy(float), front[y].to_numpy(float)
    if len(xs):
        ax.step(xs, ys, where="post", **kw)


def _logits(params: base.Params, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(models.apply(params, jnp.asarray(x[s: s + _CHUNK])))
                           for s in range(0, len(x), _CHUNK)])


def decision_boundary(params: base.Params, *, data=None, n: int = 256,
                      extent: float = datasets.GRID_EXTENT, ax=None,
                      colorbar: bool = True) -> matplotlib.axes.Axes:
    """The model's probability of class 1 over the picture grid, with the data on top.

    Blue is class 1, orange class 0, white P = 0.5: where the model cannot tell (e.g. a region
    where every ReLU is off, so the logit is the output bias alone). The 0.5 contour is the
    decision boundary.

    Args:
      params: one model's masked parameters.
      data: optional (x (N, 2), y (N,)): points are drawn subsampled in their class colours
        (legend), and the title gives the accuracy on all of them (prediction = logit > 0).
      n: grid side.
      extent: the grid covers [-extent, extent]^2.
      ax: Axes to draw into (new if None).
      colorbar: add a colour bar of P(class 1) next to the Axes.

    Returns:
      the Axes.
    """
    ax = _new_axes(ax, figsize=(6, 5))
    prob = 1 / (1 + np.exp(-_logits(params, datasets.grid(n, extent)).astype(np.float64)))
    box = (-extent, extent, -extent, extent)
    image = ax.imshow(prob.reshape(n, n), cmap=playground.cmap(), vmin=0, vmax=1, extent=box,
                      origin="upper", interpolation="bilinear")
    ax.contour(prob.reshape(n, n)[::-1], levels=[0.5], extent=box, colors="#333333",
               linewidths=0.8)
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, shrink=0.85, pad=0.02)
        bar.set_label("P(class 1) (white: 0.5, undecided)")
        bar.set_ticks([0, 0.25, 0.5, 0.75, 1])
    if data is not None:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        acc = float(np.mean((_logits(params, x) > 0) == (y > 0.5)))
        idx = np.arange(0, len(x), max(1, len(x) // 2000))
        # Darker shades of the class colours: visible on the model's own colour too.
        for cls, colour in ((0, "#8a4a00"), (1, "#03324f")):
            pick = idx[(y[idx] > 0.5) == bool(cls)]
            ax.scatter(x[pick, 0], x[pick, 1], s=2, color=colour, edgecolors="none",
                       label=f"class {cls} (training points)")
        # Below the Axes: the spiral fills the picture's corners.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8,
                  markerscale=3, frameon=False)
        ax.set_title(f"accuracy {100 * acc:.2f}%")
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_aspect("equal")
    return ax
