"""Exclusive advisory locks between processes that share a folder: one writer at a time for a store node or a video.

A lock is an ``flock`` on a small file; the kernel drops it when its holder exits or dies, so a killed run never
leaves one held. The file keeps who holds it (``pid N on HOST``) for a waiter to say. Where no lock can be had (a
read-only folder, a file system without locks) the caller goes on unlocked, as it would alone. Across machines the
lock holds where the shared mount passes flock on (NFSv4 does; an NFS mount with ``local_lock`` or ``nolock`` keeps
it per machine).
"""

import contextlib
import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

LOCKS = ".locks"  # the lock files' folder beside what they guard (a dot name: never a store key nor a track)


@contextmanager
def held(path: Path, waiting: Callable[[str], None] | None = None, block: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (made with its folder) for the block and yield True.

    While another process holds it: ``block`` waits, first calling ``waiting`` with who holds it; ``block=False``
    yields False at once (the block runs without the lock: the caller does something else)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (closed below, after the block)
    except OSError:
        yield True
        return
    with file:
        taken = _take(file, waiting, block)
        try:
            yield taken is not False
        finally:
            if taken:
                _note_holder(file, "")  # a later waiter names the next holder, never this one
                fcntl.flock(file, fcntl.LOCK_UN)


def _take(file: TextIO, waiting: Callable[[str], None] | None, block: bool) -> bool | None:
    """Lock ``file`` and note who holds it: True; False when another holds it and ``block`` is off; None when its
    file system has no locks."""
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not block:
            return False
        if waiting is not None:
            file.seek(0)
            waiting(file.read().strip() or "another process")
        try:
            fcntl.flock(file, fcntl.LOCK_EX)
        except OSError:  # ENOLCK and the like
            return None
    except OSError:
        return None
    _note_holder(file, f"pid {os.getpid()} on {socket.gethostname()}")
    return True


def _note_holder(file: TextIO, holder: str) -> None:
    """Write who holds the lock (only for a waiter to say; a full disk leaves it unsaid)."""
    with contextlib.suppress(OSError):
        file.seek(0)
        file.truncate()
        file.write(holder)
        file.flush()
