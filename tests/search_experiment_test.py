"""End-to-end tests of experiments/search.py on the smoke preset: summary, resume, task split."""

import os
import pathlib
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from spiralprune import recording
from spiralprune.configs import search as search_config
from spiralprune.study import search as search_stage

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted smoke search: (workdir, summary, all rows)."""
    workdir = tmp_path_factory.mktemp("reference")
    summary = search_stage.run(search_config.get_config("smoke"), workdir)
    return workdir, summary, recording.Store.open(workdir).load()


def test_smoke_end_to_end(reference):
    workdir, summary, rows = reference
    assert summary["status"] == "complete"
    assert set(summary) == {"preset", "workdir", "status", "phase_one", "targets"}
    assert summary["phase_one"]["complete"] and summary["phase_one"]["runs"] == 16
    assert set(summary["targets"]) == {"0.5", "0.55"}
    for target, entry in summary["targets"].items():
        assert set(entry) >= {"selected", "searched", "sparsest"}
        assert entry["searched"]["config"] == (2, 1, 1)
        assert entry["searched"]["complete"] and entry["searched"]["total_runs"] == 8
        best = entry["sparsest"]
        assert best is not None and best["accuracy"] >= float(target)
        assert set(best) >= {"nnz", "accuracy", "lr", "schedule", "mask_index"}
    assert (workdir / "phase1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = recording.Store.open(workdir).get_json("summary")
    assert stored["targets"]["0.5"]["sparsest"] == summary["targets"]["0.5"]["sparsest"]
    assert set(rows["stage"]) == {"phase1", "phase2_2-1-1"}


def test_resume_after_lost_and_corrupt_shards_gives_identical_rows(reference, tmp_path):
    ref_dir, ref_summary, ref_rows = reference
    workdir = tmp_path / "w"
    shutil.copytree(ref_dir, workdir)
    shards = sorted((workdir / "shards" / "phase2_2-1-1").glob("*.npz"))
    assert len(shards) == 2
    shards[0].unlink()
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[: len(data) // 2])
    (workdir / "shards" / "phase1" / "000002.npz").unlink()
    summary = search_stage.run(search_config.get_config("smoke"), workdir)
    rows = recording.Store.open(workdir).load()
    assert shards[0].exists() and shards[1].exists()  # both recomputed
    assert shards[1].with_name(shards[1].name + ".corrupt").exists()
    pd.testing.assert_frame_equal(rows, ref_rows)
    assert summary["targets"] == ref_summary["targets"]


def test_tasks_sharing_a_workdir_end_with_the_same_rows(reference, tmp_path):
    _, _, ref_rows = reference

    def task(i):
        config = search_config.get_config("smoke")
        config.task_index, config.num_tasks = i, 2
        return search_stage.run(config, tmp_path)

    assert task(0)["status"] == "phase one incomplete"
    assert task(1)["status"] == "phase two incomplete"
    assert task(0)["status"] == "complete"
    pd.testing.assert_frame_equal(recording.Store.open(tmp_path).load(), ref_rows)


def test_another_config_in_the_same_workdir_fails_with_one_line(reference):
    workdir = reference[0]
    config = search_config.get_config("smoke")
    config.epochs = 2
    with pytest.raises(ValueError, match="different config") as e:
        search_stage.run(config, workdir)
    assert "\n" not in str(e.value)
    # The binary turns it into a one-line message and exit status 2, without training.
    proc = subprocess.run(
        [sys.executable, "experiments/search.py",
         "--config=experiments/configs/search.py:smoke", "--config.epochs=2",
         f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("search: error: workdir")
    assert "different config" in proc.stderr and "Traceback" not in proc.stderr


def test_presets():
    for preset in search_config.PRESETS:
        config = search_config.get_config(preset)
        assert config.preset == preset and config.width >= max(config.phase_two_config or (1,))
    paper = search_config.get_config("paper")
    assert (paper.width, tuple(paper.targets), tuple(paper.lrs), paper.epochs) == (
        16, (0.95, 0.995), (0.05, 0.1), 50)
    plan = search_stage.phase_two_plan(paper, (7, 3, 3))
    assert (plan["max_weights"], plan["first_k"], plan["lrs"]) == (33, {1: 3}, (0.05,))
    plan = search_stage.phase_two_plan(paper, (3, 3, 3))
    assert plan["max_weights"] is None and plan["lrs"] == (0.05, 0.1)
    paper.max_phase_two_runs = 1000
    assert search_stage.phase_two_plan(paper, (3, 3, 3))["max_weights"] == 33
    with pytest.raises(ValueError, match="unknown search preset") as e:
        search_config.get_config("full")
    assert "\n" not in str(e.value) and "paper" in str(e.value)


def test_the_searchs_result_counts_both_phases_as_the_headline_does():
    # Phase two's training of the winner's unpruned mask (26 at 96.28%) and phase one's dense
    # run of the same configuration (26 at 96.36%): the search's result is the best at the
    # sparsest count over both phases, the number the summary, leaderboard and frontier give.
    import pandas as pd

    from spiralprune import frontier
    from spiralprune.study import search as search_stage
    df1 = pd.DataFrame({"nnz": [26, 26, 33], "accuracy": [0.9636, 0.90, 0.99],
                        "d1": [3, 3, 3], "d2": [2, 2, 3], "d3": [2, 2, 3]})
    sp = {"nnz": 26, "accuracy": 0.9628}
    res = search_stage._result(df1, sp, 0.95)
    assert res == {"nnz": 26, "accuracy": 0.9636, "config": [3, 2, 2], "stage": "phase1"}
    assert search_stage._result(df1, {"nnz": 26, "accuracy": 0.97}, 0.95) is None
    best = frontier.sparsest("bench95", 0.95)
    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "search.md").read_text()
    assert f"{best['nnz']} nonzeros at {best['accuracy']:.2%}, phase one's dense (3,2,2)" in text
