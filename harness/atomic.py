"""Atomic file writes: a temporary file beside the target, flushed and synced, then renamed over it.

A crash at any point leaves either the old file or the new one, never a torn file that a later run would trust.
"""

import glob
import os
import shutil
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read the process umask once (setting it is the only way to read it)


def public_mode(path: Path, directory: bool = False) -> None:
    """Give ``path`` the permissions a plain ``open`` or ``mkdir`` would (temporary files start private)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_UMASK)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``: never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        public_mode(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sweep_dead_staging(folder: Path) -> None:
    """Delete the staging and set-aside folders of ``folder`` (``.<name>.staging-<pid>-<token>``, ``.old-``) left by
    processes that no longer run: a kill skips every ``except`` and ``finally`` that would have removed them."""
    for leftover in folder.parent.glob(f".{glob.escape(folder.name)}.*-*-*"):
        kind, _, rest = leftover.name[len(folder.name) + 2 :].partition("-")
        pid = rest.partition("-")[0]
        if kind in ("staging", "old") and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` may run on this machine (one that cannot be asked about, e.g. a pid beyond the
    system's range, counts as alive: what it left is kept)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # it runs, as another user; or no pid to ask about
        pass
    return True
