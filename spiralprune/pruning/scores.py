"""Score functions of the pruning-at-initialisation methods, for ONE model.

Every score function has the signature ``(key, params, masks, batch, ...) -> (N,)``: a flat
float vector over the N kernel entries in ``masking.flatten_kernels`` order (layer 0..3, each
(in, out) kernel row-major), LARGER = more worth keeping, ready for ``selection.topk_mask``.
``key`` is used only by ``random`` (the others accept and ignore it, so a registry can call
them uniformly); ``masks`` (or None = dense) is the current masks tree; ``batch`` is ``(x, y)``
with x (B, 2) and y (B,). Biases are never scored.

Scores are evaluated at the masked parameters ``masking.apply(params, masks)``, kernels and
biases, except FORCE's. A bias masked by the bias rule belongs to a unit whose outgoing kernel
entries are all pruned: it changes neither the loss nor the gradient of any KEPT kernel entry,
but it does change the gradient of the pruned outgoing entries (their gradient is the unit's
activation, which includes its bias, times the downstream error). SNIP, Iter SNIP and GraSP
multiply the gradient by the masked weights, so those entries score 0 either way; FORCE
multiplies it by the DENSE weights and can revive them, so it scores as the study's code does:
kernels masked, biases dense (``_masked_kernels``).
"""

import jax
import jax.numpy as jnp

from spiralprune import base, masking, models

Batch = tuple[jax.Array, jax.Array]


def _masked(params: base.Params, masks: base.Masks | None) -> base.Params:
    return params if masks is None else masking.apply(params, masks)


def _masked_kernels(params: base.Params, masks: base.Masks | None) -> base.Params:
    # Zeroes the masked kernel entries only; every bias stays as it is (dense).
    if masks is None:
        return params
    return {name: {"kernel": jnp.where(masks[name]["kernel"], params[name]["kernel"], 0),
                   "bias": params[name]["bias"]} for name in models.LAYERS}


def kernel_grad(params: base.Params, batch: Batch, temperature: float = 1.0) -> jax.Array:
    """Flat (N,) gradient of the mean BCE (logits / temperature) w.r.t. the kernels."""
    x, y = batch

    def loss_w(w):
        p = masking.unflatten_kernels(w, params)
        return jnp.mean(models.bce_with_logits(models.apply(p, x) / temperature, y))

    return jax.grad(loss_w)(masking.flatten_kernels(params))


def magnitude(key, params: base.Params, masks: base.Masks | None = None, batch=None):
    """|W| of the masked kernels (GMP, LTH). Returns (N,).

    References: Zhu & Gupta 2017 (GMP); Frankle & Carbin 2019 (LTH); stephenqz/sparsest
    pruning_methods/Magnitude.py; facebookresearch/open_lth pruning/sparse_global.py.
    """
    del key, batch
    return jnp.abs(masking.flatten_kernels(_masked(params, masks)))


def random(key: base.PRNGKey, params: base.Params, masks=None, batch=None) -> jax.Array:
    """Uniform [0, 1) scores from ``key``: top-k of them is a uniform random k-subset.

    References: ganguli-lab/Synaptic-Flow ``Rand``; naver/force method 4 (``rand_like``).
    """
    del masks, batch
    n = models.num_weights(models.widths_of(params))
    return jax.random.uniform(key, (n,), jnp.float32)


def snip(key, params: base.Params, masks: base.Masks | None, batch: Batch) -> jax.Array:
    """SNIP connection sensitivity |g ⊙ W| at the masked params (= |dL(W ⊙ c)/dc| at c = 1).

    Also the Iter SNIP saliency |(W ⊙ M) ⊙ g(W ⊙ M)| when ``masks`` is the current mask: pruned
    weights score exactly 0. The original divides by the sum, which does not change the order.

    References: Lee et al. 2019, SNIP; stephenqz/sparsest pruning_methods/SNIP.py; mil-ad/snip.

    Returns:
      (N,) scores.
    """
    del key
    p = _masked(params, masks)
    return jnp.abs(kernel_grad(p, batch) * masking.flatten_kernels(p))


iter_snip = snip


def force(key, params: base.Params, masks: base.Masks | None, batch: Batch) -> jax.Array:
    """FORCE saliency |W₀ ⊙ g(W₀ ⊙ M)|: the DENSE weights times the gradient at the sparse net.

    Pruned weights keep a nonzero saliency, so FORCE can revive them (Iter SNIP cannot). As in
    the study's code, only the kernels are masked while scoring: the biases stay dense, so a
    unit whose outgoing weights are all pruned still feeds its bias into the gradients of
    exactly those pruned weights (masking its bias too would change their saliency).

    References: de Jorge et al. 2021, FORCE; stephenqz/sparsest pruning_methods/FORCE.py
    (prune_method=3); naver/force pruning/pruning_algos.py.

    Returns:
      (N,) scores.
    """
    del key
    g = kernel_grad(_masked_kernels(params, masks), batch)
    return jnp.abs(masking.flatten_kernels(params) * g)


def grasp_gradients(params: base.Params, masks: base.Masks | None, batch: Batch,
                    temperature: float = 200.0) -> tuple[jax.Array, jax.Array]:
    """GraSP's g and Hg (forward-over-reverse), both flat (N,).

    As the original, the loss is the SUM over the two halves of the batch (split at B // 2,
    i.e. class 0 then class 1 for a balanced batch) of the mean BCE on logits / T; only the
    kernels are differentiated (biases enter the forward as constants) and g is a constant
    in Hg = d/dW [g · dL/dW].

    Returns:
      (g, Hg), each (N,).
    """
    x, y = batch
    half = x.shape[0] // 2
    p = _masked(params, masks)

    def half_loss(q, xs, ys):
        return jnp.mean(models.bce_with_logits(models.apply(q, xs) / temperature, ys))

    def loss_w(w):
        q = masking.unflatten_kernels(w, p)
        return half_loss(q, x[:half], y[:half]) + half_loss(q, x[half:], y[half:])

    w = masking.flatten_kernels(p)
    g = jax.grad(loss_w)(w)
    hg = jax.jvp(jax.grad(loss_w), (w,), (jax.lax.stop_gradient(g),))[1]
    return g, hg


def grasp(key, params: base.Params, masks: base.Masks | None, batch: Batch,
          temperature: float = 200.0) -> jax.Array:
    """GraSP score to KEEP: W ⊙ Hg (keeping the largest W ⊙ Hg = removing the largest of the
    original's S = -W ⊙ Hg; its normalisation by |ΣS| does not change the order).

    References: Wang et al. 2020, GraSP; stephenqz/sparsest pruning_methods/GraSP.py;
    alecwangcq/GraSP pruner/GraSP.py.

    Returns:
      (N,) scores (signed).
    """
    del key
    _, hg = grasp_gradients(params, masks, batch, temperature)
    return masking.flatten_kernels(_masked(params, masks)) * hg


def synflow(key, params: base.Params, masks: base.Masks | None = None, batch=None) -> jax.Array:
    """SynFlow scores |W| ⊙ (a_{l-1} r_lᵀ), closed form of |W ⊙ dR/dW| (no data).

    The network is linearised: R = sum of the output on input ones with every parameter
    replaced by its absolute value (masked entries 0; biases as |b| with their bias-rule mask,
    as the study's port). With nonnegative parameters every ReLU is active, so
    a_0 = 1, a_l = a_{l-1} |W_l| + |b_l| and r_3 = 1, r_{l-1} = |W_l| r_l ((in, out) kernels).
    (Autodiff through ReLU would give 0 instead of r at a unit with zero pre-activation; the
    scores agree, since every weight touching such a unit scores 0 either way.)

    References: Tanaka et al. 2020, SynFlow; stephenqz/sparsest pruning_methods/SynFlow.py;
    ganguli-lab/Synaptic-Flow Pruners/pruners.py.

    Returns:
      (N,) nonnegative scores.
    """
    del key, batch
    p = _masked(params, masks)
    ws = [jnp.abs(p[n]["kernel"]) for n in models.LAYERS]
    bs = [jnp.abs(p[n]["bias"]) for n in models.LAYERS]
    acts = [jnp.ones(ws[0].shape[0], ws[0].dtype)]
    for w, b in zip(ws, bs):
        acts.append(jnp.dot(acts[-1], w, precision="highest") + b)
    rs = [jnp.ones(1, ws[0].dtype)]
    for w in ws[:0:-1]:
        rs.insert(0, jnp.dot(w, rs[0], precision="highest"))
    return jnp.concatenate([(w * a[:, None] * r[None, :]).ravel()
                            for w, a, r in zip(ws, acts, rs)])
