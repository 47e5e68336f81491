"""The release as teams keep it: the hand-written trees of tests/fixtures/layouts behave as the canonical layout.

Each tree holds the same tracks, labels, crops (1-pixel JPEGs), videos and test material, laid out as a public ABAW
repository kept it (see tests/fixtures/layouts/README.md). ``data check``, ``validate``, ``score`` and ``run`` must
find the same data in each.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import write_text
from typer.testing import CliRunner

from harness.cli import app
from harness.data.affwild2 import Dataset, discover
from harness.data.check import check_dataset
from harness.data.releases import Release, detect_release, parse_template_name, track_list_task
from harness.errors import DataError
from harness.tasks import get_task

LAYOUTS = Path(__file__).parent / "fixtures" / "layouts"
VARIANTS = ("testset_examples", "abaw6_examples", "fifth_abaw", "lists_at_root", "nested_crops", "image_test_crops")
RELEASES = {"fifth_abaw": "5th ABAW"}
runner = CliRunner()


@pytest.fixture(scope="module")
def canonical() -> dict:
    return check_dataset(LAYOUTS / "canonical")


@pytest.fixture
def canonical_copy(tmp_path: Path) -> Path:
    """A writable copy of the canonical tree."""
    return Path(shutil.copytree(LAYOUTS / "canonical", tmp_path / "Aff-Wild2"))


def test_the_canonical_tree_is_a_clean_6th_abaw_release(canonical: dict) -> None:
    assert canonical["ok"], canonical["problems"]
    assert canonical["release"]["name"] == "6th ABAW"
    assert canonical["splits"]["va"]["validation"] == {
        "tracks": 2,
        "label_rows": 11,
        "valid_labels": 10,
        "face_images": 11,
        "missing_faces": 0,
    }
    assert canonical["splits"]["va"]["test"]["tracks"] == 2 and canonical["splits"]["expr"]["test"]["tracks"] == 1
    assert canonical["tasks"] == ["va", "expr", "au"]
    au = canonical["splits"]["au"]
    assert (au["train"]["tracks"], au["train"]["label_rows"], au["train"]["valid_labels"]) == (2, 14, 13)
    assert au["validation"]["valid_labels"] == 6 and au["test"]["tracks"] == 1
    assert canonical["test_material"]["au"]["template"].endswith("CVPR_6th_ABAW_AU_test_set_sample.txt")


@pytest.mark.parametrize("layout", VARIANTS)
def test_check_finds_the_same_data_in_every_layout(layout: str, canonical: dict) -> None:
    report = check_dataset(LAYOUTS / layout)
    assert report["ok"], report["problems"]
    assert report["tasks"] == ["va", "expr"]  # no AU annotations: AU is absent, not a problem
    assert report["splits"] == {task: canonical["splits"][task] for task in report["tasks"]}
    assert report["videos"]["fps"] == canonical["videos"]["fps"]
    assert report["release"]["name"] == RELEASES.get(layout, "6th ABAW")
    for task in ("va", "expr"):
        material = report["test_material"][task]
        assert material["template"] and material["track_list"], material
        assert Path(material["template"]).is_file() and Path(material["track_list"]).is_file()
    json.dumps(report)


@pytest.mark.parametrize(
    ("layout", "names"),
    [
        ("canonical", ["CVPR_6th_ABAW_VA_test_set.txt", "CVPR_6th_ABAW_Expr_test_set.txt"]),
        ("fifth_abaw", ["CVPR_5th_ABAW_VA_test_set.txt", "CVPR_5th_ABAW_EXPR_test_set.txt"]),
    ],
)
def test_submission_files_are_named_after_the_release_of_the_data(layout: str, names: list[str]) -> None:
    release = discover(LAYOUTS / layout).release  # what the submission writer names its files after
    assert [get_task(task).submission_name(release.round) for task in ("va", "expr")] == names


@pytest.mark.parametrize("layout", ["nested_crops", "image_test_crops"])
def test_crops_nested_or_under_video_folders_are_indexed_by_track(layout: str) -> None:
    index = Dataset(LAYOUTS / layout).crop_index
    assert set(index) == set(Dataset(LAYOUTS / "canonical").crop_index)
    assert "cropped_aligned" not in index and "cropped_aligned_new_50_vids" not in index
    if layout == "nested_crops":
        assert index["video1"].parent.parent.name == "cropped_aligned"
        assert index["118-30-640x480"].parent.parent.name == "batch2"
    else:
        assert index["test1"].parts[-4:-1] == ("cropped_aligned_image_test", "batch1 (1)", "cropped_aligned")


def test_a_nested_crop_folder_does_not_make_its_videos_duplicates() -> None:
    layout = discover(LAYOUTS / "nested_crops")
    assert layout.duplicate_videos == () and len(layout.videos) == 6


def _va_file(path: Path, tracks: dict[str, int]) -> Path:
    rows = [
        f"{name}/{frame:05d}.jpg,{0.1 * (frame % 3):.1f},-0.2"
        for name, n in tracks.items()
        for frame in range(1, n + 1)
    ]
    return write_text(path, "image_location,valence,arousal\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("layout", ("canonical", *VARIANTS))
def test_validate_and_score_work_on_every_layout(layout: str, tmp_path: Path) -> None:
    root = LAYOUTS / layout
    test = _va_file(tmp_path / "test.txt", {"test1": 4, "test2_right": 3})
    done = runner.invoke(app, ["validate", str(test), "--task", "va", "--data", str(root), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["ok"]
    validation = _va_file(tmp_path / "val.txt", {"118-30-640x480": 6, "video10_1_left": 5})
    done = runner.invoke(app, ["score", str(validation), "--task", "va", "--data", str(root), "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["frames"] == 10 and result["videos"] == 2
    assert result["score"] == pytest.approx(_reference_score(), abs=1e-12)  # the same labels in every layout


def _au_file(path: Path, rows: dict[str, list[str]]) -> Path:
    lines = [
        f"{name}/{frame:05d}.jpg,{values}" for name, track in rows.items() for frame, values in enumerate(track, 1)
    ]
    header = "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    return write_text(path, header + "\n" + "\n".join(lines) + "\n")


def test_au_validate_and_score_on_the_canonical_tree(tmp_path: Path) -> None:
    root = LAYOUTS / "canonical"
    good = _au_file(tmp_path / "au.txt", {"test1": ["0,0,0,1,0,0,1,0,0,0,1,0"] * 4})
    done = runner.invoke(app, ["validate", str(good), "--task", "au", "--data", str(root), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["ok"]
    bad = _au_file(tmp_path / "bad.txt", {"test1": ["0,0,0,1,0,0,1,0,0,0,1,0", "0,0.7,0,0,0,0,0,0,0,0,0,0"] * 2})
    bad.write_text(bad.read_text().replace("test1/00004.jpg,0,0.7", "test1/00004.jpg,0,2"))
    done = runner.invoke(app, ["validate", str(bad), "--task", "au", "--data", str(root), "--json"])
    assert done.exit_code == 1, done.output
    problems = json.loads(done.stdout)["problems"]
    assert problems["not_an_integer"]["examples"][0] == {
        "line": 3,
        "message": "expected 12 comma-separated values 0 or 1 after the location, found "
        "'test1/00002.jpg,0,0.7,0,0,0,0,0,0,0,0,0,0'",
    }
    assert problems["au_out_of_range"]["examples"] == [
        {"line": 5, "message": "'test1/00004.jpg,0,2,0,0,0,0,0,0,0,0,0,0'"}
    ]
    labels = Path(root, "6th ABAW Annotations/AU_Detection_Challenge/Validation_Set/118-30-640x480.txt")
    validation = _au_file(tmp_path / "val.txt", {"118-30-640x480": labels.read_text().split()[1:]})
    done = runner.invoke(app, ["score", str(validation), "--task", "au", "--data", str(root), "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["score"] == 9 / 12 and result["frames"] == 6  # the labels themselves; the 3 AUs never on score 0
    assert result["f1_per_au"][2] == 1.0 and result["f1_per_au"][5] == 0.0


def _reference_score() -> float:
    """P_VA of :func:`_va_file`'s validation rows against the canonical labels, computed here with plain numpy."""
    challenge = LAYOUTS / "canonical/6th ABAW Annotations/VA_Estimation_Challenge/Validation_Set"
    labels, pred = [], []
    for name in ("118-30-640x480", "video10_1_left"):
        lines = (challenge / f"{name}.txt").read_text().split()[1:]
        for frame, line in enumerate(lines, start=1):
            if "-5" not in line.split(","):
                labels.append([float(v) for v in line.split(",")])
                pred.append([0.1 * (frame % 3), -0.2])
    x, y = np.array(pred), np.array(labels, np.float32).astype(np.float64)  # labels are read as float32
    cov = ((x - x.mean(0)) * (y - y.mean(0))).mean(0)
    return float(np.mean(2 * cov / (x.var(0) + y.var(0) + (x.mean(0) - y.mean(0)) ** 2)))


def test_run_on_nested_crops_scores_as_on_the_canonical_layout(tmp_path: Path) -> None:
    from harness.leaderboard import Leaderboard
    from harness.runner import run_system
    from harness.store import Store

    systems = tmp_path / "systems"
    write_text(
        systems / "fast_video.yaml",
        "kind: video\ntasks: [va]\nseed: 1\nprofiles:\n"
        "  smoke: {epochs: 1, frame_step: 1, eval_step: 1, patience: 1}\n",
    )
    scores = []
    for layout in ("canonical", "nested_crops"):
        store, board = Store(tmp_path / layout / "store"), Leaderboard(tmp_path / layout / "board.sqlite")
        (result,) = run_system("fast_video", ["va"], Dataset(LAYOUTS / layout), "smoke", store, board, systems)
        assert not result.hit and result.score["videos"] == 2 and result.score["frames"] == 10
        scores.append(result.score["score"])
    assert np.isfinite(scores[0]) and scores[0] == scores[1]


def test_a_root_without_test_material_says_what_was_looked_for(canonical_copy: Path, tmp_path: Path) -> None:
    shutil.rmtree(canonical_copy / "test_set")
    report = check_dataset(canonical_copy)
    assert report["ok"], report["problems"]
    (note,) = [note for note in report["notes"] if note.startswith("no test material")]
    assert "Valence_Arousal_Estimation_Challenge_test_set_release.txt" in note
    assert "Action_Unit_Detection_Challenge_test_set_release.txt" in note
    assert "CVPR_<N>th_ABAW_{VA,EXPR,AU}_test_set_{sample,example}.txt" in note
    assert report["test_material"]["va"] == {"track_list": None, "template": None}
    with pytest.raises(DataError, match=r"no va prediction template found \(looked for track lists"):
        Dataset(canonical_copy).template("va")


def test_a_track_list_without_its_template_is_a_problem(canonical_copy: Path) -> None:
    (canonical_copy / "test_set/prediction_files_format/CVPR_6th_ABAW_VA_test_set_sample.txt").unlink()
    report = check_dataset(canonical_copy)
    assert any("no va prediction template found" in problem for problem in report["problems"])
    assert report["splits"]["expr"]["test"]["tracks"] == 1


def test_a_template_without_its_track_list_gives_the_test_tracks(canonical_copy: Path) -> None:
    lists = canonical_copy / "test_set/names_of_videos_in_each_test_set"
    (lists / "Valence_Arousal_Estimation_Challenge_test_set_release.txt").unlink()
    report = check_dataset(canonical_copy)
    assert report["ok"], report["problems"]
    assert "va: no test track list found; the template's tracks are the test tracks" in report["notes"]
    assert Dataset(canonical_copy).split("va", "test").names == ("test1", "test2_right")


def test_the_newest_release_and_a_sample_win_over_other_copies(canonical_copy: Path) -> None:
    sample = canonical_copy / "test_set/prediction_files_format/CVPR_6th_ABAW_VA_test_set_sample.txt"
    shutil.copy(sample, canonical_copy / "test_set/CVPR_6th_ABAW_VA_test_set_example.txt")
    old = canonical_copy / "old/CVPR_5th_ABAW_VA_test_set_sample.txt"
    write_text(old, "image_location,valence,arousal\ntest1/00001.jpg,\n")
    layout = discover(canonical_copy)
    assert layout.templates["va"] == sample
    assert layout.release.round == 6
    assert sorted(note.split("also found ")[1].split(",")[0] for note in layout.notes) == sorted(
        [str(canonical_copy / "test_set/CVPR_6th_ABAW_VA_test_set_example.txt"), str(old)]
    )


def test_the_test_material_alone_is_a_dataset_root(tmp_path: Path) -> None:
    root = Path(shutil.copytree(LAYOUTS / "testset_examples" / "testset", tmp_path / "testset"))
    layout = discover(root)
    assert layout.annotations is None and set(layout.templates) == {"va", "expr"}
    assert Dataset(root).template("va").n_rows == 7


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("CVPR_6th_ABAW_VA_test_set_sample.txt", ("va", 6, "sample")),
        ("CVPR_6th_ABAW_Expr_test_set_example.txt", ("expr", 6, "example")),
        ("CVPR_5th_ABAW_EXPR_test_set_sample.txt", ("expr", 5, "sample")),
        ("CVPR_8th_ABAW_VA_test_set_sample.txt", ("va", 8, "sample")),
        ("CVPR_6th_ABAW_AU_test_set_sample.txt", ("au", 6, "sample")),
        ("CVPR_7th_ABAW_au_test_set_example.txt", ("au", 7, "example")),
        ("CVPR_6th_ABAW_MTL_test_set_sample.txt", None),
        ("CVPR_6th_ABAW_VA_test_set.txt", None),
        ("CVPR_6th_ABAW_VA_test_set_sample.csv", None),
    ],
)
def test_template_names_of_every_round(name: str, parsed: tuple | None) -> None:
    result = parse_template_name(name)
    assert (result and (result.task, result.round, result.kind)) == parsed


def test_track_list_names_of_the_5th_and_6th_abaw() -> None:
    assert track_list_task("Expression_Classification_Challenge_test_set_release.txt") == "expr"
    assert track_list_task("Expression_Recognition_Challenge_test_set_release.txt") == "expr"
    assert track_list_task("Valence_Arousal_Estimation_Challenge_test_set_release.txt") == "va"
    assert track_list_task("Action_Unit_Detection_Challenge_test_set_release.txt") == "au"
    assert track_list_task("readme.txt") is None


def test_release_from_folder_names_alone() -> None:
    release = detect_release(Path("/x/5th_ABAW_Annotations"), ["EXPR_Classification_Challenge"], [])
    assert release.name == "5th ABAW" and len(release.evidence) == 2
    hinted = detect_release(Path("/x/annotations"), ["EXPR_Classification_Challenge"], [])
    assert hinted.round is None and hinted.name == "5th ABAW or earlier"
    assert Release(None, ()).name == "unknown"
    assert (
        detect_release(Path("/x/annotations"), ["AU_Detection_Challenge", "VA_Estimation_Challenge"], []).evidence == ()
    )


def test_a_listed_test_track_without_template_rows_is_a_problem(canonical_copy: Path) -> None:
    lists = canonical_copy / "test_set/names_of_videos_in_each_test_set"
    track_list = lists / "Valence_Arousal_Estimation_Challenge_test_set_release.txt"
    track_list.write_text(track_list.read_text() + "test9\n")
    report = check_dataset(canonical_copy)
    (problem,) = report["problems"]
    assert problem.startswith(f"{track_list}: test track 'test9' has no rows in the template ")
    assert report["splits"]["va"]["test"]["tracks"] == 2


def test_links_whose_target_is_gone_are_problems_not_crashes(canonical_copy: Path, tmp_path: Path) -> None:
    annotation = canonical_copy / "6th ABAW Annotations/VA_Estimation_Challenge/Validation_Set/video10_1_left.txt"
    video = canonical_copy / "batch1/test1.mp4"
    template = canonical_copy / "test_set/prediction_files_format/CVPR_6th_ABAW_AU_test_set_sample.txt"
    batch2 = canonical_copy / "batch2"
    shutil.rmtree(batch2)
    crop = canonical_copy / "cropped_aligned/video1/00002.jpg"
    crop_folder = canonical_copy / "cropped_aligned/test2_right"
    shutil.rmtree(crop_folder)
    linked = (annotation, video, template, batch2, crop, crop_folder)
    for path in linked:
        path.unlink(missing_ok=True)
        path.symlink_to(tmp_path / "unplugged-disk" / path.name)
    report = check_dataset(canonical_copy)
    for path in linked:
        assert f"{path}: a symbolic link to {tmp_path}/unplugged-disk/{path.name}, which does not exist" in " ".join(
            report["problems"]
        )
    assert not any("no face-crop folder test2_right/" in problem for problem in report["problems"])
    assert not report["ok"]


def test_videos_behind_linked_folders_are_indexed_once(canonical_copy: Path, tmp_path: Path) -> None:
    batch2 = canonical_copy / "batch2"
    moved = Path(shutil.move(batch2, tmp_path / "second-disk"))
    batch2.mkdir()
    (batch2 / "part1").symlink_to(moved, target_is_directory=True)
    (moved / "back").symlink_to(batch2, target_is_directory=True)  # a loop
    layout = discover(canonical_copy)
    assert layout.videos["test2"] == batch2 / "part1/test2.mp4"
    assert layout.videos["10-60-1280x720"] == batch2 / "part1/10-60-1280x720.avi"
    assert layout.duplicate_videos == () and layout.broken_links == ()
    assert check_dataset(canonical_copy)["ok"]


@pytest.mark.parametrize("name", ["._00001.jpg", "3.jpg", "00000.jpg"])
def test_a_crop_not_named_as_a_frame_is_one_problem_and_the_check_goes_on(
    canonical_copy: Path, canonical: dict, name: str
) -> None:
    folder = canonical_copy / "cropped_aligned/video1"
    shutil.copy(folder / "00001.jpg", folder / name)
    report = check_dataset(canonical_copy)
    (problem,) = report["problems"]
    assert problem.startswith(f"{folder / name}: face crop names must be the 1-based frame number in 5 digits")
    assert ("delete the ._* files" in problem) == name.startswith("._")
    tracks = {
        task: {split: counts["tracks"] for split, counts in splits.items()} for task, splits in report["splits"].items()
    }
    assert tracks == {
        task: {split: counts["tracks"] for split, counts in splits.items()}
        for task, splits in canonical["splits"].items()
    }
