"""The study's training recipe for ONE model (docs/recipe.md); populations vmap it.

SGD with momentum 0.9 (no dampening, no Nesterov) and weight decay 5e-4 added to the gradient,
batch 128 reshuffled every epoch with the last partial batch dropped (390 steps per epoch),
50 epochs, learning rate stepped per epoch by a schedule. Masked entries are zero in every
forward pass and after every step. The whole run is one ``lax.scan`` (epochs) of a
``lax.scan`` (steps); evaluation walks all 49,982 points in chunks.

PyTorch's loop re-zeroes masked weights after ``optimizer.step()`` but leaves their gradients
and momentum unmasked; masking the gradients instead gives identical active weights (the
masked momentum entries never reach an active weight) and keeps masked entries exactly 0.
"""

import dataclasses
import math

import flax.struct
import jax
import jax.numpy as jnp
import optax

from spiralprune import base, datasets, masking, models, schedules

ENGINES = ("auto", "vmap", "lanes")


@dataclasses.dataclass(frozen=True)
class Spec:
    """Static (compile-time) description shared by every run of a population.

    Attributes:
      widths: hidden widths (d1, d2, d3) of the trained model (after any compaction).
      epochs: training epochs (50 in the study).
      batch_size: minibatch size (128).
      momentum: SGD momentum (0.9).
      weight_decay: coupled weight decay (5e-4).
      milestones: epochs where the "step" schedule multiplies the lr by ``gamma``.
      gamma: decay of the "step" schedule (0.1).
      cosine_t_max: T_max of the "cosine" schedule (50).
      init: "torch" or "xavier" (drawn inside the run from its seed), or "given" (the run's
        ``Variant.params``).
      dist_widths: widths whose init distribution is used (a compacted model uses the width-D
        distribution); None means ``widths``.
      eval_chunk: data points per evaluation chunk (bounds evaluation memory per run).
      precision: matmul precision, "highest" (full float32) or "default" (TF32 on recent GPUs).
      method: pruning method run by ``populations.run`` ("dense" trains the given masks).
      method_args: static method hyper-parameters as a tuple of (name, value) pairs.
      engine: how ``populations.run`` batches runs: "vmap" (vmap of the one-model program),
        "lanes" (``lanes``: population axis last, for small widths and dense training), or
        "auto" (chosen by method, widths and backend from measurements).
    """

    widths: base.Widths = (16, 16, 16)
    epochs: int = 50
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (15, 30)
    gamma: float = 0.1
    cosine_t_max: int = 50
    init: str = "torch"
    dist_widths: base.Widths | None = None
    eval_chunk: int = 2048
    precision: str = "highest"
    method: str = "dense"
    method_args: tuple = ()
    engine: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "widths", models.check_widths(self.widths))
        if self.dist_widths is not None:
            object.__setattr__(self, "dist_widths", models.check_widths(self.dist_widths))
            if any(d > D for d, D in zip(self.widths, self.dist_widths)):
                raise ValueError(f"widths {self.widths} exceed dist_widths {self.dist_widths}")
        for name in ("epochs", "batch_size", "eval_chunk", "cosine_t_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or float(value) != int(value):
                raise ValueError(f"Spec.{name} must be a whole number, got {value!r}")
            if int(value) < 1:
                raise ValueError(f"Spec.{name} must be >= 1, got {value}")
            object.__setattr__(self, name, int(value))
        ms = [float(m) for m in self.milestones]
        if any(m != int(m) or m < 0 for m in ms) or any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"Spec.milestones must be increasing whole epochs >= 0, got "
                             f"{tuple(self.milestones)}")
        for name, lo, hi in (("momentum", 0.0, 1.0), ("weight_decay", 0.0, 1.0),
                             ("gamma", 0.0, 1.0)):
            value = float(getattr(self, name))
            if not (lo <= value <= hi) or (name == "gamma" and value == 0.0) or (
                    name == "momentum" and value == 1.0):
                raise ValueError(f"Spec.{name} must be in "
                                 + ("(0, 1]" if name == "gamma" else
                                    "[0, 1)" if name == "momentum" else "[0, 1]")
                                 + f", got {getattr(self, name)!r}")
        if self.init not in models.INIT_KINDS + ("given",):
            raise ValueError(f"unknown init {self.init!r}; choose from "
                             f"{models.INIT_KINDS + ('given',)}")
        if self.precision not in ("highest", "high", "default"):
            raise ValueError(f"unknown precision {self.precision!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose from {ENGINES}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "method_args", tuple(self.method_args))

    @property
    def args(self) -> dict:
        """``method_args`` as a dict."""
        return dict(self.method_args)


@flax.struct.dataclass
class Variant:
    """Per-run numbers (a population stacks them on a leading axis P).

    Attributes:
      params: initial params when ``Spec.init == "given"``, else an empty dict.
      masks: bool masks mirroring params (the model's fixed masks, or where a pruner starts).
      lr: float32 base learning rate.
      schedule: int32 index into ``schedules.SCHEDULES``.
      seed: uint32 seed; init, data order and pruning randomness all derive from it alone.
      budget: int32 weight budget for pruners (ignored by dense training).
    """

    params: base.PyTree
    masks: base.Masks
    lr: jax.Array
    schedule: jax.Array
    seed: jax.Array
    budget: jax.Array


def run_keys(seed) -> dict[str, base.PRNGKey]:
    """Purpose-named keys of one run, derived from its seed alone."""
    init, data, prune = jax.random.split(jax.random.key(seed), 3)
    return {"init": init, "data": data, "prune": prune}


def initial_params(variant: Variant, spec: Spec, key: base.PRNGKey, kind: str | None = None):
    """The run's initial params: given, or drawn from its init key (optionally another kind)."""
    if spec.init == "given":
        return variant.params
    return models.init(key, spec.widths, kind=kind or spec.init, dist_widths=spec.dist_widths)


def optimizer(spec: Spec) -> optax.GradientTransformation:
    """Coupled weight decay then PyTorch-style momentum; the lr is applied by the caller.

    The learning rate is taken from the global epoch outside the optax state, so a method that
    skips optimizer steps (RigL) does not shift the schedule.
    """
    return optax.chain(optax.add_decayed_weights(spec.weight_decay),
                       optax.trace(decay=spec.momentum, nesterov=False))


def sgd_step(params, opt_state, masks, xb, yb, lr, spec: Spec):
    """One masked SGD step.

    Returns:
      (params, opt_state, loss, dense_grads): dense_grads are the gradients at the masked params
      before masking (RigL's grow score).
    """
    loss, grads = jax.value_and_grad(models.loss)(params, xb, yb, spec.precision)
    updates, opt_state = optimizer(spec).update(masking.apply(grads, masks), opt_state, params)
    params = jax.tree.map(lambda p, u: p - lr * u, params, updates)
    return masking.apply(params, masks), opt_state, loss, grads


def epoch_lr(lr, schedule, epoch, spec: Spec):
    """Learning rate during ``epoch`` (counted from the start of the schedule)."""
    return lr * schedules.lr_factor(schedule, epoch, cosine_t_max=spec.cosine_t_max,
                                    milestones=spec.milestones, gamma=spec.gamma)


def batch(data, data_key, epoch, step, spec: Spec):
    """The minibatch ``step`` of ``epoch`` for a run with data key ``data_key``."""
    x, y = data
    idx = datasets.batch_indices(data_key, epoch, step, x.shape[0], spec.batch_size)
    return x[idx], y[idx]


def steps_per_epoch(data, spec: Spec) -> int:
    """Steps per epoch (last partial batch dropped): 390 on the full spiral at batch 128."""
    return datasets.steps_per_epoch(data[0].shape[0], spec.batch_size)


def mask_momentum(opt_state, masks: base.Masks):
    """Multiplies the momentum (optax ``TraceState.trace``) by ``masks``; other state unchanged."""
    def fix(s):
        if isinstance(s, optax.TraceState):
            return s._replace(trace=masking.apply(s.trace, masks))
        return s
    return jax.tree.map(fix, opt_state, is_leaf=lambda s: isinstance(s, optax.TraceState))


def train_steps(params, opt_state, masks, data, data_key, lr, schedule, spec: Spec, *,
                start, num_steps: int, first_epoch=0, momentum_masked: bool = False):
    """THE step loop: masked SGD over global steps ``start .. start + num_steps - 1``.

    Every one-model trainer runs its steps here: plain training (``train_epochs``), the
    during-training pruners and hooks (GMP, RigL, user hooks, in segments between their pruning
    events) and LTH's rounds. A step is indexed by its global step t so a pruning loop can stop
    at any step: epoch = t // steps_per_epoch (data order: a fresh permutation per epoch), lr
    from epoch - ``first_epoch`` (LTH restarts its schedule every round). (The lanes engine
    keeps its own loop over its population-last layout, with the same recipe.)

    Args:
      params, opt_state, masks: one model's state (masked params).
      data: (x (n, 2), y (n,)).
      data_key: the run's data key.
      lr, schedule: the run's base lr (float32 scalar) and schedule index (int32 scalar).
      spec: static description.
      start: first global step (int, may be traced).
      num_steps: static number of steps (0 allowed).
      first_epoch: global epoch where the lr schedule starts (may be traced).
      momentum_masked: also multiply the momentum by the masks after every step (RigL).

    Returns:
      (params, opt_state, losses (num_steps,) float32).
    """
    spe = steps_per_epoch(data, spec)

    def body(carry, t):
        params, opt_state = carry
        epoch = t // spe
        lr_t = epoch_lr(lr, schedule, epoch - first_epoch, spec)
        xb, yb = batch(data, data_key, epoch, t % spe, spec)
        params, opt_state, loss, _ = sgd_step(params, opt_state, masks, xb, yb, lr_t, spec)
        if momentum_masked:
            opt_state = mask_momentum(opt_state, masks)
        return (params, opt_state), loss

    ts = jnp.asarray(start, jnp.int32) + jnp.arange(num_steps, dtype=jnp.int32)
    (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), ts)
    return params, opt_state, losses


def train_epochs(params, opt_state, masks, data, data_key, lr, schedule, spec: Spec, *,
                 first_epoch: int = 0, num_epochs: int | None = None):
    """Trains ``num_epochs`` epochs from global epoch ``first_epoch`` with fixed masks.

    ``train_steps`` over whole epochs. The lr schedule restarts at ``first_epoch``; data order
    uses the global epoch, so every epoch of a run sees a fresh permutation.

    Returns:
      (params, opt_state, last_epoch_mean_loss).
    """
    num_epochs = spec.epochs if num_epochs is None else num_epochs
    spe = steps_per_epoch(data, spec)
    params, opt_state, losses = train_steps(
        params, opt_state, masks, data, data_key, lr, schedule, spec,
        start=jnp.asarray(first_epoch, jnp.int32) * spe, num_steps=num_epochs * spe,
        first_epoch=first_epoch)
    return params, opt_state, jnp.mean(losses[-spe:])


def eval_chunks(data, spec: Spec):
    """``data`` cut into chunks of ``spec.eval_chunk`` points for evaluation (both engines).

    Returns:
      (xs (C, chunk, 2), ys (C, chunk), ws (C, chunk)): the last chunk is zero-padded and its
      padding has weight 0 in ``ws``.
    """
    x, y = data
    n = x.shape[0]
    chunk = min(spec.eval_chunk, n)
    num = math.ceil(n / chunk)
    pad = num * chunk - n
    xs = jnp.pad(x, ((0, pad), (0, 0))).reshape(num, chunk, 2)
    ys = jnp.pad(y, (0, pad)).reshape(num, chunk)
    ws = jnp.pad(jnp.ones(n, jnp.float32), (0, pad)).reshape(num, chunk)
    return xs, ys, ws


def evaluate(params, data, spec: Spec):
    """Accuracy and mean BCE on all of ``data``, walking it in chunks of ``spec.eval_chunk``.

    Returns:
      (accuracy, loss) float32 scalars. A diverged model (NaN logits) predicts class 0.
    """
    n = data[0].shape[0]
    xs, ys, ws = eval_chunks(data, spec)

    def body(carry, xyw):
        xc, yc, wc = xyw
        logits = models.apply(params, xc, spec.precision)
        correct = jnp.sum(wc * ((logits > 0) == (yc > 0.5)))
        loss = jnp.sum(wc * models.bce_with_logits(logits, yc))
        return (carry[0] + correct, carry[1] + loss), None

    (correct, loss), _ = jax.lax.scan(body, (jnp.float32(0), jnp.float32(0)), (xs, ys, ws))
    return correct / n, loss / n


# The per-run record's keys (``result``; every train function returns them, the lanes engine
# included): the one definition of what a run records.
RECORD_KEYS = ("params", "masks", "accuracy", "loss", "train_loss", "diverged", "nnz_weights",
               "nnz")


def result(params, masks, data, spec: Spec, train_loss=jnp.nan) -> dict:
    """The per-run record (``RECORD_KEYS``): final params and masks, accuracy, loss, counts."""
    accuracy, loss = evaluate(params, data, spec)
    return {"params": params, "masks": masks, "accuracy": accuracy, "loss": loss,
            "train_loss": train_loss, "diverged": ~jnp.isfinite(loss),
            "nnz_weights": masking.nnz_weights(params), "nnz": masking.nnz(params)}


def train_run(variant: Variant, data, *, spec: Spec) -> dict:
    """Trains one model with fixed masks (dense training when the masks are all True).

    Args:
      variant: this run's numbers (no P axis).
      data: (x (N, 2), y (N,)) shared by every run.
      spec: static description.

    Returns:
      ``result(...)``: params, masks, accuracy, loss, train_loss, diverged, nnz_weights, nnz.
    """
    keys = run_keys(variant.seed)
    masks = variant.masks
    params = masking.apply(initial_params(variant, spec, keys["init"]), masks)
    opt_state = optimizer(spec).init(params)
    params, _, train_loss = train_epochs(params, opt_state, masks, data, keys["data"],
                                         variant.lr, variant.schedule, spec)
    return result(params, masks, data, spec, train_loss)
