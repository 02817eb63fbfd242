"""The study's remaining search pieces: restrictions, run identity, summaries, figures."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from spiralprune import enumeration, recording, search, symmetry
from spiralprune.study import prune, reproduce


def _brute_param_counts(space: enumeration.ModelMaskSpace, idx: np.ndarray) -> np.ndarray:
    """Nonzero parameters of model masks counted from the masks themselves: every kernel
    entry, one bias per hidden unit that feeds the next layer (the bias rule), and the output
    bias."""
    kernels = [np.asarray(k, bool) for k in space.kernel_masks(idx)]   # (M, d_in, d_out)
    total = np.ones(len(idx), np.int64)
    for k in kernels:
        total += k.reshape(len(idx), -1).sum(1)
    for k in kernels[1:]:   # unit j of the layer below feeds this kernel's row j
        total += k.any(axis=2).sum(1)
    return total


def test_restricted_pieces_hold_exactly_the_masks_up_to_max_nnz():
    p = reproduce.PIECES["bench995_phase_two_632"]
    space = p.space()
    every = np.arange(len(space))
    counts = _brute_param_counts(space, every)
    np.testing.assert_array_equal(counts, space.param_counts(every))
    np.testing.assert_array_equal(p.mask_indices(), np.flatnonzero(counts <= 38))
    assert counts[p.mask_indices()].max() == 38 and (counts > 38).any()


def test_unknown_piece_is_one_line():
    with pytest.raises(ValueError, match="unknown piece 'nope'; choose from random_phase_one"):
        reproduce.piece("nope")


def _tiny(**kw):
    base = dict(name="tiny", config=(2, 2, 1), init="bench95", max_weights=None, first_k=(),
                max_nnz=14, target=0.6, lrs=(0.1,), width=4, epochs=1, chunk_size=8)
    base.update(kw)
    return reproduce.PhaseTwo(**base)


def _second_a_model_epoch():
    # 1 s a model-epoch on every engine (a lanes cell as fast as vmap), 10 s a compile
    return {"a": 1.0, "b": 0.0, "step_s": 0.0, "compile_s": 10.0, "lanes": 1.0}


def test_a_restricted_piece_trains_the_same_runs_as_the_full_search(tmp_path, monkeypatch):
    p = _tiny()
    monkeypatch.setattr(reproduce, "SCHEDULES", ("constant", "cosine"))
    monkeypatch.setitem(reproduce.PIECES, "tiny", p)
    space = p.space()
    idx = p.mask_indices()
    assert 0 < len(idx) < len(space)
    rows = reproduce.run_phase_two(p, tmp_path, progress=lambda _: None)
    full = search.phase_two(recording.Store(tmp_path / "full", {"x": 1}, kind="search"),
                            config=p.config, width=p.width, lrs=p.lrs,
                            schedules=("constant", "cosine"), init=p.init, epochs=1,
                            recipe=reproduce.RECIPE, stage=p.stage, chunk_size=64)
    cols = ["mask_index", "lr", "schedule", "seed", "nnz", "accuracy"]
    mine = rows[cols].sort_values(cols[:3]).reset_index(drop=True)
    theirs = full[full["mask_index"].isin(idx)][cols].sort_values(cols[:3])
    theirs = theirs.reset_index(drop=True)
    pd.testing.assert_frame_equal(mine[cols[:5]], theirs[cols[:5]])
    np.testing.assert_allclose(mine["accuracy"], theirs["accuracy"], atol=2e-3)
    assert (mine["nnz"] <= 14).all() and (full["nnz"] > 14).any()
    # The plan counts the piece's runs, then nothing left to train once recorded.
    planned = reproduce.plan("tiny", tmp_path / "empty", rates=_second_a_model_epoch())
    assert [(q.runs, q.todo) for q in planned] == [(len(idx) * 2, len(idx) * 2)]
    # runs x 1 epoch x 1 s, and one compile
    assert planned[0].seconds == pytest.approx(len(idx) * 2 + 10.0)
    assert [q.todo for q in reproduce.plan("tiny", tmp_path, rates=_second_a_model_epoch())] == [0]
    # Resuming a finished piece trains nothing.
    calls = []
    again = reproduce.run_phase_two(p, tmp_path, progress=lambda _: lambda d, t: calls.append(d))
    assert len(again) == len(rows) and not [c for c in calls if c]
    summary = reproduce.summarize("tiny", tmp_path)
    assert summary["complete"] and summary["runs"] == len(rows)
    best = search.sparsest(rows, p.target)
    assert (summary["sparsest"] is None) == (best is None)


def test_phase_one_summary_hand_worked():
    rows = []
    for cfg, accs in {(1, 1, 1): [0.7, 0.8], (2, 1, 1): [0.96, 0.5], (1, 2, 1): [0.97, 0.9],
                      (3, 3, 3): [0.996, 0.9], (2, 2, 2): [0.994, 0.99]}.items():
        for a in accs:
            rows.append(dict(d1=cfg[0], d2=cfg[1], d3=cfg[2], accuracy=a,
                             structured_params=search.structured_params(cfg)))
    s = reproduce.phase_one_summary(pd.DataFrame(rows))
    # 3 d1 + (d1 d2 + d2) + (d2 d3 + d3) + (d3 + 1): (1,2,1) 12, (2,1,1) 13, (2,2,2) 21.
    assert [search.structured_params(c) for c in ((1, 2, 1), (2, 1, 1), (2, 2, 2))] == [12, 13, 21]
    assert s["targets"]["0.95"]["winner"]["config"] == [1, 2, 1]
    assert s["targets"]["0.95"]["runner_up"]["config"] == [2, 1, 1]
    assert s["targets"]["0.995"]["winner"]["config"] == [3, 3, 3]
    assert s["targets"]["0.995"]["runner_up"] is None
    assert s["targets"]["0.995"]["best_below"] == {"config": [2, 2, 2], "structured_params": 21,
                                                   "accuracy": 0.994}
    assert s["configurations"] == 5 and s["runs"] == 10


def test_retrain_summary_counts_seeds_and_finds_the_majority_model():
    def frame(accs):
        return pd.DataFrame({"mask_index": [7, 7, 9], "schedule": ["constant", "step", "step"],
                             "nnz": [40, 40, 44], "accuracy": accs})
    frames = {1: frame([0.996, 0.5, 0.996]), 2: frame([0.99, 0.5, 0.997]),
              3: frame([0.9951, 0.5, 0.99])}
    out = reproduce.retrain_summary(frames, 0.995)
    by = {(m["mask_index"], m["schedule"]): m for m in out["models"]}
    assert by[(7, "constant")]["over_target"] == 2 and by[(7, "constant")]["seeds"] == 3
    assert by[(7, "step")]["over_target"] == 0
    assert by[(9, "step")]["accuracies"] == [0.996, 0.997, 0.99]
    assert out["sparsest_majority"]["mask_index"] == 7
    assert out["sparsest_majority"]["schedule"] == "constant"
    frames[3] = frame([0.99, 0.5, 0.999])   # mask 7 now crosses in 1 of 3: 9 takes over
    assert reproduce.retrain_summary(frames, 0.995)["sparsest_majority"]["mask_index"] == 9


def test_shipped_summaries_round_trip_and_draw(tmp_path):
    path = tmp_path / "reproduce.json"
    best = [[1, 1, 1, 8, 0.7], [3, 3, 3, 37, 0.96], [7, 3, 3, 61, 0.997]]
    p1 = {"piece": "random_phase_one", "kind": "phase_one",
          "seeds": {"0": {"best": best, "configurations": 3, "complete": True}}}
    reproduce.ship(p1, {"command": "c"}, path)
    p2 = {"piece": "bench995_phase_two_632", "kind": "phase_two", "config": [6, 3, 2],
          "init": "bench995", "max_nnz": 38, "target": 0.995, "complete": False,
          "points": [{"nnz": 30, "accuracy": 0.97}, {"nnz": 38, "accuracy": 0.996}],
          "sparsest": {"nnz": 38, "accuracy": 0.996}}
    reproduce.ship(p2, {"command": "d"}, path)
    got = reproduce.load_summaries(path)
    assert list(got) == ["bench995_phase_two_632", "random_phase_one"]
    assert got["random_phase_one"]["provenance"] == {"command": "c"}
    assert json.loads(path.read_text())["format"] == reproduce.SUMMARY_FORMAT
    reproduce.draw_phase_one(got["random_phase_one"], tmp_path / "p1.png")
    reproduce.draw_phase_two([got["bench995_phase_two_632"]], tmp_path / "p2.png",
                             paper=(38, 0.997))
    assert (tmp_path / "p1.png").stat().st_size > 10_000
    assert (tmp_path / "p2.png").stat().st_size > 10_000


def test_pieces_name_the_study_stages():
    assert reproduce.PIECES["random_subset_733"].stage == "phase2_7-3-3_subset"
    p = dataclasses.replace(reproduce.PIECES["random_subset_733"], max_nnz=44)
    assert len(p.mask_indices()) < len(reproduce.PIECES["random_subset_733"].mask_indices())


def test_a_reduced_sweep_piece_trains_a_ninth_of_the_grid_and_says_so(tmp_path):
    full = [reproduce.piece(f"sweep_w{w}") for w in (128, 256)]
    reduced = reproduce.piece("reduced_w128_256")
    rows = {n: sum(len(g.rows) for g in prune.plan(p.config()).groups)
            for n, p in [("full", full[0]), ("full256", full[1]), ("reduced", reduced)]}
    assert rows["reduced"] * 9 == rows["full"] + rows["full256"] == 2 * 1863
    groups = prune.plan(reduced.config()).groups
    assert {float(v) for g in groups for v in g.rows["lr"]} == {0.05}
    assert {str(v) for g in groups for v in g.rows["schedule"]} == {"constant"}
    s = reproduce.summarize("reduced_w128_256", tmp_path)
    assert s["reduced"] == {"lrs": [0.05], "schedules": ["constant"]} and s["runs"] == 0
    assert "a reduction of the study's grid: lrs [0.05]" in reproduce.report(s)
    assert "reduced" not in reproduce.summarize("sweep_w128", tmp_path)


def test_reduced_widths_fill_only_what_no_complete_sweep_piece_holds():
    def piece(widths, complete=True, reduced=None):
        out = {"widths": list(widths), "complete": complete,
               "fronts": [{"method": "gmp", "width": w, "nnz": [40], "accuracy": [0.9]}
                          for w in widths],
               "fewest": [{"method": "gmp", "width": w, "target": 0.95, "nnz": 40}
                          for w in widths]}
        return out | ({"reduced": reduced} if reduced else {})
    cut = {"lrs": [0.05], "schedules": ["constant"]}
    full = [piece([64]), piece([128], complete=False)]
    widths, out = reproduce.reduced_widths(full, [piece([128, 256], reduced=cut)])
    assert widths == {128: ((0.05,), ("constant",)), 256: ((0.05,), ("constant",))}
    assert [f["width"] for f in out[-1]["fronts"]] == [128, 256] and len(out) == 3
    full[1]["complete"] = True   # the whole width-128 grid has run: only 256 stays reduced
    widths, out = reproduce.reduced_widths(full, [piece([128, 256], reduced=cut)])
    assert list(widths) == [256] and [f["width"] for f in out[-1]["fewest"]] == [256]
    assert reproduce.reduced_widths([piece([128]), piece([256])],
                                    [piece([128, 256], reduced=cut)]) == (
        {}, [piece([128]), piece([256])])


def test_structure_table_pools_the_masks_of_one_structure_as_seeds():
    p = _tiny(config=(3, 2, 2), init="random", max_nnz=99, target=0.99)
    space = p.space()
    ids, _ = symmetry.structures(space)
    sizes = np.bincount(ids)
    big = int(np.argmax(sizes))          # a structure with several masks
    members = np.flatnonzero(ids == big)[:3]
    assert len(members) == 3
    loner = int(np.flatnonzero(sizes == 1)[0])
    other = np.flatnonzero(ids == loner)
    idx = np.concatenate([members, other])
    nnz = space.param_counts(idx)
    df = pd.DataFrame({"mask_index": idx, "lr": 0.05, "schedule": "constant", "nnz": nnz,
                       "accuracy": [0.995, 0.999, 0.5, 0.999]})
    out = reproduce.structure_table(df, p, 0.99)
    assert out["structures"] == 2
    r = out["reliable"]
    assert (r["seeds"], r["over_target"]) == (3, 2)   # the loner has one seed: not enough
    assert r["mask_index"] == int(members.min())
    df.loc[1, "accuracy"] = 0.5                       # now 1 of 3: no majority anywhere
    assert reproduce.structure_table(df, p, 0.99)["reliable"] is None


def test_optimal_count_hand_worked():
    df = pd.DataFrame({"method": ["snip", "gmp", "gmp", "lth", "gmp"],
                       "width": [3, 3, 7, 7, 16],
                       "nnz": [29, 31, 40, 46, 30],
                       "accuracy": [0.9514, 0.99, 0.9968, 0.999, 0.96]})
    out = reproduce.optimal_count(df, {0.95: (3, 30), 0.995: (7, 45)})
    assert out["0.95"]["matches_at_width"] == 1          # snip 29; gmp's 31 is too many
    assert out["0.95"]["matches"] == 2                   # + gmp at width 16 (30)
    assert out["0.95"]["runs_at_width"] == 2
    assert out["0.995"]["matches_at_width"] == 1         # gmp 40; lth's 46 is too many
    assert [w["method"] for w in out["0.995"]["which"]] == ["gmp"]


def test_a_pruning_piece_runs_its_grid_and_resumes(tmp_path, monkeypatch):
    p = reproduce.Pruning("tiny_prune", "random", (3,), preset="smoke")
    monkeypatch.setitem(reproduce.PIECES, "tiny_prune", p)
    s = reproduce.run("tiny_prune", tmp_path)
    # smoke's random grid at width 3: random and gmp x budgets 15, 20 (30 >= N_3 = 27) x lr 0.1
    # x constant, cosine
    assert s["total_runs"] == s["runs"] == 8 and s["complete"]
    got = pd.DataFrame(s["fewest"])
    assert set(got["method"]) == {"random", "gmp"} and set(got["width"]) == {3}
    assert "optimal" in s and s["optimal"]["0.95"]["runs_at_width"] == 8
    df = recording.load_runs(tmp_path / "tiny_prune")
    for r in s["fewest"]:
        ok = df[(df["method"] == r["method"]) & (df["accuracy"] >= r["target"])]
        assert (r["nnz"] is None) == ok.empty
        if not ok.empty:
            assert r["nnz"] == ok["nnz"].min()
    assert "fewest nonzeros reaching each target" in reproduce.report(s)
    # Section 7.2's further pruning: each method's sparsest runs over a target, pruned by
    # magnitude while they stay over it; the records' params give back the records' accuracy
    store, data = recording.Store.open(tmp_path / "tiny_prune"), \
        reproduce.prune_stage.plan(p.config()).data
    target = float(np.sort(df["accuracy"])[len(df) // 2])
    got = reproduce.further_pruning(store, df, data, target, per_method=2)
    ok = df[df["accuracy"] >= target].sort_values(["nnz", "accuracy"], ascending=[True, False])
    want = {}
    for method, g in ok.groupby("method"):
        for _, r in g.head(2).iterrows():
            one = reproduce.analysis.further_prune(
                reproduce.study_figures.params_tree(store.params_of(r)), data, floor=target)
            assert one["base_accuracy"] == pytest.approx(r["accuracy"], abs=1e-6)
            assert one["accuracy"] >= target and one["nnz"] <= r["nnz"]
            want[method] = min(want.get(method, 10 ** 9), one["nnz"])
    assert {r["method"]: r["nnz"] for r in got["fewest"]} == want
    assert got["runs"] == sum(min(2, len(g)) for _, g in ok.groupby("method"))
    assert "pruned further" in reproduce.report(dict(s, further=got))
    only = dataclasses.replace(p, name="tiny_gmp", methods=("gmp",))   # one pruner's grid
    assert only.config().grids["random"].methods == ("gmp",)
    assert sum(len(g.rows) for g in reproduce.prune_stage.plan(only.config()).groups) == 4
    assert all(reproduce.PIECES[n].config().grids["random"].methods == ("neurons",)
               for n in reproduce.NEURONS_SWEEP) and len(reproduce.NEURONS_SWEEP) == 2
    assert [q.todo for q in reproduce.plan("tiny_prune", tmp_path / "none")] == [8]
    assert [q.todo for q in reproduce.plan("tiny_prune", tmp_path)] == [0]
    again = reproduce.run("tiny_prune", tmp_path)   # resumes: nothing to train, same summary
    assert again["fewest"] == s["fewest"]
    path = tmp_path / "reproduce.json"
    reproduce.ship(dict(s, piece="sweep_w16"), {"command": "test"}, path)
    reproduce.ship(dict(s, piece="bench995_pruning"), {"command": "test"}, path)
    reproduce.ship(dict(s, piece="neurons_bench995"), {"command": "test"}, path)
    ours = [dict(r, method="neurons") for r in s["fewest"] if r["method"] == "gmp"]
    reproduce.ship(dict(s, piece="neurons_sweep_w64", fewest=ours), {"command": "test"}, path)
    drawn = reproduce.draw_all(tmp_path / "figs", path)
    assert sorted(p.name for p in drawn) == ["bench995_pruning.png", "fewest_by_width.png",
                                             "width_sweep_95.png", "width_sweep_995.png"]


@pytest.mark.parametrize("name", ["sweep_w256", "dense_995_56_67", "random_subset_733"])
def test_a_pieces_tasks_share_its_runs(tmp_path, name):
    """A piece too long for one session runs as tasks (``--config.task_index/num_tasks``):
    their plans must split its runs, each run in exactly one task, none left out."""
    rates = reproduce.rates_mod.assumed("cpu")
    whole = reproduce.plan(name, tmp_path, rates=rates)
    shares = [reproduce.plan(name, tmp_path, rates=rates, task_index=t, num_tasks=3)
              for t in range(3)]
    for i, part in enumerate(whole):
        mine = [s[i].mine for s in shares]
        assert sum(mine) == part.runs == part.mine
        assert sum(s[i].todo for s in shares) == part.todo
        # a part of several chunks is shared (a dense seed is one chunk: one task trains it)
        assert all(0 < m < part.runs for m in mine) == (name != "dense_995_56_67")


def test_provenance_keeps_no_machine_path():
    got = reproduce.provenance("python experiments/reproduce.py --workdir=/data/me/runs --x=1")
    assert got["command"] == "python experiments/reproduce.py --workdir=WORKDIR --x=1"
    assert set(got) == {"command", "device", "date", "commit"}
    got = reproduce.provenance("python experiments/reproduce.py --config=C:p --workdir=/r "
                               "--config.train=False --config.ship=True "
                               "--config.figures=docs/figures --config.seeds=0,1")
    assert got["command"] == ("python experiments/reproduce.py --config=C:p --workdir=WORKDIR "
                              "--config.seeds=0,1")


def test_a_model_card_retrains_to_the_run_that_found_it(tmp_path):
    """``retrain_model`` trains one shipped model alone; it must give the run the piece made
    in a population of other masks and schedules (same run seed; lanes members independent)."""
    import dataclasses
    src = reproduce.piece("random_subset_733")
    short = dataclasses.replace(src, epochs=2)
    masks = short.mask_indices()[[3, 40]]
    df = reproduce.run_phase_two(short, tmp_path, mask_indices=masks, seed=3,
                                 workdir=tmp_path / "piece", progress=lambda label: None)
    row = df[(df["mask_index"] == masks[1]) & (df["schedule"] == "cosine")].iloc[0]
    card = reproduce.model_card(short, {"mask_index": int(masks[1]), "nnz": int(row["nnz"]),
                                        "schedule": "cosine", "base_seeds": [3],
                                        "accuracies": [float(row["accuracy"])]})
    assert card["epochs"] == 2 and card["lr"] == 0.05 and card["config"] == [7, 3, 3]
    kernels = [np.asarray(k) for k in card["kernels"]]
    assert [k.shape for k in kernels] == [(2, 7), (7, 3), (3, 3), (3, 1)]
    assert sum(int(k.sum()) for k in kernels) == int(row["mask_nnz"]) - 14  # + 7+3+3+1 biases
    again = reproduce.retrain_model(tmp_path / "again", card, progress=None)
    assert len(again) == 1 and again["base_seed"].tolist() == [3]
    assert int(again["seed"].iloc[0]) == int(row["seed"])
    assert abs(float(again["accuracy"].iloc[0]) - float(row["accuracy"])) <= 2e-3
    assert float(again["loss"].iloc[0]) == pytest.approx(float(row["loss"]), rel=1e-3)
    with pytest.raises(ValueError, match="no model shipped for 'nothing'"):
        reproduce.shipped_model("nothing")


def test_dense_summary_finds_the_smallest_configuration_over_the_target_in_most_seeds(
        tmp_path):
    def frame(accs):
        return pd.DataFrame({"d1": [3, 3, 7], "d2": [3, 3, 3], "d3": [3, 3, 3],
                             "structured_params": [37, 37, 61], "lr": [0.05] * 3,
                             "schedule": ["cosine", "step", "step"], "accuracy": accs})
    frames = {1: frame([0.996, 0.4, 0.999]), 2: frame([0.99, 0.4, 0.998]),
              3: frame([0.997, 0.4, 0.99])}
    out = reproduce.dense_summary(frames, 0.995)
    assert out["sparsest_majority"]["config"] == [3, 3, 3]
    assert out["sparsest_majority"]["schedule"] == "cosine"
    assert out["sparsest_majority"]["over_target"] == 2
    assert out["sparsest_majority"]["accuracies"] == [0.996, 0.99, 0.997]
    # per configuration its best (lr, schedule): (3,3,3) cosine (2 of 3), not step (0 of 3)
    assert [(r["config"], r["schedule"], r["over_target"]) for r in out["by_config"]] == [
        ([3, 3, 3], "cosine", 2), ([7, 3, 3], "step", 2)]
    assert "(3, 3, 3) (37 params) lr 0.05 cosine: 2/3 seeds" in reproduce.report(
        dict(out, piece="x", kind="dense", configurations=2, runs_per_seed=3,
             seeds_complete=[1, 2, 3]))
    path = tmp_path / "reproduce.json"   # its figure draws from the shipped summary alone
    reproduce.ship(dict(out, piece="dense_995_ladder"), {"command": "test"}, path)
    assert [p.name for p in reproduce.draw_all(tmp_path / "figs", path)] == ["dense_995.png"]
    frames[3] = frame([0.9, 0.4, 0.99])      # (3,3,3) now crosses in 1 of 3: (7,3,3) takes over
    assert reproduce.dense_summary(frames, 0.995)["sparsest_majority"]["config"] == [7, 3, 3]


def test_a_dense_card_retrains_to_the_run_that_found_it(tmp_path):
    import dataclasses
    src = dataclasses.replace(reproduce.piece("dense_995_56_67"), epochs=2)
    configs = [[3, 3, 3], [7, 3, 3]]
    df = reproduce.run_dense(src, tmp_path, 4, configs=configs, progress=lambda label: None,
                             workdir=tmp_path / "piece")
    row = df[(df["d1"] == 7) & (df["schedule"] == "step")].iloc[0]
    card = reproduce.dense_card(src, {"config": [7, 3, 3], "structured_params": 61,
                                      "lr": 0.05, "schedule": "step", "base_seeds": [4],
                                      "accuracies": [float(row["accuracy"])]})
    assert card["mask"] == "masking.block_masks((7, 3, 3), 16)" and card["epochs"] == 2
    # the source piece's record says 50 epochs: retrain the short piece's card through it
    again = reproduce.retrain_model(tmp_path / "again", dict(card, source="dense_995_56_67"))
    assert len(again) == 1 and int(again["seed"].iloc[0]) == int(row["seed"])
    assert abs(float(again["accuracy"].iloc[0]) - float(row["accuracy"])) <= 2e-3


def test_phase_one_given_configurations_are_checked(tmp_path):
    from spiralprune import recording, search
    store = recording.Store(tmp_path / "wd", {"x": 1}, kind="search")
    for configs, kw, match in (([[3, 3, 3]], {"max_structured_params": 40}, "not both"),
                               ([[3, 3, 3], [3, 3, 3]], {}, "repeats a configuration"),
                               ([[3, 3, 17]], {}, "triples in 1..16")):
        with pytest.raises(ValueError, match=match):
            search.phase_one(store, width=16, lrs=(0.05,), configs=configs, epochs=1, **kw)
    assert not (tmp_path / "wd" / "shards").exists()


def test_dense_pieces_plan_and_cover_the_sizes_around_733():
    a, b = reproduce.piece("dense_995_56_67"), reproduce.piece("dense_995_68_80")
    sizes = {search_params(c) for p in (a, b) for c in p.configs()}
    assert min(sizes) == 56 and max(sizes) == 80 and 61 in sizes
    assert not set(map(tuple, a.configs().tolist())) & set(map(tuple, b.configs().tolist()))
    parts = reproduce.plan("dense_995_56_67", "/nonexistent", rates=reproduce.rates_mod.assumed())
    assert len(parts) == 10 and all(p.todo == len(a.configs()) * 3 for p in parts)
    # the ladder: its explicit shapes, each larger than (7,3,3), recorded in its workdir's
    # identity (the range pieces' identity keeps no such key: their workdirs still open)
    ladder = reproduce.piece("dense_995_ladder")
    sizes = sorted(search_params(c) for c in ladder.configs())
    assert len(sizes) == 13 and sizes[0] == 81 and sizes[-1] == 361
    assert ladder.store_config(1)["configs"] == ladder.configs().tolist()
    assert "configs" not in a.store_config(1)
    import dataclasses
    assert dataclasses.replace(ladder, max_structured_params=100).configs().tolist() == [
        [5, 5, 5], [8, 4, 4]]


def search_params(config):
    from spiralprune import search
    return search.structured_params(config)


def test_the_gpu_script_runs_known_pieces_within_ten_minutes():
    import pathlib
    import re
    text = (pathlib.Path(__file__).parent.parent / "experiments" / "reproduce_gpu.sh").read_text()
    runs = re.findall(r"^run (\S+) (\d+)", text, flags=re.M)
    assert runs and all(name in reproduce.PIECES for name, _ in runs)
    assert sum(int(cap) for _, cap in runs) < 600
