"""Face crops as tensors: JPEG decoding and resizing in DataLoader workers, in a fixed, seedable order.

Items are (split track, 1-based frame) pairs; the decoded image is resized to the model's input size and stays
uint8: the model normalises it on its own device (:func:`normalise`), so the workers, the shared-memory hand-over,
pinning and the host-to-GPU copy move a quarter of the bytes of float32 pixels.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from harness.cpu import decoding_workers
from harness.errors import DataError


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def normalise(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (batch, 3, H, W) pixels to float32 ``(x / 255 - mean) / std``, ``mean`` and ``std`` of shape (3,)."""
    return pixels.float().div_(255).sub_(mean.view(1, 3, 1, 1)).div_(std.view(1, 3, 1, 1))


# Who resizes a decoded crop to the model's input. PIL is the reference; with torch's uint8 bilinear kernel a 112 px
# crop decodes to 224 px in 360 µs against 685 (one thread, idle 2-core CPU) into byte-identical pixels (also at 128,
# 160, 240, 448 px); at other sizes the two differ by one level here and there (64, 72, 113, 260, 299, 380 px;
# docs/benchmarks.md, 2026-12-04).
Resizer = Literal["pil", "torch"]


def resize_key(resize: Resizer) -> dict[str, str]:
    """What store keys say of the resizer: nothing for PIL, the resizer before the choice existed, so that the keys
    of that time stay valid; ``{"resize": resize}`` otherwise."""
    return {} if resize == "pil" else {"resize": resize}


def crop_bytes(size: int) -> int:
    """The bytes of one decoded (3, size, size) uint8 crop."""
    return 3 * size * size


def decode_crop(path: Path, size: int, resize: Resizer = "pil") -> torch.Tensor:
    """The face crop at ``path`` as a (3, size, size) uint8 tensor: RGB, resized bilinearly (antialiased when
    shrinking) by PIL or by torch's uint8 kernel (:data:`Resizer`)."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if resize == "pil":
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    except OSError as error:
        raise DataError(f"{path}: cannot decode the face crop ({error})") from error
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
    if pixels.shape[1:] != (size, size):
        pixels = F.interpolate(pixels[None], size=(size, size), mode="bilinear", antialias=True)[0]
    return pixels.contiguous()


class DecodedPixels(Protocol):
    """Crops decoded beforehand (:class:`harness.models.face_cache.DecodedCrops`), by path."""

    def pixels(self, path: Path) -> torch.Tensor: ...


class FaceImages(Dataset):
    """Decodes ``paths[i]`` to a (3, size, size) uint8 tensor, or takes it from ``decoded`` (the same values);
    ``targets[i]`` (optional) rides along."""

    def __init__(
        self,
        paths: Sequence[Path],
        size: int,
        targets: np.ndarray | torch.Tensor | None = None,
        flip: bool = False,
        decoded: DecodedPixels | None = None,
        resize: Resizer = "pil",
    ) -> None:
        self.paths = list(paths)
        self.size = size
        self.resize = resize
        self.targets = None if targets is None else torch.as_tensor(targets)
        self.flip = flip
        self.decoded = decoded

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        pixels = decode_crop(path, self.size, self.resize) if self.decoded is None else self.decoded.pixels(path)
        if self.flip and torch.rand(()) < 0.5:
            pixels = pixels.flip(2)
        if self.targets is None:
            return pixels, index
        return pixels, self.targets[index]


def track_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of item indices that never cross a track boundary (tracks laid end to end, of ``lengths``).

    A track's outputs then depend on its own frames only, so recomputing one track (a resumed run, another rank
    of a sharded run) gives bit-identical results.
    """
    batches, start = [], 0
    for length in lengths:
        batches += [
            list(range(i, min(i + batch_size, start + length))) for i in range(start, start + length, batch_size)
        ]
        start += length
    return batches


def loader(
    dataset: FaceImages,
    batch_size: int,
    workers: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    batches: list[list[int]] | None = None,
    pin: bool = True,
) -> DataLoader:
    """A DataLoader decoding in ``workers`` processes (0: in the main process), seeded when shuffling;
    ``batches`` (lists of indices) replaces ``batch_size`` batching when given. ``workers`` is capped at the CPU
    budget (:mod:`harness.cpu`) unless the dataset flips at random, where the number of workers decides the draws.
    Batches come in pinned memory where there is a GPU (for copies that do not block), unless ``pin`` is False
    (batches that stay on the host)."""
    workers = decoding_workers(workers, random=dataset.flip)
    sizes = {"batch_sampler": batches} if batches is not None else {"batch_size": batch_size, "drop_last": drop_last}
    return DataLoader(
        dataset,
        shuffle=shuffle,
        generator=generator,
        num_workers=workers,
        pin_memory=pin and torch.cuda.is_available(),
        worker_init_fn=_seed_worker if workers else None,
        **sizes,
    )


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
