"""A dataset subset: chosen videos' tracks cut to their first frames, in the release layout, media linked."""

from pathlib import Path

import pytest

from harness.data.affwild2 import Dataset
from harness.data.check import check_dataset
from harness.data.subset import choose_videos, write_subset
from harness.errors import DataError

CANONICAL = Path(__file__).parent / "fixtures" / "layouts" / "canonical"


def test_videos_serving_every_task_come_first() -> None:
    chosen = choose_videos(Dataset(CANONICAL), {"train": 1, "validation": 2, "test": 1})
    assert chosen == {"train": ["10-60-1280x720"], "validation": ["118-30-640x480", "video10_1"], "test": ["test1"]}


def test_the_subset_is_a_clean_release_cut_to_its_first_frames(tmp_path: Path) -> None:
    source = Dataset(CANONICAL)
    videos = {"train": ["10-60-1280x720"], "validation": ["118-30-640x480"], "test": ["test1"]}
    subset = Dataset(write_subset(source, tmp_path / "subset", videos, max_frames=3))
    report = check_dataset(subset.root)
    assert report["ok"], report["problems"]
    train = subset.split("va", "train")
    assert train.names == ("10-60-1280x720_left", "10-60-1280x720_right")
    assert train.labels().tolist() == source.split("va", "train").labels()[[0, 1, 2, 6, 7, 8]].tolist()
    assert train.face_frames("10-60-1280x720_right").tolist() == [2, 3]
    assert subset.split("expr", "validation").track("118-30-640x480").labels.tolist() == [4, 4, 5]
    assert [(t.name, t.n_rows) for t in subset.split("va", "test").tracks] == [("test1", 3)]
    assert subset.split("expr", "test").names == ("test1",)
    crop = subset.split("va", "train").frame_path("10-60-1280x720_left", 1)
    assert crop.read_bytes() == source.split("va", "train").frame_path("10-60-1280x720_left", 1).read_bytes()
    assert subset.layout.videos["10-60-1280x720"].suffix == ".avi"
    assert subset.split("va", "train").fps("10-60-1280x720_left") == 25.0


def test_a_subset_refuses_a_folder_in_use_and_too_many_videos(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(DataError, match="must not exist or be empty"):
        write_subset(Dataset(CANONICAL), tmp_path / "used", {"train": ["video1"]}, 3)
    with pytest.raises(DataError, match="the validation split has 2 videos, 5 were asked for"):
        choose_videos(Dataset(CANONICAL), {"validation": 5})
