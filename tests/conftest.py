"""Strict JAX settings for every test: no implicit rank promotion, no PRNG key reuse."""

import os
import tempfile

import jax
import pytest

from spiralprune.study import rates as _rates

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)

# The plan's measured rates: never read or write the user's cache, and measure tiny cells
# (a dry run in a test measures once per session, in a few seconds).
os.environ["SPIRALPRUNE_CACHE_DIR"] = tempfile.mkdtemp(prefix="spiralprune-rates-")
_rates.WIDTHS, _rates.LANES_SHAPES, _rates.CALIBRATION_STEPS = (3, 16), ((3, 3, 3),), 2


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
