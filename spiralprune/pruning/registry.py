"""Registry of pruning methods: one single-run train function per name, and input validation.

Every method is a pruner of the public API (``api``): ``BUILTINS`` is the one table of the
study's methods, and names outside it (``api.register``, or an import path
``package.module:function``) resolve through the same ``api.get``. ``train_fn(method)``
returns ``(variant, data, *, spec) -> dict`` (``training.result``'s record) for
``populations.run``, which vmaps and jits it. Every function is made once per pruner, so
``populations``'s compile cache hits across calls.

Pruning at initialisation (random, snip, grasp, synflow, iter_snip, force, prospr): score
functions from ``scores`` that the library selects from (``api.Pruner.prune``): draw the run's
init, prune it with the run's prune key to ``variant.budget`` weights inside ``variant.masks``
(all True in the study), train the fixed masks with ``training.train_epochs``. The masks are
those of ``at_init``'s and ``prospr``'s pruners, which the reference mode still calls. GMP, LTH
and RigL are whole train functions; they start from ``variant.masks`` and never keep an entry
outside it. "dense" is ``training.train_run`` (it trains ``variant.masks``).

Method args (``Spec.method_args``; unknown names are a one-line ValueError at trace time):
  snip, grasp: ("xavier", True): re-draw the kernels Xavier-normal before pruning and train
    that model, as the study's random-init loop (never with ``Spec.init == "given"``: the
    fixed-init loops do not re-draw); ("reference_counts", False).
  synflow: ("synflow_iterations", 100); iter_snip, force: ("iter_steps", 10);
  prospr: ("prospr_steps", 3), ("prospr_momentum", 0.9); all at-init methods but random:
  ("reference_counts", False). gmp, rigl, lth: see ``during_training`` and ``lottery``.
"""

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from spiralprune import masking, models, training
from spiralprune.pruning import api, at_init, during_training, lottery, prospr, scores

METHODS = ("dense", "random", "snip", "grasp", "synflow", "iter_snip", "force", "prospr",
           "gmp", "rigl", "lth")
PRUNERS = METHODS[1:]

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


def _at_init(name, score, **fields) -> api.Pruner:
    ref = _reference(name) if "reference_counts" in AT_INIT_ARGS[name] else None
    return api.Pruner(name=name, kind="scores", fn=score, args=AT_INIT_ARGS[name],
                      reference=ref, builtin=True, **fields)


def _train(name, fn, args, starts_from_masks=True) -> api.Pruner:
    return api.Pruner(name=name, kind="train", fn=fn, args=args, builtin=True,
                      starts_from_masks=starts_from_masks)


# ONE table of the study's methods, every one a pruner of the public API (spiralprune.pruning.api).
# Exact mode: the library's selection reproduces at_init's pruners mask for mask (same keys,
# batches, schedules, tie rule); reference mode calls at_init/prospr with reference_counts.
BUILTINS: tuple[api.Pruner, ...] = (
    _train("dense", training.train_run, {}),
    _at_init("random", scores.random, batch=None),
    _at_init("snip", scores.snip),
    _at_init("grasp", _grasp_scores, batch="balanced"),
    _at_init("synflow", scores.synflow, batch=None, iterations="synflow_iterations",
             rounding="ceil"),
    _at_init("iter_snip", scores.iter_snip, iterations="iter_steps"),
    _at_init("force", scores.force, iterations="iter_steps", revive=True),
    _at_init("prospr", _prospr_scores, batch=_prospr_batches),
    _train("gmp", during_training.gmp_train, during_training.GMP_ARGS),
    _train("rigl", during_training.rigl_train, during_training.RIGL_ARGS),
    _train("lth", lottery.lth_train, lottery.LTH_ARGS),
)
assert tuple(p.name for p in BUILTINS) == METHODS
for _pruner in BUILTINS:
    api.register(_pruner, replace=True)

METHOD_ARGS: dict[str, dict] = {p.name: dict(p.args) for p in BUILTINS}


def check_method(method: str) -> str:
    """Returns ``method``; one-line ValueError otherwise.

    A method is a registered name (the built-ins, ``api.register``) or an import path
    ``package.module:function`` (imported here, once).
    """
    api.get(method)
    return method


def train_fn(method: str) -> Callable:
    """The single-run train function ``(variant, data, *, spec) -> dict`` of ``method``."""
    return api.get(method).train_fn


# Built-in method args that count something (>= 1) and that are fractions (in [0, 1]).
_COUNT_ARGS = ("gmp_steps", "rigl_delta", "lth_rounds", "rounds", "synflow_iterations",
               "iter_steps", "prospr_steps")
_FRACTION_ARGS = ("rigl_alpha", "rigl_end", "prospr_momentum")


def check_method_args(method: str, method_args) -> None:
    """One-line ValueError if ``method_args`` (pairs or dict) has names ``method`` ignores,
    or a value of the wrong type (the default's) or range (counts >= 1, fractions in [0, 1])."""
    valid = api.get(method).args
    given = dict(method_args)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"unknown method_args {unknown} for method {method!r}; valid: "
                         f"{sorted(valid)}")
    for name, value in given.items():
        default, where = valid[name], f"method_args.{method}.{name}={value!r}"
        if isinstance(default, bool) and not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{where}: need True or False")
        if isinstance(default, int) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise ValueError(f"{where}: need an integer")
        if isinstance(default, float) and (isinstance(value, bool) or not isinstance(
                value, (int, float, np.number)) or not np.isfinite(float(value))):
            raise ValueError(f"{where}: need a finite number")
        if isinstance(default, str) and not isinstance(value, str):
            raise ValueError(f"{where}: need a string")
        if name in _COUNT_ARGS and int(value) < 1:
            raise ValueError(f"{where}: must be >= 1")
        if name in _FRACTION_ARGS and not 0 <= float(value) <= 1:
            raise ValueError(f"{where}: must be in [0, 1]")


def check_budget(widths, budget) -> int:
    """Returns ``budget``; one-line ValueError unless 1 <= budget < N_w for ``widths``."""
    n = models.num_weights(widths)
    if not 1 <= int(budget) < n:
        raise ValueError(f"budget {budget} out of range for widths {models.check_widths(widths)}:"
                         f" need 1 <= budget < N_w = {n}")
    return int(budget)


def validate(method: str, widths, budgets=(), init: str = "torch") -> None:
    """Checks a group of runs before any compute; raises a one-line ValueError.

    A pruner outside the built-ins is also run once per width on its smallest and largest
    budgets (``api.check``), so a wrong signature, returned tree, NaN scores or inexact budget
    is a one-line error naming it before any training.

    Args:
      method: a name in METHODS, a registered name or an import path.
      widths: hidden widths (one int or (d1, d2, d3)).
      budgets: weight budgets (ignored for "dense").
      init: "torch", "xavier", "given", or a fixed init name (``models.BENCH_INITS``, 16 wide).
    """
    check_method(method)
    widths = models.check_widths(widths)
    if init in models.BENCH_INITS:
        if max(widths) > 16:
            raise ValueError(f"init {init} is 16 wide; cannot provide widths {widths}")
    elif init not in models.INIT_KINDS + ("given",):
        raise ValueError(f"unknown init {init!r}; choose from "
                         f"{models.INIT_KINDS + ('given',) + models.BENCH_INITS}")
    if method != "dense":
        for b in budgets:
            try:
                check_budget(widths, b)
            except ValueError as e:
                raise ValueError(f"method {method!r}: {e}") from None
    if not api.get(method).builtin and budgets:
        api.check(method, widths, (min(budgets), max(budgets)), init)
