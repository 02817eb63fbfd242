"""Pruning at initialisation and ProsPr: numerical oracles and the pruner contract."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import datasets, masking, models
from spiralprune.pruning import at_init, prospr, scores, selection

WIDTHS = (3, 4, 2)  # N = 6 + 12 + 8 + 2 = 28


try:  # a context manager: jax.enable_x64 in newer JAX, jax.experimental.enable_x64 before
    enable_x64 = jax.enable_x64
except AttributeError:
    from jax.experimental import enable_x64


@pytest.fixture(scope="module")
def data(spiral):
    return jnp.asarray(spiral[0]), jnp.asarray(spiral[1])


def key(seed):
    return jax.random.key(seed)


def params64(seed, widths=WIDTHS):
    p = models.init(key(seed), widths)
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), p)


def small_batch(data, size=16, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.choice(data[0].shape[0], size, replace=False)
    return np.asarray(data[0])[idx].astype(np.float64), np.asarray(data[1])[idx].astype(np.float64)


def central_diff(f, w, eps=1e-6):
    w = np.asarray(w, np.float64)
    out = np.zeros_like(w)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = eps
        out[i] = (float(f(jnp.asarray(w + e))) - float(f(jnp.asarray(w - e)))) / (2 * eps)
    return out


# --- numerical oracles (float64) ---

def test_snip_scores_equal_finite_difference_saliency(data):
    with enable_x64():
        p = params64(0)
        x, y = small_batch(data)
        w = masking.flatten_kernels(p)
        loss_w = jax.jit(lambda v: models.loss(masking.unflatten_kernels(v, p), x, y))
        g = central_diff(loss_w, w)
        got = jax.jit(scores.snip)(None, p, None, (jnp.asarray(x), jnp.asarray(y)))
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, np.abs(g * np.asarray(w)), rtol=1e-6, atol=1e-10)


def test_grasp_hg_equals_explicit_hessian_times_gradient(data):
    with enable_x64():
        p = params64(1)
        x, y = small_batch(data, 50, seed=1)
        t = 200.0

        def loss_w(v):  # the original's objective: sum over the two halves of the mean BCE
            q = masking.unflatten_kernels(v, p)
            z = models.apply(q, jnp.asarray(x)) / t
            b = models.bce_with_logits(z, jnp.asarray(y))
            return jnp.mean(b[:25]) + jnp.mean(b[25:])

        w = masking.flatten_kernels(p)
        g_ref = jax.jit(jax.grad(loss_w))(w)
        hg_ref = jax.jit(jax.hessian(loss_w))(w) @ g_ref
        batch = (jnp.asarray(x), jnp.asarray(y))
        g, hg = jax.jit(scores.grasp_gradients)(p, None, batch, t)
        np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-16)
        np.testing.assert_allclose(hg, hg_ref, rtol=1e-8, atol=1e-18)
        np.testing.assert_allclose(jax.jit(scores.grasp)(None, p, None, batch, t),
                                   np.asarray(w) * np.asarray(hg_ref), rtol=1e-8, atol=1e-20)


def numpy_synflow(p, masks):
    """Closed form with float64 NumPy recursions (independent of scores.synflow)."""
    ws = [np.abs(np.asarray(p[n]["kernel"], np.float64) * np.asarray(masks[n]["kernel"]))
          for n in models.LAYERS]
    bs = [np.abs(np.asarray(p[n]["bias"], np.float64) * np.asarray(masks[n]["bias"]))
          for n in models.LAYERS]
    a = [np.ones(2)]
    for l in range(4):
        a.append(a[l] @ ws[l] + bs[l])
    r = [None, None, None, np.ones(1)]
    for l in (3, 2, 1):
        r[l - 1] = ws[l] @ r[l]
    return np.concatenate([(ws[l] * np.outer(a[l], r[l])).ravel() for l in range(4)])


def test_synflow_closed_form_numpy_and_autodiff():
    with enable_x64():
        p = params64(2)
        rng = np.random.default_rng(2)
        keep = jnp.asarray(rng.random(models.num_weights(WIDTHS)) < 0.6)
        masks = selection.to_masks(keep, p)
        got = jax.jit(scores.synflow)(None, p, masks)
        np.testing.assert_allclose(got, numpy_synflow(p, masks), rtol=1e-12)

        lin = jax.tree.map(jnp.abs, masking.apply(p, masks))

        def flow(v):
            return jnp.sum(models.apply(masking.unflatten_kernels(v, lin), jnp.ones((1, 2))))

        w = masking.flatten_kernels(lin)
        np.testing.assert_allclose(got, jnp.abs(w * jax.jit(jax.grad(flow))(w)), rtol=1e-12)


def meta_loss_first_gradient_frozen(c, p, batches, lr, mu=0.9):
    """The meta loss with g_0 a constant (its value at c = 1), plain unrolled momentum SGD."""
    xs, ys = batches
    g0 = jax.grad(models.loss)(p, xs[0], ys[0])  # theta_0 = W at c = 1: a constant
    theta = masking.unflatten_kernels(masking.flatten_kernels(p) * c, p)
    v = g0
    theta = jax.tree.map(lambda a, b: a - lr * b, theta, v)
    for t in range(1, xs.shape[0] - 1):
        g = jax.grad(models.loss)(theta, xs[t], ys[t])
        v = jax.tree.map(lambda a, b: mu * a + b, v, g)
        theta = jax.tree.map(lambda a, b: a - lr * b, theta, v)
    return models.loss(theta, xs[-1], ys[-1])


def test_prospr_meta_gradient_detaches_the_first_momentum_buffer(data):
    # The study's functional_sgd starts the momentum buffer as clone(g_0).detach(): the
    # meta-gradient is the derivative of the meta loss with g_0 held constant. Finite
    # differences (float64) of that function agree; those of the plain meta loss (gradient
    # through g_0 too) differ, so a version that differentiates through g_0 fails here.
    with enable_x64():
        p = params64(3)
        xb, yb = zip(*[small_batch(data, 16, seed=s) for s in range(4)])
        batches = (jnp.asarray(np.stack(xb)), jnp.asarray(np.stack(yb)))
        lr = 0.2
        n = models.num_weights(WIDTHS)
        frozen = jax.jit(lambda c: meta_loss_first_gradient_frozen(c, p, batches, lr))
        fd = central_diff(frozen, np.ones(n), eps=1e-5)
        got = np.asarray(jax.jit(prospr.meta_gradient)(p, batches, lr))
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-10)
        assert np.max(np.abs(got)) > 0
        full = central_diff(jax.jit(lambda c: prospr.meta_loss(c, p, batches, lr)), np.ones(n),
                            eps=1e-5)
        assert np.max(np.abs(full - got)) > 1e-3 * np.max(np.abs(got))
        # Two inner steps as well (g_0 frozen, g_1 differentiated).
        two = (batches[0][:3], batches[1][:3])
        fd2 = central_diff(jax.jit(lambda c: meta_loss_first_gradient_frozen(c, p, two, lr)),
                           np.ones(n), eps=1e-5)
        np.testing.assert_allclose(jax.jit(prospr.meta_gradient)(p, two, lr), fd2, rtol=1e-6,
                                   atol=1e-10)


def test_prospr_unroll_is_momentum_sgd_without_weight_decay(data):
    with enable_x64():
        p = params64(4)
        xb, yb = zip(*[small_batch(data, 8, seed=s) for s in range(3)])
        xs, ys = jnp.asarray(np.stack(xb)), jnp.asarray(np.stack(yb))
        lr, mu = 0.1, 0.9
        theta, v = jax.tree.map(np.asarray, p), None
        for t in range(2):  # PyTorch SGD: v_0 = g_0, v_t = mu v_{t-1} + g_t; wd = 0
            g = jax.tree.map(np.asarray, jax.jit(jax.grad(models.loss))(theta, xs[t], ys[t]))
            v = g if v is None else jax.tree.map(lambda a, b: mu * a + b, v, g)
            theta = jax.tree.map(lambda a, b: a - lr * b, theta, v)
        want = jax.jit(models.loss)(theta, xs[2], ys[2])
        got = jax.jit(prospr.meta_loss)(jnp.ones(models.num_weights(WIDTHS)), p, (xs, ys), lr, mu)
        np.testing.assert_allclose(got, want, rtol=1e-12)


# --- data drawing ---

def test_balanced_batch_first_of_each_class_in_permutation_order(data):
    n = data[0].shape[0]
    xb, yb = at_init.balanced_batch(key(5), data)
    pos = np.asarray(datasets.permute(key(5), jnp.arange(n), n))
    labels = np.asarray(data[1])[pos]
    want = np.concatenate([pos[labels == 0][:25], pos[labels == 1][:25]])
    np.testing.assert_array_equal(yb, np.repeat([0.0, 1.0], 25))
    np.testing.assert_array_equal(xb, np.asarray(data[0])[want])


# --- Iter SNIP nested, FORCE revivable ---

def test_iter_snip_masks_nested_and_schedule(data):
    p = models.init(key(6), 16)
    n, k = models.num_weights(16), 30
    masks, hist = jax.jit(functools.partial(at_init.progressive, variant="iter_snip"))(
        key(7), p, data, k)
    hist = np.asarray(hist)
    counts = hist.sum(1)
    np.testing.assert_array_equal(counts, [int(n * (k / n) ** (t / 10)) for t in range(1, 10)]
                                  + [k])  # 417, 311, ..., 40, 30: N (f/N)^(t/10), exactly f
    assert np.all(hist[1:] <= hist[:-1])  # nested
    np.testing.assert_array_equal(masking.flatten_kernels(masks), hist[-1])


def test_force_revives_pruned_weights(data):
    p = models.init(key(8), 16)
    _, hist = jax.jit(functools.partial(at_init.progressive, variant="force"))(key(9), p, data, 30)
    hist = np.asarray(hist)
    revived = (hist[1:] & ~hist[:-1]).sum()
    assert revived > 0  # FORCE selects from all N, not within the previous mask


def test_force_score_constructed_revival(data):
    # A pruned weight with a large dense value and a live path gets the top FORCE saliency,
    # while its Iter SNIP saliency is 0.
    p = models.init(key(10), 4)
    p["layer1"]["kernel"] = p["layer1"]["kernel"].at[0, 0].set(50.0)
    p["layer0"]["bias"] = p["layer0"]["bias"].at[0].set(3.0)  # unit 0 of layer 0 active
    keep = np.ones(models.num_weights(4), bool)
    idx = 8  # flat index of layer1 kernel [0, 0] (layer0 kernel has 2 * 4 = 8 entries)
    keep[idx] = False
    masks = selection.to_masks(jnp.asarray(keep), p)
    batch = jax.jit(at_init.draw_batch, static_argnums=2)(key(11), data, 128)
    f = jax.jit(scores.force)(None, p, masks, batch)
    assert int(jnp.argmax(f)) == idx and float(f[idx]) > 0
    assert float(jax.jit(scores.iter_snip)(None, p, masks, batch)[idx]) == 0.0
    new = selection.topk_mask(f, 5)
    assert bool(new[idx])


def numpy_kernel_grads(p, x, y):
    """Float64 NumPy forward and backward of the mean BCE: the four kernel gradients."""
    ws = [np.asarray(p[n]["kernel"], np.float64) for n in models.LAYERS]
    bs = [np.asarray(p[n]["bias"], np.float64) for n in models.LAYERS]
    hs, zs = [x], []
    for i, (w, b) in enumerate(zip(ws, bs)):
        zs.append(hs[-1] @ w + b)
        hs.append(np.maximum(zs[-1], 0) if i < 3 else zs[-1])
    delta = ((1 / (1 + np.exp(-hs[-1][:, 0]))) - y)[:, None] / len(y)
    grads = [None] * 4
    for i in range(3, -1, -1):
        grads[i] = hs[i].T @ delta
        if i:
            delta = (delta @ ws[i].T) * (zs[i - 1] > 0)
    return grads


def test_force_scores_with_kernels_masked_and_biases_dense(data):
    # Unit 0 of layer 0 loses every outgoing weight, so the bias rule masks its bias, but the
    # study's FORCE zeroes only kernels while scoring: the unit still feeds relu(x w + b) into
    # the gradients of its pruned outgoing weights, which FORCE scores with the dense weights.
    with enable_x64():
        p = params64(12)
        p["layer0"]["bias"] = p["layer0"]["bias"].at[0].set(2.0)
        keep = np.ones(models.num_weights(WIDTHS), bool)
        keep[6:10] = False  # layer1 kernel row 0 (layer0 has 2 * 3 = 6 entries)
        keep[[1, 15, 23]] = False
        masks = selection.to_masks(jnp.asarray(keep), p)
        assert not bool(masks["layer0"]["bias"][0])
        x, y = small_batch(data, 32, seed=3)
        w0 = np.asarray(masking.flatten_kernels(p))
        kernels_only = jax.tree.map(np.asarray, p)
        for name in models.LAYERS:
            kernels_only[name]["kernel"] = np.where(masks[name]["kernel"],
                                                    kernels_only[name]["kernel"], 0.0)
        want = np.abs(w0 * np.concatenate(
            [g.ravel() for g in numpy_kernel_grads(kernels_only, x, y)]))
        got = np.asarray(jax.jit(scores.force)(None, p, masks, (jnp.asarray(x), jnp.asarray(y))))
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
        # Masking the bias too would change exactly the pruned row's saliencies.
        both = jax.tree.map(np.asarray, masking.apply(p, masks))
        other = np.abs(w0 * np.concatenate([g.ravel() for g in numpy_kernel_grads(both, x, y)]))
        # (Here two of the row's downstream units are dead on the batch: 0 in both.)
        changed = np.flatnonzero(np.abs(other - want) > 1e-3 * want)
        np.testing.assert_array_equal(changed, [8, 9])


# --- the contract every pruner passes ---

PRUNERS = {
    "snip": lambda kk, p, d, k: at_init.snip(kk, p, d, k),
    "grasp": lambda kk, p, d, k: at_init.grasp(kk, p, d, k),
    "synflow": lambda kk, p, d, k: at_init.synflow(p, k),
    "iter_snip": lambda kk, p, d, k: at_init.iterative_snip(kk, p, d, k),
    "force": lambda kk, p, d, k: at_init.force(kk, p, d, k),
    "random": lambda kk, p, d, k: at_init.random(kk, p, k),
    "prospr": lambda kk, p, d, k: prospr.prospr(kk, p, d, k, 0.1),
}


@pytest.mark.parametrize("name", list(PRUNERS))
def test_pruner_contract(name, data):
    fn = PRUNERS[name]
    budgets = jnp.array([3, 11, 25], jnp.int32)
    params = jax.vmap(lambda kk: models.init(kk, 4))(jax.random.split(key(12), 3))
    masks = jax.jit(jax.vmap(fn, in_axes=(0, 0, None, 0)))(
        jax.random.split(key(13), 3), params, data, budgets)
    np.testing.assert_array_equal(masking.nnz_weights(masks), budgets)
    assert jax.tree.structure(masks) == jax.tree.structure(params)
    for m, p in zip(jax.tree.leaves(masks), jax.tree.leaves(params)):
        assert m.dtype == bool and m.shape == p.shape
    for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(masking.bias_rule(masks))):
        np.testing.assert_array_equal(a, b)
    alone = jax.jit(fn)
    for i in range(3):
        member = alone(jax.random.split(key(13), 3)[i], jax.tree.map(lambda a, i=i: a[i], params),
                       data, budgets[i])
        for a, b in zip(jax.tree.leaves(member), jax.tree.leaves(masks)):
            np.testing.assert_array_equal(a, b[i])


def test_random_layerwise_counts():
    p = models.init(key(14), 8)
    counts = jnp.asarray(selection.erk_counts(8, 30))
    masks = jax.jit(at_init.random_layerwise)(key(15), p, counts)
    got = [int(masks[n]["kernel"].sum()) for n in models.LAYERS]
    np.testing.assert_array_equal(got, counts)


# --- reference counts (the study's off-by-one counts at N = 560, f = 30) ---

def test_reference_counts_width16_f30(data):
    want = {"snip": 30, "grasp": 30, "synflow": 29, "prospr": 31}
    p = models.init(key(16), 16)
    fns = {
        "snip": lambda kk: at_init.snip(kk, p, data, 30, reference_counts=True),
        "grasp": lambda kk: at_init.grasp(kk, p, data, 30, reference_counts=True),
        "synflow": lambda kk: at_init.synflow(p, 30, reference_counts=True),
        "prospr": lambda kk: prospr.prospr(kk, p, data, 30, 0.1, reference_counts=True),
    }
    got = {name: int(masking.nnz_weights(jax.jit(f)(key(17)))) for name, f in fns.items()}
    assert got == want


@pytest.mark.parametrize("variant", ["iter_snip", "force"])
def test_reference_progressive_matches_numpy_transcription(variant, data):
    # Zero saliencies (units dead on the batch) tie at the threshold here, so the counts are
    # not simply k_t - 1: compare with a NumPy transcription of FORCE.py's loop instead. As
    # there, the net is sparsified by zeroing kernels only (biases stay dense while scoring).
    p = models.init(key(19), 16)
    fn = functools.partial(at_init.progressive, variant=variant, reference_counts=True)
    _, hist = jax.jit(fn)(key(18), p, data, 30)
    hist = np.asarray(hist)
    n, f = 560, 30
    grad = jax.jit(scores.kernel_grad)
    w0 = np.asarray(masking.flatten_kernels(p))
    keep = np.ones(n, bool)
    counts = selection.force_counts(n, f)  # int(n * exp(...)), correctly rounded exp/log
    for x in range(10):
        batch = at_init.draw_batch(jax.random.fold_in(key(18), x), data, 128)
        kernels = masking.unflatten_kernels(jnp.asarray(np.where(keep, w0, 0)), p)  # biases kept
        g = np.asarray(grad(kernels, batch))
        s = np.abs((w0 * keep if variant == "iter_snip" else w0) * g)
        if variant == "iter_snip" and x > 0:
            s[~keep] = s.min()
        thr = np.sort(s)[::-1][counts[x] - 1]  # torch.topk(s, k)[0][-1]
        keep = s > thr
        np.testing.assert_array_equal(hist[x], keep)
    assert keep.sum() <= f - 1
