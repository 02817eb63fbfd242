"""Pruners: pure one-model functions, one table of methods, and the public pruner API.

  from spiralprune import pruning

  @pruning.register("mine")                   # a score function; the library does the rest
  def mine(key, params, masks, batch): ...
  pruning.get("mine"), pruning.names(), pruning.check("mine", widths=16, budgets=(55,))

Modules: ``registry`` (the one table: ``register``, ``get``, ``names``, the built-ins and
``METHODS``), ``pruner`` (the ``Pruner`` and how it prunes), ``signatures`` (kinds and the
checks of a pruner's functions), ``train_fns`` (the single-run train functions built around a
pruner), ``plugins`` (pruners given by import path), ``checks`` (a pruner run once before
training, method args, budgets), ``costs`` (pruning FLOPs, a field of the table), and the
methods: ``scores``, ``selection``, ``at_init``, ``prospr``, ``during_training`` (GMP, RigL),
``lottery`` (LTH), ``connected`` (this project's example pruner), ``neurons`` (this
project's units-first pruner).
"""

from spiralprune.pruning import (
    at_init,
    checks,
    connected,
    costs,
    during_training,
    lottery,
    neurons,
    plugins,
    prospr,
    pruner,
    registry,
    scores,
    selection,
    signatures,
    train_fns,
)
from spiralprune.pruning.checks import check
from spiralprune.pruning.pruner import Pruner
from spiralprune.pruning.registry import get, make, names, register

__all__ = ["at_init", "checks", "connected", "costs", "during_training", "lottery", "neurons",
           "plugins", "prospr", "pruner", "registry", "scores", "selection", "signatures",
           "train_fns", "Pruner", "register", "get", "make", "names", "check"]
