"""Masks that mirror params: apply, the bias rule, nonzero counts, block masks and compaction.

Masks are the params tree with bool leaves. The bias rule (docs/recipe.md, used by every
method): the bias of hidden neuron i of layer l is masked iff it feeds nothing, i.e. row i of
the next kernel (in, out) is all False; the classifier bias is never masked.

A neuron configuration (d1, d2, d3) inside a width-D model is a *block mask*: kernel l is
nonzero only in its top-left (d_{l-1}, d_l) block and biases beyond d_l are zero. Hidden units
outside the block then output exactly ReLU(0) = 0 and receive zero gradient, so training the
block-masked width-D model is the same computation as training the *compacted* (d1, d2, d3)
model made of the top-left blocks (``compact``), at a fraction of the cost.
"""

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import base, models


def ones_like(params: base.Params) -> base.Masks:
    """All-True masks with the structure and shapes of ``params``."""
    return jax.tree.map(lambda p: jnp.ones(jnp.shape(p), bool), params)


def apply(params: base.Params, masks: base.Masks) -> base.Params:
    """Zeroes masked entries (``where``, so NaN/inf in masked entries become exactly 0).

    One-line ValueError (at trace time, before any compute) if ``masks`` does not mirror
    ``params`` or a mask's shape cannot broadcast to its parameter's (e.g. other widths).
    """
    if jax.tree.structure(params) != jax.tree.structure(masks):
        raise ValueError(f"masks tree {jax.tree.structure(masks)} does not mirror params tree "
                         f"{jax.tree.structure(params)}")
    for path, p, m in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                          jax.tree.leaves(params), jax.tree.leaves(masks)):
        try:
            if jnp.broadcast_shapes(jnp.shape(m), jnp.shape(p)) != jnp.shape(p):
                raise ValueError
        except ValueError:
            raise ValueError(f"mask {jax.tree_util.keystr(path[0])} has shape {jnp.shape(m)}, "
                             f"params {jnp.shape(p)} (masks of other widths?)") from None
        check_binary(m, f"mask {jax.tree_util.keystr(path[0])}")
    return jax.tree.map(lambda p, m: jnp.where(m, p, jnp.zeros_like(p)), params, masks)


def check_binary(mask, what: str = "masks") -> None:
    """One-line ValueError if a concrete, non-bool ``mask`` holds values other than 0 and 1.

    Casting to bool would silently read 0.5 (or -1, NaN) as True; bool arrays and traced
    values (checked where they were made) pass.
    """
    if isinstance(mask, jax.core.Tracer) or np.dtype(getattr(mask, "dtype", object)) == np.bool_:
        return   # no copy of a device array that is bool anyway
    a = np.asarray(mask)
    bad = a[(a != 0) & (a != 1)] if a.dtype.kind in "biufc" else a.reshape(-1)
    if bad.size:
        raise ValueError(f"{what} must be bool or 0/1, got {bad.reshape(-1)[:3].tolist()} "
                         "(a cast to bool would read them as True)")


def check(params: base.Params, masks: base.Masks) -> None:
    """Raises a one-line ValueError unless ``masks`` mirrors ``params`` leaf for leaf."""
    ps, ms = jax.tree.structure(params), jax.tree.structure(masks)
    if ps != ms:
        raise ValueError(f"masks tree {ms} does not mirror params tree {ps}")
    for path, p, m in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                          jax.tree.leaves(params), jax.tree.leaves(masks)):
        if jnp.shape(p) != jnp.shape(m):
            name = jax.tree_util.keystr(path[0])
            raise ValueError(f"mask {name} has shape {jnp.shape(m)}, params {jnp.shape(p)}")


def bias_rule(masks: base.Masks) -> base.Masks:
    """Recomputes the bias masks from the kernel masks (works with or without a P axis)."""
    out = {}
    for i, name in enumerate(models.LAYERS):
        kernel = masks[name]["kernel"]
        if i < 3:
            bias = jnp.any(masks[models.LAYERS[i + 1]]["kernel"], axis=-1)
        else:
            bias = jnp.ones(kernel.shape[:-2] + kernel.shape[-1:], bool)
        out[name] = {"kernel": kernel, "bias": bias}
    return out


def from_kernels(kernel_masks) -> base.Masks:
    """Full masks from four kernel masks (in, out) [optionally with a leading P axis]."""
    for name, k in zip(models.LAYERS, kernel_masks):
        check_binary(k, f"kernel mask of {name}")
    masks = {name: {"kernel": jnp.asarray(k, bool), "bias": jnp.zeros(k.shape[-1:], bool)}
             for name, k in zip(models.LAYERS, kernel_masks)}
    return bias_rule(masks)


def nnz_weights(tree: base.PyTree) -> jax.Array:
    """Nonzero kernel entries (the pruning budget's count); per member if there is a P axis."""
    return sum(jnp.sum(tree[n]["kernel"] != 0, axis=(-2, -1)) for n in models.LAYERS)


def nnz(tree: base.PyTree) -> jax.Array:
    """Nonzero kernel and bias entries (the count the study's figures plot)."""
    return nnz_weights(tree) + sum(jnp.sum(tree[n]["bias"] != 0, axis=-1) for n in models.LAYERS)


def check_config(config, width: int) -> base.Widths:
    """Validates a neuron configuration (d1, d2, d3) that must fit inside width ``width``."""
    config = models.check_widths(config)
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if max(config) > width:
        raise ValueError(f"configuration {config} has a layer wider than the model width {width}")
    return config


def block_masks(config, width: int) -> base.Masks:
    """Masks of the width-``width`` model restricted to the neuron configuration ``config``."""
    config = check_config(config, width)
    dims = (2,) + config + (1,)
    full = (2, width, width, width, 1)
    masks = {}
    for i, name in enumerate(models.LAYERS):
        k = np.zeros((full[i], full[i + 1]), bool)
        k[: dims[i], : dims[i + 1]] = True
        b = np.zeros(full[i + 1], bool)
        b[: dims[i + 1]] = True
        masks[name] = {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
    return masks


def compact(tree: base.PyTree, config) -> base.PyTree:
    """The top-left (d1, d2, d3) blocks of a params or masks tree (P axis allowed in front)."""
    config = models.check_widths(config)
    dims = (2,) + config + (1,)
    return {name: {"kernel": tree[name]["kernel"][..., : dims[i], : dims[i + 1]],
                   "bias": tree[name]["bias"][..., : dims[i + 1]]}
            for i, name in enumerate(models.LAYERS)}


def expand(tree: base.PyTree, width: int) -> base.PyTree:
    """Zero-pads a compact params (or masks) tree back to width ``width`` (inverse of compact)."""
    full = (2, width, width, width, 1)
    out = {}
    for i, name in enumerate(models.LAYERS):
        k, b = tree[name]["kernel"], tree[name]["bias"]
        if k.shape[-2] > full[i] or k.shape[-1] > full[i + 1]:
            raise ValueError(f"cannot expand {name} of shape {k.shape} to width {width}")
        lead = [(0, 0)] * (k.ndim - 2)
        k = jnp.pad(k, lead + [(0, full[i] - k.shape[-2]), (0, full[i + 1] - k.shape[-1])])
        b = jnp.pad(b, lead + [(0, full[i + 1] - b.shape[-1])])
        out[name] = {"kernel": k, "bias": b}
    return out


def flatten_kernels(tree: base.PyTree) -> jax.Array:
    """The four kernels flattened and concatenated in layer order: (N,) (or (P, N))."""
    ks = [tree[n]["kernel"] for n in models.LAYERS]
    lead = ks[0].shape[:-2]
    return jnp.concatenate([k.reshape(lead + (-1,)) for k in ks], axis=-1)


def unflatten_kernels(vec: jax.Array, like: base.PyTree) -> base.PyTree:
    """Puts a flat (N,) kernel vector back into ``like``'s kernels (biases kept from ``like``)."""
    out, start = {}, 0
    for name in models.LAYERS:
        shape = like[name]["kernel"].shape
        size = int(np.prod(shape))
        out[name] = {"kernel": vec[start: start + size].reshape(shape).astype(vec.dtype),
                     "bias": like[name]["bias"]}
        start += size
    return out
