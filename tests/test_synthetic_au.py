"""AU detection labels of the synthetic Aff-Wild2: exact files, invalid rows, base rates, agreement with the
expression drawn, independence from every other file, and the AU oracle."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from harness.data import synthetic
from harness.data.synthetic import aus
from harness.data.synthetic import plan as plan_module
from harness.data.synthetic.labels import ANNOTATION_FOLDER
from harness.metrics import task_scores

HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
ROW = re.compile(r"(-1(,-1){11}|[01](,[01]){11})")
SPLITS = {"Train_Set": ANNOTATION_FOLDER, "Validation_Set": ANNOTATION_FOLDER, "Test_Set": "synthetic_test_labels"}
EXPR_CLASSES = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
MICRO = {"videos": 3, "pairs": 1, "seconds": (2.0, 3.0), "extra_validation": (0, 0)}


def _folder(root: Path, challenge: str, split: str) -> Path:
    return root / SPLITS[split] / challenge / split


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def _labels(root: Path, challenge: str, split: str) -> dict[str, np.ndarray]:
    """Each track's label rows of one challenge and split (header dropped)."""
    folder = _folder(root, challenge, split)
    width = None if challenge == "EXPR_Recognition_Challenge" else ","
    out = {}
    for path in sorted(folder.glob("*.txt")):
        rows = _lines(path)[1:-1]
        out[path.stem] = np.array([[float(v) for v in row.split(width)] for row in rows])
    return out


@pytest.fixture(scope="module")
def tiny_labels(synthetic_tiny: Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{split: {challenge: {track: rows}}}`` of the session's tiny dataset."""
    challenges = ("AU_Detection_Challenge", "EXPR_Recognition_Challenge", "VA_Estimation_Challenge")
    return {split: {c: _labels(synthetic_tiny, c, split) for c in challenges} for split in SPLITS}


def _pooled(tiny_labels, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """AU rows and EXPR classes of every frame valid for both, over one split or all."""
    au_rows, classes = [], []
    for name, labels in tiny_labels.items():
        if split is None or name == split:
            for track, rows in labels["AU_Detection_Challenge"].items():
                expr = labels["EXPR_Recognition_Challenge"][track][:, 0]
                au_rows.append(rows[expr >= 0])
                classes.append(expr[expr >= 0])
    return np.concatenate(au_rows), np.concatenate(classes).astype(int)


def test_au_files_have_the_exact_format_and_one_line_per_frame(synthetic_tiny: Path) -> None:
    for split in SPLITS:
        au_folder = _folder(synthetic_tiny, "AU_Detection_Challenge", split)
        expr_folder = _folder(synthetic_tiny, "EXPR_Recognition_Challenge", split)
        au_files = sorted(p.name for p in au_folder.glob("*.txt"))
        assert au_files and au_files == sorted(p.name for p in expr_folder.glob("*.txt"))  # the EXPR tracks
        for name in au_files:
            lines = _lines(au_folder / name)
            assert lines[0] == HEADER and lines[-1] == ""  # one newline after the last row, none before the header
            assert all(ROW.fullmatch(line) for line in lines[1:-1]), name
            assert len(lines) == len(_lines(expr_folder / name))


def test_invalid_rows_are_exactly_where_va_and_expr_are_invalid(tiny_labels) -> None:
    invalid_seen = 0
    for labels in tiny_labels.values():
        for track, rows in labels["AU_Detection_Challenge"].items():
            invalid = np.all(rows == -1, axis=1)
            assert np.all(invalid | np.all(rows >= 0, axis=1))  # a row is all -1 or all 0/1
            assert np.array_equal(invalid, labels["EXPR_Recognition_Challenge"][track][:, 0] == -1), track
            if track in labels["VA_Estimation_Challenge"]:
                assert np.array_equal(invalid, labels["VA_Estimation_Challenge"][track][:, 0] == -5), track
            invalid_seen += int(invalid.sum())
    assert invalid_seen > 0


def test_base_rates_are_aff_wild2_like(tiny_labels) -> None:
    rows, _ = _pooled(tiny_labels)
    rate = dict(zip(aus.AU_NAMES, rows.mean(axis=0), strict=True))
    for name in ("AU12", "AU25"):
        assert 0.25 <= rate[name] <= 0.45, (name, rate[name])
    for name in ("AU15", "AU23", "AU24"):
        assert 0.02 <= rate[name] <= 0.12, (name, rate[name])
    assert all(0.02 <= value <= 0.45 for value in rate.values()), rate


def test_aus_agree_with_the_expression(tiny_labels) -> None:
    rows, classes = _pooled(tiny_labels)

    def rate(au: str, expression: str) -> float:
        return float(rows[classes == EXPR_CLASSES.index(expression), aus.AU_NAMES.index(au)].mean())

    assert rate("AU12", "Happiness") > 0.7 > 0.1 > rate("AU12", "Sadness")
    assert rate("AU6", "Happiness") > 0.5 > 0.05 > rate("AU6", "Neutral")
    assert rate("AU4", "Anger") > 0.7 > 0.05 > rate("AU4", "Happiness")
    assert rate("AU1", "Sadness") > 0.5 and rate("AU2", "Surprise") > 0.5 and rate("AU26", "Surprise") > 0.5
    assert rate("AU10", "Disgust") > 0.5 > 0.05 > rate("AU10", "Neutral")
    assert rate("AU24", "Anger") > 0.2 and rate("AU24", "Happiness") == rate("AU23", "Surprise") == 0
    both = rows[:, aus.AU_NAMES.index("AU24")] + rows[:, aus.AU_NAMES.index("AU25")]
    assert both.max() == 1  # a lip pressor keeps the lips closed


def test_au_test_material_lists_the_expr_tracks(synthetic_tiny: Path) -> None:
    lists = synthetic_tiny / "test_set" / "names_of_videos_in_each_test_set"
    tracks = _lines(lists / "Action_Unit_Detection_Challenge_test_set_release.txt")
    assert tracks == _lines(lists / "Expression_Recognition_Challenge_test_set_release.txt")
    template = _lines(synthetic_tiny / "test_set/prediction_files_format/CVPR_6th_ABAW_AU_test_set_sample.txt")
    assert template[0] == f"image_location,{HEADER}" and template[-1] == ""
    expected = []
    for track in tracks[:-1]:
        rows = len(_lines(_folder(synthetic_tiny, "AU_Detection_Challenge", "Test_Set") / f"{track}.txt")) - 2
        expected += [f"{track}/{frame:05d}.jpg,0,0,0,0,0,0,0,0,0,0,0,0" for frame in range(1, rows + 1)]
    assert template[1:-1] == expected


def test_oracle_scores_au_well_above_a_constant_predictor(synthetic_tiny: Path, tiny_labels) -> None:
    metadata = json.loads((synthetic_tiny / "synthetic_metadata.json").read_text())
    assert metadata["version"] == synthetic.GENERATOR_VERSION == 5 and metadata["tasks"] == ["va", "expr", "au"]
    assert metadata["settings"]["action_units"]["names"] == list(aus.AU_NAMES)
    oracle = metadata["oracle"]["au"]
    rows, _ = _pooled(tiny_labels, "Validation_Set")
    constant = task_scores(
        "au", np.ones_like(rows, dtype=np.int8), rows.astype(np.int8)
    ).score  # the best constant: all on
    video = oracle["video"]["validation"]
    assert len(video["f1_per_au"]) == 12 and video["score"] == pytest.approx(np.mean(video["f1_per_au"]), abs=1e-3)
    assert video["score"] > constant + 0.3
    assert video["score"] > oracle["audio"]["validation"]["score"]


def test_au_draw_leaves_every_other_file_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seed: identical bytes everywhere; AU labels drawn differently: only the AU files (and metadata) change."""
    monkeypatch.setitem(plan_module.SCALES, "micro", MICRO)
    synthetic.generate(tmp_path / "a", seed=3, scale="micro", workers=1)
    synthetic.generate(tmp_path / "b", seed=3, scale="micro", workers=1)
    monkeypatch.setattr(aus, "THRESHOLDS", {name: value + 0.2 for name, value in aus.THRESHOLDS.items()})
    monkeypatch.setattr(aus, "DRAWN_SECONDS", 0.3)
    synthetic.generate(tmp_path / "c", seed=3, scale="micro", workers=1)
    first, second, other = (_files(tmp_path / name) for name in "abc")
    assert first.keys() == second.keys() == other.keys()
    assert {name for name in first if first[name] != second[name]} <= {synthetic.METADATA}  # its timing only
    changed = {name for name in first if first[name] != other[name]}
    assert synthetic.METADATA in changed and all("AU_Detection" in name for name in changed - {synthetic.METADATA})
    assert any("AU_Detection" in name for name in changed)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pooled_release_writes_au_files_for_its_own_au_tracks(tmp_path: Path) -> None:
    """At the affwild2 scale AU tracks are the release's, not EXPR's: AU alone in validation, EXPR without AU in
    test."""
    root = tmp_path / "aw2"
    metadata = synthetic.generate(root, seed=1, scale="affwild2", crops="pool", fraction=0.002, workers=1)
    assert "unavailable" in metadata["oracle"]["au"]
    planned: dict[tuple[str, str], set[str]] = {}
    for video in metadata["videos"]:
        for track in video["tracks"]:
            for task in track["tasks"]:
                planned.setdefault((video["split"], task), set()).add(track["name"])
    for split in SPLITS:
        files = {
            task: {p.stem for p in _folder(root, challenge, split).glob("*.txt")}
            for task, challenge in (("au", "AU_Detection_Challenge"), ("expr", "EXPR_Recognition_Challenge"))
        }
        named = {"Train_Set": "train", "Validation_Set": "validation", "Test_Set": "test"}[split]
        assert files == {"au": planned[(named, "au")], "expr": planned[(named, "expr")]}
        assert files["au"] != files["expr"]
        first = _lines(_folder(root, "AU_Detection_Challenge", split) / f"{min(files['au'])}.txt")
        assert first[0] == HEADER and all(ROW.fullmatch(line) for line in first[1:-1])
    templates = root / "test_set/prediction_files_format"
    assert (templates / "CVPR_6th_ABAW_AU_test_set_sample.txt").read_text().startswith(f"image_location,{HEADER}\n")
