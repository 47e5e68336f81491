"""Decoded face crops in the store's shared cache: the very pixels decoding gives, decoded once, redone where a crop
folder changed, bounded in size; a video node gives bit-identical predictions with and without it."""

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.data.media import face_path, list_face_frames
from harness.errors import StoreError
from harness.models import face_cache, face_data
from harness.models.context import Context
from harness.models.face_data import FaceImages, loader
from harness.store import Store

SIZE = 24


@dataclass
class _Split:
    """The part of a dataset split the cache reads: track names, face frames and crop paths."""

    root: Path
    names: tuple[str, ...]
    name: str = "train"

    def face_frames(self, name: str) -> np.ndarray:
        return list_face_frames(self.root / name)

    def frame_path(self, name: str, frame: int) -> Path:
        return face_path(self.root / name, frame)


def _split(tmp_path: Path) -> _Split:
    rng = np.random.default_rng(0)
    for name, frames in {"a": [1, 2, 5], "b": [3, 4], "faceless": []}.items():
        (tmp_path / name).mkdir(parents=True)
        for frame in frames:
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(face_path(tmp_path / name, frame))
    return _Split(tmp_path, ("a", "b", "faceless"))


def _paths(split: _Split) -> list[Path]:
    return [split.frame_path(name, int(f)) for name in split.names for f in split.face_frames(name)]


def test_cached_crops_are_the_decoded_ones_and_flip_alike(tmp_path: Path) -> None:
    split = _split(tmp_path / "crops")
    cache = Store(tmp_path / "store").node("cache-face-pixels-test")
    face_cache.fill(cache, split, split.names, SIZE, workers=0)
    decoded = face_cache.decoded_crops(cache, split, split.names, SIZE)
    paths = _paths(split)
    assert all(path in decoded for path in paths) and len(decoded.rows) == 5
    for flip in (False, True):
        torch.manual_seed(7)
        plain = [FaceImages(paths, SIZE, flip=flip)[i][0] for i in range(len(paths))]
        torch.manual_seed(7)
        cached = [FaceImages(paths, SIZE, flip=flip, decoded=decoded)[i][0] for i in range(len(paths))]
        assert all(torch.equal(p, c) and c.dtype == torch.uint8 for p, c in zip(plain, cached, strict=True))
    unflipped = torch.stack([FaceImages(paths, SIZE)[i][0] for i in range(len(paths))])
    copy = pickle.loads(pickle.dumps(decoded))  # a spawned DataLoader worker maps the files itself
    assert not copy._maps and torch.equal(copy.pixels(paths[3]), unflipped[3])
    forked = [pixels for pixels, _ in loader(FaceImages(paths, SIZE, decoded=decoded), 2, workers=1)]  # maps inherited
    assert torch.equal(torch.cat(forked), unflipped)


def test_two_crop_folders_of_one_track_name_never_share_an_entry(tmp_path: Path) -> None:
    """``abaw predict`` cuts one crops folder per crop setting for the same track name; each has its own pixels."""
    first, second = _split(tmp_path / "one"), _split(tmp_path / "two")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(face_path(tmp_path / "two" / "a", 1))
    cache = Store(tmp_path / "store").node("cache-face-pixels-test")
    for split in (first, second):
        face_cache.fill(cache, split, split.names, SIZE, workers=0)
    one = face_cache.decoded_crops(cache, first, first.names, SIZE)
    two = face_cache.decoded_crops(cache, second, second.names, SIZE)
    assert face_cache.entry(first, "a", np.array([1])) != face_cache.entry(second, "a", np.array([1]))
    assert not two.pixels(face_path(tmp_path / "two" / "a", 1)).any()
    assert one.pixels(face_path(tmp_path / "one" / "a", 1)).any()


def test_fill_decodes_only_what_the_cache_lacks_or_holds_for_other_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = _split(tmp_path / "crops")
    cache = Store(tmp_path / "store").node("cache-face-pixels-test")
    face_cache.fill(cache, split, split.names, SIZE, workers=0)
    decoded: list[Path] = []
    decode = face_data.decode_crop
    monkeypatch.setattr(face_data, "decode_crop", lambda path, *how: decoded.append(path) or decode(path, *how))
    face_cache.fill(cache, split, split.names, SIZE, workers=0)
    assert decoded == []
    (tmp_path / "crops" / "b" / "00004.jpg").rename(tmp_path / "crops" / "b" / "00009.jpg")  # renamed in place
    face_cache.fill(cache, split, split.names, SIZE, workers=0)
    assert [path.name for path in decoded] == ["00003.jpg", "00009.jpg"]
    fresh = face_cache.decoded_crops(cache, split, split.names, SIZE)
    assert torch.equal(fresh.pixels(tmp_path / "crops" / "b" / "00009.jpg"), decode(decoded[-1], SIZE))


def test_a_cache_out_of_step_with_the_crop_folder_is_an_error_naming_the_track(tmp_path: Path) -> None:
    split = _split(tmp_path / "crops")
    cache = Store(tmp_path / "store").node("cache-face-pixels-test")
    face_cache.fill(cache, split, split.names, SIZE, workers=0)
    (tmp_path / "crops" / "a" / "00001.jpg").unlink()
    expected = r"track 'a'.* 3 crops .* frames 1-5, its crop folder now lists 2 for frames 2-5"
    with pytest.raises(StoreError, match=expected):
        face_cache.decoded_crops(cache, split, split.names, SIZE)


def test_only_splits_whose_decoded_crops_fit_the_bound_are_cached(tmp_path: Path) -> None:
    split = _split(tmp_path / "crops")
    need = 5 * 3 * SIZE * SIZE
    assert face_cache.fits(split, split.names, SIZE, limit=need)
    assert not face_cache.fits(split, split.names, SIZE, limit=need - 1)
    assert face_cache.LIMIT_BYTES < 2_600_000 * 3 * 64 * 64  # the real release's crops: never, even at 64 px


def test_a_video_node_predicts_the_same_with_and_without_the_cache(
    conformance_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.models.registry import build_kind
    from harness.runner import cache_opener, plan_nodes

    dataset, store, _, systems = conformance_world
    plan = plan_nodes("conf_video", ["va"], dataset, "smoke", systems)[-1]
    context = Context(dataset, "va", {}, cache=cache_opener(store, plan.material["dataset"]))
    names = list(dataset.split("va", "validation").names)[:3]

    def fit_predict(context: Context) -> list[np.ndarray]:
        kind = build_kind("video", plan.resolved.settings, "va", plan.resolved.spec.seed).fit(context)
        return [out for _, outputs in kind.predict(context, "validation", names) for out in outputs.values()]

    cached = fit_predict(context)
    nodes = store.keys()
    assert any(key.startswith(f"cache-{face_cache.CACHE_NAME}") for key in nodes)
    monkeypatch.setattr(face_cache, "LIMIT_BYTES", 0)
    decoding = fit_predict(context)
    assert len(cached) == len(decoding) and all(np.array_equal(a, b) for a, b in zip(cached, decoding, strict=True))
