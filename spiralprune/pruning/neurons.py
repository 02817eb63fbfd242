"""A pruner of our own that chooses neurons before weights: "neurons" (docs/neurons.md).

The study's sparsest models are small, nearly dense blocks of units (BENCH-95: the dense
(3, 2, 2)); pruners remove weights one at a time at full width. "neurons" keeps a block:

1. score the hidden units (``units``): "norm", the L2 norm of a unit's incoming kernel column
   times that of its outgoing kernel row, or "snip", |dL/dc| for a gate c multiplying the
   unit's activation (= |sum of g ⊙ W over its outgoing row|, on one random batch);
2. rank the units of each layer (ties to the lower index) and enumerate every block
   (d1, d2, d3) of the top-ranked units (``funnel``: d1 >= d2 >= d3 only); its capacity is
   the number of starting-mask weights inside it. Among the blocks whose capacity holds the
   target, the fewest units (each unit costs a bias), then the fewest spare weights, then the
   lower (d1, d2, d3);
3. inside the block keep exactly the target: the largest |W|, with (``repair``) every block
   unit's largest incoming and outgoing weight protected first, so that no kept weight lies off
   an input-to-output path once the target holds the protected ones.

``gradual`` (the default): GMP's loop and cubic schedule with steps 1-3 as the event, units
pruned first while the network trains (``gradual``); ``candidates`` (3) restarts side by side
on other data orders (sharing the first ``branch_epochs`` (2) epochs), the lowest final
training loss returned (2.8-2.9x GMP's FLOPs). One shot (``gradual=False``): steps 1-3 on
the init (or after ``warmup_epochs`` of training) for the ``candidates`` best blocks, trained
side by side for ``probe_epochs``; the one with the lowest training loss is trained for
``spec.epochs`` from the init (``rewind``, LTH-style) or from the warmed-up weights
(``probe_epochs == spec.epochs``: returned as is).

A "train" pruner ``(variant, data, *, spec) -> record``; its method args (``ARGS``) come from
``spec.method_args``. ``flops`` counts its cost with the study's convention (docs/pruners.md).
"""

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import analysis, masking, models, training
from spiralprune.pruning import at_init, costs, during_training, registry, scores, selection

ARGS = {"gradual": True, "candidates": 3, "units": "norm", "funnel": True, "repair": True,
        "branch_epochs": 2, "probe_epochs": 5, "warmup_epochs": 0, "rewind": True,
        "rescale": False}
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


def blocks(cap: jax.Array, budget, k: int, limit=None, funnel: bool = True) -> jax.Array:
    """The ``k`` blocks (d1, d2, d3) holding ``budget``: fewest units, then fewest spare
    weights, then the lower (d1, d2, d3); with ``funnel`` only d1 >= d2 >= d3 (else the
    fewest units favour a one-unit first layer, a single half-plane); none wider than
    ``limit`` (3,) per layer, if given (unless no block then holds the budget). int32 (k, 3);
    where fewer than k hold it, the first repeats."""
    w1, w2, w3 = cap.shape
    d = np.stack(np.meshgrid(np.arange(1, w1 + 1), np.arange(1, w2 + 1), np.arange(1, w3 + 1),
                             indexing="ij"), -1).reshape(-1, 3)
    units = jnp.asarray(d.sum(1), jnp.int32)
    cap = cap.reshape(-1)
    ok = cap >= budget
    if funnel:
        ok = ok & jnp.asarray((d[:, 0] >= d[:, 1]) & (d[:, 1] >= d[:, 2]))
    if limit is not None:
        narrow = ok & jnp.all(jnp.asarray(d) <= jnp.asarray(limit)[None, :], axis=1)
        ok = jnp.where(jnp.any(narrow), narrow, ok)
    big = jnp.iinfo(jnp.int32).max
    score = jnp.where(ok, units * (1 << 20) + cap - budget, big)
    # k = 1 (every gradual event): the first minimum, what a stable sort puts first, in one
    # pass; a sort of all w1 w2 w3 blocks (262,144 at width 64) is single-threaded on a CPU
    idx = jnp.argmin(score)[None] if k == 1 else jnp.argsort(score, stable=True)[:k]
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
    dims = blocks(capacities(r, masks), budget, int(args["candidates"]),
                  funnel=bool(args["funnel"]))
    w = masking.apply(params, masks)

    def one(d):
        block = block_masks(r, d, masks)
        s = weight_scores(w, block) if args["repair"] else jnp.abs(masking.flatten_kernels(w))
        keep = selection.topk_mask(s, budget, masking.flatten_kernels(block))
        return selection.to_masks(keep, params)

    return jax.vmap(one)(dims), dims


def rescale(params, masks, start):
    """Every unit's incoming kernel column and bias times sqrt(fan-in in ``start`` / kept
    fan-in): the block starts with the scale PyTorch's default init gives a layer of its kept
    fan-in (a unit keeping 3 of 16 inputs: x sqrt(16 / 3))."""
    out = {}
    for name in models.LAYERS:
        kept = jnp.sum(masks[name]["kernel"], axis=0)
        full = jnp.sum(start[name]["kernel"], axis=0)
        f = jnp.sqrt(full / jnp.maximum(kept, 1)).astype(params[name]["kernel"].dtype)
        out[name] = {"kernel": params[name]["kernel"] * f[None, :],
                     "bias": params[name]["bias"] * f}
    return out


def live_units(masks) -> jax.Array:
    """Hidden units per layer with a kept incoming weight, (3,) int32."""
    return jnp.stack([jnp.sum(jnp.any(masks[n]["kernel"], axis=0)) for n in models.LAYERS[:3]])


def structured_prune(params, masks, start, target, *, repair: bool = True,
                     funnel: bool = True):
    """One gradual event: the block of the fewest top units (by "norm" of the current
    weights; no layer wider than its live units now) whose ``start`` weights hold ``target``,
    then the ``target`` best weights inside it (weights pruned earlier inside the block may
    come back, at 0). Bias rule applied."""
    p = masking.apply(params, masks)
    r = [ranks(x) for x in unit_scores(None, p, masks, None, "norm")]
    dims = blocks(capacities(r, start), target, 1, live_units(masks), funnel)[0]
    block = block_masks(r, dims, start)
    s = weight_scores(p, block) if repair else jnp.abs(masking.flatten_kernels(p))
    return selection.to_masks(selection.topk_mask(s, target, masking.flatten_kernels(block)),
                              params)


def gradual(params, masks, data, data_key, lr, schedule, budget, spec: training.Spec, *,
            restart_keys=None, repair: bool = True, funnel: bool = True,
            branch_epochs: int = 0) -> dict:
    """GMP's loop and cubic schedule (``during_training.gmp``: an event every Delta steps,
    199 + 2 of them in the study's recipe) with ``structured_prune`` as the event: units go
    first, the weights inside the surviving block after.

    ``restart_keys`` (R,) are R restarts (default: ``data_key`` alone): one model trains on
    ``data_key``'s data order for ``branch_epochs`` epochs (its events included), then R
    copies go on side by side, each on its own data order. Returns params, masks, train_loss,
    each with a leading axis R."""
    spe = training.steps_per_epoch(data, spec)
    num_steps = spec.epochs * spe
    delta, _ = during_training.gmp_delta(num_steps)
    num_events = (num_steps - 1) // delta
    targets = during_training.gmp_targets(models.num_weights(spec.widths), budget, num_steps)
    # Events 1 .. b - 1 are shared, b .. num_events - 1 per restart (then the last and the tail).
    b = int(np.clip(branch_epochs * spe // delta, 1, num_events))
    start = masks

    def train(params, opt_state, masks, key, first, n):
        return training.train_steps(params, opt_state, masks, data, key, lr,
                                           schedule, spec, start=first, num_steps=n)

    def event(params, opt_state, masks, k):
        masks = structured_prune(params, masks, start, targets[k - 1], repair=repair,
                                 funnel=funnel)
        return (masking.apply(params, masks), training.mask_momentum(opt_state, masks),
                masks)

    def segments(carry, key, ks):
        def body(carry, k):
            params, opt_state, masks = event(*carry, k)
            params, opt_state, losses = train(params, opt_state, masks, key, k * delta, delta)
            return (params, opt_state, masks), losses

        carry, losses = jax.lax.scan(body, carry, ks)
        return carry, losses.reshape(-1)

    params = masking.apply(params, masks)
    opt_state = training.optimizer(spec).init(params)
    if restart_keys is None:
        restart_keys = jax.random.clone(data_key)[None]
    params, opt_state, head = train(params, opt_state, masks, data_key, 0, delta)
    carry, shared = segments((params, opt_state, masks), data_key,
                             jnp.arange(1, b, dtype=jnp.int32))

    def branch(key):
        (params, opt_state, masks), mid = segments(carry, key,
                                                   jnp.arange(b, num_events, dtype=jnp.int32))
        params, opt_state, masks = event(params, opt_state, masks, num_events)
        t_last = num_events * delta
        params, _, tail = train(params, opt_state, masks, key, t_last, num_steps - t_last)
        losses = jnp.concatenate([head, shared, mid, tail])
        return {"params": params, "masks": masks, "train_loss": jnp.mean(losses[-spe:])}

    return jax.vmap(branch)(restart_keys)


def gradual_blocks(widths, counts, funnel: bool = True) -> np.ndarray:
    """The blocks a dense start passes through at the weight counts ``counts`` (host, int
    (len(counts), 3)): ``blocks`` on the dense capacities 2 d1 + d1 d2 + d2 d3 + d3, each
    no wider than the one before."""
    w = models.check_widths(widths)
    d = np.stack(np.meshgrid(*(np.arange(1, x + 1) for x in w), indexing="ij"), -1)
    cap = jnp.asarray(2 * d[..., 0] + d[..., 0] * d[..., 1] + d[..., 1] * d[..., 2] + d[..., 2])
    out, limit = [], np.asarray(w)
    for c in counts:
        limit = np.asarray(blocks(cap, int(c), 1, limit, funnel)[0])
        out.append(limit)
    return np.asarray(out)


def _check(args, spec: training.Spec) -> None:
    if args["units"] not in UNIT_SCORES:
        raise ValueError(f"neurons: units must be one of {UNIT_SCORES}, got {args['units']!r}")
    if int(args["candidates"]) < 1:
        raise ValueError(f"neurons: candidates must be >= 1, got {args['candidates']}")
    for name in ("probe_epochs", "warmup_epochs", "branch_epochs"):
        if not 0 <= int(args[name]):
            raise ValueError(f"neurons: {name} must be >= 0, got {args[name]}")


def neurons_train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
    """One run of "neurons" (the module docstring; docs/neurons.md).

    Method args (``ARGS``): gradual (units pruned during training on GMP's schedule, else one
    shot), candidates (gradual: restarts; one shot: blocks), units ("norm" | "snip", one
    shot; gradual uses "norm"), funnel (d1 >= d2 >= d3 blocks only), repair (protect every
    block unit's largest in and out weight), branch_epochs (epochs the restarts share),
    probe_epochs (one shot: epochs each candidate trains before the choice; capped at
    spec.epochs), warmup_epochs (one shot: epochs of training the starting masks before
    scoring), rewind (one shot: the winner starts from the init rather than the warmed-up
    weights), rescale (one shot: ``rescale`` the start to the kept fan-in).

    Returns:
            ``training.result(...)`` of the chosen candidate.
    """
    args = during_training.resolve_args(spec, ARGS)
    _check(args, spec)
    keys = training.run_keys(variant.seed)
    start = variant.masks
    k = int(args["candidates"])
    if args["gradual"]:   # restarts: the run's data order, then k - 1 others
        first = jax.random.clone(keys["data"])[None]
        restart_keys = first if k == 1 else jnp.concatenate(
            [first, jax.random.split(keys["prune"], k - 1)])
        outs = gradual(training.initial_params(variant, spec, keys["init"]), start, data,
                       keys["data"], variant.lr, variant.schedule, variant.budget, spec,
                       restart_keys=restart_keys,
                       repair=bool(args["repair"]), funnel=bool(args["funnel"]),
                       branch_epochs=int(args["branch_epochs"]))
        best = jnp.argmin(jnp.where(jnp.isfinite(outs["train_loss"]), outs["train_loss"],
                                    jnp.inf))
        out = jax.tree.map(lambda a: a[best], outs)
        return training.result(out["params"], out["masks"], data, spec, out["train_loss"])
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
        if args["rescale"]:
            p = rescale(p, masks, start)
        p, _, loss = training.train_epochs(p, training.optimizer(spec).init(p), masks, data,
                                           keys["data"], variant.lr, variant.schedule, spec,
                                           num_epochs=epochs)
        return p, loss

    def pick(tree, i):
        return jax.tree.map(lambda a: a[i], tree)

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


def _table_cost(c: costs.Inputs) -> tuple:
    """The method table's cost (``analysis.flops``): the default's restarts of GMP's schedule.

    One gradual run trains at GMP's weight counts (1.00-1.03x GMP); ``candidates`` copies share
    the first ``branch_epochs`` of the recipe's 50 epochs. ``flops`` counts a setting exactly
    (docs/neurons.md: 2.8-3.0x GMP); this is within about 5% of it.
    """
    prune, extra, trained = costs.GMP.fn(c)
    r, b = int(ARGS["candidates"]), float(ARGS["branch_epochs"])
    return prune, extra, trained * (1 + (r - 1) * (1 - b / 50))


def _epochs(spec: training.Spec, args: dict) -> float:
    """Epochs of training one run costs: gradual, ``candidates`` restarts sharing the first
    ``branch_epochs``; one shot, the warm-up, each candidate's probe, then the winner."""
    k, e = int(args["candidates"]), int(spec.epochs)
    if args["gradual"]:
        return e + (k - 1) * (e - min(int(args["branch_epochs"]), e))
    return e + int(args["warmup_epochs"]) + k * min(int(args["probe_epochs"]), e)


registry.register("neurons", neurons_train, kind="train", args=ARGS,
                  cost=costs.Cost(_table_cost), epochs=_epochs)


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
    gmp = analysis.flops("gmp", widths, budget, nnz=nnz, epochs=epochs, n=n, batch=batch)
    if a["gradual"]:
        # GMP's weight counts step by step, each with the biases of its block (d1 + d2 + d3
        # + 1: every block unit keeps a weight out). From a dense start the blocks depend on
        # the counts only (``gradual_blocks``), once per restart.
        widths = models.check_widths(widths)
        n_w, t = models.num_weights(widths), epochs * (n // batch)
        events = during_training.gmp_event_steps(t)
        delta, k = during_training.gmp_delta(t)
        counts = [min(max(c, int(budget)), n_w) for c in
                  during_training.gmp_counts(n_w, int(budget), len(events), delta=delta, n=k)]
        dims = gradual_blocks(widths, counts, funnel=bool(a["funnel"]))
        params = [models.num_params(widths)] + [w + int(d.sum()) + 1
                                                for w, d in zip(counts, dims)]
        bounds = np.concatenate([[0], events, [t]])
        per = np.asarray([p * batch * int(hi - lo)
                          for p, lo, hi in zip(params, bounds[:-1], bounds[1:])], float)
        # The first b segments (until event b, ``gradual``'s branch point) run once.
        b = int(np.clip(int(a["branch_epochs"]) * (n // batch) // delta, 1, len(events)))
        total = per[:b].sum() + int(a["candidates"]) * per[b:].sum()
        train = epochs * (n // batch) * batch * nnz
        return {"prune": float(total - train), "train": float(train), "total": float(total),
                "gmp": float(gmp["total"]), "relative_to_gmp": float(total / gmp["total"])}
    samples = (n // batch) * batch
    dense = models.num_params(widths)
    k, probe = int(a["candidates"]), min(int(a["probe_epochs"]), epochs)
    prune = a["warmup_epochs"] * samples * dense + (batch * dense if a["units"] == "snip" else 0)
    if k > 1 and probe:
        prune += (k - 1 if probe == epochs else k) * probe * samples * nnz
    train = epochs * samples * nnz
    total = prune + train
    return {"prune": float(prune), "train": float(train), "total": float(total),
            "gmp": float(gmp["total"]), "relative_to_gmp": float(total / gmp["total"])}
