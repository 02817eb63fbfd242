"""The single-run train functions the library builds around a pruner (``Pruner.train_fn``).

An at-init pruner (kinds "scores", "masks") prunes the run's init with its prune key and the
masks are trained fixed; a hook is called every ``every`` steps during training, the library
masking params and momentum after it; a "train" pruner's own function is checked for the
record's keys. Each is ``(variant, data, *, spec) -> dict`` (``training.result``'s record) for
``populations.run``, which vmaps and jits it.
"""

import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from spiralprune import masking, training
from spiralprune.pruning import selection, signatures


def init_and_prune(pruner, variant: training.Variant, data, *,
                   spec: training.Spec) -> tuple:
    """The first half of an at-init pruner's run: its init and its fixed masks; vmappable.

    ``compaction`` computes these at full width, then trains the masks compacted.

    Returns:
      (params masked by masks, masks) of one run.
    """
    params, masks, _ = _init_and_prune(pruner, variant, data, spec=spec)
    return params, masks


def score_nans(pruner, variant: training.Variant, data, *, spec: training.Spec):
    """The most NaN scores of any pruning round of one run (its own init and prune key, as
    it trains); int32, vmappable. A pruner may score NaN only for some keys."""
    return _init_and_prune(pruner, variant, data, spec=spec)[2]


def _init_and_prune(pruner, variant, data, *, spec):
    args = pruner.resolve_args(spec)
    keys = training.run_keys(variant.seed)
    # The study re-draws SNIP's and GraSP's kernels Xavier-normal in its random-init runs
    # and trains that model (biases keep the torch draw: models.init uses the same key).
    xavier = args.get("xavier", False) and spec.init != "given"
    params = training.initial_params(variant, spec, keys["init"],
                                     kind="xavier" if xavier else None)
    masks, nans = pruner.prune_and_count_nans(keys["prune"], params, variant.masks, data,
                                              variant.budget, spec=spec, lr=variant.lr,
                                              args=args)
    return masking.apply(params, masks), masks, nans


def at_init_train(pruner) -> Callable:
    """Prune at init, then train the fixed masks with the recipe."""
    def train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
        keys = training.run_keys(variant.seed)
        params, masks = init_and_prune(pruner, variant, data, spec=spec)
        opt_state = training.optimizer(spec).init(params)
        params, _, loss = training.train_epochs(params, opt_state, masks, data, keys["data"],
                                                variant.lr, variant.schedule, spec)
        return training.result(params, masks, data, spec, loss)

    return _named(train, pruner, "prune at init, train the fixed masks")


def hook_train(pruner) -> Callable:
    """Train with the recipe, calling the hook every ``every`` steps (segments of a scan)."""
    def train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
        args = pruner.resolve_args(spec)
        every = int(args[pruner.every] if isinstance(pruner.every, str) else pruner.every)
        if every < 1:
            raise ValueError(f"pruner {pruner.name!r}: every must be >= 1, got {every}")
        keys = training.run_keys(variant.seed)
        total = spec.epochs * training.steps_per_epoch(data, spec)
        masks = variant.masks
        params = masking.apply(training.initial_params(variant, spec, keys["init"]), masks)
        opt_state = training.optimizer(spec).init(params)
        extras = {"lr": variant.lr, "spec": spec, "args": args, "total_steps": total}

        def segment(carry, i, num_steps):
            params, opt_state, masks = carry
            step = i * every
            new = signatures.call(pruner.fn, (jax.random.fold_in(keys["prune"], i), params,
                                              masks, opt_state, step, variant.budget), extras)
            signatures.check_tree(pruner.name, "hook", new, params, bool)
            new = selection.to_masks(masking.flatten_kernels(new), params)
            params = masking.apply(params, new)
            opt_state = training.mask_momentum(opt_state, new)
            params, opt_state, losses = training.train_steps(
                params, opt_state, new, data, keys["data"], variant.lr, variant.schedule, spec,
                start=step, num_steps=num_steps)
            return (params, opt_state, new), losses

        full, tail = divmod(total, every)
        carry = (params, opt_state, masks)
        losses = []
        if full:
            carry, ls = jax.lax.scan(functools.partial(segment, num_steps=every), carry,
                                     jnp.arange(full))
            losses.append(ls.reshape(-1))
        if tail:
            carry, ls = segment(carry, jnp.int32(full), tail)
            losses.append(ls)
        params, _, masks = carry
        spe = training.steps_per_epoch(data, spec)
        return training.result(params, masks, data, spec, jnp.mean(jnp.concatenate(losses)[-spe:]))

    return _named(train, pruner, f"hook every {pruner.every} steps during training")


def checked_train(pruner) -> Callable:
    """The pruner's own train function, its record checked for ``training.RECORD_KEYS``."""
    def train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
        out = pruner.fn(variant, data, spec=spec)
        missing = [k for k in training.RECORD_KEYS if not isinstance(out, Mapping) or k not in out]
        if missing:
            raise ValueError(f"pruner {pruner.name!r}: train function returned no {missing} "
                             "(return training.result(params, masks, data, spec, loss))")
        return out

    return _named(train, pruner, "the pruner's own single-run train function")


def _named(train, pruner, what):
    train.__name__ = train.__qualname__ = f"{pruner.name}_train"
    train.__doc__ = f"``populations`` train_fn of {pruner.name}: {what}."
    return train
