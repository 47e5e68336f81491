"""Decoded face crops kept per track in a shared store cache, for datasets whose decoded crops are small.

A smoke video node on ``tiny`` spent 38% of its time decoding and resizing JPEG crops (25 of 66 s, cProfile,
2026-12-04): every epoch decodes the training frames again, every evaluation the validation frames, and each of the
seven default video nodes does it all anew. Here each track's crops are decoded once, exactly as
:class:`~harness.models.face_data.FaceImages` decodes them (``decode_crop``: the same uint8 values, so results are
bit-identical), and stored as one ``(n, 3, size, size)`` uint8 array per track and crop folder in a store cache keyed
by the dataset fingerprint, the crop source and the size; every later epoch and node reads them memory-mapped.

Only where a split's decoded crops fit :data:`LIMIT_BYTES` (``tiny`` and ``small`` at 64 px: about 0.2 and 1.8 GB):
the real release's 2.6 M crops would take 32 GB at 64 px and 390 GB at 224 px, so there the crops are decoded each
time, as before. The cache's arrays are written atomically and checksummed like every store artifact; each track
also records its frame numbers, checked against its crop folder when read.
"""

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from harness.data.affwild2 import Split
from harness.errors import StoreError
from harness.models.context import TrackCache
from harness.models.face_data import FaceImages, Resizer, crop_bytes, loader, resize_key, track_batches
from harness.progress import bar

CACHE_NAME = "face-pixels"
VERSION = "1"
PIXELS, FRAMES = "pixels", "frames"  # the cache's groups: per track (:func:`entry`) its decoded crops and frames
LIMIT_BYTES = 4 << 30  # the largest split whose decoded crops are cached (4 GiB)
DECODE_BATCH = 256


def material(image_size: int, crop_source: dict, resize: Resizer = "pil") -> dict:
    """What determines the cache's content besides the dataset: the size, which crops (``crop_source``) and who
    resizes them (left out for PIL, as before the choice existed)."""
    return {
        "version": VERSION,
        "image_size": image_size,
        **crop_source,
        **resize_key(resize),
    }


def fits(split: Split, names: Sequence[str], image_size: int, limit: int | None = None) -> bool:
    """Whether the decoded crops of ``names`` take at most ``limit`` bytes (default :data:`LIMIT_BYTES`)."""
    crops = sum(len(split.face_frames(name)) for name in names)
    return crops * crop_bytes(image_size) <= (LIMIT_BYTES if limit is None else limit)


def entry(split: Split, name: str, frames: np.ndarray) -> str:
    """The cache's name for a track's crops: the track and a digest of its crop folder, so that two folders of crops
    for one track name (``abaw predict`` cuts one per crop setting; a RetinaFace view and the release's crops) never
    share an entry."""
    folder = split.frame_path(name, int(frames[0])).parent
    return f"{name}.{hashlib.sha256(str(folder).encode()).hexdigest()[:12]}"


def fill(
    cache: TrackCache, split: Split, names: Sequence[str], image_size: int, workers: int, resize: Resizer = "pil"
) -> None:
    """Decode the crops of every track of ``names`` with faces that the cache lacks, or holds for other frames than
    its crop folder now lists (crops renamed in place), each track stored as it completes."""
    frames = {name: split.face_frames(name) for name in names}
    entries = {name: entry(split, name, frames[name]) for name in names if len(frames[name])}
    listed = list(entries.values())
    missing = set(cache.missing_tracks(PIXELS, listed)) | set(cache.missing_tracks(FRAMES, listed))
    todo = [
        name
        for name, key in entries.items()
        if key in missing or not np.array_equal(cache.read_track(FRAMES, key, mmap=False), frames[name])
    ]
    if not todo:
        return
    paths = [split.frame_path(name, int(f)) for name in todo for f in frames[name]]
    batches = track_batches([len(frames[name]) for name in todo], DECODE_BATCH)
    queue = iter(todo)
    name, parts = next(queue), []
    with bar() as progress:
        job = progress.add_task(f"decoding face crops of {split.name} ({len(todo)} tracks)", total=len(paths))
        crops = FaceImages(paths, image_size, resize=resize)
        for pixels, _ in loader(crops, DECODE_BATCH, workers, batches=batches, pin=False):
            parts.append(pixels.numpy())
            progress.update(job, advance=len(pixels))
            if sum(len(part) for part in parts) == len(frames[name]):
                cache.write_track(PIXELS, entries[name], np.concatenate(parts))
                cache.write_track(FRAMES, entries[name], np.asarray(frames[name], np.int64))
                name, parts = next(queue, None), []


class DecodedCrops:
    """The cached pixels of a set of tracks, looked up by crop path: ``pixels(path)`` is what ``decode_crop`` gives
    for that file. Holds file names and offsets, not arrays, so a DataLoader worker (forked or spawned) maps the
    files itself."""

    def __init__(self, files: list[tuple[str, int, tuple[int, ...]]], rows: dict[str, tuple[int, int]]) -> None:
        self.files = files
        self.rows = rows
        self._maps: dict[int, np.ndarray] = {}

    def __contains__(self, path: Path) -> bool:
        return str(path) in self.rows

    def pixels(self, path: Path) -> torch.Tensor:
        """The (3, size, size) uint8 crop of ``path``, a copy the caller may modify."""
        file, row = self.rows[str(path)]
        if file not in self._maps:
            filename, offset, shape = self.files[file]
            self._maps[file] = np.memmap(filename, np.uint8, "r", offset, shape)
        return torch.from_numpy(np.array(self._maps[file][row]))

    def __getstate__(self) -> dict:
        return {"files": self.files, "rows": self.rows, "_maps": {}}


def decoded_crops(cache: TrackCache, split: Split, names: Sequence[str], image_size: int) -> DecodedCrops:
    """The cached crops of ``names`` (all filled: :func:`fill`), mapped by crop path."""
    files: list[tuple[str, int, tuple[int, ...]]] = []
    rows: dict[str, tuple[int, int]] = {}
    for name in names:
        frames = split.face_frames(name)
        if not len(frames):
            continue
        key = entry(split, name, frames)
        stored = np.asarray(cache.read_track(FRAMES, key, mmap=False))
        pixels = cache.read_track(PIXELS, key, mmap=True)
        if not np.array_equal(stored, frames) or pixels.shape != (len(frames), 3, image_size, image_size):
            raise StoreError(
                f"the decoded face crops of track {name!r} in {getattr(cache, 'path', 'the store')} are "
                f"{pixels.shape[0]} crops of {pixels.shape[1:]} for frames {_span(stored)}, its crop folder now "
                f"lists {len(frames)} for frames {_span(frames)} at {(3, image_size, image_size)}: the crops changed "
                f"while this run read them; run again"
            )
        index = len(files)
        files.append((str(pixels.filename), int(pixels.offset), tuple(pixels.shape)))
        rows.update((str(split.frame_path(name, int(f))), (index, row)) for row, f in enumerate(frames))
    return DecodedCrops(files, rows)


def _span(frames: np.ndarray) -> str:
    return f"{int(frames[0])}-{int(frames[-1])}" if len(frames) else "none"
