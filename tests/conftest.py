"""Strict JAX settings for every test: no implicit rank promotion, no PRNG key reuse."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)


@pytest.fixture(scope="session")
def spiral():
    from spiralprune import datasets

    return datasets.cubist_spiral()
