"""experiments/study_plan.py: durations for people and the measured cost model."""

import math

import jax
import pytest

from spiralprune import models
from spiralprune.configs import study as study_config
from spiralprune.study import plan as study_plan


@pytest.mark.parametrize("seconds,text", [
    (0, "0 s"), (42.4, "42 s"), (252, "4 min 12 s"), (3599.4, "59 min 59 s"),
    (3600, "1 h 00 min"), (11_100, "3 h 05 min"), (11.6 * 86_400, "11.6 days"),
    (math.inf, "?"), (math.nan, "?")])
def test_format_seconds_reads_as_days_hours_minutes(seconds, text):
    assert study_plan.format_seconds(seconds) == text


def test_measured_rates_come_from_a_tiny_calibration_population():
    base = study_plan.ASSUMED["cpu"]
    rates = study_plan.measure_rates(base, widths=(3,), runs_per_device=4, steps=2)
    assert set(rates) == set(base) and rates["step_s"] == base["step_s"]
    assert rates["a"] > 0 and rates["b"] > 0 and rates["compile_s"] >= 0
    # One width scales the assumed model: the ratio a / b is kept.
    assert rates["a"] / rates["b"] == pytest.approx(base["a"] / base["b"])
    per_epoch = rates["a"] + rates["b"] * models.num_params(3)
    assert 1e-6 < per_epoch < 60  # seconds per model-epoch: some finite, positive rate


def test_cost_model_measures_only_in_a_dry_run():
    config = study_config.get_config("smoke")
    config.estimate = "measured"
    rates, line = study_plan.cost_model(config, measure=False)
    kind = "cpu" if jax.default_backend() == "cpu" else "gpu"
    assert rates == study_plan.ASSUMED[kind] and line.startswith("assumed rates for")
    config.estimate = "assumed"
    assert study_plan.cost_model(config, measure=True)[1].startswith("assumed rates")


def test_eta_counts_the_figure_stage_until_it_is_drawn():
    parts = [study_plan.Part("search", "phase1", 10, 10, 10, 1, 10.0, 100.0)]
    lines = []
    progress = study_plan.StudyProgress(parts, every_s=0.0, printer=lines.append, figures_s=30.0)
    assert progress.eta() == pytest.approx(130.0)   # nothing trained: the plan, then figures
    tick = progress.factory("search")("phase1")
    tick(10, 10)
    assert progress.eta() == pytest.approx(30.0)    # training over, figures still to draw
    assert lines and lines[-1].endswith("ETA 30 s")
    progress.figures_done()
    assert progress.eta() == 0.0


def test_the_lanes_rate_divides_search_stages_at_lanes_shapes_on_every_backend():
    rates = dict(a=1.0, b=0.0, step_s=0.0, compile_s=0.0, lanes=4.0)
    cost = lambda widths, dense: study_plan._cost(rates, widths, runs=10, epochs=1, steps=390,  # noqa: E731
                                                  calls=1, dense=dense)
    assert cost((3, 3, 3), dense=True) == pytest.approx(10 / 4)    # a search stage on lanes
    assert cost((3, 3, 3), dense=False) == pytest.approx(10)       # pruning: vmap
    assert cost((16, 16, 16), dense=True) == pytest.approx(10)     # too wide for lanes
    assert all(r["lanes"] >= 1 for r in study_plan.ASSUMED.values())


def test_the_pruning_estimate_counts_groups_trained_side_by_side(tmp_path, monkeypatch):
    config = study_config.get_config("smoke")
    seconds = {}
    for n in (1, 2):
        monkeypatch.setenv("SPIRALPRUNE_PRUNE_WORKERS", str(n))
        parts = study_plan.plan(config, tmp_path, rates=study_plan.ASSUMED["cpu"])
        prune_parts = [p for p in parts if p.stage == "prune"]
        assert any(p.groups >= 2 for p in prune_parts)
        groups = [p.groups for p in prune_parts]
        seconds[n] = [p.seconds for p in prune_parts]
        search_s = sum(p.seconds for p in parts if p.stage != "prune")
        seconds.setdefault("search", search_s)
        assert search_s == seconds["search"]   # search stages do not train groups side by side
    # A grid of one group cannot train two at once.
    assert seconds[2] == pytest.approx([s / min(2, g) for s, g in zip(seconds[1], groups)])


def test_a_rate_measured_on_a_loaded_machine_says_so(monkeypatch):
    config = study_config.get_config("smoke")
    config.estimate = "measured"
    monkeypatch.setattr(study_plan, "measure_rates", lambda base: dict(base))
    monkeypatch.setattr(study_plan.os, "getloadavg", lambda: (7.5, 7.0, 6.0))
    monkeypatch.setattr(study_plan.os, "cpu_count", lambda: 2)
    line = study_plan.cost_model(config, measure=True)[1]
    assert "while the machine was loaded (load average 7.5 on 2 cores" in line
    monkeypatch.setattr(study_plan.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert "loaded" not in study_plan.cost_model(config, measure=True)[1]


def test_the_dry_run_prints_this_machines_and_one_gpus_estimate(tmp_path, capsys):
    from spiralprune.study import pipeline
    config = study_config.get_config("smoke")
    config.estimate = "assumed"
    pipeline.run(config, tmp_path / "wd", dry_run=True)
    out = capsys.readouterr().out
    gpu = study_plan.plan(config, tmp_path / "wd", study_plan.ASSUMED["gpu"])
    assert ("estimate on one GPU (the rates fitted to the device check on one H200, "
            f"BENCHMARKS.md): {study_plan.format_seconds(sum(p.seconds for p in gpu))}") in out
    assert not (tmp_path / "wd").exists()
