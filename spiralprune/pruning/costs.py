"""Pruning costs: the work a pruner does to find its mask, a field of the method table.

Every pruner of the table (``registry``) carries a ``Cost`` (``Pruner.cost``), which
``analysis.flops`` reads; the counting conventions (forward-only and forward + backward, the
bias model, ``nnz``) are ``analysis.flops``'s and docs/pruners.md's "FLOPs". A cost function
takes the ``Inputs`` of one setting and returns ``(prune, extra, trained)``:

- ``prune``: parameter-sample products of the passes that only serve to find the mask (counted
  once forward-only and six times forward + backward);
- ``extra``: further FLOPs counted only forward + backward (RigL's dense weight gradient);
- ``trained``: parameter-sample products of training the returned model (``inputs.trained``
  unless the method trains at changing counts, as GMP does).

A registered pruner that states no cost gets ``NONE``: nothing beyond training its returned
sparse model (random pruning's count), the documented default.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np

from spiralprune.pruning import during_training, lottery


@dataclasses.dataclass(frozen=True)
class Inputs:
    """One setting's counts (``analysis.flops`` builds them).

    Attributes:
      widths: hidden widths.
      budget: weight budget f (N_w for dense).
      n_w, n_p, hidden: kernel entries, parameters, hidden units of the dense model.
      steps: training steps t; samples: training samples (t x batch); batch: batch size.
      hparams: ``analysis.FLOPS_HPARAMS`` with the caller's overrides.
      params: nonzero parameters of a mask of w weights (global placement, bias model).
      trained: parameter-sample products of training the returned model at f.
    """

    widths: tuple
    budget: int
    n_w: int
    n_p: int
    hidden: int
    steps: int
    samples: int
    batch: int
    hparams: Mapping
    params: Callable[[int], float]
    trained: float

    def geometric(self, k: int) -> list[int]:
        """Weight counts at the start of k exponential-schedule iterations: N (f/N)^(j/k)."""
        return [math.floor(self.n_w * (self.budget / self.n_w) ** (j / k)) for j in range(k)]


@dataclasses.dataclass(frozen=True)
class Cost:
    """A pruner's cost: ``fn(inputs) -> (prune, extra, trained)``.

    Attributes:
      fn: the cost function.
      erk: the method keeps ERK per-layer counts all through training (RigL); otherwise its
        weights are placed globally (the bias model of ``analysis.expected_biases``).
    """

    fn: Callable[[Inputs], tuple]
    erk: bool = False


def _none(c: Inputs) -> tuple:
    return 0.0, 0.0, c.trained


def _dense(c: Inputs) -> tuple:
    return 0.0, 0.0, float(c.n_p) * c.samples


def _snip(c: Inputs) -> tuple:   # one dense pass on snip_samples
    return c.n_p * c.hparams["snip_samples"], 0.0, c.trained


def _grasp(c: Inputs) -> tuple:  # a dense pass and a Hessian-vector product on grasp_samples
    return (1 + c.hparams["hvp_factor"]) * c.n_p * c.hparams["grasp_samples"], 0.0, c.trained


def _synflow(c: Inputs) -> tuple:  # one sample per iteration at the decreasing counts
    return sum(c.params(w) for w in c.geometric(c.hparams["synflow_iterations"])), 0.0, c.trained


def _iterative(c: Inputs) -> tuple:  # iter_snip, force: a batch per step, biases dense
    return (sum((w + c.hidden + 1) * c.batch for w in c.geometric(c.hparams["iter_steps"])),
            0.0, c.trained)


def _prospr(c: Inputs) -> tuple:  # unrolled dense steps, the meta-loss pass, second order
    inner = c.hparams["prospr_steps"] * c.n_p * c.batch
    return inner + c.n_p * c.batch + c.hparams["second_order_factor"] * inner, 0.0, c.trained


def _gmp(c: Inputs) -> tuple:  # trains at the cubic schedule's counts, step by step
    t, f, n_w = c.steps, c.budget, c.n_w
    delta, k = during_training.gmp_delta(t, c.hparams["gmp_steps"])
    events = during_training.gmp_event_steps(t, c.hparams["gmp_steps"])
    targets = [min(max(x, f), n_w)  # exact mode: clamped to [f, N]
               for x in during_training.gmp_counts(n_w, f, len(events), delta=delta, n=k)]
    bounds = np.concatenate([[0], events, [t]])
    counts = np.concatenate([[n_w], targets])
    trained = sum(c.params(int(w)) * c.batch * int(b - a)
                  for w, a, b in zip(counts, bounds[:-1], bounds[1:]))
    return 0.0, 0.0, trained


def _lth(c: Inputs) -> tuple:  # rounds 0 .. R-2 train at the decreasing counts
    counts = lottery.lth_counts(c.n_w, c.budget, c.hparams["lth_rounds"])
    targets = [min(max(x, c.budget), c.n_w) for x in counts[:-1]]  # exact mode
    return sum(c.params(w) * c.samples for w in targets), 0.0, c.trained


def _rigl(c: Inputs) -> tuple:  # dense weight gradients at its updates (forward + backward)
    _, updates = during_training.rigl_schedule(c.steps, c.hparams["rigl_delta"],
                                               c.hparams["rigl_end"])
    return 0.0, updates * 2 * (c.n_w - c.budget) * c.batch, c.trained


NONE = Cost(_none)
DENSE = Cost(_dense)
SNIP = Cost(_snip)
GRASP = Cost(_grasp)
SYNFLOW = Cost(_synflow)
ITERATIVE = Cost(_iterative)
PROSPR = Cost(_prospr)
GMP = Cost(_gmp)
LTH = Cost(_lth)
RIGL = Cost(_rigl, erk=True)
