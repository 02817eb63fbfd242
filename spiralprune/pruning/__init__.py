"""Pruners: pure one-model functions (scores, exact selection, at-init pruners, ProsPr)."""

from spiralprune.pruning import (
    at_init,
    during_training,
    lottery,
    prospr,
    registry,
    scores,
    selection,
)

__all__ = ["at_init", "prospr", "scores", "selection", "during_training", "lottery", "registry"]
