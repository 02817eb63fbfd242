"""The leaderboard on its smoke preset: a pruner from a file outside the package, trained beside
the shipped built-ins' records and the shipped search frontier; bad pruners fail before training.
"""

import pandas as pd
import pytest

from spiralprune import frontier, recording
from spiralprune.configs import leaderboard as leaderboard_config
from spiralprune.pruning import registry
from spiralprune.study import leaderboard, prune

MINE = '''
import jax.numpy as jnp


def magnitude(key, params, masks, batch):
    return {n: {"kernel": jnp.abs(p["kernel"]), "bias": p["bias"]} for n, p in params.items()}
'''


def test_shipped_ground_truth():
    best = frontier.sparsest("bench95", 0.95)
    assert best["nnz"] == 26 and best["source"] == "measured" and best["config"] == [3, 2, 2]
    assert frontier.sparsest("bench95", 0.95, source="paper")["accuracy"] == 0.9647
    assert frontier.sparsest("torch", 0.95)["nnz"] == 30          # the paper's, labelled
    assert frontier.sparsest("random", 0.995)["source"] == "paper"
    assert frontier.sparsest("bench995", 0.995)["nnz"] == 38
    prov = frontier.entry("bench95")["provenance"]
    assert {"command", "device", "date", "commit", "runs"} <= set(prov)
    runs = frontier.pruner_runs()
    assert set(runs["method"]) >= {"gmp", "lth", "snip", "grasp", "synflow", "iter_snip",
                                   "force", "prospr", "rigl"}


def test_shipped_bench995_records_are_the_pieces_on_the_bench995_preset():
    from spiralprune.study import reproduce
    c = leaderboard_config.get_config("bench995")
    runs = frontier.pruner_runs(frontier.pruner_file(c.init))
    assert leaderboard.plan_notes(c, runs) == []   # the preset's grid, like for like
    # every (method, width, budget, repeat) once: 9 methods x 2 widths x 14 budgets x 5
    assert len(runs) == 9 * 2 * 14 * 5 == frontier.pruner_provenance(
        frontier.pruner_file(c.init))["runs"]
    assert not runs.duplicated(["method", "width", "budget", "repeat"]).any()
    assert set(runs["lr"]) == {0.05} and set(runs["schedule"]) == {"cosine"}
    # the same runs as the shipped piece summary's: GMP's sparsest over 99.5% (46 at width 6)
    piece = reproduce.load_summaries()["bench995_pruning"]
    gmp = [r for r in piece["fewest"] if r["method"] == "gmp" and r["target"] == 0.995
           and r["width"] == 6][0]
    over = runs[(runs["method"] == "gmp") & (runs["accuracy"] >= 0.995)]
    assert int(over["nnz"].min()) == int(gmp["nnz"]) == 46


def test_shipping_leaderboard_records_refuses_an_incomplete_piece(tmp_path):
    from spiralprune.study import reproduce
    with pytest.raises(ValueError, match="ships no leaderboard records"):
        reproduce.ship_leaderboard("sweep_w64", tmp_path)
    wd = tmp_path / "bench995_pruning"
    recording.Store(wd, prune.plan(reproduce.piece("bench995_pruning").config()).record,
                    kind=prune.KIND)
    with pytest.raises(ValueError, match="holds 0 of the 1260 runs of leaderboard preset "
                                         "'bench995'"):
        reproduce.ship_leaderboard("bench995_pruning", tmp_path)


def test_shipped_random_init_records_cover_the_random16_preset():
    c = leaderboard_config.get_config("random16")
    runs = frontier.pruner_runs(frontier.pruner_file(c.init))
    assert set(runs["init"]) == {"torch"} and set(runs["width"]) == {16}
    prov = frontier.pruner_provenance(frontier.pruner_file(c.init))
    assert "random16" in prov["command"] and prov["runs"] == len(runs)
    for m in registry.METHODS:
        g = runs[runs["method"] == m]
        if m == "dense":
            assert len(g) == c.repeats
            continue
        assert sorted(set(g["budget"])) == sorted(c.budgets), m
        assert len(g) == len(c.budgets) * c.repeats, m
        kept = g["mask_nnz_weights"] - g["budget"]   # the study's counts: f, or f-1, f-2
        assert kept.between(-2, 0).all(), m
    assert frontier.sparsest(c.init, 0.95)["source"] == "paper"


def test_unshipped_init_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delitem(frontier.PRUNERS_FILES, "bench995")   # every init ships records now
    c = leaderboard_config.get_config("smoke")
    c.init = "bench995"
    c.builtins = "shipped"
    with pytest.raises(ValueError, match="no built-in pruner records are shipped for init "
                                         "'bench995'"):
        leaderboard.run(c, tmp_path / "lb")


def test_smoke_leaderboard_with_a_user_file(tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text(MINE)
    c = leaderboard_config.get_config("smoke")
    c.methods = f"({path}:magnitude)"
    c.builtins = "shipped"
    out = leaderboard.run(c, tmp_path / "lb")
    assert all(f.exists() for f in out["files"])
    tab = out["table"]
    assert tab.iloc[0]["method"] == "search" and tab.iloc[0]["nnz"] == 26
    new = tab[tab["new"]]
    assert list(new["method"]) == ["magnitude"] and int(new["runs"].iloc[0]) == 2
    assert list(new["path"]) == [f"{path}:magnitude"]
    assert "**magnitude** (new)" in out["markdown"]
    csv = pd.read_csv(out["files"][1])        # one name everywhere: the short one
    assert "magnitude" in set(csv["method"]) and f"{path}:magnitude" not in set(csv["method"])
    again = leaderboard.run(c, tmp_path / "lb")   # recorded: nothing retrains
    assert len(again["runs"]) == len(out["runs"])
    capsys.readouterr()
    c.methods = "snip"   # a report of other pruners says the user's is recorded but not shown
    leaderboard.run(c, tmp_path / "lb")
    assert "not shown: magnitude (name them" in capsys.readouterr().out
    c.budgets = (20,)    # another grid: its records are not this grid's
    assert leaderboard.other_pruners(c, tmp_path / "lb", ("snip",)) == []


def test_builtins_none_trains_a_named_builtin_as_new(tmp_path):
    c = leaderboard_config.get_config("smoke")
    c.methods = "snip"
    c.builtins = "none"
    c.budgets = (20,)
    out = leaderboard.run(c, tmp_path / "lb")
    new = out["table"][out["table"]["new"]]
    assert list(new["method"]) == ["snip"] and int(new["runs"].iloc[0]) == 1
    assert set(out["runs"]["method"]) == {"snip"}   # nothing read from a cache


def test_bad_pruner_fails_before_training(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("def f(key, params, masks, batch):\n    return 0\n")
    c = leaderboard_config.get_config("smoke")
    c.methods = f"{path}:f"
    with pytest.raises(ValueError, match="score function returned"):
        leaderboard.run(c, tmp_path / "lb")
    assert not (tmp_path / "lb").exists()


def test_presets_have_their_own_default_workdirs(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIRALPRUNE_WORKDIRS", str(tmp_path))
    dirs = {leaderboard.default_workdir(leaderboard_config.get_config(p))
            for p in leaderboard_config.PRESETS}
    assert len(dirs) == len(leaderboard_config.PRESETS)
    assert leaderboard.default_workdir(leaderboard_config.get_config("random16")) == \
        tmp_path / "leaderboard" / "random16"


def test_workdirs_root_is_the_checkout_from_any_directory(monkeypatch, tmp_path):
    from spiralprune.study import cli
    monkeypatch.delenv("SPIRALPRUNE_WORKDIRS", raising=False)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "spiralprune"\n')
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert str(cli.workdirs_root()) == "../workdirs"
    assert cli.workdirs_root().resolve() == (tmp_path / "workdirs").resolve()
    monkeypatch.chdir(tmp_path)
    assert str(cli.workdirs_root()) == "workdirs"


def test_two_grids_and_report_fields_share_a_workdir(tmp_path):
    # Another grid in the same workdir keeps its own records (no "different config" refusal);
    # targets and the figure are the report's: changing them never retrains, and the search
    # row is read at any target (90% from the shipped frontier's points).
    c = leaderboard_config.get_config("smoke")
    c.methods = "random"
    c.builtins = "none"
    c.budgets = (20,)
    c.figure = False
    leaderboard.run(c, tmp_path / "lb")
    c.budgets = (26,)
    leaderboard.run(c, tmp_path / "lb")
    c.targets = (0.9,)
    c.figure = True
    out = leaderboard.run(c, tmp_path / "lb")
    assert len(list((tmp_path / "lb" / "prune").iterdir())) == 2
    assert len(out["runs"]) == 1                  # recorded before: nothing trained
    search = out["table"][out["table"]["method"] == "search"]
    assert len(search) == 1 and int(search["nnz"].iloc[0]) == 26
    assert "Search: 90.0%: 26 nonzeros" in out["markdown"]
    c.targets = (0.95,)
    c.preset = "bench95"                          # the preset's name is not a record either
    assert len(leaderboard.run(c, tmp_path / "lb")["runs"]) == 1


def test_table_ranks_search_then_nnz_then_accuracy():
    c = leaderboard_config.get_config("smoke")
    c.targets = (0.95,)
    runs = pd.DataFrame({
        "method": ["/abs/a.py:zeta", "snip", "gmp", "lth", "/x/mine.py:alpha", "grasp"],
        "width": 3, "budget": 20,
        "nnz": [30, 25, 25, 28, 40, 50],
        "accuracy": [0.97, 0.96, 0.98, 0.90, 0.80, 0.85],
        "disconnected": 0})
    best = {0.95: {"nnz": 26, "accuracy": 0.96, "config": [3, 2, 2], "source": "measured"}}
    tab = leaderboard.table(runs, best, c, new=("/abs/a.py:zeta",),
                            asked=("/abs/a.py:zeta", "/x/mine.py:alpha"))
    assert list(tab["method"]) == ["search", "gmp", "snip", "zeta", "lth", "grasp", "alpha"]
    assert list(tab["asked"]) == [False, False, False, True, False, False, True]


def test_colliding_short_names_stay_distinct():
    names = leaderboard.display_names(["/a/one.py:prune", "/b/two.py:prune", "snip"])
    assert names == {"/a/one.py:prune": "one:prune", "/b/two.py:prune": "two:prune",
                     "snip": "snip"}


def test_budget_no_width_holds_is_refused_before_training(tmp_path):
    c = leaderboard_config.get_config("smoke")
    c.methods = "random"
    c.widths = (3, 16)
    c.budgets = (30, 600)
    with pytest.raises(ValueError, match="budget 600 fits no width of \\(3, 16\\)"):
        leaderboard.run(c, tmp_path / "lb")
    assert not (tmp_path / "lb").exists()


def test_budget_one_width_cannot_hold_is_in_the_plan_and_grid_difference_warns(capsys):
    c = leaderboard_config.get_config("bench95")
    c.budgets = (20, 30)
    notes = leaderboard.plan_notes(c, frontier.pruner_runs())
    assert any("width 3 holds budgets below 27 only: 30" in n for n in notes)
    assert any("not like for like" in n and "not in their grid" in n for n in notes)
    c = leaderboard_config.get_config("bench95")
    assert leaderboard.plan_notes(c, frontier.pruner_runs()) == []   # the shipped grid
    c.epochs = 10
    assert any("epochs=10" in n for n in leaderboard.plan_notes(c, frontier.pruner_runs()))


@pytest.mark.parametrize("field,value,match", [
    ("targets", (1.5,), "targets must be"), ("targets", (), "targets must be"),
    ("budgets", (20, 20), "repeat a value"),
    ("search_workdir", "/nonexistent/search", "holds no search records"),
])
def test_report_and_grid_mistakes_are_refused_before_training(tmp_path, field, value, match):
    c = leaderboard_config.get_config("smoke")
    c.methods = "random"
    c[field] = value
    with pytest.raises(ValueError, match=match):
        leaderboard.run(c, tmp_path / "lb")
    assert not (tmp_path / "lb").exists()


def test_leaderboard_figure_highlights_the_given_pruner(tmp_path):
    from spiralprune import plotting
    runs = frontier.pruner_runs()
    mine = runs[runs["method"] == "snip"].assign(method="/data/mine.py:my_magnitude")
    runs = pd.concat([runs, mine], ignore_index=True)
    c = leaderboard_config.get_config("bench95")
    path = tmp_path / "lb.png"
    leaderboard.figure(runs, frontier.points("bench95"), c, path,
                       asked=("/data/mine.py:my_magnitude",))
    assert path.stat().st_size > 0
    ax = plotting.accuracy_vs_nonzeros(
        runs.assign(method=runs["method"].map(leaderboard.display_names(runs["method"]))),
        search=frontier.points("bench95"), highlight=("my_magnitude",))
    texts = ax.get_legend().get_texts()
    assert texts[0].get_text() == "my_magnitude" and texts[0].get_fontweight() == "bold"
    assert texts[1].get_text() == "search"
    colours = [tuple(h.get_facecolor()[0][:3]) for h in ax.get_legend().legend_handles
               if hasattr(h, "get_facecolor")]
    import matplotlib.colors as mc
    assert colours[0] == mc.to_rgb(plotting.HIGHLIGHT_STYLES[0])
