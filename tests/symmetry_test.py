"""Structures of model masks: keys equal exactly on classes under hidden-unit permutations."""

import itertools

import numpy as np
import pytest

from spiralprune import enumeration, symmetry


def _permute(kernels, p1, p2, p3):
    """The same model with hidden units reordered: columns of W_l and rows of W_{l+1}."""
    k1, k2, k3, k4 = kernels
    return (k1[:, p1], k2[np.ix_(p1, p2)], k3[np.ix_(p2, p3)], k4[p3, :])


def _brute_equivalent(a, b, config):
    d1, d2, d3 = config
    for p1 in itertools.permutations(range(d1)):
        for p2 in itertools.permutations(range(d2)):
            for p3 in itertools.permutations(range(d3)):
                if all(np.array_equal(x, y) for x, y in zip(_permute(a, p1, p2, p3), b)):
                    return True
    return False


@pytest.mark.parametrize("config", [(3, 2, 2), (2, 3, 2), (3, 3, 1)])
def test_keys_equal_exactly_on_permutation_classes(config):
    space = enumeration.ModelMaskSpace(config)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(space), size=min(len(space), 60), replace=False)
    kernels = space.kernel_masks(idx)
    keys = symmetry.canonical_keys_from_kernels(kernels)
    per = [tuple(k[i] for k in kernels) for i in range(len(idx))]
    for i, j in itertools.combinations(range(len(idx)), 2):
        same_key = bool(np.array_equal(keys[i], keys[j]))
        assert same_key == _brute_equivalent(per[i], per[j], config), (idx[i], idx[j])


def test_keys_are_invariant_under_random_joint_permutations():
    config = (7, 3, 3)
    space = enumeration.ModelMaskSpace(config, max_weights=33, first_k={1: 3})
    rng = np.random.default_rng(1)
    idx = rng.choice(len(space), size=40, replace=False)
    kernels = space.kernel_masks(idx)
    keys = symmetry.canonical_keys_from_kernels(kernels)
    for i in range(len(idx)):
        one = tuple(k[i] for k in kernels)
        p1, p2, p3 = (rng.permutation(d) for d in config)
        moved = _permute(one, p1, p2, p3)
        moved_key = symmetry.canonical_keys_from_kernels(tuple(m[None] for m in moved))[0]
        np.testing.assert_array_equal(moved_key, keys[i])


def test_structures_count_matches_brute_force_classes():
    space = enumeration.ModelMaskSpace((3, 2, 2))
    ids, n = symmetry.structures(space)
    kernels = space.kernel_masks(np.arange(len(space)))
    # brute force: union the masks related by any permutation
    reps = []
    for i in range(len(space)):
        one = tuple(k[i] for k in kernels)
        if not any(_brute_equivalent(one, r, (3, 2, 2)) for r in reps):
            reps.append(one)
    assert n == len(reps) < len(space)
    assert ids[0] == 0 and ids.max() == n - 1
    assert len(np.unique(ids)) == n


def test_too_wide_middle_layer_is_one_line():
    k = [np.ones((1, 2, 1), bool), np.ones((1, 1, 8), bool), np.ones((1, 8, 1), bool),
         np.ones((1, 1, 1), bool)]
    with pytest.raises(ValueError, match="d2 <= 7"):
        symmetry.canonical_keys_from_kernels(k)
