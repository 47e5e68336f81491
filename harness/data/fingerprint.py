"""The dataset fingerprint, and a cache of it keyed by what can change it.

The fingerprint hashes what determines results: the contents of every label, track-list and template file, the
number of crops in each track's folder, and each video's size. Computing it reads every label file and lists every
crop folder (~2.9 M entries on the real release), and every plan asks for it, so it is cached under
``$ABAW_HOME/fingerprints/``. The cache key is a cheap *stamp*: the root, each text file's path, size and
modification time, each crop folder's name and modification time (a folder's mtime changes when an entry is added
or removed, which is all the crop counts can see), and each video's name, size and modification time. An unchanged
root costs a few thousand ``stat`` calls; any edit, added or removed crop, or replaced video gives a new stamp and
the fingerprint is computed anew. A root changed in the last few seconds is not cached (see
:func:`cached_fingerprint`). A cache that cannot be read or written is skipped, never trusted half-way.
"""

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

from harness.atomic import write_atomically
from harness.data.root import harness_home

STAMP_VERSION = 1
CACHE_FOLDER = "fingerprints"
RACY_SECONDS = 3.0  # a file changed this recently may change again within its mtime's granularity: not cached


def compute_fingerprint(root: Path, texts: list[Path], crops: dict[str, Path], videos: dict[str, Path]) -> str:
    """A short hash of label, list and template contents, crop counts and video sizes (reads everything)."""
    digest = hashlib.sha256()
    for path in texts:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for name, folder in sorted(crops.items()):
        digest.update(f"{name}:{sum(1 for _ in os.scandir(folder))}".encode())
    for name, path in sorted(videos.items()):
        digest.update(f"{name}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def stamp(root: Path, texts: list[Path], crops: dict[str, Path], videos: dict[str, Path]) -> tuple[str, int]:
    """A hash of everything that can change the fingerprint, from ``stat`` alone, and the newest mtime (ns) in it."""
    digest = hashlib.sha256(f"v{STAMP_VERSION}\0{root.resolve()}".encode())
    newest = 0
    for path in texts:
        info = path.stat()
        digest.update(f"\0t{path.relative_to(root)}:{info.st_size}:{info.st_mtime_ns}".encode())
        newest = max(newest, info.st_mtime_ns)
    for name, folder in sorted(crops.items()):
        mtime = folder.stat().st_mtime_ns
        digest.update(f"\0c{name}:{mtime}".encode())
        newest = max(newest, mtime)
    for name, path in sorted(videos.items()):
        info = path.stat()
        digest.update(f"\0v{name}:{info.st_size}:{info.st_mtime_ns}".encode())
        newest = max(newest, info.st_mtime_ns)
    return digest.hexdigest(), newest


def cached_fingerprint(root: Path, texts: list[Path], crops: dict[str, Path], videos: dict[str, Path]) -> str:
    """The fingerprint from the cache when the stamp is unchanged, else computed and recorded.

    A root with an entry modified in the last ``RACY_SECONDS`` is computed and not cached (as git treats "racily
    clean" files): an edit in the same clock tick as the one before it would leave the stamp as it was.
    """
    key, newest = stamp(root, texts, crops, videos)
    if newest >= time.time_ns() - RACY_SECONDS * 1e9:
        return compute_fingerprint(root, texts, crops, videos)
    path = harness_home() / CACHE_FOLDER / f"{key}.json"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if recorded.get("stamp") == key and isinstance(recorded.get("fingerprint"), str):
            return recorded["fingerprint"]
    except (OSError, ValueError, AttributeError):
        pass
    value = compute_fingerprint(root, texts, crops, videos)
    record = {"stamp": key, "root": str(root.resolve()), "fingerprint": value}
    with contextlib.suppress(OSError):  # a read-only home: the fingerprint is still right, only not cached
        write_atomically(path, (json.dumps(record) + "\n").encode())
    return value
