"""Graphed inference (harness.models.cuda_graph): the eager forward's outputs, on a GPU when there is one."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import harness.models.video as video_module
from harness.models.cuda_graph import MIN_FULL_BATCHES, GraphedInference, inference_forward
from harness.models.training import mixed_precision, to_host_later
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


def test_the_cpu_and_a_few_full_batches_keep_the_module_itself():
    net = _kind("test_efficientnet", torch.device("cpu")).net_
    assert inference_forward(net, SHAPE, torch.device("cpu"), full_batches=100) is net
    assert inference_forward(net, SHAPE, torch.device("cuda"), full_batches=MIN_FULL_BATCHES - 1) is net


def test_host_copies_on_the_cpu_are_the_values_at_once():
    values = torch.arange(6.0).reshape(2, 3)
    (copied,) = to_host_later(values)()
    np.testing.assert_array_equal(copied, values.numpy())


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
def test_a_module_that_cannot_be_captured_runs_eagerly_once_warned_on_the_callers_stream():
    class Syncing(torch.nn.Module):  # .item() waits for the device: forbidden while capturing
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            total = pixels.float().sum() * self.scale
            return total.reshape(1), torch.full((1,), total.item())

    on = torch.device("cuda")
    module = Syncing().to(on).eval()
    stream = torch.cuda.current_stream(on)
    with pytest.warns(UserWarning, match="could not be captured"):
        assert inference_forward(module, SHAPE, on, full_batches=MIN_FULL_BATCHES) is module
    assert torch.cuda.current_stream(on) == stream
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not tried (nor warned) again
        assert inference_forward(module, SHAPE, on, full_batches=MIN_FULL_BATCHES) is module
    assert module(_pixels(on))[0].item() >= 0


@gpu
def test_the_video_kind_extracts_through_decoding_workers_and_pinned_memory_as_eagerly(tmp_path, monkeypatch):
    """The extraction loop itself: replays beside the DataLoader's pin-memory thread, outputs copied to the host
    without blocking, a short last batch run eagerly; the same outputs as the eager loop."""
    on = torch.device("cuda")
    batch = 4
    kind = _kind("test_efficientnet", on, batch_size=batch, image_size=SHAPE[-1], workers=2)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(MIN_FULL_BATCHES * batch + 3):
        paths.append(tmp_path / f"{index:05d}.jpg")
        Image.fromarray(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)).save(paths[-1])
    forwards = []

    def spying(*args, **kwargs):
        forwards.append(inference_forward(*args, **kwargs))
        return forwards[-1]

    monkeypatch.setattr(video_module, "inference_forward", spying)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture fails the test
        extracted = list(kind._forward(kind.net_, paths))
    assert isinstance(forwards[0], GraphedInference)
    assert [len(output) for _, output in extracted] == [batch] * MIN_FULL_BATCHES + [3]
    eager = list(kind._forward(kind.net_, paths, batches=[[i] for i in range(len(paths))]))
    assert forwards[1] is kind.net_  # single-crop batches: no capture
    np.testing.assert_allclose(
        np.concatenate([output for _, output in extracted]),
        np.concatenate([output for _, output in eager]),
        atol=2e-2,
        rtol=2e-2,
    )
