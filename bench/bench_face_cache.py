"""Decoded face crops from the store's shared cache vs decoding the JPEGs: one pass over the crops as a smoke video
epoch reads them (64 px, batch 32, decoded in the main process), side by side in one run, and the one-time cost of
filling the cache.

    python bench/bench_face_cache.py [--crops 4096] [--size 64] [--batch 32]

Prints crops/s for each and their ratio. A smoke video node reads each training crop once an epoch (10 epochs) and
each validation crop once an evaluation, and the seven default video nodes of ``abaw regress`` read the same crops:
decoded once into the cache, every later pass is a memory-mapped read.
"""

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_video import write_crops

from harness.data.media import face_path, list_face_frames
from harness.models import face_cache
from harness.models.face_data import FaceImages, loader
from harness.store import Store


@dataclass
class _Split:
    """One track of crops, shaped like a dataset split as far as the cache looks."""

    folder: Path
    name: str = "train"
    names: tuple[str, ...] = ("track",)

    def face_frames(self, name: str) -> np.ndarray:
        return list_face_frames(self.folder)

    def frame_path(self, name: str, frame: int) -> Path:
        return face_path(self.folder, frame)


def _pass(paths: list[Path], size: int, batch: int, decoded=None) -> float:
    start = time.perf_counter()
    for _ in loader(FaceImages(paths, size, decoded=decoded), batch, workers=0):
        pass
    return time.perf_counter() - start


def run(crops: int, size: int, batch: int, repeats: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        split = _Split(Path(folder) / "crops")
        split.folder.mkdir()
        paths = write_crops(split.folder, crops)
        cache = Store(Path(folder) / "store").node("cache-face-pixels-bench")
        start = time.perf_counter()
        face_cache.fill(cache, split, split.names, size, workers=0)
        fill_s = time.perf_counter() - start
        decoded = face_cache.decoded_crops(cache, split, split.names, size)
        decode_s = min(_pass(paths, size, batch) for _ in range(repeats))
        cached_s = min(_pass(paths, size, batch, decoded) for _ in range(repeats))
    return {
        "crops": crops,
        "size": size,
        "batch": batch,
        "decoding_crops_per_s": round(crops / decode_s, 1),
        "cached_crops_per_s": round(crops / cached_s, 1),
        "fill_crops_per_s": round(crops / fill_s, 1),
        "cached_over_decoding": round(decode_s / cached_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=4096)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.crops, args.size, args.batch)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['crops']} crops at {result['size']} px, batch {result['batch']}, main process: decoding "
        f"{result['decoding_crops_per_s']:,} crops/s, from the cache {result['cached_crops_per_s']:,} crops/s "
        f"({result['cached_over_decoding']}x); filling the cache once {result['fill_crops_per_s']:,} crops/s"
    )


if __name__ == "__main__":
    main()
