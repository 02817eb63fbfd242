"""Selection: exact top-k masks with a traced budget, the original code's threshold idioms, ERK.

Every pruner scores the N kernel entries of ONE model as a flat (N,) vector in
``masking.flatten_kernels`` order (layer 0..3, each (in, out) kernel row-major) and keeps the
best ``k``. ``topk_mask`` is the exact primitive (docs/pruners.md): ``k`` may be a traced
int32 scalar, so budgets differ per member under ``jax.vmap``.

Tie rule: equal scores are ranked by LOWER FLAT INDEX first (as ``jax.lax.top_k`` documents
and jaxpruner does). NaN scores rank as -inf.

The ``reference_*`` functions reproduce the threshold idioms of the study's code, which keep
k - 1, k or more, or N - n_rm entries, and the count formulas below reproduce its float
rounding (platform-independently: see "Platform independence" below); pruners use both when
called with ``reference_counts=True``.
"""

import decimal
import math

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import base, masking, models


def _clean(scores: jax.Array) -> jax.Array:
    # NaN -> -inf so a diverged score never wins; torch.topk would rank NaN as largest.
    return jnp.where(jnp.isnan(scores), -jnp.inf, scores)


def topk_mask(scores: jax.Array, k, eligible: jax.Array | None = None) -> jax.Array:
    """Exactly min(k, #eligible) True entries: the k best eligible scores.

    Ranks by score descending, NaN as -inf, ties broken by LOWER FLAT INDEX. An ineligible
    entry is never selected, whatever its score: if ``k`` exceeds the number of eligible
    entries, the result has FEWER than ``k`` True entries (all eligible ones).

    Args:
      scores: (N,) float scores.
      k: int scalar, may be traced (per member under vmap); k <= 0 selects nothing and
        k >= N everything eligible.
      eligible: optional (N,) bool; None means all entries are eligible.

    Returns:
      (N,) bool mask.
    """
    s = _clean(scores)
    n = s.shape[0]
    iota = jnp.arange(n, dtype=jnp.int32)
    inel = jnp.zeros(n, jnp.int32) if eligible is None else (~eligible).astype(jnp.int32)
    # Sort keys: eligible first, then score descending, then lower index (a total order, so
    # the result does not depend on the sort's stability); a traced k needs ranks, not top_k.
    order = jax.lax.sort((inel, -s, iota), num_keys=3)[2]
    keep = jnp.zeros(n, bool).at[order].set(iota < jnp.asarray(k, jnp.int32))
    return keep if eligible is None else keep & eligible


def to_masks(flat_keep: jax.Array, like: base.PyTree) -> base.Masks:
    """Full masks (kernels from a flat (N,) bool vector, biases by the bias rule).

    Args:
      flat_keep: (N,) bool in ``masking.flatten_kernels`` order.
      like: a params (or scores) tree giving the kernel shapes.

    Returns:
      masks mirroring params, bias rule applied.
    """
    kernels, start = [], 0
    for name in models.LAYERS:
        shape = like[name]["kernel"].shape
        size = int(np.prod(shape))
        kernels.append(flat_keep[start:start + size].reshape(shape))
        start += size
    return masking.from_kernels(kernels)


def keep_top(scores: base.PyTree, k, eligible: base.Masks | None = None) -> base.Masks:
    """Global exact top-k over the four kernels of a score tree (see ``topk_mask``).

    Args:
      scores: tree with ``scores[layer]["kernel"]`` of kernel shape (bias leaves ignored).
      k: int scalar, may be traced.
      eligible: optional masks tree; only its kernels are used.

    Returns:
      masks mirroring params: exactly min(k, #eligible) kernel entries True, bias rule applied.
    """
    el = None if eligible is None else masking.flatten_kernels(eligible)
    return to_masks(topk_mask(masking.flatten_kernels(scores), k, el), scores)


# --- The original code's threshold idioms, for reference_counts. ---


# The count formulas, transcribed from the original code with Python floats (float64) so that
# their rounding quirks (int(N * (f / N)) = f - 1, ceil(...) = f + 1, ...) are reproduced.
#
# Platform independence. +, -, *, / on Python floats are IEEE-754 correctly rounded on every
# platform, so SNIP's, GraSP's and ProsPr's counts (and the ERK counts below) are the same
# everywhere. The transcendental functions are not: libm's exp/log/pow and NumPy's SIMD versions
# may be off by an ulp, differently on different CPUs and libraries, and int() of a value that
# sits an ulp below an integer then flips. So every exp, log and non-integer pow of these
# formulas is CORRECTLY ROUNDED (``cr_exp``, ``cr_log``, ``cr_pow``: evaluated in decimal
# arithmetic to 60 digits, then rounded once to the nearest float64), while every other operation
# keeps the original's float64 order. The result is what the original code gives on a platform
# whose libm is correctly rounded, and the same on every machine. XLA's in-graph exp/log/pow carry
# the same hazard, so the counts run on the host (``host_counts``).


_CR_DIGITS = 45  # ~150 bits: a relative error below 1e-41 even through exp(y * ln(x))
_CR_TOLERANCE = decimal.Decimal("1e-38")
_CR_CONTEXT = decimal.Context(prec=_CR_DIGITS, Emax=999_999, Emin=-999_999)
_WIDE_CONTEXT = decimal.Context(prec=_CR_DIGITS + 15, Emax=999_999, Emin=-999_999)


def _nearest_float(value: decimal.Decimal) -> float:
    """``value`` rounded to the nearest float64, refusing a case too close to a rounding midpoint.

    ``float(Decimal)`` rounds correctly from the decimal; the decimal is within a relative 1e-41
    of the exact value, so the double rounding can only go wrong if the exact value lies that
    close to a midpoint between two floats. That does not happen for the exp/log/pow values
    used here in practice (they are transcendental, and the hardest known cases of double
    precision exp/log sit about 2^-120 from a midpoint), and it is checked, not assumed: every
    real within a relative 1e-38 of ``value`` must round to the same float.
    """
    out = float(value)
    if not math.isfinite(out) or out == 0.0:
        return out
    low = _WIDE_CONTEXT.multiply(value, 1 - _CR_TOLERANCE)
    high = _WIDE_CONTEXT.multiply(value, 1 + _CR_TOLERANCE)
    if float(low) != out or float(high) != out:
        raise ArithmeticError(f"{value} is too close to a float64 rounding midpoint")
    return out


def _ln(x: float) -> decimal.Decimal:
    return _CR_CONTEXT.ln(decimal.Decimal(x))


def _exp_times(y: float, log_x: decimal.Decimal) -> float:
    # exp(y * log_x) correctly rounded: x ** y for x > 0 given log_x = ln(x) to 45 digits.
    return _nearest_float(_CR_CONTEXT.exp(_CR_CONTEXT.multiply(decimal.Decimal(y), log_x)))


def cr_exp(x: float) -> float:
    """exp(x) correctly rounded to float64 (the same bits on every platform)."""
    x = float(x)
    if not math.isfinite(x):
        return math.exp(x)  # exp(-inf) = 0, exp(inf) = inf, exp(nan) = nan: exact
    return _nearest_float(_CR_CONTEXT.exp(decimal.Decimal(x)))


def cr_log(x: float) -> float:
    """Natural log correctly rounded to float64; log(0) = -inf, log(x < 0) = nan (as NumPy)."""
    x = float(x)
    if x == 0.0:
        return -math.inf
    if x < 0 or math.isnan(x):
        return math.nan
    if math.isinf(x):
        return math.inf
    return _nearest_float(_ln(x))


def cr_pow(x: float, y: float) -> float:
    """x ** y correctly rounded to float64, for x >= 0 (exact results, e.g. 40 ** 1.0, exact)."""
    x, y = float(x), float(y)
    if x < 0 or not (math.isfinite(x) and math.isfinite(y)):
        raise ValueError(f"cr_pow needs finite x >= 0 and finite y, got {x!r}, {y!r}")
    if y == 0.0 or x == 1.0:
        return 1.0
    if x == 0.0:
        return 0.0 if y > 0 else math.inf
    if y == 1.0:
        return x
    return _exp_times(y, _ln(x))


def snip_count(n: int, f: int, steps: int = 1) -> list[int]:
    """SNIP's kept count (main_loop.py keep_ratio, SNIP.py num_params_to_keep).

    Division and product only: IEEE-exact on every platform. f - 1 in 5 of the 234 grid cells.
    """
    return [int(n * (f / float(n)))]


def grasp_removed(n: int, f: int, steps: int = 1) -> list[int]:
    """GraSP's removed count n_rm (main_loop.py sparsity_ratio, GraSP.py num_params_to_rm).

    Arithmetic only: IEEE-exact on every platform.
    """
    keep_ratio = 1 - (1.0 - f / float(n))
    return [int(n * (1 - keep_ratio))]


def prospr_count(n: int, f: int, steps: int = 1) -> list[int]:
    """ProsPr's kept count (main_loop.py prune_ratio, utils.py keep_mask_from_scores).

    Arithmetic only: IEEE-exact on every platform.
    """
    return [math.ceil(n * (1 - (1.0 - (f / float(n)))))]


def force_counts(n: int, f: int, steps: int = 10) -> list[int]:
    """Iter SNIP / FORCE kept counts k_t, t = 1..steps (FORCE.py 'exp' mode, get_mask).

    The original: ``int(N * np.exp(0 - ((t) * (0 - np.log(f / N)) / steps)))``, here with
    correctly rounded exp and log (``cr_exp``, ``cr_log``) and the original's float64 order for
    everything else.

    Where the original's own answer is platform-dependent: the last count is mathematically
    N * (f/N) = f, but in float64 it lands within a few ulps of f (at most 9) in every cell,
    so int() gives f or f - 1 according to the last bits of exp and log. On the study's grid
    (widths 3..256, budgets 15..65, 234 cells) a one-ulp change of exp or log flips it in 222
    cells. Two real machines disagree in 6 cells: NumPy's AVX-512 exp (an Intel Xeon) gives f
    at (N, f) = (65, 16) and f - 1 at (65, 17), (90, 40), (119, 17), (119, 23), (8384, 57);
    glibc's exp (an AMD EPYC, where NumPy used it) and the correctly rounded rule
    decided here give 15 (= f - 1) at (65, 16) and f at the other five. Over the grid the
    final kept weights (k_10 - 1 with the ``s > topk(s, k)[-1]`` idiom) are then f - 1 in 184
    cells and f - 2 in 50 (the Intel machine: 180 and 54). One intermediate count is a true
    integer too: at (90, 40), k_5 = 90 * (40/90)^(1/2) = 60, and the decided value is 60.
    """
    log_ratio = cr_log(f / float(n))
    percs = [cr_exp(0 - ((x + 1) * (0 - log_ratio) / steps)) for x in range(steps)]
    return [int(n * p) for p in percs]


def synflow_pruned(n: int, f: int, steps: int = 100) -> list[int]:
    """SynFlow's pruned counts p_j, j = 1..steps (SynFlow.py curr_weights_to_prune).

    The original: ``int(N - f ** r / N ** (r - 1))``, r = j / steps, here with a correctly
    rounded pow (``cr_pow``). The last count is exact everywhere (f ** 1.0 / N ** 0.0 = f). One
    cell of the study's grid is a true integer inside the schedule, so platform-dependent in the
    original: at (N, f) = (90, 40), p_50 = 90 - sqrt(40 * 90) = 30, whose float64 value
    (90 - 60.00000000000001, correctly rounded pow) truncates to 29.
    """
    if f <= 0:
        return [int(n - cr_pow(f, (it + 1.0) / steps) / cr_pow(n, (it + 1.0) / steps - 1.0))
                for it in range(steps)]
    log_f, log_n = _ln(f), _ln(n)  # cr_pow(f, r) and cr_pow(n, r - 1), sharing the logs

    def power(x, log_x, y):
        return 1.0 if y == 0.0 else float(x) if y == 1.0 else _exp_times(y, log_x)

    return [int(n - power(f, log_f, (it + 1.0) / steps) / power(n, log_n, (it + 1.0) / steps - 1.0))
            for it in range(steps)]


def reference_float():
    """The float dtype for in-graph reference count formulas: float64 when x64 is enabled
    (also inside a ``jax.enable_x64`` context), else float32. Even in float64, XLA's
    exp/log/pow can be off by an ulp; ``host_counts`` is the same on every platform."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def host_counts(formula, n: int, k, steps: int = 1) -> jax.Array:
    """Evaluates ``formula(n, f, steps)`` on the host for a traced budget ``k``.

    A ``jax.pure_callback`` (works under jit and vmap, one host call per program run; each
    distinct budget is computed once).

    Args:
      formula: one of the count functions above (or any (n, f, steps) -> list of ints).
      n: static number of kernel entries N.
      k: int budget f, scalar, may be traced.
      steps: static length of the returned schedule.

    Returns:
      int32 (steps,).
    """
    k = jnp.asarray(k, jnp.int32)

    def callback(ks):
        ks = np.asarray(ks)
        out = np.empty(ks.shape + (steps,), np.int32)
        cache = {}
        for idx in np.ndindex(ks.shape):
            f = int(ks[idx])
            if f not in cache:
                cache[f] = formula(n, f, steps)
            out[idx] = cache[f]
        return out

    shape = jax.ShapeDtypeStruct(k.shape + (steps,), jnp.int32)
    return jax.pure_callback(callback, shape, k, vmap_method="broadcast_all")


def _kth_largest(s: jax.Array, k) -> jax.Array:
    # torch.topk(s, k)[0][-1] for 1 <= k <= N (k is clipped into that range).
    n = s.shape[0]
    return jnp.sort(s)[n - jnp.clip(jnp.asarray(k, jnp.int32), 1, n)]


def reference_keep_sorted_gt(scores: jax.Array, n_prune) -> jax.Array:
    """open_lth ``sparse_global.py`` (GMP, LTH, SynFlow): keep ``s > sort(s)[n_prune]``.

    Keeps N - n_prune - 1 entries for distinct scores; all entries above a tied block. If
    n_prune falls inside a block of zero scores, every nonzero score is kept.

    Args:
      scores: (N,) scores; n_prune: int scalar, may be traced (clipped to [0, N - 1]).

    Returns:
      (N,) bool.
    """
    s = _clean(scores)
    n = s.shape[0]
    return s > jnp.sort(s)[jnp.clip(jnp.asarray(n_prune, jnp.int32), 0, n - 1)]


def reference_keep_topk_ge(scores: jax.Array, k) -> jax.Array:
    """mil-ad/snip (SNIP): keep ``s >= topk(s, k)[-1]``: k entries, or more with ties.

    Args:
      scores: (N,) scores; k: int scalar, may be traced (k <= 0 keeps nothing).

    Returns:
      (N,) bool.
    """
    s = _clean(scores)
    return (s >= _kth_largest(s, k)) & (jnp.asarray(k) >= 1)


def reference_keep_topk_gt(scores: jax.Array, k) -> jax.Array:
    """The authors' FORCE.py edit (Iter SNIP, FORCE): keep ``s > topk(s, k)[-1]``: k - 1.

    Args:
      scores: (N,) scores; k: int scalar, may be traced (k <= 0 keeps nothing).

    Returns:
      (N,) bool.
    """
    s = _clean(scores)
    return (s > _kth_largest(s, k)) & (jnp.asarray(k) >= 1)


def reference_remove_topk_lt(removal_scores: jax.Array, n_rm) -> jax.Array:
    """The authors' GraSP.py edit: remove the top n_rm, keep ``s < topk(s, n_rm)[-1]``.

    Keeps N - n_rm entries for distinct scores (upstream GraSP's ``<=`` keeps one more).

    Args:
      removal_scores: (N,) scores where LARGER means remove; n_rm: int scalar, may be
        traced (n_rm <= 0 keeps everything).

    Returns:
      (N,) bool.
    """
    s = _clean(removal_scores)
    return (s < _kth_largest(s, n_rm)) | (jnp.asarray(n_rm) <= 0)


REFERENCE_IDIOMS = {
    "sorted_gt": reference_keep_sorted_gt,
    "topk_ge": reference_keep_topk_ge,
    "topk_gt": reference_keep_topk_gt,
    "remove_topk_lt": reference_remove_topk_lt,
}


def reference_keep(idiom: str, scores: jax.Array, count) -> jax.Array:
    """Dispatches to one of ``REFERENCE_IDIOMS`` (static ``idiom`` name)."""
    if idiom not in REFERENCE_IDIOMS:
        raise ValueError(f"unknown idiom {idiom!r}; choose from {tuple(REFERENCE_IDIOMS)}")
    return REFERENCE_IDIOMS[idiom](scores, count)


# --- ERK layer allocation (RigL's initial masks, layerwise random): NumPy, outside jit. ---


def erk_densities(widths, density: float) -> np.ndarray:
    """Erdos-Renyi-Kernel densities per layer, as google-research/rigl and the study's ERK.

    Float64 in the study's own order of operations, so that ``erk_counts(reference=True)``
    truncates exactly as its code does: per pass over the layers 0..3, ``rhs`` accumulates
    n_l * d for a sparse layer and subtracts n_l * (1 - d) for a dense one (interleaved, in
    layer order), ``divisor`` accumulates p_l * n_l with p_l = (n_in + n_out) / (n_in * n_out),
    eps = rhs / divisor, and while eps * max p > 1 every layer at that max joins the dense set.
    Summing the sparse and the dense terms separately differs in the last bit, which moves
    int((1 - d_l) * n_l) by one where d_l * n_l is a whole number (18 budgets of width 16).

    Args:
      widths: hidden widths (d1, d2, d3) or one int.
      density: overall kept fraction f / N.

    Returns:
      float64 (4,) per-layer densities (1.0 for layers that had to be dense).
    """
    shapes = models.layer_shapes(widths)
    n = [np.int64(a * b) for a, b in shapes]
    raw = [np.int64(a + b) / np.int64(a * b) for a, b in shapes]
    dense: set[int] = set()
    while len(dense) < len(shapes):
        rhs, divisor = 0.0, 0.0
        for i in range(len(shapes)):
            if i in dense:
                rhs -= n[i] * (1 - density)
            else:
                rhs += n[i] * density
                divisor += raw[i] * n[i]
        eps = rhs / divisor
        max_prob = max(raw[i] for i in range(len(shapes)) if i not in dense)
        if max_prob * eps <= 1:
            return np.array([1.0 if i in dense else eps * raw[i] for i in range(len(shapes))])
        dense |= {i for i in range(len(shapes)) if i not in dense and raw[i] == max_prob}
    return np.ones(len(shapes))


def erk_counts(widths, budget: int, *, reference: bool = False) -> np.ndarray:
    """Per-layer weight counts of an ERK allocation of ``budget`` weights.

    Args:
      widths: hidden widths (d1, d2, d3) or one int.
      budget: total kept weights f (clipped to [0, N]).
      reference: False: largest-remainder apportionment of the real counts d_l * n_l, summing
        EXACTLY to the budget with caps n_l (remainder ties to the lower layer). True: the
        study's rigl-torch rounding ``n_l - int((1 - d_l) * n_l)`` per layer (>= budget), with
        d_l from ``erk_densities`` (the study's float order) and d = f / N.

    Returns:
      int64 (4,) counts.
    """
    shapes = models.layer_shapes(widths)
    n = np.array([a * b for a, b in shapes], np.int64)
    budget = int(np.clip(budget, 0, n.sum()))
    dens = erk_densities(widths, budget / float(n.sum()))
    if reference:
        # rigl_torch random_sparsify: s = int(S * n) zeros, S = 1 - d; S <= 0 means dense.
        return np.array([ni if 1 - d <= 0 else ni - int((1 - d) * ni) for ni, d in zip(n, dens)])
    # Exact integer arithmetic (as during_training.erk_counts does in-graph): with
    # a_l = n_in + n_out, a sparse layer's real count is rest * a_l / A (rest = f - dense
    # weights, A = sum of a over sparse layers), so floors and remainders are integer divisions
    # and remainder ties really go to the lower layer (float rounding used to decide them).
    a = np.array([i + o for i, o in shapes], np.int64)
    dense = np.zeros(4, bool)
    for _ in range(4):
        rest = budget - n[dense].sum()
        total = max(int(a[~dense].sum()), 1)
        sparse = np.flatnonzero(~dense)
        if len(sparse) == 0:
            break
        # p_l = a_l / n_l; the max-p layers join the dense set while eps * p_max > 1.
        p_max = max(sparse, key=lambda i: (a[i] / n[i], -i))
        is_max = ~dense & (a * n[p_max] == a[p_max] * n)
        if rest * a[p_max] > n[p_max] * total:
            dense |= is_max
        else:
            break
    rest = budget - n[dense].sum()
    total = max(int(a[~dense].sum()), 1)
    share = np.where(dense, 0, rest * a)
    counts = np.where(dense, n, np.minimum(share // total, n))
    rem = np.where(dense | (counts >= n), -1, share % total)
    for i in np.argsort(-rem, kind="stable"):
        if counts.sum() >= budget:
            break
        if counts[i] < n[i]:
            counts[i] += 1
    return counts.astype(np.int64)
