"""Registry of pruning methods: one single-run train function per name, and input validation.

``train_fn(method)`` returns ``(variant, data, *, spec) -> dict`` (``training.result``'s
record) for ``populations.run``, which vmaps and jits it. Every function is created once at
import, so ``populations``'s compile cache hits across calls.

Pruning at initialisation (random, snip, grasp, synflow, iter_snip, force, prospr): draw the
run's init, prune it with the run's prune key to ``variant.budget`` weights, train the fixed
masks with ``training.train_epochs``. These score the dense model and ignore
``variant.masks`` (pass all True); GMP, LTH and RigL start from ``variant.masks`` and never
keep an entry outside it. "dense" is ``training.train_run`` (it trains ``variant.masks``).

Method args (``Spec.method_args``; unknown names are a one-line ValueError at trace time):
  snip, grasp: ("xavier", True): re-draw the kernels Xavier-normal before pruning and train
    that model, as the study's random-init loop (never with ``Spec.init == "given"``: the
    fixed-init loops do not re-draw); ("reference_counts", False).
  synflow: ("synflow_iterations", 100); iter_snip, force: ("iter_steps", 10);
  prospr: ("prospr_steps", 3), ("prospr_momentum", 0.9); all at-init methods but random:
  ("reference_counts", False). gmp, rigl, lth: see ``during_training`` and ``lottery``.
"""

from collections.abc import Callable

from spiralprune import masking, models, training
from spiralprune.pruning import at_init, during_training, lottery, prospr

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


def _prune_at_init(method: str, key, params, data, variant, spec, args):
    """Masks of one at-init method (bias rule applied) for one model."""
    k, ref = variant.budget, bool(args.get("reference_counts", False))
    bs = spec.batch_size
    if method == "random":
        return at_init.random(key, params, k)
    if method == "snip":
        return at_init.snip(key, params, data, k, batch_size=bs, reference_counts=ref)
    if method == "grasp":
        return at_init.grasp(key, params, data, k, reference_counts=ref)
    if method == "synflow":
        return at_init.synflow(params, k, int(args["synflow_iterations"]), reference_counts=ref)
    if method in ("iter_snip", "force"):
        fn = at_init.iterative_snip if method == "iter_snip" else at_init.force
        return fn(key, params, data, k, int(args["iter_steps"]), batch_size=bs,
                  reference_counts=ref)
    return prospr.prospr(key, params, data, k, variant.lr, float(args["prospr_momentum"]),
                         int(args["prospr_steps"]), batch_size=bs, reference_counts=ref)


def _at_init_train_fn(method: str) -> Callable:
    defaults = AT_INIT_ARGS[method]

    def train(variant: training.Variant, data, *, spec: training.Spec) -> dict:
        args = during_training.resolve_args(spec, defaults)
        keys = training.run_keys(variant.seed)
        # The study re-draws SNIP's and GraSP's kernels Xavier-normal in its random-init runs
        # and trains that model (biases keep the torch draw: models.init uses the same key).
        xavier = args.get("xavier", False) and spec.init != "given"
        params = training.initial_params(variant, spec, keys["init"],
                                         kind="xavier" if xavier else None)
        masks = _prune_at_init(method, keys["prune"], params, data, variant, spec, args)
        params = masking.apply(params, masks)
        opt_state = training.optimizer(spec).init(params)
        params, _, loss = training.train_epochs(params, opt_state, masks, data, keys["data"],
                                                variant.lr, variant.schedule, spec)
        return training.result(params, masks, data, spec, loss)

    train.__name__ = train.__qualname__ = f"{method}_train"
    train.__doc__ = f"``populations`` train_fn of {method}: prune at init, train fixed masks."
    return train


_TRAIN_FNS: dict[str, Callable] = {
    "dense": training.train_run,
    **{m: _at_init_train_fn(m) for m in AT_INIT_ARGS},
    "gmp": during_training.gmp_train,
    "rigl": during_training.rigl_train,
    "lth": lottery.lth_train,
}

METHOD_ARGS: dict[str, dict] = {
    "dense": {}, **AT_INIT_ARGS, "gmp": during_training.GMP_ARGS,
    "rigl": during_training.RIGL_ARGS, "lth": lottery.LTH_ARGS,
}


def check_method(method: str) -> str:
    """Returns ``method``; one-line ValueError listing the valid methods otherwise."""
    if method not in _TRAIN_FNS:
        raise ValueError(f"unknown pruning method {method!r}; choose from {', '.join(METHODS)}")
    return method


def train_fn(method: str) -> Callable:
    """The single-run train function ``(variant, data, *, spec) -> dict`` of ``method``."""
    return _TRAIN_FNS[check_method(method)]


def check_method_args(method: str, method_args) -> None:
    """One-line ValueError if ``method_args`` (pairs or dict) has names ``method`` ignores."""
    unknown = sorted(set(dict(method_args)) - set(METHOD_ARGS[check_method(method)]))
    if unknown:
        raise ValueError(f"unknown method_args {unknown} for method {method!r}; valid: "
                         f"{sorted(METHOD_ARGS[method])}")


def check_budget(widths, budget) -> int:
    """Returns ``budget``; one-line ValueError unless 1 <= budget < N_w for ``widths``."""
    n = models.num_weights(widths)
    if not 1 <= int(budget) < n:
        raise ValueError(f"budget {budget} out of range for widths {models.check_widths(widths)}:"
                         f" need 1 <= budget < N_w = {n}")
    return int(budget)


def validate(method: str, widths, budgets=(), init: str = "torch") -> None:
    """Checks a group of runs before any compute; raises a one-line ValueError.

    Args:
      method: a name in METHODS.
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
            check_budget(widths, b)
