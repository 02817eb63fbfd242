"""Grids of runs on the host: products of axes, deterministic per-run seeds, task splits.

A run's seed is a hash of the fields that identify it (never of its position in a batch), so
its result depends only on its own configuration and the experiment's base seed. Chunks of a
grid are the unit of recording and of splitting work across the tasks of a cluster job array.
"""

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

_MASK64 = (1 << 64) - 1


def product(axes: Mapping[str, Sequence]) -> dict[str, np.ndarray]:
    """The Cartesian product of named axes as columns (the last axis varies fastest).

    Args:
      axes: name -> values; every axis needs at least one value.

    Returns:
      name -> 1-D array of length prod(len(values)).
    """
    for name, values in axes.items():
        if len(values) == 0:
            raise ValueError(f"grid axis {name!r} is empty")
    rows = list(itertools.product(*axes.values()))
    return {name: np.asarray([r[i] for r in rows]) for i, name in enumerate(axes)}


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(_MASK64)
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(_MASK64)
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(_MASK64)
    return x ^ (x >> np.uint64(31))


def _field_hash(values) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind == "O":   # e.g. a pandas string column
        a = a.astype(str)
    if a.dtype.kind in "US":
        table = {s: int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "little")
                 for s in np.unique(a).tolist()}
        return np.array([table[s] for s in a.reshape(-1).tolist()], np.uint64).reshape(a.shape)
    if a.dtype.kind == "f":
        return a.astype(np.float64).view(np.uint64)
    return a.astype(np.int64).view(np.uint64)


def run_seeds(base_seed: int, *fields: Iterable) -> np.ndarray:
    """Deterministic uint32 seeds from a base seed and per-run identifying fields.

    Args:
      base_seed: the experiment's seed (appears once, in the config).
      *fields: 1-D arrays (or scalars) of equal length: ints, floats or strings.

    Returns:
      (R,) uint32 seeds in [0, 2^31) (non-negative as int32 too).
    """
    arrays = [np.atleast_1d(_field_hash(f)) for f in fields]
    n = max((len(a) for a in arrays), default=1)
    with np.errstate(over="ignore"):
        h = _splitmix64(np.full(n, np.uint64(base_seed & _MASK64)))
        for a in arrays:
            h = _splitmix64(h ^ np.broadcast_to(a, (n,)))
    return (h >> np.uint64(33)).astype(np.uint32)


def chunks(total: int, chunk_size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges covering range(total) in pieces of chunk_size."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(s, min(s + chunk_size, total)) for s in range(0, total, chunk_size)]


def near_equal_chunks(total: int, max_size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of near-equal size (at most max_size) covering range(total)."""
    if total <= 0:
        return []
    if max_size < 1:
        raise ValueError(f"chunk size must be >= 1, got {max_size}")
    pieces = -(-total // max_size)
    return chunks(total, -(-total // pieces))


def task_share(items: Sequence, task_index: int, num_tasks: int) -> list:
    """The items (e.g. chunks) that task ``task_index`` of ``num_tasks`` runs (round robin)."""
    check_task(task_index, num_tasks)
    return [item for i, item in enumerate(items) if i % num_tasks == task_index]


def check_task(task_index: int, num_tasks: int) -> None:
    """One-line ValueError unless 0 <= task_index < num_tasks."""
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index must be in [0, num_tasks); got task_index={task_index}, "
                         f"num_tasks={num_tasks}")
