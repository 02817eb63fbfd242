"""Pruners: pure one-model functions (scores, exact selection, at-init pruners, ProsPr), and
the public pruner API (``register``, ``get``, ``Pruner``: see ``api``)."""

from spiralprune.pruning import (
    api,
    at_init,
    connected,
    during_training,
    lottery,
    neurons,
    prospr,
    registry,
    scores,
    selection,
)
from spiralprune.pruning.api import Pruner, check, get, names, register

__all__ = ["api", "at_init", "connected", "prospr", "scores", "selection", "during_training",
           "lottery", "neurons", "registry", "Pruner", "register", "get", "names", "check"]
