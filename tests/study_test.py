"""experiments/study.py end to end on the smoke preset: table, task split + merge, dry run,
bad input, resume, and the reconstruction of the search's found init."""

import contextlib
import io
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from spiralprune import datasets, enumeration, masking, populations, recording, training
from spiralprune.configs import study as study_config
from spiralprune.study import pipeline as study

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _config(task_index=0, num_tasks=1, figures=False):
    config = study_config.get_config("smoke")
    config.task_index, config.num_tasks, config.figures = task_index, num_tasks, figures
    return config


def _run(config, workdir, **kwargs):
    """study.run with its printed output captured: (result, text)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = study.run(config, workdir, **kwargs)
    return result, out.getvalue()


def _rows(workdir) -> dict:
    """Every stage's records, sorted by run identity (stage, chunk, row)."""
    return {name: recording.Store.open(pathlib.Path(workdir) / name).load()
            .sort_values(["stage", "chunk", "row"]).reset_index(drop=True)
            for name in study.STAGES}


def _shards(workdir) -> list:
    return sorted(pathlib.Path(workdir).glob("*/shards/*/*.npz"))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One uninterrupted smoke study with figures: (workdir, result, printed text)."""
    workdir = tmp_path_factory.mktemp("study") / "smoke"
    result, text = _run(_config(figures=True), workdir)
    return workdir, result, text


def test_smoke_study_end_to_end(smoke):
    workdir, result, text = smoke
    assert result["status"] == "complete"
    assert set(result["stages"]) == set(study.STAGES)
    prune_rows = recording.Store.open(workdir / "prune").load()
    settings = {"torch": "random", "bench95": "bench95", "bench995": "bench995"}
    expected = {(settings[i], m) for i, m in zip(prune_rows["init"], prune_rows["method"])}
    expected |= {("random", "search"), ("bench95", "search"), ("bench995", "search")}
    table = result["table"]
    assert set(table.index) == expected and len(table) == len(expected)
    assert {"runs", "best_acc", "nnz@50.0%", "acc@50.0%", "at@55.0%"} <= set(table.columns)
    search_rows = recording.Store.open(workdir / "search").load()
    assert table.loc[("random", "search"), "runs"] == len(search_rows)
    over = search_rows[search_rows["accuracy"] >= 0.5]   # both phases: one search row
    assert table.loc[("random", "search"), "nnz@50.0%"] == over["nnz"].min()
    assert table.loc[("random", "search"), "best_acc"] == search_rows["accuracy"].max()
    summary = (workdir / "summary.md").read_text()
    assert "| random | search |" in summary and "the search needs" in summary
    assert result["finding"] in summary and result["finding"] in text
    assert result["finding"].startswith(("FINDING HOLDS", "FINDING DOES NOT HOLD", "NO VERDICT"))
    assert recording.Store.open(workdir).get_json("summary")["status"] == "complete"
    # one progress display over the stages, and the figures drawn or reported skipped
    assert "[study 1/4 search: phase1]" in text and "runs/s" in text and "ETA" in text
    assert "[study 2/4 prune: prune]" in text
    drawn = result["figures"].get("figures")
    assert drawn or "figures skipped" in text
    if drawn:
        assert (workdir / "figures" / "summary.md").exists()


def test_four_tasks_and_merge_give_the_one_task_rows_and_table(smoke, tmp_path):
    ref_dir, ref, _ = smoke
    dirs = [tmp_path / f"task{i}" for i in range(4)]
    for i, d in enumerate(dirs):  # round 1: phase ones and pruning, shared
        assert _run(_config(i, 4), d)[0]["status"] == "incomplete"
    study.merge(dirs, tmp_path / "round1")
    for i, d in enumerate(dirs):  # round 2: each task gets phase one and shares phase two
        study.merge([tmp_path / "round1"], d)
        _run(_config(i, 4), d)
    study.merge(dirs, tmp_path / "out")
    final, _ = _run(_config(), tmp_path / "out")
    assert final["status"] == "complete" and final["trained"] == 0
    for name, rows in _rows(tmp_path / "out").items():
        pd.testing.assert_frame_equal(rows, _rows(ref_dir)[name])
    pd.testing.assert_frame_equal(final["table"], ref["table"])


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path):
    result, text = _run(_config(), tmp_path / "w", dry_run=True)
    assert result["status"] == "dry run" and not (tmp_path / "w").exists()
    assert "dry run: nothing trained" in text
    assert re.search(r"^estimate: (assumed rates|rates measured on)", text, re.M)
    parts = {(p.stage, p.part): p for p in result["plan"]}
    assert parts[("search", "phase1")].runs == 16 and parts[("search", "phase2_2-1-1")].runs == 8
    assert parts[("prune", "random-init grid")].groups == 2
    assert sum(p.todo for p in result["plan"]) == 80 and result["estimate_s"] > 0


def test_dry_run_of_a_finished_study_has_nothing_to_train(smoke):
    workdir = smoke[0]
    before = [(p, p.stat().st_mtime_ns) for p in _shards(workdir)]
    result, _ = _run(_config(), workdir, dry_run=True)
    assert sum(p.todo for p in result["plan"]) == 0
    assert [(p, p.stat().st_mtime_ns) for p in _shards(workdir)] == before


@pytest.mark.parametrize("edit, match", [
    (lambda c: setattr(c, "task_index", 4), "task_index must be in"),
    (lambda c: setattr(c, "num_tasks", 0), "task_index must be in"),
    (lambda c: setattr(c.search, "targets", (0.5,)), "search.targets"),
    (lambda c: setattr(c, "fixed_inits", "found"), "not supported"),
    (lambda c: setattr(c, "targets", (0.5, 1.5)), "targets must be"),
    (lambda c: setattr(c, "targets", (0.0, 0.55)), "targets must be"),
    (lambda c: setattr(c, "stages", ("search", "pruning")), "stages must be"),
    (lambda c: setattr(c.bench95_search, "schedules", ("linear",)), "unknown lr schedule"),
    (lambda c: setattr(c.prune.grids.random, "methods", ("magic",)), "unknown pruning method"),
])
def test_bad_config_fails_in_one_line_before_anything_is_written(edit, match, tmp_path):
    config = _config()
    edit(config)
    with pytest.raises(ValueError, match=match) as err:
        _run(config, tmp_path / "w")
    assert "\n" not in str(err.value) and not (tmp_path / "w").exists()


def test_a_workdir_of_another_config_is_refused_before_training(smoke):
    workdir = smoke[0]
    before = _shards(workdir)
    config = _config()
    config.search.epochs = 2
    with pytest.raises(ValueError, match="different config .*'search.epochs'") as err:
        _run(config, workdir)
    assert "\n" not in str(err.value) and _shards(workdir) == before
    with pytest.raises(ValueError, match="unknown study preset 'fast'"):
        study_config.get_config("fast")


def test_cli_bad_input_is_one_line_with_exit_status_2(smoke, tmp_path):
    script = ["experiments/study.py"]
    cases = [
        ([f"--config={ROOT}/experiments/configs/study.py:nope", f"--workdir={tmp_path / 'a'}"],
         "unknown study preset 'nope'"),
        (["--config=experiments/configs/study.py:smoke", f"--workdir={tmp_path / 'b'}",
          "--task_index=4", "--num_tasks=4"], "task_index must be in [0, num_tasks)"),
        (["--config=experiments/configs/study.py:smoke", f"--workdir={smoke[0]}",
          "--config.search.epochs=2"], "holds a different config"),
    ]
    procs = [subprocess.Popen([sys.executable, *script, *args], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for args, _ in cases]
    for proc, (_, match) in zip(procs, cases):
        out, err = proc.communicate(timeout=120)
        lines = [ln for ln in err.splitlines() if not re.match(r"[IWE]\d{4} ", ln)]
        assert proc.returncode == 2, err
        assert lines == [lines[-1]] and lines[-1].startswith("study: error: "), err
        assert match in lines[-1] and "Traceback" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_recomputes_a_lost_shard_and_gives_the_same_table(smoke, tmp_path):
    ref_dir, ref, _ = smoke
    workdir = tmp_path / "w"
    shutil.copytree(ref_dir, workdir)
    lost = [workdir / "prune" / "shards" / "prune_torch_gmp_w3" / "000001.npz",
            workdir / "search" / "shards" / "phase2_2-1-1" / "000000.npz"]
    for path in lost:
        path.unlink()
    result, _ = _run(_config(), workdir)
    assert all(path.exists() for path in lost)
    assert result["trained"] == 2 + 4   # one prune chunk of 2 runs, one search chunk of 4
    pd.testing.assert_frame_equal(result["table"], ref["table"])
    for name, rows in _rows(workdir).items():
        pd.testing.assert_frame_equal(rows, _rows(ref_dir)[name])


def test_found_init_is_exactly_the_sparsest_models_init(smoke):
    workdir = smoke[0]
    found = study.found_init(workdir / "search", 0.5)
    cfg, block = found["config"], found["block"]
    for layer, leaves in found["params"].items():   # the width-16 init holds the block
        k = leaves["kernel"]
        assert k.shape[1] == (16 if layer != "layer3" else 1)
        np.testing.assert_array_equal(k[:block[layer]["kernel"].shape[0],
                                        :block[layer]["kernel"].shape[1]],
                                      block[layer]["kernel"])
    sub = study_config.get_config("smoke").search
    space = enumeration.ModelMaskSpace(cfg)
    masks = masking.from_kernels(space.kernel_masks(np.array([found["mask_index"]])))
    variants = populations.make_variants(
        masks=masks, lr=[found["lr"]], schedule=[found["schedule"]], seed=[found["seed"]],
        params=block)
    spec = training.Spec(widths=cfg, epochs=int(sub.epochs), init="given",
                         milestones=tuple(sub.milestones), cosine_t_max=int(sub.cosine_t_max))
    again = populations.run(variants, datasets.cubist_spiral(), spec=spec)
    assert int(again["nnz"][0]) == found["nnz"]
    assert abs(float(again["accuracy"][0]) - found["accuracy"]) < 1e-3
    note = recording.Store.open(workdir).get_json("found_inits")
    assert note["0.5"]["mask_index"] == found["mask_index"]


def _table(rows) -> pd.DataFrame:
    return pd.DataFrame([dict(setting=s, method=m, **{"nnz@95.0%": n}) for s, m, n in rows]
                        ).set_index(["setting", "method"])


def test_finding_verdict_names_a_pruner_that_matches_the_search():
    holds = _table([("bench95", "search", 26), ("bench95", "gmp", 35), ("bench95", "snip", None),
                    ("bench95", "dense", 20)])   # dense is no pruner: it never counts
    line = study.finding(holds, (0.95,))
    assert line.startswith("FINDING HOLDS") and "26" in line and "35 (gmp)" in line
    ties = _table([("bench95", "search", 26), ("bench95", "gmp", 35), ("bench95", "rigl", 26)])
    line = study.finding(ties, (0.95,))
    assert line.startswith("FINDING DOES NOT HOLD") and "rigl reaches it with 26" in line
    assert "gmp" not in line
    nothing = _table([("bench95", "search", None), ("bench95", "gmp", 35)])
    assert study.finding(nothing, (0.95,)).startswith("NO VERDICT")


def test_quick_preset_is_the_studys_bench95_experiment(tmp_path):
    """The Quick start's grid, from its dry run: the study's BENCH-95 search, unreduced."""
    config = study_config.get_config("quick")
    assert study_config.stages(config) == ("prune", "bench95_search")
    assert tuple(config.targets) == (0.95,) and "reduced" in config.reduced
    sub = config.bench95_search
    assert (sub.epochs, tuple(sub.lrs), len(sub.schedules)) == (50, (0.05, 0.1), 3)
    result, text = _run(config, tmp_path / "q", dry_run=True)
    parts = {(p.stage, p.part): p for p in result["plan"]}
    assert parts[("bench95_search", "phase1")].runs == 558            # 93 configs x 6
    assert parts[("bench95_search", "phase2_3-2-2")].runs == 2_496    # 416 masks x 6
    grid = parts[("prune", "bench95 grid")]
    # 10 budgeted methods x budgets 15..26 x widths 3 and 16, and one dense run per width
    assert grid.runs == 10 * 12 * 2 + 2 and grid.groups == 22
    assert config.reduced in text and not (tmp_path / "q").exists()


def test_study_seed_sets_every_stages_seed_and_changes_the_runs(tmp_path):
    config = _config()
    config.seed = 7
    study_config.apply_seed(config)
    assert {config[n].base_seed for n in study.SEARCHES} == {7} and config.prune.seed == 7
    config.seed = -1
    with pytest.raises(ValueError, match="seed must be"):
        study_config.apply_seed(config)
    # another seed gives other run seeds (the workdir's records are another study's)
    a, b = _config(), _config()
    b.seed = 1
    study_config.apply_seed(b)
    assert study.recorded_config(a) != study.recorded_config(b)
