"""The public pruner API: the contract every registered pruner keeps, SNIP re-registered from
outside the package, registration forms, and one-line errors before any training.

Tiny models (width 4, N = 44) on 640 spiral points; at-init pruners are called directly
(``Pruner.prune``, vmapped), the others train one epoch of 10 steps through ``populations``.
"""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import datasets, masking, models, populations, pruning, training
from spiralprune.pruning import checks, registry, selection, signatures

WIDTH = 4
N = models.num_weights(WIDTH)  # 44
BUDGETS = [10, 17, 30]
# Small schedules so every pruner compiles and runs in seconds.
ARGS = {"rigl": (("rigl_delta", 3),), "lth": (("lth_rounds", 3),),
        "synflow": (("synflow_iterations", 10),), "iter_snip": (("iter_steps", 3),),
        "force": (("iter_steps", 3),), "connected": (("rounds", 8),)}


# --- Pruners registered from this file (outside the package): every kind once. ---


@pruning.register("test_hook_magnitude", every=5)
def _hook(key, params, masks, opt_state, step, budget, *, total_steps):
    """Magnitude pruning in two events: halfway to the budget at step 0, the budget at 5."""
    del key, opt_state
    n = masking.flatten_kernels(masks).sum()
    target = jnp.where(step == 0, (n + budget) // 2, budget)
    s = jnp.abs(masking.flatten_kernels(params))
    return selection.to_masks(selection.topk_mask(s, target, masking.flatten_kernels(masks)),
                              params)


@pruning.register
def own_train(variant, data, *, spec):
    """A whole single run: random masks inside the starting ones, trained as given."""
    keys = training.run_keys(variant.seed)
    params = training.initial_params(variant, spec, keys["init"])
    s = jax.random.uniform(keys["prune"], (N,))
    masks = selection.to_masks(selection.topk_mask(s, variant.budget,
                                                   masking.flatten_kernels(variant.masks)),
                               params)
    params = masking.apply(params, masks)
    opt = training.optimizer(spec).init(params)
    params, _, loss = training.train_epochs(params, opt, masks, data, keys["data"], variant.lr,
                                            variant.schedule, spec)
    return training.result(params, masks, data, spec, loss)


def _lowest_index(key, params, masks, data, budget):
    """A masks pruner: the first ``budget`` starting kernel entries."""
    del key, data
    start = masking.flatten_kernels(masks)
    return selection.to_masks(start & (jnp.cumsum(start) <= budget), params)


pruning.register("test_first_entries", _lowest_index)

SNIP_SOURCE = '''
import jax
import jax.numpy as jnp
from spiralprune import masking, models


def my_snip(key, params, masks, batch):
    """SNIP written from scratch: |dL/dW * W| at the masked params, as a params tree."""
    x, y = batch
    p = masking.apply(params, masks)
    loss = lambda q: jnp.mean(models.bce_with_logits(models.apply(q, x), y))
    g = jax.grad(loss)(p)
    return jax.tree.map(lambda gi, pi: jnp.abs(gi * pi), g, p)
'''


@pytest.fixture(scope="module")
def data(spiral_640):
    return spiral_640


def _start_masks():
    """Starting masks with 36 of the 44 kernel entries (some pruners must stay inside)."""
    like = models.init(jax.random.key(0), WIDTH)
    keep = np.ones(N, bool)
    keep[[0, 3, 9, 15, 20, 31, 40, 43]] = False
    return selection.to_masks(jnp.asarray(keep), like)


def _spec(name, **kw):
    return training.Spec(widths=(WIDTH,) * 3, epochs=1, batch_size=64, milestones=(1,),
                         cosine_t_max=1, method=name, method_args=ARGS.get(name, ()), **kw)


REGISTERED = [n for n in pruning.names() if n != "dense"]


@pytest.mark.parametrize("name", REGISTERED)
def test_contract(name, data):
    """Exact budget, inside the starting masks, same key same masks, vmappable."""
    pruner = pruning.get(name)
    # RigL keeps ERK per-layer counts, which a sparse start cannot always hold: it starts dense.
    start = _start_masks() if name != "rigl" else masking.ones_like(_start_masks())
    budgets = jnp.asarray(BUDGETS)
    if pruner.at_init:
        params = models.init(jax.random.key(3), WIDTH)
        def keys():   # the same keys afresh (the tests forbid reusing a key object)
            return jax.random.split(jax.random.key(7), len(BUDGETS))

        spec = _spec(name)
        fn = jax.jit(jax.vmap(lambda k, b: pruner.prune(k, params, start, data, b, spec=spec)))
        masks = fn(keys(), budgets)
        again = fn(keys(), budgets)
        alone = jax.jit(lambda k, b: pruner.prune(k, params, start, data, b, spec=spec))(
            keys()[1], budgets[1])
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(masks)):
            np.testing.assert_array_equal(a, b[1])   # vmapped member == the call alone
    else:
        v = populations.make_variants(masks=start, lr=[0.1] * 3, schedule=["cosine"] * 3,
                                      seed=[11, 12, 13], budget=BUDGETS)
        out = populations.run(v, data, spec=_spec(name), chunk_size=3)
        masks = out["masks"]
        again = populations.run(v, data, spec=_spec(name), chunk_size=3)["masks"]
        assert np.all(np.isfinite(out["loss"]))
    np.testing.assert_array_equal(masking.nnz_weights(masks), BUDGETS)
    for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)   # pure: same key, same masks
    if pruner.starts_from_masks:
        outside = np.asarray(masking.flatten_kernels(masks)) & ~np.asarray(
            masking.flatten_kernels(start))
        assert not outside.any(), f"{name} kept weights outside the starting masks"
    ruled = masking.bias_rule(masks)
    for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(ruled)):
        np.testing.assert_array_equal(a, b)


def test_snip_registered_from_outside_gives_the_builtin_masks(tmp_path, data):
    path = tmp_path / "outside_snip.py"
    path.write_text(SNIP_SOURCE)
    mine = pruning.get(f"{path}:my_snip")
    assert mine.kind == "scores" and not mine.builtin
    registered = pruning.register("outside_snip", mine.fn)   # a call works as well as a path
    params = models.bench_init("bench95", 16)
    masks = masking.ones_like(params)
    budgets = jnp.asarray([15, 18, 21, 24, 26, 60])
    x, y = datasets.cubist_spiral()
    full = (jnp.asarray(x), jnp.asarray(y))

    def keys():
        return jax.random.split(jax.random.key(0), 6)

    for pruner in (mine, registered):
        got = jax.vmap(lambda k, b, p=pruner: p.prune(k, params, masks, full, b))(keys(),
                                                                                 budgets)
        want = jax.vmap(lambda k, b: pruning.get("snip").prune(k, params, masks, full, b))(
            keys(), budgets)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(a, b)


def test_builtin_at_init_masks_match_at_init_functions(data):
    """The table's score pruners select exactly what at_init's functions do."""
    from spiralprune.pruning import at_init

    params = models.init(jax.random.key(2), WIDTH)
    ones = masking.ones_like(params)
    def key():
        return jax.random.key(5)

    want = {"random": at_init.random(key(), params, 17),
            "snip": at_init.snip(key(), params, data, 17, batch_size=64),
            "synflow": at_init.synflow(params, 17, 10),
            "force": at_init.force(key(), params, data, 17, 3, batch_size=64)}
    for name, w in want.items():
        got = pruning.get(name).prune(key(), params, ones, data, 17, spec=_spec(name))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(w)):
            np.testing.assert_array_equal(a, b)


def test_registration_forms():
    def scores_fn(key, params, masks, batch):
        return jnp.zeros(N)

    assert pruning.register("t_call", scores_fn).kind == "scores"
    assert pruning.register("t_deco")(scores_fn) is scores_fn   # decorator returns the function
    assert pruning.get("t_deco").fn is scores_fn
    p = pruning.register(pruning.Pruner(name="t_obj", kind="scores", fn=scores_fn, iterations=2))
    assert pruning.get("t_obj") is p and "t_obj" in pruning.names()
    assert pruning.names()[:len(registry.METHODS)] == registry.METHODS
    assert registry.train_fn("t_obj") is registry.train_fn("t_obj")   # made once
    assert registry.train_fn("dense") is training.train_run            # lanes engine keeps it
    with pytest.raises(ValueError, match="'snip' is built in"):
        pruning.register("snip", scores_fn)
    assert signatures.infer_kind("x", _lowest_index) == "masks"
    assert signatures.infer_kind("x", own_train) == "train"
    assert signatures.infer_kind("x", _hook) == "hook"


@pytest.mark.parametrize("source,attr,match", [
    ("", "nowhere_module_xyz:fn", "cannot import 'nowhere_module_xyz'"),
    ("def f(key, params, masks, batch):\n    return 0\n", "g", "has no attribute 'g'"),
    ("def f(key, params):\n    return 0\n", "f", "cannot tell what"),
    ("def f(key, params, masks, batch):\n    return {'layer0': 1}\n", "f",
     "score function returned"),
    ("import jax.numpy as jnp\ndef f(key, params, masks, batch):\n"
     "    return jnp.full(44, jnp.nan)\n", "f", "44 of 44 scores are NaN"),
    ("def f(key, params, masks, data, budget):\n    return masks\n", "f",
     "kept 44 weights at budget 10"),
    ("def f(key, params, masks, data, budget):\n    return params\n", "f",
     "returned float32 masks"),
    ("def f(key, params, masks, batch, *, temperature):\n    return 0\n", "f",
     "must take 4 positional"),
])
def test_bad_pruners_fail_in_one_line_naming_them(tmp_path, source, attr, match):
    if source:
        path = tmp_path / f"bad_{abs(hash(source))}.py"
        path.write_text(source)
        name = f"{path}:{attr}"
    else:
        name = attr
    with pytest.raises(ValueError, match=match) as e:
        checks.validate(name, WIDTH, [10, 30])
    assert "\n" not in str(e.value) and repr(name) in str(e.value)


def test_budget_outside_range_names_the_pruner():
    with pytest.raises(ValueError, match="'test_first_entries'.*need 1 <= budget < N_w = 44"):
        checks.validate("test_first_entries", WIDTH, [10, 44])
    with pytest.raises(ValueError, match="unknown pruning method 'magic'"):
        checks.validate("magic", WIDTH, [10])


def test_prune_plan_accepts_an_import_path(tmp_path):
    from spiralprune.configs import prune as prune_config
    from spiralprune.study import prune

    path = tmp_path / "planned.py"
    path.write_text(textwrap.dedent(SNIP_SOURCE))
    c = prune_config.get_config("smoke")
    c.grids.bench95.methods = ("random", f"{path}:my_snip")
    groups = prune.plan(c).groups
    stages = [g.stage for g in groups]
    assert any("my_snip" in s and ":" not in s for s in stages), stages
    c.grids.bench95.methods = (f"{tmp_path}/missing.py:f",)
    with pytest.raises(ValueError, match="cannot import"):
        prune.plan(c)


def test_a_pruner_says_what_one_run_costs_in_epochs():
    """The plan's time and chunk sizes count a run's training epochs as its pruner says:
    LTH's rounds, ``neurons``' restarts (sharing their first epochs), a user's own count."""
    from spiralprune.configs import prune as prune_config
    from spiralprune.study import prune

    def own(variant, data, *, spec):
        return training.train_run(variant, data, spec=spec)

    pruning.register("t_twice", own, kind="train", args={"times": 2},
                     epochs=lambda spec, args: spec.epochs * args["times"])
    c = prune_config.get_config("smoke")
    c.grids = {"random": c.grids.random}
    c.grids.random.methods = ("gmp", "lth", "neurons", "t_twice")
    c.epochs, c.method_args = 10, {"t_twice": {"times": 3}, "lth": {"lth_rounds": 4}}
    p = prune.plan(c)
    got = {g.method: prune.epochs_per_run(p, g) for g in p.groups}
    # neurons' default: 3 restarts sharing the first 2 epochs: 10 + 2 x (10 - 2)
    assert got == {"gmp": 10, "lth": 40, "neurons": 26, "t_twice": 30}
    with pytest.raises(ValueError, match="epochs must be a function"):
        pruning.Pruner(name="t_bad", kind="train", fn=own, epochs=5)
