"""Extraction pipeline vs raw forward: face crops decoded from JPEG in DataLoader workers through the static video
kind's inference path, against the same model, batch size and precision (bf16 autocast on a GPU) on uint8 pixels
already on the model's device (same run).

    python bench/bench_video.py [--backbone efficientnet_b1 --size 224] [--images 512] [--batch 64] [--workers 2]

Prints images/s for both and their ratio (goal in DESIGN.md: pipeline >= 0.9x the raw forward), and the loader's
rate alone (decoding, collating, pinning, the copy to the device; no model): a pipeline below both the raw forward
and the loader loses its time where the two meet, in the main process. ``--workers`` is the spec's setting; the
inference path decodes in ``decoding_workers`` processes (on a GPU every core of the CPU budget but one: set
``ABAW_THREADS`` to try fewer).

With ``--train``: training images/s of the video kind's step through its training loader (decoding and random flips
in ``--workers`` processes, as a spec's ``workers`` sets them) against the same steps on pixels already on the
device.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.models.face_data import FaceImages, crop_bytes, loader
from harness.models.training import device, mixed_precision
from harness.models.video import VideoKind, VideoSettings, inference_workers, train_step
from harness.tasks import LossOptions


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
    on = device()
    kind.net_ = kind._build().to(on).eval()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_crops(Path(folder), images)
        pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=on)
        n_batches = images // batch

        def raw() -> None:
            with torch.no_grad(), mixed_precision(on):
                for _ in range(n_batches):
                    embedding, output = kind.net_(pixels)
                    embedding.float().cpu(), output.float().cpu()  # back to the host, as in the pipeline
            if on.type == "cuda":
                torch.cuda.synchronize()

        def pipeline() -> None:
            for _ in kind._forward(kind.net_, paths[: n_batches * batch]):
                pass

        def loader_alone() -> None:
            crops = FaceImages(paths[: n_batches * batch], size)
            for decoded, _ in loader(crops, batch, inference_workers(workers, on, batch * crop_bytes(size))):
                decoded.to(on, non_blocking=True)
            if on.type == "cuda":
                torch.cuda.synchronize()

        raw()  # warm-up
        timings = {}
        for name, job in (("raw_forward", raw), ("pipeline", pipeline), ("loader", loader_alone)):
            best = min(_timed(job) for _ in range(repeats))
            timings[name] = n_batches * batch / best
    return {
        "backbone": backbone,
        "image_size": size,
        "batch": batch,
        "workers": workers,
        "decoding_workers": inference_workers(workers, on, batch * crop_bytes(size)),  # what the inference path uses
        "device": str(on),
        "raw_images_per_s": round(timings["raw_forward"], 1),
        "pipeline_images_per_s": round(timings["pipeline"], 1),
        "loader_images_per_s": round(timings["loader"], 1),
        "ratio": round(timings["pipeline"] / timings["raw_forward"], 3),
    }


def run_training(backbone: str, size: int, images: int, batch: int, workers: int, repeats: int = 3) -> dict:
    """Training images/s of the video kind's step (:func:`train_step`, AdamW, EXPR's focal loss): through the
    training loader (JPEG crops decoded and flipped at random in ``workers`` processes, shuffled, pinned on a GPU) vs
    the same steps on uint8 pixels already on the device."""
    settings = VideoSettings(backbone=backbone, image_size=size, pretrained=False, batch_size=batch, workers=workers)
    kind = VideoKind(settings, "expr", 0)
    on = device()
    net = kind._build().to(on).train()
    labels = np.arange(images) % kind.task_def.width
    criterion = kind.task_def.criterion(labels, LossOptions(focal_gamma=settings.focal_gamma)).to(on)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    n_batches = images // batch
    with tempfile.TemporaryDirectory() as folder:
        paths = write_crops(Path(folder), images)
        pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=on)
        targets = torch.as_tensor(labels[:batch], device=on)

        def raw() -> None:
            for _ in range(n_batches):
                train_step(net, optimizer, criterion, pixels, targets, on)
            if on.type == "cuda":
                torch.cuda.synchronize()

        def pipeline() -> None:
            data = FaceImages(paths, size, kind.task_def.target_tensor(labels), flip=True)
            generator = torch.Generator().manual_seed(0)
            for crops, crop_targets in loader(data, batch, workers, shuffle=True, generator=generator, drop_last=True):
                train_step(net, optimizer, criterion, crops, crop_targets, on)
            if on.type == "cuda":
                torch.cuda.synchronize()

        raw()  # warm-up
        timings = {
            name: n_batches * batch / min(_timed(job) for _ in range(repeats))
            for name, job in (("raw", raw), ("pipeline", pipeline))
        }
    return {
        "backbone": backbone,
        "image_size": size,
        "batch": batch,
        "training_workers": workers,
        "device": str(on),
        "train_raw_images_per_s": round(timings["raw"], 1),
        "train_pipeline_images_per_s": round(timings["pipeline"], 1),
        "train_ratio": round(timings["pipeline"] / timings["raw"], 3),
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
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each; the best is kept")
    parser.add_argument("--train", action="store_true", help="training steps instead of the extraction pipeline")
    arguments = parser.parse_args()
    measure = run_training if arguments.train else run
    result = measure(
        arguments.backbone, arguments.size, arguments.images, arguments.batch, arguments.workers, arguments.repeats
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
