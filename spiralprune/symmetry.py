"""Model masks up to a permutation of hidden neurons: distinct structures of a search space.

At the random init every weight of a layer is drawn independently from one distribution, and a
run's data order does not depend on its mask, so two model masks that differ only by a
permutation of the hidden units of a layer (rows of W_l and columns of W_{l+1} permuted
together, biases with them) train alike *in distribution*: the same accuracy distribution over
seeds. The search's enumeration (docs/search.md) takes one mask per class of row permutations
of each layer on its own, which is not this symmetry, so many of its masks are the same
structure: each is then an independent seed of that structure.

``canonical_keys`` maps a model mask to a key shared exactly by the masks of its class under
S_{d1} x S_{d2} x S_{d3}. Layer-1 units are described by their code (their 2 input bits and
their d2 output bits), layer-3 units by theirs (d2 input bits, 1 output bit); for a fixed order
of the layer-2 units, the multisets of those codes (sorted) describe the mask up to the
permutations of layers 1 and 3, so the key is the smallest, over the d2! orders of layer 2, of
the two sorted code lists. Cost: d2! sorts per mask, vectorised over masks.
"""

from __future__ import annotations

import itertools

import numpy as np

from spiralprune import enumeration

_MAX_D2 = 7   # 5,040 orders of the middle layer: beyond that, the key is too costly


def _codes(bits: np.ndarray) -> np.ndarray:
    """(K, U, B) bool -> (K, U) int64, first bit most significant."""
    weights = 1 << np.arange(bits.shape[-1] - 1, -1, -1, dtype=np.int64)
    return (bits.astype(np.int64) * weights).sum(-1)


def canonical_keys_from_kernels(kernels) -> np.ndarray:
    """Keys of K model masks given as their four kernel masks.

    Args:
      kernels: four bool arrays in kernel layout, (K, 2, d1), (K, d1, d2), (K, d2, d3),
        (K, d3, 1).

    Returns:
      (K, d1 + d3) int64: equal rows iff the masks are equal up to permutations of the hidden
      units of each layer.
    """
    k1, k2, k3, k4 = (np.asarray(k, bool) for k in kernels)
    d2 = k2.shape[2]
    if d2 > _MAX_D2:
        raise ValueError(f"canonical keys need d2 <= {_MAX_D2}, got {d2}")
    best = None
    for order in itertools.permutations(range(d2)):
        order = list(order)
        # layer-1 unit j: (input bits of column j of W1, its row of W2 in this order)
        c1 = _codes(np.concatenate([np.swapaxes(k1, 1, 2), k2[:, :, order]], axis=2))
        # layer-3 unit k: (its column of W3 in this order, its output bit)
        c3 = _codes(np.concatenate([np.swapaxes(k3[:, order, :], 1, 2), k4], axis=2))
        key = np.concatenate([np.sort(c1, axis=1), np.sort(c3, axis=1)], axis=1)
        if best is None:
            best = key
        else:
            # lexicographic minimum row by row
            diff = key != best
            first = np.where(diff.any(1), diff.argmax(1), 0)
            rows = np.arange(len(key))
            smaller = diff.any(1) & (key[rows, first] < best[rows, first])
            best = np.where(smaller[:, None], key, best)
    return best


def canonical_keys(space: enumeration.ModelMaskSpace, indices) -> np.ndarray:
    """``canonical_keys_from_kernels`` of the model masks ``indices`` of ``space``."""
    return canonical_keys_from_kernels(space.kernel_masks(np.asarray(indices, np.int64)))


def structures(space: enumeration.ModelMaskSpace, indices=None, chunk: int = 200_000):
    """Groups model masks by structure.

    Args:
      space: the model-mask space.
      indices: (M,) mask indices (default: all of the space).
      chunk: masks keyed at once (memory: about 100 bytes a mask per order of layer 2).

    Returns:
      (structure id (M,) int64, numbered by first appearance in ``indices``' order, and the
      number of distinct structures).
    """
    idx = np.arange(len(space)) if indices is None else np.asarray(indices, np.int64)
    keys = np.concatenate([canonical_keys(space, idx[i:i + chunk])
                           for i in range(0, len(idx), chunk)]) if len(idx) else \
        np.zeros((0, 1), np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # renumber by first appearance so ids do not depend on the key's encoding
    order = np.argsort(np.argsort(first, kind="stable"), kind="stable")
    return order[inverse], len(first)
