"""Tests of spiralprune.recording: round trips, atomicity, corruption handling, merging."""

import json
import logging
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import zipfile

import ml_collections
import numpy as np
import pandas as pd
import pytest

from spiralprune import recording

CONFIG = {"seed": 0, "widths": [4, 8], "train": {"lr": 0.1, "steps": 100}, "task_index": 0,
          "num_tasks": 2}


def _rows(chunk: int, n: int = 4) -> dict:
    rng = np.random.default_rng(chunk)
    return {"acc": rng.random(n), "loss": rng.random(n).astype(np.float32),
            "mask_id": np.arange(n, dtype=np.int64) + 100 * chunk, "ok": rng.random(n) < 0.5,
            "pruner": np.array([f"gmp{i}" for i in range(n)])}


def _params(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def sparse(*shape):
        x = rng.normal(size=(n, *shape)).astype(np.float32)
        return np.where(rng.random(x.shape) < 0.7, 0.0, x).astype(np.float32)

    p = {"layer0/kernel": sparse(2, 3), "layer0/bias": sparse(3), "layer1/kernel": sparse(3, 1),
         "big/kernel": sparse(300, 300), "scale": sparse()}
    for v in p.values():
        v[1] = 0.0  # Run 1 has all-zero arrays.
    return p


def _snapshot(root: pathlib.Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_rows_round_trip(tmp_path):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    rows = _rows(0)
    store.write("phase1", "000000", rows)
    df = store.load()
    assert list(df.columns) == ["stage", "chunk", "row", *rows]
    assert list(df["stage"]) == ["phase1"] * 4 and list(df["chunk"]) == ["000000"] * 4
    assert list(df["row"]) == [0, 1, 2, 3]
    for name, col in rows.items():
        assert list(df[name]) == col.tolist(), name
    assert df["loss"].dtype == np.float32 and df["ok"].dtype == bool
    assert df["mask_id"].dtype == np.int64


def test_sparse_params_round_trip(tmp_path):
    n = 5
    store = recording.Store(tmp_path, CONFIG, kind="prune")
    params = _params(n)
    store.write("prune_gmp_w16", 3, _rows(3, n), params)  # int chunk ids become "000003".
    df = store.load("prune_gmp_w16")
    assert set(df["chunk"]) == {"000003"}
    for r in range(n):
        got = store.params_of(df.iloc[r])
        assert set(got) == set(params)
        for name, arr in params.items():
            assert got[name].dtype == np.float32 and got[name].shape == arr.shape[1:]
            np.testing.assert_array_equal(got[name], arr[r], err_msg=name)
    assert all(not v.any() for v in store.load_params("prune_gmp_w16", "000003", 1).values())
    with np.load(tmp_path / "shards/prune_gmp_w16/000003.npz", allow_pickle=False) as npz:
        # Stored sparsely: exactly the nonzeros, with compact index dtypes.
        assert len(npz["params/big/kernel/values"]) == np.count_nonzero(params["big/kernel"])
        assert npz["params/big/kernel/index"].dtype == np.uint32
        assert npz["params/layer0/kernel/index"].dtype == np.uint16
        assert npz["params/layer0/kernel/offsets"].shape == (n + 1,)
    with pytest.raises(ValueError, match="out of range"):
        store.load_params("prune_gmp_w16", "000003", n)


def test_different_config_or_kind_raises_before_writing(tmp_path):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    store.write("phase1", "000000", _rows(0))
    before = _snapshot(tmp_path)
    other = {**CONFIG, "train": {"lr": 0.2, "steps": 100}}
    with pytest.raises(ValueError) as excinfo:
        recording.Store(tmp_path, other, kind="search")
    assert str(tmp_path) in _one_line(excinfo) and "train.lr" in str(excinfo.value)
    with pytest.raises(ValueError, match="'search'"):
        recording.Store(tmp_path, CONFIG, kind="prune")
    with pytest.raises(ValueError, match="'train.momentum'"):
        recording.Store(tmp_path, {**CONFIG, "train": {**CONFIG["train"], "momentum": 0.9}},
                        kind="search")
    assert _snapshot(tmp_path) == before
    # Same config (as a ConfigDict with tuples) reopens fine and sees the earlier chunk.
    cfg = ml_collections.ConfigDict({**CONFIG, "widths": (4, 8)})
    again = recording.Store(tmp_path, cfg, kind="search")
    assert again.done("phase1") == {"000000"}
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored == CONFIG and list(stored) == sorted(stored)


def test_truncated_corrupt_and_stray_temp_files(tmp_path, caplog):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    for c in range(3):
        store.write("phase1", f"{c:06d}", _rows(c, 50), _params(50, seed=c))
    shards = tmp_path / "shards" / "phase1"
    truncated, corrupt = shards / "000001.npz", shards / "000002.npz"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2: len(data) // 2 + 8] = bytes(b ^ 0xFF for b in data[len(data) // 2:][:8])
    corrupt.write_bytes(bytes(data))
    (shards / ".000003.npz.1234.deadbeef.tmp").write_bytes(b"PK\x03\x04 half written")
    # A read-only reader skips them without moving anything.
    assert recording.Store.open(tmp_path).done("phase1") == {"000000"}
    assert truncated.exists() and corrupt.exists()
    with caplog.at_level(logging.WARNING):
        assert not store.is_done("phase1", "000001")
        assert store.done("phase1") == {"000000"}
    assert "corrupt shard" in caplog.text
    assert not truncated.exists() and not corrupt.exists()
    assert (shards / "000001.npz.corrupt").exists() and (shards / "000002.npz.corrupt").exists()
    assert set(store.load()["chunk"]) == {"000000"}
    store.write("phase1", "000001", _rows(1, 50))  # Recomputed.
    assert store.done("phase1") == {"000000", "000001"}


def test_flipped_data_byte_is_caught_by_crc(tmp_path):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    store.write("phase1", "000000", _rows(0, 50), _params(50))
    path = tmp_path / "shards" / "phase1" / "000000.npz"
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("params/big/kernel/values.npy")
    data = bytearray(path.read_bytes())
    pos = info.header_offset + info.compress_size // 2  # Inside the float data, header intact.
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))
    assert store.done("phase1") == set()
    assert (path.parent / "000000.npz.corrupt").exists()


@pytest.mark.parametrize("edit", ["drop_column", "extra_member", "short_column", "bad_offsets",
                                  "no_meta"])
def test_inconsistent_shard_is_not_done(tmp_path, edit):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    store.write("phase1", "000000", _rows(0), _params(4))
    path = tmp_path / "shards" / "phase1" / "000000.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if edit == "drop_column":
        del arrays["rows/acc"]
    elif edit == "extra_member":
        arrays["rows/extra"] = np.zeros(4)
    elif edit == "short_column":
        arrays["rows/acc"] = arrays["rows/acc"][:3]
    elif edit == "bad_offsets":
        arrays["params/layer0/kernel/offsets"][-1] += 1
    else:
        del arrays["__meta__"]
    np.savez(path, **arrays)
    assert not store.is_done("phase1", "000000")
    assert (path.parent / "000000.npz.corrupt").exists()


class _Evil:
    """Unpickling this runs code (creates a directory)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_pickled_shard_is_never_unpickled(tmp_path):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    store.write("phase1", "000000", _rows(0))
    path = tmp_path / "shards" / "phase1" / "000000.npz"
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    marker = tmp_path / "pwned"
    arrays["rows/acc"] = np.array([_Evil(marker)] * 4, dtype=object)
    np.savez(path, allow_pickle=True, **arrays)
    assert store.done("phase1") == set()
    assert len(recording.Store.open(tmp_path).load()) == 0
    assert not marker.exists()


def test_killed_writer_leaves_no_shard(tmp_path, monkeypatch):
    store = recording.Store(tmp_path, CONFIG, kind="search")

    def crash(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write("phase1", "000000", _rows(0))
    assert not store.is_done("phase1", "000000")
    assert list((tmp_path / "shards" / "phase1").iterdir()) == []


def test_resume_gives_same_rows_as_uninterrupted_run(tmp_path):
    first = recording.Store(tmp_path / "a", CONFIG, kind="search")
    for c in range(3):
        first.write("phase1", f"{c:06d}", _rows(c), _params(4, c))
    del first  # "Crash".
    resumed = recording.Store(tmp_path / "a", CONFIG, kind="search")
    assert resumed.done("phase1") == {"000000", "000001", "000002"}
    for c in range(4):
        if not resumed.is_done("phase1", f"{c:06d}"):
            resumed.write("phase1", f"{c:06d}", _rows(c), _params(4, c))
    straight = recording.Store(tmp_path / "b", CONFIG, kind="search")
    for c in range(4):
        straight.write("phase1", f"{c:06d}", _rows(c), _params(4, c))
    pd.testing.assert_frame_equal(resumed.load(), straight.load())
    assert len(resumed.load()) == 16


def test_files_contain_no_pickles(tmp_path):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    store.write("phase1", "000000", _rows(0), _params(4))
    store.put_json("winners", {"masks": [1, 2], "acc": np.float32(0.5)})
    npz_files = list(tmp_path.rglob("*.npz"))
    assert npz_files
    for path in npz_files:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                assert npz[key].dtype.kind != "O", key
        with zipfile.ZipFile(path) as zf:
            assert all(name.endswith(".npy") for name in zf.namelist())
    for path in tmp_path.rglob("*.json"):
        json.loads(path.read_text())
    assert store.get_json("winners") == {"masks": [1, 2], "acc": 0.5}
    assert store.get_json("missing", default=7) == 7


@pytest.mark.parametrize("rows, params, match", [
    ({"a": np.zeros(3), "b": np.zeros(4)}, None, "unequal"),
    ({"a": np.zeros(3)}, {"w": np.zeros((4, 2))}, "'w'"),
    ({"a": np.array([None, 1], dtype=object)}, None, "object"),
    ({"a": np.zeros((3, 2))}, None, "1-D"),
    ({"row": np.zeros(3)}, None, "reserved"),
    ({}, None, "non-empty"),
    ({"a": np.zeros(3)}, {"w/": np.zeros((3, 2))}, "invalid param name"),
    ({"a": np.zeros(3)}, {"w": np.array([["x"]] * 3)}, "'w'"),
])
def test_write_validation(tmp_path, rows, params, match):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    with pytest.raises(ValueError, match=match) as excinfo:
        store.write("phase1", "000000", rows, params)
    _one_line(excinfo)
    assert not (tmp_path / "shards" / "phase1" / "000000.npz").exists()


def test_names_and_read_only(tmp_path):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    for bad in ("../x", "", "a b", ".hidden"):
        with pytest.raises(ValueError, match="invalid stage"):
            store.write(bad, "000000", _rows(0))
        with pytest.raises(ValueError, match="invalid note name"):
            store.put_json(bad, {})
    store.write("phase1", "000000", _rows(0))
    reader = recording.Store.open(tmp_path)
    assert reader.kind == "search" and reader.config == CONFIG
    with pytest.raises(ValueError, match="read-only"):
        reader.write("phase1", "000001", _rows(1))
    for missing in (tmp_path / "nope", tmp_path / "shards"):
        with pytest.raises(ValueError, match="no spiralprune records in") as excinfo:
            recording.Store.open(missing)
        _one_line(excinfo)


def test_load_runs_and_merge(tmp_path):
    a, b = tmp_path / "task0", tmp_path / "task1"
    store_a = recording.Store(a, CONFIG, kind="search")
    store_b = recording.Store(b, {**CONFIG, "task_index": 1}, kind="search")
    store_a.write("phase1", "000000", _rows(0), _params(4, 0))
    store_a.write("phase1", "000002", _rows(2), _params(4, 2))
    store_b.write("phase1", "000001", _rows(1), _params(4, 1))
    store_b.write("phase2_095", "000000", _rows(5))

    pd.testing.assert_frame_equal(recording.load_runs(a), store_a.load())
    both = recording.load_runs([a, b])
    assert len(both) == 16 and set(both["workdir"]) == {str(a), str(b)}
    assert len(recording.load_runs([a, b], stage="phase1")) == 12

    merged = recording.merge([a, b], tmp_path / "all")
    assert merged.done("phase1") == {"000000", "000001", "000002"}
    assert "task_index" not in merged.config and merged.config["train"] == CONFIG["train"]
    df = merged.load()
    assert list(df["chunk"][:12]) == [f"{c:06d}" for c in range(3) for _ in range(4)]
    for c in range(3):
        got = merged.load_params("phase1", f"{c:06d}", 3)["big/kernel"]
        np.testing.assert_array_equal(got, _params(4, c)["big/kernel"][3])
    recording.merge([a, b], tmp_path / "all")  # Identical shards again: a no-op.
    assert len(recording.Store.open(tmp_path / "all").load()) == 16

    c = tmp_path / "task2"
    rows = _rows(0)
    rows["acc"][2] += 1e-9  # Same chunk, same shapes, different content.
    recording.Store(c, {**CONFIG, "task_index": 2}, kind="search").write(
        "phase1", "000000", rows, _params(4, 0))
    with pytest.raises(ValueError, match="conflicting shard phase1/000000") as excinfo:
        recording.merge([a, c], tmp_path / "bad")
    _one_line(excinfo)
    assert not (tmp_path / "bad").exists()  # Refused before anything was written.
    before = _snapshot(tmp_path / "all")
    with pytest.raises(ValueError, match="conflicting shard phase1/000000"):
        recording.merge([c], tmp_path / "all")  # Conflicts with what "all" already holds.
    assert _snapshot(tmp_path / "all") == before
    d = tmp_path / "other"
    recording.Store(d, {**CONFIG, "seed": 1}, kind="search")
    with pytest.raises(ValueError, match="'seed'"):
        recording.merge([a, d], tmp_path / "bad2")
    with pytest.raises(ValueError, match="no spiralprune records"):
        recording.load_runs([a, tmp_path / "missing"])
    assert os.path.isdir(a)


def _dead_owner() -> dict:
    """A claim's owner record of a finished child of this host.

    Its start is read while the child is still unreaped, so the owner reads as dead even if
    its pid goes to another process (or thread) before the claim is judged.
    """
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = recording._process_start(proc.pid)
    proc.wait()
    return {"host": socket.gethostname(), "pid": proc.pid, "start": start, "time": 0}


@pytest.mark.skipif(recording._process_start(os.getpid()) is None, reason="needs /proc")
def test_a_claim_whose_pid_went_to_another_process_is_stale(tmp_path):
    # Pids wrap around: a dead writer's pid may belong to a live process by the time another
    # writer looks. The claim records its owner's start, which tells them apart.
    path = tmp_path / ".000000.claim"
    me = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    start = recording._process_start(os.getpid())
    path.write_text(json.dumps({**me, "start": start}))
    assert not recording._stale(path)                     # the owner itself: alive
    path.write_text(json.dumps({**me, "start": start - 1}))
    assert recording._stale(path)                         # same pid, another process: dead
    path.write_text(json.dumps(me))
    assert not recording._stale(path)                     # no start recorded: the pid decides
    store = recording.Store(tmp_path / "w", CONFIG, kind="search")
    with store.claim("phase1", 0) as claim:               # new claims record it
        assert json.loads(claim.path.read_text())["start"] == start


def test_claims_a_live_writer_holds_are_respected_and_a_killed_writers_are_cleared(tmp_path):
    store = recording.Store(tmp_path, CONFIG, kind="search")
    store.write("phase1", "000000", _rows(0, 4))
    claims = tmp_path / "shards" / "phase1"
    # A writer killed after writing chunk 0 but before releasing its claim: the claim goes.
    dead = _dead_owner()
    (claims / ".000000.claim").write_text(json.dumps(dead))
    # Chunk 1 is claimed by a live writer (this process): nobody else may take it.
    live = store.claim("phase1", 1)
    assert live is not None and store.claim("phase1", 1) is None
    computed = []

    def compute(cid):
        computed.append(cid)
        store.write("phase1", cid, _rows(0, 4))

    def finish_live():   # the live writer finishes its chunk a moment later
        store.write("phase1", "000001", _rows(0, 4))
        live.release()

    threading.Timer(0.3, finish_live).start()
    assert recording.compute_chunks(store, "phase1", [0, 1, 2], compute, poll_s=0.05) == 1
    assert computed == ["000002"] or computed == [2]
    assert sorted(p.name for p in claims.glob(".*.claim")) == []
    assert os.path.exists(claims / "000001.npz")


def test_claims_left_on_done_chunks_by_killed_writers_are_swept_even_when_none_is_pending(tmp_path):
    # Callers skip done chunks before compute_chunks: the sweep must not depend on chunk_ids.
    store = recording.Store(tmp_path, CONFIG, kind="search")
    claims = tmp_path / "shards" / "phase1"
    for cid in ("000000", "000001"):
        store.write("phase1", cid, _rows(0, 4))
    dead = _dead_owner()
    (claims / ".000000.claim").write_text(json.dumps(dead))       # killed after its shard
    (claims / ".000002.claim").write_text(json.dumps(dead))       # killed before: kept
    live = store.claim("phase1", 1)                                # a live writer's: kept
    assert recording.compute_chunks(store, "phase1", [], lambda cid: None) == 0
    assert sorted(p.name for p in claims.glob(".*.claim")) == [".000001.claim", ".000002.claim"]
    live.release()
    assert recording.drop_stale_claims(store, "phase1") == 0      # nothing left to sweep


def test_a_stop_landing_as_a_claim_appears_leaves_no_claim(tmp_path, monkeypatch):
    # Ctrl-C's handler (release_all, then exit) can run between the claim file appearing and
    # its registration: the file must still go, and another writer's claim must stay.
    store = recording.Store(tmp_path / "wd", {"seed": 0}, kind="prune")

    class StopOnAdd(set):
        def add(self, item):
            recording.release_all()
            raise KeyboardInterrupt
    monkeypatch.setattr(recording, "_LIVE_CLAIMS", StopOnAdd())
    with pytest.raises(KeyboardInterrupt):
        store.claim("stage", 0)
    assert not list((tmp_path / "wd").rglob(".*.claim"))
    assert not list((tmp_path / "wd").rglob("*.tmp"))
    monkeypatch.undo()
    theirs = tmp_path / "wd" / "shards" / "stage" / ".000001.claim"
    theirs.write_text('{"pid": 1, "token": "theirs"}')
    recording._PENDING_CLAIMS[theirs] = "ours"   # we tried and lost the race for it
    recording.release_all()
    assert theirs.exists()
