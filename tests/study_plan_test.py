"""study.plan and study.rates: durations for people, the measured cost model, chunking."""

import json
import math

import jax
import numpy as np
import pytest

from spiralprune import models
from spiralprune.configs import study as study_config
from spiralprune.study import plan as study_plan
from spiralprune.study import rates


@pytest.mark.parametrize("seconds,text", [
    (0, "0 s"), (42.4, "42 s"), (252, "4 min 12 s"), (3599.4, "59 min 59 s"),
    (3600, "1 h 00 min"), (11_100, "3 h 05 min"), (11.6 * 86_400, "11.6 days"),
    (math.inf, "?"), (math.nan, "?")])
def test_format_seconds_reads_as_days_hours_minutes(seconds, text):
    assert study_plan.format_seconds(seconds) == text


def test_a_stage_and_the_study_print_one_progress_line():
    from spiralprune import populations
    assert populations.progress_line("prune", 1500, 3000, 600.0, 65.0) == (
        "[prune] 1,500/3,000 runs  2.5 runs/s  ETA 1 min 05 s")
    lines = []
    progress = populations.Progress("train", every_s=0.0, printer=lines.append)
    progress(0, 4)
    assert lines == ["[train] 0/4 runs  0.0 runs/s  ETA ?"]


def test_a_calibration_cell_times_one_epoch_without_the_fixed_costs(monkeypatch):
    # A fake clock: every call costs 3 s once compiled (init, final evaluation, transfers)
    # plus 0.5 s per epoch, and its first call at a recipe 7 s more to compile.
    clock, compiled = [0.0], set()

    def run(variants, data, *, spec):
        clock[0] += 3.0 + 0.5 * spec.epochs + (7.0 if spec.epochs not in compiled else 0.0)
        compiled.add(spec.epochs)

    monkeypatch.setattr(rates.populations, "run", run)
    monkeypatch.setattr(rates.time, "perf_counter", lambda: clock[0])
    runs, steps = 4, 2
    sec, compile_s, speedup = rates._cell((3, 3, 3), runs, steps, "vmap")
    assert sec == pytest.approx(0.5 * (rates.STEPS / steps) / runs)   # not (3 + 0.5) x 195 / 4
    assert compile_s == pytest.approx(7.0)
    assert speedup == 1.0   # one worker: nothing side by side


@pytest.mark.parametrize("shared,low,high", [(True, 1.0, 1.3), (False, 1.6, 2.0)])
def test_side_by_side_speedup_is_measured_not_assumed(monkeypatch, shared, low, high):
    # Two groups at once: calls that hold one lock (one population using every core) gain
    # nothing; calls that do not (small populations, one core each) go twice as fast.
    import threading
    import time
    lock = threading.Lock()

    def run(variants, data, spec):
        if shared:
            with lock:
                time.sleep(0.15)
        else:
            time.sleep(0.15)
    monkeypatch.setattr(rates.populations, "run", run)
    _, _, speedup = rates._cell((3, 3, 3), 2, 2, "vmap", workers=2)
    assert low <= speedup <= high


def test_the_plan_divides_by_the_measured_side_by_side_speedup():
    n3, n64 = models.num_params(3), models.num_params(64)
    table = {"vmap": [[n3, 0.01], [n64, 0.16]], "lanes": [], "compile_s": 1.0,
             "side_by_side": {"workers": 2, "speedup": [[n3, 2.0], [n64, 1.0]]}}
    r = rates.with_table(dict(rates.ASSUMED["cpu"]), table)
    assert rates.side_by_side(r, 3, 2) == pytest.approx(2.0)
    assert rates.side_by_side(r, 256, 2) == pytest.approx(1.0)   # flat beyond the last cell
    assert 1.0 < rates.side_by_side(r, 16, 2) < 2.0
    assert rates.side_by_side(r, 64, 4) == 4.0   # measured for 2 workers only: assumed
    assert rates.side_by_side(rates.assumed("cpu"), 64, 2) == 2.0
    # Two width-64 groups at once take as long each as one after another: run_cost doubles.
    one = rates.run_cost(r, 64, 10, 1, 390, 1)
    assert rates.run_cost(r, 64, 10, 1, 390, 1, workers=2) == pytest.approx(2 * one)
    assert rates.run_cost(r, 3, 10, 1, 390, 1, workers=2) == pytest.approx(
        rates.run_cost(r, 3, 10, 1, 390, 1))


def test_a_measured_table_is_cached_per_machine_and_interpolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIRALPRUNE_CACHE_DIR", str(tmp_path))
    calls = []
    real = rates.measure

    def tiny(**kw):   # measures for real once; a remeasure returns a copy (its compiles
        calls.append(1)   # would only double this test's time)
        if len(calls) == 1:
            first.update(real(widths=(3, 4), lanes_shapes=((3, 3, 3),), steps=2, workers=1))
        return dict(first)
    first = {}
    monkeypatch.setattr(rates, "measure", tiny)
    table, line = rates.load()
    assert calls == [1] and "measured on this machine in" in line
    assert rates.cache_path().exists() and rates.cache_path().parent == tmp_path
    again, line = rates.load()
    assert calls == [1] and again == table and "measured on this machine 20" in line
    rates.load(fresh=True)
    assert calls == [1, 1]
    assert [n for n, _ in table["vmap"]] == [models.num_params(3), models.num_params(4)]
    assert all(s > 0 for _, s in table["vmap"] + table["lanes"])
    assert rates.current()["table"] == rates.load()[0]   # a run reads the cache, never measures
    # A table from another machine is not used.
    other = dict(table, machine=dict(table["machine"], cores=999))
    rates.cache_path().write_text(json.dumps(other))
    assert "table" not in rates.current()


def test_model_epoch_seconds_interpolate_log_log_between_cells():
    table = {"vmap": [[models.num_params(3), 0.01], [models.num_params(64), 0.16]],
             "lanes": [], "compile_s": 1.0}
    r = rates.with_table(dict(rates.ASSUMED["cpu"], lanes=4.0), table)
    assert rates.model_epoch_s(r, 3) == pytest.approx(0.01)
    assert rates.model_epoch_s(r, 64) == pytest.approx(0.16)
    assert rates.model_epoch_s(r, 256) == pytest.approx(0.16)   # flat beyond the last cell
    assert rates.model_epoch_s(r, 2) == pytest.approx(0.01)     # and before the first
    n3, n16, n64 = (models.num_params(w) for w in (3, 16, 64))
    t = np.log(n16 / n3) / np.log(n64 / n3)                    # log-log, by parameters
    assert rates.model_epoch_s(r, 16) == pytest.approx(0.01 * 16 ** t)
    # No lanes cell: vmap's divided by the assumed lanes factor.
    assert rates.model_epoch_s(r, 3, "lanes") == pytest.approx(0.01 / 4)
    table["lanes"] = [[n3, 0.002]]
    assert rates.model_epoch_s(r, (3, 3, 3), "lanes") == pytest.approx(0.002)
    # Assumed rates: a + b * params.
    a = rates.ASSUMED["cpu"]
    assert rates.model_epoch_s(a, 16) == pytest.approx(a["a"] + a["b"] * n16)


def test_cost_model_measures_only_in_a_dry_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIRALPRUNE_CACHE_DIR", str(tmp_path))   # nothing cached
    config = study_config.get_config("smoke")
    config.estimate = "measured"
    got, line = study_plan.cost_model(config, measure=False)
    kind = "cpu" if jax.default_backend() == "cpu" else "gpu"
    assert got == study_plan.ASSUMED[kind] and line.startswith("assumed rates for")
    # A stale table (an older format, or another machine's) is not a cache: a run that is
    # not a dry run does not stop to measure (it took minutes on a loaded machine).
    measured = []
    monkeypatch.setattr(study_plan.rates_mod, "measure", lambda **kw: measured.append(kw))
    rates.cache_path().parent.mkdir(parents=True, exist_ok=True)
    for stale in ({"format": "spiralprune-rates/1", "machine": rates.machine()},
                  {"format": rates.FORMAT, "machine": dict(rates.machine(), cores=999)}):
        rates.cache_path().write_text(json.dumps(stale))
        got, line = study_plan.cost_model(config, measure=False)
        assert "table" not in got and line.startswith("assumed rates for")
    assert measured == []
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


def test_a_grid_lasts_at_least_its_longest_chunk(tmp_path, monkeypatch):
    """Chunks train side by side, a chunk on one worker: where one group of one chunk
    dominates (width 64 beside width 3), two workers cannot halve the time and the estimate is
    that chunk's time alone (the width-64 slice of BENCHMARKS.md ran 1.46x over sum / 2); cut
    into several chunks, free workers share it and the sum / side-by-side speedup holds."""
    from spiralprune import configs
    r = study_plan.ASSUMED["cpu"]

    def seconds(widths, workers, chunk_size=256):
        monkeypatch.setenv("SPIRALPRUNE_PRUNE_WORKERS", str(workers))
        c = configs.prune.get_config("smoke")
        c.grids = {"random": c.grids["random"]}
        c.grids["random"].methods, c.grids["random"].widths = ("gmp",), widths
        c.num_points, c.epochs = 0, 50   # the whole spiral: training outweighs compiling
        c.chunk_size, c.chunk_seconds = chunk_size, 1e9
        return study_plan.prune_parts(c, tmp_path / "none", r)[0].seconds

    both, wide_alone, narrow = seconds((3, 64), 2), seconds((64,), 1), seconds((3,), 1)
    assert wide_alone > 2 * narrow
    assert both == pytest.approx(wide_alone)
    assert both > seconds((3, 64), 1) / rates.side_by_side(r, 64, 2)
    # the same groups in chunks of one run: shared by both workers, no longer one's alone
    cut = seconds((3, 64), 2, chunk_size=1)
    assert cut == pytest.approx(seconds((3, 64), 1, chunk_size=1) /
                                rates.side_by_side(r, 64, 2), rel=0.1)
    assert cut < 0.8 * wide_alone


def test_a_rate_measured_on_a_loaded_machine_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIRALPRUNE_CACHE_DIR", str(tmp_path))
    config = study_config.get_config("smoke")
    config.estimate = "remeasure"
    machine = dict(rates.machine(), cores=2)
    monkeypatch.setattr(rates, "machine", lambda: machine)

    def measure(load):   # as rates.measure: the load average seen before measuring
        return lambda: {"vmap": [[37, 0.01]], "lanes": [], "compile_s": 1.0, "format":
                        rates.FORMAT, "machine": machine, "measured": "2026-01-01",
                        "load_average": load}

    monkeypatch.setattr(rates, "measure", measure(7.5))
    monkeypatch.setattr(study_plan.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    line = study_plan.cost_model(config, measure=True)[1]
    assert "while the machine was loaded (load average 7.5 on 2 cores" in line
    # The cached table says so too, whatever the load is now, until measured again.
    config.estimate = "measured"
    assert "loaded (load average 7.5 on 2 cores" in study_plan.cost_model(config, True)[1]
    monkeypatch.setattr(rates, "measure", measure(0.2))
    monkeypatch.setattr(study_plan.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    config.estimate = "remeasure"
    assert "loaded" not in study_plan.cost_model(config, measure=True)[1]
    config.estimate = "measured"
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


# --- Bounded chunks: cut from the estimate, noted once per workdir. ---

def _one_second_a_model_epoch():
    return dict(rates.ASSUMED["cpu"], a=1.0, b=0.0, step_s=0.0)


def test_a_chunk_holds_the_runs_that_train_in_chunk_seconds():
    from spiralprune.configs import prune as prune_config
    from spiralprune.study import prune
    config = prune_config.get_config("smoke")   # 640 points, batch 64: 10 steps an epoch, 1 epoch
    config.chunk_size = 1000
    gmp = next(g for g in prune.plan(config).groups if g.method == "gmp")
    per = prune.run_seconds(prune.plan(config), gmp, _one_second_a_model_epoch())
    assert per == pytest.approx(10 / 390)
    for seconds, rows in ((1.0, 39), (0.01, 1), (1e6, 1000)):
        config.chunk_seconds = seconds
        assert prune.chunk_rows(prune.plan(config), gmp, _one_second_a_model_epoch()) == rows
    config.chunk_seconds = 1.0
    config.method_args = {"lth": {"lth_rounds": 4}}
    config.grids.random.methods = ("lth",)
    lth = prune.plan(config)
    grp = next(g for g in lth.groups if g.method == "lth")
    assert prune.chunk_rows(lth, grp, _one_second_a_model_epoch()) == 9


def test_the_chunking_is_noted_once_and_a_legacy_workdir_keeps_chunk_size(tmp_path):
    from spiralprune import recording
    from spiralprune.configs import prune as prune_config
    from spiralprune.study import prune
    config = prune_config.get_config("smoke")
    config.chunk_size, config.chunk_seconds = 1000, 0.05   # 1 run a chunk at 1 s/model-epoch
    p = prune.plan(config)
    groups = p.groups
    store = recording.Store(tmp_path / "a", {"x": 1}, kind="prune")
    first = prune.chunking(p, store, _one_second_a_model_epoch())
    assert set(first.values()) == {1}
    # Another writer with other rates (another machine) cuts the same chunks: the note wins.
    again = prune.chunking(p, store, dict(_one_second_a_model_epoch(), a=1e-6))
    assert again == first
    assert prune.chunking(p, None, dict(_one_second_a_model_epoch(), a=1e-6)) != first
    # A stage recorded before chunkings were noted keeps chunk_size.
    legacy = recording.Store(tmp_path / "b", {"x": 1}, kind="prune")
    grp = groups[0]
    legacy.write(grp.stage, 0, {"v": np.zeros(1)}, {})
    cut = prune.chunking(p, legacy, _one_second_a_model_epoch())
    assert cut[grp.stage] == 1000 and cut[groups[1].stage] == 1


def test_a_grid_cut_in_bounded_chunks_records_what_one_chunk_records(tmp_path):
    from spiralprune.configs import prune as prune_config
    from spiralprune.study import prune
    config = prune_config.get_config("smoke")
    config.grids = {"random": config.grids.random}
    config.chunk_size = 1000
    whole = prune.run(config, tmp_path / "whole")
    config.chunk_seconds = 1e-9            # one run a chunk
    cut = prune.run(config, tmp_path / "cut")
    assert cut.groupby("stage")["chunk"].nunique().to_dict() == {
        s: n for s, n in whole.groupby("stage").size().items()}
    key = ["stage", "budget", "schedule"]
    a, b = whole.sort_values(key).reset_index(), cut.sort_values(key).reset_index()
    np.testing.assert_array_equal(a["seed"], b["seed"])
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5, atol=1e-6)
    assert (a["accuracy"] - b["accuracy"]).abs().max() <= 1 / 640 * 2


def test_the_plan_counts_the_chunks_a_run_cuts_and_compaction_lowers_the_estimate(tmp_path):
    from spiralprune.configs import prune as prune_config
    from spiralprune.study import prune
    config = study_config.get_config("smoke")
    r = _one_second_a_model_epoch()
    full = [p for p in study_plan.plan(config, tmp_path, r) if p.stage == "prune"]
    sub = prune_config.get_config("paper")
    sub.grids = {"random": sub.grids.random}
    sub.grids.random.methods, sub.grids.random.widths = ("snip",), (64,)
    grp = prune.plan(sub).groups[0]
    wide = prune.run_seconds(prune.plan(sub), grp, r)
    sub.compact = True
    narrow = prune.run_seconds(prune.plan(sub), grp, r)
    assert narrow == pytest.approx(wide)   # a + 0 * params: the shape does not matter
    r["a"], r["b"] = 0.0, 1e-4             # in proportion to params: compacted shapes cost less
    sub.compact = False
    wide = prune.run_seconds(prune.plan(sub), grp, r)
    assert wide == pytest.approx(1e-4 * models.num_params(64) * 50)
    sub.compact = True
    assert prune.run_seconds(prune.plan(sub), grp, r) < 0.5 * wide
    assert sum(p.todo for p in full) == sum(len(g.rows) for g in prune.plan(
        study_plan.sub_config(config, "prune")).groups)


def test_the_estimate_checks_refuse_unknown_names_and_report_wall_over_estimate(tmp_path):
    from spiralprune.study import estimates
    with pytest.raises(ValueError, match="unknown estimate checks"):
        estimates.check(tmp_path, ("quick", "nope"))
    assert not list(tmp_path.iterdir())     # refused before measuring or writing
    row = estimates._row("x", "a check", estimate=100.0, wall=130.0)
    assert row["ratio"] == pytest.approx(1.3)
    text = estimates.format_rows([row])
    assert "| a check | 1 min 40 s | 2 min 10 s | 1.30 |" in text


def test_the_gpu_estimate_trains_one_group_at_a_time_whatever_this_machine_does(
        tmp_path, monkeypatch):
    """On a CPU machine the pruning groups train side by side; the one-GPU estimate made here
    must not divide by this machine's workers (a GPU trains one group at a time)."""
    config = study_config.get_config("smoke")
    gpu = {}
    for n in (1, 2):
        monkeypatch.setenv("SPIRALPRUNE_PRUNE_WORKERS", str(n))
        parts = study_plan.plan(config, tmp_path, rates=study_plan.ASSUMED["gpu"])
        gpu[n] = [p.seconds for p in parts if p.stage == "prune"]
    assert gpu[1] == gpu[2]
    assert rates.platform(study_plan.ASSUMED["gpu"]) == "gpu"
    assert rates.platform(rates.with_table(rates.assumed("cpu"), {"compile_s": 1.0})) == "cpu"


def test_compact_auto_compacts_on_a_cpu_only_and_a_bad_value_is_one_line():
    from spiralprune.configs import prune as prune_config
    from spiralprune.study import prune

    def config(compact):
        c = prune_config.get_config("smoke")
        if compact != "unset":
            c.compact = compact
        return c
    def plan(compact):
        return prune.plan(config(compact))
    assert not prune.compacted(plan("unset"))                # off by default
    assert prune.compacted(plan("auto"), "cpu") and not prune.compacted(plan("auto"), "gpu")
    group = next(g for g in plan("auto").groups if g.method == "random")   # fixed masks
    cost = {(c, k): prune.run_seconds(plan(c), group, study_plan.ASSUMED[k])
            for c in ("auto", False, True) for k in ("cpu", "gpu")}
    assert cost["auto", "gpu"] == cost[False, "gpu"]                        # full width
    assert cost["auto", "cpu"] == cost[True, "cpu"] != cost[False, "cpu"]   # compacted
    for bad in ("yes", 2, None):
        with pytest.raises(ValueError, match="compact must be one of False, True or 'auto'"):
            prune.plan(config(bad))


def test_the_paper_study_compacts_on_a_cpu_and_the_quick_start_never():
    assert study_config.get_config("paper").prune.compact == "auto"
    assert study_config.get_config("quick").prune.get("compact", False) is False


def test_a_study_plans_its_pruning_grid_once_into_a_frozen_plan(tmp_path, monkeypatch):
    import dataclasses

    from spiralprune.study import pipeline, prune
    real, made = prune.plan, []

    def counting(config):
        if not isinstance(config, prune.Plan):
            made.append(config)
        return real(config)
    monkeypatch.setattr(prune, "plan", counting)
    config = study_config.get_config("smoke")
    config.estimate = "assumed"
    pipeline.run(config, tmp_path / "wd", dry_run=True)   # check, plan, the GPU's plan
    assert len(made) == 1
    p = real(study_plan.sub_config(config, "prune"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.epochs = 3
    assert p.record == {k: v for k, v in study_plan.sub_config(config, "prune").to_dict().items()
                        if k not in ("task_index", "num_tasks", "chunk_seconds")}
