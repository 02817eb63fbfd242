"""What a pruner's functions must look like: kinds, signatures, keyword extras, returned trees.

Four kinds of pruner, all for ONE model (``populations.run`` vmaps and jits them):

- ``"scores"``: ``score(key, params, masks, batch) -> scores``, a tree like ``params`` (only the
  kernels are read; biases are never ranked) or a flat (N,) vector in
  ``masking.flatten_kernels`` order, LARGER = more worth keeping.
- ``"masks"``: ``prune(key, params, masks, data, budget) -> masks`` chooses the masks itself.
- ``"hook"``: ``hook(key, params, masks, opt_state, step, budget) -> masks`` during training.
- ``"train"``: ``train(variant, data, *, spec) -> dict`` is the whole single run.

Any of these functions may also declare keyword-only parameters the library fills by name
(``EXTRAS``): ``lr``, ``spec``, ``args`` and, for hooks, ``total_steps``. Every check here is a
one-line ValueError naming the pruner (at registration, or at trace time for returned trees).
"""

import functools
import inspect
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from spiralprune import masking, models

KINDS = ("scores", "masks", "hook", "train")
AT_INIT_KINDS = ("scores", "masks")
EXTRAS = ("lr", "spec", "args", "total_steps")
POSITIONAL = {"scores": ("key", "params", "masks", "batch"),
              "masks": ("key", "params", "masks", "data", "budget"),
              "hook": ("key", "params", "masks", "opt_state", "step", "budget"),
              "train": ("variant", "data")}


def nan_count(s) -> jax.Array:
    """NaN entries of a flat score vector (an int32 scalar)."""
    return jnp.sum(jnp.isnan(s)).astype(jnp.int32)


def call(fn, positional, extras):
    """``fn(*positional, **the extras it declares)``."""
    wanted = keyword_extras(fn)
    return fn(*positional, **{k: v for k, v in extras.items() if k in wanted})


@functools.lru_cache(maxsize=None)
def keyword_extras(fn) -> frozenset:
    """The names of ``EXTRAS`` that ``fn`` declares (all of them for ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return frozenset(EXTRAS)
    return frozenset(p.name for p in params if p.kind == p.KEYWORD_ONLY and p.name in EXTRAS)


def describe(fn) -> str:
    """``name(signature)`` of a function, for error messages."""
    try:
        return f"{getattr(fn, '__qualname__', type(fn).__name__)}{inspect.signature(fn)}"
    except (TypeError, ValueError):
        return repr(fn)


def check_extras(name, fn, positional: int, what: str) -> None:
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
        raise ValueError(f"pruner {name!r}: {what} {describe(fn)} must take {positional} "
                         f"positional arguments{extra}")


def check_signature(name, kind, fn) -> None:
    """One-line ValueError unless ``fn`` has the signature of a pruner of ``kind``."""
    what = {"scores": "score function (key, params, masks, batch)",
            "masks": "prune function (key, params, masks, data, budget)",
            "hook": "hook (key, params, masks, opt_state, step, budget)",
            "train": "train function (variant, data, *, spec)"}[kind]
    check_extras(name, fn, len(POSITIONAL[kind]), what)
    if kind == "train" and "spec" not in keyword_extras(fn):
        raise ValueError(f"pruner {name!r}: train function {describe(fn)} must take "
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
    raise ValueError(f"pruner {name!r}: cannot tell what {describe(fn)} is; a pruner is "
                     "(key, params, masks, batch) -> scores, (key, params, masks, data, budget) "
                     "-> masks, a hook (key, params, masks, opt_state, step, budget) -> masks, "
                     "or (variant, data, *, spec) -> record")


def check_tree(name, what, out, params, dtype=None) -> None:
    """Trace-time one-line ValueError unless ``out`` mirrors ``params`` leaf for leaf."""
    try:
        same = jax.tree.structure(out) == jax.tree.structure(params)
    except Exception:  # noqa: BLE001 - anything that is not a pytree
        same = False
    if not same:
        where = _tree_diff(out, params)
        raise ValueError(f"pruner {name!r}: {what} returned " + (
            f"{where}; " if where else "") + f"{_short(out)}; need a tree like params "
            f"{jax.tree.structure(params)}")
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(params)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"pruner {name!r}: {what} returned a leaf of shape {jnp.shape(a)} "
                             f"where params have {jnp.shape(b)}")
        if dtype is bool and jnp.asarray(a).dtype != jnp.bool_:
            raise ValueError(f"pruner {name!r}: {what} returned {jnp.asarray(a).dtype} masks; "
                             "need bool")


def _tree_diff(out, params, at="") -> str:
    """The first layer or leaf where ``out`` departs from ``params`` ("no 'dense_3'",
    "an extra 'x' in 'dense_0'"), named before anything long is printed; "" if not found."""
    if not isinstance(params, Mapping):
        return ""
    here = f" in {at!r}" if at else ""
    if not isinstance(out, Mapping):
        return f"{type(out).__name__}{here} where params have a dict" if at or out is not None \
            else ""
    missing = [k for k in params if k not in out]
    if missing:
        return f"no {', '.join(repr(k) for k in missing)}{here}"
    extra = [k for k in out if k not in params]
    if extra:
        return f"an extra {', '.join(repr(k) for k in extra)}{here}"
    for k in params:
        d = _tree_diff(out[k], params[k], f"{at}.{k}" if at else str(k))
        if d:
            return d
    return ""


def _short(obj) -> str:
    text = repr(jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.asarray(a).dtype),
                             obj)) if obj is not None else "None"
    return text if len(text) < 120 else text[:117] + "..."


def resolve_args(method: str, given: Mapping, defaults: Mapping) -> dict:
    """``given`` method args over ``defaults``: the one resolver of every method's args (the
    built-ins' train functions, registered pruners, the config check). One-line ValueError
    naming ``method`` for names not in ``defaults``."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown method_args {unknown} for method {method!r}; "
                         f"valid: {sorted(defaults)}")
    return {**defaults, **given}


def flat_scores(name, s, params) -> jax.Array:
    """A score function's output as a flat float32 (N,) vector; one-line ValueError if bad."""
    n = models.num_weights(models.widths_of(params))
    if isinstance(s, Mapping):
        kernels = {k: {"kernel": v["kernel"]} for k, v in s.items()
                   if isinstance(v, Mapping) and "kernel" in v}
        like = {k: {"kernel": params[k]["kernel"]} for k in models.LAYERS}
        check_tree(name, "score function", kernels, like)
        return masking.flatten_kernels(s).astype(jnp.float32)
    if not hasattr(s, "shape"):
        raise ValueError(f"pruner {name!r}: score function returned a {type(s).__name__}; "
                         f"return jax arrays instead (a tree like params or a flat ({n},) "
                         "vector, e.g. jnp.stack(...) of a list), built with jnp, not np")
    shape = tuple(s.shape)
    if shape != (n,):
        raise ValueError(f"pruner {name!r}: score function returned shape {shape}; need a tree "
                         f"like params or a flat ({n},) vector")
    return jnp.asarray(s, jnp.float32)
