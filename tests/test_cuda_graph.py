"""Graphed inference (harness.models.cuda_graph): the eager forward's outputs, on a GPU when there is one."""

import numpy as np
import pytest
import torch
from PIL import Image

from harness.models.cuda_graph import GraphedInference, inference_forward
from harness.models.training import mixed_precision
from harness.models.video import VideoKind, VideoSettings

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
SHAPE = (8, 3, 64, 64)


def _kind(backbone: str, on: torch.device, **overrides) -> VideoKind:
    settings = {**VideoKind.profiles["smoke"], "backbone": backbone, "pretrained": False, **overrides}
    torch.manual_seed(0)
    kind = VideoKind(VideoSettings(**settings), "expr", 0)
    kind.net_ = kind._build().to(on).eval()
    return kind


def _eager(net: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad(), mixed_precision(pixels.device):
        return tuple(net(pixels))


def _pixels(on: torch.device, count: int = 8) -> torch.Tensor:
    return torch.randint(0, 256, (count, *SHAPE[1:]), dtype=torch.uint8, device=on)


def test_the_cpu_and_inputs_without_a_full_batch_keep_the_module_itself():
    net = _kind("test_efficientnet", torch.device("cpu")).net_
    assert inference_forward(net, SHAPE, torch.device("cpu"), full_batches=True) is net
    assert inference_forward(net, SHAPE, torch.device("cuda"), full_batches=False) is net


@gpu
@pytest.mark.parametrize("backbone", ["test_efficientnet", "test_vit"])
def test_replays_give_the_eager_outputs_and_outlive_the_next_replay(backbone):
    on = torch.device("cuda")
    net = _kind(backbone, on).net_
    batches = [_pixels(on) for _ in range(3)]
    forward = GraphedInference(net, SHAPE, on)
    replayed = [forward(pixels) for pixels in batches]  # kept while later batches replay
    for pixels, outputs in zip(batches, replayed, strict=True):
        for got, want in zip(outputs, _eager(net, pixels), strict=True):
            torch.testing.assert_close(got.float(), want.float(), atol=2e-2, rtol=2e-2)


@gpu
def test_other_shapes_run_eagerly_and_weight_updates_in_place_are_seen():
    on = torch.device("cuda")
    net = _kind("test_efficientnet", on).net_
    forward = GraphedInference(net, SHAPE, on)
    full = _pixels(on)
    short = full[:5]
    assert torch.equal(forward(short)[1], _eager(net, short)[1])  # not captured: the eager forward itself
    with torch.no_grad():
        net.out.bias.add_(1.0)
    torch.testing.assert_close(forward(full)[1].float(), _eager(net, full)[1].float(), atol=2e-2, rtol=2e-2)


@gpu
def test_the_video_kind_extracts_through_decoding_workers_and_pinned_memory_as_eagerly(tmp_path):
    """The extraction loop itself: its DataLoader's pin-memory thread runs beside the replays (a capture in the
    global mode while that thread pins memory fails)."""
    on = torch.device("cuda")
    kind = _kind("test_efficientnet", on, batch_size=SHAPE[0], image_size=SHAPE[-1], workers=2)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(3 * SHAPE[0] + 3):  # three full batches and a short one
        paths.append(tmp_path / f"{index:05d}.jpg")
        Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(paths[-1])
    extracted = list(kind._forward(kind.net_, paths))
    assert [len(output) for _, output in extracted] == [8, 8, 8, 3]
    eager = np.concatenate([output for _, output in kind._forward(kind.net_, paths, batches=[[i] for i in range(27)])])
    np.testing.assert_allclose(np.concatenate([output for _, output in extracted]), eager, atol=2e-2, rtol=2e-2)
