import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import masking, models


def test_bias_rule_hand_case():
    p = models.init(jax.random.key(0), (2, 3, 2))
    m = masking.ones_like(p)
    # Hidden unit 1 of layer 1 feeds nothing: row 1 of layer2's kernel (in, out) all False.
    m["layer2"]["kernel"] = jnp.array([[1, 1], [0, 0], [1, 0]], bool)
    # Unit 0 of layer 2 feeds nothing into the classifier.
    m["layer3"]["kernel"] = jnp.array([[0], [1]], bool)
    out = masking.bias_rule(m)
    np.testing.assert_array_equal(out["layer1"]["bias"], [True, False, True])
    np.testing.assert_array_equal(out["layer2"]["bias"], [False, True])
    np.testing.assert_array_equal(out["layer3"]["bias"], [True])
    np.testing.assert_array_equal(out["layer0"]["bias"], [True, True])
    applied = masking.apply(p, out)
    assert int(masking.nnz_weights(applied)) == 4 + 6 + 3 + 1
    assert int(masking.nnz(applied)) == 14 + 2 + 2 + 1 + 1


def test_block_masks_compact_expand_round_trip():
    p = models.init(jax.random.key(1), 5)
    m = masking.block_masks((3, 1, 2), 5)
    assert int(masking.nnz_weights(m)) == 2 * 3 + 3 * 1 + 1 * 2 + 2
    assert int(masking.nnz(m)) == 13 + 3 + 1 + 2 + 1
    small = masking.compact(masking.apply(p, m), (3, 1, 2))
    assert models.widths_of(small) == (3, 1, 2)
    back = masking.expand(small, 5)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(masking.apply(p, m))):
        np.testing.assert_array_equal(a, b)
    # The compact model computes the same function as the block-masked wide one.
    x = jnp.linspace(-2, 2, 20).reshape(10, 2)
    np.testing.assert_allclose(models.apply(small, x), models.apply(masking.apply(p, m), x),
                               rtol=1e-6)
    # Block masks obey the bias rule.
    for a, b in zip(jax.tree.leaves(m), jax.tree.leaves(masking.bias_rule(m))):
        np.testing.assert_array_equal(a, b)


def test_bad_config_and_mismatched_masks():
    with pytest.raises(ValueError, match="wider than"):
        masking.block_masks((3, 17, 2), 16)
    p = models.init(jax.random.key(0), 4)
    with pytest.raises(ValueError, match="shape"):
        masking.check(p, masking.ones_like(models.init(jax.random.key(0), 3)))


def test_flatten_round_trip_and_nan_masked():
    p = models.init(jax.random.key(0), (3, 4, 2))
    v = masking.flatten_kernels(p)
    assert v.shape == (models.num_weights((3, 4, 2)),)
    q = masking.unflatten_kernels(v, p)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_array_equal(a, b)
    m = masking.ones_like(p)
    m["layer0"]["kernel"] = m["layer0"]["kernel"].at[0, 0].set(False)
    bad = jax.tree.map(lambda a: a * jnp.nan, p)
    assert masking.apply(bad, m)["layer0"]["kernel"][0, 0] == 0
