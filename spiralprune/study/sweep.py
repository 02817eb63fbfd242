"""The width sweep (the study's overparameterization experiment): tables and figures.

Reads pruning records at several widths (columns method, width, nnz, accuracy, disconnected)
and answers, per pruner, target and width: the fewest nonzeros of a run reaching the target,
and the share of that run's nonzeros on disconnected paths (``analysis.record_columns``).
``draw_fronts`` is the study's layout of Figures 11 and 17 (accuracy against nonzeros, one
panel per width, the search's frontier on top); ``draw_fewest`` is a figure the study does not
have: fewest nonzeros reaching each target against width, per pruner, beside the search.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from spiralprune import analysis, plotting

TARGETS = (0.95, 0.995)


def fewest(df: pd.DataFrame, targets=TARGETS) -> pd.DataFrame:
    """Per (method, width, target) the sparsest run reaching the target.

    Args:
      df: pruning records (method, width, nnz, accuracy, disconnected).
      targets: accuracy levels.

    Returns:
      rows method, width, target, runs (at that method and width), nnz, accuracy,
      disconnected, share (disconnected / nnz): nnz is NaN where no run reaches the target.
      Ties on nnz go to the higher accuracy.
    """
    analysis.check_records(df, ("method", "width", "nnz", "accuracy", "disconnected"))
    rows = []
    for (method, width), g in df.groupby(["method", "width"], sort=True):
        for t in targets:
            ok = g[g["accuracy"] >= t].sort_values(["nnz", "accuracy"],
                                                   ascending=[True, False], kind="stable")
            row = {"method": str(method), "width": int(width), "target": float(t),
                   "runs": int(len(g)), "nnz": np.nan, "accuracy": np.nan,
                   "disconnected": np.nan, "share": np.nan}
            if len(ok):
                r = ok.iloc[0]
                row.update(nnz=int(r["nnz"]), accuracy=float(r["accuracy"]),
                           disconnected=int(r["disconnected"]),
                           share=float(r["disconnected"]) / max(int(r["nnz"]), 1))
            rows.append(row)
    return pd.DataFrame(rows)


def _wrapped(title: str, fig) -> str:
    """``title`` with each line wrapped to the figure's width (about 13 characters an inch at
    font size 10), so a long statement of the grid is never cut at the edges."""
    chars = max(40, int(fig.get_figwidth() * 13))
    return "\n".join(textwrap.fill(line, chars) for line in title.split("\n"))


def _width_axis(ax, widths) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(widths))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("width")


def draw_fewest(table: pd.DataFrame, path, *, search=None, title: str = "",
                highlight=()) -> None:
    """Fewest nonzeros reaching each target against width (top row), and the share of that
    run's nonzeros on disconnected paths (bottom row), one line per pruner (dense left out).

    Args:
      table: ``fewest``'s rows.
      path: the PNG to write.
      search: optional {target: nonzeros} of the search's sparsest model, drawn as a line.
      title: the figure's title (say the grid and any reduction).
      highlight: methods to stand out (``plotting.HIGHLIGHT_STYLES``, bold, first in the
        legend), e.g. a pruner of ours beside the nine.
    """
    table = table[table["method"] != "dense"]   # dense keeps every weight: not a pruner
    targets = sorted(table["target"].unique())
    widths = sorted(table["width"].unique())
    fig = Figure(figsize=(5.2 * len(targets), 6.6), layout="constrained")
    axes = fig.subplots(2, len(targets), squeeze=False, sharex=True)
    names = sorted(table["method"].unique())
    highlight = [str(h) for h in highlight if str(h) in names]
    names = highlight + [n for n in names if n not in highlight]
    for j, t in enumerate(targets):
        top, bottom = axes[0, j], axes[1, j]
        for name in names:
            g = table[(table["method"] == name) & (table["target"] == t)].sort_values("width")
            colour, marker = plotting.method_style(name, names)
            style = dict(marker=marker, color=colour, lw=1.2, ms=5, alpha=0.8 if highlight
                         else 1.0)
            if name in highlight:
                style = dict(marker="*", color=plotting.HIGHLIGHT_STYLES[
                    highlight.index(name) % len(plotting.HIGHLIGHT_STYLES)], lw=2.6, ms=11,
                    markeredgecolor="black", markeredgewidth=0.5, zorder=plotting.SEARCH_ZORDER)
            top.plot(g["width"], g["nnz"], label=name, **style)
            bottom.plot(g["width"], g["share"], **{**style, "lw": style["lw"] - 0.2,
                                                    "ms": style["ms"] - 1})
        if search and search.get(t) is not None:
            top.axhline(search[t], color=plotting.SEARCH_COLOUR, lw=2.2, label="search")
            top.annotate(f"search: {search[t]}", (widths[0], search[t]), xytext=(2, 3),
                         textcoords="offset points", fontsize=8)
            top.set_ylim(bottom=min(top.get_ylim()[0], 0.85 * search[t]))
        top.set_title(f"fewest nonzeros reaching {t:.1%}", fontsize=10)
        top.set_yscale("log")
        top.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(
            [15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 500]))
        top.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        top.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        top.set_ylabel("fewest nonzeros (no point: never reached)")
        top.grid(alpha=0.3, which="both")
        bottom.set_ylabel("share on disconnected paths")
        bottom.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        bottom.set_ylim(-0.02, 1.02)
        bottom.grid(alpha=0.3)
        _width_axis(bottom, widths)
    legend = axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for text in legend.get_texts():
        if text.get_text() in highlight:
            text.set_fontweight("bold")
    if title:
        fig.suptitle(_wrapped(title, fig), fontsize=10)
    plotting.save(fig, path, dpi=130)


def draw_fronts(df: pd.DataFrame, path, *, search=None, target: float = 0.95,
                title: str = "", columns: int = 4, highlight=()) -> None:
    """The study's Figures 11 / 17: accuracy against nonzeros, one panel per width, every
    pruner's runs and frontier, the search's frontier on top.

    Args:
      df: pruning records (method, width, nnz, accuracy).
      path: the PNG to write.
      search: optional search records (nnz, accuracy) drawn on every panel.
      target: the accuracy level marked (0.95: Figure 11; 0.995: Figure 17).
      title: the figure's title.
      columns: panels per row.
      highlight: methods to stand out (``plotting.accuracy_vs_nonzeros``), e.g. ours.
    """
    widths = sorted(df["width"].unique())
    rows = math.ceil(len(widths) / columns)
    fig = Figure(figsize=(4.0 * columns + 1.6, 3.3 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).reshape(-1)
    for ax, w in zip(axes, widths):
        plotting.accuracy_vs_nonzeros(df[df["width"] == w], search=search, targets=(target,),
                                      logx=True, ax=ax, highlight=highlight)
        ax.set_title(f"width {w}", fontsize=9)
        ax.set_ylim(max(0.45, ax.get_ylim()[0]), 1.005)
        if ax is not axes[min(columns, len(widths)) - 1]:
            ax.get_legend().remove()
    for ax in axes[len(widths):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(_wrapped(title, fig), fontsize=10)
    plotting.save(fig, path, dpi=110)
