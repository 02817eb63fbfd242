"""One chunk runner for every recorded grid: the search's stages and the pruning groups.

A grid is cut into chunks, each a ``[start, stop)`` range of one stage's runs, trained as one
population and written atomically as one shard (``recording.Store``). This module owns what the
search and the pruning grids share: which of a task's chunks are still to train (and that the
shards already there belong to the grid), claims (writers sharing a workdir compute each chunk
once), one progress count over every chunk, the next program compiling while one trains, and
several stages trained side by side where a device has cores to spare. What a chunk trains is
the caller's ``compute``.
"""

import collections
import concurrent.futures
import dataclasses
import threading
from typing import Callable, Sequence

from spiralprune import grids, populations, recording


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Runs ``[start, stop)`` of ``stage``, recorded as that stage's shard ``index``."""

    stage: str
    index: int
    start: int
    stop: int

    @property
    def runs(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"{self.index:06d}"


def cut(stage: str, ranges: Sequence[tuple[int, int]]) -> list[Chunk]:
    """The chunks of one stage from its ``[start, stop)`` ranges, in order."""
    return [Chunk(stage, i, int(a), int(b)) for i, (a, b) in enumerate(ranges)]


def pending(store: recording.Store, chunks: Sequence[Chunk], task_index: int = 0,
            num_tasks: int = 1) -> tuple[list[Chunk], list[Chunk]]:
    """This task's chunks (round robin over ``chunks``) and those of them not recorded yet.

    Every shard already in a stage must be one of that stage's chunks with its number of
    runs: a shard copied in under another name, or recorded under another chunking, is
    refused in one line (ValueError) before anything trains, so a table never holds a chunk
    twice or a stage more chunks than its grid.

    Returns:
      (this task's chunks, this task's chunks still to train), both in ``chunks``' order.
    """
    mine = grids.task_share(list(chunks), int(task_index), int(num_tasks))
    by_stage: dict[str, dict[str, Chunk]] = {}
    for c in chunks:
        by_stage.setdefault(c.stage, {})[c.name] = c
    done = {}
    for stage, named in by_stage.items():
        done[stage] = store.recorded(stage)
        for name, rows in sorted(done[stage].items()):
            chunk = named.get(name)
            if chunk is None or rows != chunk.runs:
                where = store.workdir / "shards" / stage / f"{name}.npz"
                want = (f"the grid has {len(named)} chunks" if chunk is None
                        else f"chunk {name} has {chunk.runs} runs, the shard {rows}")
                raise ValueError(f"shard {where} is not a chunk of this grid's stage {stage!r} "
                                 f"({want}; copied in, or recorded under another chunking?); "
                                 "move it out of the workdir")
        if not store.read_only:   # claims a killed writer left on chunks it had finished
            recording.drop_stale_claims(store, stage)
    return mine, [c for c in mine if c.name not in done[c.stage]]


def run(store: recording.Store, todo: Sequence[Chunk], compute: Callable, *,
        progress: Callable | None = None, workers: int = 1, precompile: Callable | None = None,
        cost: Callable | None = None) -> int:
    """Trains and records every chunk of ``todo`` (``pending``'s second list).

    Args:
      store: a writable Store.
      todo: the chunks to train.
      compute: ``(chunk, tick) -> None``: trains ``chunk`` and ``store.write``s it as
        ``chunk.stage``/``chunk.index``; ``tick(k)`` may say that ``k`` of its runs have
        finished so far.
      progress: optional ``callback(runs done, runs to do)`` over all of ``todo``.
      workers: chunks trained side by side (threads). Each worker trains a stage's chunks one
        after another, starting the costliest stage not started yet when its own is done;
        once every stage has started, a free worker takes the next chunk of the stage with
        the most work left, so one long stage (LTH at a large width) does not end a grid on
        one worker. 1 trains the stages one after another in ``todo``'s order, the next
        one's program compiling (``precompile``) while one trains.
      precompile: optional ``stage -> None`` compiling a stage's program ahead.
      cost: optional ``stage -> float`` ordering stages side by side (default: their runs);
        given, a ``progress`` with ``weighted`` set also gets ``work=(done, total)`` in it, so
        its ETA weighs runs by their stage's cost.

    Returns:
      the runs this process trained (chunks claimed by another writer are not counted).
    """
    stages = list(dict.fromkeys(c.stage for c in todo))
    of_stage = {s: [c for c in todo if c.stage == s] for s in stages}
    total = sum(c.runs for c in todo)
    lock, state = threading.Lock(), {"finished": 0, "running": {}, "work": 0.0}
    weight = cost or (lambda s: sum(c.runs for c in of_stage[s]))
    # a run's share of the work: its stage's cost over the stage's runs to train here
    per_run = {s: weight(s) / max(1, sum(c.runs for c in of_stage[s])) for s in stages}
    total_work = sum(per_run[c.stage] * c.runs for c in todo)
    weighted = cost is not None and getattr(progress, "weighted", False)

    def report():
        if progress:
            done = state["finished"] + sum(state["running"].values())
            if weighted:
                work = state["work"] + sum(per_run[c.stage] * k
                                           for c, k in state["running"].items())
                progress(done, total, work=(work, total_work))
            else:
                progress(done, total)

    def one(chunk):
        def tick(k):
            with lock:
                state["running"][chunk] = int(k)
                report()
        compute(chunk, tick)
        with lock:
            state["running"].pop(chunk, None)
            state["finished"] += chunk.runs
            state["work"] += per_run[chunk.stage] * chunk.runs
            report()

    def train(stage, chunks):
        named = {c.name: c for c in chunks}
        # Writers sharing the workdir claim chunks, so each is computed once (recording.Claim).
        recording.compute_chunks(store, stage, list(named), lambda name: one(named[name]))

    n = min(int(workers), len(todo))
    if n <= 1:
        for stage in populations.compiled_ahead(stages, precompile or (lambda s: None)):
            train(stage, of_stage[stage])
        return state["finished"]
    order = sorted(stages, key=lambda s: -weight(s))   # stable
    left = {s: collections.deque(of_stage[s]) for s in order}
    started: set[str] = set()

    def take(mine):
        """The next chunk for a worker that trained ``mine`` last (None when all are taken)."""
        with lock:
            if mine is None or not left[mine]:
                fresh = [s for s in order if s not in started and left[s]]
                if fresh:
                    mine = fresh[0]
                else:   # help the stage with the most work left per chunk taken
                    busy = [s for s in order if left[s]]
                    if not busy:
                        return None
                    mine = max(busy, key=lambda s: per_run[s] * sum(c.runs for c in left[s]))
                started.add(mine)
            return left[mine].popleft()

    def worker():
        mine = None
        while (chunk := take(mine)) is not None:
            mine = chunk.stage
            train(chunk.stage, [chunk])

    pool = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="chunks")
    futures = [pool.submit(worker) for _ in range(n)]
    stopped = False
    try:
        for future in concurrent.futures.as_completed(futures):
            future.result()   # the first error stops the stages not started yet
    except BaseException as e:
        with lock:   # nothing more is taken: the other workers end after their chunk
            for q in left.values():
                q.clear()
        # a stopped run (Ctrl-C, SIGTERM) does not wait for the running chunks: the finished
        # ones are recorded
        stopped = isinstance(e, KeyboardInterrupt)
        raise
    finally:
        pool.shutdown(wait=not stopped, cancel_futures=True)
    return state["finished"]
