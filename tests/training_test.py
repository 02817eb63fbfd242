import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import datasets, masking, models, populations, schedules, training


def _np_forward_backward(params, masks, x, y):
    """Float64 forward and manual backprop of mean BCE; PyTorch semantics (no grad masking)."""
    hs, pre = [x], []
    h = x
    for i, name in enumerate(models.LAYERS):
        w = params[name]["kernel"] * masks[name]["kernel"]
        b = params[name]["bias"] * masks[name]["bias"]
        z = h @ w + b
        pre.append(z)
        h = np.maximum(z, 0) if i < 3 else z
        hs.append(h)
    logits = h[:, 0]
    loss = np.mean(np.logaddexp(0, logits) - y * logits)
    delta = ((1 / (1 + np.exp(-logits))) - y)[:, None] / len(y)
    grads = {}
    for i in reversed(range(4)):
        name = models.LAYERS[i]
        grads[name] = {"kernel": hs[i].T @ delta, "bias": delta.sum(0)}
        if i:
            w = params[name]["kernel"] * masks[name]["kernel"]
            delta = (delta @ w.T) * (pre[i - 1] > 0)
    return loss, grads


def test_sgd_matches_float64_pytorch_semantics():
    """A few epochs of masked SGD against a NumPy float64 re-implementation of torch.optim.SGD."""
    x, y = datasets.cubist_spiral()
    rng = np.random.default_rng(0)
    sub = rng.choice(len(y), 512, replace=False)
    data = (jnp.asarray(x[sub]), jnp.asarray(y[sub]))
    spec = training.Spec(widths=(4, 3, 5), epochs=3, milestones=(1, 2), cosine_t_max=3)
    params = models.init(jax.random.key(0), spec.widths)
    masks = masking.ones_like(params)
    masks["layer1"]["kernel"] = jnp.asarray(rng.random((4, 3)) < 0.6)
    masks["layer2"]["kernel"] = jnp.asarray(rng.random((3, 5)) < 0.6)
    masks = masking.bias_rule(masks)
    data_key = jax.random.key(7)
    lr, kind = 0.2, schedules.index("step")

    p0 = masking.apply(params, masks)
    got, _, _ = jax.jit(lambda p: training.train_epochs(
        p, training.optimizer(spec).init(p), masks, data, data_key, lr, kind, spec))(p0)

    ref = jax.tree.map(lambda a: np.asarray(a, np.float64), p0)
    m = jax.tree.map(np.asarray, masks)
    buf = jax.tree.map(np.zeros_like, ref)
    for epoch in range(3):
        lr_e = lr * 0.1 ** sum(epoch >= mm for mm in (1, 2))
        for step in range(4):
            idx = np.asarray(datasets.batch_indices(data_key, epoch, step, 512, 128))
            _, g = _np_forward_backward(ref, m, np.float64(data[0])[idx], np.float64(data[1])[idx])
            for name in models.LAYERS:
                for leaf in ("kernel", "bias"):
                    d_p = g[name][leaf] + 5e-4 * ref[name][leaf]
                    buf[name][leaf] = 0.9 * buf[name][leaf] + d_p
                    ref[name][leaf] = (ref[name][leaf] - lr_e * buf[name][leaf]) * m[name][leaf]
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    # And the step actually moved the weights (the oracle is not comparing two no-ops).
    assert max(float(np.abs(a - b).max()) for a, b in
               zip(jax.tree.leaves(got), jax.tree.leaves(p0))) > 1e-2


def test_lr_schedules():
    f = lambda kind, e: float(schedules.lr_factor(schedules.index(kind), e))  # noqa: E731
    assert [f("constant", e) for e in (0, 49)] == [1.0, 1.0]
    np.testing.assert_allclose([f("cosine", e) for e in (0, 25, 49)],
                               [1.0, 0.5, (1 + np.cos(np.pi * 49 / 50)) / 2], rtol=1e-6)
    np.testing.assert_allclose([f("step", e) for e in (0, 14, 15, 29, 30, 49)],
                               [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown lr schedule"):
        schedules.index("linear")


def _small_data(n=640):
    x, y = datasets.cubist_spiral()
    sub = np.random.default_rng(1).choice(len(y), n, replace=False)
    return jnp.asarray(x[sub]), jnp.asarray(y[sub])


def test_compacted_training_equals_block_masked_training():
    data = _small_data()
    config = (3, 2, 4)
    wide = training.Spec(widths=(6, 6, 6), epochs=2)
    small = dataclasses.replace(wide, widths=config)
    params = models.init(jax.random.key(4), 6)
    block = masking.block_masks(config, 6)
    opt = training.optimizer(wide)

    def train(p, m, spec):
        p = masking.apply(p, m)
        return training.train_epochs(p, opt.init(p), m, data, jax.random.key(5), 0.1, 1, spec)[0]

    got_wide = jax.jit(train, static_argnums=2)(params, block, wide)
    got_small = jax.jit(train, static_argnums=2)(
        masking.compact(params, config), masking.ones_like(masking.compact(params, config)), small)
    for a, b in zip(jax.tree.leaves(masking.compact(got_wide, config)),
                    jax.tree.leaves(got_small)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Outside the block the wide model stays exactly zero.
    assert int(masking.nnz(got_wide)) <= int(masking.nnz(block))


def test_chunked_evaluation_equals_unchunked():
    data = _small_data(1000)
    params = models.init(jax.random.key(0), 5)
    accs = [training.evaluate(params, data, training.Spec(widths=5, eval_chunk=c))
            for c in (1000, 64, 333, 4096)]
    for acc, loss in accs[1:]:
        np.testing.assert_allclose(acc, accs[0][0], rtol=1e-6)
        np.testing.assert_allclose(loss, accs[0][1], rtol=1e-5)
    logits = models.apply(params, data[0])
    np.testing.assert_allclose(accs[0][0], np.mean((logits > 0) == (data[1] > 0.5)), rtol=1e-6)


def test_masked_entries_zero_after_training_and_divergence_is_contained():
    data = _small_data()
    spec = training.Spec(widths=(4, 4, 4), epochs=2)
    rng = np.random.default_rng(0)
    p = 4
    kernels = [rng.random((p,) + s) < 0.5 for s in models.layer_shapes(4)]
    masks = masking.from_kernels([jnp.asarray(k) for k in kernels])
    # Run 2 uses a huge learning rate and diverges to NaN; the others must not notice.
    lrs = np.array([0.1, 0.05, 1e30, 0.1], np.float32)
    v = populations.make_variants(masks=masks, lr=lrs, schedule=[0, 1, 2, 0], seed=[0, 1, 2, 3])
    out = populations.run(v, data, spec=spec)
    assert bool(out["diverged"][2]) and not out["diverged"][[0, 1, 3]].any()
    assert np.isfinite(out["accuracy"]).all()
    for leaf, m in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(out["masks"])):
        assert np.all(leaf[~m] == 0)
    alone = populations.run(jax.tree.map(lambda a: a[[0, 1, 3]], v), data, spec=spec)
    np.testing.assert_allclose(alone["accuracy"], out["accuracy"][[0, 1, 3]], rtol=1e-6)


def test_seeded_short_runs_reproduce_their_accuracy():
    """Fixed seeds give the same accuracy on every machine, to a tolerance, not bit for bit.

    Four dense width-8 runs, 2 epochs on the full spiral (seeds 0..3, constant lr 0.02 / 0.05).
    The expected values were measured on an Intel Xeon. Float32 sums are not associative and
    XLA picks its summation order (vector width, blocking) per CPU, so another vendor's CPU
    trains slightly different numbers from the same seeds. Perturbing these initial weights by
    a relative 2e-7 (about one float32 ulp) moved the accuracies by at most 0.003, so
    +-0.02 leaves room for that drift, while a changed seed, data order, initialisation or
    optimizer moves them by more (seeds 0 and 2 at the same lr: 0.549 and 0.587).
    """
    x, y = datasets.cubist_spiral()
    spec = training.Spec(widths=(8, 8, 8), epochs=2)
    lrs = [0.02, 0.05, 0.02, 0.05]
    ones = masking.ones_like(models.init(jax.random.key(0), 8))
    masks = jax.tree.map(lambda a: jnp.broadcast_to(a, (4,) + a.shape), ones)
    v = populations.make_variants(masks=masks, lr=lrs, schedule=[schedules.index("constant")] * 4,
                                  seed=[0, 1, 2, 3])
    out = populations.run(v, (jnp.asarray(x), jnp.asarray(y)), spec=spec)
    np.testing.assert_allclose(out["accuracy"], [0.5488, 0.6951, 0.5866, 0.5670], atol=0.02)
