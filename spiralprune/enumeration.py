"""Enumeration of the eligible sparsity masks searched by the combinatorial search.

Follows docs/search.md and the study's `combinatorial_search/combinatorial_search.py`
(github.com/stephenqz/sparsest). For a layer with `d_in` inputs and `d_out` outputs,
`eligible_masks` lists every 0/1 mask of shape (d_out, d_in) (PyTorch layout, rows are output
neurons) with no all-zero row and no all-zero column, one per class of row permutations, in the
study's order:

1. the nonzero count n ascending from max(d_in, d_out) to d_in * d_out;
2. for each n, the row-count vectors k1 >= ... >= k_dout >= 1 summing to n with k1 <= d_in, k1
   ascending from ceil(n / d_out) to min(d_in, n - (d_out - 1)), the tail recursively with cap k1;
3. for each vector, every row runs over `itertools.combinations(range(d_in), k)` as 0/1 rows, the
   top row varying fastest and the bottom row slowest;
4. adjacent rows with equal counts need upper binary value >= lower (first entry most
   significant); masks with an all-zero column are dropped.

A model mask of configuration (d1, d2, d3) is one element of `itertools.product(L1, L2, L3, L4)`
over the layer lists of shapes (2, d1), (d1, d2), (d2, d3), (d3, 1). `ModelMaskSpace` indexes that
product (optionally restricted to the study's subsets) without ever building it: index -> per-layer
indices by a mixed-radix walk that counts completions under the weight cap.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np


def _count_vectors(cap: int, rows: int, n: int) -> list[tuple[int, ...]]:
    """Row-count vectors in the study's order (its `recursive_construct_budget`)."""
    if rows == 1:
        return [(n,)]
    out = []
    for k in range(math.ceil(n / rows), min(cap, n - (rows - 1)) + 1):
        out.extend((k,) + tail for tail in _count_vectors(k, rows - 1, n - k))
    return out


def _row_values(d_in: int, k: int) -> np.ndarray:
    """Binary values (first entry most significant) of the rows, in combinations order."""
    combos = itertools.combinations(range(d_in), k)
    return np.array([sum(1 << (d_in - 1 - c) for c in comb) for comb in combos], dtype=np.int64)


def _masks_for_vector(d_in: int, ks: tuple[int, ...]) -> np.ndarray:
    """Row values (M, len(ks)) of the eligible masks with row counts `ks`, in the study's order."""
    vals = _row_values(d_in, ks[-1])[:, None]
    for r in range(len(ks) - 2, -1, -1):
        new = _row_values(d_in, ks[r])
        below = np.repeat(vals, len(new), axis=0)  # lower rows vary slowest
        top = np.tile(new, len(vals))  # the new top row varies fastest
        if ks[r] == ks[r + 1]:
            keep = top >= below[:, 0]
            below, top = below[keep], top[keep]
        vals = np.concatenate([top[:, None], below], axis=1)
    full = (1 << d_in) - 1
    return vals[np.bitwise_or.reduce(vals, axis=1) == full]


def _check_dims(d_in: int, d_out: int) -> None:
    if d_in < 1 or d_out < 1:
        raise ValueError(f"layer dims must be >= 1, got d_in={d_in}, d_out={d_out}")


@functools.lru_cache(maxsize=None)
def _eligible(d_in: int, d_out: int) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[int, int]]]:
    """Full eligible list: (masks (M, d_out, d_in) bool, counts (M,) int64, offsets by count)."""
    shifts = np.arange(d_in - 1, -1, -1, dtype=np.int64)
    blocks, counts, offsets, start = [], [], {}, 0
    for n in range(max(d_in, d_out), d_in * d_out + 1):
        vals = [_masks_for_vector(d_in, ks) for ks in _count_vectors(d_in, d_out, n)]
        vals = np.concatenate(vals, axis=0) if vals else np.zeros((0, d_out), np.int64)
        blocks.append(((vals[:, :, None] >> shifts) & 1).astype(bool))
        counts.append(np.full(len(vals), n, dtype=np.int64))
        offsets[n] = (start, start + len(vals))
        start += len(vals)
    masks, counts = np.concatenate(blocks, axis=0), np.concatenate(counts)
    masks.flags.writeable = False
    counts.flags.writeable = False
    return masks, counts, offsets


def eligible_masks(d_in: int, d_out: int, n: int | None = None) -> np.ndarray:
    """Eligible masks of a layer in the study's enumeration order (docs/search.md).

    Args:
        d_in: number of inputs of the layer (columns), >= 1.
        d_out: number of outputs of the layer (rows), >= 1.
        n: if given, only the masks with exactly n nonzeros (a contiguous slice of the list).

    Returns:
        Read-only bool array (M, d_out, d_in), PyTorch layout; empty if no mask has n nonzeros.
    """
    _check_dims(d_in, d_out)
    masks, _, offsets = _eligible(int(d_in), int(d_out))
    if n is None:
        return masks
    start, stop = offsets.get(int(n), (0, 0))
    return masks[start:stop]


def eligible_count(d_in: int, d_out: int, n: int | None = None) -> int:
    """Number of eligible masks of a layer, in all or with exactly n nonzeros.

    Args:
        d_in: number of inputs of the layer, >= 1.
        d_out: number of outputs of the layer, >= 1.
        n: optional nonzero count.

    Returns:
        The count as a Python int.
    """
    return int(eligible_masks(d_in, d_out, n).shape[0])


def count_offsets(d_in: int, d_out: int) -> dict[int, tuple[int, int]]:
    """Slices of `eligible_masks(d_in, d_out)` by nonzero count.

    Args:
        d_in: number of inputs of the layer, >= 1.
        d_out: number of outputs of the layer, >= 1.

    Returns:
        Dict n -> (start, stop) for n = max(d_in, d_out) .. d_in * d_out, ascending.
    """
    _check_dims(d_in, d_out)
    return dict(_eligible(int(d_in), int(d_out))[2])


def layer_shapes(config: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    """(d_in, d_out) of the four layers of configuration (d1, d2, d3) of the 2-d1-d2-d3-1 MLP."""
    d1, d2, d3 = (int(d) for d in config)
    if min(d1, d2, d3) < 1:
        raise ValueError(f"config entries must be >= 1, got {tuple(config)}")
    return ((2, d1), (d1, d2), (d2, d3), (d3, 1))


class ModelMaskSpace:
    """The model masks of one configuration: a streamed, optionally filtered, layer product.

    Index i is the i-th element of `itertools.product(L1, L2, L3, L4)` (layer 1 slowest) restricted
    to the subset, where L_l is the layer's eligible list, optionally cut to its first k masks per
    nonzero count (`first_k`), and the subset keeps only masks with w1 + w2 + w3 < `max_weights`
    (the first three layers' nonzeros; layer 4 is not capped). The study's Appendix D
    subsets are (7,3,3) with max_weights=33, first_k={1: 3}; (6,3,2) with max_weights=31,
    first_k={1: 6}. Note the study launched runs grouped by (n1, n2, n3) first; the set is the same.

    Args:
        config: (d1, d2, d3), each >= 1.
        max_weights: optional strict cap on w1 + w2 + w3, >= 1.
        first_k: optional dict {layer_index (0..3): k >= 1}.
    """

    def __init__(self, config, max_weights: int | None = None, first_k: dict | None = None):
        self.shapes = layer_shapes(config)
        self.config = tuple(int(d) for d in config)
        if max_weights is not None and int(max_weights) < 1:
            raise ValueError(f"max_weights must be >= 1, got {max_weights}")
        self.max_weights = None if max_weights is None else int(max_weights)
        self.first_k = {int(k): int(v) for k, v in (first_k or {}).items()}
        for layer, k in self.first_k.items():
            if layer not in (0, 1, 2, 3) or k < 1:
                raise ValueError(f"first_k needs layer in 0..3 and k >= 1, got {layer}: {k}")
        sources, counts = [], []
        for layer, (d_in, d_out) in enumerate(self.shapes):
            full_counts = _eligible(d_in, d_out)[1]
            keep = np.arange(len(full_counts))
            if layer in self.first_k:
                offs = count_offsets(d_in, d_out).values()
                keep = np.concatenate([keep[a : min(b, a + self.first_k[layer])] for a, b in offs])
            sources.append(keep)
            counts.append(full_counts[keep])
        self.layer_sources = tuple(sources)  # filtered position -> index in eligible_masks list
        self.layer_counts = tuple(counts)  # nonzeros of each filtered mask, ascending
        self._kernel = tuple(
            np.ascontiguousarray(_eligible(*s)[0][src].transpose(0, 2, 1))
            for s, src in zip(self.shapes, sources)
        )
        self._build_tables()

    def _build_tables(self) -> None:
        """Completion counts per nonzero-count group and budget, for the index walk.

        T_l(b) = number of (i_l, .., i_4) whose capped counts sum to <= b (layer 4 uncapped).
        Within a layer every mask of count n has T_{l+1}(b - n) completions, so the walk first
        finds the count group (searchsorted on a small table), then divides inside the group.
        """
        top = int(sum(c[-1] for c in self.layer_counts[:3]))
        cap = top if self.max_weights is None else min(top, self.max_weights - 1)
        self._budget = cap
        budgets = np.arange(max(cap, 0) + 1)
        nxt = np.ones(len(budgets), dtype=np.int64)  # T_4(b) = 1 for b >= 0
        self._tables = [None] * 4
        for layer in range(3, -1, -1):
            n, starts, sizes = np.unique(self.layer_counts[layer], return_index=True,
                                         return_counts=True)
            if layer == 3:
                n = np.zeros_like(n)
            rest = budgets[:, None] - n[None, :]
            per_mask = np.where(rest >= 0, nxt[np.clip(rest, 0, None)], 0)  # (B+1, G)
            cum = np.zeros((len(budgets), len(n) + 1), dtype=np.int64)
            np.cumsum(per_mask * sizes[None, :], axis=1, out=cum[:, 1:])
            off = budgets.astype(np.int64) * (int(cum.max()) + 1)
            flat = (cum + off[:, None]).ravel()
            self._tables[layer] = (cum, per_mask, starts.astype(np.int64), off, flat)
            nxt = cum[:, -1]
        self._len = int(nxt[cap]) if cap >= 0 else 0

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return (f"ModelMaskSpace(config={self.config}, max_weights={self.max_weights}, "
                f"first_k={self.first_k}, len={self._len})")

    def layer_indices(self, indices) -> np.ndarray:
        """Per-layer positions (in the filtered layer lists) of model masks.

        Args:
            indices: int array (K,) (or scalar) of model-mask indices in [0, len(self)).

        Returns:
            int64 array (K, 4): position of each layer's mask in `layer_sources[l]` order.
        """
        idx = np.atleast_1d(np.asarray(indices))
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= self._len):
            raise ValueError(f"model-mask index out of range [0, {self._len}) in {self.config}")
        out = np.empty((idx.size, 4), dtype=np.int64)
        budget = np.full(idx.size, max(self._budget, 0), dtype=np.int64)
        for layer in range(4):
            cum, per_mask, starts, off, flat = self._tables[layer]
            pos = np.searchsorted(flat, idx + off[budget], side="right")
            group = pos - 1 - budget * cum.shape[1]
            rem = idx - cum[budget, group]
            weight = per_mask[budget, group]
            out[:, layer] = starts[group] + rem // weight
            idx = rem % weight
            if layer < 3:
                budget = budget - self.layer_counts[layer][out[:, layer]]
        return out

    def kernel_masks(self, indices) -> tuple[np.ndarray, ...]:
        """Weight masks of model masks in kernel layout.

        Args:
            indices: int array (K,) of model-mask indices.

        Returns:
            Four bool arrays, layer l of shape (K, d_in_l, d_out_l) (transpose of PyTorch layout).
        """
        js = self.layer_indices(indices)
        return tuple(k[js[:, layer]] for layer, k in enumerate(self._kernel))

    def weight_counts(self, indices) -> np.ndarray:
        """Nonzero weights of the four layers, (K,) int64, for model-mask indices (K,)."""
        js = self.layer_indices(indices)
        return sum(c[js[:, layer]] for layer, c in enumerate(self.layer_counts))

    def param_counts(self, indices) -> np.ndarray:
        """Nonzero parameters (weights + all d1 + d2 + d3 + 1 biases), (K,) int64."""
        return self.weight_counts(indices) + sum(self.config) + 1


def model_mask_count(config, max_weights: int | None = None, first_k: dict | None = None) -> int:
    """Number of model masks of a configuration (see `ModelMaskSpace`), as a Python int."""
    return len(ModelMaskSpace(config, max_weights=max_weights, first_k=first_k))
