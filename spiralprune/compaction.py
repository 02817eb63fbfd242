"""Compacted training of fixed masks: each run trains the smallest model holding its masks.

A pruner at initialisation keeps at most a few dozen of a wide model's weights, so most hidden
units carry nothing, yet a full-width population computes every one of their products. A
hidden unit is *active* when any of its incoming weights, outgoing weights or its bias is
unmasked (a unit with a kept bias and no inputs still feeds a constant forward; one with
inputs and no outputs still has weights that weight decay moves). An inactive unit outputs
ReLU(0) = 0, gets zero gradient and has every entry masked, so dropping it changes no number
of the run: the compacted model made of the active units (``gather``) trains the same run up
to float32 summation order, and its final params put back in place (``scatter``) are the
full-width run's record.

``run`` is ``populations.run`` for groups whose masks never change (``compactable``: dense
training of given masks, and the at-init pruners of ``pruning``: the six of the study,
``random`` and user pruners of the scores/masks kind). It draws each run's init and masks at
full width exactly as the full-width run does (same key, same kind;
``pruning.train_fns.init_and_prune``),
buckets the runs by their active widths (``buckets``: the merge rule of phase one's fixed-init
shapes, ``search.phase_one_buckets``), trains each bucket as its own population with the same
seeds (so the same data order) and Spec recipe, on whichever engine ``populations.engine``
picks for the bucket's shape, and scatters back: same output keys, shapes and full-width
masks as ``populations.run``. LTH (``run_lth``) trains its first round at full width and its
later rounds, whose masks are fixed, compacted. Other methods (GMP, RigL: their masks move
until the end) are handed to ``populations.run`` unchanged.

A run's bucket, hence its float32 rounding, depends on the active widths of the population
it is trained with (as phase one's shapes depend on its grid); its numbers otherwise depend
on its own seed and config only. A mask with no active unit in a layer keeps one fully
masked unit there (widths are at least 1): the bias-only model it is, exactly.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import base, masking, models, populations, search, training
from spiralprune.pruning import lottery, registry, train_fns  # the package registers the built-ins

HIDDEN = models.LAYERS[:3]


def active_units(masks: base.Masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which hidden units of each layer carry an unmasked entry.

    Args:
      masks: bool masks with a leading P axis (or without one).

    Returns:
      three bool arrays ([P,] d_l): unit j of hidden layer l is active iff column j of kernel
      l, row j of kernel l + 1 or bias j of layer l is unmasked.
    """
    out = []
    for i, name in enumerate(HIDDEN):
        incoming = np.asarray(masks[name]["kernel"], bool).any(axis=-2)
        outgoing = np.asarray(masks[models.LAYERS[i + 1]]["kernel"], bool).any(axis=-1)
        out.append(incoming | outgoing | np.asarray(masks[name]["bias"], bool))
    return tuple(out)


def active_widths(masks: base.Masks) -> np.ndarray:
    """The widths ([P,] 3) int64 a run compacts to: active units per layer, at least 1.

    A layer without active units keeps one fully masked unit (a width-0 layer is no model):
    it outputs 0, so the run is the bias-only model its masks describe.
    """
    return np.maximum(np.stack([a.sum(axis=-1) for a in active_units(masks)], -1), 1).astype(
        np.int64)


def buckets(widths, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """The shapes runs of active ``widths`` train at, and each run's.

    Phase one's merge rule (``search.phase_one_buckets``: from one bucket per distinct shape,
    merge the pair of buckets whose elementwise-largest shape saves the most estimated
    seconds, compilation against runs x weights x epochs), here free to merge across the lanes
    engine's range: a bucket of a few small runs would otherwise compile a program of its own
    to train for a second. Deterministic, and independent of the order of the runs (it sees
    only how many runs have each shape).

    Args:
      widths: (P, 3) active widths (``active_widths``).
      epochs: training epochs of a run.

    Returns:
      (shapes (K, 3) int64, assignment (P,) int64 index into shapes); every shape holds its
      members' widths.
    """
    widths = np.asarray(widths, np.int64).reshape(-1, 3)
    if not len(widths):
        raise ValueError("no runs to bucket")
    if widths.min() < 1:
        raise ValueError(f"active widths must be >= 1, got {widths.min()}")
    return search.phase_one_buckets(widths, 1, epochs, lanes_apart=False)


def unit_order(masks: base.Masks, shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per hidden layer, the (P, w_l) full-width units a compacted model of ``shape`` is made of.

    Active units first in their order, then inactive ones to fill ``shape`` (fully masked:
    they add nothing). Distinct, so ``scatter`` inverts ``gather``.
    """
    order = []
    for act, w in zip(active_units(masks), models.check_widths(shape)):
        act = np.atleast_2d(act)
        if w > act.shape[-1] or (act.sum(-1) > w).any():
            raise ValueError(f"shape {tuple(shape)} does not hold the active units "
                             f"(up to {act.sum(-1).max()} of {act.shape[-1]})")
        order.append(np.argsort(~act, axis=-1, kind="stable")[:, :w])
    return tuple(order)


def gather(tree: base.PyTree, order) -> base.PyTree:
    """The compacted params or masks (P leading) made of the units ``order`` (``unit_order``)."""
    rows = (None,) + tuple(order)        # layer l's kernel rows: the units of layer l - 1
    cols = tuple(order) + (None,)        # its columns and bias: the units of layer l
    out = {}
    for i, name in enumerate(models.LAYERS):
        k, b = np.asarray(tree[name]["kernel"]), np.asarray(tree[name]["bias"])
        if rows[i] is not None:
            k = np.take_along_axis(k, rows[i][:, :, None], axis=1)
        if cols[i] is not None:
            k = np.take_along_axis(k, cols[i][:, None, :], axis=2)
            b = np.take_along_axis(b, cols[i], axis=1)
        out[name] = {"kernel": k, "bias": b}
    return out


def scatter(tree: base.PyTree, order, widths) -> base.PyTree:
    """Puts compacted params (P leading) back at full ``widths``; zeros everywhere else."""
    dims = (2,) + models.check_widths(widths) + (1,)
    rows = (None,) + tuple(order)
    cols = tuple(order) + (None,)
    out = {}
    for i, name in enumerate(models.LAYERS):
        k, b = np.asarray(tree[name]["kernel"]), np.asarray(tree[name]["bias"])
        p = k.shape[0]
        r = np.broadcast_to(np.arange(k.shape[1]), (p, k.shape[1])) if rows[i] is None else rows[i]
        c = np.broadcast_to(np.arange(k.shape[2]), (p, k.shape[2])) if cols[i] is None else cols[i]
        full_k = np.zeros((p, dims[i], dims[i + 1]), k.dtype)
        full_k[np.arange(p)[:, None, None], r[:, :, None], c[:, None, :]] = k
        full_b = np.zeros((p, dims[i + 1]), b.dtype)
        full_b[np.arange(p)[:, None], c] = b
        out[name] = {"kernel": full_k, "bias": full_b}
    return out


def compactable(spec: training.Spec, train_fn: Callable | None = None) -> bool:
    """Whether ``run`` trains ``spec``'s runs compacted: their masks are fixed before training.

    Dense training of given masks and every at-init pruner (kinds "scores" and "masks") are;
    GMP, RigL, LTH and hooks are not (their masks move), nor an explicit ``train_fn``.
    """
    if train_fn is not None:
        return False
    return spec.method == "dense" or registry.get(spec.method).at_init


def compacts(spec: training.Spec, train_fn: Callable | None = None) -> bool:
    """Whether ``run`` trains any of ``spec``'s runs compacted: fixed masks (``compactable``)
    and LTH (its rounds after the first, ``run_lth``)."""
    return train_fn is None and (spec.method == "lth" or compactable(spec))


@functools.lru_cache(maxsize=32)
def _start_program(spec: training.Spec, pruner) -> Callable:
    """jit(vmap) of one run's full-width start: (masked init, fixed masks)."""
    if pruner is None:
        def start(variant, data):
            keys = training.run_keys(variant.seed)
            masks = variant.masks
            return masking.apply(training.initial_params(variant, spec, keys["init"]), masks), masks
    else:
        start = functools.partial(train_fns.init_and_prune, pruner, spec=spec)
    return jax.jit(jax.vmap(start, in_axes=(0, None)))


def starts(variants: training.Variant, data, *, spec: training.Spec,
           chunk_size: int | None = None) -> tuple[base.Params, base.Masks]:
    """Every run's full-width initial params (masked) and fixed masks, as its run draws them.

    Dense training: the run's init (given, or drawn from its init key) under its masks. An
    at-init pruner: ``pruning.train_fns.init_and_prune`` (its init kind, prune key and
    budget). A jitted
    vmap over chunks of runs (padded to one size, so one compilation).

    Returns:
      (params, masks) with NumPy leaves and leading axis P.
    """
    pruner = None if spec.method == "dense" else registry.get(spec.method)
    fn = _start_program(spec, pruner)
    p = populations.size(variants)
    devices = jax.local_devices()
    chunk = populations.balanced_chunk(
        p, chunk_size or populations.auto_chunk(spec, p, devices[:1]), 1)
    data = tuple(jnp.asarray(a, jnp.float32) for a in data)
    parts = []
    for start in range(0, p, chunk):
        stop = min(start + chunk, p)
        part = jax.tree.map(lambda a, s=start, e=stop: _pad(np.asarray(a)[s:e], chunk), variants)
        parts.append(jax.tree.map(lambda a, n=stop - start: np.asarray(a)[:n], fn(part, data)))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *parts)


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    if a.shape[0] == n:
        return a
    return np.concatenate([a, np.repeat(a[:1], n - a.shape[0], axis=0)])


def bucket_spec(spec: training.Spec, shape) -> training.Spec:
    """The Spec a bucket of ``spec``'s runs trains with: dense, given init, compact ``shape``.

    Same recipe (epochs, batch, schedules, precision); the engine is ``populations.engine``'s
    choice for the shape unless vmap was forced.
    """
    return dataclasses.replace(
        spec, widths=tuple(int(w) for w in shape), init="given", dist_widths=None,
        method="dense", method_args=(), engine="vmap" if spec.engine == "vmap" else "auto")


# --- LTH: its rounds after the first train fixed masks, compacted. ---


@functools.lru_cache(maxsize=16)
def _lth_round(r: int) -> Callable:
    """One LTH round's single-run train_fn (round ``r``): from the variant's params (the
    rewound init under its masks) for ``spec.epochs`` epochs of global steps
    ``r * round_steps ..``, the lr schedule restarted, as ``lottery.lth``'s scan trains it."""
    def train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
        keys = training.run_keys(variant.seed)
        spe = training.steps_per_epoch(data, spec)
        start = masking.apply(variant.params, variant.masks)
        params, _, losses = training.train_steps(
            start, training.optimizer(spec).init(start), variant.masks, data, keys["data"],
            variant.lr, variant.schedule, spec, start=r * spec.epochs * spe,
            num_steps=spec.epochs * spe, first_epoch=r * spec.epochs)
        return training.result(params, variant.masks, data, spec, jnp.mean(losses[-spe:]))
    train.__name__ = train.__qualname__ = f"lth_round_{r}"
    return train


@functools.lru_cache(maxsize=4)
def _lth_prune_program(reference_counts: bool) -> Callable:
    return jax.jit(jax.vmap(functools.partial(lottery.lth_prune,
                                              reference_counts=reference_counts)))


def lth_targets(num_weights: int, budgets, rounds: int, reference_counts: bool) -> np.ndarray:
    """(P, rounds) weights each run keeps in each round (``lottery.lth_targets`` per run)."""
    return np.stack([np.asarray(lottery.lth_targets(num_weights, int(b), rounds,
                                                    reference_counts=reference_counts))
                     for b in np.asarray(budgets).reshape(-1)])


def run_lth(variants: training.Variant, data, *, spec: training.Spec, chunk_size=None,
            devices=None, progress: Callable[[int, int], None] | None = None) -> dict:
    """``lottery.lth_train`` for a population, its rounds after the first compacted.

    Round 0 trains the dense start at full width; after each round the trained weights are
    pruned at full width (``lottery.lth_prune``, as the scan does) and the next round, whose
    masks are fixed, trains its runs bucketed by active widths (``buckets``) from the rewound
    init gathered to the bucket's shape; its trained params are scattered back. Equal to
    ``populations.run`` of LTH up to float32 summation order (a magnitude tie flipped by
    rounding prunes another weight, as a ReLU flip changes an accuracy).
    """
    args = lottery.resolve_args(spec)
    rounds, rc = int(args["lth_rounds"]), bool(args["reference_counts"])
    host = jax.tree.map(np.asarray, variants)
    p = populations.size(variants)
    dense = dataclasses.replace(spec, method="dense", method_args=())
    params0, masks = starts(variants, data, spec=dense, chunk_size=chunk_size)
    targets = lth_targets(models.num_weights(spec.widths), host.budget, rounds, rc)
    trained, out = None, None
    for r in range(rounds):
        if r:
            masks = jax.tree.map(np.asarray, _lth_prune_program(rc)(trained, masks,
                                                                   targets[:, r]))
        shapes, which = ((np.asarray([spec.widths]), np.zeros(p, np.int64)) if r == 0 else
                         buckets(active_widths(masks), spec.epochs))
        results = {}
        for k, shape in enumerate(shapes):
            pos = np.flatnonzero(which == k)
            sub = jax.tree.map(lambda a, i=pos: a[i], masks)
            order = unit_order(sub, shape)
            part = training.Variant(
                params=gather(jax.tree.map(lambda a, i=pos: a[i], params0), order),
                masks=gather(sub, order), lr=host.lr[pos], schedule=host.schedule[pos],
                seed=host.seed[pos], budget=host.budget[pos])
            res = populations.run(part, data, spec=bucket_spec(spec, shape),
                                  train_fn=_lth_round(r), devices=devices,
                                  chunk_size=min(chunk_size, len(pos)) if chunk_size else None)
            res["params"] = scatter(res["params"], order, spec.widths)
            res["masks"] = sub
            results[k] = (pos, res)
        out = _assemble(results, p)
        trained = out["params"]
        if progress:
            progress(p * (r + 1) // rounds, p)
    return out


def run(variants: training.Variant, data, *, spec: training.Spec,
        train_fn: Callable | None = None, chunk_size: int | None = None, devices=None,
        progress: Callable[[int, int], None] | None = None) -> dict:
    """``populations.run``, compacted where the masks are fixed (``compactable``).

    Same arguments and result: the record dict (params, masks, accuracy, loss, train_loss,
    diverged, nnz_weights, nnz) with NumPy leaves, leading axis P and full-width params and
    masks; equal to ``populations.run``'s up to float32 summation order. A method whose
    masks move is passed to ``populations.run`` as is.

    Args:
      variants, data, spec, train_fn, devices, progress: as ``populations.run``.
      chunk_size: runs per compiled call of the full-width start (the buckets' chunks are
        chosen by ``populations``, bounded by it).

    Returns:
      the record dict, as ``populations.run``.
    """
    if spec.method == "lth" and train_fn is None:
        populations.check_data(data)
        populations.check_shapes(variants, spec)
        return run_lth(variants, data, spec=spec, chunk_size=chunk_size, devices=devices,
                       progress=progress)
    if not compactable(spec, train_fn):
        return populations.run(variants, data, spec=spec, train_fn=train_fn,
                               chunk_size=chunk_size, devices=devices, progress=progress)
    populations.check_data(data)
    populations.check_steps(data, spec)
    if spec.init == "given" and not variants.params:
        raise ValueError("Spec.init is 'given' but the variants carry no params")
    populations.check_shapes(variants, spec)
    p = populations.size(variants)
    params0, masks = starts(variants, data, spec=spec, chunk_size=chunk_size)
    widths = active_widths(masks)
    shapes, which = buckets(widths, spec.epochs)
    host = jax.tree.map(np.asarray, variants)
    results, done = {}, 0
    for k, shape in enumerate(shapes):
        pos = np.flatnonzero(which == k)
        sub = jax.tree.map(lambda a, i=pos: a[i], masks)
        order = unit_order(sub, shape)
        part = training.Variant(
            params=gather(jax.tree.map(lambda a, i=pos: a[i], params0), order),
            masks=gather(sub, order), lr=host.lr[pos], schedule=host.schedule[pos],
            seed=host.seed[pos], budget=host.budget[pos])

        def tick(d, _, base_done=done):
            if progress:
                progress(base_done + d, p)
        cspec = bucket_spec(spec, shape)
        out = populations.run(part, data, spec=cspec, devices=devices, progress=tick,
                              chunk_size=min(chunk_size, len(pos)) if chunk_size else None)
        out["params"] = scatter(out["params"], order, spec.widths)
        out["masks"] = sub
        results[k] = (pos, out)
        done += len(pos)
    return _assemble(results, p)


def _assemble(results: dict, p: int) -> dict:
    """The buckets' record dicts put back in population order."""
    merged = None
    for pos, out in results.values():
        if merged is None:
            merged = jax.tree.map(lambda a: np.zeros((p,) + np.shape(a)[1:], np.asarray(a).dtype),
                                  out)

        def put(dst, src, i=pos):
            dst[i] = src
            return dst
        merged = jax.tree.map(put, merged, out)
    return merged
