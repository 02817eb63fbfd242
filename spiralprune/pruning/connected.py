"""A pruner of our own, written only with the public API: "connected" (the worked example).

The study finds that pruners leave weights on disconnected paths: a kept weight whose source
unit no input reaches, or whose target unit reaches no output, costs budget and does nothing.
"connected" spends the whole budget on input-to-output paths:

1. score the kernels (SNIP's |g ⊙ W| on one random batch by default, or |W|) and keep the
   top-f among the starting masks;
2. swap, one weight per round: drop the lowest-scored kept weight that lies on no
   input-to-output path of kept weights, and add the best-scored weight that connects a unit
   the inputs reach to a unit that reaches the output (on a path as soon as it is added,
   and it may bring dropped-looking weights back onto a path); if no weight closes a path,
   add the best weight leaving a unit the inputs reach (the reach grows a layer) and drop
   first the weights the inputs do not reach; stop when no kept weight is off the paths
   (``rounds`` at most, 64).

The budget stays exact: every round swaps one weight for one.

It is a "masks" pruner, ``(key, params, masks, data, budget) -> masks``; the library applies
the bias rule and trains the masks with the recipe. Use it as ``connected`` or by import path
``spiralprune.pruning.connected:connected``.
"""

import jax
import jax.numpy as jnp

from spiralprune import analysis, masking, models
from spiralprune.pruning import at_init, registry, scores, selection

ARGS = {"scores": "snip", "rounds": 64}


def reachability(keep: jax.Array, like) -> tuple[list, list]:
    """Units reached from the inputs (fwd[l]) and reaching the output (bwd[l]) through the
    kept kernel entries ``keep`` (flat (N,) bool), l = 0 (inputs) .. 4 (output)."""
    kernels = [m["kernel"] for m in (masking.unflatten_kernels(keep, like)[n]
                                     for n in models.LAYERS)]
    return analysis.reachability(kernels)   # the one definition of a path


def _flat(per_layer) -> jax.Array:
    return jnp.concatenate([a.ravel() for a in per_layer])


def on_path(keep: jax.Array, like) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(kept entries on an input-to-output path, entries that would be on one if added,
    entries whose source unit the inputs reach), all flat (N,) bool."""
    fwd, bwd = reachability(keep, like)
    layers = range(len(models.LAYERS))
    link = _flat([fwd[l][:, None] & bwd[l + 1][None, :] for l in layers])
    reached = _flat([fwd[l][:, None] & jnp.ones_like(bwd[l + 1])[None, :] for l in layers])
    return keep & link, ~keep & link, reached


@registry.register("connected", args=ARGS)
def connected(key, params, masks, data, budget, *, spec, args):
    """Top-f scores, then every weight off the input-to-output paths re-spent on one.

    Args:
      key: the run's prune key (draws the scoring batch).
      params, masks: the init and the starting masks (nothing outside them is kept).
      data: (x, y) training set; budget: int scalar f, may be traced.
      spec, args: filled by the library (batch size; method args "scores": "snip" or
        "magnitude", "rounds": 64).

    Returns:
      masks with exactly ``budget`` kernel entries inside ``masks``.
    """
    start = masking.flatten_kernels(masks)
    if args["scores"] == "snip":
        s = scores.snip(key, params, masks, at_init.draw_batch(key, data, spec.batch_size))
    elif args["scores"] == "magnitude":
        s = scores.magnitude(key, params, masks)
    else:
        raise ValueError(f"connected: scores must be 'snip' or 'magnitude', got "
                         f"{args['scores']!r}")
    keep = selection.topk_mask(s, budget, start)
    lowest, highest = jnp.finfo(s.dtype).min, jnp.finfo(s.dtype).max

    def swap(_, keep):
        kept, candidates, reached = on_path(keep, params)
        off = keep & ~kept
        candidates = candidates & start
        # No weight closes a path (a gap of two layers or more): grow forward from the units
        # the inputs reach instead, and drop first the weights the inputs do not reach.
        grow = ~keep & start & reached
        add_from = jnp.where(jnp.any(candidates), candidates, grow)
        drop_from = jnp.where(jnp.any(off & ~reached), off & ~reached, off)
        go = jnp.any(drop_from) & jnp.any(add_from)
        drop = jnp.argmin(jnp.where(drop_from, s, highest))
        add = jnp.argmax(jnp.where(add_from, s, lowest))
        swapped = keep.at[drop].set(False).at[add].set(True)
        return jnp.where(go, swapped, keep)

    keep = jax.lax.fori_loop(0, int(args["rounds"]), swap, keep)
    return selection.to_masks(keep, params)
