"""Prediction files: exact writing, strict reading, validation reports, packaging. Fixtures are hand-written."""

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.data.templates import read_template
from harness.errors import SubmissionError
from harness.submission import (
    package_submission,
    read_predictions,
    tool_versions,
    validate_predictions,
    write_predictions,
)

VA_HEADER = "image_location,valence,arousal"
EXPR_HEADER = "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
TRACK_ROWS = ["video10_1_left/00001.jpg", "video10_1_left/00002.jpg", "video10_1_left/00003.jpg"]
TRACK_ROWS += ["118-30-640x480/00001.jpg", "118-30-640x480/00002.jpg"]

VA_GOOD = (
    "image_location,valence,arousal\n"
    "video10_1_left/00001.jpg,0.5,-0.25\n"
    "video10_1_left/00002.jpg,1,-1\n"
    "video10_1_left/00003.jpg,0.000001,0.3\n"
    "118-30-640x480/00001.jpg,-0.75,0.125\n"
    "118-30-640x480/00002.jpg,0,0\n"
)
EXPR_GOOD = (
    f"{EXPR_HEADER}\n"
    "video10_1_left/00001.jpg,4\n"
    "video10_1_left/00002.jpg,0\n"
    "video10_1_left/00003.jpg,7\n"
    "118-30-640x480/00001.jpg,6\n"
    "118-30-640x480/00002.jpg,1\n"
)


def write(folder: Path, text: str, name: str = "pred.txt") -> Path:
    path = folder / name
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture
def templates(tmp_path):
    va = write(tmp_path, VA_HEADER + "\n" + "".join(f"{row},0,0\n" for row in TRACK_ROWS), "va_template.txt")
    expr = write(tmp_path, EXPR_HEADER + "\n" + "".join(f"{row},0\n" for row in TRACK_ROWS), "expr_template.txt")
    return {"va": read_template(va, "va"), "expr": read_template(expr, "expr")}


def rows_text(header: str, rows: list[str]) -> str:
    return header + "\n" + "".join(row + "\n" for row in rows)


def lines_of(report, kind: str) -> list[int | None]:
    return [line for line, _ in report.problems[kind].examples]


# ---------------------------------------------------------------------------------------------------------- writing


def test_write_va_exact_format_and_round_trip(tmp_path, templates):
    predictions = {
        # one frame past the template (ignored), values clipped, tiny values written as 0
        "video10_1_left": np.array([[0.5, -0.25], [1.5, -2.0], [1e-9, -1e-9], [9.0, 9.0]]),
        "118-30-640x480": np.array([[-0.75, 0.125], [-0.0, 0.1234567]], np.float32),
        "not_in_template": np.zeros((1, 2)),
    }
    path = write_predictions(tmp_path / "out" / "va.txt", "va", templates["va"], predictions)
    assert path.read_text() == (
        "image_location,valence,arousal\n"
        "video10_1_left/00001.jpg,0.500000,-0.250000\n"
        "video10_1_left/00002.jpg,1.000000,-1.000000\n"
        "video10_1_left/00003.jpg,0.000000,0.000000\n"
        "118-30-640x480/00001.jpg,-0.750000,0.125000\n"
        "118-30-640x480/00002.jpg,0.000000,0.123457\n"
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["va.txt"]
    read = read_predictions(path, "va")
    assert read.values.dtype == np.float64 and read.values.shape == (5, 2)
    assert read.locations == TRACK_ROWS
    assert read.line_numbers.tolist() == [2, 3, 4, 5, 6]
    assert read.by_track(templates["va"])["118-30-640x480"].tolist() == [[-0.75, 0.125], [0.0, 0.123457]]
    assert validate_predictions(path, "va", templates["va"]).ok


def test_write_expr_two_fields_and_round_trip(tmp_path, templates):
    predictions = {"video10_1_left": np.array([4, 0, 7]), "118-30-640x480": np.array([6, 1, 3], np.uint8)}
    path = write_predictions(tmp_path / "expr.txt", "expr", templates["expr"], predictions)
    assert path.read_text() == EXPR_GOOD
    read = read_predictions(path, "expr")
    assert read.values.dtype == np.int64 and read.values.tolist() == [4, 0, 7, 6, 1]
    assert read.track_names == ("video10_1_left", "118-30-640x480")
    assert read.track_index.tolist() == [0, 0, 0, 1, 1] and read.frames.tolist() == [1, 2, 3, 1, 2]
    report = validate_predictions(path, "expr", templates["expr"])
    assert report.ok and report.rows == 5 and "valid" in str(report)


@pytest.mark.parametrize(
    ("task", "predictions", "message"),
    [
        ("va", {"video10_1_left": np.zeros((3, 2))}, r"no va predictions for 1 of the 2 tracks .*'118-30-640x480'"),
        ("va", {"video10_1_left": np.zeros((2, 2)), "118-30-640x480": np.zeros((2, 2))},
         r"track 'video10_1_left' cover 2 frames, but the template lists frames up to 3 \(3 rows, from line 2\)"),
        ("va", {"video10_1_left": np.array([[0, 0], [np.nan, 0], [0, 0]]), "118-30-640x480": np.zeros((2, 2))},
         r"track 'video10_1_left' frame 2 has prediction \[nan, 0\.0\] \(1 frames like it\); expected finite"),
        ("va", {"video10_1_left": np.zeros((3, 2)), "118-30-640x480": np.array([[0, 0], [0, -np.inf]])},
         r"track '118-30-640x480' frame 2 has prediction \[0\.0, -inf\]"),
        ("va", {"video10_1_left": np.zeros(3), "118-30-640x480": np.zeros((2, 2))}, r"of shape \(3,\); expected real"),
        ("expr", {"video10_1_left": np.zeros(3), "118-30-640x480": np.zeros(2, int)},
         r"EXPR predictions for track 'video10_1_left' are float64 .*take the argmax"),
        ("expr", {"video10_1_left": np.array([0, 8, 1]), "118-30-640x480": np.zeros(2, int)},
         r"track 'video10_1_left' frame 2 has prediction 8 .*expected classes 0\.\.7"),
        ("expr", {"video10_1_left": np.array([0, 1, 1]), "118-30-640x480": np.array([-1, 0])},
         r"frame 1 has prediction -1"),
    ],
)  # fmt: skip
def test_write_rejects_bad_predictions_and_leaves_the_old_file(tmp_path, templates, task, predictions, message):
    path = write(tmp_path, "old content\n", "out.txt")
    with pytest.raises(SubmissionError, match=message):
        write_predictions(path, task, templates[task], predictions)
    assert path.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expr_template.txt", "out.txt", "va_template.txt"]


def test_write_rejects_the_other_tasks_template(tmp_path, templates):
    with pytest.raises(SubmissionError, match=r"cannot write va predictions with the expr template"):
        write_predictions(tmp_path / "x.txt", "va", templates["expr"], {})


# ---------------------------------------------------------------------------------------------------------- reading


def test_read_accepts_windows_line_endings_and_a_trailing_blank_line(tmp_path):
    path = write(tmp_path, VA_GOOD.replace("\n", "\r\n") + "\r\n")
    read = read_predictions(path, "va")
    assert read.values[:, 0].tolist() == [0.5, 1.0, 0.000001, -0.75, 0.0]
    assert read.locations == TRACK_ROWS


@pytest.mark.parametrize(
    ("task", "text", "message"),
    [
        ("va", "", r"pred\.txt: empty file; expected the header 'image_location,valence,arousal'"),
        ("va", '"image_location","valence","arousal"\nv/00001.jpg,0,0\n',
         r"line 1: expected the header 'image_location,valence,arousal', found '\"image_location\",.*it is quoted"),
        ("va", "image_location,valence,arrousal\nv/00001.jpg,0,0\n",
         r"line 1: expected the header .*found 'image_location,valence,arrousal' \(check the spelling"),
        ("va", f"{EXPR_HEADER}\nv/00001.jpg,0,0\n", r"line 1: .*that is the header of the other task"),
        ("va", "v/00001.jpg,0,0\n", r"line 1: .*the header is missing"),
        ("va", f"{VA_HEADER}\n\n", r"pred\.txt: the header is not followed by any row"),
        ("va", f"{VA_HEADER}\nv/00001.jpg,0,0\nv/00002.jpg,0\n",
         r"pred\.txt, line 3: 2 fields, expected 3 'TRACK/00001\.jpg,valence,arousal'; found 'v/00002\.jpg,0'"),
        ("va", f"{VA_HEADER}\nv/00001.jpg,0,0\nv/00002.jpg,abc,0\n",
         r"line 3: expected two numbers after the location, found 'v/00002\.jpg,abc,0'"),
        ("va", f"{VA_HEADER}\nv/00001.jpg,0,0\nv/2.jpg,0,0\n",
         r"line 3: malformed image location 'v/2\.jpg' \(a frame"),
        ("expr", f"{EXPR_HEADER}\nv/00001.jpg,0.1,0.1,0.1,0.1,0.1,0.1,0.2,0.2\n",
         r"line 2: 9 fields, expected 2 'TRACK/00001\.jpg,class' \(class probabilities\?"),
        ("expr", f"{EXPR_HEADER}\nv/00001.jpg,4\nv/00002.jpg,4.0\n",
         r"line 3: expected an integer class .*'v/00002\.jpg,4\.0'"),
    ],
)  # fmt: skip
def test_read_rejects(tmp_path, task, text, message):
    with pytest.raises(SubmissionError, match=message):
        read_predictions(write(tmp_path, text), task)


def test_read_keeps_nan_and_out_of_range_for_the_validator(tmp_path):
    read = read_predictions(write(tmp_path, f"{VA_HEADER}\nv/00001.jpg,nan,2\nv/00002.jpg,-inf,0\n"), "va")
    assert np.isnan(read.values[0, 0]) and read.values[0, 1] == 2 and read.values[1, 0] == -np.inf


def test_read_unreadable_file(tmp_path):
    with pytest.raises(SubmissionError, match=r"missing\.txt: cannot read the file"):
        read_predictions(tmp_path / "missing.txt", "va")


def test_by_track_refuses_rows_that_differ_from_the_template(tmp_path, templates):
    rows = VA_GOOD.splitlines()
    path = write(tmp_path, "\n".join([rows[0], rows[2], rows[1], *rows[3:]]) + "\n")
    with pytest.raises(SubmissionError, match=r"not exactly the rows of .*va_template\.txt in order"):
        read_predictions(path, "va").by_track(templates["va"])


# ------------------------------------------------------------------------------------------------------- validating


def va_file(tmp_path: Path, values: list[str], rows: list[str] = TRACK_ROWS, header: str = VA_HEADER) -> Path:
    return write(tmp_path, rows_text(header, [f"{row},{value}" for row, value in zip(rows, values, strict=True)]))


def test_validate_accepts_windows_line_endings_and_trailing_blank_line(tmp_path, templates):
    path = write(tmp_path, VA_GOOD.replace("\n", "\r\n") + "\r\n")
    report = validate_predictions(path, "va", templates["va"])
    assert report.ok, str(report)
    assert report.to_dict()["ok"] is True


def test_validate_non_finite_and_out_of_range(tmp_path, templates):
    path = va_file(tmp_path, ["0,0", "nan,0", "0.5,inf", "1.0001,0", "-1,-1.5"])
    report = validate_predictions(path, "va", templates["va"])
    assert not report.ok
    assert set(report.problems) == {"non_finite", "out_of_range"}
    assert lines_of(report, "non_finite") == [3, 4]
    assert lines_of(report, "out_of_range") == [5, 6]
    assert "'video10_1_left/00002.jpg,nan,0'" in report.problems["non_finite"].examples[0][1]


@pytest.mark.parametrize(
    ("header", "hint"),
    [
        ('"image_location","valence","arousal"', "it is quoted"),
        ("image_location,valence,arrousal", "check the spelling"),
    ],
)
def test_validate_bad_header(tmp_path, templates, header, hint):
    report = validate_predictions(va_file(tmp_path, ["0,0"] * 5, header=header), "va", templates["va"])
    assert list(report.problems) == ["header"]
    (line, message), = report.problems["header"].examples  # fmt: skip
    assert line == 1 and "expected the header 'image_location,valence,arousal'" in message and hint in message


def test_validate_rows_out_of_order(tmp_path, templates):
    rows = [TRACK_ROWS[i] for i in (0, 2, 1, 3, 4)]
    report = validate_predictions(va_file(tmp_path, ["0,0"] * 5, rows), "va", templates["va"])
    assert list(report.problems) == ["order"]
    assert lines_of(report, "order") == [4]
    assert "'video10_1_left/00002.jpg,0,0' comes after" in report.problems["order"].examples[0][1]


def test_validate_tracks_in_the_wrong_order(tmp_path, templates):
    rows = TRACK_ROWS[3:] + TRACK_ROWS[:3]
    report = validate_predictions(va_file(tmp_path, ["0,0"] * 5, rows), "va", templates["va"])
    assert list(report.problems) == ["order"]
    assert report.problems["order"].count == 3 and lines_of(report, "order") == [4, 5, 6]


def test_validate_duplicate_rows(tmp_path, templates):
    rows = TRACK_ROWS[:2] + [TRACK_ROWS[1]] + TRACK_ROWS[3:]
    report = validate_predictions(va_file(tmp_path, ["0,0"] * 5, rows), "va", templates["va"])
    assert set(report.problems) == {"duplicate_row", "missing_row"}
    assert lines_of(report, "duplicate_row") == [4]
    assert "repeats the location of line 3" in report.problems["duplicate_row"].examples[0][1]
    assert report.problems["missing_row"].examples == [(None, "no row for 'video10_1_left/00003.jpg'")]


def test_validate_missing_and_unknown_tracks_and_extra_rows(tmp_path, templates):
    rows = TRACK_ROWS[:3] + ["other_track/00001.jpg", "other_track/00002.jpg", "video10_1_left/00004.jpg"]
    report = validate_predictions(va_file(tmp_path, ["0,0"] * 6, rows), "va", templates["va"])
    assert set(report.problems) == {"row_count", "missing_track", "unknown_track", "extra_row"}
    assert report.problems["row_count"].examples == [(None, "6 rows, expected 5 (one per template row)")]
    (line, message), = report.problems["missing_track"].examples  # fmt: skip
    assert line is None and "track '118-30-640x480' (2 rows, template line 5) has no rows" in message
    assert report.problems["unknown_track"].examples == [(5, "track 'other_track' (2 rows) is not in the template")]
    assert lines_of(report, "extra_row") == [7]


def test_validate_expr_nine_fields_and_bad_classes(tmp_path, templates):
    probabilities = ",".join(["0.125"] * 8)
    values = ["4", probabilities, "4.0", "8", "-1"]
    report = validate_predictions(va_file(tmp_path, values, header=EXPR_HEADER), "expr", templates["expr"])
    assert set(report.problems) == {"field_count", "not_a_class", "class_out_of_range"}
    assert lines_of(report, "field_count") == [3]
    assert "9 fields, expected 2" in report.problems["field_count"].examples[0][1]
    assert lines_of(report, "not_a_class") == [4]
    assert lines_of(report, "class_out_of_range") == [5, 6]


def test_validate_va_wrong_field_count_and_malformed_location(tmp_path, templates):
    rows = TRACK_ROWS[:4] + ["118-30-640x480/2.jpg"]
    report = validate_predictions(va_file(tmp_path, ["0,0", "0", "0,0,0", "x,0", "0,0"], rows), "va", templates["va"])
    assert set(report.problems) == {"field_count", "not_a_number", "location", "missing_row"}
    assert lines_of(report, "field_count") == [3, 4]
    assert lines_of(report, "not_a_number") == [5]
    assert lines_of(report, "location") == [6]


def test_validate_empty_file(tmp_path, templates):
    report = validate_predictions(write(tmp_path, ""), "va", templates["va"])
    assert list(report.problems) == ["empty"] and report.rows == 0 and not report.ok
    assert "INVALID" in report.render()


def test_validate_keeps_five_examples_and_counts_all(tmp_path):
    tracks = [f"t/{frame:05d}.jpg" for frame in range(1, 13)]
    template_path = write(tmp_path, rows_text(VA_HEADER, [f"{row},0,0" for row in tracks]), "template.txt")
    template = read_template(template_path, "va")
    report = validate_predictions(va_file(tmp_path, ["nan,0"] * 12, tracks), "va", template)
    group = report.problems["non_finite"]
    assert group.count == 12 and len(group.examples) == 5 and lines_of(report, "non_finite") == [2, 3, 4, 5, 6]
    text = report.render()
    assert "non_finite (12): VA values that are NaN or infinite" in text and "... and 7 more" in text
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["ok"] is False and as_dict["problems"]["non_finite"]["count"] == 12
    assert as_dict["problems"]["non_finite"]["examples"][0]["line"] == 2


def test_validate_unreadable_file_or_wrong_template_raises(tmp_path, templates):
    with pytest.raises(SubmissionError, match=r"missing\.txt: cannot read the file"):
        validate_predictions(tmp_path / "missing.txt", "va", templates["va"])
    with pytest.raises(SubmissionError, match=r"cannot validate va predictions with the expr template"):
        validate_predictions(write(tmp_path, VA_GOOD), "va", templates["expr"])


# -------------------------------------------------------------------------------------------------------- packaging


def test_package_writes_manifest_and_zip(tmp_path):
    va = write(tmp_path, VA_GOOD, "va.txt")
    expr = write(tmp_path, EXPR_GOOD.replace("\n", "\r\n") + "\r\n", "expr.txt")
    torch_loaded = "torch" in sys.modules
    package = package_submission(
        tmp_path / "pkg", "sun-dwf_2", {"va": va, "expr": expr}, "abc123", {"va": {"P_VA": np.float32(0.5)}}, {"k": 1}
    )
    assert ("torch" in sys.modules) == torch_loaded
    manifest = json.loads(package.manifest_path.read_text())
    assert manifest["system"] == "sun-dwf_2" and manifest["spec_hash"] == "abc123" and manifest["extra"] == {"k": 1}
    assert manifest["validation_scores"] == {"va": {"P_VA": 0.5}}
    assert manifest["files"]["va"] == {
        "file": "va.txt", "rows": 5, "sha256": hashlib.sha256(va.read_bytes()).hexdigest(), "bytes": len(VA_GOOD)
    }  # fmt: skip
    assert manifest["files"]["expr"]["rows"] == 5
    assert manifest["created_at"].endswith("Z")
    assert set(manifest["versions"]) == {"python", "numpy", "harness", "torch"}
    assert package.zip_path == tmp_path / "pkg" / "sun-dwf_2.zip"
    with zipfile.ZipFile(package.zip_path) as archive:
        assert sorted(archive.namelist()) == ["expr.txt", "manifest.json", "va.txt"]
        assert archive.read("va.txt") == va.read_bytes()
        assert json.loads(archive.read("manifest.json")) == manifest
    assert sorted(p.name for p in (tmp_path / "pkg").iterdir()) == ["manifest.json", "sun-dwf_2.zip"]


@pytest.mark.parametrize(
    ("system", "files", "extra", "message"),
    [
        ("a b", {"va": "va.txt"}, None, r"system name 'a b' cannot name the zip"),
        ("s", {"va": "missing.txt"}, None, r"missing\.txt: cannot read the va prediction file"),
        ("s", {"au": "va.txt"}, None, r"unknown task 'au'"),
        ("s", {"va": "va.txt"}, {"bad": object()}, r"cannot be written as JSON"),
    ],
)
def test_package_rejects(tmp_path, system, files, extra, message):
    write(tmp_path, VA_GOOD, "va.txt")
    with pytest.raises(SubmissionError, match=message):
        package_submission(tmp_path / "pkg", system, {k: tmp_path / v for k, v in files.items()}, "h", {}, extra)
    assert not (tmp_path / "pkg").exists() or not any((tmp_path / "pkg").glob("*.zip"))


def test_tool_versions_reads_torch_without_importing_it():
    versions = tool_versions()
    assert versions["numpy"] == np.__version__ and versions["harness"]
