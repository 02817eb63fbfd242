"""What the study draws from finished runs (SPEC section 7): effective nonzeros, further
prunability and Pareto fronts.

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

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from spiralprune import base, masking, models, training

_F32 = jnp.float32


def _vec_mat(v: jax.Array, m: jax.Array) -> jax.Array:
    """Boolean (..., in) @ (..., in, out) -> (..., out): is any term True."""
    return jnp.matmul(v[..., None, :].astype(_F32), m.astype(_F32))[..., 0, :] > 0


def _mat_vec(m: jax.Array, v: jax.Array) -> jax.Array:
    """Boolean (..., in, out) @ (..., out) -> (..., in)."""
    return jnp.matmul(m.astype(_F32), v[..., :, None].astype(_F32))[..., 0] > 0


def _reachability(kernels) -> tuple[list, list]:
    """Units reachable from the inputs (fwd[l]) and reaching the output (bwd[l]), l = 0..4."""
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
    fwd, bwd = _reachability(kernels)
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
                  mode: str = "stop", candidates: int = 64) -> dict:
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
    need = round(base_acc * n_data) - tolerance * n_data - 1e-6
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


def _check_records(df: pd.DataFrame, columns) -> None:
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
    _check_records(df, by + (x, y))
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
    _check_records(df, by + (x, y))
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

