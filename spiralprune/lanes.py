"""Models as lanes: the training engine for tiny compacted models (population axis last).

At the search's compacted shapes ((3,3,3), (3,2,2), (6,3,2), (7,3,3)) a vmapped one-model step
is a batched (P, 128, 3) x (P, 3, 3) product that does almost no arithmetic per byte moved. Here
every array carries the population axis P *last*: kernels are (in, out, P), biases (out, P), and
every unit's activations over a minibatch are one (batch, P) array. A layer is a few unrolled
broadcast multiply-adds, and the backward pass is written out per unit the same way, so XLA fuses
a whole step into a handful of elementwise and batch-reduction loops over contiguous lanes.

Only the layout differs from ``training``: the optimizer (``training.optimizer``; optax is
elementwise, so it runs unchanged on lanes-layout trees), the lr schedules
(``training.epoch_lr``), the data order (``datasets.batch_indices`` from each run's own data
key), the init (``training.initial_params``) and masking (grads and params masked every step,
as ``training.sgd_step``) are shared. Lane p computes exactly what ``training.train_run`` computes
for run p, up to float summation order (tested against it).

The unrolled code grows with the number of weights (compile time and instructions), so the
engine is for small widths only (``MAX_WEIGHTS``); ``populations`` chooses it by measurement.
On a single CPU device ``populations`` also has a chunk's lanes trained in independent groups
of ~256 (``train_epochs(groups=...)``), which XLA:CPU overlaps across its threads.
"""


import jax
import jax.numpy as jnp

from spiralprune import base, datasets, masking, models, training

# The unrolled program grows with the weights and XLA's compile time faster: width 8 (152
# weights) compiled in ~30 s on 2 CPU cores, width 16 (560) had not finished after 8 minutes.
# Lanes already loses to vmap's batched dots at width 8 (see BENCHMARKS.md).
MAX_WEIGHTS = 160

# XLA:CPU compile options for the lanes program (``populations`` passes them when compiling for
# a CPU and the installed XLA knows them). Library (YNNPACK) fusions off: the ~30 per-weight
# batch reductions of a step then run as XLA's own loops, which was faster at every compacted
# shape; 512-bit vectors where the CPU has them (a CPU without AVX-512 keeps 256). Measured on
# the 2-core Xeon, (3,2,2), P = 256, training steps: ~1.3x together (BENCHMARKS.md).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "",
                        "xla_cpu_prefer_vector_width": 512}


def to_lanes(tree: base.PyTree) -> base.PyTree:
    """Moves the leading population axis of every leaf to the end: (P, ...) -> (..., P)."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), tree)


def from_lanes(tree: base.PyTree) -> base.PyTree:
    """Inverse of ``to_lanes``: (..., P) -> (P, ...)."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, -1, 0), tree)


def _lane(v: jax.Array) -> jax.Array:
    """A per-lane (P,) vector as a (1, P) row, broadcastable against (batch, P) arrays."""
    return v[None, :]


def forward(params: base.Params, inputs: list[jax.Array]):
    """The MLP on lanes, unit by unit.

    Args:
      params: lanes-layout params (kernels (in, out, P), biases (out, P)).
      inputs: the two input features, each (B, P) (or (B, 1) when every lane sees the same
        points, as in evaluation).

    Returns:
      (activations, pre_activations): activations[l] is the list of layer l's input units
      (activations[0] is ``inputs``); pre_activations[l] the list of layer l's outputs before
      the ReLU, each (B, P); pre_activations[3][0] are the logits.
    """
    acts, pres = [list(inputs)], []
    for layer, name in enumerate(models.LAYERS):
        kernel, bias = params[name]["kernel"], params[name]["bias"]
        fan_in, fan_out = kernel.shape[:2]
        a = acts[-1]
        z = []
        for j in range(fan_out):
            s = _lane(bias[j]) + a[0] * _lane(kernel[0, j])
            for i in range(1, fan_in):
                s = s + a[i] * _lane(kernel[i, j])
            z.append(s)
        pres.append(z)
        if layer < 3:
            acts.append([jax.nn.relu(s) for s in z])
    return acts, pres


def bce_with_logits(logits: jax.Array, y: jax.Array) -> jax.Array:
    """``models.bce_with_logits``, its log1p(e) in Kahan's form log(u) * e / (u - 1), u = 1 + e.

    The same stable formula to float32 rounding (a relative error of ~2e-7 against a float64
    reference, as XLA's log1p; tested), but XLA:CPU's log1p costs ~3x its log, and this loss
    is computed at every point of the last epoch and of the evaluation. Where u rounds to 1,
    log1p(e) = e to float32 precision. Only for reporting: no gradient flows through it
    (``models.bce_with_logits`` stays the training loss of the vmap engine and the pruners).
    """
    e = jnp.exp(-jnp.abs(logits))
    u = 1.0 + e
    # u - 1, exactly (Sterbenz), written so that XLA's simplifier cannot fold (1 + e) - 1 to e,
    # which would drop the rounding of u that Kahan's quotient cancels.
    u_minus_1 = (u * 0.5 - 0.5) * 2.0
    log1p_e = jnp.where(u == 1.0, e, jnp.log(u) * (e / u_minus_1))
    return jnp.maximum(logits, 0) - logits * y + log1p_e


def loss_and_grads(params: base.Params, inputs: list[jax.Array], y: jax.Array, *,
                   with_loss: bool = True):
    """Per-lane mean BCE on a minibatch and its gradients, the backward pass written out.

    Equal to ``jax.grad`` of the sum over lanes of per-lane mean losses (tested), but XLA fuses
    the hand-written form into fewer loops (the derivative of the BCE is sigmoid(z) - y; a
    ReLU passes gradient where its input is > 0, as ``jax.nn.relu``'s derivative).

    Args:
      params: lanes-layout params.
      inputs: the two input features, each (B, P).
      y: (B, P) labels.
      with_loss: False skips the loss (its log and exp per point; the gradients do not need
        it) and returns None in its place.

    Returns:
      (loss (P,) or None, grads): grads mirror params (lanes layout).
    """
    acts, pres = forward(params, inputs)
    logits = pres[3][0]
    loss = jnp.mean(bce_with_logits(logits, y), axis=0) if with_loss else None
    dz = [(jax.nn.sigmoid(logits) - y) / y.shape[0]]
    grads = {}
    for layer in reversed(range(4)):
        name = models.LAYERS[layer]
        kernel = params[name]["kernel"]
        a = acts[layer]
        gk = jnp.stack([jnp.stack([jnp.sum(ai * dj, axis=0) for dj in dz]) for ai in a])
        gb = jnp.stack([jnp.sum(dj, axis=0) for dj in dz])
        grads[name] = {"kernel": gk, "bias": gb}
        if layer > 0:
            da = []
            for i in range(kernel.shape[0]):
                s = dz[0] * _lane(kernel[i, 0])
                for j in range(1, len(dz)):
                    s = s + dz[j] * _lane(kernel[i, j])
                da.append(s)
            dz = [jnp.where(z > 0, d, jnp.zeros_like(d)) for z, d in zip(pres[layer - 1], da)]
    return loss, grads


def _per_lane(v: jax.Array, like: jax.Array) -> jax.Array:
    """A (P,) vector shaped to broadcast against a lanes-layout leaf ``like`` (..., P)."""
    return v.reshape((1,) * (like.ndim - 1) + v.shape)


def sgd_step(params, opt_state, masks, inputs, y, lr, spec: training.Spec, *,
             with_loss: bool = True):
    """One masked SGD step of every lane (``training.sgd_step`` in the lanes layout).

    Args:
      params, opt_state, masks: lanes-layout trees.
      inputs: the two input features, each (B, P); y: (B, P) labels.
      lr: (P,) learning rates of this epoch.
      spec: static description.
      with_loss: False skips the minibatch loss (None in its place).

    Returns:
      (params, opt_state, loss (P,) or None).
    """
    loss, grads = loss_and_grads(params, inputs, y, with_loss=with_loss)
    updates, opt_state = training.optimizer(spec).update(masking.apply(grads, masks), opt_state,
                                                         params)
    params = jax.tree.map(lambda p, u: p - _per_lane(lr, p) * u, params, updates)
    return masking.apply(params, masks), opt_state, loss


def epoch_keys(data_keys: jax.Array, epoch) -> jax.Array:
    """The round keys of every lane's data order in ``epoch``: uint32 (rounds, P).

    Computed once per epoch (two threefry hashes per lane), not in every step.
    """
    return jax.vmap(datasets.epoch_round_keys, in_axes=(0, None), out_axes=1)(data_keys, epoch)


def batch(data, round_keys: jax.Array, step, spec: training.Spec):
    """Minibatch ``step`` of every lane in the epoch of ``round_keys``, each from its own order.

    Args:
      data: (x (N, 2), y (N,)) shared by every run.
      round_keys: (rounds, P) from ``epoch_keys``.
      step: int scalar.
      spec: static description.

    Returns:
      (inputs, y): the two input features, each (B, P), and labels (B, P).
    """
    x, y = data
    # The same indices as ``datasets.batch_indices`` per run, computed directly in the (B, P)
    # layout: round keys (rounds, 1, P) against positions (B, 1). Evaluating it per run and
    # transposing, as vmap would, was ~20% slower per step at (3,2,2) on a CPU.
    positions = step * spec.batch_size + jnp.arange(spec.batch_size)
    idx = datasets.permute_with_round_keys(round_keys[:, None, :], positions[:, None], x.shape[0])
    # A keyed bijection of [0, N) never leaves it, so the gathers skip their bounds handling.
    take = lambda a: a.at[idx].get(mode="promise_in_bounds")  # noqa: E731
    return [take(x[:, 0]), take(x[:, 1])], take(y)


def num_groups(lanes: int, group_size: int | None) -> int:
    """Independent groups the ``lanes`` of one program are trained in: ~``group_size`` each.

    The largest G <= lanes // group_size that divides ``lanes`` (1 for ``None``).
    """
    if not group_size:
        return 1
    g = max(1, lanes // group_size)
    while lanes % g:
        g -= 1
    return g


def _group(tree, k: int, size: int):
    """Lanes [k * size, (k + 1) * size) of every leaf of a lanes-layout tree."""
    return jax.tree.map(lambda a: a[..., k * size:(k + 1) * size], tree)


def train_epochs(params, opt_state, masks, data, data_keys, lr, schedule, spec: training.Spec,
                 groups: int = 1):
    """Trains every lane for ``spec.epochs`` epochs with fixed masks.

    Only the last epoch's minibatch losses are reported, so only that epoch computes them: the
    loss's exp and log per point were ~12% of a (3,2,2) step on a CPU. The step is therefore
    compiled twice (without and with the loss); the gradients are the same code in both.

    With ``groups`` > 1 the lanes are cut into that many equal groups, each stepped by its own
    copy of the step's code inside one loop: the groups are independent, so XLA:CPU can run one
    group's loops while another's wait on their threads. A lane computes the same values either
    way up to float32 rounding (tested): groups of another width may compile to other vector
    code (256 and 512 lanes gave the same bits on the 2-core Xeon).

    Returns:
      (params, opt_state, last_epoch_mean_loss (P,)).
    """
    steps = datasets.steps_per_epoch(data[0].shape[0], spec.batch_size)
    size = lr.shape[0] // groups
    if size * groups != lr.shape[0]:
        raise ValueError(f"{lr.shape[0]} lanes do not split into {groups} equal groups")
    masks = [_group(masks, k, size) for k in range(groups)]

    def run_epoch(carry, epoch, with_loss):
        lr_e = training.epoch_lr(lr, schedule, epoch, spec)
        keys = epoch_keys(data_keys, epoch)
        # Each group's slices of this epoch's keys and lrs, taken once per epoch.
        keys = [_group(keys, k, size) for k in range(groups)]
        lr_e = [_group(lr_e, k, size) for k in range(groups)]

        def step_body(carry, step):
            out, losses = [], []
            for k, (params, opt_state) in enumerate(carry):
                inputs, yb = batch(data, keys[k], step, spec)
                params, opt_state, loss = sgd_step(params, opt_state, masks[k], inputs, yb,
                                                   lr_e[k], spec, with_loss=with_loss)
                out.append((params, opt_state))
                losses.append(loss)
            return tuple(out), (jnp.concatenate(losses) if with_loss else None)

        carry, losses = jax.lax.scan(step_body, carry, jnp.arange(steps))
        return carry, (jnp.mean(losses, axis=0) if with_loss else None)

    carry = tuple((_group(params, k, size), _group(opt_state, k, size)) for k in range(groups))
    carry, _ = jax.lax.scan(lambda c, e: run_epoch(c, e, False), carry,
                            jnp.arange(spec.epochs - 1))
    carry, last_loss = run_epoch(carry, spec.epochs - 1, True)
    params, opt_state = jax.tree.map(lambda *parts: jnp.concatenate(parts, axis=-1), *carry)
    return params, opt_state, last_loss


def evaluate(params, data, spec: training.Spec):
    """Accuracy and mean BCE of every lane on all of ``data`` (``training.evaluate``'s rules).

    Walks the data in chunks of ``spec.eval_chunk`` points shared by every lane. A diverged
    model (NaN logits) predicts class 0.

    Returns:
      (accuracy (P,), loss (P,)) float32.
    """
    n = data[0].shape[0]
    xs, ys, ws = training.eval_chunks(data, spec)
    ys, ws = ys[..., None], ws[..., None]   # broadcast over the lanes
    lanes = params["layer3"]["bias"].shape[-1]

    def body(carry, xyw):
        xc, yc, wc = xyw
        logits = forward(params, [xc[:, :1], xc[:, 1:]])[1][3][0]
        correct = jnp.sum(wc * ((logits > 0) == (yc > 0.5)), axis=0)
        loss = jnp.sum(wc * bce_with_logits(logits, yc), axis=0)
        return (carry[0] + correct, carry[1] + loss), None

    zeros = jnp.zeros(lanes, jnp.float32)
    (correct, loss), _ = jax.lax.scan(body, (zeros, zeros), (xs, ys, ws))
    return correct / n, loss / n


def train_population(variants: training.Variant, data, *, spec: training.Spec,
                     group_size: int | None = None) -> dict:
    """Trains a population of dense runs with fixed masks, all lanes of one program.

    The lanes counterpart of ``jax.vmap(training.train_run)``: same inputs, same outputs.

    Args:
      variants: per-run numbers with leading axis P.
      data: (x (N, 2), y (N,)) shared by every run.
      spec: static description (``spec.method`` must be "dense").
      group_size: lanes per independent group of the step (``train_epochs``); None: one
        group. ``populations`` sets it on a single CPU device.

    Returns:
      ``training.result``'s dict for every run, leading axis P: params, masks, accuracy, loss,
      train_loss, diverged, nnz_weights, nnz.
    """
    keys = jax.vmap(training.run_keys)(variants.seed)
    params = jax.vmap(lambda v, k: training.initial_params(v, spec, k))(variants, keys["init"])
    masks = to_lanes(variants.masks)
    params = masking.apply(to_lanes(params), masks)
    opt_state = training.optimizer(spec).init(params)
    params, _, train_loss = train_epochs(params, opt_state, masks, data, keys["data"],
                                         variants.lr, variants.schedule, spec,
                                         groups=num_groups(variants.lr.shape[0], group_size))
    accuracy, loss = evaluate(params, data, spec)
    params = from_lanes(params)
    return {"params": params, "masks": variants.masks, "accuracy": accuracy, "loss": loss,
            "train_loss": train_loss, "diverged": ~jnp.isfinite(loss),
            "nnz_weights": masking.nnz_weights(params), "nnz": masking.nnz(params)}
