"""The synthetic Aff-Wild2: exact layout, Aff-Wild2's quirks, determinism, atomic generation, oracle metadata."""

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data import synthetic
from harness.data.affwild2 import Dataset
from harness.data.synthetic import plan as plan_module
from harness.errors import DataError

MICRO = {"videos": 4, "pairs": 1, "seconds": (2.0, 3.0), "extra_validation": (0, 0)}


@pytest.fixture
def micro(monkeypatch: pytest.MonkeyPatch) -> str:
    """A four-video scale so generation-level tests take a second or two."""
    monkeypatch.setitem(plan_module.SCALES, "micro", MICRO)
    return "micro"


def _text_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.txt"))}


def test_same_seed_gives_byte_identical_annotations(tmp_path: Path, micro: str) -> None:
    synthetic.generate(tmp_path / "a", seed=3, scale=micro, workers=1)
    synthetic.generate(tmp_path / "b", seed=3, scale=micro, workers=2)
    synthetic.generate(tmp_path / "c", seed=4, scale=micro, workers=1)
    first, second, other = (_text_files(tmp_path / name) for name in "abc")
    assert first and first == second
    assert first != other


# sha256 over the paths and bytes of every file of the micro dataset (seed 3) but the metadata, with the containers'
# video packets in place of their files, as generator v4 wrote them: v5 changed only the voice (its own random stream)
V4_PICTURES_AND_LABELS = "ef9336712d44d3c96cc0920ca4466a9bcdddf3c71b970a446f5a286383cc9dca"


def _pictures_and_labels(root: Path) -> str:
    import hashlib

    import av

    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != synthetic.METADATA):
        digest.update(str(path.relative_to(root)).encode())
        if path.suffix in (".mp4", ".avi"):
            with av.open(str(path)) as container:
                for packet in container.demux(container.streams.video[0]):
                    digest.update(bytes(packet))
        else:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_every_frame_crop_and_label_file_is_as_generator_v4_wrote_it(tmp_path: Path, micro: str) -> None:
    synthetic.generate(tmp_path / "m", seed=3, scale=micro, workers=1)
    assert _pictures_and_labels(tmp_path / "m") == V4_PICTURES_AND_LABELS


def test_extra_validation_videos_leave_the_others_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    with_extra = plan_module.plan_dataset(0, "tiny")
    extra, pairs = plan_module.SCALES["tiny"]["extra_validation"]
    monkeypatch.setitem(plan_module.SCALES, "tiny", plan_module.SCALES["tiny"] | {"extra_validation": (0, 0)})
    base = plan_module.plan_dataset(0, "tiny")
    assert with_extra[: len(base)] == base and len(with_extra) == len(base) + extra
    added = with_extra[len(base) :]
    assert {video.split for video in added} == {"validation"} and sum(len(v.tracks) == 2 for v in added) == pairs
    names = [track.name for video in with_extra for track in video.tracks]
    assert len(set(names)) == len(names)


def test_refuses_a_non_empty_output_folder(tmp_path: Path, micro: str) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists and is not empty"):
        synthetic.generate(tmp_path / "out", scale=micro)
    with pytest.raises(DataError, match="unknown scale 'huge'; expected one of tiny, small"):
        synthetic.generate(tmp_path / "new", scale="huge")


def test_a_crash_mid_generation_leaves_nothing_behind(tmp_path: Path, micro: str, monkeypatch) -> None:
    calls = []

    def failing(plan, root, seed):
        calls.append(plan.index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(plan, root, seed)

    real = synthetic.render_video
    monkeypatch.setattr(synthetic, "render_video", failing)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(tmp_path / "out", scale=micro, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_generation_is_swept_and_a_concurrent_one_is_taken(tmp_path: Path, micro: str, monkeypatch) -> None:
    """A kill skips the clean-up: the next generation deletes a dead process's staging folder (a live one's stays).
    Two first uses at once: the one that finds the other's identical dataset in place takes it."""
    dead = tmp_path / ".out.staging-999999999-abcd1234"  # no such process
    live = tmp_path / f".out.staging-{os.getpid()}-abcd1234"
    unaskable = tmp_path / ".out.staging-99999999999999999999-abcd1234"  # beyond any pid: kept, never a crash
    for folder in (dead, live, unaskable):
        (folder / "batch1").mkdir(parents=True)
    first = synthetic.generate(tmp_path / "out", seed=3, scale=micro, workers=1)
    assert not dead.exists() and live.exists() and unaskable.exists()
    shutil.rmtree(live)
    shutil.rmtree(unaskable)
    rename = Path.rename

    def raced(self, target):  # the other process renamed its copy into place first
        if Path(target).name == "again":
            rename(tmp_path / "out", target)
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", raced)
    again = synthetic.generate(tmp_path / "again", seed=3, scale=micro, workers=1)
    assert again == first and sorted(p.name for p in tmp_path.iterdir()) == ["again"]


def test_check_json_counts_match_the_files_on_disk(synthetic_tiny: Path) -> None:
    result = CliRunner().invoke(app, ["data", "check", str(synthetic_tiny), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["problems"] == []
    dataset = Dataset(synthetic_tiny)
    for task, splits in report["splits"].items():
        for split_name, counts in splits.items():
            split = dataset.split(task, split_name)
            jpgs = sum(len(list(t.crops_dir.glob("*.jpg"))) for t in split.tracks)
            assert counts["face_images"] == jpgs
            assert counts["tracks"] == len(split.tracks) > 0
            if split_name != "test":
                files = [t.annotation for t in split.tracks]
                assert counts["label_rows"] == sum(len(f.read_text().splitlines()) - 1 for f in files)
    assert report["splits"]["va"]["test"]["labelled"] is True


def test_layout_has_aff_wild2_quirks(synthetic_tiny: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    videos = dataset.layout.videos
    assert any(p.suffix == ".avi" for p in videos.values())
    assert {p.parent.name for p in videos.values()} == {"batch1", "batch2", "new_vids"}
    assert dataset.layout.annotations.name == "6th ABAW Annotations"
    metadata = json.loads((synthetic_tiny / "synthetic_metadata.json").read_text())
    assert {v["fps"] for v in metadata["videos"]} >= {"30", "30000/1001", "25"}
    assert any(v["frames"] != v["label_lines"] for v in metadata["videos"])
    pairs = [v for v in metadata["videos"] if len(v["tracks"]) == 2]
    assert pairs and all({t["name"] for t in v["tracks"]} == {v["name"] + "_left", v["name"] + "_right"} for v in pairs)
    assert any(t["late_start"] for v in metadata["videos"] for t in v["tracks"])
    assert (synthetic_tiny / "cropped_aligned_new_50_vids").is_dir()
    labels = dataset.split("va", "train").labels()
    assert (labels == -5).any() and ((labels >= -1) & (labels <= 1)).any()
    split = dataset.split("expr", "validation")
    name = split.names[0]
    info = split.video_info(name)
    assert info.has_audio and info.audio_rate in (44100, 48000)
    assert str(info.fps) == next(v["fps"] for v in metadata["videos"] if v["name"] == split.track(name).video)


def test_every_track_has_gaps_or_late_faces_somewhere(synthetic_tiny: Path) -> None:
    split = Dataset(synthetic_tiny).split("va", "train")
    gaps = [np.count_nonzero(np.diff(split.face_frames(n)) > 1) for n in split.names]
    assert sum(gaps) > 0


def test_templates_and_test_labels_agree(synthetic_tiny: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    for task in ("va", "expr"):
        template = dataset.template(task)
        assert template.names == dataset.test_track_names(task)
        split = dataset.split(task, "test")
        for entry in template.tracks:
            assert entry.frames.tolist() == list(range(1, split.track(entry.name).n_rows + 1))
            assert len(split.track(entry.name).labels) == len(entry.frames)


def test_face_truth_matches_the_crops(synthetic_tiny: Path) -> None:
    metadata = json.loads((synthetic_tiny / "synthetic_metadata.json").read_text())
    rows = []
    for video in metadata["videos"]:
        with open(synthetic_tiny / "synthetic_faces" / f"{video['name']}.csv") as handle:
            rows.extend(csv.DictReader(handle))
    assert len(rows) == metadata["face_images"] == sum(1 for _ in synthetic_tiny.glob("cropped_aligned*/*/*.jpg"))
    for row in rows[::97]:
        x0, y0, x1, y1 = (float(row[k]) for k in ("x0", "y0", "x1", "y1"))
        for eye in ("left_eye", "right_eye"):
            assert x0 <= float(row[f"{eye}_x"]) <= x1 and y0 <= float(row[f"{eye}_y"]) <= y1
        assert float(row["left_eye_x"]) < float(row["right_eye_x"])


def test_oracle_scores_show_complementary_modalities(synthetic_tiny: Path) -> None:
    oracle = json.loads((synthetic_tiny / "synthetic_metadata.json").read_text())["oracle"]
    video, audio, both = (oracle["va"][m]["validation"] for m in ("video", "audio", "audio+video"))
    assert video["ccc_valence"] > audio["ccc_valence"]
    assert audio["ccc_arousal"] > video["ccc_arousal"]
    assert both["score"] > max(video["score"], audio["score"])
    expr = {m: oracle["expr"][m]["validation"]["score"] for m in ("video", "audio", "audio+video")}
    assert expr["video"] > expr["audio"] > 0.5  # the voice's expression cues (generator v5); v4's audio read 0.17
    assert expr["audio+video"] > expr["video"] + 0.02


def test_generated_files_are_readable_by_others(tmp_path: Path, micro: str) -> None:
    import stat

    root = tmp_path / "syn"
    synthetic.generate(root, seed=2, scale=micro, workers=1)
    template = next((root / "test_set").rglob("CVPR_6th_ABAW_VA_test_set_sample.txt"))
    for path in (root, template):
        assert path.stat().st_mode & stat.S_IROTH, path
