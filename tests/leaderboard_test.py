"""The leaderboard on its smoke preset: a pruner from a file outside the package, trained beside
the shipped built-ins' records and the shipped search frontier; bad pruners fail before training.
"""

import pytest

from spiralprune import frontier
from spiralprune.configs import leaderboard as leaderboard_config
from spiralprune.pruning import registry
from spiralprune.study import leaderboard

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


def test_unshipped_init_is_a_one_line_error(tmp_path):
    c = leaderboard_config.get_config("smoke")
    c.init = "bench995"
    c.builtins = "shipped"
    with pytest.raises(ValueError, match="no built-in pruner records are shipped for init "
                                         "'bench995'"):
        leaderboard.run(c, tmp_path / "lb")


def test_smoke_leaderboard_with_a_user_file(tmp_path):
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
    assert list(new["method"]) == [f"{path}:magnitude"] and int(new["runs"].iloc[0]) == 2
    assert "magnitude (new)" in out["markdown"]
    again = leaderboard.run(c, tmp_path / "lb")   # recorded: nothing retrains
    assert len(again["runs"]) == len(out["runs"])


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
