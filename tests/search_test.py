"""Tests of spiralprune.search: selection rules, phase one and two records, input errors."""

import numpy as np
import pandas as pd
import pytest

from spiralprune import (
    analysis,
    datasets,
    enumeration,
    grids,
    masking,
    models,
    populations,
    recording,
    search,
    training,
)

TINY = dict(width=2, lrs=(0.1,), schedules=("constant", "step"), epochs=1, chunk_size=3)


def _store(tmp_path, name="w"):
    return recording.Store(tmp_path / name, {"test": name}, kind="search")


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


def test_structured_params_and_configurations():
    assert search.structured_params((3, 3, 3)) == 37
    assert search.structured_params((7, 3, 3)) == 61
    assert search.structured_params((16, 16, 16)) == models.num_params(16) == 609
    configs = search.configurations(3)
    assert configs.shape == (27, 3) and tuple(configs[0]) == (1, 1, 1)
    assert tuple(configs[1]) == (1, 1, 2)  # d3 varies fastest
    small = search.configurations(16, max_structured_params=37)
    assert len(small) and all(search.structured_params(c) < 37 for c in small)


def _phase_one_frame():
    # (1,2,1) and (1,1,2) have 12 structured params, (2,1,1) 13, (1,1,1) 9.
    rows = [((1, 1, 1), 0.05, 0.90), ((1, 1, 1), 0.1, 0.94),
            ((1, 2, 1), 0.05, 0.96), ((1, 2, 1), 0.1, 0.50),
            ((1, 1, 2), 0.05, 0.97), ((1, 1, 2), 0.1, 0.95),
            ((2, 1, 1), 0.05, 0.99), ((2, 1, 1), 0.1, 0.93)]
    return pd.DataFrame([dict(d1=c[0], d2=c[1], d3=c[2], lr=lr, accuracy=a) for c, lr, a in rows])


def test_select_configuration_rules():
    df = _phase_one_frame()
    # The best accuracy over lr counts; (1,1,2) and (1,2,1) tie at 12 params: higher accuracy.
    assert search.select_configuration(df, 0.95) == (1, 1, 2)
    assert search.select_configuration(df, 0.94) == (1, 1, 1)  # reaching means >= target
    assert search.select_configuration(df, 0.98) == (2, 1, 1)
    assert search.select_configuration(df, 0.995) is None
    better = df.copy()
    better.loc[(better["d2"] == 2) & (better["lr"] == 0.1), "accuracy"] = 0.98
    assert search.select_configuration(better, 0.95) == (1, 2, 1)
    # Equal params and equal best accuracy: the lexicographically smallest, in any row order.
    tie = df.copy()
    tie.loc[(tie["d2"] == 2) & (tie["lr"] == 0.1), "accuracy"] = 0.97
    assert search.select_configuration(tie, 0.95) == (1, 1, 2)
    assert search.select_configuration(tie.iloc[::-1], 0.95) == (1, 1, 2)


def test_sparsest_rules():
    df = pd.DataFrame({"nnz": [30, 25, 25, 20, 40], "accuracy": [0.96, 0.955, 0.97, 0.94, 0.99],
                       "mask_index": [0, 1, 2, 3, 4]})
    assert search.sparsest(df, 0.95)["mask_index"] == 2  # fewest nnz, then higher accuracy
    assert search.sparsest(df, 0.94)["mask_index"] == 3  # >= target
    assert search.sparsest(df, 0.98)["mask_index"] == 4
    assert search.sparsest(df, 0.995) is None
    assert search.sparsest(pd.DataFrame(), 0.9) is None


def test_phase_two_rows_params_and_resume(tmp_path):
    store = _store(tmp_path)
    config = (2, 1, 1)
    df = search.phase_two(store, config=config, stage="p2", base_seed=7, **TINY)
    space = enumeration.ModelMaskSpace(config)
    assert len(space) == 4 and len(df) == 4 * 2 and df.attrs["complete"]
    assert sorted(zip(df["mask_index"], df["schedule"])) == sorted(
        (m, s) for m in range(4) for s in TINY["schedules"])
    assert (df[["d1", "d2", "d3"]].to_numpy() == config).all()
    np.testing.assert_array_equal(df["seed"], grids.run_seeds(
        7, "p2", df["mask_index"].to_numpy(), df["lr"].to_numpy(), df["schedule"].to_numpy(str)))
    counts = space.param_counts(df["mask_index"].to_numpy())
    np.testing.assert_array_equal(df["mask_nnz"], counts)
    assert (df["nnz"] <= counts).all() and (df["nnz_weights"] <= df["nnz"]).all()
    for _, row in df.iterrows():
        params = store.params_of(row)
        masks = masking.from_kernels([k[0] for k in space.kernel_masks([row["mask_index"]])])
        kept, full = 0, 0
        for layer in models.LAYERS:
            for leaf in ("kernel", "bias"):
                p, m = params[f"{layer}/{leaf}"], np.asarray(masks[layer][leaf])
                assert p.shape == m.shape
                assert (p[~m] == 0).all()  # exact zeros wherever the mask is False
                kept, full = kept + int((p[m] != 0).sum()), full + int(m.sum())
        assert full == row["mask_nnz"]  # the bias rule keeps every bias of an eligible mask
        assert kept == row["nnz"]  # so nnz == mask_nnz unless a weight trained to exactly 0
        tree = {n: {"kernel": params[f"{n}/kernel"], "bias": params[f"{n}/bias"]}
                for n in models.LAYERS}
        assert int(analysis.effective_nonzeros(tree)["effective_nnz"]) == row["effective_nnz"]
        assert row["effective_nnz"] + row["disconnected"] == row["nnz"]
    assert (df["nnz"] == df["mask_nnz"]).any()
    # Resuming trains nothing and returns the same rows.
    calls = []
    again = search.phase_two(store, config=config, stage="p2", base_seed=7,
                             progress=lambda d, t: calls.append(d), **TINY)
    assert calls == []
    pd.testing.assert_frame_equal(df, again)
    # The same stage with another grid is refused.
    with pytest.raises(ValueError, match="another grid") as e:
        search.phase_two(store, config=config, stage="p2", base_seed=8, **TINY)
    _one_line(e)


def test_phase_one_rows_block_masks_and_bench_init(tmp_path):
    store = _store(tmp_path)
    df = search.phase_one(store, targets=(0.5,), **{**TINY, "schedules": ("cosine",)})
    assert len(df) == 8 and df.attrs["complete"]
    assert sorted(map(tuple, df[["d1", "d2", "d3"]].to_numpy())) == [
        tuple(c) for c in search.configurations(2)]
    np.testing.assert_array_equal(
        df["structured_params"], [search.structured_params(c) for c in df[["d1", "d2", "d3"]]
                                  .to_numpy()])
    assert (df["nnz"] <= df["structured_params"]).all()
    assert (df["init"] == "random").all() and (df["schedule"] == "cosine").all()
    winners = store.get_json("phase1_winners")
    assert winners == {"0.5": list(search.select_configuration(df, 0.5))}
    bench = search.phase_one(_store(tmp_path, "b"), init="bench95", max_structured_params=12,
                             **{**TINY, "schedules": ("cosine",)})
    assert sorted(map(tuple, bench[["d1", "d2", "d3"]].to_numpy())) == [(1, 1, 1)]
    assert (bench["init"] == "bench95").all() and bench["accuracy"].between(0, 1).all()


def test_phase_one_from_a_fixed_init_trains_compacted_like_width_d(tmp_path):
    # D = 4 under 20 structured params: every configuration fits in (3, 4, 3), which phase one
    # trains instead of (4, 4, 4). Each run must equal the block-masked (4, 4, 4) model trained
    # from the same top-left slice of BENCH-95 with the same seed.
    kwargs = dict(width=4, lrs=(0.1,), schedules=("cosine",), epochs=1, chunk_size=64,
                  init="bench95", max_structured_params=20)
    df = search.phase_one(_store(tmp_path), **kwargs)
    configs = search.configurations(4, 20)
    assert tuple(configs.max(0)) != (4, 4, 4)   # the test must exercise a real compaction
    masks = masking.from_kernels(search._block_kernels(configs, 4))
    variants = populations.make_variants(
        masks=masks, lr=np.full(len(configs), 0.1), schedule=["cosine"] * len(configs),
        seed=df["seed"].to_numpy(), params=models.bench_init("bench95", 4))
    spec = training.Spec(widths=(4, 4, 4), epochs=1, init="given")
    ref = populations.run(variants, datasets.cubist_spiral(), spec=spec)
    np.testing.assert_array_equal(df[["d1", "d2", "d3"]].to_numpy(), configs)
    np.testing.assert_array_equal(df["nnz"].to_numpy(), ref["nnz"])
    np.testing.assert_allclose(df["loss"].to_numpy(), ref["loss"], rtol=1e-4, atol=1e-5)
    # Same numbers up to float summation order (the cut rows and columns are exact zeros).
    assert np.abs(df["accuracy"].to_numpy() - ref["accuracy"]).max() < 1e-3


def _bucket_cost(shapes, bucket, runs_per_config, epochs):
    n = np.bincount(bucket, minlength=len(shapes)) * runs_per_config
    w = np.array([models.num_weights(tuple(s)) for s in shapes])
    return len(shapes) * search.BUCKET_COMPILE_S + float(
        np.sum(n * w) * epochs * search.BUCKET_WEIGHT_EPOCH_S)


def test_phase_one_buckets_hold_their_configurations_and_save_time():
    configs = search.configurations(16, 37)   # BENCH-95's phase one: 93 configurations
    shapes, bucket = search.phase_one_buckets(configs, 6, 50)
    assert len(bucket) == len(configs) and 1 < len(shapes) < len(configs)
    assert np.all(configs <= shapes[bucket])   # every configuration fits in its bucket
    for k, shape in enumerate(shapes):         # each shape is the least holding its members
        np.testing.assert_array_equal(shape, configs[bucket == k].max(0))
        assert models.num_weights(tuple(shape)) <= populations.LANES_AUTO_MAX_WEIGHTS
    # Cheaper by the cost model than one shape for all and than one shape each.
    cost = _bucket_cost(shapes, bucket, 6, 50)
    assert cost < _bucket_cost(configs.max(0)[None], np.zeros(len(configs), int), 6, 50)
    assert cost < _bucket_cost(configs, np.arange(len(configs)), 6, 50)
    # Deterministic and independent of the configurations' order.
    perm = np.random.default_rng(0).permutation(len(configs))
    shapes2, bucket2 = search.phase_one_buckets(configs[perm], 6, 50)
    np.testing.assert_array_equal(shapes2, shapes)
    np.testing.assert_array_equal(bucket2, bucket[perm])


def test_phase_one_buckets_by_hand(monkeypatch):
    configs = np.array([(1, 1, 1), (1, 1, 2), (1, 1, 2)])
    # (1,1,1): 5 weights x 1 run; (1,1,2): 7 weights x 2 runs. Merged: 7 x 3 = 21 weight-runs
    # and one compilation, against 5 + 14 = 19 weight-runs and two compilations.
    monkeypatch.setattr(search, "BUCKET_WEIGHT_EPOCH_S", 1.0)
    monkeypatch.setattr(search, "BUCKET_COMPILE_S", 2.5)   # a compilation costs more than 2
    shapes, bucket = search.phase_one_buckets(configs, 1, 1)
    assert shapes.tolist() == [[1, 1, 2]] and bucket.tolist() == [0, 0, 0]
    monkeypatch.setattr(search, "BUCKET_COMPILE_S", 1.5)   # ... or less: kept apart
    shapes, bucket = search.phase_one_buckets(configs, 1, 1)
    assert shapes.tolist() == [[1, 1, 1], [1, 1, 2]] and bucket.tolist() == [0, 1, 1]


def test_phase_one_in_several_buckets_equals_width_d_in_chunk_order(tmp_path, monkeypatch):
    # Compilation free: every configuration trains at its own shape, several per chunk.
    monkeypatch.setattr(search, "BUCKET_COMPILE_S", 0.0)
    kwargs = dict(width=2, lrs=(0.1,), schedules=("cosine",), epochs=1, chunk_size=3,
                  init="bench95", max_structured_params=14)
    configs = search.configurations(2, 14)
    shapes, bucket = search.phase_one_shapes(2, "bench95", configs, 1, 1)
    assert len(shapes) == len(configs) >= 4
    df = search.phase_one(_store(tmp_path), **kwargs)
    np.testing.assert_array_equal(df[["d1", "d2", "d3"]].to_numpy(), configs)
    masks = masking.from_kernels(search._block_kernels(configs, 2))
    variants = populations.make_variants(
        masks=masks, lr=np.full(len(configs), 0.1), schedule=["cosine"] * len(configs),
        seed=df["seed"].to_numpy(), params=models.bench_init("bench95", 2))
    ref = populations.run(variants, datasets.cubist_spiral(),
                          spec=training.Spec(widths=(2, 2, 2), epochs=1, init="given"))
    np.testing.assert_array_equal(df["nnz"].to_numpy(), ref["nnz"])
    np.testing.assert_allclose(df["loss"].to_numpy(), ref["loss"], rtol=1e-4, atol=1e-5)
    assert np.abs(df["accuracy"].to_numpy() - ref["accuracy"]).max() < 1e-3
    assert len(set(np.round(df["loss"], 5))) == len(configs)   # rows are not all alike


def test_phase_one_refuses_fixed_init_records_made_at_other_shapes(tmp_path):
    kwargs = dict(width=2, lrs=(0.1,), schedules=("cosine",), epochs=1, chunk_size=8)
    # The grid a phase one recorded before its shapes were part of it (one shape for all).
    grid = dict(width=2, lrs=[0.1], schedules=["cosine"], max_structured_params=None,
                epochs=1, recipe={}, base_seed=0, chunk_size=8)
    fixed = _store(tmp_path, "fixed")
    fixed.put_json("grid_phase1", {**grid, "init": "bench95"})
    with pytest.raises(ValueError, match="shapes") as e:
        search.phase_one(fixed, init="bench95", **kwargs)
    _one_line(e)
    # A random init always trains (D, D, D): such records stay valid and resume.
    rand = _store(tmp_path, "random")
    rand.put_json("grid_phase1", {**grid, "init": "random"})
    assert len(search.phase_one(rand, init="random", **kwargs)) == 8


@pytest.mark.parametrize("phase, change, match", [
    ("two", dict(width=0), "width"),
    ("two", dict(config=(3, 1, 1)), "wider"),
    ("two", dict(target=0.0), "target"),
    ("two", dict(target=1.5), "target"),
    ("two", dict(mask_indices=[4]), "out of range"),
    ("two", dict(lrs=(0.1, 0.0)), "positive"),
    ("two", dict(schedules=("constant", "linear")), "schedule"),
    ("two", dict(lrs=()), "empty grid"),
    ("two", dict(max_weights=3), "empty grid"),
    ("two", dict(init="xavier"), "init"),
    ("one", dict(width=0), "width"),
    ("one", dict(targets=(0.9, 2.0)), "target"),
    ("one", dict(schedules=()), "empty grid"),
    ("one", dict(max_structured_params=9), "empty grid"),
    ("one", dict(lrs=(-0.1,)), "positive"),
    ("one", dict(task_index=2, num_tasks=2), "task_index"),
])
def test_bad_inputs_raise_one_line_errors_before_training(tmp_path, phase, change, match):
    store = _store(tmp_path)
    kwargs = {**TINY, **change}
    with pytest.raises(ValueError, match=match) as e:
        if phase == "two":
            search.phase_two(store, **{"config": (2, 1, 1), **kwargs})
        else:
            search.phase_one(store, **kwargs)
    _one_line(e)
    assert not (store.workdir / "shards").exists()


def test_selection_target_must_be_in_range():
    with pytest.raises(ValueError, match="target") as e:
        search.select_configuration(_phase_one_frame(), 0)
    _one_line(e)
    with pytest.raises(ValueError, match="target"):
        search.sparsest(pd.DataFrame({"nnz": [1], "accuracy": [1.0]}), 1.01)
