"""The static video kind: architecture, local pretrained weights through the real loading path, state round trip."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from harness.errors import SpecError
from harness.models.face_data import FaceImages
from harness.models.video import VideoKind, VideoSettings
from harness.spec import load_spec, resolve
from harness.tasks import LossOptions

REPO_SYSTEMS = Path(__file__).resolve().parents[1] / "systems"
SMOKE_BACKBONES = [("test_efficientnet", 64), ("test_efficientnet_gn", 72), ("test_vit", 64)]


def settings(**overrides) -> VideoSettings:
    return VideoSettings(**{**VideoKind.profiles["smoke"], **overrides})


@pytest.mark.parametrize(("backbone", "size"), SMOKE_BACKBONES)
def test_local_pretrained_weights_load_through_the_same_path(tmp_path: Path, backbone: str, size: int) -> None:
    import timm

    reference = timm.create_model(backbone, num_classes=0, **({"img_size": size} if "vit" in backbone else {}))
    weights = {name: tensor.contiguous() for name, tensor in reference.state_dict().items()}
    file = tmp_path / f"{backbone}.safetensors"
    save_file(weights, file)
    net = VideoKind(settings(backbone=backbone, image_size=size, pretrained=True, weights=str(file)), "va", 0)._build()
    for name, tensor in weights.items():
        assert torch.equal(net.backbone.state_dict()[name], tensor), name
    embedding, output = net.eval()(torch.zeros(2, 3, size, size))
    assert embedding.shape == (2, 256) and output.shape == (2, 2)


def test_smoke_vit_of_the_spec_builds_offline_and_its_weights_load_through_the_paper_path(tmp_path: Path) -> None:
    """video_vit's smoke ViT (backbone_args over timm's test_vit): a file saved from timm's own build of those
    arguments loads through pretrained_cfg_overlay as paper weights do, and a fitted state round-trips."""
    import timm

    s = resolve(load_spec("video_vit", REPO_SYSTEMS), "smoke").settings
    assert s.backbone_args and not s.pretrained
    reference = timm.create_model(s.backbone, num_classes=0, img_size=s.image_size, **s.backbone_args)
    weights = {name: tensor.contiguous() for name, tensor in reference.state_dict().items()}
    save_file(weights, tmp_path / "vit.safetensors")
    kind = VideoKind(s.model_copy(update={"pretrained": True, "weights": str(tmp_path / "vit.safetensors")}), "expr", 0)
    kind.net_ = kind._build().eval()
    for name, tensor in weights.items():
        assert torch.equal(kind.net_.backbone.state_dict()[name], tensor), name
    assert kind.net_.backbone.patch_embed.patch_size == (s.backbone_args["patch_size"],) * 2
    copy = VideoKind(s, "expr", 0).load_state(kind.state())
    images = torch.randint(0, 256, (2, 3, s.image_size, s.image_size), dtype=torch.uint8)
    assert torch.equal(kind.net_(images)[1], copy.net_.eval()(images)[1])


def test_weights_folder_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    save_file(
        {k: v.contiguous() for k, v in timm.create_model("test_efficientnet").state_dict().items()},
        tmp_path / "test_efficientnet.safetensors",
    )
    monkeypatch.setenv("ABAW_WEIGHTS", str(tmp_path))
    assert VideoKind(settings(pretrained=True), "expr", 0)._weights_file() == tmp_path / "test_efficientnet.safetensors"


def _saved(tmp_path: Path, backbone: str, name: str, prefix: str = "") -> Path:
    import timm

    state = timm.create_model(backbone).state_dict()
    save_file({prefix + k: v.contiguous() for k, v in state.items()}, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    ("source", "prefix", "message"),
    [
        (
            "test_vit",
            "",
            r"(\d+) of the \1 tensors of backbone 'test_efficientnet' are not in this checkpoint \(first: "
            r"conv_stem\.weight, .*its keys begin blocks\.0\.attn",
        ),
        ("test_efficientnet", "model.", r"(\d+) of the \1 tensors .*its keys begin model\."),
    ],
)
def test_weights_of_another_architecture_or_with_a_prefix_are_refused(
    tmp_path: Path, source: str, prefix: str, message: str
) -> None:
    """timm loads non-strictly into a headless backbone: without the check these would train from random weights."""
    file = _saved(tmp_path, source, "w.safetensors", prefix)
    kind = VideoKind(settings(backbone="test_efficientnet", pretrained=True, weights=str(file)), "va", 0)
    with pytest.raises(SpecError, match=rf"w\.safetensors: {message}.*expected timm.s checkpoint of test_eff"):
        kind._build()


def test_a_release_in_a_layout_timm_converts_loads_as_timm_loads_it(tmp_path: Path) -> None:
    """An OpenCLIP ViT keeps timm's tensors under ``visual.trunk.``: timm's ViT conversion strips it on loading, and
    the check sees the checkpoint as converted (an EfficientNet, never converted by timm, keeps the prefix refused)."""
    import timm

    reference = timm.create_model("test_vit", num_classes=0, img_size=64)
    weights = {name: tensor.contiguous() for name, tensor in reference.state_dict().items()}
    save_file({f"visual.trunk.{name}": tensor for name, tensor in weights.items()}, tmp_path / "open_clip.safetensors")
    file = str(tmp_path / "open_clip.safetensors")
    net = VideoKind(settings(backbone="test_vit", image_size=64, pretrained=True, weights=file), "va", 0)._build()
    for name, tensor in weights.items():
        assert torch.equal(net.backbone.state_dict()[name], tensor), name


def test_a_backbone_that_did_not_take_the_checkpoints_values_is_refused(tmp_path: Path) -> None:
    """Names alone are not enough: a conversion other than the module's would leave the right names with random
    values (here the backbone is changed after loading, as such a load would leave it)."""
    import timm

    from harness.models.backbone_weights import check_loaded

    backbone = timm.create_model("test_efficientnet", num_classes=0)
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, tmp_path / "w.safetensors")
    check_loaded(backbone, tmp_path / "w.safetensors", "test_efficientnet")
    with torch.no_grad():
        backbone.conv_stem.weight.add_(1.0)
    with pytest.raises(SpecError, match=r"1 of the \d+ tensors of backbone 'test_eff.* did not take .*conv_stem"):
        check_loaded(backbone, tmp_path / "w.safetensors", "test_efficientnet")


def test_a_checkpoint_of_a_larger_architecture_is_refused(tmp_path: Path) -> None:
    """Every backbone tensor in the file is not enough: a deeper model's extra blocks mean another architecture."""
    import timm

    state = {k: v.contiguous() for k, v in timm.create_model("test_efficientnet").state_dict().items()}
    state["blocks.9.0.conv_pw.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "deeper.safetensors")
    kind = VideoKind(settings(pretrained=True, weights=str(tmp_path / "deeper.safetensors")), "va", 0)
    with pytest.raises(SpecError, match=r"deeper\.safetensors: 1 tensors of this checkpoint are not in backbone "):
        kind._build()


def test_a_torn_or_foreign_file_and_a_snapshot_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torn = tmp_path / "torn.safetensors"
    torn.write_bytes(b"\x10\x00")
    with pytest.raises(SpecError, match=r"cannot load its weights from .*torn\.safetensors \(.*\); expected timm's"):
        VideoKind(settings(pretrained=True, weights=str(torn)), "va", 0)._build()
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(SpecError, match=r"cannot load its weights from .*list\.pth"):
        VideoKind(settings(pretrained=True, weights=str(tmp_path / "list.pth")), "va", 0)._build()
    with pytest.raises(SpecError, match=r"backbone 'test_efficientnett' is not a timm model; did you mean 'test_eff"):
        VideoKind(settings(backbone="test_efficientnett", pretrained=True, weights=str(torn)), "va", 0)._build()
    snapshot = tmp_path / "hub" / "test_efficientnet"
    snapshot.mkdir(parents=True)
    with pytest.raises(SpecError, match=r"test_efficientnet is a folder without model\.safetensors or pytorch_"):
        VideoKind(settings(pretrained=True, weights=str(snapshot)), "va", 0)._weights_file()
    file = _saved(snapshot, "test_efficientnet", "model.safetensors")
    assert VideoKind(settings(pretrained=True, weights=str(snapshot)), "va", 0)._weights_file() == file
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ABAW_WEIGHTS", "~/hub")  # a snapshot folder named after the backbone, under a ~ path
    assert VideoKind(settings(pretrained=True), "va", 0)._weights_file() == file


def test_missing_weights_under_paper_say_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABAW_WEIGHTS", str(tmp_path))
    kind = VideoKind(VideoSettings(**VideoKind.profiles["paper"]), "va", 0)
    with pytest.raises(
        SpecError,
        match=r"weights for backbone 'efficientnet_b1' not found at .*efficientnet_b1\.safetensors.*ABAW_WEIGHTS",
    ):
        kind._build()


def test_head_is_dropout_linear_batchnorm_tanh_and_outputs_per_task() -> None:
    net = VideoKind(settings(), "expr", 0)._build()
    assert [type(m) for m in net.embed] == [nn.Dropout, nn.Linear, nn.BatchNorm1d, nn.Tanh]
    embedding, logits = net.eval()(torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8))
    assert net.out.out_features == 8 and torch.equal(logits, net.out(embedding))  # logits: the focal loss takes them
    va = VideoKind(settings(), "va", 0)._build()
    _, output = va.eval()(torch.randint(0, 256, (3, 3, 48, 48), dtype=torch.uint8))
    assert output.abs().max() <= 1 and va.out.out_features == 2


def test_action_units_get_12_logits_weighted_bce_and_probabilities_as_outputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = [tmp_path / f"{i}.jpg" for i in range(3)]
    for path in paths:
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(path)
    kind = VideoKind(settings(), "au", 0)
    net = kind._build().eval()
    assert net.out.out_features == 12 and net.prior.shape == (12,)
    ((embedding, stored),) = kind._forward(net, paths)
    pixels = torch.stack([FaceImages(paths, kind.settings.image_size)[i][0] for i in range(3)])
    with torch.no_grad():
        _, logits = net(pixels)
    assert embedding.shape == (3, 256) and stored.shape == (3, 12)
    np.testing.assert_allclose(stored, torch.sigmoid(logits).numpy(), rtol=1e-6)  # stored: AU probabilities
    targets = np.zeros((4, 12), np.int8)
    targets[:2, 0] = 1
    targets[:, 1] = 1
    criterion = kind.task_def.criterion(targets, LossOptions(va_loss=kind.settings.va_loss))
    assert isinstance(criterion, nn.BCEWithLogitsLoss)
    np.testing.assert_allclose(criterion.pos_weight[:3].numpy(), [1.0, 0.0, 1.0])  # 2 of 4 on; always on; never on


def test_forward_yields_every_batch_in_order_though_each_reaches_the_host_one_batch_late(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    paths = [tmp_path / f"{i}.jpg" for i in range(5)]
    for path in paths:
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(path)
    kind = VideoKind(settings(batch_size=2), "expr", 0)
    net = kind._build().eval()
    batches = list(kind._forward(net, paths))
    assert [len(embedding) for embedding, _ in batches] == [2, 2, 1]
    pixels = torch.stack([FaceImages(paths, kind.settings.image_size)[i][0] for i in range(5)])
    with torch.no_grad():
        embedding, logits = net(pixels)
    np.testing.assert_allclose(np.concatenate([e for e, _ in batches]), embedding.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.concatenate([o for _, o in batches]), kind.task_def.stored_outputs(logits).numpy(), rtol=1e-5, atol=1e-6
    )


def test_constructor_stores_settings_only_and_predict_needs_fit() -> None:
    kind = VideoKind(settings(), "va", 0)
    assert not hasattr(kind, "net_")
    with pytest.raises(RuntimeError, match="not fitted"):
        kind.state()


def test_state_round_trip_gives_the_same_outputs() -> None:
    torch.manual_seed(0)
    kind = VideoKind(settings(), "va", 0)
    kind.net_ = kind._build().eval()
    copy = VideoKind(settings(), "va", 0).load_state(kind.state())
    images = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)
    assert torch.equal(kind.net_(images)[1], copy.net_.eval()(images)[1])


def test_inference_decodes_in_the_main_process_on_a_cpu_only_and_on_every_spare_core_beside_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness import cpu
    from harness.models.video import inference_workers

    batch = 64 * 3 * 224 * 224  # 9.6 MB
    monkeypatch.setattr(cpu.shutil, "disk_usage", lambda folder: type("Usage", (), {"free": 8 << 30})())
    monkeypatch.setenv("ABAW_THREADS", "16")
    assert inference_workers(2, torch.device("cpu"), batch) == 0
    assert inference_workers(2, torch.device("cuda"), batch) == 15
    monkeypatch.setenv("ABAW_THREADS", "2")
    assert inference_workers(2, torch.device("cuda"), batch) == 2  # never fewer than the spec's
    # a container's default 64 MB /dev/shm holds the two ready batches of one worker, not of 15 (a bus error)
    monkeypatch.setattr(cpu.shutil, "disk_usage", lambda folder: type("Usage", (), {"free": 64 << 20})())
    monkeypatch.setenv("ABAW_THREADS", "16")
    assert inference_workers(2, torch.device("cuda"), batch) == 1
    assert inference_workers(2, torch.device("cuda"), 64 * 3 * 64 * 64) == 15


def test_shared_memory_that_cannot_be_read_sets_no_cap(tmp_path: Path) -> None:
    from harness.cpu import shared_memory_workers

    assert shared_memory_workers(1 << 20, tmp_path / "absent") is None
    assert shared_memory_workers(1 << 20, tmp_path) >= 0


def test_torchruns_local_ranks_split_the_shared_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from harness.cpu import PREFETCH, shared_memory_workers

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=64 * PREFETCH * 2 * 1000))
    assert shared_memory_workers(1000, tmp_path) == 64
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert shared_memory_workers(1000, tmp_path) == 16


def test_crops_load_as_uint8_and_the_model_normalises_them_as_float_pixels_were(tmp_path: Path) -> None:
    """Same values as normalising float pixels in the loader (the earlier path), bit for bit, on a quarter of the
    bytes between the workers and the model."""
    from harness.models.face_data import normalise

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    pixels, _ = FaceImages([tmp_path / "a.png"], 32)[0]
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 32, 32)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    earlier = (pixels.float().div(255) - mean.view(3, 1, 1)) / std.view(3, 1, 1)
    assert torch.equal(normalise(pixels[None], mean, std)[0], earlier)


def test_torch_resizes_crops_as_pil_does_at_the_paper_size_and_within_one_level_elsewhere(tmp_path: Path) -> None:
    """112 px JPEG crops to 224 px (EfficientNet-B1, ViT-B/16 under ``paper``): the same bytes from either resizer;
    to smoke's 64 px and B4's 380 px they differ by rounding, never by more than one level."""
    from harness.models.face_data import decode_crop

    rng = np.random.default_rng(0)
    for index in range(4):
        tile = np.kron(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((14, 14, 1), np.uint8))
        noisy = np.clip(tile + rng.integers(-20, 21, tile.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(tmp_path / f"{index}.jpg", quality=90)
    for path in sorted(tmp_path.glob("*.jpg")):
        for size in (224, 64, 380, 112):
            pil, fast = decode_crop(path, size, "pil"), decode_crop(path, size, "torch")
            assert fast.dtype == torch.uint8 and fast.shape == (3, size, size) and fast.is_contiguous()
            if size in (224, 112):
                assert torch.equal(fast, pil), size
            else:
                assert (fast.int() - pil.int()).abs().max() <= 1, size


def test_smoke_keeps_pil_resizing_and_its_store_key_while_paper_resizes_with_torch() -> None:
    spec = load_spec("video_b1", REPO_SYSTEMS)
    smoke, paper = resolve(spec, "smoke").settings, resolve(spec, "paper").settings
    assert smoke.resize == "pil" and "resize" not in smoke.model_dump()  # the key of every smoke node as before
    assert paper.resize == "torch" and paper.model_dump()["resize"] == "torch"
    from harness.models import face_cache

    source = {"faces": "organizers"}
    assert face_cache.material(64, source, "pil") == {"version": face_cache.VERSION, "image_size": 64, **source}
    assert face_cache.material(64, source, "torch") != face_cache.material(64, source, "pil")  # never shared
