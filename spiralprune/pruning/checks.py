"""Checks before any training: a pruner run once, method args, budgets, a group of runs.

``check`` runs a pruner once per budget on one model and turns what is wrong (import,
signature, returned tree, NaN scores, budget) into a one-line ValueError naming it;
``validate`` checks a group of runs (method, widths, budgets, init) before any compute.
"""

import dataclasses
import functools
import os
import re
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import datasets, masking, models, training
from spiralprune.pruning import registry, signatures, train_fns

_CHECK_POINTS = 1024
_ABANDONED: list[threading.Thread] = []   # checks that never returned, still running


def abandoned() -> bool:
    """Whether a pruner check that never returned still runs (then only ``os._exit`` ends
    the process cleanly: finalizing it under a running XLA computation aborts)."""
    return any(t.is_alive() for t in _ABANDONED)


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


# What to do about the JAX errors a pruner's own code most often raises when traced.
_HINTS = {
    "TracerArrayConversionError": "use jnp, not np, inside a pruner, and return jax arrays "
                                  "(not lists or NumPy arrays)",
    "TracerBoolConversionError": "the budget (and every array) is a traced value: use "
                                 "jnp.where or jax.lax.cond, not Python if/while",
    "ConcretizationTypeError": "the budget (and every array) is a traced value: use jnp.where "
                               "or jax.lax.cond, and shapes that do not depend on it",
    "TracerIntegerConversionError": "the budget (and every array) is a traced value: index "
                                    "with jnp operations (jnp.where, jnp.take), not int()",
}


def _layer_of(text: str, params) -> str:
    """The layers whose kernel has the shape a JAX error names ("float32[2,16]"), or ""."""
    found = re.search(r"\w+\[(\d+(?:,\s*\d+)*)\]", text)
    if not found:
        return ""
    shape = tuple(int(d) for d in found.group(1).split(","))
    names = [f"{n}'s kernel" for n in models.LAYERS if tuple(params[n]["kernel"].shape) == shape]
    names += [f"{n}'s bias" for n in models.LAYERS if tuple(params[n]["bias"].shape) == shape]
    return f" on {' or '.join(names)}" if names else ""


def _failure(pruner, where: str, e: Exception, params=None) -> ValueError:
    """One line naming the pruner, the error and, for a known JAX mistake, what to do and the
    layer whose array it was (by its shape)."""
    kind = type(e).__name__
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    hint = _HINTS.get(kind)
    detail = f"{kind}: {lines[0] if lines else ''}"
    if hint:
        layer = _layer_of(" ".join(lines[:3]), params) if params is not None else ""
        detail = f"{kind}{layer}: {hint} ({lines[0][:160] if lines else ''})"
    return ValueError(f"pruner {pruner.name!r} {where}: {detail}")


def check_timeout_s() -> float:
    """Seconds a pruner's check may take (env ``SPIRALPRUNE_CHECK_TIMEOUT_S``, default 300:
    one model at a few budgets compiles and runs in seconds, even on a loaded CPU)."""
    raw = os.environ.get("SPIRALPRUNE_CHECK_TIMEOUT_S", "300")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise ValueError(f"SPIRALPRUNE_CHECK_TIMEOUT_S must be a number of seconds > 0, got "
                         f"{raw!r}")
    return value


def check(name, widths, budgets, init: str = "torch", *, method_args=()) -> None:
    """Runs pruner ``name`` once per budget on one model before any training, bounded in time.

    The check runs on a daemon thread while the caller waits at most ``check_timeout_s()``
    seconds, interruptibly (Ctrl-C stops the wait even inside an endless ``lax.while_loop``,
    which no signal can stop): a pruner that never returns is a one-line ValueError naming it.
    The abandoned thread keeps its core busy until the process exits.
    """
    limit = check_timeout_s()
    pruner = registry.get(name)
    outcome = []

    def body():
        try:
            _check(pruner, widths, budgets, init, method_args=method_args)
            outcome.append(None)
        except SystemExit as e:   # would end the binary with no word
            outcome.append(ValueError(f"pruner {pruner.name!r} called sys.exit({e.code!r}); "
                                      "a pruner must return masks or scores"))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            outcome.append(e)

    thread = threading.Thread(target=body, daemon=True, name=f"check-{pruner.name}")
    thread.start()
    deadline = time.monotonic() + limit
    try:
        while thread.is_alive() and time.monotonic() < deadline:
            # Short waits: a signal may land on another thread and wake no long wait, and
            # Python runs its handler (Ctrl-C) only between the waits.
            thread.join(min(0.1, max(deadline - time.monotonic(), 0.0)))
    finally:
        if thread.is_alive():
            _ABANDONED.append(thread)
    if not outcome:
        raise ValueError(f"pruner {pruner.name!r} did not return within {limit:g} s on one "
                         "model (an endless loop?); fix it, or raise SPIRALPRUNE_CHECK_TIMEOUT_S"
                         " for a slow pruner")
    if outcome[0] is not None:
        raise outcome[0]


def _check(pruner, widths, budgets, init: str = "torch", *, method_args=()) -> None:
    """``check``'s work, on its thread.

    At-init pruners prune the init (on 1,024 spiral points): their masks must mirror params,
    keep exactly the budget inside the starting masks, and their scores must have no NaN.
    Hooks and train functions are traced (``jax.eval_shape``, one epoch) so a wrong signature or
    returned tree fails here, not after compiling the population.

    Raises:
      ValueError: one line naming the pruner.
    """
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
        fn = jax.jit(functools.partial(pruner.prune_and_count_nans, spec=spec))
        for b in budgets:
            try:
                out, nans = fn(jax.random.key(0), params, masks, data, jnp.int32(b))
            except ValueError:
                raise
            except Exception as e:  # noqa: BLE001 - one line, naming the pruner
                raise _failure(pruner, f"failed at budget {b}", e, params) from None
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
        raise _failure(pruner, "does not trace", e, params) from None


@functools.lru_cache(maxsize=16)
def _nans_program(pruner, spec):
    return jax.jit(jax.vmap(functools.partial(train_fns.score_nans, pruner, spec=spec),
                            in_axes=(0, None)))


def population_nans(method: str, variants: training.Variant, data, *,
                    spec: training.Spec) -> np.ndarray:
    """(P,) NaN scores of each run of a population as it would prune (its own init and key),
    before it trains: ``check`` scores one key only. Zeros for pruners that do not prune at
    initialisation or are built in (the study's own, whose records must not change)."""
    pruner = registry.get(method)
    p = int(np.shape(variants.lr)[0])
    if not pruner.at_init or pruner.builtin:
        return np.zeros(p, np.int32)
    data = tuple(jnp.asarray(a, jnp.float32) for a in data)
    return np.asarray(_nans_program(pruner, spec)(variants, data))


def over_budget(method: str, mask_nnz_weights, budgets) -> np.ndarray:
    """(P,) bool: runs of a during-training pruner (a hook or a train function, not built in)
    that end with more weights than their budget (a hook that never reached it)."""
    pruner = registry.get(method)
    kept, budgets = np.asarray(mask_nnz_weights), np.asarray(budgets)
    if pruner.at_init or pruner.builtin or method == "dense":
        return np.zeros(kept.shape, bool)
    return (budgets >= 1) & (kept > budgets)


def check_method(method: str) -> str:
    """Returns ``method``; one-line ValueError otherwise.

    A method is a registered name (the built-ins, ``registry.register``) or an import path
    ``package.module:function`` (imported here, once).
    """
    registry.get(method)
    return method


# Built-in method args that count something (>= 1) and that are fractions (in [0, 1]).
_COUNT_ARGS = ("gmp_steps", "rigl_delta", "lth_rounds", "rounds", "synflow_iterations",
               "iter_steps", "prospr_steps")
_FRACTION_ARGS = ("rigl_alpha", "rigl_end", "prospr_momentum")


def check_method_args(method: str, method_args) -> None:
    """One-line ValueError if ``method_args`` (pairs or dict) has names ``method`` ignores,
    or a value of the wrong type (the default's) or range (counts >= 1, fractions in [0, 1])."""
    valid = registry.get(method).args
    given = dict(method_args)
    signatures.resolve_args(method, given, valid)
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
    budgets (``check``), so a wrong signature, returned tree, NaN scores or inexact budget
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
    if not registry.get(method).builtin and budgets:
        check(method, widths, (min(budgets), max(budgets)), init)
