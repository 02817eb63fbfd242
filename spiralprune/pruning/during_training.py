"""Pruning during training for ONE model: GMP (Zhu & Gupta) and RigL, as ``lax.scan`` segments.

Both pruners are pure functions of one run (params, masks, data, keys, lr, schedule, budget)
with the budget a traced int32 scalar, so ``populations.run`` vmaps them over runs with mixed
budgets. Neither uses ``lax.cond`` per step: the training loop is a scan over *segments* with
one pruning event at each segment boundary (GMP: segments of Delta steps; RigL: blocks of
Delta T steps ending with the update step), so a sort happens once per event, never per step.

Every step is a step of the one step loop, ``training.train_steps`` (plain training runs it
too): the lr comes from the step's global epoch (``step // steps_per_epoch``) and the batch
from ``training.batch(data, key, epoch, step_in_epoch)``; so a method that skips optimizer
steps (RigL) never shifts the schedule, and the total length T = spec.epochs * steps_per_epoch
follows the spec (a short "quick" spec works too).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import base, masking, models, training
from spiralprune.pruning import selection, signatures

GMP_ARGS = {"gmp_steps": 199, "reference_counts": False}
RIGL_ARGS = {"rigl_delta": 100, "rigl_alpha": 0.3, "rigl_end": 0.75,
             "reference_counts": False}


def resolve_args(spec: training.Spec, defaults: dict) -> dict:
    """``spec.method_args`` over ``defaults`` (``signatures.resolve_args``)."""
    return signatures.resolve_args(spec.method, spec.args, defaults)


def _last_epoch_loss(losses: jax.Array, spe: int) -> jax.Array:
    # training.train_epochs reports the mean loss of the last epoch; so do the pruners.
    return jnp.mean(losses[-spe:])


# --- GMP: gradual magnitude pruning (Zhu & Gupta cubic schedule), docs/pruners.md. ---


def gmp_delta(num_steps: int, gmp_steps: int = 199) -> tuple[int, int]:
    """The event spacing Delta and the schedule length n (static).

    Matches the study: Delta = int(T / (n + 1)) with n = 199 (97 for T = 19,500). Deviation for
    short runs only: when T < n + 1, n shrinks to T - 1 so that Delta >= 1 and the schedule
    still reaches the budget before the end.

    Returns:
      (Delta, n).
    """
    if num_steps < 2:
        raise ValueError(f"GMP needs at least 2 training steps, got {num_steps}")
    if gmp_steps < 1:
        raise ValueError(f"gmp_steps must be >= 1, got {gmp_steps}")
    n = min(int(gmp_steps), num_steps - 1)
    return num_steps // (n + 1), n


def gmp_event_steps(num_steps: int, gmp_steps: int = 199) -> np.ndarray:
    """The steps t = k Delta, 0 < t < T, at whose start GMP prunes (201 events for the study)."""
    delta, _ = gmp_delta(num_steps, gmp_steps)
    return delta * np.arange(1, (num_steps - 1) // delta + 1)


def gmp_counts(num_weights: int, budget: int, num_events: int, *, delta: int,
               n: int) -> list[int]:
    """The study's targets n_t = int(f + (N - f)(1 - t / (n Delta))^3), t = k Delta, on the host.

    Python float64 exactly as ``main_loop.py`` (s_i = 0, t_0 = 0): events past k = n overshoot
    (the cube goes negative: n_t = f - 1 for the study's k = 200, 201).

    Returns:
      ``num_events`` ints.
    """
    f, big = int(budget), int(num_weights)
    return [int(f + (big - f) * (1 - (k * delta) / (n * delta)) ** 3)
            for k in range(1, num_events + 1)]


def gmp_targets(num_weights: int, budget, num_steps: int, gmp_steps: int = 199, *,
                reference_counts: bool = False) -> jax.Array:
    """Remaining-weight target of every GMP event, (K,) int32, for a traced budget.

    Evaluated on the host (``selection.host_counts``: Python float64, bit-exact with the study
    at every event). Exact mode clamps the targets to [f, N], so the overshoot events keep f;
    ``reference_counts`` keeps the overshoot (f - 1).

    Args:
      num_weights: N; budget: f (int, may be traced); num_steps: T; gmp_steps: n (199).

    Returns:
      int32 (K,), K = number of events (201 for the study).
    """
    delta, n = gmp_delta(num_steps, gmp_steps)
    num_events = (num_steps - 1) // delta
    formula = functools.partial(_gmp_formula, delta=delta, n=n)
    targets = selection.host_counts(formula, num_weights, budget, num_events)
    if reference_counts:
        return targets
    return jnp.clip(targets, jnp.asarray(budget, jnp.int32), num_weights)


def _gmp_formula(num_weights, budget, num_events, *, delta, n):
    return gmp_counts(num_weights, budget, num_events, delta=delta, n=n)


def gmp_prune(params: base.Params, masks: base.Masks, target, *,
              reference_counts: bool = False) -> base.Masks:
    """One GMP event: keep the ``target`` largest |W| among the current mask (global).

    Exact mode: ``selection.topk_mask`` with eligibility = current mask, so masks are nested
    and a target >= nnz keeps everything. Reference mode: open_lth's ``|w| > sort(|W|)[N - n_t]``
    on the masked weights (``Magnitude.py``): n_t - 1 kept, or all nonzeros if n_t > nnz.

    Args:
      params: masked params; masks: current masks; target: int (may be traced).

    Returns:
      new masks, bias rule applied.

    References: Zhu & Gupta 2017; stephenqz/sparsest pruning_methods/Magnitude.py,
    training_loops/main_loop.py (imp); facebookresearch/open_lth pruning/sparse_global.py.
    """
    eligible = masking.flatten_kernels(masks)
    w = jnp.abs(masking.flatten_kernels(params))
    if reference_counts:
        n = w.shape[0]
        keep = selection.reference_keep_sorted_gt(jnp.where(eligible, w, 0), n - target)
        keep = keep & eligible
    else:
        keep = selection.topk_mask(w, target, eligible)
    return selection.to_masks(keep, params)


def gmp(params: base.Params, masks: base.Masks, data, data_key, lr, schedule, budget,
        spec: training.Spec, *, gmp_steps: int = 199, reference_counts: bool = False,
        history: bool = False) -> dict:
    """Trains one model with gradual magnitude pruning to ``budget`` weights.

    Loop: a scan over segments of Delta steps, an event at the start of each segment
    (t = k Delta, k = 1 .. K, K = (T - 1) // Delta; 201 for the study), the first segment
    without one and the last one the tail of T - K Delta steps (3 for the study). Training is
    projected SGD throughout, no separate fine-tuning (as the study's code).

    Args:
      params: initial params (unmasked); masks: starting masks (all True: dense start).
      data: (x (n, 2), y (n,)); data_key: the run's data key.
      lr, schedule, budget: the run's base lr, schedule index and weight budget f (traced).
      spec: static description (T = spec.epochs * steps per epoch).
      gmp_steps: n of the schedule (199); reference_counts: the study's counts (f - 2 final).
      history: also return the flat kernel masks after every event.

    Returns:
      dict: params, masks (final), train_loss (mean loss of the last epoch) and, with
      ``history``, "mask_history" (K, N) bool.

    References: Zhu & Gupta 2017, "To prune, or not to prune"; stephenqz/sparsest
    training_loops/main_loop.py (prune_type="imp"), pruning_methods/Magnitude.py;
    facebookresearch/open_lth pruning/sparse_global.py.
    """
    num_steps = spec.epochs * training.steps_per_epoch(data, spec)
    delta, n = gmp_delta(num_steps, gmp_steps)
    num_events = (num_steps - 1) // delta
    targets = gmp_targets(models.num_weights(spec.widths), budget, num_steps, gmp_steps,
                          reference_counts=reference_counts)
    train = functools.partial(training.train_steps, data=data, data_key=data_key, lr=lr,
                              schedule=schedule, spec=spec)

    def event(params, masks, k):
        masks = gmp_prune(params, masks, targets[k - 1], reference_counts=reference_counts)
        return masking.apply(params, masks), masks

    params = masking.apply(params, masks)
    opt_state = training.optimizer(spec).init(params)
    params, opt_state, head = train(params, opt_state, masks, start=0, num_steps=delta)

    def segment(carry, k):
        params, opt_state, masks = carry
        params, masks = event(params, masks, k)
        params, opt_state, losses = train(params, opt_state, masks, start=k * delta,
                                          num_steps=delta)
        # The (K, N) history is only built when asked: at width 256 it is 26 MB per run.
        return (params, opt_state, masks), (losses, masking.flatten_kernels(masks) if history
                                            else None)

    (params, opt_state, masks), (mid, hist) = jax.lax.scan(
        segment, (params, opt_state, masks), jnp.arange(1, num_events, dtype=jnp.int32))
    t_last = num_events * delta
    params, masks = event(params, masks, num_events)
    params, _, tail = train(params, opt_state, masks, start=t_last,
                            num_steps=num_steps - t_last)
    losses = jnp.concatenate([head, mid.reshape(-1), tail])
    out = {"params": params, "masks": masks,
           "train_loss": _last_epoch_loss(losses, training.steps_per_epoch(data, spec))}
    if history:
        out["mask_history"] = jnp.concatenate([hist, masking.flatten_kernels(masks)[None]])
    return out


def gmp_train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
    """``populations`` train_fn of GMP: init from the run's key, prune to variant.budget.

    Method args: ("gmp_steps", 199), ("reference_counts", False).

    Returns:
      ``training.result(...)``.

    References: Zhu & Gupta 2017; stephenqz/sparsest training_loops/main_loop.py (imp),
    pruning_methods/Magnitude.py; facebookresearch/open_lth pruning/sparse_global.py.
    """
    args = resolve_args(spec, GMP_ARGS)
    keys = training.run_keys(variant.seed)
    params = training.initial_params(variant, spec, keys["init"])
    out = gmp(params, variant.masks, data, keys["data"], variant.lr, variant.schedule,
              variant.budget, spec, gmp_steps=args["gmp_steps"],
              reference_counts=bool(args["reference_counts"]))
    return training.result(out["params"], out["masks"], data, spec, out["train_loss"])


# --- RigL: rigged lottery (dynamic sparse training), docs/pruners.md. ---


def erk_counts(widths, budget) -> jax.Array:
    """ERK per-layer weight counts summing exactly to ``budget``, in-graph (traced budget).

    The same allocation as ``selection.erk_counts`` (google-research/rigl ERK with power 1: the
    max-raw-probability layers join the dense set while eps * p_max > 1; then a largest-
    remainder apportionment, remainder ties to the lower layer), but in exact integer
    arithmetic: with a_l = n_in + n_out, the real count of a sparse layer is
    rest * a_l / A (rest = f - dense weights, A = sum of a over sparse layers), so floors and
    remainders are integer divisions and no float rounding can move a count.

    Args:
      widths: static hidden widths.
      budget: int scalar f (may be traced), clipped to [0, N].

    Returns:
      int32 (4,) counts.

    References: Evci et al. 2020, RigL; stephenqz/sparsest pruning_methods/rigL/ERK.py;
    google-research/rigl rigl/sparse_utils.py (get_sparsities_erdos_renyi).
    """
    shapes = models.layer_shapes(widths)
    n = np.array([i * o for i, o in shapes], np.int64)
    a = np.array([i + o for i, o in shapes], np.int64)
    if n.sum() * a.max() >= 2 ** 31 or n.max() * a.sum() >= 2 ** 31:
        raise ValueError(f"widths {widths} too large for the int32 ERK apportionment")
    ge = jnp.asarray(a[:, None] * n[None, :] >= a[None, :] * n[:, None])  # p_l >= p_m
    n_j, a_j = jnp.asarray(n, jnp.int32), jnp.asarray(a, jnp.int32)
    f = jnp.clip(jnp.asarray(budget, jnp.int32), 0, int(n.sum()))
    dense = jnp.zeros(4, bool)

    def rest_and_total(dense):
        rest = f - jnp.sum(jnp.where(dense, n_j, 0))
        return rest, jnp.maximum(jnp.sum(jnp.where(dense, 0, a_j)), 1)

    for _ in range(4):  # each pass adds >= 1 layer or changes nothing
        rest, total = rest_and_total(dense)
        is_max = ~dense & jnp.all(ge | dense[None, :], axis=1)
        over = jnp.any(is_max & (rest * a_j > n_j * total))  # eps * p_max > 1
        dense = dense | (over & is_max)
    rest, total = rest_and_total(dense)
    share = rest * a_j
    floor = jnp.where(dense, n_j, share // total)
    rem = jnp.where(dense, -1, share % total)
    left = f - jnp.sum(floor)
    idx = jnp.arange(4)
    ahead = (rem[None, :] > rem[:, None]) | ((rem[None, :] == rem[:, None])
                                             & (idx[None, :] < idx[:, None]))
    return floor + ((jnp.sum(ahead, axis=1) < left) & ~dense).astype(jnp.int32)


@functools.lru_cache(maxsize=8)
def _reference_erk_table(widths) -> np.ndarray:
    """``selection.erk_counts(widths, f, reference=True)`` for every f in [0, N], (N + 1, 4)."""
    n = models.num_weights(widths)
    return np.stack([selection.erk_counts(widths, f, reference=True) for f in range(n + 1)]
                    ).astype(np.int32)


def reference_erk_counts(widths, budget) -> jax.Array:
    """The study's rigl-torch per-layer counts (``n_l - int((1 - d_l) n_l)``, >= budget), for a
    traced budget: looked up in a table made once per widths in float64, the study's order of
    operations (``selection.erk_counts(reference=True)``). Width 16, f = 30: [6, 10, 10, 6]."""
    widths = tuple(models.check_widths(widths))
    table = jnp.asarray(_reference_erk_table(widths))
    return table[jnp.clip(jnp.asarray(budget, jnp.int32), 0, table.shape[0] - 1)]


def rigl_drop_fraction(s, t_end: int, alpha: float = 0.3) -> jax.Array:
    """Cosine drop fraction alpha / 2 (1 + cos(pi s / T_end)) at update step ``s`` (1-based)."""
    return alpha / 2 * (1 + jnp.cos(jnp.pi * jnp.asarray(s, jnp.float32) / t_end))


def rigl_init_masks(key: base.PRNGKey, start: base.Masks, counts: jax.Array) -> base.Masks:
    """RigL's initial masks: per layer a uniformly random subset of ``counts[l]`` entries.

    As rigl-torch ``random_sparsify`` (torch.randperm), but exact counts and drawn among the
    starting mask's entries (all of them for a dense start). Bias rule applied.

    Args:
      key: the run's prune key; start: starting masks; counts: int (4,) (may be traced).

    Returns:
      masks.
    """
    keys = jax.random.split(key, len(models.LAYERS))
    kernels = []
    for i, (name, k) in enumerate(zip(models.LAYERS, keys)):
        m = start[name]["kernel"]
        u = jax.random.uniform(k, (m.size,))
        kernels.append(selection.topk_mask(u, counts[i], m.reshape(-1)).reshape(m.shape))
    return masking.from_kernels(kernels)


def rigl_masks(params: base.Params, masks: base.Masks, dense_grads: base.Params, s,
               t_end: int, alpha: float = 0.3, eligible: base.Masks | None = None):
    """RigL's per-layer drop-and-grow (mask part of one update).

    Per layer: n_prune = int(n_ones * f_s); keep the n_ones - n_prune largest |W| among the
    active weights; grow the n_prune largest |dense grad| among all other entries (just-dropped
    weights can be regrown). Ties (common: |grad| = 0 on dead or disconnected units) go to the
    LOWER flat index within the layer (``selection.topk_mask``); the study's torch.topk order
    is unspecified. Per-layer counts are preserved exactly.

    Args:
      params: masked params; masks: current masks; dense_grads: gradients at the masked params
      of this step's batch, before masking; s: 1-based step (may be traced); t_end, alpha:
      schedule; eligible: optional masks outside which nothing is ever grown.

    Returns:
      (new masks with the bias rule, born: kernel/bias masks of entries that became active).
    """
    f_s = rigl_drop_fraction(s, t_end, alpha)
    kernels = []
    for name in models.LAYERS:
        m = masks[name]["kernel"]
        mf = m.reshape(-1)
        w = jnp.abs(params[name]["kernel"]).reshape(-1)
        g = jnp.abs(dense_grads[name]["kernel"]).reshape(-1)
        n_ones = jnp.sum(mf, dtype=jnp.int32)
        n_prune = jnp.floor(n_ones.astype(jnp.float32) * f_s).astype(jnp.int32)
        keep = selection.topk_mask(w, n_ones - n_prune, mf)
        room = ~keep if eligible is None else ~keep & eligible[name]["kernel"].reshape(-1)
        grow = selection.topk_mask(g, n_prune, room)
        kernels.append((keep | grow).reshape(m.shape))
    new = masking.from_kernels(kernels)
    born = jax.tree.map(lambda a, b: a & ~b, new, masks)
    return new, born


def rigl_update(params, opt_state, masks, dense_grads, s, t_end: int, alpha: float = 0.3,
                eligible: base.Masks | None = None):
    """One RigL update step: new masks, NO optimizer step (skipped as in the study's loop).

    New connections start at 0 with zero momentum (``grow_init='zeros'``); regrown weights that
    were active keep value and momentum (``REINIT_WHEN_SAME=False``); then weights and momentum
    (kernels and biases) are multiplied by the new masks (bias rule recomputed).

    Returns:
      (params, opt_state, masks).

    References: Evci et al. 2020, RigL; stephenqz/sparsest pruning_methods/rigL/rigL.py;
    McCreary/rigl-torch rigl_torch/RigL.py; google-research/rigl sparse_optimizers_base.py.
    """
    new, born = rigl_masks(params, masks, dense_grads, s, t_end, alpha, eligible)
    live = jax.tree.map(lambda m, b: m & ~b, new, born)
    params = masking.apply(masking.apply(params, live), new)  # born entries: exactly 0
    return params, training.mask_momentum(opt_state, live), new


def rigl_schedule(num_steps: int, delta: int, end_fraction: float = 0.75) -> tuple[int, int]:
    """(T_end, number of updates U): updates at s = u Delta < T_end, u = 1 .. U (s 1-based).

    T_end = int(0.75 T) = 14,625 and U = 146 for the study (Delta = 100).
    """
    if delta < 1:
        raise ValueError(f"rigl_delta must be >= 1, got {delta}")
    t_end = int(end_fraction * num_steps)
    return t_end, max(0, (t_end - 1) // delta)


def rigl(params: base.Params, start: base.Masks, data, data_key, prune_key, lr, schedule,
         budget, spec: training.Spec, *, delta: int = 100, alpha: float = 0.3,
         end_fraction: float = 0.75, reference_counts: bool = False) -> dict:
    """Trains one model with RigL at ``budget`` weights, ERK-allocated per layer.

    Loop: a scan over U blocks of Delta steps, each Delta - 1 normal steps then the update step
    (the step counter s = t + 1 is a multiple of Delta and < T_end), then a tail of normal steps.
    On the update step the batch's dense gradient drives the drop-and-grow and the optimizer
    step is skipped; after every normal step the momentum is multiplied by the masks (the
    study's wrapped optimizer.step). The lr comes from each step's global epoch, so skipped
    steps do not shift the schedule (an optax schedule counting applied updates would lag).

    Args:
      params: initial params (unmasked); start: starting masks (all True: dense start; entries
        outside it are never used).
      data, data_key, prune_key: data and the run's data and prune keys.
      lr, schedule, budget: the run's base lr, schedule index, weight budget f (traced).
      spec: static description. delta, alpha, end_fraction: Delta T (100 as coded; the paper
        says 200), the cosine drop fraction's alpha (0.3), T_end / T (0.75).
      reference_counts: False: ERK counts summing exactly to the budget (``erk_counts``);
        True: the study's rigl-torch rounding per layer (``reference_erk_counts``, >= budget).

    Returns:
      dict: params, masks, train_loss (mean of the last epoch), counts (4,) ERK counts.

    References: Evci et al. 2020, "Rigging the Lottery"; stephenqz/sparsest
    pruning_methods/rigL/{rigL,ERK}.py, training_loops/main_loop.py (rigL);
    McCreary/rigl-torch rigl_torch/RigL.py; google-research/rigl.
    """
    spe = training.steps_per_epoch(data, spec)
    num_steps = spec.epochs * spe
    t_end, num_updates = rigl_schedule(num_steps, delta, end_fraction)
    counts = (reference_erk_counts if reference_counts else erk_counts)(spec.widths, budget)
    masks = rigl_init_masks(prune_key, start, counts)
    params = masking.apply(params, masks)
    opt_state = training.optimizer(spec).init(params)
    train = functools.partial(training.train_steps, data=data, data_key=data_key, lr=lr,
                              schedule=schedule, spec=spec, momentum_masked=True)

    def block(carry, u):
        params, opt_state, masks = carry
        params, opt_state, losses = train(params, opt_state, masks, start=(u - 1) * delta,
                                          num_steps=delta - 1)
        t = u * delta - 1
        xb, yb = training.batch(data, data_key, t // spe, t % spe, spec)
        loss, grads = jax.value_and_grad(models.loss)(params, xb, yb, spec.precision)
        params, opt_state, masks = rigl_update(params, opt_state, masks, grads, t + 1, t_end,
                                               alpha, start)
        return (params, opt_state, masks), jnp.concatenate([losses, loss[None]])

    (params, opt_state, masks), blocks = jax.lax.scan(
        block, (params, opt_state, masks), jnp.arange(1, num_updates + 1, dtype=jnp.int32))
    t0 = num_updates * delta
    params, _, tail = train(params, opt_state, masks, start=t0, num_steps=num_steps - t0)
    losses = jnp.concatenate([blocks.reshape(-1), tail])
    return {"params": params, "masks": masks, "train_loss": _last_epoch_loss(losses, spe),
            "counts": counts}


def rigl_train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
    """``populations`` train_fn of RigL: init and initial mask from the run's keys.

    Method args: ("rigl_delta", 100), ("rigl_alpha", 0.3), ("rigl_end", 0.75),
    ("reference_counts", False: exact ERK counts; True: the study's, ``reference_erk_counts``).

    Returns:
      ``training.result(...)``.

    References: Evci et al. 2020; stephenqz/sparsest pruning_methods/rigL/rigL.py;
    McCreary/rigl-torch rigl_torch/RigL.py.
    """
    args = resolve_args(spec, RIGL_ARGS)
    keys = training.run_keys(variant.seed)
    params = training.initial_params(variant, spec, keys["init"])
    out = rigl(params, variant.masks, data, keys["data"], keys["prune"], variant.lr,
               variant.schedule, variant.budget, spec, delta=int(args["rigl_delta"]),
               alpha=float(args["rigl_alpha"]), end_fraction=float(args["rigl_end"]),
               reference_counts=bool(args["reference_counts"]))
    return training.result(out["params"], out["masks"], data, spec, out["train_loss"])
