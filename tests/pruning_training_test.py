"""Numerical oracles of the training-time pruners: GMP, RigL (during_training) and LTH (lottery).

Schedule numbers are the study's (docs/pruners.md: GMP, LTH, RigL); the training runs are tiny
(width 4 or 16, 640 points, batch 64: 10 steps per epoch).
"""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import masking, models, schedules, training
from spiralprune.pruning import during_training, lottery, selection


@pytest.fixture(scope="module")
def data(spiral_640):
    return spiral_640


def _spec(width=4, epochs=1, **kw):
    return training.Spec(widths=(width,) * 3, epochs=epochs, batch_size=64, **kw)


def _init(width, seed=0):
    params = models.init(jax.random.key(seed), width)
    return params, masking.ones_like(params)


def _counts(masks):
    return np.array([int(np.sum(masks[n]["kernel"])) for n in models.LAYERS])


# --- GMP ---


def test_gmp_schedule_matches_the_study():
    delta, n = during_training.gmp_delta(19_500)
    assert (delta, n) == (97, 199)
    events = during_training.gmp_event_steps(19_500)
    assert len(events) == 201 and events[0] == 97 and events[-1] == 201 * 97 == 19_497
    got = np.asarray(jax.jit(lambda f: during_training.gmp_targets(
        560, f, 19_500, reference_counts=True))(30))
    # docs/pruners.md, GMP: 552, 544, 536, ... 252 (k = 50), 95 (k = 100), 37 (k = 150),
    # 30 (k = 198, 199), 29 (k = 200, 201: the overshoot).
    assert list(got[:3]) == [552, 544, 536]
    assert (got[49], got[99], got[149]) == (252, 95, 37)
    assert list(got[197:]) == [30, 30, 29, 29]
    # Every event against the study's float64 Python formula, also under vmap (mixed budgets).
    want = [int(30 + 530 * (1 - t / (199 * 97)) ** 3) for t in events]
    np.testing.assert_array_equal(got, want)
    both = np.asarray(jax.jit(jax.vmap(lambda f: during_training.gmp_targets(560, f, 19_500)))(
        jnp.array([30, 65])))
    np.testing.assert_array_equal(both[0], np.maximum(want, 30))
    np.testing.assert_array_equal(
        both[1], [max(65, int(65 + 495 * (1 - t / (199 * 97)) ** 3)) for t in events])


@pytest.mark.parametrize("reference, final", [(False, 30), (True, 28)])
def test_gmp_events_on_fixed_weights_are_nested_and_end_at_the_budget(reference, final):
    """The 201 events of the study's schedule on distinct fixed magnitudes (N = 560, f = 30):
    exact mode ends at exactly f; reference mode reproduces the study's f - 2."""
    params, masks = _init(16)
    targets = during_training.gmp_targets(560, 30, 19_500, reference_counts=reference)

    def event(masks, target):
        new = during_training.gmp_prune(masking.apply(params, masks), masks, target,
                                        reference_counts=reference)
        return new, masking.flatten_kernels(new)

    last, hist = jax.jit(lambda m: jax.lax.scan(event, m, targets))(masks)
    hist = np.asarray(hist)
    assert not np.any(hist[1:] & ~hist[:-1]), "masks must be nested"
    assert hist[-1].sum() == final
    assert masking.nnz_weights(last) == final
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), last,
                                     masking.bias_rule(last)))


def test_gmp_training_is_nested_exact_and_keeps_pruned_weights_zero(data):
    spec = _spec(epochs=2)
    params, masks = _init(4)
    budget = 10
    out = jax.jit(lambda p: during_training.gmp(p, masks, data, jax.random.key(3), 0.1, 0,
                                                budget, spec, gmp_steps=4, history=True))(params)
    hist = np.asarray(out["mask_history"])
    # T = 20, n = 4: Delta = 4, events at t = 4, 8, 12, 16 with targets int(f + 34 (1 - k/4)^3).
    want = [max(budget, int(budget + 34 * (1 - k / 4) ** 3)) for k in range(1, 5)]
    np.testing.assert_array_equal(hist.sum(1), want)
    assert not np.any(hist[1:] & ~hist[:-1])
    for p, m in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(out["masks"])):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0)
    assert int(masking.nnz_weights(out["masks"])) == budget
    assert np.isfinite(out["train_loss"])


def test_gmp_without_events_is_plain_training(data):
    """A budget of N prunes nothing, so GMP's segmented loop equals training.train_epochs."""
    spec = _spec(epochs=2)
    params, masks = _init(4)
    n = models.num_weights(4)
    out = jax.jit(lambda p: during_training.gmp(p, masks, data, jax.random.key(3), 0.1, 1, n,
                                                spec, gmp_steps=4))(params)
    ref, _, loss = jax.jit(lambda p: training.train_epochs(
        p, training.optimizer(spec).init(p), masks, data, jax.random.key(3), 0.1, 1, spec))(params)
    for a, b in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["train_loss"], loss, rtol=1e-6)


# --- RigL ---


def test_rigl_schedule_and_drop_fraction():
    assert during_training.rigl_schedule(19_500, 100) == (14_625, 146)
    assert during_training.rigl_schedule(19_500, 200) == (14_625, 73)
    f = jax.jit(lambda s: during_training.rigl_drop_fraction(s, 14_625, 0.3))
    # RigL's drop fraction: 0.29997 at s = 100, 0.2215 at 5,000, 0.068 at 10,000, ~2e-6 at 14,600.
    np.testing.assert_allclose(f(100), 0.29997, rtol=2e-5)
    np.testing.assert_allclose(f(5000), 0.2215, rtol=2e-4)
    np.testing.assert_allclose(f(10_000), 0.06814, rtol=2e-3)
    assert abs(float(f(14_600))) < 1e-5


def _erk_oracle(width, budget):
    """ERK (google-research/rigl, power 1) + largest remainder in exact rational arithmetic."""
    shapes = models.layer_shapes(width)
    n = [i * o for i, o in shapes]
    p = [Fraction(i + o, i * o) for i, o in shapes]
    dense = set()
    while True:
        sparse = [l for l in range(4) if l not in dense]
        eps = Fraction(budget - sum(n[l] for l in dense)) / sum(p[l] * n[l] for l in sparse)
        top = max(p[l] for l in sparse)
        if eps * top <= 1:
            break
        dense |= {l for l in sparse if p[l] == top}
    real = [Fraction(n[l]) if l in dense else eps * p[l] * n[l] for l in range(4)]
    counts = [math.floor(r) for r in real]
    order = sorted(range(4), key=lambda l: (-(real[l] - counts[l]), l))  # ties: lower layer
    for l in order[:budget - sum(counts)]:
        counts[l] += 1
    return counts


def test_erk_counts_in_graph_are_the_exact_apportionment():
    # Real counts 30 * (18, 32, 32, 17) / 99 = (5.45, 9.70, 9.70, 5.15): exact (5, 10, 10, 5);
    # the study's rounding gives (6, 10, 10, 6) = 32 (docs/pruners.md, RigL).
    assert list(np.asarray(during_training.erk_counts(16, 30))) == [5, 10, 10, 5]
    for width in (3, 4, 5, 6, 7, 8, 16, 32, 256):
        n = models.num_weights(width)
        budgets = np.arange(1, n) if n < 700 else np.r_[1:70, n // 2, n - 100:n]
        got = np.asarray(jax.jit(jax.vmap(lambda b, w=width: during_training.erk_counts(w, b)))(
            jnp.asarray(budgets)))
        np.testing.assert_array_equal(got.sum(1), budgets)
        want = np.array([_erk_oracle(width, int(b)) for b in budgets])
        np.testing.assert_array_equal(got, want, err_msg=f"width {width}")
        # selection.erk_counts (float64) agrees except where remainders tie exactly and float
        # noise, not the lower layer, decides (e.g. width 5, budget 11: 77/33, 110/33, ...).
        host = np.array([selection.erk_counts(width, int(b)) for b in budgets])
        assert np.mean(np.all(host == want, axis=1)) > 0.9


def test_rigl_update_skips_the_step_zeroes_new_weights_and_their_momentum():
    params, _ = _init(8, seed=2)
    counts = during_training.erk_counts(8, 40)
    masks = during_training.rigl_init_masks(jax.random.key(5), masking.ones_like(params), counts)
    params = masking.apply(params, masks)
    spec = _spec(8)
    tx = training.optimizer(spec)
    # A momentum state with nonzero entries on every active parameter.
    grads = jax.tree.map(lambda p: jnp.sin(3.0 * p + 1.0), params)
    _, opt_state = tx.update(masking.apply(grads, masks), tx.init(params), params)
    dense_grads = jax.tree.map(lambda p: jnp.cos(7.0 * jnp.arange(p.size).reshape(p.shape)),
                               params)
    s, t_end = 100, 14_625  # drop fraction ~0.3: every layer drops and grows
    new_p, new_o, new_m = jax.jit(lambda p, o, m, g: during_training.rigl_update(
        p, o, m, g, s, t_end))(params, opt_state, masks, dense_grads)
    np.testing.assert_array_equal(_counts(new_m), np.asarray(counts))
    np.testing.assert_array_equal(_counts(masks), np.asarray(counts))
    assert not all(np.array_equal(new_m[n]["kernel"], masks[n]["kernel"]) for n in models.LAYERS)
    old_mom, new_mom = opt_state[1].trace, new_o[1].trace
    for name in models.LAYERS:
        for leaf in ("kernel", "bias"):
            old, new = np.asarray(masks[name][leaf]), np.asarray(new_m[name][leaf])
            p0, p1 = np.asarray(params[name][leaf]), np.asarray(new_p[name][leaf])
            m0, m1 = np.asarray(old_mom[name][leaf]), np.asarray(new_mom[name][leaf])
            born, kept = new & ~old, new & old
            assert np.all(p1[born] == 0) and np.all(m1[born] == 0)
            assert np.all(p1[~new] == 0) and np.all(m1[~new] == 0)
            # No optimizer step on the update step: surviving weights and momentum unchanged.
            np.testing.assert_array_equal(p1[kept], p0[kept])
            np.testing.assert_array_equal(m1[kept], m0[kept])
    # Drop by |W|: the n_keep largest active |W| of each layer survive (dropped ones may regrow).
    f_s = float(during_training.rigl_drop_fraction(s, t_end))
    for name in models.LAYERS:
        w = np.abs(np.asarray(params[name]["kernel"])).ravel()
        m = np.asarray(masks[name]["kernel"]).ravel()
        n_keep = m.sum() - int(m.sum() * f_s)
        top = np.argsort(-np.where(m, w, -1), kind="stable")[:n_keep]
        assert np.all(np.asarray(new_m[name]["kernel"]).ravel()[top])
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), new_m,
                                     masking.bias_rule(new_m)))


def test_rigl_with_zero_drop_is_training_that_skips_the_update_steps(data):
    """alpha = 0 keeps the masks; RigL then equals masked SGD with steps s = 3, 6 skipped."""
    spec = _spec(epochs=1)
    params, start = _init(4)
    lr, kind, budget = 0.1, schedules.index("cosine"), 20
    out = jax.jit(lambda p: during_training.rigl(
        p, start, data, jax.random.key(3), jax.random.key(4), lr, kind, budget, spec,
        delta=3, alpha=0.0))(params)
    masks = during_training.rigl_init_masks(jax.random.key(4), start,
                                            during_training.erk_counts(4, budget))
    p = masking.apply(params, masks)
    o = training.optimizer(spec).init(p)
    step = jax.jit(lambda p, o, t: training.sgd_step(
        p, o, masks, *training.batch(data, jax.random.key(3), 0, t, spec),
        training.epoch_lr(lr, kind, 0, spec), spec)[:2])
    t_end = int(0.75 * 10)
    for t in range(10):
        if (t + 1) % 3 == 0 and t + 1 < t_end:
            continue
        p, o = step(p, o, t)
    for a, b in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(p)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(_counts(out["masks"]), _counts(masks))


def test_rigl_training_keeps_erk_counts(data):
    spec = _spec(epochs=2)
    params, start = _init(4)
    out = jax.jit(lambda p: during_training.rigl(
        p, start, data, jax.random.key(3), jax.random.key(4), 0.2, 0, 25, spec,
        delta=2))(params)
    np.testing.assert_array_equal(_counts(out["masks"]), selection.erk_counts(4, 25))
    for p, m in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(out["masks"])):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0)


def test_rigl_reference_counts_are_the_studys_in_training(data):
    # The study's rigl-torch rounding at width 16, f = 30 is [6, 10, 10, 6] (exact: [5, 10, 10,
    # 5]); reference_counts=True trains with it, the budget traced, and drop-and-grow keeps it.
    ref = jax.jit(lambda b: during_training.reference_erk_counts(16, b))
    np.testing.assert_array_equal(ref(30), [6, 10, 10, 6])
    for f in (15, 30, 55, 200):
        np.testing.assert_array_equal(ref(f), selection.erk_counts(16, f, reference=True))
    spec = _spec(width=16, epochs=1)
    params, start = _init(16)
    out = jax.jit(lambda p: during_training.rigl(
        p, start, data, jax.random.key(3), jax.random.key(4), 0.2, 0, 30, spec, delta=2,
        reference_counts=True))(params)
    np.testing.assert_array_equal(_counts(out["masks"]), [6, 10, 10, 6])
    assert during_training.RIGL_ARGS["reference_counts"] is False   # exact by default
    from spiralprune.pruning import checks
    checks.check_method_args("rigl", {"reference_counts": True})   # a method argument


# --- LTH ---


def test_lth_counts_decide_exact_integers_without_libm():
    # (N, f) = (90, 40): round 2 keeps 90 * (4/9) ** 0.5 = 60 exactly in real arithmetic; a
    # libm pow one ulp low would truncate to 59. Every round against exact rationals: where
    # N (f/N)^(r/4) is irrational it is far from an integer, so int() of it is its floor.
    assert lottery.lth_counts(90, 40)[2] == 60
    from fractions import Fraction
    for n, f in [(90, 40), (560, 30), (27, 15), (609, 55)]:
        for r, got in enumerate(lottery.lth_counts(n, f)[1:], start=1):
            # floor(n (f/n)^(r/4)) = the largest k with k^4 <= n^4 (f/n)^r (exact integers)
            bound = Fraction(n) ** 4 * Fraction(f, n) ** r
            k = int(n * (f / n) ** (r / 4))
            k = max(k_ for k_ in (k - 1, k, k + 1) if Fraction(k_) ** 4 <= bound)
            assert got in (k, k - 1) if r == 4 else got == k, (n, f, r)


def test_lth_targets_match_the_study():
    np.testing.assert_array_equal(lottery.lth_targets(560, 30), [560, 269, 129, 62, 30])
    np.testing.assert_array_equal(lottery.lth_targets(44, 10, 3),
                                  [44, int(44 * math.sqrt(10 / 44)), 10])
    with pytest.raises(ValueError, match="lth_rounds"):
        lottery.lth_targets(44, 10, 1)


@pytest.mark.parametrize("reference", [False, True])
def test_lth_rewinds_to_init_under_the_mask_and_hits_the_budget(data, reference):
    spec = _spec(epochs=1)
    params0, masks0 = _init(4, seed=1)
    budget = 10
    out = jax.jit(lambda p: lottery.lth(p, masks0, data, jax.random.key(3), 0.1, 2, budget,
                                        spec, reference_counts=reference,
                                        history=True))(params0)
    targets = np.asarray(out["targets"])
    want = [int(44 * (10 / 44) ** (r / 4)) for r in range(5)]
    np.testing.assert_array_equal(targets[:-1], want[:-1])
    rm = out["round_masks"]
    counts = np.asarray(masking.nnz_weights(rm))  # per round (leading axis R)
    if reference:
        np.testing.assert_array_equal(counts, [44] + [t - 1 for t in targets[1:]])
    else:
        np.testing.assert_array_equal(counts, [44, *want[1:4], budget])
        assert int(masking.nnz_weights(out["masks"])) == budget
    flat = np.asarray(masking.flatten_kernels(rm))
    assert not np.any(flat[1:] & ~flat[:-1]), "masks must be nested"
    for r in range(5):
        masks_r = jax.tree.map(lambda a, r=r: a[r], rm)
        start_r = jax.tree.map(lambda a, r=r: a[r], out["round_params"])
        want_r = masking.apply(params0, masks_r)
        for a, b in zip(jax.tree.leaves(start_r), jax.tree.leaves(want_r)):
            np.testing.assert_array_equal(a, b)
    for p, m in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(out["masks"])):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0)


def test_lth_first_round_is_plain_training(data):
    """Round 0 is training.train_epochs from the init; later rounds restart the schedule."""
    spec = _spec(epochs=1)
    params0, masks0 = _init(4, seed=1)
    out = jax.jit(lambda p: lottery.lth(p, masks0, data, jax.random.key(3), 0.1, 1, 44, spec,
                                        rounds=2))(params0)
    # Budget N: the prune keeps everything, so round 1 trains the rewound dense init again,
    # with epoch 1's data order and the schedule restarted at its epoch 0.
    ref, _, _ = jax.jit(lambda p: training.train_epochs(
        p, training.optimizer(spec).init(p), masks0, data, jax.random.key(3), 0.1, 1, spec,
        first_epoch=1))(params0)
    for a, b in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
