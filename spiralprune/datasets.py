"""The Cubist Spiral (docs/data.md), the classic spiral, picture grids and per-run data order.

``cubist_spiral()`` reproduces the study's data set point for point: an octagonal two-arm spiral
with 24,991 points per class (49,982 in all), standardised per coordinate with the unbiased
standard deviation. There is no test split: the study measures accuracy on every point.

Data order: every run shuffles the data every epoch from its own key. Materialising one
permutation of 49,982 indices per run and epoch costs ~26 GB per epoch at P = 131,072, so a
run's batch indices are computed on the fly by a keyed Feistel bijection of [0, N) on the mixed
radix 134 x 373 = 49,982 (``batch_indices``): O(batch) work per step, no per-run state beyond
the key, and no data-dependent loop (which would cost a device-host round trip per step on GPUs).
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

NUM_POINTS = 49_982
GRID_EXTENT = 2.25
_FEISTEL_ROUNDS = 6


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


def _hash(x: jax.Array, round_key: jax.Array) -> jax.Array:
    h = (x + round_key) * jnp.uint32(0x45D9F3B)
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x45D9F3B)
    return h ^ (h >> 13)


@functools.lru_cache(maxsize=64)
def _domain(n: int) -> tuple[int, int]:
    """Factors (a, b), a * b >= n, as balanced as possible; a * b == n whenever n has a
    factorisation with b <= 16 a (49,982 = 134 x 373), so no cycle walking is needed."""
    root = math.isqrt(n)
    for a in range(root, 0, -1):
        if n % a == 0:
            if n // a <= 16 * a:
                return a, n // a
            break
    a = max(root, 1)
    return a, -(-n // a)


def _feistel(v: jax.Array, round_keys, a: int, b: int) -> jax.Array:
    # A Feistel network on Z_a x Z_b with modular addition: each round maps (L, R) in
    # Z_a x Z_b to (R, (L + F(R)) mod a) in Z_b x Z_a, a bijection; an even number of rounds
    # returns to Z_a x Z_b. Domains that are not powers of two need no cycle walking this way.
    # L < m and F(R) mod m < m, so the outer "mod m" is one conditional subtraction; with
    # lax.rem on unsigned ints this is the cheapest form of the same map on a CPU (measured).
    left, right = v // jnp.uint32(b), v % jnp.uint32(b)
    mods = (a, b)
    for r in range(_FEISTEL_ROUNDS):
        m = jnp.uint32(mods[r % 2])
        s = left + jax.lax.rem(_hash(right, round_keys[r]), m)
        left, right = right, jnp.where(s >= m, s - m, s)
    return left * jnp.uint32(b) + right


def round_keys(key: jax.Array) -> jax.Array:
    """The Feistel round keys of the permutation ``key`` names: uint32 (rounds,)."""
    return jax.random.bits(key, (_FEISTEL_ROUNDS,), jnp.uint32)


def permute(key: jax.Array, index: jax.Array, n: int) -> jax.Array:
    """A keyed bijection of [0, n) evaluated at ``index`` (a mixed-radix Feistel network).

    Args:
      key: a typed PRNG key; each key gives a different permutation.
      index: int array of positions in [0, n).
      n: static size of the permuted range.

    Returns:
      int32 array like ``index``: the permuted positions, all distinct for distinct inputs.
    """
    return permute_with_round_keys(round_keys(key), index, n)


def permute_with_round_keys(keys: jax.Array, index: jax.Array, n: int) -> jax.Array:
    """``permute`` from precomputed round keys, which may carry their own batch axes.

    Args:
      keys: uint32 (rounds, ...): ``round_keys`` of one permutation, or of many stacked on
        trailing axes that broadcast against ``index`` (e.g. (rounds, 1, P) against (B, 1)
        gives each of P runs its own permutation, evaluated at B positions, as (B, P)).
      index: int array of positions in [0, n).
      n: static size of the permuted range.

    Returns:
      int32 array of the broadcast shape of ``index`` and ``keys[0]``.
    """
    a, b = _domain(n)
    index = index.astype(jnp.uint32)
    v = _feistel(index, keys, a, b)
    if a * b > n:
        # Cycle walking for sizes without a balanced factorisation (e.g. primes): re-apply the
        # bijection of [0, a*b) until the value lands in [0, n); a*b - n < a keeps it rare.
        v = jax.lax.while_loop(lambda v: jnp.any(v >= n),
                               lambda v: jnp.where(v >= n, _feistel(v, keys, a, b), v), v)
    return v.astype(jnp.int32)


def epoch_round_keys(data_key: jax.Array, epoch: jax.Array) -> jax.Array:
    """Round keys of epoch ``epoch``'s permutation for a run with data key ``data_key``."""
    return round_keys(jax.random.fold_in(data_key, epoch))


def batch_indices(data_key: jax.Array, epoch: jax.Array, step: jax.Array, n: int,
                  batch_size: int) -> jax.Array:
    """Indices of batch ``step`` of epoch ``epoch`` for a run with data key ``data_key``.

    Each epoch is a fresh permutation of [0, n), cut into ``n // batch_size`` batches (drop last).

    Returns:
      int32 (batch_size,).
    """
    positions = step * batch_size + jnp.arange(batch_size)
    return permute_with_round_keys(epoch_round_keys(data_key, epoch), positions, n)
