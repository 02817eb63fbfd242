"""Atomic, resumable, pickle-free records of spiralprune experiments.

Workdir layout: ``store.json`` (format, kind: "search", "prune", "study", ...), ``config.json``
(the config, sorted keys), ``shards/<stage>/<chunk_id>.npz`` (one finished chunk of runs) and
``notes/<name>.json`` (small JSON documents of drivers, e.g. phase-one winners).

A shard is an uncompressed ``.npz`` of plain arrays read with ``allow_pickle=False`` (no file
can run code when a shared workdir is opened): ``__meta__`` (0-d unicode JSON with the format
tag, ``num_rows`` R, the column names and each parameter's per-run shape), ``rows/<column>``
((R,) numeric, bool or unicode), and per parameter ``params/<name>/values`` (float32 nonzeros
of all runs, run-major), ``.../index`` (their flat positions in one run's array, uint16 or
uint32) and ``.../offsets`` ((R+1,) int64: run r owns ``values[offsets[r]:offsets[r+1]]``).

Every file is written to a temp file in its directory, flushed, fsynced and moved into place
with ``os.replace``: readers see the old state or the whole new file, and stray temp files of
a killed writer (``.<name>.*.tmp``) are ignored, and swept (``sweep_temp_files``) once older
than ``claim_stale_s()`` when the workdir is next opened for writing. A stopped run (Ctrl-C,
SIGTERM through ``spiralprune.study.cli``) releases its claims and removes its temp files
(``release_all``). A JSON file of the workdir that does not parse is a one-line ValueError
naming it. A shard is done only if its zip CRCs check
out, every array loads, the marker keys are present and all row counts agree; a truncated or
corrupt shard is moved aside to ``<chunk_id>.npz.corrupt`` with a warning and recomputed.
Reopening a workdir with another config or kind raises before anything is written. So a
restarted experiment resumes at the first chunk not done and ends with exactly the rows of an
uninterrupted run.

Provenance. Every shard's ``__meta__`` carries ``config_hash`` (``config_hash``: SHA-256 of the
workdir's config without task fields, the fields that determine its runs),
``record_format`` (``RECORD_FORMAT``), its ``stage`` and ``chunk`` (and, where the writer
gives it, ``rows``: its row range in the stage's grid): a shard whose file
name names another chunk (copied over another chunk, or in as an extra one) is refused with a
one-line ValueError naming the file; shards written before these fields existed are taken
by their names. Loading or resuming refuses, with a one-line ValueError
naming the file, a shard whose hash differs from its workdir's config (a shard copied in from
another workdir is never adopted), and a workdir that has shards or notes but no
``config.json`` refuses to take a new config. Shards written before hashes existed
(``spiralprune-shard/1``) are accepted with one warning per workdir: only ``config.json``
vouches for them. ``load_runs`` of several workdirs gives each row its ``config_hash``.

Cooperating writers. Processes sharing a workdir claim a chunk before computing it
(``Store.claim``): an exclusive ``.<chunk_id>.claim`` file beside the shards holding the
owner's host, pid, process start (Linux) and time, its mtime refreshed by a heartbeat thread.
A claim whose heartbeat is older than ``claim_stale_s()`` (env ``SPIRALPRUNE_CLAIM_STALE_S``,
default 120 s), one still empty (or unreadable) after 5 s, or whose owner is a dead process
on this host (no such pid, or the pid now belongs to a process that started at another time),
is taken over. ``compute_chunks`` first
removes the claims a killed writer left on chunks it had finished (``drop_stale_claims``), runs
the unclaimed chunks and then waits for the others' claims, so every writer returns with the
whole stage. Claims only avoid repeated work: shards are still written atomically, so a chunk
computed twice (e.g. two writers taking over one stale claim at once) is recorded once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import pathlib
import re
import secrets
import shutil
import socket
import threading
import time
import zipfile
from collections import abc

import numpy as np
import pandas as pd

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_SHARD_FORMAT = "spiralprune-shard/2"
_LEGACY_SHARD_FORMATS = ("spiralprune-shard/1",)  # no config hash: accepted with a warning
RECORD_FORMAT = 2  # bumped whenever the meaning of a recorded column changes
_STORE_FORMAT = "spiralprune-store/1"
_RESERVED = ("stage", "chunk", "row", "workdir")
# Fields that say how work is split (tasks; chunk_seconds: the store notes the chunks cut),
# never what a record holds: not part of a config's identity.
TASK_FIELDS = ("task_index", "num_tasks", "chunk_seconds")
_PARTS = ("values", "index", "offsets")
_UNWRITTEN_CLAIM_S = 5.0   # an empty claim older than this is abandoned
_log = logging.getLogger(__name__)


def _check_name(name, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.startswith("."):
        raise ValueError(f"invalid {what} {name!r}: use [A-Za-z0-9_.-]+, not starting with '.'")
    return name


def _chunk(chunk_id) -> str:
    if isinstance(chunk_id, (int, np.integer)) and not isinstance(chunk_id, bool):
        return f"{int(chunk_id):06d}"
    return _check_name(chunk_id, "chunk_id")


def _jsonable(obj, key: str = "config"):
    if callable(getattr(obj, "to_dict", None)):
        obj = obj.to_dict()
    if isinstance(obj, abc.Mapping):
        return {str(k): _jsonable(v, f"{key}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{key}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (np.generic, np.ndarray)):
        return _jsonable(obj.tolist(), key)
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    raise ValueError(f"{key} has type {type(obj).__name__}, which is not JSON-serialisable")


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True)


def _flat_config(cfg, prefix: str = "") -> dict[str, str]:
    if isinstance(cfg, dict) and cfg:
        return {k: v for key, sub in cfg.items()
                for k, v in _flat_config(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: _canon(cfg)}


def _first_diff(a, b) -> str | None:
    """Dotted key of the first difference between two JSON configs, None if equal."""
    fa, fb = _flat_config(a), _flat_config(b)
    return next((k for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)), None)


def _strip_task_fields(cfg):
    if isinstance(cfg, dict):
        return {k: _strip_task_fields(v) for k, v in cfg.items() if k not in TASK_FIELDS}
    return [_strip_task_fields(v) for v in cfg] if isinstance(cfg, list) else cfg


def _atomic_write(path: pathlib.Path, write) -> None:
    """Writes `path` via temp file + flush + fsync + os.replace; `write(f)` fills the file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    _LIVE_TEMPS.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(e.errno, f"no space left while writing {path}; the workdir is "
                          "intact, rerun to resume") from e
        raise
    finally:
        _LIVE_TEMPS.discard(tmp)
    with contextlib.suppress(OSError):  # Make the rename itself durable.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_json(path: pathlib.Path):
    """The JSON document at ``path``; a one-line ValueError naming the file if it is not JSON
    (FileNotFoundError passes through)."""
    text = path.read_bytes()
    try:
        return json.loads(text)
    except ValueError as e:   # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({'empty file' if not text.strip() else e}); "
                         "restore it or move it out of the workdir") from None


def sweep_temp_files(workdir: pathlib.Path, older_than_s: float | None = None) -> int:
    """Removes killed writers' temp files (``.<name>.*.tmp``) in a workdir; returns how many.

    Only files untouched for ``older_than_s`` (default ``claim_stale_s()``) go: a live writer
    (on any host sharing the workdir) finishes a file in far less.
    """
    limit = claim_stale_s() if older_than_s is None else older_than_s
    root, removed = pathlib.Path(workdir), 0
    for path in [*root.glob(".*.tmp"), *root.glob("notes/.*.tmp"), *root.glob("shards/*/.*.tmp")]:
        st = _stat(path)
        if st is not None and time.time() - st.st_mtime > limit:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


# Temp files this process is writing and claims it holds, so a stopped run (Ctrl-C, SIGTERM:
# ``release_all``) leaves neither behind.
_LIVE_TEMPS: set = set()
_LIVE_CLAIMS: set = set()
# Claims this process may be creating right now (path -> the token its file holds): a stop
# between the file appearing and its registration above removes it if the file is ours.
_PENDING_CLAIMS: dict = {}


def release_all() -> None:
    """Releases every claim this process holds and removes its temp files (a stopped run)."""
    for path, token in list(_PENDING_CLAIMS.items()):
        with contextlib.suppress(OSError, ValueError):
            if token in pathlib.Path(path).read_text():   # ours, not another writer's
                os.unlink(path)
    for path in [*_LIVE_CLAIMS, *_LIVE_TEMPS]:   # a heartbeat on a removed claim is a no-op
        with contextlib.suppress(OSError):
            os.unlink(path)
    _PENDING_CLAIMS.clear()
    _LIVE_CLAIMS.clear()
    _LIVE_TEMPS.clear()


def _create_exclusive(path: pathlib.Path, text: str) -> bool:
    """Creates ``path`` holding ``text`` unless it exists; True if this call created it.

    Written to a temp file and hard-linked into place, so the file never exists empty (a
    filesystem without hard links: exclusive create, then write).
    """
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    _LIVE_TEMPS.add(tmp)
    try:
        tmp.write_text(text)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return True
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
        _LIVE_TEMPS.discard(tmp)


def write_file(path: str | os.PathLike, data: bytes | str) -> None:
    """Writes a file atomically (temp file, fsync, rename): a full disk is one OSError line
    naming ``path`` and leaves no partial (0-byte) file. For figures, tables and notes."""
    payload = data.encode() if isinstance(data, str) else bytes(data)
    _atomic_write(pathlib.Path(path), lambda f: f.write(payload))


def _write_json(path: pathlib.Path, obj, sort_keys: bool = False) -> None:
    text = json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode()))


def config_hash(config) -> str:
    """SHA-256 (hex) of a config as recorded: canonical JSON without task fields."""
    return hashlib.sha256(_canon(_strip_task_fields(json.loads(_canon(_jsonable(config)))))
                          .encode()).hexdigest()


def _shard_arrays(rows, params, provenance: dict | None = None) -> dict[str, np.ndarray]:
    """Validates rows/params and encodes them as the arrays of one shard."""
    if not isinstance(rows, abc.Mapping) or not rows:
        raise ValueError("rows must be a non-empty dict of 1-D columns")
    arrays, lengths = {}, {}
    for name, col in rows.items():
        if _check_name(name, "column name") in _RESERVED:
            raise ValueError(f"column name {name!r} is reserved ({', '.join(_RESERVED)})")
        a = np.asarray(col)
        if a.dtype.kind not in "biufU" or a.ndim != 1:
            raise ValueError(f"column {name!r} is {a.dtype} {a.shape}; need 1-D numeric/bool/str")
        arrays[f"rows/{name}"], lengths[name] = a, len(a)
    num_rows = next(iter(lengths.values()))
    if len(set(lengths.values())) != 1:
        raise ValueError(f"columns have unequal lengths {lengths}")
    shapes = {}
    for name, p in (params or {}).items():
        if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
            raise ValueError(f"invalid param name {name!r}: use [A-Za-z0-9_.-]+ joined by '/'")
        a = np.asarray(p)
        if a.dtype.kind not in "biuf" or a.ndim < 1 or a.shape[0] != num_rows:
            raise ValueError(f"param {name!r} is {a.dtype} {a.shape}; need ({num_rows}, ...)")
        size = math.prod(a.shape[1:])
        flat = a.reshape(num_rows, size).astype(np.float32, copy=False)
        nonzero = flat != 0
        index = np.nonzero(nonzero)[1]  # Row-major, so grouped by run.
        arrays[f"params/{name}/values"] = flat[nonzero]
        arrays[f"params/{name}/index"] = index.astype(np.uint16 if size <= 1 << 16 else np.uint32)
        counts = np.cumsum(nonzero.sum(axis=1))
        arrays[f"params/{name}/offsets"] = np.concatenate([[0], counts]).astype(np.int64)
        shapes[name] = list(a.shape[1:])
    meta = {"format": _SHARD_FORMAT, "num_rows": num_rows, "columns": list(lengths),
            "params": shapes, **(provenance or {})}
    arrays["__meta__"] = np.array(json.dumps(meta))
    return arrays


def _read_shard(path: pathlib.Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Reads and fully validates one shard; raises on anything missing or inconsistent."""
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()  # Reads every member and checks its CRC.
    if bad is not None:
        raise ValueError(f"bad CRC in member {bad}")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    if meta["format"] not in (_SHARD_FORMAT, *_LEGACY_SHARD_FORMATS):
        raise ValueError(f"unknown format {meta['format']!r}")
    num_rows, names = meta["num_rows"], meta["params"]
    expected = {f"rows/{c}" for c in meta["columns"]}
    expected |= {f"params/{n}/{part}" for n in names for part in _PARTS}
    if set(arrays) != expected:
        raise ValueError(f"members {sorted(arrays)} != expected {sorted(expected)}")
    if any(arrays[f"rows/{c}"].shape != (num_rows,) for c in meta["columns"]):
        raise ValueError("columns disagree on the number of rows")
    for name, shape in names.items():
        values, index, offsets = (arrays[f"params/{name}/{part}"] for part in _PARTS)
        if (offsets.shape != (num_rows + 1,) or offsets[0] != 0 or np.any(np.diff(offsets) < 0)
                or offsets[-1] != len(values) or index.shape != values.shape
                or (len(index) and index.max() >= math.prod(shape))):
            raise ValueError(f"inconsistent sparse arrays of param {name!r}")
    return meta, arrays


def _stat(path: pathlib.Path):
    with contextlib.suppress(OSError):
        return path.stat()


def _chunk_key(path: pathlib.Path):
    return (0, int(path.stem), path.stem) if path.stem.isdigit() else (1, 0, path.stem)


def _digest(shard) -> str:
    meta, arrays = shard
    h = hashlib.sha256(_canon(meta).encode())
    for k, a in sorted(arrays.items()):
        h.update(f"{k}:{a.dtype.str}:{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class Store:
    """Records of one experiment in one workdir: config, finished chunks (shards), notes."""

    def __init__(self, workdir: str | os.PathLike, config, *, kind: str):
        """Opens or creates a workdir for writing; checks an existing config and kind.

        Args:
          workdir: the experiment's directory (created if missing).
          config: dict or ml_collections.ConfigDict; must match an existing config.json.
          kind: what the workdir records, e.g. "search", "prune", "study".
        """
        if not str(workdir).strip():
            raise ValueError("workdir is empty")
        self.workdir, self.read_only, self._cache = pathlib.Path(workdir), False, None
        claim_stale_s()   # a bad env value is refused here, not in a heartbeat thread
        self.kind = _check_name(kind, "kind")
        self.config = json.loads(_canon(_jsonable(config)))
        self.config_hash, self._warned_legacy = config_hash(self.config), False
        cfg_path, meta_path = self.workdir / "config.json", self.workdir / "store.json"
        if self.workdir.exists() and not self.workdir.is_dir():
            raise ValueError(f"workdir {self.workdir} is not a directory")
        if not cfg_path.exists() and _has_records(self.workdir):
            raise ValueError(f"workdir {self.workdir} has records but no config.json; it will "
                             "not adopt a new config: restore config.json or use a new workdir")
        if cfg_path.exists():
            stored = _read_json(cfg_path)
            if _canon(stored) != _canon(self.config):
                raise ValueError(f"workdir {self.workdir} holds a different config (first "
                                 f"difference at {_first_diff(stored, self.config)!r}); "
                                 "use a new workdir or the original config")
        if meta_path.exists():
            stored_kind = _read_json(meta_path).get("kind")
            if stored_kind != kind:
                raise ValueError(f"workdir {self.workdir} holds {stored_kind!r} records, "
                                 f"not {kind!r}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(self.workdir)
        if not meta_path.exists():
            _write_json(meta_path, {"format": _STORE_FORMAT, "kind": kind})
        if not cfg_path.exists():
            _write_json(cfg_path, self.config, sort_keys=True)

    @classmethod
    def open(cls, workdir: str | os.PathLike) -> Store:
        """Opens an existing workdir read-only.

        Args:
          workdir: a directory written by a `Store`.
        Returns:
          A read-only Store; corrupt shards are skipped with a warning, never moved.
        """
        store = cls.__new__(cls)
        store.workdir, store.read_only, store._cache = pathlib.Path(workdir), True, None
        for name in ("config.json", "store.json"):   # present but not JSON: named
            if (store.workdir / name).is_file():
                _read_json(store.workdir / name)
        try:
            store.config = json.loads((store.workdir / "config.json").read_text())
            store.kind = json.loads((store.workdir / "store.json").read_text())["kind"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"no spiralprune records in {store.workdir}") from e
        store.config_hash, store._warned_legacy = config_hash(store.config), False
        return store

    def _shard_path(self, stage: str, chunk_id) -> pathlib.Path:
        stage = _check_name(stage, "stage")
        return self.workdir / "shards" / stage / f"{_chunk(chunk_id)}.npz"

    def _shard_files(self, stage: str) -> list[pathlib.Path]:
        paths = (self.workdir / "shards" / _check_name(stage, "stage")).glob("*.npz")
        return sorted((p for p in paths if _NAME.fullmatch(p.stem) and p.stem[0] != "."),
                      key=_chunk_key)

    def _valid(self, path: pathlib.Path):
        """(meta, arrays) of a valid shard; None if missing; moves a corrupt one aside."""
        try:
            shard = _read_shard(path)
        except FileNotFoundError:
            return None
        except Exception as e:  # Anything unreadable counts as corrupt.
            if self.read_only:
                _log.warning("skipping corrupt shard %s (%s: %s)", path, type(e).__name__, e)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, path.with_name(path.name + ".corrupt"))
                _log.warning("corrupt shard %s moved to %s.corrupt; it will be recomputed "
                             "(%s: %s)", path, path.name, type(e).__name__, e)
            return None
        recorded = shard[0].get("config_hash")
        if recorded is None:
            if not self._warned_legacy:
                self._warned_legacy = True
                _log.warning("%s holds shards without a config hash (written before "
                             "provenance was recorded); only its config.json vouches for them",
                             self.workdir)
        elif recorded != self.config_hash:
            raise ValueError(f"shard {path} was recorded under another config (hash "
                             f"{recorded[:12]}, this workdir's config {self.config_hash[:12]}); "
                             "move it out of the workdir")
        # Shards written before they named themselves carry neither field: their names stand.
        named = (shard[0].get("stage", path.parent.name), shard[0].get("chunk", path.stem))
        if named != (path.parent.name, path.stem):
            raise ValueError(f"shard {path} holds chunk {named[0]}/{named[1]}, not the chunk of "
                             "its file name (copied over another chunk?); move it out of the "
                             "workdir")
        return shard

    def stages(self) -> list[str]:
        """Returns the sorted names of the stages that have a shard directory."""
        root = self.workdir / "shards"
        return sorted(p.name for p in root.glob("*")
                      if p.is_dir() and _NAME.fullmatch(p.name) and p.name[0] != ".")

    def is_done(self, stage: str, chunk_id: str) -> bool:
        """Returns whether `stage`/`chunk_id` has a valid shard (ints are formatted %06d)."""
        return self._valid(self._shard_path(stage, chunk_id)) is not None

    def done(self, stage: str) -> set[str]:
        """Returns the chunk ids of `stage` whose shards are valid."""
        return set(self.recorded(stage))

    def recorded(self, stage: str) -> dict[str, int]:
        """Returns {chunk id: its number of rows} of `stage`'s valid shards."""
        out = {}
        for p in self._shard_files(stage):
            shard = self._valid(p)
            if shard is not None:
                out[p.stem] = int(shard[0]["num_rows"])
        return out

    def write(self, stage: str, chunk_id: str, rows: dict[str, np.ndarray],
              params: dict[str, np.ndarray] | None = None, *,
              first_row: int | None = None) -> None:
        """Atomically writes one finished chunk.

        Args:
          stage: stage name, e.g. "phase1".
          chunk_id: chunk name, e.g. "000012" (an int is formatted %06d).
          rows: 1-D columns of equal length R (numeric, bool or unicode).
          params: optional {name: per-run arrays with leading axis R}, names like
            "layer0/kernel"; stored sparsely as float32 nonzeros.
          first_row: where the chunk's rows start in its stage's grid; recorded with its
            stage and chunk as ``rows`` [first, first + R) (provenance only).
        """
        if self.read_only:
            raise ValueError(f"store {self.workdir} was opened read-only")
        path = self._shard_path(stage, chunk_id)
        arrays = _shard_arrays(rows, params, {"config_hash": self.config_hash,
                                              "record_format": RECORD_FORMAT,
                                              "stage": path.parent.name, "chunk": path.stem})
        if first_row is not None:
            meta = json.loads(str(arrays["__meta__"]))
            meta["rows"] = [int(first_row), int(first_row) + meta["num_rows"]]
            arrays["__meta__"] = np.array(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: np.savez(f, **arrays))
        self._cache = None

    def load(self, stage: str | None = None) -> pd.DataFrame:
        """Returns the rows of all valid shards (of one stage if given).

        Args:
          stage: restrict to this stage; None for all stages.
        Returns:
          DataFrame ordered by stage, chunk, row with columns stage, chunk, row + the rows.
        """
        frames = []
        for st in self.stages() if stage is None else [_check_name(stage, "stage")]:
            for path in self._shard_files(st):
                shard = self._valid(path)
                if shard is None or shard[0]["num_rows"] == 0:
                    continue
                (meta, arrays), n = shard, shard[0]["num_rows"]
                cols = {"stage": [st] * n, "chunk": [path.stem] * n, "row": np.arange(n)}
                frames.append(pd.DataFrame(cols | {c: arrays[f"rows/{c}"]
                                                   for c in meta["columns"]}))
        if not frames:
            return pd.DataFrame({"stage": [], "chunk": [], "row": []})
        return pd.concat(frames, ignore_index=True)

    def load_params(self, stage: str, chunk_id: str, row: int) -> dict[str, np.ndarray]:
        """Rebuilds one run's dense parameter arrays (float32, zeros where not stored).

        Args:
          stage: stage name.
          chunk_id: chunk name.
          row: row index within the shard.
        Returns:
          {param name: dense array of the per-run shape}; {} if the shard has no params.
        """
        path = self._shard_path(stage, chunk_id)
        key = (path, *((st.st_mtime_ns, st.st_size) if (st := _stat(path)) else ()))
        if self._cache is None or self._cache[0] != key:  # Cache one shard for row loops.
            self._cache = (key, self._valid(path))
        if self._cache[1] is None:
            raise ValueError(f"no valid shard {stage}/{_chunk(chunk_id)} in {self.workdir}")
        meta, arrays = self._cache[1]
        if not 0 <= int(row) < meta["num_rows"]:
            raise ValueError(f"row {row} out of range for {path} ({meta['num_rows']} rows)")
        out = {}
        for name, shape in meta["params"].items():
            start, stop = arrays[f"params/{name}/offsets"][int(row):int(row) + 2]
            dense = np.zeros(math.prod(shape), np.float32)
            dense[arrays[f"params/{name}/index"][start:stop]] = (
                arrays[f"params/{name}/values"][start:stop])
            out[name] = dense.reshape(shape)
        return out

    def params_of(self, df_row) -> dict[str, np.ndarray]:
        """Returns `load_params` of a `load()` DataFrame row (uses its stage, chunk, row)."""
        return self.load_params(df_row["stage"], df_row["chunk"], int(df_row["row"]))

    def claim(self, stage: str, chunk_id) -> Claim | None:
        """Claims a chunk for this process, or returns None if another writer holds it.

        Args:
          stage: stage name.
          chunk_id: chunk name (an int is formatted %06d).
        Returns:
          a held `Claim` (a context manager that releases it), or None while another live
          writer's claim exists. A stale claim (heartbeat older than ``claim_stale_s()``, or a
          dead process on this host) is taken over.
        """
        if self.read_only:
            raise ValueError(f"store {self.workdir} was opened read-only")
        shard = self._shard_path(stage, chunk_id)
        shard.parent.mkdir(parents=True, exist_ok=True)
        path = shard.with_name(f".{shard.stem}.claim")
        for _ in range(2):
            token = secrets.token_hex(8)
            owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                "start": _process_start(os.getpid()), "time": time.time(),
                                "token": token})
            _PENDING_CLAIMS[path] = token   # before the file can exist (see release_all)
            try:
                created = _create_exclusive(path, owner)
                if created:
                    _LIVE_CLAIMS.add(path)
            finally:
                _PENDING_CLAIMS.pop(path, None)
            if created:
                return Claim(path)
            if not _stale(path):
                return None
            # Move the stale claim aside (one of several racing writers wins the rename).
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, path.with_name(f"{path.name}.{secrets.token_hex(4)}.stale"))
                for old in path.parent.glob(f"{path.name}.*.stale"):
                    with contextlib.suppress(OSError):
                        old.unlink()
        return None

    def _note_path(self, name: str) -> pathlib.Path:
        return self.workdir / "notes" / f"{_check_name(name, 'note name')}.json"

    def put_json(self, name: str, obj) -> None:
        """Atomically writes a JSON note `name` (e.g. phase-one winners, a run summary)."""
        if self.read_only:
            raise ValueError(f"store {self.workdir} was opened read-only")
        path = self._note_path(name)
        path.parent.mkdir(exist_ok=True)
        _write_json(path, _jsonable(obj, name))

    def put_json_once(self, name: str, obj):
        """Writes the JSON note ``name`` unless it exists; returns the note as stored.

        Exclusive across writers sharing the workdir (a link that fails if the note exists):
        the first writer's value is every writer's.
        """
        if self.read_only:
            raise ValueError(f"store {self.workdir} was opened read-only")
        path = self._note_path(name)
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            _write_json(tmp, _jsonable(obj, name))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return self.get_json(name)

    def get_json(self, name: str, default=None):
        """Returns the JSON note `name`, or `default` if it was never written."""
        try:
            return _read_json(self._note_path(name))
        except FileNotFoundError:
            return default


def claim_stale_s() -> float:
    """Seconds without a heartbeat after which a claim is taken over (env override); a
    one-line ValueError for a value that is not a positive number of seconds."""
    raw = os.environ.get("SPIRALPRUNE_CLAIM_STALE_S", "120")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"SPIRALPRUNE_CLAIM_STALE_S must be a number of seconds > 0, got "
                         f"{raw!r}")
    return value


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, Linux ``/proc``), or None.

    A claim records its owner's start, so a dead owner whose pid the system has since given to
    another process (pids wrap around, quickly where many threads come and go) is still seen
    as dead.
    """
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[19])   # field 22, after "pid (comm)"
    except (OSError, ValueError, IndexError):
        return None


def _stale(path: pathlib.Path) -> bool:
    """Whether the claim at `path` is abandoned: old heartbeat or a dead owner on this host."""
    try:
        age = time.time() - path.stat().st_mtime
        owner = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        return True
    except (OSError, ValueError):  # Being written right now, or garbage: judge by age only.
        owner = None
    if age > claim_stale_s():
        return True
    if not isinstance(owner, dict) or not owner:
        # A writer fills its claim right after creating it: one still empty (or garbage)
        # after a few seconds names no owner and would stall every writer for claim_stale_s.
        return age > min(_UNWRITTEN_CLAIM_S, claim_stale_s())
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass
        else:
            start = owner.get("start")
            now = _process_start(owner["pid"])
            if isinstance(start, int) and now is not None and now != start:
                return True   # the pid now belongs to another process: the owner is dead
    return False


class Claim:
    """A held chunk claim: a heartbeat thread refreshes its file until it is released."""

    def __init__(self, path: pathlib.Path):
        self.path, self._stop = path, threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"claim-{path.name}")
        self._thread.start()

    def _beat(self) -> None:
        every = max(0.05, claim_stale_s() / 6)
        while not self._stop.wait(every):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Stops the heartbeat and removes the claim file."""
        self._stop.set()
        self._thread.join()
        _LIVE_CLAIMS.discard(self.path)
        with contextlib.suppress(OSError):
            self.path.unlink()

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def compute_chunks(store: Store, stage: str, chunk_ids, compute, poll_s: float = 0.5) -> int:
    """Computes every chunk of `chunk_ids` that is not done, sharing them with other writers.

    Args:
      store: a writable Store.
      stage: stage name.
      chunk_ids: the chunks this process is responsible for (ints are formatted %06d).
      compute: ``chunk_id -> None``; trains the chunk and ``store.write``s it.
      poll_s: seconds between looks at chunks claimed by other writers.
    Returns:
      the number of chunks this process computed. On return every chunk is done (by this
      process or another), or `compute` raised.
    """
    # A writer killed between writing a shard and releasing its claim leaves the claim of a done
    # chunk; callers skip done chunks before they get here, so sweep the whole stage.
    drop_stale_claims(store, stage)
    pending, computed = list(chunk_ids), 0
    while pending:
        waiting = []
        for cid in pending:
            if store.is_done(stage, cid):
                _drop_stale_claim(store, stage, cid)
                continue
            claim = store.claim(stage, cid)
            if claim is None:
                waiting.append(cid)
                continue
            with claim:
                if not store.is_done(stage, cid):  # Another writer may have just finished it.
                    compute(cid)
                    computed += 1
        pending = waiting
        if pending:
            time.sleep(poll_s)
    return computed


def drop_stale_claims(store: Store, stage: str) -> int:
    """Removes every claim of a finished chunk of `stage` whose writer is gone.

    A writer killed between writing a shard and releasing its claim leaves the claim behind;
    live writers' claims (and claims of chunks not yet done) are left alone.

    Returns:
      the number of claims removed.
    """
    folder = store.workdir / "shards" / _check_name(stage, "stage")
    removed = 0
    for path in sorted(folder.glob(".*.claim")):
        chunk = path.name[1:-len(".claim")]
        if _NAME.fullmatch(chunk) and store.is_done(stage, chunk) and _stale(path):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


def _drop_stale_claim(store: Store, stage: str, chunk_id) -> None:
    """Removes the claim of a finished chunk left by a writer killed between writing the
    shard and releasing its claim (a live writer's claim is left alone)."""
    shard = store._shard_path(stage, chunk_id)
    path = shard.with_name(f".{shard.stem}.claim")
    if path.exists() and _stale(path):
        with contextlib.suppress(OSError):
            path.unlink()


def _has_records(workdir: pathlib.Path) -> bool:
    """Whether a workdir already holds shards or notes."""
    return any(True for sub in ("shards", "notes") for p in (workdir / sub).rglob("*")
               if p.is_file() and p.suffix in (".npz", ".json"))


def _as_list(workdirs) -> list:
    items = [workdirs] if isinstance(workdirs, (str, os.PathLike)) else list(workdirs)
    if not items:
        raise ValueError("no workdirs given")
    return items


def load_runs(workdirs, stage: str | None = None) -> pd.DataFrame:
    """Returns the rows of one or many workdirs (e.g. of cluster tasks) concatenated.

    Args:
      workdirs: a workdir path or a sequence of them.
      stage: restrict to this stage; None for all stages.
    Returns:
      `Store.load` rows; with leading `workdir` and `config_hash` columns (each row's
      provenance) when more than one workdir is given.
    """
    items = _as_list(workdirs)
    stores = [Store.open(w) for w in items]
    frames = [s.load(stage) for s in stores]
    if len(frames) == 1:
        return frames[0]
    for w, s, frame in zip(items, stores, frames):
        frame.insert(0, "config_hash", s.config_hash)
        frame.insert(0, "workdir", str(w))
    return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)


def merge(src_workdirs, dst_workdir: str | os.PathLike) -> Store:
    """Copies the valid shards of several task workdirs into one workdir.

    Args:
      src_workdirs: workdirs of the same kind whose configs agree apart from `task_index` and
        `num_tasks` fields; notes are not merged.
      dst_workdir: destination (created if missing); it gets the config without those fields.
    Returns:
      The destination Store. Raises ValueError, before copying anything, on conflicting
      shards (same stage and chunk id, different content).
    """
    srcs = [Store.open(w) for w in _as_list(src_workdirs)]
    dst_path = pathlib.Path(dst_workdir)
    if any(s.workdir.resolve() == dst_path.resolve() for s in srcs):
        raise ValueError(f"merge destination {dst_path} is one of the sources")
    config = _strip_task_fields(srcs[0].config)
    for s in srcs[1:]:
        diff = _first_diff(config, _strip_task_fields(s.config))
        if diff is not None or s.kind != srcs[0].kind:
            raise ValueError(f"cannot merge {s.workdir} with {srcs[0].workdir}: different "
                             + ("kind" if diff is None else f"config (first at {diff!r})"))
    old = Store.open(dst_path) if (dst_path / "config.json").exists() else None
    plan = {}  # (stage, chunk) -> (digest, source path, whether to copy); checked before copying.
    for src, stage in ((s, st) for s in srcs for st in s.stages()):
        for path in src._shard_files(stage):
            if (shard := src._valid(path)) is None:
                continue
            key, digest = (stage, path.stem), _digest(shard)
            if key not in plan and old is not None and (have := old._valid(old._shard_path(*key))):
                plan[key] = (_digest(have), old._shard_path(*key), False)
            if (first := plan.setdefault(key, (digest, path, True)))[0] != digest:
                raise ValueError(f"conflicting shard {stage}/{path.stem}: {path} != {first[1]}")
    dst = Store(dst_path, config, kind=srcs[0].kind)
    for (stage, chunk), (_, path, copy) in plan.items():
        if copy:
            target = dst._shard_path(stage, chunk)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as f_src:
                _atomic_write(target, lambda f, f_src=f_src: shutil.copyfileobj(f_src, f))
    return dst
