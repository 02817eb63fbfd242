"""ProsPr (prospect pruning) for ONE model: meta-gradients through unrolled early training.

A mask variable c (ones, on the kernels only) multiplies the initial kernels, the model takes
``steps`` momentum-SGD steps on fresh batches (PyTorch-style momentum: v_0 = g_0,
v_t = mu v_{t-1} + g_t; no dampening, no Nesterov, NO weight decay; biases updated too), and
the score is |dL(theta_steps; next batch)/dc|. ``jax.grad`` differentiates through the inner
``jax.grad`` calls, so this is the second-order meta-gradient (``method="full"``), except
through the first inner gradient: as in the study's code (and torch's SGD), the first momentum
buffer is a detached copy of g_0, so no meta-gradient flows through g_0 (only through theta_0
itself and the later gradients). The score is therefore not the exact derivative of the meta
loss; it is what the study computed.
"""

import jax
import jax.numpy as jnp

from spiralprune import base, datasets, masking, models
from spiralprune.pruning import selection

Batches = tuple[jax.Array, jax.Array]


def meta_loss(c: jax.Array, params: base.Params, batches: Batches, lr,
              momentum: float = 0.9) -> jax.Array:
    """Loss on the last batch after unrolled momentum SGD on the others, from kernels W ⊙ c.

    Args:
      c: (N,) kernel mask variable (flat, ``masking.flatten_kernels`` order).
      params: one model's params (theta_0 before masking).
      batches: x (S + 1, B, 2), y (S + 1, B): S inner-step batches, then the meta batch.
      lr: inner learning rate (the run's training lr), may be traced.
      momentum: inner momentum (0.9).

    Returns:
      scalar meta loss.
    """
    xs, ys = batches
    w = masking.flatten_kernels(params) * c  # c multiplies only theta_0's kernels
    theta = masking.unflatten_kernels(w, params)
    velocity = None
    for t in range(xs.shape[0] - 1):
        g = jax.grad(models.loss)(theta, xs[t], ys[t])
        if velocity is None:
            # The study's functional_sgd starts the buffer as clone(grad).detach(), as torch's
            # SGD does: the first step moves theta by lr * g_0 but carries no meta-gradient
            # through g_0 (differentiating through it changed the scores by ~7%).
            velocity = jax.tree.map(jax.lax.stop_gradient, g)
        else:
            velocity = jax.tree.map(lambda v, gi: momentum * v + gi, velocity, g)
        theta = jax.tree.map(lambda p, v: p - lr * v, theta, velocity)
    return models.loss(theta, xs[-1], ys[-1])


def meta_gradient(params: base.Params, batches: Batches, lr, momentum: float = 0.9) -> jax.Array:
    """Signed dL/dc at c = 1, flat (N,), with g_0 detached (see ``meta_loss``)."""
    c = jnp.ones_like(masking.flatten_kernels(params))
    return jax.grad(meta_loss)(c, params, batches, lr, momentum)


def draw_batches(key: base.PRNGKey, data, count: int, batch_size: int = 128) -> Batches:
    """The first ``count`` batches of one freshly shuffled loader: x (count, B, 2), y (count, B).
    """
    x, y = data
    idx = datasets.permute(key, jnp.arange(count * batch_size), x.shape[0])
    idx = idx.reshape(count, batch_size)
    return jnp.take(jnp.asarray(x), idx, axis=0), jnp.take(jnp.asarray(y), idx, axis=0)


def prospr(key: base.PRNGKey, params: base.Params, data, k, lr, momentum: float = 0.9,
           steps: int = 3, *, batch_size: int = 128, reference_counts: bool = False) -> base.Masks:
    """ProsPr: keep the top-k |dL(theta_steps; x_{steps+1}) / dc|.

    Args:
      key: typed PRNG key (draws steps + 1 consecutive batches of one shuffle).
      params: one model's params (default init, no re-draw).
      data: (x (n, 2), y (n,)).
      k: int scalar budget, may be traced.
      lr: inner learning rate = the run's training lr (0.05 / 0.1 / 0.2), may be traced.
      momentum: 0.9; steps: 3 inner steps (static); batch_size: 128.
      reference_counts: the original's k = ceil(N * (1 - (1 - f / N))) (f or f + 1), still
        selected exactly (torch.topk index selection; our ties go to the lower index).

    Returns:
      masks with the bias rule applied. Deliberate deviation: the original's
      ``apply_masks_with_hooks`` guards the bias rule with the row count of each layer, which
      skips the third hidden layer's biases at width 3; we apply the rule everywhere.

    References: Alizadeh et al. 2022, ProsPr; stephenqz/sparsest pruning_methods/ProsPr/
    {prospr,utils}.py; mil-ad/prospr prospr/{prospr,utils}.py.
    """
    s = jnp.abs(meta_gradient(params, draw_batches(key, data, steps + 1, batch_size), lr,
                              momentum))
    if reference_counts:
        k = selection.host_counts(selection.prospr_count, s.shape[0], k)[0]
    return selection.to_masks(selection.topk_mask(s, k), params)
