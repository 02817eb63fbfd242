"""The one table of pruning methods: every name -> its ``Pruner``, built-ins and user pruners.

``register`` adds a pruner (a call, a decorator or a ready ``Pruner``), ``get`` finds one by
name or import path (``package.module:function`` or ``path/to/file.py:function``, imported once
by ``plugins``), ``names`` lists them. ``BUILTINS`` are the study's methods, registered here
through the same ``register``; ``METHODS`` is their names, the one list every table, figure and
preset uses. Every pruner carries its pruning cost (``Pruner.cost``, read by
``analysis.flops``). ``train_fn(method)`` returns ``(variant, data, *, spec) -> dict``
(``training.result``'s record) for ``populations.run``, which vmaps and jits it; every function
is made once per pruner, so ``populations``'s compile cache hits across calls.

Pruning at initialisation (random, snip, grasp, synflow, iter_snip, force, prospr): score
functions from ``scores`` that the library selects from (``Pruner.prune``): draw the run's
init, prune it with the run's prune key to ``variant.budget`` weights inside ``variant.masks``
(all True in the study), train the fixed masks with ``training.train_epochs``. The masks are
those of ``at_init``'s and ``prospr``'s pruners, which the reference mode still calls. GMP, LTH
and RigL are whole train functions; they start from ``variant.masks`` and never keep an entry
outside it. "dense" is ``training.train_run`` (it trains ``variant.masks``).

Method args (``Spec.method_args``; checked by ``checks.check_method_args``):
  snip, grasp: ("xavier", True): re-draw the kernels Xavier-normal before pruning and train
    that model, as the study's random-init loop (never with ``Spec.init == "given"``: the
    fixed-init loops do not re-draw); ("reference_counts", False).
  synflow: ("synflow_iterations", 100); iter_snip, force: ("iter_steps", 10);
  prospr: ("prospr_steps", 3), ("prospr_momentum", 0.9); all at-init methods but random:
  ("reference_counts", False). gmp, rigl, lth: see ``during_training`` and ``lottery``.
"""

import dataclasses
from collections.abc import Callable, Mapping

import jax.numpy as jnp

from spiralprune import masking, training
from spiralprune.pruning import (
    at_init,
    costs,
    during_training,
    lottery,
    plugins,
    prospr,
    pruner,
    scores,
    signatures,
)

# --- The table, and how pruners get into it. ---

_REGISTRY: dict[str, pruner.Pruner] = {}
_BY_FN: dict[int, pruner.Pruner] = {}


def register(name=None, fn=None, /, *, kind: str | None = None, args: Mapping | None = None,
             batch="random", iterations=None, revive: bool = False, rounding: str = "floor",
             every=None, reference=None, starts_from_masks: bool = True, builtin: bool = False,
             cost: costs.Cost = costs.NONE, epochs=None, replace: bool = False):
    """Registers a pruner under ``name``: as a call, a decorator, or a ready ``Pruner``.

      register("mine", score_fn, iterations=10)      # a call
      @register("mine")                              # a decorator (returns the function)
      @register                                      # a decorator, named after the function
      register(Pruner(...))                          # a Pruner object

    Args:
      name: the method name (a ``Pruner`` or a function when used bare).
      fn: the function; its kind is read from its signature unless ``kind`` is given.
      kind, args, batch, iterations, revive, rounding, every, reference, starts_from_masks,
        builtin, cost, epochs: the ``Pruner`` fields (``cost``: its pruning FLOPs,
        ``costs.Cost``; default ``costs.NONE``, nothing beyond training the returned model;
        ``epochs``: the training epochs one run costs in time, default ``spec.epochs``).
      replace: allow replacing a built-in (user pruners are replaced silently, so a notebook
        cell can run twice).

    Returns:
      the ``Pruner`` for a call with ``fn`` or a Pruner; the function itself as a decorator.
    """
    if isinstance(name, pruner.Pruner):
        return _add(name, replace)
    bare = callable(name) and fn is None
    if bare:   # @register: named after the function, which it returns
        fn, name = name, name.__name__
    options = dict(kind=kind, args=args or {}, batch=batch, iterations=iterations,
                   revive=revive, rounding=rounding, every=every, reference=reference,
                   starts_from_masks=starts_from_masks, builtin=builtin, cost=cost,
                   epochs=epochs)
    if fn is None:
        def decorator(f):
            _add(make(name, f, **options), replace)
            return f
        return decorator
    made = _add(make(name, fn, **options), replace)
    return fn if bare else made


def make(name: str, fn: Callable, *, kind: str | None = None, **fields) -> pruner.Pruner:
    """A ``Pruner`` from a function (kind read from the signature if not given)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a pruner name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise ValueError(f"pruner {name!r}: {fn!r} is not a function")
    return pruner.Pruner(name=name, kind=kind or signatures.infer_kind(name, fn), fn=fn, **fields)


def _add(p: pruner.Pruner, replace: bool) -> pruner.Pruner:
    old = _REGISTRY.get(p.name)
    if old is not None and old.builtin and not replace:
        raise ValueError(f"pruner {p.name!r} is built in; register yours under another "
                         "name")
    _REGISTRY[p.name] = p
    _BY_FN[id(p.fn)] = p
    return p


def names() -> tuple[str, ...]:
    """Every registered name (built-ins first, then in registration order)."""
    return tuple(sorted(_REGISTRY, key=lambda n: not _REGISTRY[n].builtin))


def get(name) -> pruner.Pruner:
    """The pruner ``name`` (a ``Pruner`` passes through); import paths are imported once.

    Raises:
      ValueError: one line, for an unknown name, a path that does not import or names no
        function, or a function that is no pruner.
    """
    if isinstance(name, pruner.Pruner):
        return name
    if not isinstance(name, str):
        raise ValueError(f"a pruner name must be a string, got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if not plugins.is_path(name):
        raise ValueError(f"unknown pruning method {name!r}; choose from {', '.join(names())}, "
                         "or give an import path package.module:function")
    module_name, _, attr = name.rpartition(":")
    try:
        module = plugins.import_module(module_name)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's, in one line
        raise ValueError(f"pruner {name!r}: cannot import {module_name!r}: "
                         f"{type(e).__name__}: {e}".splitlines()[0]) from None
    obj = module
    for part in attr.split("."):
        if not part or not hasattr(obj, part):
            raise ValueError(f"pruner {name!r}: module {module_name!r} has no attribute "
                             f"{attr!r}")
        obj = getattr(obj, part)
    if isinstance(obj, pruner.Pruner):
        found = dataclasses.replace(obj, name=name, builtin=False)
    elif id(obj) in _BY_FN:
        found = dataclasses.replace(_BY_FN[id(obj)], name=name, builtin=False)
    else:
        found = make(name, obj)
    _REGISTRY[name] = found
    return found


# --- The study's methods. ---

_REF = {"reference_counts": False}
AT_INIT_ARGS = {
    "random": {},
    "snip": {"xavier": True, **_REF},
    "grasp": {"xavier": True, **_REF},
    "synflow": {"synflow_iterations": 100, **_REF},
    "iter_snip": {"iter_steps": 10, **_REF},
    "force": {"iter_steps": 10, **_REF},
    "prospr": {"prospr_steps": 3, "prospr_momentum": 0.9, **_REF},
}


# --- The built-ins' pieces for the API: score functions, batches, the study's own counts. ---


def _grasp_scores(key, params, masks, batch):
    return scores.grasp(key, params, masks, batch, 200.0)


def _prospr_batches(key, data, *, spec, args):
    """ProsPr's steps + 1 consecutive batches of one shuffle."""
    return prospr.draw_batches(key, data, int(args["prospr_steps"]) + 1, spec.batch_size)


def _prospr_scores(key, params, masks, batch, *, lr, args):
    """|dL(theta_steps; next batch) / dc| from the masked init (``prospr.meta_gradient``)."""
    del key
    return jnp.abs(prospr.meta_gradient(masking.apply(params, masks), batch, lr,
                                        float(args["prospr_momentum"])))


def _reference(method: str) -> Callable:
    """The study's count formulas and threshold idioms (``reference_counts=True``)."""

    def prune(key, params, data, k, *, lr, spec, args):
        bs, ref = spec.batch_size, True
        if method == "snip":
            return at_init.snip(key, params, data, k, batch_size=bs, reference_counts=ref)
        if method == "grasp":
            return at_init.grasp(key, params, data, k, reference_counts=ref)
        if method == "synflow":
            return at_init.synflow(params, k, int(args["synflow_iterations"]),
                                   reference_counts=ref)
        if method in ("iter_snip", "force"):
            fn = at_init.iterative_snip if method == "iter_snip" else at_init.force
            return fn(key, params, data, k, int(args["iter_steps"]), batch_size=bs,
                      reference_counts=ref)
        return prospr.prospr(key, params, data, k, lr, float(args["prospr_momentum"]),
                             int(args["prospr_steps"]), batch_size=bs, reference_counts=ref)

    prune.__name__ = f"{method}_reference"
    return prune


def _at_init(name, score, **fields) -> pruner.Pruner:
    ref = _reference(name) if "reference_counts" in AT_INIT_ARGS[name] else None
    return pruner.Pruner(name=name, kind="scores", fn=score, args=AT_INIT_ARGS[name],
                         reference=ref, builtin=True, **fields)


def _train(name, fn, args, starts_from_masks=True, **fields) -> pruner.Pruner:
    return pruner.Pruner(name=name, kind="train", fn=fn, args=args, builtin=True,
                         starts_from_masks=starts_from_masks, **fields)


# ONE table of the study's methods, every one a pruner of the public API (``pruner.Pruner``).
# Exact mode: the library's selection reproduces at_init's pruners mask for mask (same keys,
# batches, schedules, tie rule); reference mode calls at_init/prospr with reference_counts.
BUILTINS: tuple[pruner.Pruner, ...] = (
    _train("dense", training.train_run, {}, cost=costs.DENSE),
    _at_init("random", scores.random, batch=None, cost=costs.NONE),
    _at_init("snip", scores.snip, cost=costs.SNIP),
    _at_init("grasp", _grasp_scores, batch="balanced", cost=costs.GRASP),
    _at_init("synflow", scores.synflow, batch=None, iterations="synflow_iterations",
             rounding="ceil", cost=costs.SYNFLOW),
    _at_init("iter_snip", scores.iter_snip, iterations="iter_steps", cost=costs.ITERATIVE),
    _at_init("force", scores.force, iterations="iter_steps", revive=True, cost=costs.ITERATIVE),
    _at_init("prospr", _prospr_scores, batch=_prospr_batches, cost=costs.PROSPR),
    _train("gmp", during_training.gmp_train, during_training.GMP_ARGS, cost=costs.GMP),
    _train("rigl", during_training.rigl_train, during_training.RIGL_ARGS, cost=costs.RIGL),
    _train("lth", lottery.lth_train, lottery.LTH_ARGS, cost=costs.LTH,
           epochs=lambda spec, args: spec.epochs * int(args["lth_rounds"])),
)
# The study's methods, in the order of every table and figure: defined here, once.
METHODS = tuple(p.name for p in BUILTINS)
PRUNERS = METHODS[1:]
for _pruner in BUILTINS:
    register(_pruner, replace=True)

METHOD_ARGS: dict[str, dict] = {p.name: dict(p.args) for p in BUILTINS}


def train_fn(method: str) -> Callable:
    """The single-run train function ``(variant, data, *, spec) -> dict`` of ``method``."""
    return get(method).train_fn
