"""What the study draws from finished runs: effective nonzeros, further
prunability, Pareto fronts, FLOPs per method, and the random-pruning no-path theorem.

Effective parameters (the study's "disconnected paths"). A nonzero kernel entry W_l[i, j]
(kernel (in, out)) is *effective* iff unit i is reachable from an input through nonzero weights
AND unit j reaches the output through nonzero weights (inputs are always reachable; the output
always reaches), i.e. iff it lies on some input-to-output path of nonzero weights. A hidden bias
is effective iff it is nonzero and its unit both is reachable and reaches the output; the
classifier bias is effective iff nonzero. Reachability is structural (ReLUs that are off on every
input are not considered). A nonzero bias on a unit cut off from the inputs but connected to
the output still shifts the logit by a constant, yet it lies on no input-to-output path, so it
counts as disconnected, as in the study.

Functions here read finished runs; they never train.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from spiralprune import base, masking, models, training
from spiralprune.pruning import costs, plugins, registry, selection

_F32 = jnp.float32


def _vec_mat(v: jax.Array, m: jax.Array) -> jax.Array:
    """Boolean (..., in) @ (..., in, out) -> (..., out): is any term True."""
    return jnp.matmul(v[..., None, :].astype(_F32), m.astype(_F32))[..., 0, :] > 0


def _mat_vec(m: jax.Array, v: jax.Array) -> jax.Array:
    """Boolean (..., in, out) @ (..., out) -> (..., in)."""
    return jnp.matmul(m.astype(_F32), v[..., :, None].astype(_F32))[..., 0] > 0


def reachability(kernels) -> tuple[list, list]:
    """Units reachable from the inputs (fwd[l]) and reaching the output (bwd[l]), l = 0..4.

    The one definition of a path (used by ``effective``, the playground's picture and the
    ``connected`` pruner): the inputs are reached, and a unit is reached if a nonzero weight
    comes from a reached unit; the output reaches itself, and a unit reaches it through a
    nonzero weight to one that does.

    Args:
      kernels: the four kernels (or their masks), any leading axes (e.g. P); traceable.

    Returns:
      (fwd, bwd): five bool arrays each, (..., units of column l).
    """
    nz = [k != 0 for k in kernels]
    lead = nz[0].shape[:-2]
    fwd = [jnp.ones(lead + (nz[0].shape[-2],), bool)]
    for m in nz:
        fwd.append(_vec_mat(fwd[-1], m))
    bwd = [jnp.ones(lead + (nz[-1].shape[-1],), bool)]
    for m in reversed(nz):
        bwd.insert(0, _mat_vec(m, bwd[0]))
    return fwd, bwd


def effective(params: base.Params) -> base.Masks:
    """Masks of the effective parameters (definition in the module docstring).

    Args:
      params: one model's params, or a population with a leading P axis on every leaf.

    Returns:
      bool masks mirroring ``params``: True exactly at effective (nonzero, on-path) entries.
    """
    kernels = [params[n]["kernel"] for n in models.LAYERS]
    fwd, bwd = reachability(kernels)
    out = {}
    for l, name in enumerate(models.LAYERS):
        k, b = kernels[l], params[name]["bias"]
        k_eff = (k != 0) & fwd[l][..., :, None] & bwd[l + 1][..., None, :]
        b_eff = (b != 0) if l == 3 else (b != 0) & fwd[l + 1] & bwd[l + 1]
        out[name] = {"kernel": k_eff, "bias": b_eff}
    return out


def effective_nonzeros(params: base.Params) -> dict:
    """Effective and disconnected nonzero counts per model.

    Args:
      params: one model's params, or a population with a leading P axis.

    Returns:
      dict of int32 scalars (or (P,)): effective_nnz (weights + biases), effective_weights,
      disconnected (= nnz - effective_nnz), nnz, nnz_weights.
    """
    eff = effective(params)
    eff_nnz, eff_w = masking.nnz(eff), masking.nnz_weights(eff)
    nnz = masking.nnz(params)
    return {"effective_nnz": eff_nnz, "effective_weights": eff_w, "disconnected": nnz - eff_nnz,
            "nnz": nnz, "nnz_weights": masking.nnz_weights(params)}


def record_columns(params: base.Params) -> dict[str, np.ndarray]:
    """The connectivity columns every search and prune record carries, per run.

    Args:
      params: trained params of a population (leading P axis, NumPy or jax arrays).

    Returns:
      {"effective_nnz": (P,), "disconnected": (P,)} int32 NumPy arrays.
    """
    counts = _effective_counts(params)
    return {k: np.asarray(counts[k]) for k in ("effective_nnz", "disconnected")}


_effective_counts = jax.jit(effective_nonzeros)


# --- Further prunability: magnitude pruning after training (the study's section on why
# pruning foregoes sparsity). ---


def _prune_to(params: base.Params, keep: jax.Array) -> base.Params:
    """Params with only the flat kernel entries ``keep`` (N,) left, then the bias rule."""
    masks = masking.bias_rule(masking.unflatten_kernels(keep, params))
    return masking.apply(params, masks)


_evaluate = jax.jit(training.evaluate, static_argnames=("spec",))


@functools.partial(jax.jit, static_argnames=("spec",))
def _candidate_accuracies(params, removed, cand, data, spec):
    """Accuracy of the C models removing ``removed`` plus the first j of ``cand``, j = 1..C."""
    flat = masking.flatten_kernels(params)
    n, c = flat.shape[0], cand.shape[0]
    # Position of each entry in the candidate list (c if absent; padding index n is dropped).
    pos = jnp.full(n + 1, c, jnp.int32).at[cand].set(jnp.arange(c, dtype=jnp.int32))[:n]

    def one(j):
        keep = (flat != 0) & ~removed & (pos >= j)
        return training.evaluate(_prune_to(params, keep), data, spec)[0]

    return jax.vmap(one)(jnp.arange(1, c + 1))


def further_prune(params: base.Params, data, *, tolerance: float = 0.001,
                  spec: training.Spec | None = None, max_remove: int | None = None,
                  mode: str = "stop", candidates: int = 64, floor: float | None = None
                  ) -> dict:
    """How many more weights of ONE trained model magnitude pruning can remove.

    Candidates are the nonzero kernel entries by increasing |w| (global over the 4 kernels,
    ties to the lower flat index); after each removal the bias rule zeroes the bias of a unit
    that feeds nothing. A removal is accepted iff the accuracy on ``data`` (``training.evaluate``:
    all points, chunked) stays >= the given model's accuracy - ``tolerance`` (absolute).
    ``mode="stop"`` (greedy) stops at the first removal that breaks the tolerance, so the next
    candidate always breaks it; ``mode="skip"`` keeps that weight and goes on with the next.
    Runs of ``candidates`` consecutive removals are evaluated at once (vmapped), so one model
    costs about removable / candidates batched evaluations (plus one per skipped weight).

    Args:
      params: one trained model (no P axis).
      data: (x (n, 2), y (n,)).
      tolerance: the largest accepted accuracy drop (0.001 = 0.1 points).
      spec: evaluation settings (``eval_chunk``, ``precision``); default ``training.Spec()``.
      max_remove: consider at most this many candidates (None: all nonzero weights).
      mode: "stop" or "skip".
      candidates: models evaluated per batch (memory ~ candidates x eval_chunk x width).
      floor: accept a removal iff the accuracy stays >= ``floor`` instead (e.g. the target
        the model reached; ``tolerance`` is then not used). A model below it removes nothing.

    Returns:
      dict: removable (int, weights removed), params (pruned), accuracy, base_accuracy (floats),
      nnz, nnz_weights (ints, after), removed (flat kernel indices in removal order),
      skipped (flat indices kept because removing them broke the tolerance; "skip" only).
    """
    if mode not in ("stop", "skip"):
        raise ValueError(f"unknown mode {mode!r}; choose 'stop' or 'skip'")
    if tolerance < 0 or candidates < 1:
        raise ValueError(f"need tolerance >= 0 and candidates >= 1, got {tolerance}, {candidates}")
    spec = spec or training.Spec(widths=models.widths_of(params))
    data = (jnp.asarray(data[0]), jnp.asarray(data[1]))
    n_data = data[0].shape[0]
    flat = np.asarray(masking.flatten_kernels(params))
    n = flat.size
    order = np.argsort(np.abs(flat), kind="stable")
    order = order[flat[order] != 0]
    limit = order.size if max_remove is None else min(int(max_remove), order.size)
    base_acc = float(_evaluate(params, data, spec)[0])
    # Compare correct counts (exact) rather than float32 accuracies.
    need = (round(base_acc * n_data) - tolerance * n_data if floor is None
            else float(floor) * n_data) - 1e-6
    removed, taken, skipped, p = np.zeros(n, bool), [], [], 0
    while p < limit:
        cand = order[p: min(p + candidates, limit)]
        padded = np.full(candidates, n, np.int32)
        padded[: cand.size] = cand
        acc = np.asarray(_candidate_accuracies(params, jnp.asarray(removed), jnp.asarray(padded),
                                               data, spec), np.float64)[: cand.size]
        bad = np.flatnonzero(np.rint(acc * n_data) < need)
        j = cand.size if bad.size == 0 else int(bad[0])
        removed[cand[:j]] = True
        taken.extend(cand[:j].tolist())
        if j == cand.size:
            p += j
            continue
        if mode == "stop":
            break
        skipped.append(int(cand[j]))
        p += j + 1
    pruned = _prune_to(params, jnp.asarray((flat != 0) & ~removed))
    return {"removable": len(taken), "params": pruned,
            "accuracy": float(_evaluate(pruned, data, spec)[0]), "base_accuracy": base_acc,
            "nnz": int(masking.nnz(pruned)), "nnz_weights": int(masking.nnz_weights(pruned)),
            "removed": np.asarray(taken, np.int64), "skipped": np.asarray(skipped, np.int64)}


def further_prune_population(params: base.Params, data, **kwargs) -> dict:
    """``further_prune`` for each model of a population, one at a time (bounded memory).

    Args:
      params: params with a leading P axis; data, kwargs: as ``further_prune``.

    Returns:
      dict of (P,) numpy arrays (removable, accuracy, base_accuracy, nnz, nnz_weights) and
      params, the pruned models stacked on a leading P axis.
    """
    num = jax.tree.leaves(params)[0].shape[0]
    outs = [further_prune(jax.tree.map(lambda a, i=i: a[i], params), data, **kwargs)
            for i in range(num)]
    keys = ("removable", "accuracy", "base_accuracy", "nnz", "nnz_weights")
    res = {k: np.asarray([o[k] for o in outs]) for k in keys}
    res["params"] = jax.tree.map(lambda *a: jnp.stack(a), *[o["params"] for o in outs])
    return res


# --- Pareto fronts over run records. ---


def check_records(df: pd.DataFrame, columns) -> None:
    """One-line ValueError if ``df`` lacks one of ``columns`` or has no rows."""
    for c in columns:
        if c not in df.columns:
            raise ValueError(f"records lack column {c!r}")
    if len(df) == 0:
        raise ValueError("records are empty")


def _groups(df: pd.DataFrame, by):
    if not by:
        return [((), df)]
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(list(by), sort=True)]


def pareto_front(df: pd.DataFrame, *, by=("method",), x: str = "nnz",
                 y: str = "accuracy") -> pd.DataFrame:
    """Best ``y`` at each ``x`` per group, and the monotone frontier.

    A row is on the frontier iff no run of its group with fewer-or-equal ``x`` has
    higher-or-equal ``y`` with at least one strict, i.e. iff its ``y`` beats every ``y`` at a
    strictly smaller ``x``. Rows with NaN ``y`` are ignored.

    Args:
      df: run records with the columns ``by``, ``x`` and ``y``.

    Returns:
      DataFrame with columns by..., x, y, frontier (bool), sorted by group then x.
    """
    by = tuple(by)
    check_records(df, by + (x, y))
    best = df.dropna(subset=[y]).groupby(list(by) + [x], as_index=False, sort=True)[y].max()
    parts = []
    for _, g in _groups(best, by):
        g = g.sort_values(x)
        before = g[y].cummax().shift(1, fill_value=-np.inf)
        parts.append(g.assign(frontier=(g[y] > before).to_numpy()))
    cols = list(by) + [x, y, "frontier"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


def fewest_reaching(df: pd.DataFrame, targets=(0.95, 0.995), by=("method",), x: str = "nnz",
                    y: str = "accuracy") -> pd.DataFrame:
    """Per group and target, the fewest ``x`` among runs with ``y >= target``.

    Args:
      df: run records with the columns ``by``, ``x`` and ``y``.
      targets: accuracy levels.

    Returns:
      DataFrame with columns by..., target, x, y (the best ``y`` among the runs at that fewest
      ``x``); x and y are NaN where the group never reaches the target.
    """
    by = tuple(by)
    check_records(df, by + (x, y))
    rows = []
    for key, g in _groups(df, by):
        for t in targets:
            hit = g[g[y] >= t]
            if hit.empty:
                rows.append(key + (t, np.nan, np.nan))
                continue
            fewest = hit[x].min()
            rows.append(key + (t, fewest, hit.loc[hit[x] == fewest, y].max()))
    return pd.DataFrame(rows, columns=list(by) + ["target", x, y])


def repeat_spread(df: pd.DataFrame, targets=(0.95, 0.995), by=("method",), x: str = "nnz",
                  y: str = "accuracy", repeat: str = "repeat") -> pd.DataFrame:
    """Per group and target, the fewest ``x`` reaching it within each repeat, and its spread.

    A repeat is one draw of everything a run's seed decides (its data order, and its init
    where the init is random); within a repeat the fewest is taken over every other grid axis
    (widths, budgets, learning rates, schedules). The spread over repeats says how much of a
    method's best result is luck.

    Args:
      df: run records with the columns ``by``, ``x``, ``y`` and ``repeat``.
      targets: accuracy levels.

    Returns:
      DataFrame with columns by..., target, repeats (how many repeats the group ran), reached
      (how many of them reach the target), best, median, worst (over the repeats that reach
      it; NaN if none does) and per_repeat (a tuple in repeat order, NaN where a repeat never
      reaches the target).
    """
    by = tuple(by)
    check_records(df, by + (x, y, repeat))
    rows = []
    for key, g in _groups(df, by):
        reps = sorted(g[repeat].unique())
        for t in targets:
            hit = g[g[y] >= t].groupby(repeat)[x].min()
            per = tuple(float(hit[r]) if r in hit.index else np.nan for r in reps)
            got = np.array([v for v in per if not np.isnan(v)])
            stats = ((got.min(), float(np.median(got)), got.max()) if len(got)
                     else (np.nan, np.nan, np.nan))
            rows.append(key + (t, len(reps), len(got)) + stats + (per,))
    return pd.DataFrame(rows, columns=list(by) + ["target", "repeats", "reached", "best",
                                                  "median", "worst", "per_repeat"])


# --- FLOPs to prune and train one model (the study's Table 1; docs/pruners.md, "FLOPs"). ---

FLOPS_HPARAMS = {"snip_samples": 128, "grasp_samples": 50, "hvp_factor": 2,
                 "synflow_iterations": 100, "iter_steps": 10, "prospr_steps": 3,
                 "second_order_factor": 3, "gmp_steps": 199, "lth_rounds": 5,
                 "rigl_delta": 100, "rigl_end": 0.75}
# FLOPs per nonzero parameter and sample. Table 1's convention: one per parameter in the
# forward pass (dense width 16: 609 x 49,920 x 50 = 1.5e9). The full count: a forward
# multiply-add (2) and a backward pass (4: input and weight gradients).
FORWARD, FORWARD_BACKWARD = 1, 6


def _unkept(total: int, kept: int, entries: int) -> float:
    """P(none of ``entries`` given entries is among ``kept`` drawn uniformly from ``total``)."""
    p = 1.0
    for j in range(entries):
        p *= max(total - kept - j, 0) / (total - j)
    return p


def expected_biases(widths, per_layer) -> float:
    """Biases the bias rule keeps, expected when the kept weights are placed uniformly at random.

    A hidden bias is kept iff its unit has a kept outgoing weight; the classifier bias always.

    Args:
      widths: hidden widths.
      per_layer: kept weights per layer (4 ints), or one int: that many weights placed
        uniformly at random over all N kernel entries (a global pruner).

    Returns:
      the expected number of kept biases (a float; all of them for a dense model).
    """
    widths = models.check_widths(widths)
    shapes = models.layer_shapes(widths)
    kept = 1.0
    if isinstance(per_layer, (int, np.integer)):
        n_w = models.num_weights(widths)
        for l in range(3):
            kept += widths[l] * (1 - _unkept(n_w, int(per_layer), shapes[l + 1][1]))
        return kept
    counts = [int(c) for c in per_layer]
    for l in range(3):
        i, o = shapes[l + 1]
        kept += widths[l] * (1 - _unkept(i * o, counts[l + 1], o))
    return kept


def flops(method: str, widths, budget: int | None = None, *, epochs: int = 50, n: int = 49_982,
          batch: int = 128, nnz: float | None = None, **method_hparams) -> dict:
    """Floating-point operations to prune and train one model with ``method``.

    Two conventions, side by side (docs/pruners.md, "FLOPs"):

    - ``total`` (the study's Table 1): one FLOP per nonzero parameter (weights AND biases) and
      sample in the forward pass, summed over the pruning and the training of the model.
      Dense training at width 16: 609 x 49,920 x 50 = 1.52e9.
    - ``total_fwd_bwd``: the same passes counted in full, 2 FLOPs forward (multiply + add) and
      4 backward (input and weight gradients) per nonzero parameter and sample, plus the extra
      backward work some pruners do (RigL's dense weight gradient at its updates).

    The optimiser update, mask selection (sorts) and evaluation are not counted. An epoch is
    (n // batch) x batch samples (390 x 128 = 49,920). A sparse model of w weights is counted
    with w + its biases; the biases are the bias rule's count when the w weights sit uniformly
    at random (``expected_biases``; per layer for RigL's ERK counts). Trained pruners
    concentrate their weights on fewer units and keep fewer biases than that: pass the
    measured nonzero count ``nnz`` of the returned model (e.g. the mean of the records'
    ``nnz`` column) to count the final sparse model with it; the hidden-bias counts of the
    intermediate masks of GMP and LTH are then scaled by the same measured / modelled ratio.

    Per method, "prune" is the work that only serves to find the mask and "train" the training
    of the returned model. dense, random: no pruning cost. snip: one dense pass on
    ``snip_samples``. grasp: a dense pass plus a Hessian-vector product (``hvp_factor`` passes,
    double backprop) on ``grasp_samples``. synflow: ``synflow_iterations`` passes on 1 sample at
    the decreasing weight counts N (f/N)^(j/I). iter_snip, force: ``iter_steps`` passes on
    ``batch`` samples at N (f/N)^(t/S), biases dense. prospr: ``prospr_steps`` unrolled dense
    steps, the meta-loss pass, and ``second_order_factor`` x the unrolled steps for the
    meta-gradient. gmp: prune 0; train follows the cubic schedule step by step (exact counts,
    clamped to [f, N]). lth: prune = rounds 0 .. R-2 (``epochs`` each at
    int(N (f/N)^(r/(R-1))) weights), train = the last round at f. rigl: train = sparse training
    at f; its updates reuse the step's forward pass (prune 0 forward-only) and, counted in
    full, add the dense weight gradient 2 (N - f) per sample every ``rigl_delta`` steps until
    ``rigl_end`` of training, as RigL's own FLOP accounting.

    Args:
      method: a registered pruner (its ``Pruner.cost``; one that states none counts as random
        pruning: nothing beyond training its returned model), or "dense".
      widths: hidden widths (or one int).
      budget: weight budget f (ignored by "dense").
      epochs: training epochs (per round for lth).
      n, batch: data points and batch size.
      nnz: measured nonzero parameters (weights + biases) of the returned sparse model, or
        None to use the modelled count. Ignored by "dense".
      method_hparams: overrides of ``FLOPS_HPARAMS``.

    Returns:
      {"prune", "train", "total"} (Table 1's forward-only count) and
      {"prune_fwd_bwd", "train_fwd_bwd", "total_fwd_bwd"} (forward + backward), floats.
    """
    if method not in registry.names() and not plugins.is_path(method):
        raise ValueError(f"unknown method {method!r}; choose from {registry.names()}")
    cost = registry.get(method).cost
    unknown = sorted(set(method_hparams) - set(FLOPS_HPARAMS))
    if unknown:
        raise ValueError(f"unknown FLOPs hyper-parameters {unknown}; known {list(FLOPS_HPARAMS)}")
    h = {**FLOPS_HPARAMS, **method_hparams}
    widths = models.check_widths(widths)
    n_w, n_p, hidden = models.num_weights(widths), models.num_params(widths), sum(widths)
    f = n_w if method == "dense" else budget
    if f is None or not 1 <= int(f) <= n_w:
        raise ValueError(f"budget must be in [1, {n_w}] for widths {widths}, got {budget}")
    f = int(f)
    steps = n // batch
    if steps < 1 or epochs < 1:
        raise ValueError(f"need n >= batch and epochs >= 1, got n={n}, batch={batch}, {epochs}")
    t, samples = epochs * steps, epochs * steps * batch
    # RigL keeps its ERK per-layer counts all through training; the others place globally.
    erk = [int(c) for c in selection.erk_counts(widths, f)] if cost.erk else None
    final_model = f + expected_biases(widths, erk if erk is not None else f)
    if nnz is not None and method != "dense":
        if not f < float(nnz) <= f + hidden + 1:
            raise ValueError(f"nnz must be in ({f}, {f + hidden + 1}] (weights + biases), "
                             f"got {nnz}")
        # Measured / modelled hidden biases: how much the method concentrates its weights.
        scale = (float(nnz) - f - 1) / max(final_model - f - 1, 1e-12)
    else:
        scale = 1.0

    def params(w):  # nonzero parameters of a mask of w weights (global placement)
        if w >= n_w:
            return float(n_p)
        return w + 1 + scale * (expected_biases(widths, w) - 1)

    if erk is None:
        trained = params(f) * samples
    else:
        trained = (final_model if nnz is None else float(nnz)) * samples
    # The method's own work, from the table (``Pruner.cost``): parameter-sample products of
    # its pruning passes, extra forward + backward FLOPs, and its training's products.
    prune, extra, trained = cost.fn(costs.Inputs(
        widths=widths, budget=f, n_w=n_w, n_p=n_p, hidden=hidden, steps=t, samples=samples,
        batch=batch, hparams=h, params=params, trained=trained))
    out = {"prune": FORWARD * prune, "train": FORWARD * trained}
    out["total"] = out["prune"] + out["train"]
    out["prune_fwd_bwd"] = FORWARD_BACKWARD * prune + extra
    out["train_fwd_bwd"] = FORWARD_BACKWARD * trained
    out["total_fwd_bwd"] = out["prune_fwd_bwd"] + out["train_fwd_bwd"]
    return {k: float(v) for k, v in out.items()}


def flops_table(widths=16, budget: int = 55, *, nnz: dict | None = None,
                **kwargs) -> pd.DataFrame:
    """``flops`` for every method (the study's Table 1: width 16, budget 55).

    Args:
      widths, budget: the setting.
      nnz: optional {method: measured nonzero parameters of its returned models}.
      kwargs: passed to ``flops``.

    Returns:
      DataFrame: method, prune, train, flops (Table 1's forward-only count, prune + train),
      flops_fwd_bwd (forward + backward), relative (flops / dense flops).
    """
    nnz = dict(nnz or {})
    unknown = sorted(set(nnz) - set(registry.METHODS))
    if unknown:
        raise ValueError(f"nnz names unknown methods {unknown}; choose from {registry.METHODS}")
    rows = []
    for m in registry.METHODS:
        out = flops(m, widths, budget, nnz=nnz.get(m), **kwargs)
        rows.append({"method": m, "prune": out["prune"], "train": out["train"],
                     "flops": out["total"], "flops_fwd_bwd": out["total_fwd_bwd"]})
    df = pd.DataFrame(rows)
    return df.assign(relative=df["flops"] / df.loc[df["method"] == "dense", "flops"].iloc[0])


# --- Random pruning leaves no path (the study's theorem, App. L), by Monte Carlo. ---

# Kept weights per layer up to which a trial's mask is drawn as an index set (Floyd's algorithm,
# O(n^2) per layer and trial, whatever the width); more are drawn as dense top-k masks.
_NO_PATH_SPARSE_MAX = 256


def _check_counts(widths, per_layer) -> tuple[tuple, tuple]:
    shapes = models.layer_shapes(widths)
    counts = tuple(int(c) for c in per_layer)
    if len(counts) != 4:
        raise ValueError(f"per_layer needs 4 counts (one per layer), got {per_layer}")
    for l, (c, (i, o)) in enumerate(zip(counts, shapes)):
        if not 0 <= c <= i * o:
            raise ValueError(f"layer {l} keeps {c} weights but has only {i * o} at {widths}")
    return shapes, counts


def _kept_indices(key, m, c: int, size: int):
    """(size, c) indices into a layer of m entries: per row a uniformly random c-subset.

    Floyd's algorithm: for j = m - c, ..., m - 1 draw t uniform in [0, j]; keep t, or j if t is
    kept already. Exact, and independent of m in cost (m may be traced).
    """
    def step(j, kept):
        top = m - c + j
        t = jax.random.randint(jax.random.fold_in(key, j), (size,), 0, top + 1)
        return kept.at[:, j].set(jnp.where((kept == t[:, None]).any(-1), top, t))

    return jax.lax.fori_loop(0, c, step, jnp.full((size, c), -1, jnp.int32))


def _no_path_sparse(key, dims, counts, size: int, dmax: int):
    """(size,) no-path flags of random masks kept as index sets; dims (4, 2) may be traced."""
    trial = jnp.arange(size)[:, None]
    reach = jnp.broadcast_to(jnp.arange(dmax) < dims[0, 0], (size, dmax))
    for l, (kk, c) in enumerate(zip(jax.random.split(key, 4), counts)):
        i, o = dims[l, 0], dims[l, 1]
        nxt = jnp.zeros((size, dmax), jnp.int32)
        if c:
            idx = _kept_indices(kk, i * o, c, size)  # kernel (i, o) flattened row-major
            nxt = nxt.at[trial, idx % o].max(reach[trial, idx // o].astype(jnp.int32))
        reach = nxt > 0
    return ~reach[:, 0]


@functools.partial(jax.jit, static_argnames=("counts", "size", "dmax"))
def _no_path_widths(keys, dims, counts, size, dmax):
    """(W, size) no-path flags for W architectures at once: keys (W,), dims (W, 4, 2)."""
    return jax.vmap(lambda k, d: _no_path_sparse(k, d, counts, size, dmax))(keys, dims)


@functools.partial(jax.jit, static_argnames=("shapes", "counts", "size"))
def _no_path_chunk(key, shapes, counts, size):
    """(size,) no-path flags of dense random masks of one architecture (many kept weights)."""
    reach = jnp.ones((size, shapes[0][0]), bool)
    rows = jnp.arange(size)[:, None]
    for kk, (i, o), c in zip(jax.random.split(key, 4), shapes, counts):
        # Top-c of uniform noise: exactly c kept entries, a uniformly random subset up to ties
        # of float32 draws at the c-th value (broken to the lower index; chance ~ c m / 2^23).
        keep = jnp.zeros((size, i * o), bool)
        if c:
            idx = jax.lax.top_k(jax.random.uniform(kk, (size, i * o)), c)[1]
            keep = keep.at[rows, idx].set(True)
        reach = _vec_mat(reach, keep.reshape(size, i, o))
    return ~reach[:, 0]


def _no_path_probabilities(widths: list, per_layer, trials: int, key, chunk) -> list[float]:
    """No-path probability of each architecture in ``widths``, all in one compiled call."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    checked = [_check_counts(w, per_layer) for w in widths]
    counts = checked[0][1]
    key = jax.random.key(0) if key is None else key
    if max(counts) > _NO_PATH_SPARSE_MAX:  # dense masks: one compile per architecture
        out = []
        for (shapes, _), k in zip(checked, jax.random.split(key, len(widths))):
            size = min(trials, chunk or max(1, 2 ** 22 // max(i * o for i, o in shapes)))
            keys = jax.random.split(k, -(-trials // size))
            hits = [np.asarray(_no_path_chunk(kk, shapes, counts, size)) for kk in keys]
            out.append(float(np.mean(np.concatenate(hits)[:trials])))
        return out
    dims = np.array([shapes for shapes, _ in checked], np.int32)  # (W, 4, 2)
    dmax = int(dims.max())
    size = min(trials, chunk or max(1, 2 ** 22 // (len(widths) * (dmax + 2 * max(counts)))))
    hits = [np.asarray(_no_path_widths(jax.random.split(jax.random.fold_in(key, j),
                                                        len(widths)),
                                       jnp.asarray(dims), counts, size, dmax))
            for j in range(-(-trials // size))]
    return [float(v) for v in np.concatenate(hits, axis=1)[:, :trials].mean(axis=1)]


def random_pruning_no_path_probability(width, per_layer, trials: int = 10_000, key=None, *,
                                       chunk: int | None = None) -> float:
    """Monte Carlo probability that random masks leave no input-to-output path.

    Each trial keeps exactly n_l weights of layer l, a uniformly random subset, independently
    per layer, and checks forward reachability of the output through kept weights.

    Args:
      width: hidden widths (or one int w).
      per_layer: (n1, n2, n3, n4) kept weights per layer, 0 <= n_l <= layer size.
      trials: number of random draws.
      key: typed PRNG key (default ``jax.random.key(0)``).
      chunk: trials per compiled batch (default: ~4M array entries per batch).

    Returns:
      the fraction of trials with no path.
    """
    return _no_path_probabilities([width], per_layer, trials, key, chunk)[0]


def no_path_curve(widths, per_layer, trials: int = 10_000, key=None) -> pd.DataFrame:
    """``random_pruning_no_path_probability`` over widths (the theorem's figure).

    Every width is drawn in the same compiled call (one compile for the whole curve while each
    layer keeps at most 256 weights); seconds for 1000 trials at widths 3 to 256 on a CPU.

    Returns:
      DataFrame: width, probability, stderr (binomial), trials.
    """
    widths = list(widths)
    probs = _no_path_probabilities(widths, per_layer, trials, key, None)
    return pd.DataFrame([{"width": w, "probability": p,
                          "stderr": math.sqrt(p * (1 - p) / trials), "trials": trials}
                         for w, p in zip(widths, probs)])
