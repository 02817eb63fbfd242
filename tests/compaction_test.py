"""Compacted training of fixed masks (``compaction``) against full-width training.

Oracles: active units against a brute-force loop over every unit's entries; gather/scatter
round trips exactly; bucketing invariants; and the contract itself: compacted and full-width
``populations.run`` of the same runs (random masks at several sparsities, SNIP and random
pruning; a random init and a given one) agree to float32 rounding.
"""

import jax
import numpy as np
import pytest

from spiralprune import compaction, masking, models, populations, training


@pytest.fixture(scope="module")
def data(spiral):
    x, y = spiral
    sub = np.sort(np.random.default_rng(3).choice(len(y), 1024, replace=False))
    return x[sub], y[sub]


def _random_masks(rng, widths, sparsities, bias_rule=True):
    """Kernel masks kept with probability 1 - sparsity per run; biases by the bias rule or
    random (then a unit can be reachable through its bias alone)."""
    p = len(sparsities)
    s = np.asarray(sparsities)[:, None, None]
    kernels = [rng.random((p,) + shape) >= s for shape in models.layer_shapes(widths)]
    masks = masking.from_kernels(kernels)
    masks = jax.tree.map(np.array, masks)   # writable copies
    if not bias_rule:
        for name in models.LAYERS[:3]:
            masks[name]["bias"] = rng.random(masks[name]["bias"].shape) < 0.3
    return masks


def _brute_active(masks, p, widths):
    out = [np.zeros((p, w), bool) for w in widths]
    for r in range(p):
        for layer in range(3):
            k_in = masks[models.LAYERS[layer]]["kernel"][r]
            k_out = masks[models.LAYERS[layer + 1]]["kernel"][r]
            bias = masks[models.LAYERS[layer]]["bias"][r]
            for j in range(widths[layer]):
                entries = [bool(k_in[i, j]) for i in range(k_in.shape[0])]
                entries += [bool(k_out[j, o]) for o in range(k_out.shape[1])]
                out[layer][r, j] = any(entries) or bool(bias[j])
    return out


def test_active_units_against_a_brute_force_loop():
    rng = np.random.default_rng(0)
    widths = (5, 4, 6)
    sparsities = np.repeat([0.0, 0.5, 0.8, 0.95, 1.0], 6)
    for bias_rule in (True, False):
        masks = _random_masks(rng, widths, sparsities, bias_rule)
        got = compaction.active_units(masks)
        want = _brute_active(masks, len(sparsities), widths)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(
            compaction.active_widths(masks),
            np.maximum(np.stack([w.sum(-1) for w in want], -1), 1))


def test_bias_only_units_are_active():
    # Hidden layer 1: unit 0 has a kept bias and an outgoing weight but no input (it feeds a
    # constant forward), unit 2 a kept bias alone, unit 1 an input only (weight decay moves
    # it). Hidden layer 0: unit 3 has an outgoing weight only. Hidden layer 2: unit 3 has an
    # input only.
    masks = jax.tree.map(np.asarray, masking.ones_like(models.init(jax.random.key(0), 4)))
    masks = jax.tree.map(np.zeros_like, masks)
    masks["layer3"]["bias"][:] = True
    masks["layer1"]["bias"][0] = True
    masks["layer2"]["kernel"][0, 3] = True
    masks["layer1"]["bias"][2] = True
    masks["layer1"]["kernel"][3, 1] = True
    a0, a1, a2 = compaction.active_units(masks)
    np.testing.assert_array_equal(a0, [False, False, False, True])
    np.testing.assert_array_equal(a1, [True, True, True, False])
    np.testing.assert_array_equal(a2, [False, False, False, True])
    np.testing.assert_array_equal(compaction.active_widths(masks), [1, 3, 1])
    # No active unit in hidden layer 0: one fully masked unit stands in for it.
    masks["layer1"]["kernel"][3, 1] = False
    a0, a1, _ = compaction.active_units(masks)
    assert not a0.any()
    np.testing.assert_array_equal(a1, [True, False, True, False])
    np.testing.assert_array_equal(compaction.active_widths(masks), [1, 2, 1])


def test_gather_then_scatter_puts_every_entry_back_exactly():
    rng = np.random.default_rng(1)
    widths = (8, 8, 8)
    masks = _random_masks(rng, widths, np.repeat([0.3, 0.9, 0.99], 4), bias_rule=False)
    params = jax.vmap(lambda k: models.init(k, widths))(jax.random.split(jax.random.key(1), 12))
    params = jax.tree.map(np.asarray, masking.apply(params, masks))
    shape = compaction.active_widths(masks).max(0)
    order = compaction.unit_order(masks, shape)
    small = compaction.gather(params, order)
    assert models.widths_of(small) == tuple(shape)
    back = compaction.scatter(small, order, widths)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(a, b)
    # The compacted masks keep every unmasked entry.
    np.testing.assert_array_equal(masking.nnz(compaction.gather(masks, order)),
                                  masking.nnz(masks))
    with pytest.raises(ValueError, match="does not hold"):
        compaction.unit_order(masks, shape - 1)


def test_buckets_hold_their_members_and_ignore_population_order():
    rng = np.random.default_rng(2)
    widths = rng.integers(1, 40, (200, 3))
    shapes, which = compaction.buckets(widths, 50)
    assert np.all(shapes[which] >= widths)
    assert len(np.unique(which)) == len(shapes)
    for k, shape in enumerate(shapes):   # no bucket is wider than its widest member needs
        np.testing.assert_array_equal(shape, widths[which == k].max(0))
    perm = rng.permutation(len(widths))
    shapes_p, which_p = compaction.buckets(widths[perm], 50)
    np.testing.assert_array_equal(shapes_p[which_p], shapes[which][perm])
    with pytest.raises(ValueError, match=">= 1"):
        compaction.buckets(np.zeros((2, 3)), 50)


def _assert_same_records(full, comp, masks_full=None, max_flips=2, n=1024):
    """Params to float32 rounding, masked entries exactly 0, accuracy equal but for a few.

    A run's params differ from its full-width twin only by float32 summation order (dots
    over fewer zero terms), ~1e-7 after a few epochs. Accuracy is a count of logits > 0: a
    point whose logit (or a hidden pre-activation, which a ReLU then zeroes or passes) sits
    within that rounding of 0 can flip, changing the count by one. Over 49,982 or 1,024
    points few logits lie that close, so at most ``max_flips`` runs may differ, by at most 2
    points each.
    """
    for name in models.LAYERS:
        for leaf in ("kernel", "bias"):
            a, b = full["params"][name][leaf], comp["params"][name][leaf]
            m = full["masks"][name][leaf]
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5)
            assert np.all(b[~m] == 0) and np.all(a[~m] == 0)
            np.testing.assert_array_equal(comp["masks"][name][leaf], m)
    assert set(comp) == set(full)
    for key in full:
        assert np.shape(comp[key]) == np.shape(full[key]), key
    np.testing.assert_array_equal(comp["nnz"], full["nnz"])
    np.testing.assert_array_equal(comp["nnz_weights"], full["nnz_weights"])
    np.testing.assert_allclose(comp["loss"], full["loss"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(comp["train_loss"], full["train_loss"], rtol=1e-4, atol=1e-6)
    diff = np.abs(comp["accuracy"] - full["accuracy"]) * n
    assert np.sum(diff > 0.5) <= max_flips and diff.max() <= 2.5, diff


@pytest.mark.parametrize("width", [8, 16])
@pytest.mark.parametrize("init", ["torch", "given"])
def test_fixed_masks_train_compacted_as_at_full_width(data, width, init):
    rng = np.random.default_rng(width)
    widths = (width,) * 3
    sparsities = np.repeat([0.5, 0.9, 0.97, 0.995, 1.0], 3)
    p = len(sparsities)
    masks = _random_masks(rng, widths, sparsities)
    given = models.init(jax.random.key(7), widths) if init == "given" else None
    v = populations.make_variants(masks=masks, lr=np.full(p, 0.1), schedule=np.arange(p) % 3,
                                  seed=np.arange(p), params=given)
    spec = training.Spec(widths=widths, epochs=3, init=init, engine="vmap")
    full = populations.run(v, data, spec=spec)
    comp = compaction.run(v, data, spec=spec)
    _assert_same_records(full, comp)
    # Fully masked runs (sparsity 1.0): the bias-only model, trained all the same.
    np.testing.assert_array_equal(compaction.active_widths(masks)[-1], [1, 1, 1])
    assert np.all(comp["nnz_weights"][-3:] == 0)


@pytest.mark.parametrize("method,init", [("snip", "torch"), ("random", "torch"),
                                         ("snip", "given")])
def test_at_init_pruners_train_compacted_as_at_full_width(data, method, init):
    width = 16
    budgets = np.array([15, 20, 26, 40, 65, 120])
    p = len(budgets)
    given = models.init(jax.random.key(5), width) if init == "given" else None
    v = populations.make_variants(
        masks=masking.ones_like(models.init(jax.random.key(0), width)), lr=np.full(p, 0.1),
        schedule=np.arange(p) % 3, seed=np.arange(p) + 100, budget=budgets, params=given)
    spec = training.Spec(widths=(width,) * 3, epochs=3, init=init, method=method)
    full = populations.run(v, data, spec=spec)
    comp = compaction.run(v, data, spec=spec)
    _assert_same_records(full, comp)
    np.testing.assert_array_equal(comp["nnz_weights"], np.minimum(budgets, comp["nnz_weights"]))
    assert np.all(masking.nnz_weights(comp["masks"]) == budgets)


def test_small_buckets_on_the_lanes_engine(data):
    # Sparse masks compact to shapes the lanes engine runs: its results too agree.
    rng = np.random.default_rng(4)
    widths = (8, 8, 8)
    p = 4
    masks = _random_masks(rng, widths, np.full(p, 0.5))
    for r in range(p):   # each run keeps 4 scattered units per layer: shapes <= (4, 4, 4)
        for i, name in enumerate(models.LAYERS[:3]):
            off = rng.permutation(8)[:4]
            masks[name]["kernel"][r][:, off] = False
            masks[name]["bias"][r][off] = False
            masks[models.LAYERS[i + 1]]["kernel"][r][off, :] = False
    v = populations.make_variants(masks=masks, lr=np.full(p, 0.1), schedule=np.zeros(p, int),
                                  seed=np.arange(p))
    spec = training.Spec(widths=widths, epochs=2)
    shapes, _ = compaction.buckets(compaction.active_widths(masks), spec.epochs)
    assert all(populations.engine(compaction.bucket_spec(spec, s)) == "lanes" for s in shapes)
    _assert_same_records(populations.run(v, data, spec=spec), compaction.run(v, data, spec=spec))


@pytest.mark.parametrize("init", ["torch", "given"])
def test_lth_rounds_after_the_first_train_compacted_as_at_full_width(data, init):
    width = 16
    budgets = np.array([15, 26, 40, 65, 200])
    p = len(budgets)
    given = models.init(jax.random.key(9), width) if init == "given" else None
    v = populations.make_variants(
        masks=masking.ones_like(models.init(jax.random.key(0), width)), lr=np.full(p, 0.1),
        schedule=np.arange(p) % 3, seed=np.arange(p) + 40, budget=budgets, params=given)
    spec = training.Spec(widths=(width,) * 3, epochs=2, init=init, method="lth",
                         method_args=(("lth_rounds", 3),))
    full = populations.run(v, data, spec=spec)
    ticks = []
    comp = compaction.run(v, data, spec=spec, progress=lambda d, t: ticks.append((d, t)))
    # A magnitude tie flipped by rounding would prune another weight: none here.
    _assert_same_records(full, comp)
    assert np.all(masking.nnz_weights(comp["masks"]) == budgets)
    assert ticks[-1] == (p, p)
    # The last round trains compacted: the sparse runs' active widths are below 16.
    assert compaction.active_widths(comp["masks"])[:2].max() < width


def test_moving_masks_train_at_full_width():
    assert compaction.compactable(training.Spec(method="snip"))
    assert compaction.compactable(training.Spec(method="dense"))
    for method in ("gmp", "rigl", "lth"):
        assert not compaction.compactable(training.Spec(method=method))
    assert not compaction.compactable(training.Spec(), train_fn=training.train_run)


def test_bad_input_is_refused_before_compute(data):
    widths = (8, 8, 8)
    masks = masking.ones_like(models.init(jax.random.key(0), widths))
    v = populations.make_variants(masks=masks, lr=[0.1], schedule=[0], seed=[0])
    with pytest.raises(ValueError, match="carry no params"):
        compaction.run(v, data, spec=training.Spec(widths=widths, init="given"))
    with pytest.raises(ValueError, match="labels"):
        compaction.run(v, (data[0], data[1] + 2), spec=training.Spec(widths=widths))
    with pytest.raises(ValueError, match="shape"):
        compaction.run(v, data, spec=training.Spec(widths=(9, 8, 8)))


def test_pruning_grid_records_equal_full_width_training(tmp_path, monkeypatch):
    # With compact=True the pruning grid trains its at-init groups compacted (random from the
    # torch init and from BENCH-95 here) and GMP at full width: its records equal full-width
    # training's.
    from spiralprune import configs, recording
    from spiralprune.study import prune

    config = configs.prune.get_config("smoke")
    full = prune.run(config, tmp_path / "full")      # the presets' default: full width
    with config.unlocked():
        config.compact = True
    calls = []
    real = compaction.run
    monkeypatch.setattr(compaction, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    comp = prune.run(config, tmp_path / "compacted")
    assert calls   # the compacted path ran
    key = ["stage", "chunk", "row"]
    comp, full = (df.sort_values(key).reset_index(drop=True) for df in (comp, full))
    assert set(comp["stage"]) == set(full["stage"])
    for col in ("seed", "budget", "nnz", "nnz_weights", "mask_nnz_weights", "effective_nnz"):
        np.testing.assert_array_equal(comp[col], full[col])
    np.testing.assert_allclose(comp["loss"], full["loss"], rtol=1e-4, atol=1e-6)
    assert np.sum(comp["accuracy"] != full["accuracy"]) <= 1
    stores = [recording.Store.open(tmp_path / name) for name in ("compacted", "full")]
    for i in range(len(comp)):
        a, b = (s.params_of(df.iloc[i]) for s, df in zip(stores, (comp, full)))
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=2e-5)
            assert np.all(a[name][b[name] == 0] == 0)
