"""Extraction pipeline vs raw forward: face crops decoded from JPEG in DataLoader workers through the static video
kind's inference path, against the same model, batch size and precision (bf16 autocast on a GPU) on uint8 pixels
already on the model's device (same run).

    python bench/bench_video.py [--backbone efficientnet_b1 --size 224] [--images 512] [--batch 64] [--workers 2]

Prints images/s for both and their ratio (goal in DESIGN.md: pipeline >= 0.9x the raw forward; on a GPU, where the
inference path replays each full batch from a CUDA graph, also the ratio to the bare forward so replayed), and the
loader's rate alone (decoding, collating, pinning, the copy to the device; no model), with the kind's resizer and with
PIL's: a pipeline below both the raw forward and the loader loses its time where the two meet, in the main process.
``--workers`` is the spec's setting; the inference path decodes in ``decoding_workers`` processes (on a GPU every
core of the CPU budget but one: set ``ABAW_THREADS`` to try fewer).

With ``--train``: training images/s of the video kind's step through its training loader (decoding and random flips
in ``--workers`` processes, as a spec's ``workers`` sets them) against the same steps on pixels already on the
device.

With ``--variants`` (a GPU): where the pipeline's time goes, side by side in one process: the raw forward eager and
replayed from a CUDA graph, the loader alone pinned and not, the inference path, and its loop run eagerly: as it is,
with the main process's torch threads at 1, with half the decoding workers, and with the graph again; then the
loader and the graphed loop with the crops decoded at their stored size and resized on the GPU (what moving the
resize there would give). Each loop also reports the share of its time spent waiting for the loader.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from harness.models.cuda_graph import GraphedInference
from harness.models.face_data import FaceImages, Resizer, crop_bytes, loader
from harness.models.training import device, mixed_precision, to_host_later
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


def run(
    backbone: str, size: int, images: int, batch: int, workers: int, repeats: int = 3, resize: Resizer = "torch"
) -> dict:
    settings = VideoSettings(
        backbone=backbone, image_size=size, pretrained=False, batch_size=batch, workers=workers, resize=resize
    )
    kind = VideoKind(settings, "expr", 0)
    on = device()
    kind.net_ = kind._build().to(on).eval()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_crops(Path(folder), images)
        pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=on)
        n_batches = images // batch

        def raw(forward) -> None:
            _bare_forward(forward, pixels, n_batches)

        def pipeline() -> None:
            for _ in kind._forward(kind.net_, paths[: n_batches * batch]):
                pass

        def loader_alone(resize) -> None:
            crops = FaceImages(paths[: n_batches * batch], size, resize=resize)
            for decoded, _ in loader(crops, batch, inference_workers(workers, on, batch * crop_bytes(size))):
                decoded.to(on, non_blocking=True)
            if on.type == "cuda":
                torch.cuda.synchronize()

        jobs = {
            "raw_forward": lambda: raw(kind.net_),
            "pipeline": pipeline,
            "loader": lambda: loader_alone(settings.resize),
        }
        if settings.resize != "pil":  # and with PIL's resize, for comparison (smoke's resizer; before 2026-12-04)
            jobs["loader_pil"] = lambda: loader_alone("pil")
        if on.type == "cuda":  # the pipeline replays a CUDA graph: the bare forward so too, for comparison
            graphed = GraphedInference(kind.net_, (batch, 3, size, size), on)
            jobs["raw_graphed"] = lambda: raw(graphed)
        raw(kind.net_)  # warm-up
        timings = {}
        for name, job in jobs.items():
            best = min(_timed(job) for _ in range(repeats))
            timings[name] = n_batches * batch / best
    graphed_rate = timings.get("raw_graphed")
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
        "resize": settings.resize,
        "loader_pil_images_per_s": round(timings.get("loader_pil", timings["loader"]), 1),
        "ratio": round(timings["pipeline"] / timings["raw_forward"], 3),
        "raw_graphed_images_per_s": graphed_rate and round(graphed_rate, 1),
        "ratio_to_graphed": graphed_rate and round(timings["pipeline"] / graphed_rate, 3),
    }


def run_training(
    backbone: str, size: int, images: int, batch: int, workers: int, repeats: int = 3, resize: Resizer = "torch"
) -> dict:
    """Training images/s of the video kind's step (:func:`train_step`, AdamW, EXPR's focal loss): through the
    training loader (JPEG crops decoded and flipped at random in ``workers`` processes, shuffled, pinned on a GPU) vs
    the same steps on uint8 pixels already on the device."""
    settings = VideoSettings(
        backbone=backbone, image_size=size, pretrained=False, batch_size=batch, workers=workers, resize=resize
    )
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
            data = FaceImages(paths, size, kind.task_def.target_tensor(labels), flip=True, resize=settings.resize)
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


def run_variants(
    backbone: str, size: int, images: int, batch: int, repeats: int = 2, resize: Resizer = "torch"
) -> dict:
    """Images/s of each variant (see the module's docstring); CUDA only."""
    settings = VideoSettings(backbone=backbone, image_size=size, pretrained=False, batch_size=batch, resize=resize)
    kind = VideoKind(settings, "expr", 0)
    on = device()
    net = kind.net_ = kind._build().to(on).eval()
    workers = inference_workers(settings.workers, on, batch * crop_bytes(size))
    try:
        graphed, capture_error = GraphedInference(net, (batch, 3, size, size), on), None
    except RuntimeError as error:  # a model that cannot be captured: the other rows still count
        graphed, capture_error = None, str(error)[:300]
    with tempfile.TemporaryDirectory() as folder:
        paths = write_crops(Path(folder), images)
        n_batches = images // batch
        crops = FaceImages(paths[: n_batches * batch], size, resize=settings.resize)
        stored = StoredSizeCrops(crops.paths)
        pixels = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=on)
        waits: dict[str, float] = {}

        def raw(forward) -> None:
            _bare_forward(forward, pixels, n_batches)

        def loader_alone(pin: bool, data: Dataset = crops) -> None:
            for decoded, _ in DataLoader(data, batch_size=batch, num_workers=workers, pin_memory=pin):
                decoded.to(on, non_blocking=True)
            torch.cuda.synchronize()

        def loop(name: str, forward, n_workers: int, threads: int, data: Dataset = crops) -> None:
            """The inference path's loop (outputs copied to the host without blocking, waited for one batch late),
            timing the waits for the next batch."""
            before, waited = torch.get_num_threads(), 0.0
            torch.set_num_threads(threads)
            previous = None
            with torch.no_grad():
                batches = iter(DataLoader(data, batch_size=batch, num_workers=n_workers, pin_memory=True))
                while True:
                    started = time.perf_counter()
                    item = next(batches, None)
                    waited += time.perf_counter() - started
                    if item is None:
                        break
                    with mixed_precision(on):
                        embedding, output = forward(item[0].to(on, non_blocking=True))
                    current = to_host_later(embedding.float(), output.float())
                    if previous is not None:
                        previous()
                    previous = current
            previous()
            torch.set_num_threads(before)
            waits[name] = waited

        threads = torch.get_num_threads()
        jobs = {
            "raw_eager": lambda: raw(net),
            "raw_cuda_graph": lambda: raw(graphed),
            "loader_pinned": lambda: loader_alone(True),
            "loader_unpinned": lambda: loader_alone(False),
            "pipeline": lambda: [None for _ in kind._forward(net, crops.paths)],
            "loop": lambda: loop("loop", net, workers, threads),
            "loop_1_thread": lambda: loop("loop_1_thread", net, workers, 1),
            "loop_half_workers": lambda: loop("loop_half_workers", net, max(1, workers // 2), threads),
            "loop_cuda_graph": lambda: loop("loop_cuda_graph", graphed, workers, 1),
            "loader_stored_size": lambda: loader_alone(True, stored),
            "loop_cuda_graph_gpu_resize": lambda: loop(
                "loop_cuda_graph_gpu_resize", lambda pixels: graphed(_resized(pixels, size)), workers, 1, stored
            ),
        }
        if graphed is None:
            jobs = {name: job for name, job in jobs.items() if "graph" not in name}
        raw(net)  # warm-up
        rates = {}
        for name, job in jobs.items():
            best = min(_timed(job) for _ in range(repeats))
            rates[name] = round(n_batches * batch / best, 1)
    return {
        "backbone": backbone,
        "image_size": size,
        "batch": batch,
        "decoding_workers": workers,
        "main_threads": threads,
        "cuda_graph_error": capture_error,
        "images_per_s": rates,
        "loader_wait_share_last_pass": {
            name: round(waits[name] * rates[name] / (n_batches * batch), 3) for name in waits
        },
    }


def _bare_forward(forward, pixels: torch.Tensor, n_batches: int) -> None:
    """``n_batches`` forwards of the same pixels, already on the model's device, outputs back to the host as in the
    pipeline; waits for the device at the end."""
    with torch.no_grad(), mixed_precision(pixels.device):
        for _ in range(n_batches):
            embedding, output = forward(pixels)
            embedding.float().cpu(), output.float().cpu()
    if pixels.is_cuda:
        torch.cuda.synchronize()


class StoredSizeCrops(Dataset):
    """The crops decoded at their stored size (no resize in the worker): what a GPU-side resize would read."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[index]) as image:
            rgb = np.asarray(image.convert("RGB"))
        return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous(), index


def _resized(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 pixels resized bilinearly on their device (not PIL's values: a bench variant, not the harness)."""
    resized = F.interpolate(pixels.float(), size=(size, size), mode="bilinear", align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


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
    parser.add_argument("--variants", action="store_true", help="where the pipeline's time goes (a GPU)")
    parser.add_argument("--resize", choices=["pil", "torch"], default="torch", help="the crops' resizer (smoke: pil)")
    a = parser.parse_args()
    if a.variants:
        result = run_variants(a.backbone, a.size, a.images, a.batch, a.repeats, a.resize)
    else:
        measure = run_training if a.train else run
        result = measure(a.backbone, a.size, a.images, a.batch, a.workers, a.repeats, a.resize)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
