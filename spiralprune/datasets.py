"""The Cubist Spiral (SPEC section 1), the classic spiral, picture grids and per-run data order.

``cubist_spiral()`` reproduces the study's data set point for point: an octagonal two-arm spiral
with 24,991 points per class (49,982 in all), standardised per coordinate with the unbiased
standard deviation. There is no test split: the study measures accuracy on every point.

Data order: every run shuffles the data every epoch from its own key. Materialising one
permutation of 49,982 indices per run and epoch costs ~26 GB per epoch at P = 131,072, so a
run's batch indices are computed on the fly by a keyed Feistel bijection of [0, N) with cycle
walking (``batch_indices``): O(batch) work per step and no per-run state beyond the key.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

NUM_POINTS = 49_982
GRID_EXTENT = 2.25
_FEISTEL_ROUNDS = 4


def _arm_points(vertices: np.ndarray, total: int = 25_000) -> np.ndarray:
    """Points along a polyline: segment i gets int(len_i / length * total) points, ends included."""
    seg = np.linalg.norm(vertices[1:] - vertices[:-1], axis=1)
    length = seg.sum()
    out = []
    for i in range(len(seg)):
        n = int(seg[i] / length * total)
        # Matches the study's code: float32 linspace, point = t * v_i + (1 - t) * v_{i+1}.
        t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
        out.append(t * vertices[i] + (1 - t) * vertices[i + 1])
    return np.concatenate(out)


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / x.std(0, ddof=1)


@functools.lru_cache(maxsize=1)
def _cubist_spiral() -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(17)
    theta = 1.4 * np.pi + k * np.pi / 4
    radius = 10 * theta + np.pi
    u = np.stack([np.cos(theta), np.sin(theta)], 1)
    centre = radius[:, None] * u
    arm_a, arm_b = centre + 15 * u, centre - 15 * u
    shift = np.minimum(arm_a.min(0), arm_b.min(0))
    a, b = _arm_points(arm_a - shift), _arm_points(arm_b - shift)
    x = _standardise(np.concatenate([a, b])).astype(np.float32)
    y = np.concatenate([np.zeros(len(a)), np.ones(len(b))]).astype(np.float32)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def cubist_spiral() -> tuple[np.ndarray, np.ndarray]:
    """The study's Cubist Spiral.

    Returns:
      x: float32 (49982, 2), standardised inputs.
      y: float32 (49982,), 0.0 for arm A and 1.0 for arm B.
    """
    x, y = _cubist_spiral()
    return x.copy(), y.copy()


def classic_spiral(n_per_class: int = 24_991, turns: float = 1.5, noise: float = 0.0,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The smooth two-arm spiral (for comparison plots), standardised like the Cubist Spiral.

    Args:
      n_per_class: points per arm.
      turns: number of turns of each arm.
      noise: standard deviation of Gaussian noise added before standardising.
      seed: NumPy seed for the noise.

    Returns:
      x: float32 (2 * n_per_class, 2); y: float32 (2 * n_per_class,).
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    t = np.linspace(0.25, 2 * np.pi * turns, n_per_class)
    arm = np.stack([t * np.cos(t), t * np.sin(t)], 1)
    x = np.concatenate([arm, -arm])
    if noise:
        x = x + np.random.default_rng(seed).normal(0, noise, x.shape)
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)])
    return _standardise(x).astype(np.float32), y.astype(np.float32)


def grid(n: int = 512, extent: float = GRID_EXTENT) -> np.ndarray:
    """The n x n picture grid over [-extent, extent]^2, row-major with y descending.

    Returns:
      float32 (n * n, 2): point (row r, column c) is at index r * n + c, so a reshape to (n, n)
      gives an image with the top row at y = +extent.
    """
    if n < 2:
        raise ValueError(f"grid needs n >= 2, got {n}")
    xs = np.linspace(-extent, extent, n, dtype=np.float32)
    gx, gy = np.meshgrid(xs, xs[::-1])
    return np.stack([gx.ravel(), gy.ravel()], 1)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Steps in one epoch with the last partial batch dropped (390 for the study)."""
    return n // batch_size


def _round(x: jax.Array, round_key: jax.Array, half_bits: int) -> jax.Array:
    h = (x + round_key) * jnp.uint32(0x45D9F3B)
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x45D9F3B)
    h = h ^ (h >> 13)
    return h & jnp.uint32((1 << half_bits) - 1)


def _feistel(v: jax.Array, round_keys: jax.Array, half_bits: int) -> jax.Array:
    mask = jnp.uint32((1 << half_bits) - 1)
    left, right = v >> half_bits, v & mask
    for r in range(_FEISTEL_ROUNDS):
        left, right = right, left ^ _round(right, round_keys[r], half_bits)
    return (left << half_bits) | right


def permute(key: jax.Array, index: jax.Array, n: int) -> jax.Array:
    """A keyed bijection of [0, n) evaluated at ``index`` (Feistel network + cycle walking).

    Args:
      key: a typed PRNG key; each key gives a different permutation.
      index: int array of positions in [0, n).
      n: static size of the permuted range.

    Returns:
      int32 array like ``index``: the permuted positions, all distinct for distinct inputs.
    """
    half_bits = max(1, math.ceil(math.log2(max(n, 2)) / 2))
    round_keys = jax.random.bits(key, (_FEISTEL_ROUNDS,), jnp.uint32)
    v = _feistel(index.astype(jnp.uint32), round_keys, half_bits)
    # Cycle walking: re-apply until inside [0, n); terminates because the map is a bijection
    # on [0, 4^half_bits), and takes ~1.3 rounds on average for n = 49,982.
    v = jax.lax.while_loop(lambda v: jnp.any(v >= n),
                           lambda v: jnp.where(v >= n, _feistel(v, round_keys, half_bits), v), v)
    return v.astype(jnp.int32)


def batch_indices(data_key: jax.Array, epoch: jax.Array, step: jax.Array, n: int,
                  batch_size: int) -> jax.Array:
    """Indices of batch ``step`` of epoch ``epoch`` for a run with data key ``data_key``.

    Each epoch is a fresh permutation of [0, n), cut into ``n // batch_size`` batches (drop last).

    Returns:
      int32 (batch_size,).
    """
    positions = step * batch_size + jnp.arange(batch_size)
    return permute(jax.random.fold_in(data_key, epoch), positions, n)
