import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import models


def test_shapes_and_counts():
    assert models.layer_shapes(16) == ((2, 16), (16, 16), (16, 16), (16, 1))
    assert models.num_weights(16) == 560
    assert models.num_params(16) == 609
    assert [models.num_weights(w) for w in (3, 4, 256)] == [27, 44, 131840]
    assert models.num_weights((7, 3, 3)) == 14 + 21 + 9 + 3
    # Many shapes at once, as phase one's buckets count them: each the sum over its layers.
    shapes = np.array([[[3, 2, 2], [7, 1, 10]], [[16, 16, 16], [1, 1, 1]]])
    expect = [[sum(a * b for a, b in models.layer_shapes(tuple(s))) for s in row]
              for row in shapes]
    np.testing.assert_array_equal(models.weights_of_shapes(shapes), expect)
    assert expect == [[18, 41], [560, 5]]


@pytest.mark.parametrize("bad", [0, (3, 0, 2), (1, 2), -4])
def test_bad_widths(bad):
    with pytest.raises(ValueError, match="widths"):
        models.check_widths(bad)


def test_torch_init_bounds_follow_fan_in():
    p = models.init(jax.random.key(0), (64, 64, 64))
    for name, fan_in in zip(models.LAYERS, (2, 64, 64, 64)):
        for leaf in p[name].values():
            bound = 1 / np.sqrt(fan_in)
            assert np.abs(leaf).max() <= bound
            if leaf.size > 50:   # uniform: the extremes come close to the bound
                assert np.abs(leaf).max() > 0.9 * bound
    # A compacted model draws from the wide model's distribution.
    small = models.init(jax.random.key(1), (3, 3, 3), dist_widths=(64, 64, 64))
    assert np.abs(small["layer1"]["kernel"]).max() <= 1 / 8


def test_xavier_is_untruncated_normal_with_glorot_variance():
    k = models.init(jax.random.key(0), (256, 256, 256), kind="xavier")["layer1"]["kernel"]
    std = np.sqrt(2 / 512)
    assert abs(np.std(k) / std - 1) < 0.02
    assert np.abs(k).max() > 3.5 * std   # a truncated normal would stop at 2 std


def test_apply_matches_numpy():
    p = models.init(jax.random.key(2), (4, 5, 3))
    x = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    h = x.astype(np.float64)
    for i, name in enumerate(models.LAYERS):
        h = h @ np.asarray(p[name]["kernel"], np.float64) + np.asarray(p[name]["bias"])
        if i < 3:
            h = np.maximum(h, 0)
    np.testing.assert_allclose(models.apply(p, x), h[:, 0], rtol=1e-5, atol=1e-6)
    y = (np.arange(7) % 2).astype(np.float32)
    ref = np.mean(np.logaddexp(0, h[:, 0]) - y * h[:, 0])
    np.testing.assert_allclose(models.loss(p, jnp.asarray(x), jnp.asarray(y)), ref, rtol=1e-5)


def test_bench_inits_checksums_and_slicing():
    for name, total in (("bench95", 0.653921), ("bench995", -0.576407)):
        p = models.bench_init(name)
        leaves = jax.tree.leaves(p)
        assert sum(leaf.size for leaf in leaves) == 609
        np.testing.assert_allclose(sum(float(np.sum(leaf)) for leaf in leaves), total, atol=1e-4)
        small = models.bench_init(name, (6, 3, 2))
        assert small["layer1"]["kernel"].shape == (6, 3)
        np.testing.assert_array_equal(small["layer1"]["kernel"], p["layer1"]["kernel"][:6, :3])
        np.testing.assert_array_equal(small["layer3"]["kernel"], p["layer3"]["kernel"][:2])
    # Layout: the study's first_layer.weight is (out=16, in=2), row 0 = [-0.6250597, 0.35606256].
    np.testing.assert_allclose(models.bench_init("bench95")["layer0"]["kernel"][:, 0],
                               [-0.6250597, 0.35606256])
    with pytest.raises(ValueError, match="16 wide"):
        models.bench_init("bench95", 32)
    with pytest.raises(ValueError, match="unknown fixed init"):
        models.bench_init("bench99")
