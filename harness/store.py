"""Content-addressed artifact store: node keys, atomic checksummed writes, per-track resume, provenance.

A node (one run of a system kind: an extraction, a training, a prediction) lives in ``<root>/<key>/`` where the key
hashes everything that determines its output (:func:`node_key`). Same key -> reuse, never recompute. Inside a node:

- artifacts, each a file with a sidecar ``<file>.sha256`` (``{"sha256": ..., "size": ...}``). A file is written to a
  temporary name unique per process (``.<file>.tmp-<pid>-<random>``), fsynced and renamed over its final name; only
  then is its sidecar written the same way. A file is trusted only when its sidecar exists and matches, so a kill
  at any point, a truncated copy or a file dropped in by hand reads as untrusted: ``has`` says False and ``read_*``
  raise :class:`~harness.errors.StoreError`, which the runner answers by recomputing. Every read verifies (sha256
  over the bytes, streamed: about 1.3 GB/s from the page cache) and parses the very file it hashed; a file is hashed
  once per process: a later read of the same unchanged file (same inode, size, mtime and ctime, same sidecar) skips
  the hash, and a file this process wrote is known without hashing it again (:func:`forget_verified` resets). An
  in-place rewrite of the same size within the file system's timestamp tick (milliseconds) of that verification
  keeps the identity, so it is seen by the next process only.
- per-track groups ``<group>/<track>.npy`` for resumable extraction: ``missing_tracks`` says what is left to do, and
  ranks writing different tracks of a group never clash.
- ``node.json``, written last by :meth:`Node.complete`: the key, provenance and every artifact's checksum. Any
  write or :meth:`Node.discard` removes it first, and so does a read that finds a listed artifact bad.
- hygiene: :meth:`Store.sweep` (each run calls it) deletes a killed writer's temporary files once its pid is no
  live process here; every stored file gets the mode a plain ``open`` gives (0644 under the usual umask).
- one writer per node: :meth:`Store.lock` holds an exclusive lock on ``<root>/.locks/<key>`` (:mod:`harness.locks`),
  so two runs that need the same node at once compute it once: the second waits, then finds it complete.

Names are file names with their suffix (``embeddings.npy``, ``metrics.json``, ``model.safetensors``): letters,
digits, ``.``, ``_``, ``-``, ``+``, not starting with ``.``; ``has`` and ``discard`` also take ``group/track.npy``.
Embeddings are stored float16 by asking for it: ``write_track(..., dtype=np.float16)`` casts, and refuses values that
float16 cannot hold (|x| > 65504) instead of writing inf; without ``dtype`` an array is stored as given.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import numpy as np

from harness import __version__
from harness.atomic import process_alive, public_mode
from harness.errors import StoreError
from harness.locks import LOCKS, held

__all__ = ["Node", "Store", "default_store_root", "forget_verified", "key_material", "node_key"]

KEY_SCHEMA = 1  # bump when the key material changes shape: every key changes with it
MARKER = "node.json"
SIDECAR = ".sha256"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
STALE_AFTER_S = 600.0  # a temporary file of a writer that is not alive here is left alone this long (see _stale)
_WRITER = re.compile(r"-(\d+)-[0-9a-f]+$")  # the pid in .<file>.tmp-<pid>-<random> and .trash-<key>-<pid>-<random>


class _Untrusted(Exception):
    """Internal: why a file is not trusted (becomes a StoreError naming the file, or a False from ``has``)."""


# Files this process has hashed (or written) and found to match their sidecar: path -> (identity, sha256). The
# identity (device, inode, size, mtime, ctime) changes with any write or rename, so a changed file is hashed again.
_VERIFIED: dict[str, tuple[tuple[int, ...], str]] = {}


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def forget_verified() -> None:
    """Forget which files this process has verified: the next read of each one hashes it again (as a new process)."""
    _VERIFIED.clear()


def default_store_root() -> Path:
    """``$ABAW_STORE`` when set, else ``$ABAW_HOME/store`` (``ABAW_HOME`` defaults to ``.abaw``)."""
    if os.environ.get("ABAW_STORE"):
        return Path(os.environ["ABAW_STORE"])
    return Path(os.environ.get("ABAW_HOME", ".abaw")) / "store"


def _plain(value: Any) -> Any:
    """JSON-ready plain data: numpy scalars/arrays to Python, paths to posix strings, sets sorted, tuples to lists."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, PurePath):
        return value.as_posix()
    if hasattr(value, "model_dump"):  # pydantic models: their resolved fields
        return _plain(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise StoreError(f"mapping keys must be strings to be hashed or stored; got {bad[0]!r} in {value!r}")
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    raise StoreError(f"cannot hash or store a value of type {type(value).__name__} ({value!r}); pass plain data")


def key_material(
    kind: str,
    version: str,
    settings: Mapping[str, Any],
    input_keys: Sequence[str],
    dataset_fingerprint: str,
    profile: str,
    tasks: Sequence[str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything :func:`node_key` hashes, as plain data (also worth recording in the node's provenance)."""
    if not isinstance(kind, str) or not _NAME.fullmatch(kind):
        raise StoreError(f"kind {kind!r} cannot name a store node: use letters, digits, '.', '_', '-', '+'")
    return {
        "schema": KEY_SCHEMA,
        "kind": kind,
        "version": str(version),
        "settings": _plain(settings),
        "inputs": [str(k) for k in input_keys],  # positional: order matters
        "dataset": str(dataset_fingerprint),
        "profile": str(profile),
        "tasks": sorted(set(map(str, tasks))),  # a set: order does not matter
        "extra": _plain(extra or {}),
    }


def node_key(
    kind: str,
    version: str,
    settings: Mapping[str, Any],
    input_keys: Sequence[str],
    dataset_fingerprint: str,
    profile: str,
    tasks: Sequence[str],
    extra: Mapping[str, Any] | None = None,
) -> str:
    """``<kind>-<24 hex>``: sha256 of the canonical JSON of :func:`key_material` (sorted keys, floats by repr).

    The key is only as honest as its inputs. A kind's ``version`` string must be bumped whenever its code changes
    what it outputs, or old artifacts are reused. ``settings`` must be resolved (defaults filled in, seed included)
    and typed consistently: ``1`` and ``1.0`` hash differently. A path hashes as its string, not its content: pass
    the checksum of a weights file in ``extra``.

    >>> node_key("kelm", "1", {"c": 1.0}, [], "fp", "smoke", ["va"])[:5]
    'kelm-'
    """
    material = key_material(kind, version, settings, input_keys, dataset_fingerprint, profile, tasks, extra)
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.endswith(SIDECAR):
        raise StoreError(
            f"{what} {name!r} is not a safe store file name: use letters, digits, '.', '_', '-', '+' (at most 200), "
            f"no '/' or '..', not starting with '.', not ending with {SIDECAR!r}"
        )
    return name


def _leaf(name: str, suffix: str) -> str:
    if not _check_name(name, "artifact name").endswith(suffix) or name == MARKER:
        raise StoreError(f"artifact name {name!r} must end with {suffix!r} (and not be {MARKER!r})")
    return name


def _atomic(path: Path, fill: Callable[[Path], None]) -> tuple[str, int, int]:
    """Write via ``fill(temp)``, fsync, hash and rename over ``path``; returns (sha256, size, inode). No temp
    survives."""
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        fill(temp)
        public_mode(temp)  # one mode for every stored file, whatever library wrote it (safetensors writes 0600)
        with open(temp, "r+b") as file:
            os.fsync(file.fileno())
            digest = hashlib.file_digest(file, "sha256").hexdigest()
            stat = os.fstat(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return digest, stat.st_size, stat.st_ino


def _nearly_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has less than 1 MiB free (why a write came up short)."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _put(data: bytes) -> Callable[[Path], None]:
    def fill(temp: Path) -> None:
        with open(temp, "xb") as file:
            file.write(data)

    return fill


def _packages() -> dict[str, str]:
    """Versions of what made the artifacts; torch and safetensors only when already imported."""
    found = {"python": platform.python_version(), "harness": __version__, "numpy": np.__version__}
    for name in ("torch", "safetensors"):
        if name in sys.modules:
            found[name] = str(getattr(sys.modules[name], "__version__", "unknown"))
    return found


class Node:
    """A folder of checksummed artifacts for one store key; constructing one does no I/O."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key

    def __repr__(self) -> str:
        return f"Node({self.key!r}, path={str(self.path)!r})"

    # -- files and trust --------------------------------------------------------------------------------------
    def _file(self, rel: str) -> Path:
        parts = rel.split("/") if isinstance(rel, str) else [rel]
        if len(parts) > 2 or rel == MARKER:
            raise StoreError(f"artifact name {rel!r} must be 'name' or 'group/name' and not {MARKER!r}")
        return self.path.joinpath(*(_check_name(part, "artifact name") for part in parts))

    def _sidecar(self, rel: str) -> dict[str, Any]:
        try:
            meta = json.loads(Path(f"{self._file(rel)}{SIDECAR}").read_bytes())
        except FileNotFoundError:
            raise _Untrusted("has no checksum sidecar (an interrupted write, or not written by the store)") from None
        except (OSError, ValueError) as exc:
            raise _Untrusted(f"has an unreadable checksum sidecar ({exc})") from None
        if not (isinstance(meta, dict) and isinstance(meta.get("sha256"), str) and isinstance(meta.get("size"), int)):
            raise _Untrusted("has a malformed checksum sidecar")
        return {"sha256": meta["sha256"], "size": meta["size"]}

    def _check(self, rel: str, file: BinaryIO, verify: bool) -> None:
        """Size against the sidecar; with ``verify`` the sha256 too, unless this process already verified the file
        unchanged."""
        meta = self._sidecar(rel)
        stat = os.fstat(file.fileno())
        if stat.st_size != meta["size"]:
            raise _Untrusted(f"is {stat.st_size} bytes but its sidecar records {meta['size']} (torn or truncated)")
        key, seen = str(self._file(rel)), (_identity(stat), meta["sha256"])
        if verify and _VERIFIED.get(key) != seen:
            if hashlib.file_digest(file, "sha256").hexdigest() != meta["sha256"]:
                _VERIFIED.pop(key, None)
                raise _Untrusted("does not match its sha256 checksum (corrupted or replaced)")
            _VERIFIED[key] = seen
        file.seek(0)

    def _distrust(self, rel: str, reason: str) -> StoreError:
        """The error for a bad artifact; a node whose ``node.json`` lists it is no longer complete."""
        try:
            if rel in json.loads((self.path / MARKER).read_bytes()).get("artifacts", {}):
                (self.path / MARKER).unlink(missing_ok=True)
        except (OSError, ValueError, AttributeError):
            pass
        return StoreError(
            f"store artifact {rel!r} of node {self.key} ({self.path / rel}) {reason}; it is not trusted and will be "
            f"recomputed (Node.discard({rel!r}) deletes it)"
        )

    @contextmanager
    def _verified(self, rel: str, verify: bool) -> Iterator[BinaryIO]:
        """An open file whose size (and, with ``verify``, sha256) matches its sidecar; hashed and read via one fd."""
        try:
            file = open(self._file(rel), "rb")  # noqa: SIM115 - closed below, after the caller has read it
        except FileNotFoundError:
            raise self._distrust(rel, "is missing") from None
        except OSError as exc:
            raise self._distrust(rel, f"cannot be opened ({exc})") from None
        with file:
            try:
                self._check(rel, file, verify)
            except _Untrusted as exc:
                raise self._distrust(rel, str(exc)) from None
            yield file

    def has(self, name: str, verify: bool = True) -> bool:
        """Whether ``name`` (or ``group/track.npy``) is present and trusted; never raises for a bad file."""
        try:
            with open(self._file(name), "rb") as file:
                self._check(name, file, verify)
            return True
        except (OSError, _Untrusted):
            return False

    def discard(self, name: str) -> None:
        """Delete an artifact (``name`` or ``group/track.npy``) and its sidecar; the node is no longer complete."""
        path = self._file(name)
        (self.path / MARKER).unlink(missing_ok=True)
        Path(f"{path}{SIDECAR}").unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    def _write(self, rel: str, fill: Callable[[Path], None]) -> None:
        """Write an artifact and then its sidecar; the bytes just hashed count as verified in this process. A
        write the file system refuses (read-only, full, no permission) is a StoreError naming the file."""
        path = self._file(rel)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            (self.path / MARKER).unlink(missing_ok=True)  # a node being written is not complete
            sidecar = Path(f"{path}{SIDECAR}")
            sidecar.unlink(missing_ok=True)  # never pair an old sidecar with new bytes
            digest, size, inode = _atomic(path, fill)
            _atomic(sidecar, _put(json.dumps({"sha256": digest, "size": size}).encode()))
            stat = path.stat()
        except OSError as exc:
            full = exc.errno is None and _nearly_full(self.path)  # numpy's short write says neither why nor errno
            cause = f"{exc}; the disk is full" if full else str(exc)
            raise StoreError(f"cannot write store artifact {rel!r} of node {self.key} ({path}): {cause}") from exc
        if stat.st_ino == inode and stat.st_size == size:  # still the file written here, not a racing writer's
            _VERIFIED[str(path)] = (_identity(stat), digest)

    # -- arrays, tracks, json, checkpoints --------------------------------------------------------------------
    def _write_npy(self, rel: str, array: Any, dtype: Any) -> None:
        data = np.asarray(array)
        if dtype is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                cast = data.astype(dtype)
            lost = cast.dtype.kind == "f" and data.dtype.kind == "f" and np.isinf(cast).any()  # fast path: no inf
            if lost and (np.isinf(cast) & np.isfinite(data)).any():
                raise StoreError(f"array {rel!r} of node {self.key} has values out of {cast.dtype} range; scale it")
            data = cast
        if data.dtype.hasobject:
            raise StoreError(f"array {rel!r} of node {self.key} has dtype object; store numbers only")

        def fill(temp: Path) -> None:
            with open(temp, "xb") as file:
                np.save(file, data, allow_pickle=False)

        self._write(rel, fill)

    def _read_npy(self, rel: str, mmap: bool, verify: bool) -> np.ndarray:
        fmt = np.lib.format
        with self._verified(rel, verify) as file:
            try:
                if not mmap:
                    return fmt.read_array(file, allow_pickle=False)
                version = fmt.read_magic(file)
                header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}[version]
                shape, fortran, dtype = header(file)
                if dtype.hasobject:
                    raise ValueError("object arrays are never stored")
                if math.prod(shape) == 0:
                    empty = np.empty(shape, dtype)
                    empty.flags.writeable = False
                    return empty
                return np.memmap(file, dtype, "r", file.tell(), shape, "F" if fortran else "C")
            except (ValueError, KeyError, OSError, EOFError) as exc:
                raise self._distrust(rel, f"is not a readable .npy file ({exc})") from exc

    def write_array(self, name: str, array: Any, dtype: Any = None) -> None:
        """Store ``array`` as ``name`` (``.npy``), cast to ``dtype`` when given (``np.float16`` for embeddings)."""
        self._write_npy(_leaf(name, ".npy"), array, dtype)

    def read_array(self, name: str, mmap: bool = True, verify: bool = True) -> np.ndarray:
        """The array, read-only memory-mapped by default; ``verify=False`` checks size only (just verified)."""
        return self._read_npy(_leaf(name, ".npy"), mmap, verify)

    def write_track(self, group: str, track: str, array: Any, dtype: Any = None) -> None:
        """Store one track's array as ``<group>/<track>.npy``; ranks may write different tracks concurrently."""
        self._write_npy(f"{_check_name(group, 'group')}/{_check_name(track, 'track')}.npy", array, dtype)

    def read_track(self, group: str, track: str, mmap: bool = True, verify: bool = True) -> np.ndarray:
        """One track's array, as :meth:`read_array`."""
        return self._read_npy(f"{_check_name(group, 'group')}/{_check_name(track, 'track')}.npy", mmap, verify)

    def done_tracks(self, group: str, verify: bool = True) -> set[str]:
        """Tracks of ``group`` whose file is trusted (hashing each one when ``verify``)."""
        folder = self.path / _check_name(group, "group")
        names = [p.name[:-4] for p in folder.glob("*.npy")] if folder.is_dir() else []
        return {t for t in names if _NAME.fullmatch(t) and self.has(f"{group}/{t}.npy", verify)}

    def missing_tracks(self, group: str, tracks: Sequence[str], verify: bool = True) -> list[str]:
        """The tracks of ``tracks`` (in their order) still to compute: absent, torn or foreign."""
        _check_name(group, "group")
        return [t for t in tracks if not self.has(f"{group}/{_check_name(t, 'track')}.npy", verify)]

    def write_json(self, name: str, obj: Any) -> None:
        """Store plain data (numpy scalars, paths and sets converted) as pretty JSON."""
        self._write(_leaf(name, ".json"), _put((json.dumps(_plain(obj), indent=2) + "\n").encode()))

    def read_json(self, name: str, verify: bool = True) -> Any:
        """The stored JSON value."""
        rel = _leaf(name, ".json")
        with self._verified(rel, verify) as file:
            try:
                return json.loads(file.read())
            except ValueError as exc:
                raise self._distrust(rel, f"is not valid JSON ({exc})") from exc

    def save_state(self, name: str, state_dict: Mapping[str, Any]) -> None:
        """Store a checkpoint (tensors moved to CPU) with safetensors; no pickle anywhere."""
        from safetensors.torch import save_file

        rel = _leaf(name, ".safetensors")
        tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
        try:
            self._write(rel, lambda temp: save_file(tensors, str(temp), metadata={"format": "pt"}))
        except (RuntimeError, ValueError, TypeError) as exc:  # e.g. tensors sharing memory (tied weights)
            raise StoreError(f"checkpoint {rel!r} of node {self.key} cannot be saved: {exc}") from exc

    def load_state(self, name: str, verify: bool = True) -> dict[str, Any]:
        """The checkpoint as CPU tensors; the bytes hashed are the bytes parsed (one read)."""
        from safetensors.torch import load

        rel = _leaf(name, ".safetensors")
        with self._verified(rel, verify) as file:
            data = file.read()
        try:
            return load(data)
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise self._distrust(rel, f"is not a readable safetensors file ({exc})") from exc

    # -- completion ------------------------------------------------------------------------------------------
    def complete(self, provenance: Mapping[str, Any]) -> dict[str, Any]:
        """Mark the node complete: write ``node.json`` last with the key, provenance and every artifact's checksum.

        ``provenance`` should hold the resolved settings, input keys, dataset fingerprint, code version, profile,
        seed and git commit (:func:`key_material` gives most of it); the creation time and package versions are
        added here. Files without a sidecar are not artifacts and are left out; a torn artifact refuses completion.
        """
        artifacts: dict[str, dict[str, Any]] = {}
        for sidecar in sorted([*self.path.glob(f"*{SIDECAR}"), *self.path.glob(f"*/*{SIDECAR}")]):
            rel = sidecar.relative_to(self.path).as_posix()[: -len(SIDECAR)]
            try:
                path = self._file(rel)
                if not path.is_file():
                    continue  # an orphan sidecar (a discard was interrupted)
                meta = self._sidecar(rel)
                if path.stat().st_size != meta["size"]:
                    raise _Untrusted(f"is {path.stat().st_size} bytes but its sidecar records {meta['size']}")
            except StoreError:
                continue  # not a name the store writes: foreign, never listed
            except _Untrusted as exc:
                raise self._distrust(rel, str(exc)) from None
            artifacts[rel] = meta
        record = {
            "key": self.key,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "packages": _packages(),
            "provenance": _plain(provenance),
            "artifacts": artifacts,
        }
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            _atomic(self.path / MARKER, _put((json.dumps(record, indent=2) + "\n").encode()))
        except OSError as exc:
            raise StoreError(f"cannot write {MARKER} of node {self.key} ({self.path}): {exc}") from exc
        return record

    def is_complete(self, verify: bool = False) -> bool:
        """Whether ``node.json`` is there and every artifact it lists is still trusted.

        By default each listed artifact's size and sidecar are checked (milliseconds, so that a re-run of an unchanged
        system is all store hits); ``verify=True`` hashes every byte (once per process, as reads do): the runner asks
        it of a node's inputs before computing the node. Reads verify anyway; a read, or this check, that finds a
        listed artifact no longer matching its checksum removes ``node.json``, so the node is computed again.
        """
        try:
            record = json.loads((self.path / MARKER).read_bytes())
            if record["key"] != self.key:
                return False
            for rel, meta in record["artifacts"].items():
                with open(self._file(rel), "rb") as file:
                    if self._sidecar(rel) != meta:
                        return False
                    try:
                        self._check(rel, file, verify)
                    except _Untrusted as exc:  # the file no longer matches its own checksum: withdraw node.json
                        raise self._distrust(rel, str(exc)) from None
            return True
        except (OSError, ValueError, KeyError, TypeError, AttributeError, StoreError, _Untrusted):
            return False

    def provenance(self) -> dict[str, Any]:
        """The ``node.json`` record: key, created, packages, provenance, artifacts."""
        try:
            return json.loads((self.path / MARKER).read_bytes())
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"node {self.key} ({self.path}) has no readable {MARKER}: it is not complete ({exc})"
            ) from exc

    def sweep(self, max_age_s: float = 3600.0) -> int:
        """Delete temporary files left by killed writers (see :func:`_stale`); returns how many."""
        removed = 0
        for temp in [*self.path.glob(".*.tmp-*"), *self.path.glob("*/.*.tmp-*")]:
            try:
                if temp.is_file() and _stale(temp, max_age_s):
                    temp.unlink()
                    removed += 1
            except OSError:  # gone meanwhile (its writer renamed it), or not ours to delete
                pass
        return removed


def _stale(path: Path, max_age_s: float) -> bool:
    """Whether a temporary file or trash folder is a killed writer's: its name carries the writer's pid, and that
    process is not alive on this machine while the file is older than :data:`STALE_AFTER_S` (the margin covers a
    writer on another machine sharing the store, whose pid means nothing here); or it is older than ``max_age_s``
    whoever wrote it (the pid was reused: a writer renames its file within seconds)."""
    age = time.time() - path.lstat().st_mtime
    if age > max_age_s:
        return True
    match = _WRITER.search(path.name)
    if age <= STALE_AFTER_S or match is None:
        return False
    return not process_alive(int(match[1]))


class Store:
    """The content-addressed store: one folder per node key under ``root`` (see :func:`default_store_root`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def node(self, key: str) -> Node:
        """The node for ``key`` (from :func:`node_key`); its folder is created on first write."""
        return Node(self.root / _check_name(key, "store key"), key)

    def keys(self) -> list[str]:
        """Keys of the nodes present, complete or not, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))

    def sweep(self, max_age_s: float = 3600.0) -> int:
        """Delete what killed runs left (:func:`_stale`): temporary files in every node, and node folders that a
        :meth:`remove` renamed away but did not finish deleting (``.trash-*``). Returns how many went."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for entry in self.root.iterdir():
            try:
                if entry.name.startswith(".trash-") and entry.is_dir() and _stale(entry, max_age_s):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
                elif _NAME.fullmatch(entry.name) and entry.is_dir():
                    removed += Node(entry, entry.name).sweep(max_age_s)
            except OSError:
                continue
        return removed

    @contextmanager
    def lock(self, key: str, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold ``key``'s lock for the block (:func:`harness.locks.held` on ``<root>/.locks/<key>``), across processes
        and machines sharing the store where its file system has locks; ``waiting`` is told who holds it first."""
        with held(self.root / LOCKS / _check_name(key, "lock name"), waiting):
            yield

    def remove(self, key: str) -> bool:
        """Delete a node; it is renamed away first so that no reader sees it half-deleted. False when absent."""
        path = self.node(key).path
        if not path.is_dir():
            return False
        trash = self.root / f".trash-{key}-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True
