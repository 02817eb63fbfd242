"""The lottery ticket hypothesis for ONE model: iterative magnitude pruning with rewinding.

``rounds`` rounds (5 in the study) of ``spec.epochs`` epochs each. After rounds 1 .. R - 1 the
trained weights are pruned globally by magnitude among the current mask to
n_r = N (f / N)^(r / (R - 1)) (269, 129, 62, 30 for N = 560, f = 30), all parameters are
rewound to the run's initial parameters under the new mask (bias rule), the optimizer state is
fresh and the lr schedule restarts; data order continues with the global epoch, so every
epoch of a run sees a fresh permutation (each round runs the one step loop,
``training.train_steps``, with ``first_epoch``).

The rounds are a ``lax.scan`` (one traced copy of the training scan, not R): the prune at the
start of round 0 is computed and discarded (a select), which costs one sort of N entries.
"""

import jax
import jax.numpy as jnp

from spiralprune import base, masking, models, training
from spiralprune.pruning import during_training, selection

LTH_ARGS = {"lth_rounds": 5, "reference_counts": False}


def lth_counts(num_weights: int, budget: int, rounds: int = 5) -> list[int]:
    """The study's kept counts per round on the host: N, then int(N (f/N)^(r/(R-1))).

    The study's float64 order (the last one can be f - 1: ``N * (f / N) ** 1.0``), with the
    power correctly rounded (``selection.cr_pow``) rather than the platform's libm pow: at
    (N, f) = (90, 40) round 2 is exactly 60 in real arithmetic, and a pow one ulp low would
    give 59 on some machines.
    """
    n, f = int(num_weights), int(budget)
    return [n] + [int(n * selection.cr_pow(f / float(n), r / (rounds - 1.0)))
                  for r in range(1, rounds)]


def lth_targets(num_weights: int, budget, rounds: int = 5, *,
                reference_counts: bool = False) -> jax.Array:
    """Weights kept in each round, (rounds,) int32, for a traced budget (round 0: N).

    Evaluated on the host (``selection.host_counts``: the study's float64 formula, with a
    correctly rounded pow).
    Exact mode clamps to >= f and sets the last round to exactly f.

    Args:
      num_weights: N; budget: f (int, may be traced); rounds: R >= 2 (static).

    Returns:
      int32 (rounds,).
    """
    if rounds < 2:
        raise ValueError(f"lth_rounds must be >= 2 (one prune), got {rounds}")
    n_r = selection.host_counts(lth_counts, num_weights, budget, rounds)
    if reference_counts:
        return n_r
    f = jnp.asarray(budget, jnp.int32)
    return jnp.clip(n_r, f, num_weights).at[-1].set(f)


def lth_prune(trained: base.Params, masks: base.Masks, target, *,
              reference_counts: bool = False) -> base.Masks:
    """Global magnitude pruning of the trained weights to ``target`` among the current mask.

    Exact: the ``target`` largest |W| (ties to the lower flat index), nested masks. Reference:
    open_lth's ``|w| > sort(|W|)[N - n_r]`` (n_r - 1 kept), as ``Magnitude.py``.

    Returns:
      masks, bias rule applied.

    References: Frankle & Carbin 2019; stephenqz/sparsest pruning_methods/Magnitude.py;
    facebookresearch/open_lth pruning/sparse_global.py.
    """
    return during_training.gmp_prune(trained, masks, target, reference_counts=reference_counts)


def lth(params0: base.Params, masks0: base.Masks, data, data_key, lr, schedule, budget,
        spec: training.Spec, *, rounds: int = 5, reference_counts: bool = False,
        history: bool = False) -> dict:
    """Runs the LTH rounds for one model.

    Args:
      params0: the run's initial params (the rewind point, iteration 0 as in the study).
      masks0: starting masks (all True: dense start; nothing outside it is ever kept).
      data: (x (n, 2), y (n,)); data_key: the run's data key.
      lr, schedule, budget: base lr, schedule index, weight budget f (traced).
      spec: static description; each round trains spec.epochs epochs.
      rounds: R (5); reference_counts: the study's counts (f - 1 final).
      history: also return every round's starting params and masks (leading axis R).

    Returns:
      dict: params (trained in the last round), masks, train_loss (mean of the last epoch),
      targets (R,) and, with ``history``, "round_params" and "round_masks".

    References: Frankle & Carbin 2019, "The Lottery Ticket Hypothesis"; stephenqz/sparsest
    training_loops/LTH_loop.py, pruning_methods/Magnitude.py; facebookresearch/open_lth
    lottery/runner.py, pruning/sparse_global.py.
    """
    spe = training.steps_per_epoch(data, spec)
    round_steps = spec.epochs * spe
    targets = lth_targets(models.num_weights(spec.widths), budget, rounds,
                          reference_counts=reference_counts)
    tx = training.optimizer(spec)

    def round_body(carry, xs):
        trained, masks = carry
        r, target = xs
        pruned = lth_prune(trained, masks, target, reference_counts=reference_counts)
        masks = jax.tree.map(lambda p, m: jnp.where(r > 0, p, m), pruned, masks)
        start = masking.apply(params0, masks)  # rewind weights AND biases to iteration 0
        params, _, losses = training.train_steps(
            start, tx.init(start), masks, data, data_key, lr, schedule, spec,
            start=r * round_steps, num_steps=round_steps, first_epoch=r * spec.epochs)
        out = (jnp.mean(losses[-spe:]), (start, masks) if history else None)
        return (params, masks), out

    init = (masking.apply(params0, masks0), masks0)
    (params, masks), (losses, hist) = jax.lax.scan(
        round_body, init, (jnp.arange(rounds, dtype=jnp.int32), targets))
    out = {"params": params, "masks": masks, "train_loss": losses[-1], "targets": targets}
    if history:
        out["round_params"], out["round_masks"] = hist
    return out


def resolve_args(spec: training.Spec) -> dict:
    """LTH's method args of ``spec`` over ``LTH_ARGS`` (one-line error for unknown names)."""
    return during_training.resolve_args(spec, LTH_ARGS)


def lth_train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
    """``populations`` train_fn of LTH: init from the run's key, ``lth_rounds`` rounds.

    Method args: ("lth_rounds", 5), ("reference_counts", False).

    Returns:
      ``training.result(...)``.

    References: Frankle & Carbin 2019; stephenqz/sparsest training_loops/LTH_loop.py;
    facebookresearch/open_lth lottery/runner.py.
    """
    args = resolve_args(spec)
    keys = training.run_keys(variant.seed)
    params0 = training.initial_params(variant, spec, keys["init"])
    out = lth(params0, variant.masks, data, keys["data"], variant.lr, variant.schedule,
              variant.budget, spec, rounds=int(args["lth_rounds"]),
              reference_counts=bool(args["reference_counts"]))
    return training.result(out["params"], out["masks"], data, spec, out["train_loss"])
