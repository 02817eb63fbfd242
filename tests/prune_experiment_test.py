"""experiments/prune.py end to end (smoke preset): records, table, resume, task split, errors."""

import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from spiralprune import analysis, masking, models, recording
from spiralprune.configs import prune as prune_config
from spiralprune.study import prune

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rows(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["stage", "chunk", "row"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prune") / "smoke"
    config = prune_config.get_config("smoke")
    return config, workdir, prune.run(config, workdir)


def test_smoke_records_every_run_with_exact_budgets(smoke, capsys):
    config, workdir, df = smoke
    # random + gmp at width 3 (budget 30 >= N_3 = 27 is skipped) x 2 schedules, + 2 BENCH runs.
    assert len(df) == 10
    assert set(df["stage"]) == {"prune_torch_random_w3", "prune_torch_gmp_w3",
                                "prune_bench95_random_w3"}
    for col in ("method", "width", "budget", "lr", "schedule", "repeat", "seed", "init",
                "accuracy", "loss", "diverged", "nnz_weights", "nnz", "mask_nnz_weights",
                "effective_nnz", "disconnected"):
        assert col in df, col
    np.testing.assert_array_equal(df["mask_nnz_weights"], df["budget"])
    assert np.all(df["nnz_weights"] <= df["budget"])
    assert df["seed"].nunique() == len(df)
    store = recording.Store.open(workdir)
    for _, row in df.iterrows():
        params = store.params_of(row)
        tree = {n: {"kernel": params[f"{n}/kernel"], "bias": params[f"{n}/bias"]}
                for n in models.LAYERS}
        assert int(masking.nnz(tree)) == row["nnz"]
        eff = analysis.effective_nonzeros(tree)
        assert int(eff["effective_nnz"]) == row["effective_nnz"]
        assert row["effective_nnz"] + row["disconnected"] == row["nnz"]
        assert params["layer1/kernel"].shape == (3, 3)
    summary = prune.table(df)
    # The smoke's BENCH-95 grid runs two repeats: the spread columns follow the counts.
    assert list(summary.columns) == ["runs", "best_acc", "nnz@95.0%", "nnz@99.5%",
                                     "repeats@95.0%", "repeats@99.5%"]
    assert summary["runs"].sum() == 10


def test_table_shows_the_spread_over_repeats_when_a_grid_repeats():
    # gmp: repeat 0 reaches 95% at 30, repeat 1 at 26, repeat 2 never; lth one repeat only.
    df = pd.DataFrame({"init": ["bench95"] * 6 + ["torch"],
                       "method": ["gmp"] * 6 + ["lth"],
                       "repeat": [0, 0, 1, 1, 2, 2, 0],
                       "nnz": [30, 40, 26, 31, 28, 40, 50],
                       "accuracy": [0.96, 0.99, 0.951, 0.97, 0.94, 0.949, 0.97]})
    summary = prune.table(df, targets=(0.95,))
    assert list(summary.columns) == ["runs", "best_acc", "nnz@95.0%", "repeats@95.0%"]
    assert summary.loc[("bench95", "gmp"), "repeats@95.0%"] == "26-30 (2/3)"
    assert summary.loc[("random", "lth"), "repeats@95.0%"] == "50 (1/1)"
    text = prune.format_table(summary)
    assert "26-30 (2/3)" in text and "26 " in text
    # One repeat everywhere: no spread column.
    assert "repeats@95.0%" not in prune.table(df[df["repeat"] == 0], targets=(0.95,))


def test_resume_recomputes_only_missing_chunks_and_gives_the_same_rows(smoke, capsys):
    config, workdir, df = smoke
    again = prune.run(config, workdir)
    assert "0 runs to train" in capsys.readouterr().out
    pd.testing.assert_frame_equal(_rows(again), _rows(df))
    shard = workdir / "shards" / "prune_torch_gmp_w3" / "000001.npz"
    shard.unlink()   # as if killed before this chunk was written
    resumed = prune.run(config, workdir)
    out = capsys.readouterr().out
    assert "2 runs to train" in out and "nnz@95.0%" in out
    pd.testing.assert_frame_equal(_rows(resumed), _rows(df))


def test_groups_trained_side_by_side_give_the_records_of_one_at_a_time(smoke, tmp_path,
                                                                        monkeypatch):
    config, _, _ = smoke
    got = {}
    for n in (1, 3):   # 3: all of the smoke grid's groups at once
        monkeypatch.setenv("SPIRALPRUNE_PRUNE_WORKERS", str(n))
        assert prune.workers() == n
        prune.run(config, tmp_path / f"w{n}")
        store = recording.Store.open(tmp_path / f"w{n}")
        got[n] = (store, _rows(store.load()))
    (one, rows1), (three, rows3) = got[1], got[3]
    pd.testing.assert_frame_equal(rows1, rows3)
    for _, row in rows1.iterrows():
        a, b = one.params_of(row), three.params_of(row)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_worker_count_is_refused_in_one_line(value, monkeypatch, tmp_path):
    monkeypatch.setenv("SPIRALPRUNE_PRUNE_WORKERS", value)
    with pytest.raises(ValueError, match="SPIRALPRUNE_PRUNE_WORKERS must be a whole number"):
        prune.workers()
    with pytest.raises(ValueError, match="SPIRALPRUNE_PRUNE_WORKERS"):   # before any record
        prune.run(prune_config.get_config("smoke"), tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_a_failing_group_stops_the_run_and_keeps_what_finished(smoke, tmp_path, monkeypatch):
    config, _, df = smoke
    monkeypatch.setenv("SPIRALPRUNE_PRUNE_WORKERS", "2")
    real = prune._train_chunk

    def train_chunk(group, *args):
        if group.method == "gmp":
            raise RuntimeError("gmp broke")
        return real(group, *args)
    monkeypatch.setattr(prune, "_train_chunk", train_chunk)
    with pytest.raises(RuntimeError, match="gmp broke"):
        prune.run(config, tmp_path / "w")
    kept = recording.Store.open(tmp_path / "w").load()
    assert set(kept["method"]) <= {"random"} and len(kept) < len(df)
    monkeypatch.setattr(prune, "_train_chunk", real)   # the rerun trains only what is missing
    pd.testing.assert_frame_equal(_rows(prune.run(config, tmp_path / "w")), _rows(df))


def test_task_split_and_merge_give_the_same_rows(smoke, tmp_path):
    config, _, df = smoke
    dirs = []
    for task in range(2):
        c = prune_config.get_config("smoke")
        c.task_index, c.num_tasks = task, 2
        dirs.append(tmp_path / f"task{task}")
        prune.run(c, dirs[-1])
    merged = recording.merge(dirs, tmp_path / "merged").load()
    pd.testing.assert_frame_equal(_rows(merged), _rows(df))


def test_a_runs_seed_depends_only_on_its_own_row():
    config = prune_config.get_config("smoke")
    rows = pd.concat([g.rows for g in prune.plan(config).groups])
    config.grids.random.budgets = (15, 16, 20)
    more = pd.concat([g.rows for g in prune.plan(config).groups])
    key = ["init", "method", "width", "budget", "lr", "schedule", "repeat"]
    merged = rows.merge(more, on=key, suffixes=("", "_more"))
    assert len(merged) == len(rows)
    np.testing.assert_array_equal(merged["seed"], merged["seed_more"])


@pytest.mark.parametrize("edit, match", [
    (lambda c: setattr(c.grids.random, "methods", ("gmp", "magic")), "unknown pruning method"),
    (lambda c: setattr(c.grids.random, "budgets", (0, 20)), "need 1 <= budget"),
    (lambda c: setattr(c.grids.bench95, "widths", (32,)), "16 wide"),
    (lambda c: setattr(c.grids.random, "init", "he"), "unknown init"),
    (lambda c: setattr(c.grids.random, "schedules", ("linear",)), "unknown lr schedule"),
    (lambda c: setattr(c.grids.random, "lrs", (0.0,)), "learning rates"),
    (lambda c: c.method_args.update({"gmp": {"rigl_delta": 3}}), "unknown method_args"),
    (lambda c: setattr(c, "task_index", 2), "task_index"),
])
def test_bad_input_fails_before_any_compute(edit, match, tmp_path):
    config = prune_config.get_config("smoke")
    edit(config)
    with pytest.raises(ValueError, match=match) as err:
        prune.run(config, tmp_path / "w")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "w").exists()


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown prune preset 'fast'.*quick.*paper.*smoke"):
        prune_config.get_config("fast")


def test_paper_preset_is_the_studys_grid():
    groups = prune.plan(prune_config.get_config("paper")).groups
    runs = {init: sum(len(g.rows) for g in groups if g.init == init)
            for init in ("torch", "bench95", "bench995")}
    # 234 (width, budget) cells with budget < N_w x 9 methods x 3 lrs x 3 schedules; the
    # BENCH grids 2 widths x 12 (14) budgets x 5 repeats x 81.
    assert runs == {"torch": 234 * 81, "bench95": 24 * 5 * 81, "bench995": 28 * 5 * 81}


def test_cli_reports_bad_input_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "experiments/prune.py",
         "--config=experiments/configs/prune.py:smoke", f"--workdir={tmp_path / 'w'}",
         "--task_index=3", "--num_tasks=2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "task_index must be in [0, num_tasks)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_printed_table_names_an_import_path_by_its_short_name():
    from spiralprune.study import prune as prune_stage
    df = pd.DataFrame({"init": ["torch"] * 3, "method": ["my/dir/mine.py:mag", "gmp", "pkg.m:g"],
                       "accuracy": [0.96, 0.97, 0.5], "nnz": [30, 31, 20]})
    text = prune_stage.format_table(prune_stage.table(df))
    assert "mine.py" not in text and "pkg.m" not in text and "my/dir" not in text
    lines = {ln.split()[-5]: ln.split()[-2] for ln in text.splitlines()[2:]}
    assert lines == {"mag": "30", "gmp": "31", "g": "-"}
