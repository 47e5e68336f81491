"""Checks made before any training, so that a run that cannot finish fails at once with one line, not after hours.

A run needs: the annotations of every task it computes or scores (:func:`check_data`), a store it can write when it
computes anything (:func:`check_writable_folder`), room on the store's file system for what it will write
(:func:`estimate_bytes`, :func:`check_space`), shared memory for its training loaders' batches
(:func:`check_shared_memory`) and a leaderboard it can record on (:func:`check_leaderboard`); a
submission also needs the test templates and a writable output folder. Each
failure is a :class:`~harness.errors.HarnessError` naming the path, what was expected and what was found.

The space estimate counts the per-track arrays a node writes: each output of each split (a kind's ``outputs``, plus
its ``validation_outputs`` on validation), one row per label row (the test split: per template frame). A prediction
output (``pred``, ``honest``) is float32 with the task's width (2 for VA, 8 for EXPR, 12 for AU); any other output is an
embedding, float16 with the settings' ``embedding_dim`` (:data:`DEFAULT_EMBEDDING_DIM` when the kind has none).
Every track file and its checksum sidecar take :data:`FILE_OVERHEAD` bytes beside that. Model checkpoints and shared
caches are not estimated (their size is known only after the fit); the check asks for :data:`SAFETY` times the
estimate plus :data:`HEADROOM` bytes, which covers them on the smoke profile.
"""

import errno
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from harness.cpu import SHARED_MEMORY, local_processes
from harness.data.affwild2 import SPLITS, Dataset
from harness.errors import DataError, HarnessError, LeaderboardError, StoreError
from harness.models.context import HONEST, split_outputs
from harness.tasks import Task, get_task

DEFAULT_EMBEDDING_DIM = 1024  # a bound for an embedding output whose settings do not say its width
FILE_OVERHEAD = 8192  # a track file and its sidecar take at least one 4 KiB file-system block each
SAFETY = 1.25
HEADROOM = 64 * 2**20


@dataclass(frozen=True)
class NodeWrites:
    """What a node to compute will write: its kind (for its outputs), task and settings (for an embedding width)."""

    name: str
    kind: type
    task: Task
    settings: BaseModel


def check_data(dataset: Dataset, needs: Mapping[Task, Iterable[str]], system: str) -> None:
    """Every split in ``needs[task]`` exists in the data (annotations, or the test template and track list)."""
    for task, splits in needs.items():
        for split in splits:
            try:
                dataset.split(task, split)
            except DataError as error:
                message = f"{system} needs the {task} {split} split (checked before any training): {error}"
                raise DataError(message) from None


def check_writable_folder(folder: Path, what: str, error_type: type[HarnessError] = StoreError) -> None:
    """Create ``folder`` if needed, then write, sync and delete a small probe file in it: a read-only, full or
    forbidden folder fails here (an ``error_type``) rather than when the first result is saved."""
    probe = folder / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(handle, b"\0" * 4096)
            os.fsync(handle)
        finally:
            os.close(handle)
    except OSError as error:
        hint = " (the disk is full)" if error.errno == errno.ENOSPC else ""
        raise error_type(f"the {what} {folder} cannot be written{hint}: {error.strerror or error}") from None
    finally:
        probe.unlink(missing_ok=True)


def check_leaderboard(path: Path) -> None:
    """The leaderboard file (when it exists) is writable, and so is its folder (SQLite writes a journal beside it)."""
    if path.exists() and not os.access(path, os.W_OK):
        raise LeaderboardError(f"the leaderboard {path} is read-only: a run records a row on it; make it writable")
    check_writable_folder(path.parent, "leaderboard folder", LeaderboardError)


def estimate_bytes(dataset: Dataset, nodes: Sequence[NodeWrites]) -> int:
    """The bytes the per-track outputs of ``nodes`` will take in the store (see the module docstring)."""
    total = 0
    for node in nodes:
        embedding = getattr(node.settings, "embedding_dim", DEFAULT_EMBEDDING_DIM)
        for split_name in SPLITS:
            split = dataset.split(node.task, split_name)
            rows = sum(track.n_rows for track in split.tracks)
            for output in split_outputs(node.kind, split_name):
                row_bytes = get_task(node.task).width * 4 if output in ("pred", HONEST) else embedding * 2
                total += rows * row_bytes + len(split.tracks) * FILE_OVERHEAD
    return total


def check_space(folder: Path, estimate: int, nodes: Sequence[NodeWrites]) -> None:
    """The file system of ``folder`` has ``SAFETY * estimate + HEADROOM`` bytes free."""
    need = int(SAFETY * estimate) + HEADROOM
    free = shutil.disk_usage(folder).free
    if free < need:
        names = ", ".join(f"{node.name} {node.task}" for node in nodes)
        raise StoreError(
            f"the store {folder} has {_size(free)} free, but the run will write about {_size(estimate)} (nodes to "
            f"compute: {names}) and needs {_size(need)} with the margin; free space or set ABAW_STORE to another disk"
        )


def check_shared_memory(nodes: Sequence[NodeWrites], folder: Path = SHARED_MEMORY) -> None:
    """``folder`` holds the ready batches of the hungriest node's training loader (nodes run one at a time; under
    torchrun every local rank runs that loader at once): a DataLoader worker that cannot write its batch there dies
    of a bus error, mid-epoch. Unreadable: not checked."""
    needs = [(node.kind.shared_memory_bytes(node.settings), node) for node in nodes]
    need, node = max(needs, key=lambda pair: pair[0], default=(0, None))
    if not need:
        return
    ranks = local_processes()
    need *= ranks
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need:
        raise HarnessError(
            f"{folder} has {_size(free)} free, but the training loader of {node.name} {node.task} keeps about "
            f"{_size(need)} of decoded batches there (the ready batches of its workers"
            f"{f' in {ranks} local ranks' if ranks > 1 else ''}) and would die of a bus error: run "
            "the container with more shared memory (docker run --shm-size 2g), or lower the spec's workers or "
            "batch_size"
        )


def check_before_work(
    system: str,
    dataset: Dataset,
    scored: Sequence[Task],
    to_compute: Sequence[NodeWrites],
    store_root: Path,
    leaderboard: Path,
) -> None:
    """All checks, in the order a run would hit them: data, store, space, shared memory, leaderboard."""
    needs: dict[Task, list[str]] = {task: ["validation"] for task in scored}
    for node in to_compute:
        needs[node.task] = list(SPLITS)
    check_data(dataset, needs, system)
    if to_compute:
        check_writable_folder(store_root, "store")
        check_space(store_root, estimate_bytes(dataset, to_compute), to_compute)
        check_shared_memory(to_compute)
    check_leaderboard(leaderboard)


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
