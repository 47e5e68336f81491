"""The dataset fingerprint's cache: an unchanged root is a cache hit; an edit, an added crop or a new video is not."""

import os
import time
from pathlib import Path

import pytest

from harness.data import fingerprint as fingerprint_module
from harness.data.affwild2 import Dataset


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("ABAW_HOME", str(folder))
    return folder


@pytest.fixture
def settled(handmade_root: Path) -> Path:
    """The handmade root with every mtime 100 s in the past: older than the racy window, so it is cached."""
    for path in [handmade_root, *handmade_root.rglob("*")]:
        _age(path, 100)
    return handmade_root


def _uncached(root: Path) -> str:
    dataset = Dataset(root)
    layout = dataset.layout
    return fingerprint_module.compute_fingerprint(root, layout.text_inputs, dataset.crop_index, layout.videos)


def _age(path: Path, seconds: float) -> None:
    """Set a path's mtime ``seconds`` in the past (a change made then, beyond the racy window)."""
    when = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(when, when))


def test_unchanged_root_hits_the_cache(settled: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handmade_root = settled
    first = Dataset(handmade_root).fingerprint()
    assert first == _uncached(handmade_root)
    assert len(list((home / fingerprint_module.CACHE_FOLDER).glob("*.json"))) == 1

    def no_scan(*args) -> str:
        raise AssertionError("the fingerprint was recomputed for an unchanged root")

    monkeypatch.setattr(fingerprint_module, "compute_fingerprint", no_scan)
    assert Dataset(handmade_root).fingerprint() == first


def test_an_added_crop_or_an_edited_label_file_changes_the_fingerprint(settled: Path, home: Path) -> None:
    handmade_root = settled
    before = Dataset(handmade_root).fingerprint()
    folder = handmade_root / "cropped_aligned/video1"
    (folder / "00002.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    _age(folder, 50)
    with_crop = Dataset(handmade_root).fingerprint()
    assert with_crop != before and with_crop == _uncached(handmade_root)

    label = handmade_root / "6th ABAW Annotations/EXPR_Recognition_Challenge/Train_Set/video1.txt"
    label.write_text(label.read_text().replace("\n7\n", "\n6\n"))  # same size, other content
    _age(label, 40)
    edited = Dataset(handmade_root).fingerprint()
    assert edited not in (before, with_crop) and edited == _uncached(handmade_root)


def test_a_bad_cache_file_is_recomputed_and_an_unwritable_home_is_skipped(
    settled: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handmade_root = settled
    value = Dataset(handmade_root).fingerprint()
    (cached,) = (home / fingerprint_module.CACHE_FOLDER).glob("*.json")
    cached.write_text('{"stamp": "other", "fingerprint": "0000000000000000"}')
    assert Dataset(handmade_root).fingerprint() == value
    cached.write_text("not json")
    assert Dataset(handmade_root).fingerprint() == value
    blocked = home.parent / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("ABAW_HOME", str(blocked))
    assert Dataset(handmade_root).fingerprint() == value


def test_a_root_changed_seconds_ago_is_not_cached(handmade_root: Path, home: Path) -> None:
    assert Dataset(handmade_root).fingerprint() == _uncached(handmade_root)
    assert not (home / fingerprint_module.CACHE_FOLDER).exists()


def test_labels_behind_a_linked_folder_count_and_other_text_files_do_not(settled: Path, home: Path) -> None:
    before = Dataset(settled).fingerprint()
    train = settled / "6th ABAW Annotations/EXPR_Recognition_Challenge/Train_Set"
    moved = train.rename(settled.parent / "elsewhere")
    train.symlink_to(moved, target_is_directory=True)
    (settled / "6th ABAW Annotations/README.txt").write_text("notes kept beside the annotations\n")
    assert Dataset(settled).fingerprint() == before == _uncached(settled)
    label = moved / "video1.txt"
    label.write_text(label.read_text().replace("\n7\n", "\n6\n"))
    _age(label, 40)
    edited = Dataset(settled).fingerprint()
    assert edited != before and edited == _uncached(settled)
