"""Extraction pipeline vs raw forward: face crops decoded from JPEG in DataLoader workers through the static video
kind's inference path, against the same model and batch size on tensors already in memory (same run).

    python bench/bench_video.py [--backbone efficientnet_b1 --size 224] [--images 512] [--batch 64] [--workers 2]

Prints images/s for both and their ratio (goal in DESIGN.md: pipeline >= 0.9x the raw forward).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.models.training import device
from harness.models.video import VideoKind, VideoSettings, inference_workers


def write_crops(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """112×112 JPEG crops with some structure (not flat noise), as the organizers ship them."""
    rng = np.random.default_rng(seed)
    paths = []
    base = rng.integers(0, 255, (8, 8, 3)).astype(np.uint8)
    for index in range(count):
        tile = np.kron(np.roll(base, index, axis=0), np.ones((14, 14, 1), np.uint8))
        path = folder / f"{index + 1:05d}.jpg"
        Image.fromarray(tile).save(path, quality=92)
        paths.append(path)
    return paths


def run(backbone: str, size: int, images: int, batch: int, workers: int, repeats: int = 3) -> dict:
    settings = VideoSettings(backbone=backbone, image_size=size, pretrained=False, batch_size=batch, workers=workers)
    kind = VideoKind(settings, "expr", 0)
    kind.net_ = kind._build().to(device()).eval()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_crops(Path(folder), images)
        tensors = torch.randn(batch, 3, size, size)
        n_batches = images // batch

        def raw() -> None:
            with torch.no_grad():
                for _ in range(n_batches):
                    kind.net_(tensors.to(device()))
                if device().type == "cuda":
                    torch.cuda.synchronize()

        def pipeline() -> None:
            for _ in kind._forward(kind.net_, paths[: n_batches * batch]):
                pass

        raw()  # warm-up
        timings = {}
        for name, job in (("raw_forward", raw), ("pipeline", pipeline)):
            best = min(_timed(job) for _ in range(repeats))
            timings[name] = n_batches * batch / best
    return {
        "backbone": backbone,
        "image_size": size,
        "batch": batch,
        "workers": workers,
        "decoding_workers": inference_workers(workers, device()),  # what the inference path uses
        "device": str(device()),
        "raw_images_per_s": round(timings["raw_forward"], 1),
        "pipeline_images_per_s": round(timings["pipeline"], 1),
        "ratio": round(timings["pipeline"] / timings["raw_forward"], 3),
    }


def _timed(job) -> float:
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_b0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    result = run(arguments.backbone, arguments.size, arguments.images, arguments.batch, arguments.workers)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
