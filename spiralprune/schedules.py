"""Learning-rate schedules of the study, stepped once per epoch, as pure functions of the epoch.

The schedule kind is an int index so that one population mixes kinds: under ``vmap`` the three
factors are computed and one is selected (they are scalars, so this is free).
"""

import jax.numpy as jnp

SCHEDULES = ("constant", "cosine", "step")


def index(name: str) -> int:
    """The int index of a schedule name (a one-line ValueError for unknown names)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {name!r}; choose from {SCHEDULES}")
    return SCHEDULES.index(name)


def lr_factor(kind, epoch, *, cosine_t_max: int = 50, milestones=(15, 30), gamma: float = 0.1):
    """Multiplier of the base learning rate during ``epoch`` (0-based).

    Args:
      kind: int index into SCHEDULES (traced allowed).
      epoch: epoch index (traced allowed).
      cosine_t_max: CosineAnnealingLR's T_max (eta_min = 0): (1 + cos(pi e / T_max)) / 2.
      milestones: MultiStepLR milestones; the factor is gamma ** (number of milestones <= epoch).
      gamma: MultiStepLR decay.

    Returns:
      float32 scalar.
    """
    epoch = jnp.asarray(epoch, jnp.float32)
    constant = jnp.float32(1.0)
    cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * epoch / cosine_t_max))
    passed = sum((epoch >= m).astype(jnp.float32) for m in milestones) if milestones else 0.0
    step = jnp.float32(gamma) ** passed
    return jnp.stack([constant, cosine, jnp.asarray(step, jnp.float32)])[kind]
