"""Populations: P runs of one static shape trained by ONE compiled program.

``run`` is the single jit boundary of spiralprune. It splits a population into chunks that fit
device memory (every chunk padded to the same size, so one compilation serves them all), shards
each chunk's P axis over all local devices with ``jax.sharding``, and keeps the next chunk
dispatched while the previous one is copied back to the host.

Two engines batch the runs of a chunk (``Spec.engine``; ``engine`` decides): "vmap" is
``jit(vmap(train_fn))`` of the one-model program and runs every method; "lanes"
(``spiralprune.lanes``) puts the population axis last and unrolls each unit's multiply-adds,
which is several times faster for the tiny compacted models of the search (dense training of
fixed masks only).

A run's result depends only on its own Variant and the Spec, never on its batch-mates, chunk
or device: its init, data order and pruning randomness derive from its own seed.

``precompile`` compiles ``run``'s program without training, and ``compiled_ahead`` uses it
to compile the next population's program on a second thread while one trains (for callers
that train populations of different programs one after another).
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from spiralprune import lanes, masking, models, schedules, training

_MAX_CHUNK = 1 << 16
_CPU_BUDGET = 2 << 30
# "auto" picks the lanes engine up to this many weights (models.num_weights): on the 2-core
# Xeon it beat vmap at every compacted shape of the search ((7,3,3) has 47 weights) and lost
# at width 8 (152 weights: ~75 against ~140 model-epochs per CPU-second at P = 256). See
# BENCHMARKS.md ("the two engines side by side").
LANES_AUTO_MAX_WEIGHTS = 64
# Runs per device per compiled call for the lanes engine on a CPU, where its (batch, P)
# activations should stay in cache: the best P at (3,2,2) and (3,3,3) on the 2-core Xeon
# (1,265 and 993 model-epochs/s with evaluation, against 1,161 and 954 at 256 and 1,148 and
# 843 at 1024; BENCHMARKS.md).
LANES_CPU_CHUNK = 512
# Lanes per independent group of a lanes step on a single CPU device (``lanes.train_epochs``):
# XLA:CPU then overlaps the groups' loops. (3,2,2), training steps, 2 epochs, on the 2-core
# Xeon: P = 512 in two groups of 256 1,703-1,739 model-epochs/s against 1,557-1,582 in one
# group; groups of 128 or 512 were slower than 256 (BENCHMARKS.md). Results are the same bits.
LANES_CPU_GROUP = 256
# Parameters per compiled call of the vmap engine on a CPU (``cpu_call_runs``): a population's
# params, optimizer state and activations should stay in cache. On the idle 2-core Xeon,
# calls of this size trained a population 1.03-1.21x faster than one call of all of it at
# widths 16-256 (1,024 width-16 runs down to 32 at width 256; ``benchmark.py:calls``,
# BENCHMARKS.md "the vmap engine's calls on a CPU"); under load the gap was larger (1.3x
# for 160 width-64 runs against calls of 32).
CPU_CALL_PARAMS = 200_000
CPU_CALL_MIN_RUNS = 8


def make_variants(*, masks, lr, schedule, seed, budget=None, params=None) -> training.Variant:
    """Builds host-side Variants with a leading axis P, validating before any compute.

    Args:
      masks: bool masks with a leading P axis (or without one, then shared by every run).
      lr: (P,) base learning rates (> 0).
      schedule: (P,) schedule names or int indices.
      seed: (P,) non-negative integer seeds.
      budget: (P,) int weight budgets, default -1 (unused).
      params: initial params with a leading P axis (or shared) for ``Spec.init == "given"``.

    Returns:
      a Variant of NumPy arrays.
    """
    lr = np.asarray(lr, np.float32).reshape(-1)
    p = lr.shape[0]
    if p < 1:
        raise ValueError("a population needs at least one run")
    if not np.all(np.isfinite(lr)) or np.any(lr <= 0):
        bad = lr[~np.isfinite(lr) | (lr <= 0)]
        raise ValueError(f"learning rates must be positive and finite, got {bad[:3].tolist()}")
    sched = np.asarray(schedule).reshape(-1)
    if sched.dtype.kind == "O":   # e.g. a pandas string column
        sched = sched.astype(str) if all(isinstance(s, str) for s in sched) else sched.astype(int)
    if sched.dtype.kind in "US":
        sched = np.array([schedules.index(str(s)) for s in sched], np.int32)
    sched = sched.astype(np.int32)
    if np.any((sched < 0) | (sched >= len(schedules.SCHEDULES))):
        raise ValueError(f"schedule indices must be in [0, {len(schedules.SCHEDULES)})")
    seed = np.asarray(seed).reshape(-1)
    if seed.dtype.kind not in "iu":
        raise ValueError(f"seeds must be integers, got {seed.dtype} values {seed[:3].tolist()}")
    if np.any(seed < 0) or np.any(seed >= 2 ** 32):
        bad = seed[(seed < 0) | (seed >= 2 ** 32)]
        raise ValueError(f"seeds must be non-negative and below 2^32 (uint32), got "
                         f"{bad[:3].tolist()}")
    seed = seed.astype(np.uint32)
    budget = np.full(p, -1, np.int32) if budget is None else np.asarray(budget, np.int32)

    def per_run(tree, dtype):
        ref_ndim = {"kernel": 2, "bias": 1}

        def leaf(path, a):
            a = np.asarray(a, dtype)
            nd = ref_ndim[path[-1].key]
            return np.broadcast_to(a, (p,) + a.shape) if a.ndim == nd else a
        return jax.tree_util.tree_map_with_path(leaf, tree)

    jax.tree_util.tree_map_with_path(
        lambda path, m: masking.check_binary(m, f"mask {jax.tree_util.keystr(path)}"), masks)
    masks = per_run(masks, bool)
    params = {} if params is None else per_run(params, np.float32)
    variants = training.Variant(params=params, masks=masks, lr=lr, schedule=sched,
                                seed=seed, budget=budget.reshape(-1))
    sizes = {np.shape(leaf)[0] for leaf in jax.tree.leaves(variants)}
    if sizes != {p}:
        raise ValueError(f"every per-run field needs leading size P={p}, got sizes {sorted(sizes)}")
    if params:
        masking.check(jax.tree.map(lambda a: a[0], params), jax.tree.map(lambda a: a[0], masks))
    return variants


def size(variants: training.Variant) -> int:
    """Population size P."""
    return int(np.shape(variants.lr)[0])


def bytes_per_run(spec: training.Spec) -> int:
    """A conservative estimate of device memory one run of a population needs while training."""
    n_params = models.num_params(spec.widths)
    units = sum(spec.widths) + 3
    state = 4 * n_params * 8   # init, params, grads, momentum, updates, masks, results, slack
    step = 4 * spec.batch_size * units * 6   # forward activations, backward, gathered batch
    evaluation = 4 * spec.eval_chunk * units * 3
    return 2 * (state + step + evaluation)


def cpu_call_runs(widths) -> int:
    """Runs per compiled call of the vmap engine on a CPU for models of ``widths``: the power
    of two nearest ``CPU_CALL_PARAMS`` / params, at least ``CPU_CALL_MIN_RUNS`` (32 at width
    64, 256 at width 16, 8 from width 128); unbounded inside ``uncapped_cpu_calls``."""
    if _UNCAPPED[0]:
        return _MAX_CHUNK
    n = models.num_params(tuple(int(w) for w in widths))
    return int(max(CPU_CALL_MIN_RUNS, 2 ** round(float(np.log2(CPU_CALL_PARAMS / n)))))


_UNCAPPED = [False]


@contextlib.contextmanager
def uncapped_cpu_calls():
    """Inside it, the CPU's vmap calls take as many runs as ``chunk_size`` or memory allow
    (the benchmark's baseline: ``benchmark.py:calls``)."""
    before, _UNCAPPED[0] = _UNCAPPED[0], True
    try:
        yield
    finally:
        _UNCAPPED[0] = before


def device_memory(device) -> int:
    """Bytes of memory to plan with on ``device`` (half the limit; 2 GiB on a CPU)."""
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = {}
    limit = stats.get("bytes_limit")
    return int(limit) // 2 if limit else _CPU_BUDGET


def auto_chunk(spec: training.Spec, num_runs: int, devices) -> int:
    """Runs per chunk: as many as fit in memory on every device, a multiple of the device count.

    The lanes engine on a CPU is capped at ``LANES_CPU_CHUNK`` runs per device (cache-bound).
    """
    per_device = max(1, device_memory(devices[0]) // bytes_per_run(spec))
    if engine(spec, devices) == "lanes" and devices[0].platform == "cpu":
        per_device = min(per_device, LANES_CPU_CHUNK)
    per_device = 1 << int(np.log2(min(per_device, _MAX_CHUNK)))
    need = -(-num_runs // len(devices))
    return min(per_device, 1 << int(np.ceil(np.log2(max(need, 1))))) * len(devices)


def _lanes_refusal(spec: training.Spec, train_fn: Callable | None) -> str | None:
    """Why the lanes engine cannot run ``spec`` (None if it can)."""
    if spec.method != "dense" or train_fn not in (None, training.train_run):
        return f"method {spec.method!r} (lanes trains fixed masks only)"
    if models.num_weights(spec.widths) > lanes.MAX_WEIGHTS:
        return f"widths {spec.widths} (lanes takes at most {lanes.MAX_WEIGHTS} weights)"
    return None


def engines_able(spec: training.Spec, train_fn: Callable | None = None) -> tuple[str, ...]:
    """The engines that can run ``spec`` (with ``train_fn``, default by ``spec.method``).

    vmap runs everything; lanes runs dense training of fixed masks (``training.train_run``)
    at up to ``lanes.MAX_WEIGHTS`` weights.
    """
    return ("vmap",) if _lanes_refusal(spec, train_fn) else ("vmap", "lanes")


def engine(spec: training.Spec, devices=None, train_fn: Callable | None = None) -> str:
    """The engine ``run`` uses: ``spec.engine`` if forced, else chosen by method and shape.

    "auto" picks lanes whenever it can run the spec at up to ``LANES_AUTO_MAX_WEIGHTS``
    weights, on every backend (on a GPU the same fusion keeps activations out of memory, which
    bounds the batched dots there: on one H200 lanes trained the compacted search shapes
    2.2-3.1x faster than vmap at 16,384 runs, and 1.3x at (3,3,3) with 2,048).

    Args:
      spec: static description of the population.
      devices: the devices it runs on (unused until a backend needs its own threshold).
      train_fn: an explicit single-run function (only ``training.train_run`` runs on lanes).

    Returns:
      "vmap" or "lanes".

    Raises:
      ValueError: a forced engine that cannot run the method or shape (one line, naming the
        engines that can).
    """
    del devices
    refusal = _lanes_refusal(spec, train_fn)
    if spec.engine == "lanes" and refusal:
        raise ValueError(f"engine 'lanes' cannot run {refusal}; engines that can: vmap")
    if spec.engine != "auto":
        return spec.engine
    small = models.num_weights(spec.widths) <= LANES_AUTO_MAX_WEIGHTS
    return "lanes" if refusal is None and small else "vmap"


@functools.lru_cache(maxsize=8)
def _known_options(options: tuple, device) -> dict:
    """``options`` (sorted (name, value) pairs) if XLA compiles with them for ``device``'s
    backend (a tiny program placed on that device), else {}."""
    try:
        jax.jit(lambda a: a + 1, compiler_options=dict(options)).lower(
            jax.device_put(np.zeros(2, np.float32), device)).compile()
    except Exception:  # noqa: BLE001 - an XLA without these options: compile without them
        return {}
    return dict(options)


def compiler_options(kind: str, devices) -> dict:
    """XLA compile options for the ``kind`` engine's program on ``devices`` ({} for none).

    The lanes engine on a CPU gets ``lanes.CPU_COMPILER_OPTIONS`` where the installed XLA
    knows them. They change how XLA sums a step's batch reductions, so lanes results differ
    from before at float32 rounding (and from vmap's, as they already did).
    """
    if kind == "lanes" and devices[0].platform == "cpu":
        return _known_options(tuple(sorted(lanes.CPU_COMPILER_OPTIONS.items())), devices[0])
    return {}


@functools.lru_cache(maxsize=64)
def _compiled(train_fn: Callable, spec: training.Spec, devices: tuple, kind: str):
    if kind == "lanes":
        # Groups slice the lanes axis, which must not cut across devices' shards: one device.
        single_cpu = len(devices) == 1 and devices[0].platform == "cpu"
        fn = functools.partial(lanes.train_population, spec=spec,
                               group_size=LANES_CPU_GROUP if single_cpu else None)
    else:
        fn = jax.vmap(functools.partial(train_fn, spec=spec), in_axes=(0, None))
    mesh = jax.sharding.Mesh(np.asarray(devices), ("p",))
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("p"))
    repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    options = compiler_options(kind, devices)
    extra = {"compiler_options": options} if options else {}
    return jax.jit(fn, in_shardings=(shard, repl), out_shardings=shard, **extra), shard, repl


def train_fn_for(spec: training.Spec) -> Callable:
    """The single-run training function of ``spec.method``."""
    if spec.method == "dense":
        return training.train_run
    from spiralprune.pruning import registry  # pruners build on training; import lazily

    return registry.train_fn(spec.method)


def run(variants: training.Variant, data, *, spec: training.Spec, train_fn: Callable | None = None,
        chunk_size: int | None = None, devices=None,
        progress: Callable[[int, int], None] | None = None) -> dict:
    """Trains a population, chunked to fit memory and sharded over devices.

    Args:
      variants: per-run numbers with leading axis P (``make_variants``).
      data: (x (N, 2), y (N,)) shared by every run.
      spec: static description of every run.
      train_fn: single-run function ``(variant, data, *, spec) -> dict``; default by spec.method
        (the lanes engine runs only the default dense one).
      chunk_size: runs per compiled call (default: as many as fit; rounded to the device count).
        On a CPU the vmap engine takes at most ``cpu_call_runs`` runs per call per device
        (cache-bound; a run's numbers then depend on its call's size only to float32
        rounding).
      devices: devices to shard over (default: all local devices).
      progress: called with (runs done, P) after every chunk.

    Returns:
      the train_fn's result dict with NumPy leaves and leading axis P.
    """
    p = size(variants)
    fn, shard, repl, chunk = _program(variants, data, spec, train_fn, chunk_size, devices)
    data = jax.device_put(tuple(jnp.asarray(a, jnp.float32) for a in data), repl)
    pending, outputs = collections.deque(), []

    def collect():
        start, stop, out = pending.popleft()
        outputs.append(jax.tree.map(lambda a: np.asarray(a)[: stop - start], out))
        if progress:
            progress(stop, p)

    for start in range(0, p, chunk):
        stop = min(start + chunk, p)
        part = jax.tree.map(lambda a, s=start, e=stop: _pad(np.asarray(a)[s:e], chunk), variants)
        pending.append((start, stop, fn(jax.device_put(part, shard), data)))
        if len(pending) > 1:
            collect()
    while pending:
        collect()
    return jax.tree.map(lambda *xs: np.concatenate(xs), *outputs)


def _program(variants, data, spec, train_fn, chunk_size, devices):
    """``run``'s checks, then its jitted program, shardings and chunk size for ``variants``."""
    check_data(data)
    check_steps(data, spec)
    devices = tuple(devices or jax.local_devices())
    kind = engine(spec, devices, train_fn)
    train_fn = train_fn or train_fn_for(spec)
    p = size(variants)
    if spec.init == "given" and not variants.params:
        raise ValueError("Spec.init is 'given' but the variants carry no params")
    check_shapes(variants, spec)
    limit = chunk_size or auto_chunk(spec, p, devices)
    if kind == "vmap" and devices[0].platform == "cpu":
        limit = min(limit, cpu_call_runs(spec.widths) * len(devices))
    chunk = balanced_chunk(p, limit, len(devices))
    fn, shard, repl = _compiled(train_fn, spec, devices, kind)
    return fn, shard, repl, chunk


def precompile(variants: training.Variant, data, *, spec: training.Spec,
               train_fn: Callable | None = None, chunk_size: int | None = None,
               devices=None) -> None:
    """Compiles the program ``run`` would train ``variants`` with (same arguments); trains nothing.

    A later ``run`` with the same arguments finds the program compiled. Safe to call from
    another thread while a population trains: XLA compiles on one core, and a small
    population leaves the other cores partly idle (the pruning binary compiles its next
    group so; BENCHMARKS.md). Raises what ``run`` would raise for bad input.
    """
    fn, shard, repl, chunk = _program(variants, data, spec, train_fn, chunk_size, devices)
    part = jax.tree.map(lambda a: jax.ShapeDtypeStruct((chunk,) + np.shape(a)[1:],
                                                       np.asarray(a).dtype, sharding=shard),
                        variants)
    x, y = data
    fn.lower(part, (jax.ShapeDtypeStruct(np.shape(x), jnp.float32, sharding=repl),
                    jax.ShapeDtypeStruct(np.shape(y), jnp.float32, sharding=repl))).compile()


def compiled_ahead(items: Sequence, compile_next: Callable) -> Iterator:
    """Yields ``items`` in order while a second thread runs ``compile_next`` on the next one.

    For populations of different programs trained one after another (the pruning binary's
    groups, phase one's bucket shapes): ``compile_next(item)`` (e.g. a ``precompile``) runs
    while the caller trains the item before it, and the caller gets an item only once its
    compilation is over, so no program is compiled twice at once. Best effort: an error in
    ``compile_next`` is dropped here, and the caller's own ``run`` raises it in turn.
    """
    def quietly(item):
        try:
            compile_next(item)
        except Exception:  # noqa: BLE001 - the caller's run reports it
            pass

    with concurrent.futures.ThreadPoolExecutor(1) as compiler:
        ahead = None
        for k, item in enumerate(items):
            if ahead is not None:
                ahead.result()
            ahead = compiler.submit(quietly, items[k + 1]) if k + 1 < len(items) else None
            yield item


def balanced_chunk(num_runs: int, max_chunk: int, num_devices: int = 1,
                   granularity: int = 32) -> int:
    """Runs per compiled call: equal chunks of at most ``max_chunk``, so padding is small.

    558 runs with room for 512 become two chunks of 288 (2% padding) instead of 512 + 46
    padded to 512 (45%). Sizes are rounded up to ``granularity`` runs per device, so
    populations whose sizes differ a little share one compiled shape.

    Returns:
      a multiple of ``num_devices``, at most ``max_chunk`` rounded up to the device count.
    """
    cap = -(-max(int(max_chunk), 1) // num_devices) * num_devices
    pieces = -(-num_runs // cap)
    step = granularity * num_devices
    per_piece = -(-num_runs // pieces)
    return min(cap, -(-per_piece // step) * step)


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    """Pads the leading axis to ``n`` by repeating the first row (results are dropped)."""
    if a.shape[0] == n:
        return a
    return np.concatenate([a, np.repeat(a[:1], n - a.shape[0], axis=0)])


def check_data(data) -> None:
    """One-line ValueError unless ``data`` is (x (N, 2) finite, y (N,) labels 0/1), N >= 1."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError("data must be a pair (x (N, 2), y (N,))")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim != 2 or x.shape[1] != 2 or x.dtype.kind not in "biuf":
        raise ValueError(f"data x must be numeric of shape (N, 2), got {x.dtype} {x.shape}")
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise ValueError(f"data y must be numeric of shape (N,), got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"data x and y have unequal lengths {len(x)} and {len(y)}")
    if not len(y):
        raise ValueError("data is empty (N = 0)")
    if not np.all(np.isfinite(x)):
        raise ValueError("data x has non-finite values")
    bad = np.unique(y[(y != 0) & (y != 1)])
    if len(bad):
        raise ValueError(f"labels must be 0 or 1, got {bad[:5].tolist()}")


def check_steps(data, spec: training.Spec) -> None:
    """One-line ValueError if an epoch of ``data`` has no step at ``spec.batch_size`` (the last
    partial batch is dropped, so such runs would train nothing and report their init)."""
    n = len(data[1])
    if n < spec.batch_size:
        raise ValueError(f"batch_size {spec.batch_size} is larger than the {n} training "
                         "points: an epoch would have no step (lower batch_size)")


def check_shapes(variants: training.Variant, spec: training.Spec) -> None:
    """One-line ValueError if the variants' masks/params do not fit spec.widths."""
    masks0 = jax.tree.map(lambda a: np.zeros(np.shape(a)[1:], bool), variants.masks)
    like = jax.eval_shape(lambda: models.init(jax.random.key(0), spec.widths))
    masking.check(like, masks0)
    if variants.params:
        masking.check(like, jax.tree.map(lambda a: np.zeros(np.shape(a)[1:]), variants.params))


@dataclasses.dataclass
class Progress:
    """A progress printer: runs done / total, runs per second and ETA, at most every few s.

    Called with ``work=(done, total)`` as well (``runner.run`` does, its runs weighted by
    their estimated cost), the ETA is the remaining share of that work at the rate so far, not
    of the runs: a grid whose first runs are its costliest (LTH at width 256) no longer
    promises hours it will not take."""

    label: str = "train"
    every_s: float = 5.0
    printer: Callable[[str], None] = print
    weighted: bool = True   # ``runner.run`` passes ``work`` to it
    _t0: float = dataclasses.field(default_factory=time.perf_counter)
    _last: float = 0.0

    def __call__(self, done: int, total: int, work: tuple | None = None) -> None:
        now = time.perf_counter()
        if done < total and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = now - self._t0
        done_w, total_w = work if work else (done, total)
        rate = done_w / max(elapsed, 1e-9)
        eta = (total_w - done_w) / rate if rate > 0 else float("inf")
        self.printer(progress_line(self.label, done, total, elapsed, eta))


def progress_line(label: str, done: int, total: int, elapsed: float, eta: float) -> str:
    """The one progress line of every long run: ``[label] done/total runs  rate runs/s  ETA``
    (a stage's ``Progress`` and the study's ``plan.StudyProgress`` both print it)."""
    rate = done / max(elapsed, 1e-9)
    return f"[{label}] {done:,}/{total:,} runs  {rate:,.1f} runs/s  ETA {format_seconds(eta)}"


def format_seconds(seconds: float) -> str:
    """A duration for people: "42 s", "4 min 12 s", "3 h 05 min", "11.6 days" ("?" if unknown).

    Rounded to the second below an hour, to the minute below a day, to a tenth of a day above.
    """
    if not np.isfinite(seconds):
        return "?"
    seconds = max(float(seconds), 0.0)
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    m, s = divmod(int(round(seconds)), 60)
    if m == 0:
        return f"{s} s"
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h} h {m:02d} min" if h < 24 else "1.0 days"


def check_memory(spec: training.Spec, devices=None, what: str = "a run") -> None:
    """One-line ValueError if one run of ``spec`` cannot fit the memory planned per device.

    Args:
      spec: the runs' static description (``bytes_per_run`` estimates their memory).
      devices: the devices to train on (default: all local devices).
      what: how the message names the run, e.g. "grid 'random', width 300".
    """
    device = tuple(devices or jax.local_devices())[0]
    need, have = bytes_per_run(spec), device_memory(device)
    if need > have:
        raise ValueError(f"{what} (widths {tuple(spec.widths)}) needs about {need:,} bytes of "
                         f"device memory; {device.device_kind} has {have:,} to plan with")
