"""Layout discovery, Split objects and the dataset check, on a release written by hand."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_text

from harness.data.affwild2 import Dataset, discover, video_of
from harness.data.check import check_dataset
from harness.data.media import list_face_frames
from harness.errors import DataError


def test_discovery_finds_every_part_under_paths_with_spaces(handmade_root: Path) -> None:
    layout = discover(handmade_root)
    assert layout.annotations is not None and layout.annotations.name == "6th ABAW Annotations"
    assert [c.name for c in layout.crops] == ["cropped_aligned", "cropped_aligned_new_50_vids"]
    assert set(layout.videos) == {"video1", "10-60-1280x720", "118-30-640x480", "test1"}
    assert layout.videos["10-60-1280x720"].suffix == ".avi"
    assert layout.test_set is not None and layout.test_labels is None


def test_left_and_right_tracks_share_their_video() -> None:
    assert video_of("10-60-1280x720_right") == "10-60-1280x720"
    assert video_of("video10_1_left") == "video10_1"
    assert video_of("118-30-640x480") == "118-30-640x480"


def test_split_exposes_tracks_labels_faces_and_real_fps(handmade_root: Path) -> None:
    dataset = Dataset(handmade_root)
    split = dataset.split("va", "validation")
    assert split.names == ("10-60-1280x720_left", "10-60-1280x720_right")
    assert split.labels().shape == (4, 2)
    assert split.valid().tolist() == [True, True, True, True]
    assert split.track_index().tolist() == [0, 0, 1, 1]
    assert split.face_frames("10-60-1280x720_right").tolist() == [2]
    assert split.frame_path("10-60-1280x720_left", 2).name == "00002.jpg"
    assert split.fps("10-60-1280x720_left") == 25.0  # from the container, not the "60" in the name
    expr = dataset.split("expr", "validation")
    assert expr.track("118-30-640x480").crops_dir.parent.name == "cropped_aligned_new_50_vids"
    assert expr.fps("118-30-640x480") == pytest.approx(30000 / 1001)
    info = expr.video_info("118-30-640x480")
    assert info.n_frames == 5 and info.has_audio


def test_test_split_reads_template_rows_without_labels(handmade_root: Path) -> None:
    split = Dataset(handmade_root).split("expr", "test")
    assert split.names == ("test1",) and split.tracks[0].n_rows == 2
    assert not split.has_labels
    with pytest.raises(DataError, match="has no labels here"):
        split.labels()


def test_check_counts_match_the_files_on_disk(handmade_root: Path) -> None:
    report = check_dataset(handmade_root)
    assert report["ok"], report["problems"]
    va_val = report["splits"]["va"]["validation"]
    assert va_val == {"tracks": 2, "label_rows": 4, "valid_labels": 4, "face_images": 3, "missing_faces": 1}
    assert report["splits"]["expr"]["train"]["valid_labels"] == 2
    assert report["splits"]["va"]["test"]["labelled"] is False
    assert report["tasks"] == ["va", "expr"] and "au" not in report["splits"]  # no AU annotations: AU is absent
    assert not any("AU" in text for text in report["problems"] + report["notes"])
    assert report["videos"]["fps"] == {"30": 1, "25": 1, "30000/1001": 1, "24": 1}
    assert any("differ from their video's frame count" in note for note in report["notes"])
    json.dumps(report)


def test_check_reports_each_problem_without_stopping(handmade_root: Path) -> None:
    ann = handmade_root / "6th ABAW Annotations"
    write_text(ann / "VA_Estimation_Challenge/Train_Set/video1.txt", "valence,arousal\n0.1;0.2\n")
    write_text(
        ann / "EXPR_Recognition_Challenge/Train_Set/ghost.txt",
        "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n",
    )
    shutil.rmtree(handmade_root / "cropped_aligned/10-60-1280x720_right")
    (handmade_root / "cropped_aligned/10-60-1280x720_right").mkdir()
    report = check_dataset(handmade_root)
    assert not report["ok"]
    problems = "\n".join(report["problems"])
    assert "video1.txt, line 2: expected two numbers" in problems
    assert "track 'ghost' (expr train): video 'ghost' not found" in problems
    assert "track 'ghost' (expr train): no face-crop folder" in problems
    assert "empty face-crop folder for track '10-60-1280x720_right'" in problems


def test_check_reports_a_folder_named_like_an_annotation_file_and_a_header_only_file(handmade_root: Path) -> None:
    train = handmade_root / "6th ABAW Annotations/VA_Estimation_Challenge/Train_Set"
    (train / "17-30-320x240.txt").mkdir()
    write_text(train / "video1.txt", "valence,arousal\n")
    problems = "\n".join(check_dataset(handmade_root)["problems"])
    assert "17-30-320x240.txt: a folder named like an annotation file, not one" in problems
    assert "video1.txt: the header alone, no label lines" in problems


def test_truncated_video_is_a_clear_problem(handmade_root: Path) -> None:
    video = handmade_root / "batch1/video1.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    report = check_dataset(handmade_root)
    assert any("video1.mp4: unreadable or truncated video" in p for p in report["problems"])
    with pytest.raises(DataError, match="unreadable or truncated video"):
        Dataset(handmade_root).split("va", "train").video_info("video1")


def test_template_row_for_unknown_track(handmade_root: Path) -> None:
    formats = handmade_root / "test_set/prediction_files_format"
    write_text(
        formats / "CVPR_6th_ABAW_VA_test_set_sample.txt",
        "image_location,valence,arousal\ntest1/00001.jpg,0,0\nother/00001.jpg,0,0\n",
    )
    with pytest.raises(
        DataError, match=r"line 3: template rows for track 'other', which is not in the test track list"
    ):
        Dataset(handmade_root).split("va", "test")
    assert any("'other'" in p for p in check_dataset(handmade_root)["problems"])


def test_root_without_a_release_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"no Aff-Wild2 annotation folder \(holding VA_Estimation_Challenge, EXPR_Recognition_Challenge, "
        r"EXPR_Classification_Challenge or AU_Detection_Challenge\) and no test material \(track lists "
        r".*Action_Unit_Detection_Challenge_test_set_release\.txt; templates CVPR_<N>th_ABAW_\{VA,EXPR,AU\}_test",
    ):
        discover(tmp_path)
    with pytest.raises(DataError, match="is not a folder"):
        discover(tmp_path / "missing")


def test_missing_video_is_named(handmade_root: Path) -> None:
    (handmade_root / "batch1/video1.mp4").unlink()
    split = Dataset(handmade_root).split("expr", "train")
    with pytest.raises(DataError, match=r"track 'video1': its video 'video1' is in none of batch1, batch2, new_vids"):
        split.fps("video1")
    assert np.array_equal(split.face_frames("video1"), [1, 3])


def test_au_annotations_alone_are_a_dataset_with_the_au_task(handmade_root: Path) -> None:
    ann = handmade_root / "6th ABAW Annotations"
    shutil.rmtree(ann / "VA_Estimation_Challenge")
    shutil.rmtree(ann / "EXPR_Recognition_Challenge")
    shutil.rmtree(handmade_root / "test_set")
    header = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    write_text(
        ann / "AU_Detection_Challenge/Train_Set/video1.txt", f"{header}\n{','.join(['-1'] * 12)}\n" + "0," * 11 + "1\n"
    )
    write_text(ann / "AU_Detection_Challenge/Validation_Set/118-30-640x480.txt", f"{header}\n" + "1," * 11 + "0\n")
    dataset = Dataset(handmade_root)
    assert dataset.layout.tasks == ("au",)
    train = dataset.split("au", "train")
    assert train.labels().shape == (2, 12) and train.valid().tolist() == [False, True]
    report = check_dataset(handmade_root)
    assert report["tasks"] == ["au"] and report["splits"]["au"]["train"]["valid_labels"] == 1
    with pytest.raises(DataError, match=r"no va train annotations \(VA_Estimation_Challenge/Train_Set\)"):
        dataset.split("va", "train")


@pytest.mark.parametrize(
    ("names", "frames"),
    [(["00003.jpg", "00001.jpg", "123456.jpg", "notes.txt"], [1, 3, 123456]), (["53.jpg"], None),
     (["00000.jpg"], None), (["._00001.jpg"], None), (["012345.jpg"], None), (["0000١.jpg"], None),
     ([f"{10**22}.jpg"], None)],
)  # fmt: skip
def test_crop_names_are_1_based_frames_in_5_digits(tmp_path: Path, names: list[str], frames: list[int] | None) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    if frames is not None:
        assert list_face_frames(tmp_path).tolist() == frames
    else:
        with pytest.raises(DataError, match=rf"{names[0]}: face crop names must be the 1-based frame number in 5"):
            list_face_frames(tmp_path)
