"""Pruning at initialisation for ONE model: SNIP, GraSP, SynFlow, Iter SNIP, FORCE, random.

Each pruner returns a masks tree (bias rule applied) keeping EXACTLY ``k`` kernel entries,
where ``k`` is an int scalar that may be traced (budgets differ per member under ``vmap``)
and ties break to the lower flat index (``selection.topk_mask``). A zero-score weight may be
kept to fill the budget: that is a disconnected weight, the pathology the study measures.

``reference_counts=True`` instead reproduces the study's code (docs/pruners.md, "Reference
counts"): its float count formulas (evaluated on the host, ``selection.host_counts``) and its
threshold idioms, so counts land at f - 2 ... f + 1 (lower still with tied zero scores).

Data: ``data = (x, y)`` is the whole training set, float32 (n, 2) and (n,); each pruner draws
its batches from its own ``key`` (a typed PRNG key) through a keyed permutation of [0, n).
"""

import jax
import jax.numpy as jnp

from spiralprune import base, datasets, masking, models
from spiralprune.pruning import scores, selection

Data = tuple[jax.Array, jax.Array]


def _num_weights(params: base.Params) -> int:
    return models.num_weights(models.widths_of(params))


def draw_batch(key: base.PRNGKey, data: Data, size: int) -> tuple[jax.Array, jax.Array]:
    """``size`` distinct random samples (the first batch of a freshly shuffled loader).

    Returns:
      x (size, 2), y (size,).
    """
    x, y = data
    idx = datasets.permute(key, jnp.arange(size), x.shape[0])
    return jnp.take(jnp.asarray(x), idx, axis=0), jnp.take(jnp.asarray(y), idx, axis=0)


def balanced_batch(key: base.PRNGKey, data: Data, samples_per_class: int = 25,
                   window: int = 1024) -> tuple[jax.Array, jax.Array]:
    """GraSP's data: walking a shuffled loader, the first ``samples_per_class`` samples of each
    class, class 0 first then class 1 (``GraSP_fetch_data``).

    Only the first ``window`` positions of the keyed permutation are looked at (memory stays
    O(window) per member under vmap); that is the same draw as walking all of it whenever the
    window holds enough of both classes (on the balanced spiral, failing needs a > 30-sigma
    event at the default 1024). If it does not, the missing slots repeat permuted position 0.

    Returns:
      x (2 * samples_per_class, 2), y (2 * samples_per_class,).
    """
    x, y = data
    n = x.shape[0]
    pos = datasets.permute(key, jnp.arange(min(n, window)), n)
    labels = jnp.take(jnp.asarray(y), pos)
    first = [jnp.nonzero(labels == c, size=samples_per_class, fill_value=0)[0] for c in (0, 1)]
    idx = jnp.take(pos, jnp.concatenate(first))
    return jnp.take(jnp.asarray(x), idx, axis=0), jnp.take(jnp.asarray(y), idx, axis=0)


def _exact_schedule(n: int, k, steps: int, ceil_like: bool) -> jax.Array:
    """Counts n_t ~ N (k/N)^(t/steps), t = 1..steps, ending EXACTLY at k and never below it.

    ``ceil_like`` keeps N - int(N - n_t) (SynFlow's prune-count form); else int(n_t) (FORCE).
    """
    k = jnp.clip(jnp.asarray(k, jnp.int32), 0, n)
    t = jnp.arange(1, steps + 1, dtype=jnp.float32)
    target = n * jnp.exp(t / steps * jnp.log(k.astype(jnp.float32) / n))
    counts = n - jnp.floor(n - target) if ceil_like else jnp.floor(target)
    counts = jnp.maximum(counts.astype(jnp.int32), k)
    return counts.at[-1].set(k)  # float error must not move the final budget


def snip(key: base.PRNGKey, params: base.Params, data: Data, k, *, batch_size: int = 128,
         reference_counts: bool = False) -> base.Masks:
    """SNIP: keep the top-k |g ⊙ W| on one random batch at the given params.

    The study re-draws the kernels Xavier-normal before SNIP in its random-init runs and
    trains that model; that is the caller's init choice (``models.init(kind="xavier")``).

    Args:
      key: typed PRNG key (draws the batch).
      params: one model's params.
      data: (x (n, 2), y (n,)).
      k: int scalar budget, may be traced.
      batch_size: static batch size (128).
      reference_counts: the original's k = int(N * (f / N)) and ``s >= topk(s, k)[-1]``
        on the sum-normalised scores (f or more with ties).

    Returns:
      masks, bias rule applied.

    References: Lee et al. 2019, SNIP; stephenqz/sparsest pruning_methods/SNIP.py; mil-ad/snip.
    """
    s = scores.snip(None, params, None, draw_batch(key, data, batch_size))
    if reference_counts:
        k_ref = selection.host_counts(selection.snip_count, _num_weights(params), k)[0]
        keep = selection.reference_keep_topk_ge(s / jnp.sum(s), k_ref)
    else:
        keep = selection.topk_mask(s, k)  # exact k instead of the original's `>=` threshold
    return selection.to_masks(keep, params)


def grasp(key: base.PRNGKey, params: base.Params, data: Data, k, *, samples_per_class: int = 25,
          temperature: float = 200.0, window: int = 1024,
          reference_counts: bool = False) -> base.Masks:
    """GraSP: keep the k largest W ⊙ Hg (remove the largest S = -W ⊙ Hg).

    Args:
      key: typed PRNG key (draws the balanced 25 + 25 samples, see ``balanced_batch``).
      params: one model's params (the study re-draws kernels Xavier-normal first, see snip).
      data: (x (n, 2), y (n,)).
      k: int scalar budget, may be traced.
      samples_per_class: 25; temperature: T = 200; window: see ``balanced_batch``.
      reference_counts: the original's n_rm = int(N * (1 - (1 - (1 - f / N)))) and keep
        ``S < topk(S, n_rm)[-1]`` on S normalised by |ΣS| + 1e-10 (N - n_rm kept).

    Returns:
      masks, bias rule applied.

    References: Wang et al. 2020, GraSP; stephenqz/sparsest pruning_methods/GraSP.py;
    alecwangcq/GraSP pruner/GraSP.py.
    """
    batch = balanced_batch(key, data, samples_per_class, window)
    keep_scores = scores.grasp(None, params, None, batch, temperature)
    if reference_counts:
        n_rm = selection.host_counts(selection.grasp_removed, _num_weights(params), k)[0]
        removal = -keep_scores
        removal = removal / (jnp.abs(jnp.sum(removal)) + 1e-10)
        keep = selection.reference_remove_topk_lt(removal, n_rm)
    else:
        keep = selection.topk_mask(keep_scores, k)  # exact k instead of `<` below top n_rm
    return selection.to_masks(keep, params)


def synflow(params: base.Params, k, iterations: int = 100, *,
            reference_counts: bool = False) -> base.Masks:
    """SynFlow: ``iterations`` rounds of scoring the linearised net and pruning, data-free.

    Round j = 1..iterations keeps n_j = N - int(N - N (f/N)^(j/iterations)) (exact mode: at
    least k, and exactly k at the end) among the weights kept so far (nested masks), so
    zero-flow weights are only kept to fill the budget (lower index first).

    Args:
      params: one model's params (the default init; no re-draw).
      k: int scalar budget, may be traced.
      iterations: static number of rounds (100).
      reference_counts: the original's p_j = int(N - f^r / N^(r - 1)) with
        ``s > sort(s)[p_j]`` (N - p_j - 1 kept, fewer with zero ties; all kept if p_j < 1).

    Returns:
      masks, bias rule applied.

    References: Tanaka et al. 2020, SynFlow; stephenqz/sparsest pruning_methods/SynFlow.py;
    ganguli-lab/Synaptic-Flow Pruners/pruners.py, prune.py.
    """
    n = _num_weights(params)
    if reference_counts:
        counts = selection.host_counts(selection.synflow_pruned, n, k, iterations)
    else:
        counts = _exact_schedule(n, k, iterations, ceil_like=True)

    def body(j, keep):
        s = scores.synflow(None, params, selection.to_masks(keep, params))
        if reference_counts:
            p_j = counts[j]
            return jnp.where(p_j >= 1, selection.reference_keep_sorted_gt(s, p_j), keep)
        return selection.topk_mask(s, counts[j], eligible=keep)

    keep = jax.lax.fori_loop(0, iterations, body, jnp.ones(n, bool))
    return selection.to_masks(keep, params)


def progressive(key: base.PRNGKey, params: base.Params, data: Data, k, *, variant: str,
                steps: int = 10, batch_size: int = 128,
                reference_counts: bool = False) -> tuple[base.Masks, jax.Array]:
    """Progressive skeletonisation (Iter SNIP or FORCE), returning every step's mask.

    Step t = 1..steps draws a fresh batch, takes the gradient at W ⊙ M_{t-1} and keeps the
    top k_t = int(N (f/N)^(t/steps)) (exact mode: >= k, exactly k at the end) of
      iter_snip: |(W ⊙ M_{t-1}) ⊙ g|, among M_{t-1} only (nested masks);
      force: |W ⊙ g| (dense W), among all N (pruned weights can be revived).

    Args:
      key: typed PRNG key (``fold_in`` of the step index gives each step's batch key).
      params: one model's params.
      data: (x (n, 2), y (n,)).
      k: int scalar budget, may be traced.
      variant: "iter_snip" or "force" (static).
      steps: static number of steps (10); batch_size: 128.
      reference_counts: the original's schedule, ``s > topk(s, k_t)[-1]`` (k_t - 1
        kept) and, for Iter SNIP, pruned saliencies overwritten by the global minimum.

    Returns:
      (final masks with the bias rule, (steps, N) bool history of the flat kernel masks).

    References: de Jorge et al. 2021, FORCE; stephenqz/sparsest pruning_methods/FORCE.py
    (iterative_pruning); naver/force pruning/pruning_algos.py.
    """
    if variant not in ("iter_snip", "force"):
        raise ValueError(f"variant must be 'iter_snip' or 'force', got {variant!r}")
    n = _num_weights(params)
    if reference_counts:
        counts = selection.host_counts(selection.force_counts, n, k, steps)
    else:
        counts = _exact_schedule(n, k, steps, ceil_like=False)
    score_fn = scores.iter_snip if variant == "iter_snip" else scores.force

    def step(keep, xs):
        t, k_t = xs
        batch = draw_batch(jax.random.fold_in(key, t), data, batch_size)  # fresh batch per step
        s = score_fn(None, params, selection.to_masks(keep, params), batch)
        if reference_counts:
            if variant == "iter_snip":
                s = jnp.where(keep, s, jnp.min(s))
            new = selection.reference_keep_topk_gt(s, k_t)
        else:
            new = selection.topk_mask(s, k_t, keep if variant == "iter_snip" else None)
        return new, new

    keep, history = jax.lax.scan(step, jnp.ones(n, bool), (jnp.arange(steps), counts))
    return selection.to_masks(keep, params), history


def iterative_snip(key: base.PRNGKey, params: base.Params, data: Data, k, steps: int = 10, *,
                   batch_size: int = 128, reference_counts: bool = False) -> base.Masks:
    """Iter SNIP: ``progressive(variant="iter_snip")``'s final masks (nested over steps).

    References: de Jorge et al. 2021 (FORCE paper, Iter SNIP baseline); stephenqz/sparsest
    pruning_methods/FORCE.py (prune_method=1); naver/force pruning/pruning_algos.py.
    """
    return progressive(key, params, data, k, variant="iter_snip", steps=steps,
                       batch_size=batch_size, reference_counts=reference_counts)[0]


def force(key: base.PRNGKey, params: base.Params, data: Data, k, steps: int = 10, *,
          batch_size: int = 128, reference_counts: bool = False) -> base.Masks:
    """FORCE: ``progressive(variant="force")``'s final masks (pruned weights revivable).

    References: de Jorge et al. 2021, FORCE; stephenqz/sparsest pruning_methods/FORCE.py
    (prune_method=3); naver/force pruning/pruning_algos.py.
    """
    return progressive(key, params, data, k, variant="force", steps=steps,
                       batch_size=batch_size, reference_counts=reference_counts)[0]


def random(key: base.PRNGKey, params: base.Params, k) -> base.Masks:
    """Global random pruning: a uniformly random k-subset of the N kernel entries.

    References: docs/pruners.md (not benchmarked in the study); ganguli-lab/
    Synaptic-Flow ``Rand``; naver/force method 4.
    """
    return selection.to_masks(selection.topk_mask(scores.random(key, params), k), params)


def random_layerwise(key: base.PRNGKey, params: base.Params, counts: jax.Array) -> base.Masks:
    """Layerwise random pruning: a uniformly random subset of ``counts[l]`` entries per layer.

    Args:
      key: typed PRNG key.
      params: one model's params.
      counts: int (4,) per-layer counts, may be traced (e.g. ``selection.erk_counts``).

    Returns:
      masks, bias rule applied.

    References: docs/pruners.md; rigl-torch ``random_sparsify`` (RigL's initial mask).
    """
    kernels = [params[name]["kernel"] for name in models.LAYERS]
    keys = jax.random.split(key, len(kernels))
    keep = [selection.topk_mask(jax.random.uniform(kk, (w.size,)), counts[i]).reshape(w.shape)
            for i, (kk, w) in enumerate(zip(keys, kernels))]
    return masking.from_kernels(keep)
