"""The lanes engine against the vmap engine: same params and accuracies, member i alone,
masked weights exactly zero, hand-written gradients against jax.grad, engine choice."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import datasets, lanes, masking, models, populations, training

P = 32
# Few steps per epoch and an eval chunk that does not divide the data (a padded last chunk).
SPEC = training.Spec(widths=(3, 2, 2), epochs=3, eval_chunk=1000)


def _data(n=8192):
    x, y = datasets.cubist_spiral()
    sub = np.random.default_rng(1).choice(len(y), n, replace=False)
    return jnp.asarray(x[sub]), jnp.asarray(y[sub])


def _variants(p=P, widths=SPEC.widths, seed=0):
    rng = np.random.default_rng(seed)
    kernels = [rng.random((p,) + s) < 0.7 for s in models.layer_shapes(widths)]
    return populations.make_variants(masks=masking.from_kernels(kernels),
                                     lr=rng.choice([0.05, 0.1, 0.2], p),
                                     schedule=rng.integers(0, 3, p), seed=rng.integers(0, 999, p))


@pytest.fixture(scope="module")
def trained():
    data, v = _data(), _variants()
    out = {e: populations.run(v, data, spec=training.Spec(**{**vars(SPEC), "engine": e}))
           for e in ("vmap", "lanes")}
    return data, v, out


def test_engines_agree(trained):
    _, _, out = trained
    assert sorted(out["vmap"]) == sorted(out["lanes"])
    # The engines sum a unit's inputs in different orders, so params agree to float32 rounding
    # amplified by training. If a rounding difference flips a ReLU on some point (a
    # pre-activation within ~1e-7 of 0), that run's trajectory departs a little; allow 2 of 32
    # such runs, with accuracy within 2 points, and require every other run to agree tightly.
    close = np.ones(P, bool)
    vm, ln = out["vmap"]["params"], out["lanes"]["params"]
    for a, b in zip(jax.tree.leaves(vm), jax.tree.leaves(ln)):
        close &= np.all(np.abs(a - b) <= 1e-5 + 1e-4 * np.abs(a), axis=tuple(range(1, a.ndim)))
    assert np.sum(~close) <= 2, np.flatnonzero(~close)
    acc_v, acc_l = out["vmap"]["accuracy"], out["lanes"]["accuracy"]
    np.testing.assert_allclose(acc_l[close], acc_v[close], atol=1.5 / 8192)
    np.testing.assert_allclose(acc_l, acc_v, atol=0.02)
    for key in ("loss", "train_loss"):
        np.testing.assert_allclose(out["lanes"][key][close], out["vmap"][key][close], rtol=1e-4)
    for key in ("masks", "nnz_weights", "nnz", "diverged"):
        for a, b in zip(jax.tree.leaves(out["vmap"][key]), jax.tree.leaves(out["lanes"][key])):
            np.testing.assert_array_equal(a, b)
    # Not vacuous: the runs trained (moved away from chance) and differ from one another.
    assert np.max(acc_l) > 0.55 and len(set(np.round(out["lanes"]["loss"], 6))) == P


@pytest.mark.parametrize("n", [8192, 997])   # 997 is prime: cycle walking
def test_lanes_minibatches_are_each_runs_own_data_order(n):
    # lanes builds all runs' indices at once in the (B, P) layout; every column must be the
    # run's own ``datasets.batch_indices`` (the vmap engine's data order), at any epoch/step.
    x = jnp.arange(2 * n, dtype=jnp.float32).reshape(n, 2)
    y = jnp.asarray(np.arange(n) % 2, jnp.float32)
    seeds = [0, 5, 77, 4095]
    keys = jax.vmap(lambda s: training.run_keys(s)["data"])(jnp.array(seeds))
    for epoch, step in [(0, 0), (3, 2), (49, datasets.steps_per_epoch(n, 128) - 1)]:
        round_keys = lanes.epoch_keys(keys, epoch)
        (x0, x1), yb = jax.jit(lanes.batch, static_argnums=3)((x, y), round_keys, step, SPEC)
        for p, seed in enumerate(seeds):
            key = training.run_keys(seed)["data"]
            idx = np.asarray(datasets.batch_indices(key, epoch, step, n, 128))
            np.testing.assert_array_equal(np.asarray(x0[:, p]), 2 * idx)
            np.testing.assert_array_equal(np.asarray(x1[:, p]), 2 * idx + 1)
            np.testing.assert_array_equal(np.asarray(yb[:, p]), idx % 2)


def test_lane_groups_train_the_same_runs(trained):
    # A single CPU device trains its lanes in independent groups (populations sets
    # group_size). Each group must get its own lanes' keys, lrs, schedules and masks: one
    # group's slice taken for another would train other runs. P = 32 in groups of 8 (4 groups)
    # and 16 (2) against the ungrouped program. Lanes of other widths compile to other vector
    # code, so floats agree to rounding (a few 1e-7 after these 192 steps), not bit for bit;
    # a run trained with another run's settings would differ by ~0.1.
    data, v, out = trained
    spec = training.Spec(**{**vars(SPEC), "engine": "lanes"})
    ungrouped = jax.jit(lambda v, d: lanes.train_population(v, d, spec=spec))(v, data)
    for size in (8, 16):
        fn = jax.jit(lambda v, d, s=size: lanes.train_population(v, d, spec=spec, group_size=s))
        grouped = fn(v, data)
        for key in ungrouped:
            for a, b in zip(jax.tree.leaves(grouped[key]), jax.tree.leaves(ungrouped[key])):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=key)
    # Not vacuous: the runs differ from one another, so a mixed-up group would show.
    assert len(set(np.round(np.asarray(ungrouped["train_loss"]), 5))) > P // 2


def test_number_of_lane_groups():
    assert [lanes.num_groups(p, 256) for p in (64, 256, 288, 512, 768, 1024)] == [1, 1, 1, 2, 3, 4]
    assert lanes.num_groups(100, 32) == 2      # 3 groups would not be equal
    assert lanes.num_groups(512, None) == 1
    with pytest.raises(ValueError, match="equal groups"):
        lanes.train_epochs(None, None, None, (jnp.zeros((256, 2)), None), None, jnp.zeros(10),
                           None, SPEC, groups=3)


def test_masked_weights_are_exactly_zero(trained):
    _, v, out = trained
    params = out["lanes"]["params"]
    for p_leaf, m_leaf in zip(jax.tree.leaves(params), jax.tree.leaves(v.masks)):
        assert np.all(p_leaf[~m_leaf] == 0.0)
        assert np.all(p_leaf[m_leaf] != 0.0)


def test_member_equals_the_same_run_alone(trained):
    data, v, out = trained
    spec = training.Spec(**{**vars(SPEC), "engine": "lanes"})
    for i in (0, 7, 31):
        alone = populations.run(jax.tree.map(lambda a, i=i: a[i:i + 1], v), data, spec=spec)
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(out["lanes"])):
            np.testing.assert_allclose(a[0], b[i], rtol=1e-6, atol=1e-7)


def test_reporting_loss_equals_the_stable_bce():
    # lanes reports its losses with log1p(e) in Kahan's form; it must be the same function as
    # models.bce_with_logits to float32 rounding over the whole range of logits, both labels,
    # and propagate NaN and infinities the same way (a diverged run is found by its loss).
    z = np.concatenate([np.linspace(-120, 120, 4801), [0.0, 1e-8, -1e-8, 1e-3, -1e-3, 16.6,
                                                        17.4, -16.6, -17.4, 88.7, -88.7]])
    z = np.concatenate([z, -z]).astype(np.float32)
    for label in (0.0, 1.0):
        y = np.full_like(z, label)
        got = np.asarray(jax.jit(lanes.bce_with_logits)(z, y), np.float64)
        z64 = z.astype(np.float64)
        ref = np.logaddexp(0.0, z64 if label == 0 else -z64)   # float64 softplus(+-z)
        np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-37)
        old = np.asarray(jax.jit(models.bce_with_logits)(z, y), np.float64)
        np.testing.assert_allclose(got, old, rtol=1e-6, atol=1e-37)
        # Not vacuous: the small-loss tail (log1p(e) ~ e) is resolved, not rounded to 0.
        tail = (ref > 1e-30) & (ref < 1e-6)
        assert tail.sum() > 100 and np.all(got[tail] > 0)
    special = np.array([np.nan, np.inf, -np.inf], np.float32)
    for label in (0.0, 1.0):
        y = np.full_like(special, label)
        got = np.asarray(jax.jit(lanes.bce_with_logits)(special, y))
        old = np.asarray(jax.jit(models.bce_with_logits)(special, y))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(old))
        np.testing.assert_array_equal(got[~np.isnan(got)], old[~np.isnan(old)])


def test_hand_written_gradients_equal_autodiff():
    rng = np.random.default_rng(0)   # NumPy draws: eager JAX ops would each compile
    params = {name: {"kernel": jnp.asarray(rng.normal(size=(fi, fo, 5)), jnp.float32),
                     "bias": jnp.asarray(rng.normal(size=(fo, 5)), jnp.float32)}
              for name, (fi, fo) in zip(models.LAYERS, models.layer_shapes((4, 3, 2)))}
    inputs = list(jnp.asarray(rng.normal(size=(2, 16, 5)), jnp.float32))
    y = jnp.asarray(rng.random((16, 5)) > 0.5, jnp.float32)

    def total(params):
        logits = lanes.forward(params, inputs)[1][3][0]
        return jnp.sum(jnp.mean(models.bce_with_logits(logits, y), axis=0))

    @jax.jit
    def both(params):
        return (lanes.loss_and_grads(params, inputs, y), jax.value_and_grad(total)(params),
                lanes.loss_and_grads(params, inputs, y, with_loss=False)[1])

    (loss, grads), (ref_loss, ref_grads), grads_no_loss = both(params)
    np.testing.assert_allclose(jnp.sum(loss), ref_loss, rtol=1e-6)
    for a, b, c in zip(*map(jax.tree.leaves, (grads, ref_grads, grads_no_loss))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(c, b, rtol=1e-5, atol=1e-7)   # skipping the loss


def test_evaluation_matches_the_one_model_evaluation():
    data = _data(1500)
    rng = np.random.default_rng(3)
    params = {name: {"kernel": rng.normal(size=(4, fi, fo)), "bias": rng.normal(size=(4, fo))}
              for name, (fi, fo) in zip(models.LAYERS, models.layer_shapes((3, 3, 3)))}
    params["layer1"]["kernel"][3, 0, 0] = np.nan   # run 3 diverged
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    spec = training.Spec(widths=(3, 3, 3), eval_chunk=400)
    acc, loss = jax.jit(lambda p: lanes.evaluate(lanes.to_lanes(p), data, spec))(params)
    ref_acc, ref_loss = jax.jit(jax.vmap(lambda p: training.evaluate(p, data, spec)))(params)
    np.testing.assert_allclose(acc, ref_acc, atol=1e-7)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    # NaN logits predict class 0: the diverged run's accuracy is the share of class 0.
    assert acc[3] == pytest.approx(float(np.mean(np.asarray(data[1]) == 0)))
    assert np.isnan(loss[3])


def test_engine_choice_and_refusals():
    devs = jax.local_devices()
    for widths in ((3, 3, 3), (3, 2, 2), (6, 3, 2), (7, 3, 3)):
        assert populations.engine(training.Spec(widths=widths), devs) == "lanes"
    assert populations.engine(training.Spec(widths=16), devs) == "vmap"
    assert populations.engine(training.Spec(widths=(8, 8, 8), engine="lanes"), devs) == "lanes"
    assert populations.engine(training.Spec(widths=3, engine="vmap"), devs) == "vmap"
    gmp = training.Spec(widths=3, method="gmp", engine="auto")
    assert populations.engine(gmp, devs) == "vmap"
    with pytest.raises(ValueError, match="cannot run method 'gmp'.*engines that can: vmap"):
        populations.engine(training.Spec(widths=3, method="gmp", engine="lanes"), devs)
    with pytest.raises(ValueError, match=r"cannot run widths \(16, 16, 16\).*can: vmap"):
        populations.run(_variants(2, (16, 16, 16)), _data(256),
                        spec=training.Spec(widths=16, engine="lanes"))
    with pytest.raises(ValueError, match="unknown engine"):
        training.Spec(engine="pallas")
    if devs[0].platform == "cpu":   # lanes chunks stay small enough for the cache on a CPU
        chunk = populations.auto_chunk(training.Spec(widths=3), 10**6, devs)
        assert chunk == populations.LANES_CPU_CHUNK * len(devs)
        assert populations.auto_chunk(training.Spec(widths=3, engine="vmap"), 10**6, devs) > chunk


def test_cpu_compile_options_go_to_lanes_only_and_only_when_xla_knows_them():
    cpu = jax.local_devices(backend="cpu")
    options = populations.compiler_options("lanes", cpu)
    assert options in ({}, lanes.CPU_COMPILER_OPTIONS)   # {} only on an XLA without them
    assert populations.compiler_options("vmap", cpu) == {}
    # An option this XLA does not know is dropped, not a compile error for the user.
    assert populations._known_options((("xla_cpu_no_such_option_here", 1),), cpu[0]) == {}
    assert populations._known_options(tuple(sorted(lanes.CPU_COMPILER_OPTIONS.items())),
                                      cpu[0]) == options
