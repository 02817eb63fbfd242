"""The one chunk runner shared by the search's stages and the pruning groups."""

import tempfile
import threading
import time

import numpy as np
import pytest

from spiralprune import populations, recording, runner


def _legacy_shard(store, stage, name, rows):
    """A shard as written before shards named their stage and chunk (read by its file name)."""
    arrays = recording._shard_arrays({"a": np.arange(rows)}, None,
                                     {"config_hash": store.config_hash, "record_format": 2})
    path = store.workdir / "shards" / stage / f"{name}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_cut_and_pending_deal_a_task_its_chunks_and_skip_recorded_ones(tmp_path):
    store = recording.Store(tmp_path / "wd", {"x": 1}, kind="prune")
    chunks = runner.cut("a", [(0, 3), (3, 6), (6, 8)]) + runner.cut("b", [(0, 2)])
    assert [(c.stage, c.name, c.runs) for c in chunks] == [
        ("a", "000000", 3), ("a", "000001", 3), ("a", "000002", 2), ("b", "000000", 2)]
    store.write("a", 1, {"v": np.zeros(3)})
    mine, todo = runner.pending(store, chunks, 1, 2)          # round robin: chunks 1 and 3
    assert mine == [chunks[1], chunks[3]] and todo == [chunks[3]]
    mine, todo = runner.pending(store, chunks)
    assert mine == chunks and todo == [chunks[0], chunks[2], chunks[3]]


def test_a_legacy_shard_copied_in_as_an_extra_chunk_or_of_another_size_is_refused(tmp_path):
    """Shards without their stage and chunk are read by their names, so the grid decides: a
    name beyond the stage's chunks, or a row count other than its chunk's, is one line."""
    store = recording.Store(tmp_path / "wd", {"x": 1}, kind="prune")
    chunks = runner.cut("s", [(0, 2), (2, 4)])
    _legacy_shard(store, "s", "000000", 2)
    assert runner.pending(store, chunks)[1] == [chunks[1]]     # a legacy chunk that fits
    extra = _legacy_shard(store, "s", "000007", 2)
    with pytest.raises(ValueError, match=r"000007.npz is not a chunk of this grid's stage 's' "
                                         r"\(the grid has 2 chunks") as e:
        runner.pending(store, chunks)
    assert "\n" not in str(e.value)
    extra.unlink()
    _legacy_shard(store, "s", "000001", 3)
    with pytest.raises(ValueError, match="chunk 000001 has 2 runs, the shard 3"):
        runner.pending(store, chunks)


def test_a_search_with_a_foreign_shard_is_refused_before_it_trains(tmp_path, monkeypatch):
    from spiralprune import populations, search
    store = recording.Store(tmp_path / "wd", {"x": 1}, kind="search")
    _legacy_shard(store, search.PHASE_ONE, "000009", 4)

    def boom(*a, **k):
        raise AssertionError("trained before refusing")
    monkeypatch.setattr(populations, "run", boom)
    with pytest.raises(ValueError, match="000009.npz is not a chunk"):
        search.phase_one(store, width=2, lrs=(0.1,), schedules=("constant",), targets=(),
                         epochs=1, chunk_size=4)


@pytest.mark.parametrize("workers", [1, 2])
def test_run_computes_each_chunk_once_and_counts_progress_over_every_stage(tmp_path, workers):
    store = recording.Store(tmp_path / "wd", {"x": 1}, kind="prune")
    chunks = runner.cut("a", [(0, 3), (3, 5)]) + runner.cut("b", [(0, 4)])
    _, todo = runner.pending(store, chunks)
    seen, lock, threads, compiled = [], threading.Lock(), set(), []

    def compute(chunk, tick):
        for k in range(1, chunk.runs + 1):
            tick(k)
        with lock:
            seen.append((chunk.stage, chunk.index))
            threads.add(threading.current_thread().name)
        store.write(chunk.stage, chunk.index, {"v": np.arange(chunk.start, chunk.stop)})

    counts = []
    done = runner.run(store, todo, compute, progress=lambda d, t: counts.append((d, t)),
                      workers=workers, precompile=compiled.append)
    assert done == 9 and sorted(seen) == [("a", 0), ("a", 1), ("b", 0)]
    assert counts[-1] == (9, 9) and all(t == 9 for _, t in counts)
    assert all(b >= a for (a, _), (b, _) in zip(counts, counts[1:]))   # never goes back
    assert store.load("a")["v"].tolist() == [0, 1, 2, 3, 4]
    if workers == 1:
        assert compiled == ["b"]   # the next stage compiles while the first trains
    else:
        assert all(name.startswith("chunks") for name in threads)
    # resumed, nothing is left to train
    assert runner.pending(store, chunks)[1] == []
    assert runner.run(store, [], compute) == 0


def test_free_workers_help_the_longest_stage_and_each_chunk_trains_once(tmp_path):
    # one long stage of four chunks and a short one: the worker done with the short stage
    # takes the long stage's next chunks instead of idling while one worker trains them all
    store = recording.Store(tmp_path / "wd", {"x": 1}, kind="prune")
    chunks = runner.cut("long", [(i, i + 1) for i in range(4)]) + runner.cut("short", [(0, 1)])
    _, todo = runner.pending(store, chunks)
    by, lock = {}, threading.Lock()

    def compute(chunk, tick):
        time.sleep(0.3 if chunk.stage == "long" else 0.05)
        with lock:
            by.setdefault(chunk.stage, []).append(threading.current_thread().name)
        store.write(chunk.stage, chunk.index, {"v": np.arange(chunk.start, chunk.stop)})

    assert runner.run(store, todo, compute, workers=2,
                      cost=lambda s: 10.0 if s == "long" else 1.0) == 5
    assert len(by["long"]) == 4 and len(by["short"]) == 1
    assert len(set(by["long"])) == 2                     # both workers trained the long stage
    assert store.load("long")["v"].tolist() == [0, 1, 2, 3]
    assert runner.pending(store, chunks)[1] == []


def test_a_failing_chunk_stops_the_others_from_taking_more(tmp_path):
    store = recording.Store(tmp_path / "wd", {"x": 1}, kind="prune")
    chunks = runner.cut("a", [(i, i + 1) for i in range(6)]) + runner.cut("b", [(0, 1)])
    _, todo = runner.pending(store, chunks)
    seen = []

    def compute(chunk, tick):
        seen.append((chunk.stage, chunk.index))
        if chunk.stage == "b":
            raise RuntimeError("boom")
        store.write(chunk.stage, chunk.index, {"v": np.arange(chunk.start, chunk.stop)})

    with pytest.raises(RuntimeError, match="boom"):
        runner.run(store, todo, compute, workers=2, cost=lambda s: 1.0 if s == "a" else 9.0)
    assert len(seen) < 7                      # the queue was emptied: not every chunk ran
    assert len(runner.pending(store, chunks)[1]) >= 1   # what ran is recorded, the rest resumes


def test_progress_weighs_runs_by_their_stage_cost():
    store_calls = []

    class Weighted:
        weighted = True

        def __call__(self, done, total, work=None):
            store_calls.append((done, total, work))

    chunks = runner.cut("heavy", [(0, 1)]) + runner.cut("light", [(0, 3)])
    with tempfile.TemporaryDirectory() as tmp:
        store = recording.Store(tmp, {"x": 1}, kind="prune")
        _, todo = runner.pending(store, chunks)
        runner.run(store, todo, lambda c, tick: store.write(c.stage, c.index, {"v": np.arange(
            c.start, c.stop)}), progress=Weighted(), cost=lambda s: 9.0 if s == "heavy" else 3.0)
    # stages in order: the heavy one's single run is 9 of the 12 units of work
    assert store_calls[0] == (1, 4, (9.0, 12.0)) and store_calls[-1] == (4, 4, (12.0, 12.0))
    # the printer's ETA reads the work: 10 s for 1 unit of 4 leaves 30 s, not the runs' 3.3 s
    lines = []
    prog = populations.Progress("prune", every_s=0.0, printer=lines.append)
    prog._t0 = time.perf_counter() - 10.0
    prog(3, 4, work=(1.0, 4.0))
    prog(3, 4)
    assert "3/4 runs" in lines[0] and "ETA 30 s" in lines[0] and "ETA 3 s" in lines[1]
