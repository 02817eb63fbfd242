"""Contracts of spiralprune.pruning.selection: exact top-k, tie rule, eligibility, idioms, ERK."""

import collections
import decimal
import fractions
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from spiralprune import masking, models
from spiralprune.pruning import selection


def oracle_topk(scores, k, eligible=None):
    """Plain-Python exact top-k: eligible first, score descending (NaN = -inf), lower index."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    el = np.ones(len(s), bool) if eligible is None else np.asarray(eligible)
    order = sorted(range(len(s)), key=lambda i: (not el[i], -s[i], i))
    keep = np.zeros(len(s), bool)
    keep[[i for i in order[:max(k, 0)] if el[i]]] = True
    return keep


def test_topk_hand_checked_ties_lower_index_wins():
    s = jnp.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.0, -0.0])
    np.testing.assert_array_equal(selection.topk_mask(s, 2), [0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(selection.topk_mask(s, 3), [0, 1, 1, 0, 1, 0, 0])
    # 0.0 and -0.0 are equal scores: the lower index (5) wins.
    np.testing.assert_array_equal(selection.topk_mask(s, 6), [1, 1, 1, 1, 1, 1, 0])


def test_topk_nan_ranks_last():
    s = jnp.array([jnp.nan, 1.0, jnp.nan, 0.0, -jnp.inf])
    np.testing.assert_array_equal(selection.topk_mask(s, 2), [0, 1, 0, 1, 0])
    # -inf and NaN tie (NaN counts as -inf): lower index first.
    np.testing.assert_array_equal(selection.topk_mask(s, 3), [1, 1, 0, 1, 0])


def test_topk_exact_counts_against_oracle():
    rng = np.random.default_rng(0)
    all_k = jax.jit(jax.vmap(selection.topk_mask, in_axes=(None, 0, None)))
    for trial in range(30):
        n = (1, 7, 19)[trial % 3]
        s = rng.integers(0, 4, n).astype(np.float32)  # many ties
        if trial % 4 == 0:
            s[rng.random(n) < 0.3] = np.nan
        el = rng.random(n) < 0.6 if trial % 2 else np.ones(n, bool)
        ks = np.arange(-1, n + 2)
        got = np.asarray(all_k(jnp.asarray(s), jnp.asarray(ks), jnp.asarray(el)))
        for k, g in zip(ks, got):
            np.testing.assert_array_equal(g, oracle_topk(s, k, el))
            assert g.sum() == min(max(k, 0), int(el.sum()))
            assert not np.any(g & ~el)
    s = rng.integers(0, 3, 9).astype(np.float32)
    for k in range(11):  # eligible=None path
        np.testing.assert_array_equal(selection.topk_mask(jnp.asarray(s), k), oracle_topk(s, k))


def test_topk_never_selects_ineligible_even_against_minus_inf():
    s = jnp.array([5.0, -jnp.inf, 9.0, jnp.nan])
    el = jnp.array([False, True, False, True])
    got = selection.topk_mask(s, 3, el)
    np.testing.assert_array_equal(got, [0, 1, 0, 1])  # 2 < k: only eligible entries


def test_topk_jit_and_vmap_per_member_k():
    rng = np.random.default_rng(1)
    s = jnp.asarray(rng.integers(0, 5, (4, 17)).astype(np.float32))
    el = jnp.asarray(rng.random((4, 17)) < 0.7)
    ks = jnp.array([0, 3, 8, 17], jnp.int32)
    batched = jax.jit(jax.vmap(selection.topk_mask))(s, ks, el)
    for i in range(4):
        np.testing.assert_array_equal(batched[i], selection.topk_mask(s[i], int(ks[i]), el[i]))
        np.testing.assert_array_equal(batched[i], oracle_topk(np.asarray(s[i]), int(ks[i]),
                                                              np.asarray(el[i])))


def test_keep_top_tree_and_to_masks():
    params = models.init(jax.random.key(0), (3, 4, 2))
    scores = jax.tree.map(jnp.abs, params)
    eligible = masking.ones_like(params)
    eligible["layer1"]["kernel"] = eligible["layer1"]["kernel"].at[0].set(False)
    masks = selection.keep_top(scores, 9, eligible)
    assert jax.tree.structure(masks) == jax.tree.structure(params)
    assert all(m.dtype == bool and m.shape == p.shape
               for m, p in zip(jax.tree.leaves(masks), jax.tree.leaves(params)))
    flat = selection.topk_mask(masking.flatten_kernels(scores), 9,
                               masking.flatten_kernels(eligible))
    np.testing.assert_array_equal(masking.flatten_kernels(masks), flat)
    assert int(masking.nnz_weights(masks)) == 9
    assert not np.any(masks["layer1"]["kernel"][0])
    for a, b in zip(jax.tree.leaves(masks), jax.tree.leaves(masking.bias_rule(masks))):
        np.testing.assert_array_equal(a, b)


# --- reference idioms: NumPy transcriptions of the original code ---

def np_sorted_gt(s, n_prune):
    return s > np.sort(s)[n_prune]


def np_topk_thr(s, k):
    return np.sort(s)[::-1][k - 1]  # torch.topk(s, k)[0][-1]


def test_reference_idioms_match_numpy_and_counts():
    rng = np.random.default_rng(2)
    s = rng.permutation(40).astype(np.float32)  # distinct
    fn = jax.jit(selection.reference_keep, static_argnums=0)
    for c in (1, 5, 20, 39):
        got = {name: np.asarray(fn(name, jnp.asarray(s), c)) for name in selection.REFERENCE_IDIOMS}
        np.testing.assert_array_equal(got["sorted_gt"], np_sorted_gt(s, c))
        np.testing.assert_array_equal(got["topk_ge"], s >= np_topk_thr(s, c))
        np.testing.assert_array_equal(got["topk_gt"], s > np_topk_thr(s, c))
        np.testing.assert_array_equal(got["remove_topk_lt"], s < np_topk_thr(s, c))
        assert got["sorted_gt"].sum() == 40 - c - 1
        assert got["topk_ge"].sum() == c
        assert got["topk_gt"].sum() == c - 1
        assert got["remove_topk_lt"].sum() == 40 - c


def test_reference_idioms_with_ties():
    s = jnp.array([0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 3.0])
    # `>=` keeps more than k with ties; sorted_gt keeps every nonzero inside a zero block.
    assert int(selection.reference_keep_topk_ge(s, 2).sum()) == 3
    assert int(selection.reference_keep_sorted_gt(s, 1).sum()) == 4
    assert int(selection.reference_keep_topk_gt(s, 3).sum()) == 1


# --- ERK ---

def test_erk_reference_reproduces_pruners_md_example():
    np.testing.assert_array_equal(selection.erk_counts(16, 30, reference=True), [6, 10, 10, 6])


def study_erk_reference_counts(width, budget):
    """The study's RigL initial counts, written out step by step in its float64 order.

    ERK: one pass over the layers in order accumulates rhs (+ n * d for a sparse layer,
    - n * (1 - d) for a dense one) and divisor (+ p * n); eps = rhs / divisor; layers at the
    max p turn dense while eps * max p > 1. rigl-torch then zeroes int((1 - eps * p) * n).
    """
    shapes = models.layer_shapes(width)
    d = budget / sum(a * b for a, b in shapes)
    dense = set()
    while True:
        rhs, divisor, probs = 0, 0, {}
        for i, (a, b) in enumerate(shapes):
            n = np.prod((b, a))  # torch's (out, in) weight shape
            if i in dense:
                rhs -= n * (1 - d)
            else:
                rhs += n * d
                probs[i] = (np.sum((b, a)) / np.prod((b, a))) ** 1.0
                divisor += probs[i] * n
        eps = rhs / divisor
        top = np.max(list(probs.values()))
        if top * eps <= 1:
            break
        dense |= {i for i, p in probs.items() if p == top}
    counts = []
    for i, (a, b) in enumerate(shapes):
        zeros_frac = 1 - (1.0 if i in dense else eps * probs[i])
        counts.append(a * b if zeros_frac <= 0 else a * b - int(zeros_frac * (a * b)))
    return counts


def test_erk_reference_counts_follow_the_studys_float_order():
    # Where d_l * n_l is a whole number, summing rhs in another order truncates one lower.
    assert list(selection.erk_counts(16, 308, reference=True)) == [32, 131, 131, 16]
    assert list(selection.erk_counts(8, 88, reference=True)) == [16, 33, 33, 8]
    assert list(selection.erk_counts(8, 126, reference=True)) == [16, 52, 52, 8]
    for width in (3, 4, 7, 8, 16):
        for budget in range(1, models.num_weights(width)):
            assert list(selection.erk_counts(width, budget, reference=True)) == \
                study_erk_reference_counts(width, budget), (width, budget)


@pytest.mark.parametrize("width", [3, 4, 5, 8, 16, 64, 256])
def test_erk_counts_exact_and_capped(width):
    caps = np.array([a * b for a, b in models.layer_shapes(width)])
    budgets = [15, 16, 20, 26, 30, 37, 44, 55, 65, 1, 0, int(caps.sum())]
    for f in budgets:
        c = selection.erk_counts(width, f)
        assert c.shape == (4,)
        assert c.sum() == min(f, caps.sum())
        assert np.all(c >= 0) and np.all(c <= caps)
        ref = selection.erk_counts(width, f, reference=True)
        assert np.all(ref <= caps) and ref.sum() >= min(f, caps.sum())
        dens = selection.erk_densities(width, min(f, caps.sum()) / caps.sum())
        np.testing.assert_allclose((dens * caps).sum(), min(f, caps.sum()), rtol=1e-9)
        # Largest remainder stays within one weight of each real count.
        assert np.all(np.abs(c - dens * caps) < 1 + 1e-9)


def test_erk_counts_odd_widths():
    for widths, f in itertools.product([(3, 4, 2), (7, 3, 3), (6, 3, 2)], [5, 15, 25]):
        assert selection.erk_counts(widths, f).sum() == min(f, models.num_weights(widths))


# --- the original's count formulas (host, Python float64, correctly rounded exp/log/pow) ---

STUDY_WIDTHS = (3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256)
STUDY_BUDGETS = tuple(range(15, 27)) + (30, 33, 37, 40, 44, 50, 53, 55, 57, 60, 65)
GRID = [(models.num_weights(w), f) for w in STUDY_WIDTHS for f in STUDY_BUDGETS
        if f < models.num_weights(w)]


def test_reference_count_formulas_grid_histogram():
    assert len(GRID) == 234

    def histogram(deviation):
        return dict(collections.Counter(deviation(n, f) for n, f in GRID))

    # "final - f" over the 234 random-init cells of the study's grid (distinct scores).
    assert histogram(lambda n, f: selection.snip_count(n, f)[0] - f) == {0: 229, -1: 5}
    assert histogram(lambda n, f: n - selection.grasp_removed(n, f)[0] - f) == {0: 217, 1: 17}
    assert histogram(lambda n, f: selection.prospr_count(n, f)[0] - f) == {0: 160, 1: 74}
    # Iter SNIP / FORCE keep k_10 - 1. With correctly rounded exp/log k_10 = f - 1 in 50
    # cells; NumPy's AVX-512 exp (not correctly rounded) gives 54 on an Intel Xeon, glibc's
    # exp 50 (an AMD EPYC): the six cells where they differ are pinned below.
    assert histogram(lambda n, f: selection.force_counts(n, f)[-1] - 1 - f) == {-1: 184, -2: 50}
    assert histogram(lambda n, f: n - selection.synflow_pruned(n, f)[-1] - 1 - f) == {-1: 234}
    assert selection.force_counts(560, 30) == [417, 311, 232, 173, 129, 96, 72, 53, 40, 30]
    p = selection.synflow_pruned(560, 30)
    assert (p[0], p[1], p[2], p[49], p[99]) == (16, 31, 47, 430, 530)


def test_near_integer_cells_get_the_correctly_rounded_value():
    # FORCE's last count is mathematically f; its float64 value sits a few ulps from f, and
    # these six cells are where two real libm's disagree (see selection.force_counts).
    cells = [(65, 16), (65, 17), (90, 40), (119, 17), (119, 23), (8384, 57)]
    assert [selection.force_counts(n, f)[-1] for n, f in cells] == [15, 17, 40, 17, 23, 57]
    # 90 * (40/90)^(1/2) = 60 and 90 - 40^(1/2) / 90^(-1/2) = 30 exactly, in real numbers.
    assert selection.force_counts(90, 40)[4] == 60
    assert selection.synflow_pruned(90, 40)[49] == 29


# An independent oracle: the same float64 programs with every exp/log/pow evaluated to 120
# digits and rounded once (float(Decimal) rounds correctly), every other operation in float64.
_ORACLE = decimal.Context(prec=120)


def _oracle_exp(x):
    return float(_ORACLE.exp(decimal.Decimal(x)))


def _oracle_log(x):
    return float(_ORACLE.ln(decimal.Decimal(x)))


def _oracle_pow(x, y):
    return float(_ORACLE.power(decimal.Decimal(x), decimal.Decimal(y)))


def oracle_force_counts(n, f, steps=10):
    log_ratio = _oracle_log(f / float(n))
    return [int(n * _oracle_exp(0 - ((t + 1) * (0 - log_ratio) / steps))) for t in range(steps)]


def oracle_synflow_pruned(n, f, js, steps=100):
    # p_j for the listed j (1-based); 120-digit pow is slow, so not all 100 everywhere.
    return [int(n - _oracle_pow(f, j / float(steps)) / _oracle_pow(n, j / float(steps) - 1.0))
            for j in js]


def test_transcendental_count_formulas_are_correctly_rounded_over_the_grid():
    # Fails if a formula calls the platform's exp/log/pow (NumPy's or libm's) on floats: those
    # are off by an ulp often enough to change int() in some cell of the grid on some machine.
    js = (1, 2, 25, 50, 75, 99, 100)
    for n, f in GRID:
        assert selection.force_counts(n, f) == oracle_force_counts(n, f), (n, f)
        pruned = selection.synflow_pruned(n, f)
        assert [pruned[j - 1] for j in js] == oracle_synflow_pruned(n, f, js), (n, f)
    for n, f in ((90, 40), (560, 30), (27, 26)):
        assert selection.synflow_pruned(n, f) == oracle_synflow_pruned(n, f, range(1, 101))
    rng = np.random.default_rng(3)
    for x in rng.uniform(-40.0, 5.0, 300):
        assert selection.cr_exp(x) == _oracle_exp(float(x))
    for x in np.exp(rng.uniform(-40.0, 12.0, 300)):
        assert selection.cr_log(x) == _oracle_log(float(x))
        assert selection.cr_pow(x, 0.37) == _oracle_pow(float(x), 0.37)


def test_correctly_rounded_helpers_exact_cases_and_edges():
    assert selection.cr_pow(3600.0, 0.5) == 60.0
    assert selection.cr_pow(40, 1.0) == 40.0 and selection.cr_pow(560, 0.0) == 1.0
    assert selection.cr_pow(0.0, 0.5) == 0.0
    assert selection.cr_exp(0.0) == 1.0 and selection.cr_log(1.0) == 0.0
    assert selection.cr_log(0.0) == -np.inf and selection.cr_exp(-np.inf) == 0.0
    assert selection.force_counts(560, 0) == [0] * 10  # log(0) = -inf, as NumPy's
    with pytest.raises(ValueError):
        selection.cr_pow(-2.0, 0.5)


def test_arithmetic_count_formulas_match_exact_rationals():
    # SNIP, GraSP and ProsPr use only +, -, *, / (IEEE correctly rounded everywhere): an exact
    # rational evaluation of the same float64 program agrees.
    def rnd(q):
        return fractions.Fraction(float(q))

    for n, f in GRID:
        ratio = rnd(fractions.Fraction(f, n))
        assert selection.snip_count(n, f) == [int(rnd(n * ratio))]
        keep = rnd(1 - rnd(1 - ratio))
        assert selection.grasp_removed(n, f) == [int(rnd(n * rnd(1 - keep)))]
        assert selection.prospr_count(n, f) == [math.ceil(rnd(n * keep))]


def test_gmp_schedule_has_no_near_integer_cells():
    # The cubic schedule f + (N - f)(1 - k/n)^3 is rational with denominator n^3 (n = 199): it is
    # either a whole number or at least 1/199^3 from one, so an ulp of pow(x, 3) never changes
    # int() and the float formula equals the exact floor (toward zero) everywhere.
    from spiralprune.pruning import during_training

    delta, n = during_training.gmp_delta(19_500)
    events = (19_500 - 1) // delta
    for big, f in GRID:
        exact = [f + (big - f) * (1 - fractions.Fraction(k, n)) ** 3 for k in range(1, events + 1)]
        assert during_training.gmp_counts(big, f, events, delta=delta, n=n) == [
            math.trunc(q) for q in exact], (big, f)


def test_host_counts_under_jit_and_vmap():
    budgets = jnp.array([15, 30, 30, 65], jnp.int32)
    fn = jax.jit(jax.vmap(lambda k: selection.host_counts(selection.force_counts, 560, k, 10)))
    got = np.asarray(fn(budgets))
    for row, f in zip(got, np.asarray(budgets)):
        np.testing.assert_array_equal(row, selection.force_counts(560, int(f), 10))
    one = jax.jit(lambda k: selection.host_counts(selection.prospr_count, 560, k))(30)
    np.testing.assert_array_equal(one, [31])


def test_erk_counts_remainder_ties_go_to_the_lower_layer_and_match_the_in_graph_version():
    from spiralprune.pruning import during_training

    # Width 5, budget 11: real counts 11 * (7, 10, 10, 6) / 33 = (2.33, 3.33, 3.33, 2); the
    # three equal remainders 1/3 tie and the one leftover weight goes to layer 0.
    np.testing.assert_array_equal(selection.erk_counts(5, 11), [3, 3, 3, 2])
    for width in (3, 5, 16):
        n = models.num_weights(width)
        for budget in range(1, n + 1, max(1, n // 40)):
            host = selection.erk_counts(width, budget)
            assert host.sum() == budget
            np.testing.assert_array_equal(host, during_training.erk_counts(width, budget))
