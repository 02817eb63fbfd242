"""Tests of spiralprune.enumeration against hand-worked cases, a brute-force oracle, a literal
implementation of docs/search.md's order, and the study's mask counts."""

import itertools
import math

import numpy as np
import pytest

from spiralprune import enumeration

SMALL_SHAPES = [(a, b) for a in range(1, 13) for b in range(1, 13) if a * b <= 12]


def _as_lists(masks):
    return np.asarray(masks).astype(int).tolist()


def _literal_order(d_in, d_out):
    """docs/search.md's order written out literally with loops (slow, independent of the module)."""

    def vectors(cap, rows, n):
        if rows == 1:
            return [[n]]
        return [[k] + t for k in range(math.ceil(n / rows), min(cap, n - (rows - 1)) + 1)
                for t in vectors(k, rows - 1, n - k)]

    def rows_of(k):
        return [[1 if i in c else 0 for i in range(d_in)]
                for c in itertools.combinations(range(d_in), k)]

    def binary(row):
        return int("".join(map(str, row)), 2)

    out = []
    for n in range(max(d_in, d_out), d_in * d_out + 1):
        for ks in vectors(d_in, d_out, n):
            # itertools.product varies its last argument fastest: pass bottom row first.
            for rev in itertools.product(*[rows_of(k) for k in reversed(ks)]):
                m = list(reversed(rev))
                if any(ks[r] == ks[r + 1] and binary(m[r]) < binary(m[r + 1])
                       for r in range(d_out - 1)):
                    continue
                if all(any(row[c] for row in m) for c in range(d_in)):
                    out.append(m)
    return out


def test_spec_example_2x3_n3():
    got = enumeration.eligible_masks(2, 3, n=3)
    assert got.shape == (2, 3, 2) and got.dtype == bool
    assert _as_lists(got) == [[[1, 0], [1, 0], [0, 1]], [[1, 0], [0, 1], [0, 1]]]


def test_hand_checked_small_cases():
    assert _as_lists(enumeration.eligible_masks(1, 1)) == [[[1]]]
    assert _as_lists(enumeration.eligible_masks(2, 1)) == [[[1, 1]]]
    assert _as_lists(enumeration.eligible_masks(1, 2)) == [[[1], [1]]]
    # (2, 2): n=2 vector (1,1): rows [1,0] (value 2), [0,1] (value 1); bottom slowest, top fastest,
    #   bottom [1,0]: top [1,0] zero column, top [0,1] has 1 < 2; bottom [0,1]: top [1,0] kept.
    # n=3 vector (2,1): top [1,1] over bottom [1,0] then [0,1]. n=4: all ones.
    assert _as_lists(enumeration.eligible_masks(2, 2)) == [
        [[1, 0], [0, 1]], [[1, 1], [1, 0]], [[1, 1], [0, 1]], [[1, 1], [1, 1]]]
    # (2, 3): n=3 as in docs/search.md; n=4 vector (2,1,1): middle >= bottom; n=5 (2,2,1);
    # n=6 all ones.
    assert _as_lists(enumeration.eligible_masks(2, 3)) == [
        [[1, 0], [1, 0], [0, 1]], [[1, 0], [0, 1], [0, 1]],
        [[1, 1], [1, 0], [1, 0]], [[1, 1], [1, 0], [0, 1]], [[1, 1], [0, 1], [0, 1]],
        [[1, 1], [1, 1], [1, 0]], [[1, 1], [1, 1], [0, 1]], [[1, 1], [1, 1], [1, 1]]]


@pytest.mark.parametrize("d_in,d_out", SMALL_SHAPES)
def test_brute_force_oracle(d_in, d_out):
    masks = enumeration.eligible_masks(d_in, d_out)
    size = d_in * d_out
    codes = np.arange(2**size, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(size)) & 1).astype(bool).reshape(-1, d_out, d_in)
    bits = bits[bits.any(axis=2).all(axis=1) & bits.any(axis=1).all(axis=1)]

    def canonical(m):  # rows by (count, binary value) descending, as the rule implies
        rows = sorted((tuple(int(x) for x in r) for r in m), key=lambda r: (sum(r), r),
                      reverse=True)
        return tuple(rows)

    classes = {canonical(m) for m in bits}
    ours = [tuple(tuple(int(x) for x in r) for r in m) for m in masks]
    assert len(ours) == len(classes)  # so no two masks are row permutations of each other
    assert {canonical(m) for m in ours} == classes
    assert all(m == canonical(m) for m in ours)
    assert masks.any(axis=2).all() and masks.any(axis=1).all()
    counts = masks.sum(axis=(1, 2))
    assert np.all(np.diff(counts) >= 0)
    assert counts[0] == max(d_in, d_out) and counts[-1] == size


@pytest.mark.parametrize("d_in,d_out", [(a, b) for a, b in SMALL_SHAPES if a * b <= 9]
                         + [(3, 4), (4, 3), (2, 5), (5, 2)])
def test_order_matches_literal_spec(d_in, d_out):
    assert _as_lists(enumeration.eligible_masks(d_in, d_out)) == _literal_order(d_in, d_out)


def test_count_slices_and_read_only():
    full = enumeration.eligible_masks(3, 3)
    offsets = enumeration.count_offsets(3, 3)
    assert list(offsets) == list(range(3, 10))
    assert sum(b - a for a, b in offsets.values()) == len(full) == 57
    for n, (a, b) in offsets.items():
        sub = enumeration.eligible_masks(3, 3, n=n)
        assert np.array_equal(sub, full[a:b]) and (sub.sum(axis=(1, 2)) == n).all()
        assert enumeration.eligible_count(3, 3, n=n) == b - a
    assert enumeration.eligible_count(3, 3, n=2) == 0
    assert not full.flags.writeable
    with pytest.raises(ValueError):
        full[0, 0, 0] = False
    with pytest.raises(ValueError):
        enumeration.eligible_masks(0, 3)
    with pytest.raises(ValueError):
        enumeration.eligible_count(2, -1)


def test_study_counts():
    assert [enumeration.eligible_count(*s) for s in [(2, 7), (7, 3), (3, 3), (3, 1)]] == [
        34, 137257, 57, 1]
    assert enumeration.model_mask_count((7, 3, 3)) == 266004066
    assert enumeration.model_mask_count((3, 3, 3)) == 25992  # x 2 lr x 3 schedules = 155,952
    assert enumeration.model_mask_count((3, 2, 2)) == 416
    # (7,3,3) subset: 189,624 runs / 3 schedules; strict cap and first 3 W2 masks *per count*.
    assert enumeration.model_mask_count((7, 3, 3), max_weights=33, first_k={1: 3}) == 63208
    assert enumeration.model_mask_count((6, 3, 2), max_weights=31, first_k={1: 6}) == 23528


def _expected_layer_indices(space):
    """itertools.product of the layer lists, filtered by the subset rules (the oracle)."""
    lists = []
    for layer, (d_in, d_out) in enumerate(space.shapes):
        counts = enumeration.eligible_masks(d_in, d_out).sum(axis=(1, 2))
        k = space.first_k.get(layer)
        keep = [j for j, n in enumerate(counts) if k is None or (counts[:j] == n).sum() < k]
        lists.append([(pos, int(counts[j])) for pos, j in enumerate(keep)])
    out = []
    for combo in itertools.product(*lists):
        w = sum(n for _, n in combo[:3])
        if space.max_weights is None or w < space.max_weights:
            out.append([pos for pos, _ in combo])
    return np.array(out, dtype=np.int64).reshape(-1, 4)


@pytest.mark.parametrize("config,max_weights,first_k", [
    ((2, 2, 2), None, None),
    ((2, 2, 2), 9, None),
    ((2, 2, 2), None, {1: 2}),
    ((2, 3, 2), 12, {1: 1, 2: 3}),
    ((3, 2, 2), 14, {0: 2, 3: 1}),
    ((1, 1, 1), None, None),
    ((2, 2, 2), 3, None),  # cap below the minimum weight count: empty space
])
def test_layer_indices_round_trip(config, max_weights, first_k):
    space = enumeration.ModelMaskSpace(config, max_weights=max_weights, first_k=first_k)
    expected = _expected_layer_indices(space)
    assert len(space) == len(expected) == enumeration.model_mask_count(config, max_weights, first_k)
    got = space.layer_indices(np.arange(len(space)))
    assert np.array_equal(got, expected)
    if len(space):
        assert np.array_equal(space.layer_indices(len(space) - 1), expected[-1:])
        perm = np.random.default_rng(0).permutation(len(space))
        assert np.array_equal(space.layer_indices(perm), expected[perm])
    for bad in (-1, len(space), [0, len(space)]):
        with pytest.raises(ValueError):
            space.layer_indices(bad)


def test_kernel_masks_layout_and_counts():
    space = enumeration.ModelMaskSpace((3, 2, 2), max_weights=12, first_k={1: 2})
    idx = np.arange(len(space))
    kms = space.kernel_masks(idx)
    assert [k.shape for k in kms] == [(len(space), 2, 3), (len(space), 3, 2),
                                      (len(space), 2, 2), (len(space), 2, 1)]
    js = space.layer_indices(idx)
    for layer, (d_in, d_out) in enumerate(space.shapes):
        torch_layout = enumeration.eligible_masks(d_in, d_out)[space.layer_sources[layer]]
        assert np.array_equal(kms[layer], torch_layout[js[:, layer]].transpose(0, 2, 1))
    weights = sum(k.sum(axis=(1, 2)) for k in kms)
    assert np.array_equal(space.weight_counts(idx), weights)
    assert np.array_equal(space.param_counts(idx), weights + 3 + 2 + 2 + 1)
    assert (weights - 2 < 12).all()  # cap on the first three layers; layer 4 has 2 weights


def test_large_full_space_is_mixed_radix():
    space = enumeration.ModelMaskSpace((7, 3, 3))
    idx = np.array([0, 1, 57, 137257 * 57, 123456789, len(space) - 1], dtype=np.int64)
    radix = np.stack([idx // (137257 * 57), idx // 57 % 137257, idx % 57, 0 * idx], axis=1)
    assert np.array_equal(space.layer_indices(idx), radix)


def test_study_subset_7_3_3():
    space = enumeration.ModelMaskSpace((7, 3, 3), max_weights=33, first_k={1: 3})
    n1, n2, n3 = (c for c in space.layer_counts[:3])
    assert np.array_equal(np.unique(n2, return_counts=True)[1].clip(max=3),
                          np.unique(n2, return_counts=True)[1])
    g1, g2, g3 = np.meshgrid(np.arange(len(n1)), np.arange(len(n2)), np.arange(len(n3)),
                             indexing="ij")  # C order = product order, layer 1 slowest
    keep = (n1[g1] + n2[g2] + n3[g3] < 33).ravel()
    expected = np.stack([g.ravel()[keep] for g in (g1, g2, g3)], axis=1)
    got = space.layer_indices(np.arange(len(space)))
    assert np.array_equal(got[:, :3], expected) and (got[:, 3] == 0).all()
    assert space.param_counts(np.arange(len(space))).max() <= 49


def test_bad_arguments():
    with pytest.raises(ValueError):
        enumeration.ModelMaskSpace((3, 0, 3))
    with pytest.raises(ValueError):
        enumeration.ModelMaskSpace((3, 3, 3), first_k={4: 1})
    with pytest.raises(ValueError):
        enumeration.ModelMaskSpace((3, 3, 3), first_k={1: 0})
    with pytest.raises(ValueError):
        enumeration.ModelMaskSpace((3, 3, 3), max_weights=0)
    with pytest.raises(ValueError):
        enumeration.ModelMaskSpace((3, 3, 3)).layer_indices(np.array([0.5]))
