"""experiments/device_check.py on its tiny preset: report, numbers, caps, budget and failures."""

import json
import pathlib
import subprocess

import numpy as np
import pytest

from spiralprune import datasets, models
from spiralprune.configs import device_check as device_check_config
from spiralprune.study import device_check

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("device_check") / "report"
    config = device_check_config.get_config("tiny")
    return config, out, device_check.run(config, out)


def _again(tmp_path, **changes):
    """Another in-process check on the tiny preset (its programs are compiled already)."""
    config = device_check_config.get_config("tiny")
    for key, value in changes.items():
        node, *path = key.split(".")
        target = config if not path else config[node]
        setattr(target, path[-1] if path else node, value)
    return device_check.run(config, tmp_path), (tmp_path / "report.md").read_text()


def test_report_and_json_have_every_section(tiny):
    _, out, res = tiny
    report = (out / "report.md").read_text()
    for heading in ("# Device check `tiny`", "## Stages", "## Throughput", "## Phase two",
                    "## Pruning grid", "## Phase-two subset"):
        assert heading in report, heading
    assert json.loads((out / "report.json").read_text()) == json.loads(
        json.dumps(res, default=device_check._jsonable))
    assert res["meta"]["preset"] == "tiny" and res["meta"]["wall_s"] > 0
    assert [s for s, st in res["status"].items() if st["status"] == "done"] == [
        "throughput", "phase_two", "prune", "subset"]
    for st in res["status"].values():
        assert 0 <= st["compile_s"] <= st["wall_s"] + 1e-6 and st["wall_s"] <= st["cap_s"] + 30
        assert st["train_s"] >= 0 and st["host_s"] >= 0
    # every population of a stage goes through the timed populations.run: 2 throughput cells,
    # one per phase-two piece, one per pruning method, one subset chunk.
    assert res["status"]["throughput"]["run_calls"] == len(res["stages"]["throughput"]["cells"])
    assert [st["run_calls"] for st in res["status"].values()][1:] == [2, 2, 1]


def test_throughput_rates_and_precision_gap(tiny):
    config, _, res = tiny
    s = res["stages"]["throughput"]
    lanes = len(config.throughput.lanes_precisions) if res["meta"]["engine_field"] else 0
    assert len(s["cells"]) == len(config.throughput.precisions) + lanes
    for c in s["cells"]:
        assert "error" not in c, c
        assert c["model_epochs_per_s"] > 0 and c["gflops"] > 0
        assert 0 <= c["compile_s"] <= c["wall_s"]
        assert c["params"] == models.num_params(c["widths"]) and c["P"] == 32
        assert c["chunk"] >= c["P"] and c["auto_chunk"] >= 1
        assert 0.0 <= c["mean_accuracy"] <= 1.0
    # GFLOP/s = model-epochs/s x 6 x params x training samples per epoch (640 points: 5 x 128).
    c = s["cells"][0]
    assert s["samples_per_epoch"] == 640
    np.testing.assert_allclose(c["gflops"], c["model_epochs_per_s"] * 6 * c["params"] * 640 / 1e9)
    gap = [g for g in s["gaps"] if g["a"] == "vmap/highest" and g["b"] == "vmap/default"]
    assert len(gap) == 1 and 0.0 <= gap[0]["max_abs_accuracy_diff"] <= 1.0


def test_runs_are_counted(tiny):
    _, _, res = tiny
    p2 = res["stages"]["phase_two"]
    # (2,1,1) has 4 model masks x 1 lr x 2 schedules; 2 pieces of one 4-run chunk each.
    assert p2["masks"] == 4 and p2["total_runs"] == 8 and p2["runs"] == 8
    assert p2["pieces_done"] == 2 and p2["recorded_chunks"] == 2 and p2["complete"]
    assert "runs_over_target" in p2 and "sparsest" in p2
    sub = res["stages"]["subset"]
    assert sub["masks"] == 4 and sub["runs"] == sub["total_runs"] == 4 and sub["complete"]
    pr = res["stages"]["prune"]
    # random and GMP at width 3 (N_w = 27): budgets 15 and 20, 1 lr, 1 schedule.
    assert [m["method"] for m in pr["methods"]] == ["random", "gmp"]
    assert pr["runs"] == pr["total_runs"] == 4
    for m in pr["methods"]:
        assert m["runs"] == m["planned"] == 2 and m["wall_s"] >= m["compile_s"] >= 0


def test_a_stage_over_its_cap_is_stopped_and_reported_capped(tiny, tmp_path):
    res, report = _again(tmp_path, stages=("phase_two",), **{"phase_two.cap_s": 1e-6})
    st, s = res["status"]["phase_two"], res["stages"]["phase_two"]
    assert st["status"] == "capped" and st["units"] == 1
    assert s["pieces_done"] == 1 and s["runs"] == 4 < s["total_runs"] == 8
    assert st["projected_full_s"] == pytest.approx(2 * st["wall_s"])
    assert "| phase_two | capped |" in report


def test_the_total_budget_skips_stages_and_a_failure_does_not_stop_the_rest(tiny, tmp_path):
    res, report = _again(tmp_path / "a", stages=("throughput", "subset"),
                         **{"throughput.cells": (("bad", "nope", (3, 2, 2), (32,)),)})
    assert res["status"]["throughput"]["status"] == "failed"
    assert "unknown throughput cell kind" in res["status"]["throughput"]["error"]
    assert res["status"]["subset"]["status"] == "done"
    assert "**throughput failed**" in report
    res, report = _again(tmp_path / "b", stages=("subset",), total_s=0.0)
    assert res["status"]["subset"]["status"] == "skipped" and "Skipped:" in report


def test_the_sparsest_model_is_saved_with_its_final_params(tiny, tmp_path):
    res, report = _again(tmp_path, stages=("subset",), **{"subset.target": 0.5})
    s = res["stages"]["subset"]
    best = s["sparsest"]
    assert best is not None and s["sparsest_file"] == "subset_sparsest.npz"
    assert "its final params in `subset_sparsest.npz`" in report
    saved = np.load(tmp_path / s["sparsest_file"])
    assert (int(saved["mask_index"]), int(saved["nnz"]), str(saved["schedule"])) == (
        best["mask_index"], best["nnz"], best["schedule"])
    params = {layer: {leaf: saved[f"{layer}/{leaf}"] for leaf in ("kernel", "bias")}
              for layer in models.LAYERS}
    assert models.widths_of(params) == tuple(int(saved[k]) for k in ("d1", "d2", "d3"))
    assert sum(int(np.count_nonzero(v)) for v in saved.values() if v.dtype == np.float32
               and v.ndim >= 1) == best["nnz"]
    # The saved params are the run's: evaluated here, they give its recorded accuracy.
    x, y = datasets.cubist_spiral()
    logits = np.asarray(models.apply(params, x)).reshape(-1)
    assert abs(float(np.mean((logits > 0) == (y > 0.5))) - best["accuracy"]) <= 2 / len(y)


def test_block_cells_train_top_left_blocks():
    v = device_check._cell_variants("block", (4, 4, 4), 16, seed=0)
    k = [np.asarray(v.masks[name]["kernel"]) for name in models.LAYERS]
    d = [k[0][:, 0].sum(-1), k[1][:, 0].sum(-1), k[2][:, 0].sum(-1)]   # (d1, d2, d3) per run
    for p in range(16):
        assert k[0][p].sum() == 2 * d[0][p] and k[3][p].sum() == d[2][p]
        assert k[1][p, : d[0][p], : d[1][p]].all() and k[1][p].sum() == d[0][p] * d[1][p]


def test_presets_and_wrapper_script():
    gpu = device_check_config.get_config("gpu")
    assert gpu.total_s <= 480 and all(gpu[s].cap_s <= gpu.total_s for s in gpu.stages)
    assert gpu.phase_two.config == (3, 3, 3) and gpu.subset.config == (7, 3, 3)
    assert len(gpu.prune.methods) == 11
    with pytest.raises(ValueError, match="unknown device_check preset"):
        device_check_config.get_config("nope")
    subprocess.run(["bash", "-n", str(ROOT / "experiments" / "device_check.sh")], check=True)
