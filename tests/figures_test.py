"""experiments/figures.py on smoke search and prune workdirs: files, table numbers, bad input."""

import os
import pathlib
import subprocess
import sys

import matplotlib.collections
import matplotlib.colors
import matplotlib.image
import matplotlib.lines
import numpy as np
import pandas as pd
import pytest

from spiralprune import analysis, plotting, recording, search
from spiralprune.configs import prune as prune_config
from spiralprune.configs import search as search_config
from spiralprune.study import figures
from spiralprune.study import prune as prune_stage
from spiralprune.study import search as search_stage

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAST = dict(grid=64, no_path_trials=64, no_path_widths=(4, 16))  # small pictures and Monte Carlo


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study directory with smoke search/ and prune/ workdirs, and figures.run's result."""
    root = tmp_path_factory.mktemp("study")
    search_stage.run(search_config.get_config("smoke"), root / "search")
    prune_stage.run(prune_config.get_config("smoke"), root / "prune")
    out = root.parent / (root.name + "_figures")
    result = figures.run([str(root)], str(out), **FAST)
    return {"root": root, "out": out, "result": result,
            "search": recording.Store.open(root / "search").load(),
            "prune": recording.Store.open(root / "prune").load()}


def section(summary: str, *headings: str) -> str:
    """The text after each heading in turn (each searched after the previous one)."""
    at = 0
    for h in headings:
        at = summary.index(h + "\n", at) + len(h) + 1
    return summary[at:]


def first_table(text: str) -> list[dict]:
    """The first markdown table of ``text`` as a list of {column: cell} dicts."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([c.strip() for c in line.strip("|").split("|")])
    header, body = block[0], block[2:]
    return [dict(zip(header, row)) for row in body]


def reach(df, target):
    """Fewest nnz reaching ``target`` and the best accuracy at that nnz, recomputed."""
    hit = df[df["accuracy"] >= target]
    if hit.empty:
        return "-"
    fewest = hit["nnz"].min()
    return f"{int(fewest)} ({100 * float(hit[hit['nnz'] == fewest]['accuracy'].max()):.2f}%)"


def test_every_figure_is_a_valid_png_or_html(study):
    out, files = study["out"], study["result"]["figures"]
    names = {pathlib.Path(f).name for f in files}
    assert names >= {"phase1_search.png", "fronts_random_w3.png", "fronts_bench95_w3.png",
                     "sparsest_search_0_boundary.png", "sparsest_search_0_playground.png",
                     "sparsest_search_0_playground.html", "disconnected_random.png",
                     "disconnected_bench95.png", "flops.png", "no_path.png"}
    for f in files:
        path = pathlib.Path(f)
        assert path.parent == out and path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            image = matplotlib.image.imread(path)
            assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 0.01
        else:
            assert path.read_text().startswith("<!DOCTYPE html>")
    # The smoke pruners ran at one width: no "all widths" figure repeating it.
    assert not any(n.startswith("fronts_") and n.endswith("_all.png") for n in names)
    assert (out / "summary.md").read_text() == study["result"]["summary"]
    for name in names:  # every figure is linked from summary.md
        assert f"({name})" in study["result"]["summary"]


def test_fewest_nonzeros_tables_match_the_records(study):
    summary, prune, srch = study["result"]["summary"], study["prune"], study["search"]
    targets = (0.5, 0.55, 0.95, 0.995)  # the smoke search's targets and the study's
    assert "Targets: 50%, 55%, 95%, 99.5%." in summary
    for setting, inits in (("random", ("torch",)), ("bench95", ("bench95",))):
        rows = first_table(section(summary, "## Fewest nonzeros reaching the targets",
                                   f"### {setting} init"))
        df = prune[prune["init"].isin(inits)]
        expected = {m: g for m, g in df.groupby("method")}
        if setting == "random":
            expected["search"] = srch
        assert [r["method"] for r in rows] == sorted(df["method"].unique()) + (
            ["search"] if setting == "random" else [])
        for r in rows:
            g = expected[r["method"]]
            assert int(r["runs"]) == len(g)
            assert r["best accuracy"] == f"{100 * float(g['accuracy'].max()):.2f}%"
            for t in targets:
                assert r[figures.target_column(t)] == reach(g, t), (setting, r["method"], t)
    # The smoke runs reach 50%: the table is not all "-".
    assert any(r["nnz @50%"] != "-" for r in first_table(section(
        summary, "## Fewest nonzeros reaching the targets", "### random init")))


def test_spread_over_repeats_matches_the_records(study):
    # The smoke's bench95 grid runs two repeats: its spread table, recomputed per repeat.
    summary, prune = study["result"]["summary"], study["prune"]
    rows = first_table(section(summary, "## Spread over repeats", "### bench95 init"))
    df = prune[(prune["init"] == "bench95") & (prune["method"] != "dense")]
    assert {r["method"] for r in rows} == set(df["method"])
    assert len(rows) == df["method"].nunique() * 4   # targets 50%, 55%, 95%, 99.5%
    for r in rows:
        t = float(r["target"].rstrip("%")) / 100
        g = df[df["method"] == r["method"]]
        per = []
        for rep in sorted(g["repeat"].unique()):
            hit = g[(g["repeat"] == rep) & (g["accuracy"] >= t)]
            per.append(str(int(hit["nnz"].min())) if len(hit) else "-")
        assert r["per repeat"] == ", ".join(per), r
        assert r["repeats reaching it"] == f"{sum(v != '-' for v in per)}/{len(per)}"
    # The random init's smoke grid has one repeat: no spread section for it.
    assert "### random init" not in section(summary, "## Spread over repeats").split("\n## ")[0]


def test_sparsest_models_table_matches_phase_two(study):
    rows = first_table(section(study["result"]["summary"], "### Sparsest models of `search`"))
    df2 = study["search"][study["search"]["stage"].str.startswith("phase2")]
    for r in rows:
        t = float(r["target"].rstrip("%")) / 100
        best = search.sparsest(df2, t)
        if best is None:
            assert r["nnz"] == "-"
            continue
        assert int(r["nnz"]) == int(best["nnz"]) == int(df2[df2["accuracy"] >= t]["nnz"].min())
        assert r["accuracy"] == f"{100 * float(best['accuracy']):.2f}%"
        assert int(r["mask"]) == int(best["mask_index"])


def test_disconnected_table_matches_one_model_at_a_time(study):
    store = recording.Store.open(study["root"] / "prune")
    df = study["prune"]
    eff = np.array([int(analysis.effective_nonzeros(figures.params_tree(store.params_of(r)))
                        ["effective_nnz"]) for _, r in df.iterrows()])
    vectorised = figures.effective_counts(store, df)  # one shard at a time, stacked
    np.testing.assert_array_equal(vectorised["effective_nnz"], eff)
    if "effective_nnz" in df:  # recorded by the binary: the same counts
        np.testing.assert_array_equal(df["effective_nnz"], eff)
    df = df.assign(effective_nnz=eff, disconnected=df["nnz"].to_numpy() - eff)
    rows = first_table(section(study["result"]["summary"], "## Disconnected paths",
                               "### random init"))
    torch = df[df["init"] == "torch"]
    for r in rows:
        if r["method"] == "search (phase two)":
            assert r["mean disconnected"] == "0.00"  # masks with no empty row or column
            continue
        g = torch[torch["method"] == r["method"]]
        assert int(r["runs"]) == len(g)
        assert r["mean effective nnz"] == f"{g['effective_nnz'].mean():.1f}"
        assert r["mean disconnected"] == f"{g['disconnected'].mean():.2f}"
        assert int(r["max disconnected"]) == g["disconnected"].max()
    assert (df["disconnected"] > 0).any()  # random masks at width 3 do cut paths


def test_flops_and_no_path_tables(study):
    summary = study["result"]["summary"]
    rows = first_table(section(summary, "## FLOPs to prune and train"))
    table = analysis.flops_table(16, 55)
    assert [r["method"] for r in rows] == list(table["method"])
    for r, (_, t) in zip(rows, table.iterrows()):
        assert r["flops"] == f"{t['flops']:.3e}"
        assert r["flops_fwd_bwd"] == f"{t['flops_fwd_bwd']:.3e}"
    rows = first_table(section(summary, "## Random pruning leaves no path"))
    assert [int(r["width"]) for r in rows] == [4, 16]
    assert rows[0][next(iter(figures.NO_PATH_COUNTS))] == "0.000"  # width 4 keeps a path
    assert rows[0][list(figures.NO_PATH_COUNTS)[1]] == "-"  # 14 weights do not fit in 2 x 4


def test_missing_prune_records_are_skipped_with_a_note(study, tmp_path):
    result = figures.run([str(study["root"] / "search")], str(tmp_path), **FAST)
    summary = result["summary"]
    assert "no prune records" in summary
    assert "## Pruning against the combinatorial search" not in summary
    names = {pathlib.Path(f).name for f in result["figures"]}
    assert "phase1_search.png" in names and not any(n.startswith("fronts_") for n in names)


@pytest.mark.parametrize("case", ["missing", "empty", "no_columns", "no_rows"])
def test_bad_input_is_a_one_line_error(tmp_path, case):
    workdir = tmp_path / "w"
    if case == "empty":
        workdir.mkdir()
    elif case == "no_columns":
        store = recording.Store(workdir, {"preset": "x"}, kind="prune")
        store.write("prune_torch_gmp_w3", 0, {"accuracy": np.array([0.5])})
    elif case == "no_rows":
        recording.Store(workdir, {"preset": "x"}, kind="search")
    message = {"missing": "does not exist", "empty": "no spiralprune records",
               "no_columns": "lack column 'init'", "no_rows": "no search or prune rows"}[case]
    with pytest.raises(ValueError, match=message) as err:
        figures.run([str(workdir)], str(tmp_path / "out"))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="no workdirs"):
        figures.run([], str(tmp_path / "out"))


def test_binary_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "figures.py"),
                           f"--workdirs={tmp_path / 'nowhere'}", f"--out={tmp_path / 'out'}"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"figures: error: workdir {tmp_path / 'nowhere'} does not exist"]


def test_a_rerun_skips_unchanged_figures_and_redraws_what_changed(study, tmp_path):
    out, lines = tmp_path / "figures", []
    first = figures.run([str(study["root"])], str(out), **FAST, progress=lines.append)
    assert first["skipped"] == [] and len(first["drawn"]) >= 5
    n = len(first["drawn"])
    assert lines[0] == f"[figures] 1/{n} {first['drawn'][0]}"
    assert (out / figures.CACHE_FILE).is_file()
    lines.clear()
    again = figures.run([str(study["root"])], str(out), **FAST, progress=lines.append)
    assert again["drawn"] == [] and again["skipped"] == first["drawn"]
    assert again["summary"] == first["summary"]
    assert sorted(again["figures"]) == sorted(first["figures"])
    assert all("unchanged, skipped" in line for line in lines[:-1])
    assert f"all {n} parts unchanged" in lines[-1]
    # A missing file redraws its part only; new arguments redraw the parts that read them.
    (out / "no_path.png").unlink()
    assert figures.run([str(study["root"])], str(out), **FAST)["drawn"] == ["no-path Monte Carlo"]
    changed = figures.run([str(study["root"])], str(out), **{**FAST, "grid": 48})
    assert changed["drawn"] == [d for d in first["drawn"] if d.startswith("search ")]


def _method_colours(fig) -> dict:
    """{legend label: set of colours} over every labelled scatter and line of a figure."""
    seen = {}
    for ax in fig.axes:
        for artist in ax.collections + ax.lines:
            label = artist.get_label()
            if not label or label.startswith("_"):
                continue
            if isinstance(artist, matplotlib.collections.PathCollection):
                colours = artist.get_facecolors()[:, :3]
            elif isinstance(artist, matplotlib.lines.Line2D):
                colours = [matplotlib.colors.to_rgb(artist.get_color())]
            else:
                continue
            seen.setdefault(label, set()).update(
                matplotlib.colors.to_hex(c) for c in colours)
    return seen


def test_each_method_has_one_colour_in_every_figure(study, tmp_path, monkeypatch):
    drawn = {}
    save = figures._Out.save

    def keep(self, fig, name):
        drawn[name] = fig
        return save(self, fig, name)

    monkeypatch.setattr(figures._Out, "save", keep)
    figures.run([str(study["root"])], str(tmp_path), **FAST)
    by_method = {}
    for name, fig in drawn.items():
        for label, colours in _method_colours(fig).items():
            method = "search" if label.startswith("search") else label
            if method in plotting.METHOD_STYLES:
                by_method.setdefault(method, {})[name] = colours
    assert {"search", "gmp", "random"} <= set(by_method)
    for method, per_figure in by_method.items():
        expected = {plotting.METHOD_STYLES[method][0]}
        assert all(c == expected for c in per_figure.values()), (method, per_figure)
    # The same method is drawn in more than one figure (fronts and disconnected paths).
    assert len(by_method["gmp"]) >= 2 and len(by_method["search"]) >= 2


def test_fronts_draw_the_searchs_targets_and_dense_as_a_line(study, tmp_path, monkeypatch):
    # A front draws the targets its setting's search used (the smoke search's 50% and 55%),
    # not 99.5% because some run is accurate; dense (hundreds of nonzeros) is a dotted line at
    # its best accuracy, so the nonzero axis spans the pruners and the search only.
    records, _ = figures.discover([str(study["root"])])
    prune = study["prune"].assign(setting=lambda d: d["init"].map(
        lambda i: "random" if i == "torch" else i), accuracy=0.999)
    prune = prune[prune["setting"] == "random"]
    dense = prune.iloc[:2].assign(method="dense", nnz=609, accuracy=0.9991)
    prune = pd.concat([prune, dense], ignore_index=True)
    calls = []
    draw = plotting.accuracy_vs_nonzeros

    def spy(df, **kw):
        ax = draw(df, **kw)
        calls.append((df, kw, ax))
        return ax
    monkeypatch.setattr(plotting, "accuracy_vs_nonzeros", spy)
    out = figures._Out(tmp_path)
    figures._fronts_section(prune, records, (0.5, 0.55, 0.95, 0.995), out)
    assert calls
    for df, kw, ax in calls:
        assert tuple(kw["targets"]) == (0.5, 0.55)
        assert "dense" not in set(df["method"]) and ax.get_xlim()[1] < 609
        labels = ax.get_legend_handles_labels()[1]
        assert any(t.startswith("dense (609 nonzeros): 99.91%") for t in labels)


def test_flops_figure_says_it_is_computed_at_the_table_1_setting(tmp_path):
    import unittest.mock

    import matplotlib.figure
    captured = {}
    real = matplotlib.figure.Figure.savefig

    def spy(self, *a, **k):
        captured["title"] = self.axes[0].get_title()
        captured["labels"] = self.axes[0].get_legend_handles_labels()[1]
        return real(self, *a, **k)
    with unittest.mock.patch.object(matplotlib.figure.Figure, "savefig", spy):
        figures._flops_section(figures._Out(tmp_path))
    assert "computed" in captured["title"] and "width 16, budget 55" in captured["title"]
    assert "prune (0: none)" not in captured["labels"]


def test_spare_colours_are_far_apart():
    # Three names outside the method table (notebook 01's schedules) get distinct hues.
    hues = [matplotlib.colors.rgb_to_hsv(matplotlib.colors.to_rgb(
        plotting.method_style(s, ("constant", "cosine", "step"))[0]))[0]
        for s in ("constant", "cosine", "step")]
    for i in range(3):
        for j in range(i + 1, 3):
            d = abs(hues[i] - hues[j])
            assert min(d, 1 - d) > 0.1, (i, j, hues)
