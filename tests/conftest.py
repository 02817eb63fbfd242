"""Strict JAX settings for every test: no implicit rank promotion, no PRNG key reuse."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)


@pytest.fixture(scope="session")
def spiral():
    from spiralprune import datasets

    return datasets.cubist_spiral()


@pytest.fixture(scope="session")
def spiral_640(spiral):
    """640 points of the spiral (a fixed subsample) as jax arrays: quick training in tests."""
    import jax.numpy as jnp
    import numpy as np

    x, y = spiral
    sub = np.random.default_rng(1).choice(len(y), 640, replace=False)
    return jnp.asarray(x[sub]), jnp.asarray(y[sub])
