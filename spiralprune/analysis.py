"""What the study draws from finished runs (SPEC section 7): effective nonzeros, further
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
from spiralprune.pruning import during_training, lottery

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


# --- FLOPs to prune and train one model (the study's Table 1). ---

FLOPS_METHODS = ("dense", "random", "snip", "grasp", "synflow", "iter_snip", "force", "prospr",
                 "gmp", "rigl", "lth")
FLOPS_HPARAMS = {"snip_samples": 128, "grasp_samples": 50, "hvp_factor": 2,
                 "synflow_iterations": 100, "iter_steps": 10, "prospr_steps": 3,
                 "second_order_factor": 3, "gmp_steps": 199, "lth_rounds": 5,
                 "rigl_delta": 100, "rigl_end": 0.75}
FORWARD, BACKWARD = 2, 4  # FLOPs per nonzero parameter and sample


def flops(method: str, widths, budget: int | None = None, *, epochs: int = 50, n: int = 49_982,
          batch: int = 128, **method_hparams) -> dict:
    """Floating-point operations to prune and train one model with ``method``.

    Convention (the study's Table 1 counts nonzero parameters, biases included, in forward and
    backward passes): a forward pass costs 2 FLOPs (multiply + add) per nonzero parameter and
    sample, a backward pass 4 (2 for the input gradients + 2 for the weight gradients), so a
    training step costs 6 x nnz x batch; the optimiser update, mask selection (sorts) and
    evaluation are not counted. A model with w nonzero weights is counted with
    w + min(w, d1 + d2 + d3) + 1 parameters: the most biases the bias rule can keep (each kept
    hidden bias needs an outgoing weight), i.e. all of them for dense models. An epoch is
    (n // batch) x batch samples (390 x 128). Per method, "prune" is the work that only
    serves to find the mask and "train" the training of the model that is returned:
    dense, random: no pruning cost. snip: one dense fwd+bwd on ``snip_samples``. grasp: a dense
    fwd+bwd plus a Hessian-vector product (``hvp_factor`` x fwd+bwd, double backprop) on
    ``grasp_samples``. synflow: ``synflow_iterations`` fwd+bwd on 1 sample at the decreasing
    weight counts N (f/N)^(j/I). iter_snip, force: ``iter_steps`` fwd+bwd on ``batch`` samples at
    N (f/N)^(t/S), biases dense. prospr: ``prospr_steps`` unrolled dense steps, the meta-loss
    fwd+bwd, and ``second_order_factor`` x the unrolled steps for the meta-gradient through
    them. gmp: prune 0; train integrates the nonzeros of the cubic schedule over the steps.
    lth: prune = rounds 0 .. R-2 (50 epochs each at int(N (f/N)^(r/(R-1)))), train = the last
    round at f. rigl: train = sparse training at f (update steps also do fwd+bwd); prune =
    the dense weight gradients of the update steps (2 (N - f) per sample, every
    ``rigl_delta`` steps until ``rigl_end`` of training), as RigL's own FLOP accounting.

    Args:
      method: one of ``FLOPS_METHODS``.
      widths: hidden widths (or one int).
      budget: weight budget f (ignored by "dense").
      epochs: training epochs (per round for lth).
      n, batch: data points and batch size.
      method_hparams: overrides of ``FLOPS_HPARAMS``.

    Returns:
      {"prune": int, "train": int, "total": int}.
    """
    if method not in FLOPS_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {FLOPS_METHODS}")
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
    step, t = FORWARD + BACKWARD, epochs * steps

    def nnz(w):
        return int(w) + min(int(w), hidden) + 1

    def train(w):
        return step * nnz(w) * steps * batch * epochs

    def geometric(k):  # weight counts at the start of k exponential-schedule iterations
        return [math.floor(n_w * (f / n_w) ** (j / k)) for j in range(k)]

    prune, trained = 0, train(f)
    if method == "dense":
        trained = step * n_p * steps * batch * epochs
    elif method == "snip":
        prune = step * n_p * h["snip_samples"]
    elif method == "grasp":
        prune = step * (1 + h["hvp_factor"]) * n_p * h["grasp_samples"]
    elif method == "synflow":
        prune = sum(step * nnz(w) for w in geometric(h["synflow_iterations"]))
    elif method in ("iter_snip", "force"):
        prune = sum(step * (w + hidden + 1) * batch for w in geometric(h["iter_steps"]))
    elif method == "prospr":
        inner = h["prospr_steps"] * step * n_p * batch
        prune = inner + step * n_p * batch + h["second_order_factor"] * inner
    elif method == "gmp":
        delta, k = during_training.gmp_delta(t, h["gmp_steps"])
        events = during_training.gmp_event_steps(t, h["gmp_steps"])
        targets = [min(max(c, f), n_w)  # exact mode: clamped to [f, N]
                   for c in during_training.gmp_counts(n_w, f, len(events), delta=delta, n=k)]
        bounds = np.concatenate([[0], events, [t]])
        counts = np.concatenate([[n_w], targets])
        trained = sum(step * nnz(w) * batch * int(b - a)
                      for w, a, b in zip(counts, bounds[:-1], bounds[1:]))
    elif method == "lth":
        counts = lottery.lth_counts(n_w, f, h["lth_rounds"])
        targets = [min(max(c, f), n_w) for c in counts[:-1]] + [f]  # exact mode
        prune, trained = sum(train(w) for w in targets[:-1]), train(targets[-1])
    elif method == "rigl":
        _, updates = during_training.rigl_schedule(t, h["rigl_delta"], h["rigl_end"])
        prune = updates * 2 * (n_w - f) * batch
    prune, trained = int(prune), int(trained)
    return {"prune": prune, "train": trained, "total": prune + trained}


def flops_table(widths=16, budget: int = 55, **kwargs) -> pd.DataFrame:
    """``flops`` for every method (the study's Table 1: width 16, budget 55).

    Returns:
      DataFrame: method, prune, train, total, relative (total / dense total).
    """
    rows = [{"method": m, **flops(m, widths, budget, **kwargs)} for m in FLOPS_METHODS]
    df = pd.DataFrame(rows)
    return df.assign(relative=df["total"] / df.loc[df["method"] == "dense", "total"].iloc[0])


# --- Random pruning leaves no path (the study's theorem, App. L), by Monte Carlo. ---


def _check_counts(widths, per_layer) -> tuple[tuple, tuple]:
    shapes = models.layer_shapes(widths)
    counts = tuple(int(c) for c in per_layer)
    if len(counts) != 4:
        raise ValueError(f"per_layer needs 4 counts (one per layer), got {per_layer}")
    for l, (c, (i, o)) in enumerate(zip(counts, shapes)):
        if not 0 <= c <= i * o:
            raise ValueError(f"layer {l} keeps {c} weights but has only {i * o} at {widths}")
    return shapes, counts


@functools.partial(jax.jit, static_argnames=("shapes", "counts", "size"))
def _no_path_chunk(key, shapes, counts, size):
    reach = jnp.ones((size, shapes[0][0]), bool)
    rows = jnp.arange(size)[:, None]
    for kk, (i, o), c in zip(jax.random.split(key, 4), shapes, counts):
        # Top-c of uniform noise: exactly c kept entries, a uniformly random subset up to ties
        # of float32 draws at the c-th value (broken to the lower index; chance ~ c m / 2^23).
        # Float noise: XLA's CPU top_k is ~10x slower on integer keys.
        keep = jnp.zeros((size, i * o), bool)
        if c:
            idx = jax.lax.top_k(jax.random.uniform(kk, (size, i * o)), c)[1]
            keep = keep.at[rows, idx].set(True)
        reach = _vec_mat(reach, keep.reshape(size, i, o))
    return ~reach[:, 0]


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
      chunk: trials per compiled batch (default: ~4M mask entries per batch).

    Returns:
      the fraction of trials with no path.
    """
    shapes, counts = _check_counts(width, per_layer)
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    biggest = max(i * o for i, o in shapes)
    size = min(trials, chunk or max(1, 2 ** 22 // biggest))
    keys = jax.random.split(jax.random.key(0) if key is None else key, -(-trials // size))
    hits = [np.asarray(_no_path_chunk(k, shapes, counts, size)) for k in keys]
    return float(np.mean(np.concatenate(hits)[:trials]))


def no_path_curve(widths, per_layer, trials: int = 10_000, key=None) -> pd.DataFrame:
    """``random_pruning_no_path_probability`` over widths (the theorem's figure).

    Returns:
      DataFrame: width, probability, stderr (binomial), trials.
    """
    widths = list(widths)
    keys = jax.random.split(jax.random.key(0) if key is None else key, len(widths))
    rows = []
    for w, k in zip(widths, keys):
        p = random_pruning_no_path_probability(w, per_layer, trials, k)
        rows.append({"width": w, "probability": p, "stderr": math.sqrt(p * (1 - p) / trials),
                     "trials": trials})
    return pd.DataFrame(rows)
