"""A pruner of our own that chooses neurons before weights: "neurons".

The study's sparsest models are small, nearly dense blocks of units (BENCH-95: the dense
(3, 2, 2)); pruners remove weights one at a time at full width. "neurons" keeps a block:

1. score the hidden units (``units``): "norm", the L2 norm of a unit's incoming kernel column
   times that of its outgoing kernel row, or "snip", |dL/dc| for a gate c multiplying the
   unit's activation (= |sum of g ⊙ W over its outgoing row|, on one random batch), at the
   init, or after ``warmup_epochs`` of training the starting masks;
2. rank the units of each layer (ties to the lower index) and enumerate every block
   (d1, d2, d3) of the top-ranked units; its capacity is the number of starting-mask weights
   inside it. Among the blocks whose capacity holds the budget f, take the ``candidates``
   with the fewest units (each unit costs a bias), then the fewest spare weights, then
   the lower (d1, d2, d3);
3. inside each block keep exactly f weights: the largest |W| (of the scored params), then
   (``repair``) the swaps of ``connected`` inside the block, so no kept weight lies off an
   input-to-output path;
4. train the candidates side by side from the init (rewound inside each block, LTH-style; or
   from the warmed-up weights with ``rewind=False``) for ``probe_epochs`` epochs, keep the
   one with the lowest training loss of its last epoch, and train it for ``spec.epochs``
   epochs from the same start (``probe_epochs == spec.epochs``: the candidates are trained
   in full and the winner is returned as is).

A "train" pruner ``(variant, data, *, spec) -> record``; its method args (``ARGS``) come from
``spec.method_args``. ``flops`` counts its cost with the study's convention (docs/pruners.md).
"""

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import analysis, masking, models, training
from spiralprune.pruning import api, at_init, during_training, scores, selection

ARGS = {"units": "norm", "candidates": 8, "probe_epochs": 50, "warmup_epochs": 0,
        "rewind": True, "repair": True}
UNIT_SCORES = ("norm", "snip")


def _kernels(params) -> list:
    return [params[name]["kernel"] for name in models.LAYERS]


def unit_scores(key, params, masks, data, how: str, batch_size: int = 128) -> list:
    """Scores of the hidden units of layers 1..3 ((d1,), (d2,), (d3,); larger = keep)."""
    p = masking.apply(params, masks)
    k = _kernels(p)
    if how == "norm":
        return [jnp.linalg.norm(k[l], axis=0) * jnp.linalg.norm(k[l + 1], axis=1)
                for l in range(3)]
    if how == "snip":
        g = masking.unflatten_kernels(
            scores.kernel_grad(p, at_init.draw_batch(key, data, batch_size)), p)
        return [jnp.abs(jnp.sum(g[name]["kernel"] * p[name]["kernel"], axis=1))
                for name in models.LAYERS[1:]]
    raise ValueError(f"neurons: units must be one of {UNIT_SCORES}, got {how!r}")


def ranks(s: jax.Array) -> jax.Array:
    """Rank of every unit (0 = highest score; ties to the lower index)."""
    order = jnp.argsort(-s, stable=True)
    return jnp.argsort(order, stable=True)


def capacities(unit_ranks, masks) -> jax.Array:
    """Starting-mask weights inside every block: int32 (w1, w2, w3), entry [a, b, c] for the
    block of the top a + 1, b + 1, c + 1 units of layers 1, 2, 3 (prefix sums over the
    kernels with rows and columns in rank order)."""
    order = [jnp.argsort(r, stable=True) for r in unit_ranks]
    e = [m.astype(jnp.int32) for m in _kernels(masks)]
    c0 = jnp.cumsum(jnp.sum(e[0][:, order[0]], axis=0))
    c1 = jnp.cumsum(jnp.cumsum(e[1][order[0]][:, order[1]], axis=0), axis=1)
    c2 = jnp.cumsum(jnp.cumsum(e[2][order[1]][:, order[2]], axis=0), axis=1)
    c3 = jnp.cumsum(jnp.sum(e[3][order[2]], axis=1))
    return (c0[:, None, None] + c1[:, :, None] + c2[None, :, :] + c3[None, None, :])


def blocks(cap: jax.Array, budget, k: int) -> jax.Array:
    """The ``k`` blocks (d1, d2, d3) holding ``budget``: fewest units, then fewest spare
    weights, then the lower (d1, d2, d3). int32 (k, 3); where fewer than k hold it, the
    first repeats."""
    w1, w2, w3 = cap.shape
    d = np.stack(np.meshgrid(np.arange(1, w1 + 1), np.arange(1, w2 + 1), np.arange(1, w3 + 1),
                             indexing="ij"), -1).reshape(-1, 3)
    units = jnp.asarray(d.sum(1), jnp.int32)
    cap = cap.reshape(-1)
    ok = cap >= budget
    big = jnp.iinfo(jnp.int32).max
    score = jnp.where(ok, units * (1 << 20) + cap - budget, big)
    idx = jnp.argsort(score, stable=True)[:k]
    idx = jnp.where(ok[idx], idx, idx[0])
    return jnp.asarray(d, jnp.int32)[idx]


def block_masks(unit_ranks, dims, masks):
    """Masks of the block ``dims`` = (d1, d2, d3) of the top-ranked units, inside ``masks``
    (kernels only; biases by the bias rule)."""
    keep = [jnp.ones(masks[models.LAYERS[0]]["kernel"].shape[0], bool)]
    keep += [r < d for r, d in zip(unit_ranks, dims)]
    keep += [jnp.ones(masks[models.LAYERS[-1]]["kernel"].shape[1], bool)]
    return masking.from_kernels([masks[name]["kernel"] & keep[l][:, None] & keep[l + 1][None, :]
                                 for l, name in enumerate(models.LAYERS)])


def weight_scores(params, block) -> jax.Array:
    """|W| / (max |W| + 1) inside ``block``, plus 1 for the protected weights: the largest
    incoming weight of every block unit (hidden and output) and the largest outgoing weight of
    every hidden block unit (ties to the lower index). Flat (N,). When the budget holds every
    protected weight, every kept unit has a kept weight in and out, so every kept weight lies
    on an input-to-output path."""
    k = [jnp.where(block[n]["kernel"], jnp.abs(params[n]["kernel"]), -1.0)
         for n in models.LAYERS]
    scale = 1.0 + jnp.max(jnp.stack([jnp.max(a) for a in k]))
    out = []
    for l, a in enumerate(k):
        rows, cols = jnp.arange(a.shape[0]), jnp.arange(a.shape[1])
        has_in, has_out = jnp.any(a >= 0, axis=0), jnp.any(a >= 0, axis=1)
        best_in = (jnp.argmax(a, axis=0)[None, :] == rows[:, None]) & has_in[None, :]
        best_out = (jnp.argmax(a, axis=1)[:, None] == cols[None, :]) & has_out[:, None]
        protect = (best_in | best_out) if l > 0 else best_in
        out.append(jnp.where(a >= 0, a / scale + protect, -1.0))
    return jnp.concatenate([a.ravel() for a in out])


def choose(key, params, masks, data, budget, *, args, batch_size: int = 128):
    """The candidate masks: (stacked masks with a leading axis ``candidates``, their blocks
    (candidates, 3) int32). Each keeps exactly ``budget`` weights inside ``masks``.

    Args:
      key: the run's prune key; params: the scored params (init or warmed up); masks: the
        starting masks; data: (x, y); budget: int scalar f (may be traced); args: method args.
    """
    r = [ranks(s) for s in unit_scores(key, params, masks, data, str(args["units"]),
                                       batch_size)]
    dims = blocks(capacities(r, masks), budget, int(args["candidates"]))
    w = masking.apply(params, masks)

    def one(d):
        block = block_masks(r, d, masks)
        s = weight_scores(w, block) if args["repair"] else jnp.abs(masking.flatten_kernels(w))
        keep = selection.topk_mask(s, budget, masking.flatten_kernels(block))
        return selection.to_masks(keep, params)

    return jax.vmap(one)(dims), dims


def _check(args, spec: training.Spec) -> None:
    if args["units"] not in UNIT_SCORES:
        raise ValueError(f"neurons: units must be one of {UNIT_SCORES}, got {args['units']!r}")
    if int(args["candidates"]) < 1:
        raise ValueError(f"neurons: candidates must be >= 1, got {args['candidates']}")
    for name in ("probe_epochs", "warmup_epochs"):
        if not 0 <= int(args[name]):
            raise ValueError(f"neurons: {name} must be >= 0, got {args[name]}")


def neurons_train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
    """One run: blocks of the best units, candidates side by side, the best one trained.

    Method args (``ARGS``): units ("norm" | "snip"), candidates (blocks trained side by
    side), probe_epochs (epochs each candidate trains before the choice; capped at
    spec.epochs), warmup_epochs (epochs of training the starting masks before scoring),
    rewind (start the candidates from the init rather than the warmed-up weights), repair
    (``connected``'s swaps inside the block, ``rounds`` at most).

    Returns:
      ``training.result(...)`` of the chosen candidate.
    """
    args = during_training.resolve_args(spec, ARGS)
    _check(args, spec)
    keys = training.run_keys(variant.seed)
    start = variant.masks
    params0 = masking.apply(training.initial_params(variant, spec, keys["init"]), start)
    warm = int(args["warmup_epochs"])
    scored = params0
    if warm:
        tx = training.optimizer(spec)
        scored, _, _ = training.train_epochs(params0, tx.init(params0), start, data,
                                             jax.random.fold_in(keys["prune"], 1), variant.lr,
                                             variant.schedule, spec, num_epochs=warm)
    cands, _ = choose(keys["prune"], scored, start, data, variant.budget, args=args,
                      batch_size=spec.batch_size)
    origin = params0 if args["rewind"] else scored
    probe = min(int(args["probe_epochs"]), spec.epochs)

    def train(masks, epochs):
        p = masking.apply(origin, masks)
        p, _, loss = training.train_epochs(p, training.optimizer(spec).init(p), masks, data,
                                           keys["data"], variant.lr, variant.schedule, spec,
                                           num_epochs=epochs)
        return p, loss

    def pick(tree, i):
        return jax.tree.map(lambda a: a[i], tree)

    k = int(args["candidates"])
    if k == 1 or probe == 0:
        masks = pick(cands, 0)
        params, loss = train(masks, spec.epochs)
    else:
        trained, losses = jax.vmap(lambda m: train(m, probe))(cands)
        best = jnp.argmin(jnp.where(jnp.isfinite(losses), losses, jnp.inf))
        masks = pick(cands, best)
        if probe == spec.epochs:
            params, loss = pick(trained, best), losses[best]
        else:
            params, loss = train(masks, spec.epochs)
    return training.result(params, masks, data, spec, loss)


api.register("neurons", neurons_train, kind="train", args=ARGS)


def flops(widths, budget: int, nnz: float, args=None, *, epochs: int = 50, n: int = 49_982,
          batch: int = 128) -> dict:
    """FLOPs to prune and train one model with "neurons" (the study's Table 1 convention:
    one per nonzero parameter and sample, forward passes, ``analysis.flops``).

    prune: warmup epochs of the dense starting model (all its parameters), the unit scores
    ("snip": one dense pass on ``batch`` samples), and the candidates that are not returned
    (each counted with ``nnz``, the returned model's nonzeros, for its probe epochs; and the
    winner's probe when it is trained again). train: ``epochs`` epochs at ``nnz``.
    """
    a = {**ARGS, **dict(args or {})}
    samples = (n // batch) * batch
    dense = models.num_params(widths)
    k, probe = int(a["candidates"]), min(int(a["probe_epochs"]), epochs)
    prune = a["warmup_epochs"] * samples * dense + (batch * dense if a["units"] == "snip" else 0)
    if k > 1 and probe:
        prune += (k - 1 if probe == epochs else k) * probe * samples * nnz
    train = epochs * samples * nnz
    gmp = analysis.flops("gmp", widths, budget, nnz=nnz, epochs=epochs, n=n, batch=batch)
    total = prune + train
    return {"prune": float(prune), "train": float(train), "total": float(total),
            "gmp": float(gmp["total"]), "relative_to_gmp": float(total / gmp["total"])}
