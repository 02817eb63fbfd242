import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import datasets


def test_cubist_spiral_matches_reference_numbers(spiral):
    x, y = spiral
    assert x.shape == (49_982, 2) and y.shape == (49_982,)
    assert x.dtype == np.float32 and y.dtype == np.float32
    assert (y == 0).sum() == 24_991 and (y == 1).sum() == 24_991
    np.testing.assert_allclose(x.min(0), [-1.687, -2.202], atol=5e-4)
    np.testing.assert_allclose(x.max(0), [1.770, 1.742], atol=5e-4)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0, ddof=1), 1, atol=1e-5)
    # Labels: the first half is arm A (class 0), the second arm B (class 1).
    assert y[:24_991].max() == 0 and y[24_991:].min() == 1


def test_cubist_spiral_vertices_and_duplicated_interior_vertices(spiral):
    x, _ = spiral
    # Each segment includes both end points, so the 15 interior vertices of an arm appear
    # twice (segment i runs from v_{i+1} to v_i: the copies are not adjacent).
    arm_a = x[:24_991]
    assert len(arm_a) - len(np.unique(arm_a, axis=0)) == 15
    # Segment 0 starts at vertex 1 and ends at vertex 0 = the arm's first vertex.
    seg0 = int(np.argmax(np.all(arm_a[1:] == arm_a[0], axis=1))) + 1
    assert seg0 > 1000


def test_first_vertices_before_standardisation():
    k = np.arange(17)
    theta = 1.4 * np.pi + k * np.pi / 4
    u = np.stack([np.cos(theta), np.sin(theta)], 1)
    c = (10 * theta + np.pi)[:, None] * u
    shift = np.minimum((c + 15 * u).min(0), (c - 15 * u).min(0))
    np.testing.assert_allclose((c + 15 * u - shift)[0], [144.460118, 119.513287], atol=1e-5)
    np.testing.assert_allclose((c - 15 * u - shift)[0], [153.730628, 148.044982], atol=1e-5)


def test_classic_spiral_and_grid():
    x, y = datasets.classic_spiral(100)
    assert x.shape == (200, 2) and y.sum() == 100
    g = datasets.grid(4, 2.0)
    assert g.shape == (16, 2)
    np.testing.assert_allclose(g[0], [-2.0, 2.0])   # top-left: y is +extent
    np.testing.assert_allclose(g[-1], [2.0, -2.0])
    with pytest.raises(ValueError):
        datasets.grid(1)


@pytest.mark.parametrize("n", [1, 2, 7, 97, 128, 1000, 49_982])
def test_permute_is_a_bijection(n):
    key = jax.random.key(3)
    perm = np.asarray(jax.jit(datasets.permute, static_argnums=2)(key, jnp.arange(n), n))
    assert sorted(perm.tolist()) == list(range(n))
    if n > 100:   # a shuffle, not a near-identity: few fixed points, a far-reaching first batch
        assert np.sum(perm == np.arange(n)) < 10
        assert np.abs(np.corrcoef(perm, np.arange(n))[0, 1]) < 0.2


def _permute_reference(key, n):
    """The keyed Feistel permutation written plainly in NumPy uint32 (wrapping) arithmetic."""
    a, b = datasets._domain(n)
    rks = np.asarray(jax.random.bits(key, (datasets._FEISTEL_ROUNDS,), jnp.uint32))

    def feistel(v):
        left, right = v // np.uint32(b), v % np.uint32(b)
        for r, rk in enumerate(rks):
            m = np.uint32((a, b)[r % 2])
            h = (right + rk) * np.uint32(0x45D9F3B)
            h = h ^ (h >> np.uint32(16))
            h = h * np.uint32(0x45D9F3B)
            h = h ^ (h >> np.uint32(13))
            left, right = right, (left + h % m) % m
        return left * np.uint32(b) + right

    v = feistel(np.arange(n, dtype=np.uint32))
    while (v >= n).any():   # cycle walking
        v = np.where(v >= n, feistel(v), v)
    return v.astype(np.int64)


@pytest.mark.parametrize("n", [97, 1000, 49_982])
def test_permute_equals_the_plain_formula(n):
    # Pins the data order every recorded run used: a faster form must give the same numbers.
    with np.errstate(over="ignore"):
        for seed in (0, 5, 123):
            key = jax.random.key(seed)
            got = np.asarray(jax.jit(datasets.permute, static_argnums=2)(key, jnp.arange(n), n))
            np.testing.assert_array_equal(got, _permute_reference(jax.random.key(seed), n))


def test_mixed_radix_domain_avoids_cycle_walking_for_the_spiral():
    assert datasets._domain(49_982) == (134, 373)
    a, b = datasets._domain(97)   # a prime: cycle walking over a slightly larger domain
    assert a * b >= 97 and a * b - 97 < a


def test_batches_of_an_epoch_are_a_shuffled_partition(spiral):
    n, b = 1000, 128
    key = jax.random.key(0)
    steps = datasets.steps_per_epoch(n, b)
    idx = np.concatenate([np.asarray(datasets.batch_indices(key, 0, s, n, b))
                          for s in range(steps)])
    assert len(idx) == steps * b == len(set(idx.tolist()))   # drop-last, no repeats
    assert not np.array_equal(idx, np.arange(len(idx)))      # shuffled
    other_epoch = np.asarray(datasets.batch_indices(key, 1, 0, n, b))
    other_key = np.asarray(datasets.batch_indices(jax.random.key(1), 0, 0, n, b))
    assert not np.array_equal(idx[:b], other_epoch)
    assert not np.array_equal(idx[:b], other_key)
    # A shuffled first batch of the spiral mixes both classes.
    y = spiral[1]
    first = np.asarray(datasets.batch_indices(key, 0, 0, len(y), b))
    assert 20 < y[first].sum() < 108
