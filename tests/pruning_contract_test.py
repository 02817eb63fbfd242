"""The contract every method in registry.METHODS keeps, through populations.run.

One population of three runs with mixed budgets, lrs and schedules per method (width 4, one
epoch of 10 steps on 640 points; LTH 3 rounds, RigL updates every 3 steps, SynFlow 10
iterations), then one member again alone (padded to the same chunk, so no recompilation):
structure and dtype kept, exact budget, masked entries exactly zero, bias rule on the final
masks, member i equal to the same run alone, and validation errors before any compute.
"""

import jax
import numpy as np
import pytest

from spiralprune import masking, models, populations, training
from spiralprune.pruning import checks, registry

WIDTH = 4
BUDGETS = [10, 20, 30]  # N_4 = 44
ARGS = {"rigl": (("rigl_delta", 3),), "lth": (("lth_rounds", 3),),
        "synflow": (("synflow_iterations", 10),), "iter_snip": (("iter_steps", 3),),
        "force": (("iter_steps", 3),)}


@pytest.fixture(scope="module")
def data(spiral_640):
    return spiral_640


def _variants():
    like = models.init(jax.random.key(0), WIDTH)
    return populations.make_variants(masks=masking.ones_like(like), lr=[0.05, 0.1, 0.2],
                                     schedule=["constant", "cosine", "step"], seed=[11, 12, 13],
                                     budget=BUDGETS)


@pytest.mark.parametrize("method", registry.METHODS)
def test_contract(method, data):
    spec = training.Spec(widths=(WIDTH,) * 3, epochs=1, batch_size=64, milestones=(1,),
                         cosine_t_max=1, method=method, method_args=ARGS.get(method, ()))
    v = _variants()
    out = populations.run(v, data, spec=spec, chunk_size=3)
    alone = populations.run(jax.tree.map(lambda a: a[1:2], v), data, spec=spec, chunk_size=3)

    like = models.init(jax.random.key(0), WIDTH)
    assert jax.tree.structure(out["params"]) == jax.tree.structure(like)
    assert jax.tree.structure(out["masks"]) == jax.tree.structure(like)
    for p, m, ref in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(out["masks"]),
                         jax.tree.leaves(like)):
        assert p.shape == m.shape == (3,) + ref.shape
        assert p.dtype == np.float32 and m.dtype == bool
        assert np.all(p[~m] == 0), "masked entries must be exactly zero"
    mask_nnz = np.asarray(masking.nnz_weights(out["masks"]))
    want = [models.num_weights(WIDTH)] * 3 if method == "dense" else BUDGETS
    np.testing.assert_array_equal(mask_nnz, want)
    assert np.all(out["nnz_weights"] <= mask_nnz)
    np.testing.assert_array_equal(out["nnz"], masking.nnz(out["params"]))
    ruled = masking.bias_rule(out["masks"])
    for a, b in zip(jax.tree.leaves(out["masks"]), jax.tree.leaves(ruled)):
        np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(out["loss"]))
    # Member 1 trained beside others == the same run alone.
    for a, b in zip(jax.tree.leaves(alone["masks"]), jax.tree.leaves(out["masks"])):
        np.testing.assert_array_equal(a[0], b[1])
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(out)):
        np.testing.assert_allclose(a[0], b[1], rtol=1e-5, atol=1e-6)


def test_registry_names_and_errors():
    assert set(registry.METHODS) == {"dense", "random", "snip", "grasp", "synflow", "iter_snip",
                                     "force", "prospr", "gmp", "rigl", "lth"}
    assert all(callable(registry.train_fn(m)) for m in registry.METHODS)
    assert registry.train_fn("gmp") is registry.train_fn("gmp")  # compile cache hits
    with pytest.raises(ValueError, match="unknown pruning method 'magic'.*gmp, rigl, lth"):
        registry.train_fn("magic")
    for budget in (0, 44, 100):
        with pytest.raises(ValueError, match="need 1 <= budget < N_w = 44"):
            checks.check_budget(4, budget)
    assert checks.check_budget(4, 43) == 43
    checks.validate("snip", 16, [15, 30], "bench95")
    checks.validate("dense", 3, [1000])  # budgets do not apply to dense training
    with pytest.raises(ValueError, match="16 wide"):
        checks.validate("gmp", 32, [30], "bench995")
    with pytest.raises(ValueError, match="unknown init"):
        checks.validate("gmp", 8, [30], "he")
    with pytest.raises(ValueError, match="need 1 <= budget"):
        checks.validate("lth", 3, [15, 27])
    with pytest.raises(ValueError, match="unknown method_args"):
        checks.check_method_args("rigl", {"lth_rounds": 3})
    spec = training.Spec(widths=4, epochs=1, method="gmp", method_args=(("rigl_delta", 3),))
    with pytest.raises(ValueError, match="unknown method_args"):
        populations.run(_variants(), (np.zeros((128, 2)), np.zeros(128)), spec=spec)
