"""The ``Pruner``: a named pure function over param and mask pytrees, and how it prunes.

Kinds and signatures: ``signatures``. The library draws an at-init pruner's batch
(``batch=``), selects EXACTLY the budget among the starting masks (``selection.topk_mask``: NaN
as -inf, ties to the lower flat index), applies the bias rule and trains the fixed masks with
the recipe (``train_fns``). ``iterations=`` makes a score pruner iterative like Iter SNIP /
SynFlow: round t = 0..T-1 keeps N (f/N)^((t+1)/T) (exactly f at the end), scoring at the
current masks, among the weights kept so far (``revive=False``) or among all starting weights
(``revive=True``, FORCE).

Randomness: an at-init pruner gets the run's prune key; a one-shot score function gets the key
its batch was drawn from, round t of an iterative one ``fold_in(key, t)`` (batch drawn from
it too), hook event i ``fold_in(key, i)``. Same key, same masks.
"""

import dataclasses
import functools
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from spiralprune import masking, models, training
from spiralprune.pruning import at_init, costs, selection, signatures, train_fns


@dataclasses.dataclass(frozen=True, eq=False)
class Pruner:
    """A named pruner (see ``signatures`` for the kinds).

    Attributes:
      name: the method name records carry (an import path for pruners given by path).
      kind: one of ``signatures.KINDS``.
      fn: the user's function.
      args: method args and their defaults (``Spec.method_args`` overrides them); ``xavier``
        (re-draw the kernels Xavier-normal before pruning, random-init runs only) and
        ``reference_counts`` (call ``reference`` instead) are understood by the library.
      batch: at-init batch: "random", "balanced", None or a function ``(key, data) -> batch``.
      iterations: None (one shot) or the number of rounds (an int, or the name of an int
        method arg) of an iterative score pruner.
      revive: iterative rounds select among all starting weights instead of the kept ones.
      rounding: "floor" (k_t = int(n_t)) or "ceil" (N - int(N - n_t)) of the round counts.
      every: hook period in steps (an int or the name of an int method arg).
      reference: built-ins only: ``(key, params, data, budget, *, lr, spec, args) -> masks``,
        the study's own counts (``reference_counts``).
      starts_from_masks: the pruner keeps no weight outside the starting masks (every kind
        but "train" is made to; a "train" pruner says so here).
      builtin: one of the study's methods (its records must not change).
      cost: its pruning cost for ``analysis.flops`` (``costs.Cost``); default ``costs.NONE``,
        nothing beyond training the returned sparse model.
      epochs: ``(spec, args) -> float``, the epochs of training at the run's width one run
        costs in time (LTH's rounds, a pruner's restarts), for the plan's estimate and its
        chunk sizes; default None: ``spec.epochs``.
    """

    name: str
    kind: str
    fn: Callable
    args: Mapping = dataclasses.field(default_factory=dict)
    batch: object = "random"
    iterations: int | str | None = None
    revive: bool = False
    rounding: str = "floor"
    every: int | str | None = None
    reference: Callable | None = None
    starts_from_masks: bool = True
    builtin: bool = False
    cost: costs.Cost = costs.NONE
    epochs: Callable | None = None

    def __post_init__(self):
        object.__setattr__(self, "args", dict(self.args))
        if self.kind not in signatures.KINDS:
            raise ValueError(f"pruner {self.name!r}: unknown kind {self.kind!r}; choose from "
                             f"{signatures.KINDS}")
        signatures.check_signature(self.name, self.kind, self.fn)
        if self.rounding not in ("floor", "ceil"):
            raise ValueError(f"pruner {self.name!r}: rounding must be 'floor' or 'ceil'")
        if self.kind == "hook" and self.every is None:
            raise ValueError(f"pruner {self.name!r}: a hook needs every= (steps between calls)")
        if callable(self.batch):
            signatures.check_extras(self.name, self.batch, 2, "batch function")
        elif self.batch not in ("random", "balanced", None):
            raise ValueError(f"pruner {self.name!r}: batch must be 'random', 'balanced', None "
                             f"or a function (key, data) -> batch, got {self.batch!r}")
        if not isinstance(self.cost, costs.Cost):
            raise ValueError(f"pruner {self.name!r}: cost must be a costs.Cost, got "
                             f"{self.cost!r}")
        if self.epochs is not None and not callable(self.epochs):
            raise ValueError(f"pruner {self.name!r}: epochs must be a function (spec, args) -> "
                             f"epochs, got {self.epochs!r}")
        for field in ("iterations", "every"):
            value = getattr(self, field)
            if isinstance(value, str) and value not in self.args:
                raise ValueError(f"pruner {self.name!r}: {field}={value!r} names no method arg "
                                 f"(args: {sorted(self.args)})")

    @property
    def at_init(self) -> bool:
        """Prunes once before training (kinds "scores" and "masks")."""
        return self.kind in signatures.AT_INIT_KINDS

    def resolve_args(self, spec: training.Spec | None) -> dict:
        """The defaults overridden by ``spec.method_args``; one-line ValueError for unknown."""
        return signatures.resolve_args(self.name, {} if spec is None else spec.args, self.args)

    def prune(self, key, params, masks, data, budget, *, spec: training.Spec | None = None,
              lr=0.1, args: Mapping | None = None):
        """Masks of an at-init pruner for one model (bias rule applied); vmappable.

        Args:
          key: typed PRNG key (the run's prune key).
          params: one model's params (the init it prunes).
          masks: starting masks (all True for a dense start); no weight outside them is kept.
          data: (x (n, 2), y (n,)), the training set the batches come from.
          budget: int scalar, may be traced.
          spec: static description (batch size, method args); default ``Spec(widths)``.
          lr: the run's base learning rate (for pruners that declare ``lr``).
          args: method args (default: ``resolve_args(spec)``).

        Returns:
          masks mirroring params.
        """
        return self.prune_and_count_nans(key, params, masks, data, budget, spec=spec, lr=lr,
                                         args=args)[0]

    def prune_and_count_nans(self, key, params, masks, data, budget, *, spec=None, lr=0.1,
                             args=None):
        """``prune``'s masks and the most NaN scores of any round (int32; 0 without scores)."""
        if not self.at_init:
            raise ValueError(f"pruner {self.name!r} of kind {self.kind!r} does not prune at "
                             "initialisation")
        spec = spec or training.Spec(widths=models.widths_of(params), method=self.name)
        args = self.resolve_args(spec) if args is None else {**self.args, **dict(args)}
        extras = {"lr": lr, "spec": spec, "args": args}
        if args.get("reference_counts") and self.reference is not None:
            return self.reference(key, params, data, budget, **extras), jnp.int32(0)
        start = masking.flatten_kernels(masks)
        if self.kind == "masks":
            out = signatures.call(self.fn, (key, params, masks, data, budget), extras)
            signatures.check_tree(self.name, "prune function", out, params, bool)
            keep = masking.flatten_kernels(out).astype(bool)
            return selection.to_masks(keep, params), jnp.int32(0)
        steps = self._iterations(args)
        if steps is None:
            batch = self._batch(key, data, extras, spec)
            s = self._scores(key, params, masks, batch, extras)
            keep = selection.topk_mask(s, budget, start)
            return selection.to_masks(keep, params), signatures.nan_count(s)
        n = start.shape[0]
        counts = at_init._exact_schedule(n, budget, steps, ceil_like=self.rounding == "ceil")

        def round_(keep, xs):
            t, k_t = xs
            kt = jax.random.fold_in(key, t)
            s = self._scores(kt, params, selection.to_masks(keep, params),
                             self._batch(kt, data, extras, spec), extras)
            new = selection.topk_mask(s, k_t, start if self.revive else keep)
            return new, signatures.nan_count(s)

        keep, nans = jax.lax.scan(round_, start, (jnp.arange(steps), counts))
        return selection.to_masks(keep, params), jnp.max(nans)

    def _iterations(self, args) -> int | None:
        it = self.iterations
        it = args[it] if isinstance(it, str) else it
        if it is None:
            return None
        if int(it) < 1:
            raise ValueError(f"pruner {self.name!r}: iterations must be >= 1, got {it}")
        return int(it)

    def _batch(self, key, data, extras, spec):
        if self.batch is None:
            return None
        if self.batch == "random":
            return at_init.draw_batch(key, data, spec.batch_size)
        if self.batch == "balanced":
            return at_init.balanced_batch(key, data)
        return signatures.call(self.batch, (key, data), extras)

    def _scores(self, key, params, masks, batch, extras):
        s = signatures.call(self.fn, (key, params, masks, batch), extras)
        return signatures.flat_scores(self.name, s, params)

    @functools.cached_property
    def train_fn(self) -> Callable:
        """The single-run train function ``(variant, data, *, spec) -> dict`` (made once)."""
        if self.kind == "train":
            return self.fn if self.builtin else train_fns.checked_train(self)
        return train_fns.at_init_train(self) if self.at_init else train_fns.hook_train(self)
