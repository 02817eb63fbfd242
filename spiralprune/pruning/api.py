"""The public pruner API: a pruner is a pure function over param and mask pytrees, by name.

Four kinds of pruner, all for ONE model (``populations.run`` vmaps and jits them):

- ``"scores"``: ``score(key, params, masks, batch) -> scores``, a tree like ``params`` (only the
  kernels are read; biases are never ranked) or a flat (N,) vector in
  ``masking.flatten_kernels`` order, LARGER = more worth keeping. The library draws the batch
  (``batch=``), selects EXACTLY the budget among the starting masks (``selection.topk_mask``:
  NaN as -inf, ties to the lower flat index), applies the bias rule and trains the fixed
  masks with the recipe. ``iterations=`` makes it iterative like Iter SNIP / SynFlow: round
  t = 0..T-1 keeps N (f/N)^((t+1)/T) (exactly f at the end), scoring at the current masks,
  among the weights kept so far (``revive=False``) or among all starting weights (``revive=True``,
  FORCE).
- ``"masks"``: ``prune(key, params, masks, data, budget) -> masks`` chooses the masks itself
  (exactly ``budget`` kernel entries inside ``masks``); the library applies the bias rule and
  trains.
- ``"hook"``: ``hook(key, params, masks, opt_state, step, budget) -> masks`` during training,
  called at steps 0, every, 2 every, ... (``every=``) with the optimiser state; the library
  masks params and momentum after it and trains on (new weights start at 0). The last call must
  leave exactly ``budget`` weights.
- ``"train"``: ``train(variant, data, *, spec) -> dict`` is the whole single run
  (``training.result``'s record), for full control (GMP, RigL and LTH are these).

Any of these functions may also declare keyword-only parameters the library fills by name:
``lr`` (the run's base learning rate, traced), ``spec`` (``training.Spec``), ``args`` (the
method args, defaults from ``args=`` overridden by ``Spec.method_args``) and, for hooks,
``total_steps``. The batch (``batch=``) is ``"random"`` (``spec.batch_size`` distinct points,
``at_init.draw_batch``), ``"balanced"`` (25 per class, GraSP's), ``None`` (data-free) or a
function ``(key, data) -> batch`` (same keyword extras).

Randomness: an at-init pruner gets the run's prune key; a one-shot score function gets the key
its batch was drawn from, round t of an iterative one ``fold_in(key, t)`` (batch drawn from
it too), hook event i ``fold_in(key, i)``. Same key, same masks.

Registration: ``register("name", fn, ...)``, ``@register("name", ...)`` or ``@register``; by
import path from any binary, ``"my_pkg.my_module:my_pruner"`` (importable from ``sys.path`` or
the working directory) or ``"path/to/file.py:my_pruner"`` (a registered or bare function, or a
``Pruner``) resolves on first use. ``check`` runs a pruner once, before any training, and
turns what is wrong (import, signature, returned tree, NaN scores, budget) into a one-line
ValueError naming it.
"""

import dataclasses
import functools
import importlib
import importlib.util
import inspect
import os
import pathlib
import sys
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import datasets, masking, models, training
from spiralprune.pruning import at_init, during_training, selection

KINDS = ("scores", "masks", "hook", "train")
AT_INIT_KINDS = ("scores", "masks")
EXTRAS = ("lr", "spec", "args", "total_steps")
_POSITIONAL = {"scores": ("key", "params", "masks", "batch"),
               "masks": ("key", "params", "masks", "data", "budget"),
               "hook": ("key", "params", "masks", "opt_state", "step", "budget"),
               "train": ("variant", "data")}
RECORD_KEYS = ("params", "masks", "accuracy", "loss", "train_loss", "diverged", "nnz_weights",
               "nnz")


@dataclasses.dataclass(frozen=True, eq=False)
class Pruner:
    """A named pruner (see the module docstring for the kinds).

    Attributes:
      name: the method name records carry (an import path for pruners given by path).
      kind: one of KINDS.
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

    def __post_init__(self):
        object.__setattr__(self, "args", dict(self.args))
        if self.kind not in KINDS:
            raise ValueError(f"pruner {self.name!r}: unknown kind {self.kind!r}; choose from "
                             f"{KINDS}")
        _check_signature(self.name, self.kind, self.fn)
        if self.rounding not in ("floor", "ceil"):
            raise ValueError(f"pruner {self.name!r}: rounding must be 'floor' or 'ceil'")
        if self.kind == "hook" and self.every is None:
            raise ValueError(f"pruner {self.name!r}: a hook needs every= (steps between calls)")
        if callable(self.batch):
            _check_extras(self.name, self.batch, 2, "batch function")
        elif self.batch not in ("random", "balanced", None):
            raise ValueError(f"pruner {self.name!r}: batch must be 'random', 'balanced', None "
                             f"or a function (key, data) -> batch, got {self.batch!r}")
        for field in ("iterations", "every"):
            value = getattr(self, field)
            if isinstance(value, str) and value not in self.args:
                raise ValueError(f"pruner {self.name!r}: {field}={value!r} names no method arg "
                                 f"(args: {sorted(self.args)})")

    @property
    def at_init(self) -> bool:
        """Prunes once before training (kinds "scores" and "masks")."""
        return self.kind in AT_INIT_KINDS

    def resolve_args(self, spec: training.Spec | None) -> dict:
        """The defaults overridden by ``spec.method_args``; one-line ValueError for unknown."""
        given = {} if spec is None else spec.args
        unknown = sorted(set(given) - set(self.args))
        if unknown:
            raise ValueError(f"unknown method_args {unknown} for method {self.name!r}; "
                             f"valid: {sorted(self.args)}")
        return {**self.args, **given}

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
        return self._prune(key, params, masks, data, budget, spec=spec, lr=lr, args=args)[0]

    def _prune(self, key, params, masks, data, budget, *, spec=None, lr=0.1, args=None):
        # (masks, the most NaN scores of any round: an int32 scalar, 0 without scores)
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
            out = _call(self.fn, (key, params, masks, data, budget), extras)
            _check_tree(self.name, "prune function", out, params, bool)
            keep = masking.flatten_kernels(out).astype(bool)
            return selection.to_masks(keep, params), jnp.int32(0)
        steps = self._iterations(args)
        if steps is None:
            batch = self._batch(key, data, extras, spec)
            s = self._scores(key, params, masks, batch, extras)
            keep = selection.topk_mask(s, budget, start)
            return selection.to_masks(keep, params), _nan_count(s)
        n = start.shape[0]
        counts = at_init._exact_schedule(n, budget, steps, ceil_like=self.rounding == "ceil")

        def round_(keep, xs):
            t, k_t = xs
            kt = jax.random.fold_in(key, t)
            s = self._scores(kt, params, selection.to_masks(keep, params),
                             self._batch(kt, data, extras, spec), extras)
            new = selection.topk_mask(s, k_t, start if self.revive else keep)
            return new, _nan_count(s)

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
        return _call(self.batch, (key, data), extras)

    def _scores(self, key, params, masks, batch, extras):
        s = _call(self.fn, (key, params, masks, batch), extras)
        return _flat_scores(self.name, s, params)

    @functools.cached_property
    def train_fn(self) -> Callable:
        """The single-run train function ``(variant, data, *, spec) -> dict`` (made once)."""
        if self.kind == "train":
            return self.fn if self.builtin else _checked_train(self)
        return _at_init_train(self) if self.at_init else _hook_train(self)


def _nan_count(s) -> jax.Array:
    return jnp.sum(jnp.isnan(s)).astype(jnp.int32)


def _call(fn, positional, extras):
    wanted = _keyword_extras(fn)
    return fn(*positional, **{k: v for k, v in extras.items() if k in wanted})


@functools.lru_cache(maxsize=None)
def _keyword_extras(fn) -> frozenset:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return frozenset(EXTRAS)
    return frozenset(p.name for p in params if p.kind == p.KEYWORD_ONLY and p.name in EXTRAS)


def _describe(fn) -> str:
    try:
        return f"{getattr(fn, '__qualname__', type(fn).__name__)}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


def _check_extras(name, fn, positional: int, what: str) -> None:
    """One-line ValueError unless ``fn`` takes ``positional`` positional args (+ extras)."""
    if not callable(fn):
        raise ValueError(f"pruner {name!r}: {what} {fn!r} is not callable")
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return  # builtins without a signature: trust them
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in pos if p.default is p.empty]
    star = any(p.kind == p.VAR_POSITIONAL for p in params)
    bad_kw = [p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty
              and p.name not in EXTRAS]
    if len(required) > positional or (len(pos) < positional and not star) or bad_kw:
        extra = f"; keyword-only parameters it may declare: {', '.join(EXTRAS)}" if bad_kw else ""
        raise ValueError(f"pruner {name!r}: {what} {_describe(fn)} must take {positional} "
                         f"positional arguments{extra}")


def _check_signature(name, kind, fn) -> None:
    what = {"scores": "score function (key, params, masks, batch)",
            "masks": "prune function (key, params, masks, data, budget)",
            "hook": "hook (key, params, masks, opt_state, step, budget)",
            "train": "train function (variant, data, *, spec)"}[kind]
    _check_extras(name, fn, len(_POSITIONAL[kind]), what)
    if kind == "train" and "spec" not in _keyword_extras(fn):
        raise ValueError(f"pruner {name!r}: train function {_describe(fn)} must take "
                         "(variant, data, *, spec)")


def infer_kind(name: str, fn: Callable) -> str:
    """The kind of a bare function, from its signature; one-line ValueError if none fits."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as e:
        raise ValueError(f"pruner {name!r}: {fn!r} has no signature to read") from e
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    kw = {p.name for p in params if p.kind == p.KEYWORD_ONLY}
    if len(names) == 2 and "spec" in kw:
        return "train"
    if len(names) == 4:
        return "scores"
    if len(names) == 5:
        return "masks"
    if len(names) == 6 and "opt_state" in names:
        return "hook"
    raise ValueError(f"pruner {name!r}: cannot tell what {_describe(fn)} is; a pruner is "
                     "(key, params, masks, batch) -> scores, (key, params, masks, data, budget) "
                     "-> masks, a hook (key, params, masks, opt_state, step, budget) -> masks, "
                     "or (variant, data, *, spec) -> record")


def _check_tree(name, what, out, params, dtype=None) -> None:
    """Trace-time one-line ValueError unless ``out`` mirrors ``params`` leaf for leaf."""
    try:
        same = jax.tree.structure(out) == jax.tree.structure(params)
    except Exception:  # noqa: BLE001 - anything that is not a pytree
        same = False
    if not same:
        raise ValueError(f"pruner {name!r}: {what} returned {_short(out)}; need a tree like "
                         f"params {jax.tree.structure(params)}")
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"pruner {name!r}: {what} returned a leaf of shape {jnp.shape(a)} "
                             f"where params have {jnp.shape(b)}")
        if dtype is bool and jnp.asarray(a).dtype != jnp.bool_:
            raise ValueError(f"pruner {name!r}: {what} returned {jnp.asarray(a).dtype} masks; "
                             "need bool")


def _short(obj) -> str:
    text = repr(jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.asarray(a).dtype),
                             obj)) if obj is not None else "None"
    return text if len(text) < 120 else text[:117] + "..."


def _flat_scores(name, s, params) -> jax.Array:
    n = models.num_weights(models.widths_of(params))
    if isinstance(s, Mapping):
        kernels = {k: {"kernel": v["kernel"]} for k, v in s.items()
                   if isinstance(v, Mapping) and "kernel" in v}
        like = {k: {"kernel": params[k]["kernel"]} for k in models.LAYERS}
        _check_tree(name, "score function", kernels, like)
        return masking.flatten_kernels(s).astype(jnp.float32)
    shape = jnp.shape(s)
    if shape != (n,):
        raise ValueError(f"pruner {name!r}: score function returned shape {shape}; need a tree "
                         f"like params or a flat ({n},) vector")
    return jnp.asarray(s, jnp.float32)


# --- Train functions the library builds around a pruner. ---


def init_and_prune(pruner: Pruner, variant: training.Variant, data, *,
                   spec: training.Spec) -> tuple:
    """The first half of an at-init pruner's run: its init and its fixed masks; vmappable.

    ``compaction`` computes these at full width, then trains the masks compacted.

    Returns:
      (params masked by masks, masks) of one run.
    """
    args = pruner.resolve_args(spec)
    keys = training.run_keys(variant.seed)
    # The study re-draws SNIP's and GraSP's kernels Xavier-normal in its random-init runs
    # and trains that model (biases keep the torch draw: models.init uses the same key).
    xavier = args.get("xavier", False) and spec.init != "given"
    params = training.initial_params(variant, spec, keys["init"],
                                     kind="xavier" if xavier else None)
    masks = pruner.prune(keys["prune"], params, variant.masks, data, variant.budget,
                         spec=spec, lr=variant.lr, args=args)
    return masking.apply(params, masks), masks


def _at_init_train(pruner: Pruner) -> Callable:
    def train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
        keys = training.run_keys(variant.seed)
        params, masks = init_and_prune(pruner, variant, data, spec=spec)
        opt_state = training.optimizer(spec).init(params)
        params, _, loss = training.train_epochs(params, opt_state, masks, data, keys["data"],
                                                variant.lr, variant.schedule, spec)
        return training.result(params, masks, data, spec, loss)

    return _named(train, pruner, "prune at init, train the fixed masks")


def _hook_train(pruner: Pruner) -> Callable:
    def train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
        args = pruner.resolve_args(spec)
        every = int(args[pruner.every] if isinstance(pruner.every, str) else pruner.every)
        if every < 1:
            raise ValueError(f"pruner {pruner.name!r}: every must be >= 1, got {every}")
        keys = training.run_keys(variant.seed)
        total = spec.epochs * during_training.steps_per_epoch(data, spec)
        masks = variant.masks
        params = masking.apply(training.initial_params(variant, spec, keys["init"]), masks)
        opt_state = training.optimizer(spec).init(params)
        extras = {"lr": variant.lr, "spec": spec, "args": args, "total_steps": total}

        def segment(carry, i, num_steps):
            params, opt_state, masks = carry
            step = i * every
            new = _call(pruner.fn, (jax.random.fold_in(keys["prune"], i), params, masks,
                                    opt_state, step, variant.budget), extras)
            _check_tree(pruner.name, "hook", new, params, bool)
            new = selection.to_masks(masking.flatten_kernels(new), params)
            params = masking.apply(params, new)
            opt_state = during_training.mask_momentum(opt_state, new)
            params, opt_state, losses = during_training.train_steps(
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
        spe = during_training.steps_per_epoch(data, spec)
        return training.result(params, masks, data, spec, jnp.mean(jnp.concatenate(losses)[-spe:]))

    return _named(train, pruner, f"hook every {pruner.every} steps during training")


def _checked_train(pruner: Pruner) -> Callable:
    def train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
        out = pruner.fn(variant, data, spec=spec)
        missing = [k for k in RECORD_KEYS if not isinstance(out, Mapping) or k not in out]
        if missing:
            raise ValueError(f"pruner {pruner.name!r}: train function returned no {missing} "
                             "(return training.result(params, masks, data, spec, loss))")
        return out

    return _named(train, pruner, "the pruner's own single-run train function")


def _named(train, pruner, what):
    train.__name__ = train.__qualname__ = f"{pruner.name}_train"
    train.__doc__ = f"``populations`` train_fn of {pruner.name}: {what}."
    return train


# --- The registry. ---

_REGISTRY: dict[str, Pruner] = {}
_BY_FN: dict[int, Pruner] = {}


def register(name=None, fn=None, /, *, kind: str | None = None, args: Mapping | None = None,
             batch="random", iterations=None, revive: bool = False, rounding: str = "floor",
             every=None, reference=None, starts_from_masks: bool = True, builtin: bool = False,
             replace: bool = False):
    """Registers a pruner under ``name``: as a call, a decorator, or a ready ``Pruner``.

      register("mine", score_fn, iterations=10)      # a call
      @register("mine")                              # a decorator (returns the function)
      @register                                      # a decorator, named after the function
      register(Pruner(...))                          # a Pruner object

    Args:
      name: the method name (a ``Pruner`` or a function when used bare).
      fn: the function; its kind is read from its signature unless ``kind`` is given.
      kind, args, batch, iterations, revive, rounding, every, reference, starts_from_masks,
        builtin: the ``Pruner`` fields.
      replace: allow replacing a built-in (user pruners are replaced silently, so a notebook
        cell can run twice).

    Returns:
      the ``Pruner`` for a call with ``fn`` or a Pruner; the function itself as a decorator.
    """
    if isinstance(name, Pruner):
        return _add(name, replace)
    bare = callable(name) and fn is None
    if bare:   # @register: named after the function, which it returns
        fn, name = name, name.__name__
    options = dict(kind=kind, args=args or {}, batch=batch, iterations=iterations,
                   revive=revive, rounding=rounding, every=every, reference=reference,
                   starts_from_masks=starts_from_masks, builtin=builtin)
    if fn is None:
        def decorator(f):
            _add(make(name, f, **options), replace)
            return f
        return decorator
    pruner = _add(make(name, fn, **options), replace)
    return fn if bare else pruner


def make(name: str, fn: Callable, *, kind: str | None = None, **fields) -> Pruner:
    """A ``Pruner`` from a function (kind read from the signature if not given)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a pruner name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise ValueError(f"pruner {name!r}: {fn!r} is not a function")
    return Pruner(name=name, kind=kind or infer_kind(name, fn), fn=fn, **fields)


def _add(pruner: Pruner, replace: bool) -> Pruner:
    old = _REGISTRY.get(pruner.name)
    if old is not None and old.builtin and not replace:
        raise ValueError(f"pruner {pruner.name!r} is built in; register yours under another "
                         "name")
    _REGISTRY[pruner.name] = pruner
    _BY_FN[id(pruner.fn)] = pruner
    return pruner


def names() -> tuple[str, ...]:
    """Every registered name (built-ins first, then in registration order)."""
    return tuple(sorted(_REGISTRY, key=lambda n: not _REGISTRY[n].builtin))


def is_path(name: str) -> bool:
    """Whether ``name`` is an import path ``package.module:attribute``."""
    return isinstance(name, str) and ":" in name


def get(name) -> Pruner:
    """The pruner ``name`` (a ``Pruner`` passes through); import paths are imported once.

    Raises:
      ValueError: one line, for an unknown name, a path that does not import or names no
        function, or a function that is no pruner.
    """
    if isinstance(name, Pruner):
        return name
    if not isinstance(name, str):
        raise ValueError(f"a pruner name must be a string, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if not is_path(name):
        raise ValueError(f"unknown pruning method {name!r}; choose from {', '.join(names())}, "
                         "or give an import path package.module:function")
    module_name, _, attr = name.rpartition(":")
    try:
        module = _import(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's, in one line
        raise ValueError(f"pruner {name!r}: cannot import {module_name!r}: "
                         f"{type(e).__name__}: {e}".splitlines()[0]) from None
    obj = module
    for part in attr.split("."):
        if not part or not hasattr(obj, part):
            raise ValueError(f"pruner {name!r}: module {module_name!r} has no attribute "
                             f"{attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, Pruner):
        pruner = dataclasses.replace(obj, name=name, builtin=False)
    elif id(obj) in _BY_FN:
        pruner = dataclasses.replace(_BY_FN[id(obj)], name=name, builtin=False)
    else:
        pruner = make(name, obj)
    _REGISTRY[name] = pruner
    return pruner


def _import(module_name: str):
    """A module by dotted name (also from the working directory) or a ``.py`` file path."""
    if module_name.endswith(".py"):
        path = pathlib.Path(module_name).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no file {module_name}")
        key = f"_spiralprune_user_{stage_name(str(path))}"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[key]
                raise
        return sys.modules[key]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError:
        # A script's sys.path starts at its own folder, not the working directory.
        cwd = os.getcwd()
        if cwd in sys.path:
            raise
        sys.path.append(cwd)
        return importlib.import_module(module_name)


# --- Checking a pruner before any training. ---

_CHECK_POINTS = 1024


@functools.lru_cache(maxsize=1)
def _check_data():
    x, y = datasets.cubist_spiral()
    sub = np.sort(np.random.default_rng(0).choice(len(y), _CHECK_POINTS, replace=False))
    return jnp.asarray(x[sub]), jnp.asarray(y[sub])


def _check_params(widths, init: str):
    if init in models.BENCH_INITS:
        return models.bench_init(init, widths)
    kind = init if init in models.INIT_KINDS else "torch"
    return models.init(jax.random.key(0), widths, kind=kind)


def check(name, widths, budgets, init: str = "torch", *, method_args=()) -> None:
    """Runs pruner ``name`` once per budget on one model before any training.

    At-init pruners prune the init (on 1,024 spiral points): their masks must mirror params,
    keep exactly the budget inside the starting masks, and their scores must have no NaN.
    Hooks and train functions are traced (``jax.eval_shape``, one epoch) so a wrong signature or
    returned tree fails here, not after compiling the population.

    Raises:
      ValueError: one line naming the pruner.
    """
    pruner = get(name)
    widths = models.check_widths(widths)
    n = models.num_weights(widths)
    budgets = sorted({int(b) for b in budgets})
    for b in budgets:
        if not 1 <= b < n:
            raise ValueError(f"pruner {pruner.name!r}: budget {b} out of range for widths "
                             f"{widths}: need 1 <= budget < N_w = {n}")
    spec = training.Spec(widths=widths, epochs=1, method=pruner.name,
                         method_args=tuple(method_args))
    pruner.resolve_args(spec)
    params = _check_params(widths, init)
    masks = masking.ones_like(params)
    data = _check_data()
    if pruner.at_init:
        fn = jax.jit(functools.partial(pruner._prune, spec=spec))
        for b in budgets:
            try:
                out, nans = fn(jax.random.key(0), params, masks, data, jnp.int32(b))
            except ValueError:
                raise
            except Exception as e:  # noqa: BLE001 - one line, naming the pruner
                raise ValueError(f"pruner {pruner.name!r} failed at budget {b}: "
                                 f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
            if int(nans):
                raise ValueError(f"pruner {pruner.name!r}: {int(nans)} of {n} scores are NaN "
                                 f"(widths {widths}, budget {b})")
            kept = int(masking.nnz_weights(out))
            if kept != b:
                raise ValueError(f"pruner {pruner.name!r} kept {kept} weights at budget {b}; "
                                 "it must keep exactly the budget")
        return
    like = training.Variant(params=params if init in models.BENCH_INITS else {}, masks=masks,
                            lr=jnp.float32(0.1), schedule=jnp.int32(0), seed=jnp.uint32(0),
                            budget=jnp.int32(budgets[0] if budgets else 1))
    if init in models.BENCH_INITS:
        spec = dataclasses.replace(spec, init="given")
    try:
        jax.eval_shape(functools.partial(pruner.train_fn, spec=spec), like, data)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - one line, naming the pruner
        raise ValueError(f"pruner {pruner.name!r} does not trace: {type(e).__name__}: "
                         f"{str(e).splitlines()[0]}") from None


def stage_name(name: str) -> str:
    """``name`` with every character a record stage may not hold replaced by "-"."""
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)


def short_name(name: str) -> str:
    """A display name: the attribute of an import path, else the name."""
    return name.rpartition(":")[2] if is_path(name) else name


__all__ = ["Pruner", "register", "make", "get", "names", "check", "infer_kind", "is_path",
           "stage_name", "short_name", "init_and_prune", "KINDS"]
