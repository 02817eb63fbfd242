"""The "neurons" pruner: the pruner contract, a hand-worked choice of units and block, purity
(same inputs, same masks; jit and vmap agree), exact budgets over every budget, connectivity,
its FLOPs, and one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pruning_contract_test as contract
import pytest

from spiralprune import analysis, masking, models, populations, training
from spiralprune.pruning import checks, connected, neurons


@pytest.fixture(scope="module")
def data(spiral_640):
    return spiral_640


# The default (gradual, one run) also runs in pruning_api_test's contract of every pruner.
@pytest.mark.parametrize("args", [(("gradual", True), ("candidates", 2), ("branch_epochs", 1)),
                                  (("gradual", False), ("candidates", 3), ("warmup_epochs", 1),
                                   ("rewind", False), ("rescale", True))])
def test_contract_suite(data, args, monkeypatch):
    monkeypatch.setitem(contract.ARGS, "neurons", args)
    contract.test_contract("neurons", data)


def _hand_params():
    """Widths 3: every kernel entry 1, scaled so the unit norms are read off by hand."""
    k0 = np.ones((2, 3)) * np.array([1.0, 3.0, 2.0])[None, :]      # layer-1 in: 1, 3, 2
    k1 = np.ones((3, 3)) * np.array([2.0, 1.0, 3.0])[None, :]      # rows equal; layer-2 in
    k2 = np.ones((3, 3)) * np.array([1.0, 1.0, 5.0])[None, :]      # rows equal; layer-3 in
    k3 = np.array([[4.0], [1.0], [0.5]])
    return {name: {"kernel": jnp.asarray(k, jnp.float32), "bias": jnp.zeros(k.shape[1])}
            for name, k in zip(models.LAYERS, (k0, k1, k2, k3))}


def test_hand_worked_units_block_and_weights(data):
    params = _hand_params()
    masks = masking.ones_like(params)
    # Layer 1: |in| = sqrt(2) (1, 3, 2), |out| equal -> units 1, 2, 0.
    # Layer 2: |in| = sqrt(3) (2, 1, 3), |out| equal -> 2, 0, 1.
    # Layer 3: |in| = sqrt(3) (1, 1, 5), |out| = (4, 1, 0.5) -> 4, 1, 2.5 -> 0, 2, 1.
    s = neurons.unit_scores(None, params, masks, data, "norm")
    r = [np.asarray(neurons.ranks(x)) for x in s]
    np.testing.assert_array_equal(r[0], [2, 0, 1])
    np.testing.assert_array_equal(r[1], [1, 2, 0])
    np.testing.assert_array_equal(r[2], [0, 2, 1])
    cap = np.asarray(neurons.capacities(r, masks))
    for d1, d2, d3 in np.ndindex(3, 3, 3):   # a dense start: 2 a + a b + b c + c
        a, b, c = d1 + 1, d2 + 1, d3 + 1
        assert cap[d1, d2, d3] == 2 * a + a * b + b * c + c
    # Budget 6: (1,1,1) holds 5; four units: (2,1,1) 8, (1,2,1) 7, (1,1,2) 7: the fewest spare
    # weights, then the lower (d1, d2, d3) -> (1,1,2), then (1,2,1), then (2,1,1).
    np.testing.assert_array_equal(neurons.blocks(jnp.asarray(cap), 6, 3, funnel=False),
                                  [[1, 1, 2], [1, 2, 1], [2, 1, 1]])
    # Funnel blocks (d1 >= d2 >= d3): (2,1,1) holds 8; then five units, (2,2,1) and (3,1,1)
    # both 11: the lower first.
    np.testing.assert_array_equal(neurons.blocks(jnp.asarray(cap), 6, 3),
                                  [[2, 1, 1], [2, 2, 1], [3, 1, 1]])
    # No block narrower than (1, 1, 1) holds 6, so the limit is dropped.
    np.testing.assert_array_equal(neurons.blocks(jnp.asarray(cap), 6, 1, limit=(1, 1, 1)),
                                  [[2, 1, 1]])
    np.testing.assert_array_equal(neurons.blocks(jnp.asarray(cap), 5, 1, limit=(1, 1, 1)),
                                  [[1, 1, 1]])
    # Block (1,1,2): unit 1 | unit 2 | units 0 and 2. Its 7 weights: k0[0,1] = k0[1,1] = 3,
    # k1[1,2] = 3, k2[2,0] = 1, k2[2,2] = 5, k3[0] = 4, k3[2] = 0.5.
    args = {**neurons.ARGS, "candidates": 1, "repair": False, "funnel": False}

    def choose(args):
        return jax.jit(lambda p, m: neurons.choose(None, p, m, data, 6, args=args))(params,
                                                                                    masks)

    cands, dims = choose(args)
    np.testing.assert_array_equal(dims, [[1, 1, 2]])
    kept = {n: np.argwhere(np.asarray(cands[n]["kernel"][0])).tolist() for n in models.LAYERS}
    # By |W| alone the smallest, k3[2] = 0.5, goes: layer-3 unit 2 is left a dead end.
    assert kept == {"layer0": [[0, 1], [1, 1]], "layer1": [[1, 2]],
                    "layer2": [[2, 0], [2, 2]], "layer3": [[0, 0]]}
    # Repaired: the largest in and out of every unit are protected (k0[0,1] wins the tie), so
    # the only unprotected weight, k0[1,1], goes and every weight is on a path.
    cands, _ = choose({**args, "repair": True})
    kept = {n: np.argwhere(np.asarray(cands[n]["kernel"][0])).tolist() for n in models.LAYERS}
    assert kept == {"layer0": [[0, 1]], "layer1": [[1, 2]],
                    "layer2": [[2, 0], [2, 2]], "layer3": [[0, 0], [2, 0]]}
    for name, bias in zip(models.LAYERS, ([0, 1, 0], [0, 0, 1], [1, 0, 1], [1])):
        np.testing.assert_array_equal(cands[name]["bias"][0], np.asarray(bias, bool))


def test_hand_worked_gradual_event():
    """A gradual event on the hand-worked params: the funnel block (2,1,1) of 8 weights holds
    6: layer-1 units 1 and 2, layer-2 unit 2, layer-3 unit 0. Protected: k0[0,1] and k0[0,2]
    (ties to the lower row), k1[1,2] and k1[2,2] (outs), k2[2,0], k3[0]; k0[1,1], k0[1,2] go."""
    params = _hand_params()
    ones = masking.ones_like(params)
    masks = jax.jit(lambda p, m: neurons.structured_prune(p, m, m, 6))(params, ones)
    kept = {n: np.argwhere(np.asarray(masks[n]["kernel"])).tolist() for n in models.LAYERS}
    assert kept == {"layer0": [[0, 1], [0, 2]], "layer1": [[1, 2], [2, 2]],
                    "layer2": [[2, 0]], "layer3": [[0, 0]]}
    np.testing.assert_array_equal(neurons.live_units(masks), [2, 1, 1])


def test_rescale_by_hand():
    params = _hand_params()
    ones = masking.ones_like(params)
    masks = jax.jit(lambda p, m: neurons.structured_prune(p, m, m, 6))(params, ones)
    out = neurons.rescale(masking.apply(params, masks), masks, masking.ones_like(params))
    # Layer-2 unit 2 keeps 2 of 3 inputs (3 each): x sqrt(3/2); layer-1 units keep 1 of 2.
    np.testing.assert_allclose(out["layer1"]["kernel"][:, 2], [0, 3 * np.sqrt(1.5),
                                                               3 * np.sqrt(1.5)], rtol=1e-6)
    np.testing.assert_allclose(out["layer0"]["kernel"][0], [0, 3 * np.sqrt(2), 2 * np.sqrt(2)],
                               rtol=1e-6)
    np.testing.assert_allclose(out["layer3"]["kernel"][:, 0], [4 * np.sqrt(3), 0, 0], rtol=1e-6)


def test_snip_unit_scores_match_numpy(data):
    """|dL/dc| of a gate on each unit = |sum of g * W over its outgoing row| (float64 ref)."""
    params = models.init(jax.random.key(4), 4)
    key = jax.random.key(5)
    s = neurons.unit_scores(key, params, masking.ones_like(params), data, "snip", 64)
    from spiralprune.pruning import at_init
    x, y = at_init.draw_batch(jax.random.key(5), data, 64)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    w = [np.asarray(params[n]["kernel"], np.float64) for n in models.LAYERS]
    b = [np.asarray(params[n]["bias"], np.float64) for n in models.LAYERS]
    for layer in range(3):
        def loss(c, layer=layer):
            h = x
            for i in range(4):
                h = h @ w[i] + b[i]
                if i < 3:
                    h = np.maximum(h, 0) * (c if i == layer else 1.0)
            z = h[:, 0]
            return np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
        eps, ref = 1e-6, []
        for j in range(4):
            e = np.zeros(4)
            e[j] = eps
            ref.append(abs(loss(1 + e) - loss(1 - e)) / (2 * eps))
        np.testing.assert_allclose(s[layer], ref, rtol=1e-3, atol=1e-6)


def _sparse_start(width, seed=0):
    like = models.init(jax.random.key(0), width)
    n = models.num_weights(width)
    keep = np.random.default_rng(seed).random(n) < 0.7
    from spiralprune.pruning import selection
    return selection.to_masks(jnp.asarray(keep), like), int(keep.sum())


@pytest.mark.parametrize("repair", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_exact_budgets_pure_jit_vmap(data, repair, sparse):
    width = 4
    params = models.init(jax.random.key(3), width)
    masks, eligible = _sparse_start(width) if sparse else (
        masking.ones_like(params), models.num_weights(width))
    args = {**neurons.ARGS, "candidates": 3, "repair": repair, "units": "snip"}
    budgets = jnp.arange(1, eligible)

    def fn(b):
        return neurons.choose(jax.random.key(9), params, masks, data, b, args=args)

    out, dims = jax.jit(jax.vmap(fn))(budgets)
    again, _ = jax.jit(jax.vmap(fn))(budgets)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    nnz = np.asarray(jax.vmap(jax.vmap(masking.nnz_weights))(out))
    np.testing.assert_array_equal(nnz, np.repeat(np.asarray(budgets)[:, None], 3, axis=1))
    start = np.asarray(masking.flatten_kernels(masks))
    flat = np.asarray(jax.vmap(jax.vmap(masking.flatten_kernels))(out))
    assert not (flat & ~start).any(), "kept weights outside the starting masks"
    ruled = masking.bias_rule(out)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ruled)):
        np.testing.assert_array_equal(a, b)
    for i in (0, len(budgets) // 2, len(budgets) - 1):   # jit alone == vmapped member
        alone, d = jax.jit(fn)(budgets[i])
        np.testing.assert_array_equal(d, dims[i])
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(out)):
            np.testing.assert_array_equal(a, b[i])
    if repair and not sparse:
        # Every block unit keeps a weight in and out once the budget holds the protected ones.
        r = [neurons.ranks(x) for x in neurons.unit_scores(jax.random.key(9), params, masks,
                                                            data, "snip")]

        def check(d, keep):
            block = neurons.block_masks(r, d, masks)
            protected = jnp.sum(neurons.weight_scores(params, block) >= 1)
            on, _, _ = connected.on_path(keep, params)
            return protected, jnp.all(on == keep)

        protected, ok = jax.jit(jax.vmap(jax.vmap(check)))(dims, jnp.asarray(flat))
        held = np.asarray(budgets)[:, None] >= np.asarray(protected)
        assert held.sum() > len(budgets), "the budgets should hold the protected weights"
        assert np.all(np.asarray(ok)[held])


def test_train_picks_the_lowest_loss_candidate(data):
    spec = training.Spec(widths=(4,) * 3, epochs=1, batch_size=64, milestones=(1,),
                         cosine_t_max=1, method="neurons",
                         method_args=(("gradual", False), ("candidates", 3),
                                      ("probe_epochs", 1)))
    like = models.init(jax.random.key(0), 4)
    v = populations.make_variants(masks=masking.ones_like(like), lr=[0.1], schedule=["cosine"],
                                  seed=[5], budget=[20])
    out = populations.run(v, data, spec=spec, chunk_size=1)
    keys = training.run_keys(jnp.uint32(5))
    params0 = training.initial_params(jax.tree.map(lambda a: a[0], v), spec, keys["init"])
    cands, _ = jax.jit(lambda p, m: neurons.choose(keys["prune"], p, m, data, 20, args={
        **neurons.ARGS, "candidates": 3}))(params0, masking.ones_like(like))

    def train(m):
        p = masking.apply(params0, m)
        _, _, loss = training.train_epochs(p, training.optimizer(spec).init(p), m, data,
                                           keys["data"], v.lr[0], v.schedule[0], spec)
        return loss

    losses = np.asarray(jax.jit(jax.vmap(train))(cands))
    best = int(np.argmin(losses))
    for a, b in zip(jax.tree.leaves(out["masks"]), jax.tree.leaves(cands)):
        np.testing.assert_array_equal(a[0], b[best])
    np.testing.assert_allclose(out["train_loss"][0], losses[best], rtol=1e-5)


def test_flops():
    e, nnz = 390 * 128, 35.0
    f = neurons.flops(16, 25, nnz, {"gradual": False, "candidates": 8, "probe_epochs": 50})
    np.testing.assert_allclose(f["total"], 8 * 50 * e * nnz)          # 7 losers + the winner
    f = neurons.flops(16, 25, nnz, {"gradual": False, "candidates": 8, "probe_epochs": 5,
                                    "warmup_epochs": 2, "units": "snip"})
    want = 2 * e * 609 + 128 * 609 + 8 * 5 * e * nnz + 50 * e * nnz
    np.testing.assert_allclose(f["total"], want)
    np.testing.assert_allclose(f["gmp"], analysis.flops("gmp", 16, 25, nnz=nnz)["total"])
    np.testing.assert_allclose(f["relative_to_gmp"], want / f["gmp"])
    # Gradual: GMP's counts with every bias (49) counted; with the same nnz it is a little
    # above GMP's modelled count and below it plus all biases all the time.
    # Gradual from a dense start: GMP's weight counts, each with its block's biases.
    counts = [560, 300, 100, 40]
    dims = neurons.gradual_blocks(16, counts)
    np.testing.assert_array_equal(dims[-1], [5, 4, 2])   # 10 + 20 + 8 + 2 = 40, 11 units
    for c, d in zip(counts, dims):
        assert d[0] >= d[1] >= d[2] and 2 * d[0] + d[0] * d[1] + d[1] * d[2] + d[2] >= c
    assert np.all(np.diff(dims, axis=0) <= 0)   # never wider than before
    one = neurons.flops(16, 25, nnz, {"gradual": True, "candidates": 1})
    three = neurons.flops(16, 25, nnz, {"gradual": True, "candidates": 3, "branch_epochs": 0})
    shared = neurons.flops(16, 25, nnz, {"gradual": True, "candidates": 3, "branch_epochs": 2})
    # The first Delta steps (dense, before event 1) run once: a little under 3x.
    assert 2.9 * one["total"] < three["total"] < 3 * one["total"]
    assert one["total"] < shared["total"] < three["total"]
    assert 0.9 < one["relative_to_gmp"] < 1.2   # fewer biases, the same weight schedule
    assert neurons.flops(16, 25, nnz)["relative_to_gmp"] < 3   # the default: 3 restarts
    assert neurons.flops(3, 18, 26)["relative_to_gmp"] < 3


def test_bad_args_are_one_line_errors(data):
    for bad, match in ((("units", "bogus"), "units must be one of"),
                       (("candidates", 0), "candidates must be >= 1"),
                       (("probe_epochs", -1), "probe_epochs must be >= 0"),
                       (("branch_epochs", -1), "branch_epochs must be >= 0")):
        with pytest.raises(ValueError, match=match):
            checks.check("neurons", 4, [10], method_args=(bad,))


@pytest.mark.parametrize("funnel", [True, False])
def test_one_block_is_what_a_stable_sort_puts_first(funnel):
    """A gradual event asks for one block (k = 1), found in one pass instead of sorting every
    block: the same block as the sort's first, ties (equal units and spare) to the lower index,
    over random capacities with many ties, a limit and an unreachable budget."""
    rng = np.random.default_rng(0)
    for trial in range(20):
        cap = jnp.asarray(np.sort(rng.integers(0, 40, (6, 5, 4)), axis=None).reshape(6, 5, 4)
                          if trial % 2 else rng.integers(0, 40, (6, 5, 4)), jnp.int32)
        budget = int(rng.integers(1, 45))
        limit = None if trial % 3 else jnp.asarray(rng.integers(1, 6, 3), jnp.int32)
        got = neurons.blocks(cap, budget, 1, limit, funnel)
        want = neurons.blocks(cap, budget, 2, limit, funnel)[:1]   # k = 2: the sort
        np.testing.assert_array_equal(got, want)
