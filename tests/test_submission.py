"""Prediction files: exact writing, strict reading and packaging. Fixtures are hand-written."""

import hashlib
import json
import sys
import zipfile

import numpy as np
import pytest
from conftest import TRACK_ROWS, VA_GOOD, write

from harness.data.templates import read_template
from harness.errors import SubmissionError
from harness.submission import file_stem, package_submission, read_predictions, tool_versions, write_predictions
from harness.tasks import get_task
from harness.validation import validate_predictions

VA_HEADER = "image_location,valence,arousal"
EXPR_HEADER = "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
AU_HEADER = "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
EXPR_GOOD = (
    f"{EXPR_HEADER}\n"
    "video10_1_left/00001.jpg,4\n"
    "video10_1_left/00002.jpg,0\n"
    "video10_1_left/00003.jpg,7\n"
    "118-30-640x480/00001.jpg,6\n"
    "118-30-640x480/00002.jpg,1\n"
)


# ---------------------------------------------------------------------------------------------------------- writing


def test_write_va_exact_format_and_round_trip(tmp_path, templates):
    predictions = {
        # one frame past the template (ignored), values clipped, tiny values (-5e-7 too) written as 0
        "video10_1_left": np.array([[0.5, -0.25], [1.5, -2.0], [1e-9, -5e-7], [9.0, 9.0]]),
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


@pytest.fixture
def au_template(tmp_path):
    """The AU template listing ``TRACK_ROWS``."""
    rows = "".join(f"{row},0,0,0,0,0,0,0,0,0,0,0,0\n" for row in TRACK_ROWS)
    return read_template(write(tmp_path, f"{AU_HEADER}\n{rows}", "au_template.txt"), "au")


def test_write_au_exact_header_and_0_1_values_then_validate(tmp_path, au_template):
    units = np.zeros((4, 12), np.int64)  # one frame past the template (ignored)
    units[0, [0, 1]] = units[2, 11] = 1
    predictions = {"video10_1_left": units, "118-30-640x480": np.eye(2, 12, 10, dtype=bool)}  # bool is 0/1 too
    path = write_predictions(tmp_path / "au.txt", "au", au_template, predictions)
    assert path.read_text() == (
        f"{AU_HEADER}\n"
        "video10_1_left/00001.jpg,1,1,0,0,0,0,0,0,0,0,0,0\n"
        "video10_1_left/00002.jpg,0,0,0,0,0,0,0,0,0,0,0,0\n"
        "video10_1_left/00003.jpg,0,0,0,0,0,0,0,0,0,0,0,1\n"
        "118-30-640x480/00001.jpg,0,0,0,0,0,0,0,0,0,0,1,0\n"
        "118-30-640x480/00002.jpg,0,0,0,0,0,0,0,0,0,0,0,1\n"
    )
    read = read_predictions(path, "au", strict=True)
    assert read.values.dtype == np.int64 and read.values.shape == (5, 12) and read.values[0].tolist()[:3] == [1, 1, 0]
    assert read.by_track(au_template)["video10_1_left"].tolist() == units[:3].tolist()
    report = validate_predictions(path, "au", au_template, strict=True)
    assert report.ok and not report.warnings and report.rows == 5
    floats = {name: values.astype(np.float32) for name, values in predictions.items()}  # 0.0/1.0 are fine
    assert write_predictions(tmp_path / "au2.txt", "au", au_template, floats).read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.7, r"track '118-30-640x480' frame 2 has prediction \[0\.0, 0\.7, 0\.0, .*\] \(1 frames like it\); "
              r"expected 0 or 1 per AU"),
        (2, r"track '118-30-640x480' frame 2 has prediction \[0, 2, 0, .*\] \(1 frames like it\); expected 0 or 1"),
        (np.nan, r"frame 2 has prediction \[0\.0, nan, "),
    ],
)  # fmt: skip
def test_write_au_refuses_a_value_other_than_0_or_1_naming_the_frame(tmp_path, au_template, value, message):
    bad = np.zeros((2, 12), np.asarray(value).dtype)
    bad[1, 1] = value
    with pytest.raises(SubmissionError, match=message):
        write_predictions(
            tmp_path / "au.txt", "au", au_template, {"video10_1_left": np.zeros((3, 12)), "118-30-640x480": bad}
        )
    assert not (tmp_path / "au.txt").exists()


def test_write_au_refuses_class_indices_naming_the_shape(tmp_path, au_template):
    with pytest.raises(
        SubmissionError,
        match=r"AU predictions for track 'video10_1_left' are int64 of shape \(3,\); expected 0/1 values of shape "
        r"\(n_frames, 12\) \(AU1,AU2,.*,AU26\) with n_frames >= 3 \(threshold the probabilities\)",
    ):
        write_predictions(tmp_path / "au.txt", "au", au_template, {n: np.zeros(3, int) for n in au_template.names})


def test_au_test_file_of_the_synthetic_tiny_set_is_written_validated_and_scored(synthetic_tiny, tmp_path):
    from harness.data.affwild2 import Dataset
    from harness.scoring import file_by_track, score_split

    dataset = Dataset(synthetic_tiny)
    assert dataset.layout.tasks == ("va", "expr", "au")
    template, test = dataset.template("au"), dataset.split("au", "test")
    truth = {track.name: np.maximum(track.labels, 0) for track in test.tracks}  # -1 rows written as 0
    name = get_task("au").submission_name(dataset.layout.release.round)
    path = write_predictions(tmp_path / name, "au", template, truth)
    assert path.name == "CVPR_6th_ABAW_AU_test_set.txt" and path.read_text().startswith(AU_HEADER + "\n")
    assert validate_predictions(path, "au", template, strict=True).ok
    by_track = file_by_track(read_predictions(path, "au"), test)
    assert all(np.array_equal(by_track[name], values) for name, values in truth.items())
    result = score_split(test, by_track, n_resamples=50)
    present = np.concatenate([track.labels[get_task("au").valid(track.labels)] for track in test.tracks]).any(axis=0)
    assert result["f1_per_au"] == [1.0 if on else 0.0 for on in present]  # the labels score 1 where an AU occurs


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
        ("va", "'image_location','valence','arousal'\nv/00001.jpg,0,0\n",
         r"line 1: expected the header 'image_location,valence,arousal', found ''image_location',.*it is quoted"),
        ("va", 'image_location,"valence,arousal"\nv/00001.jpg,0,0\n',
         r"line 1: expected the header .*its quotes group names into one column, but each row has 3 fields"),
        ("au", 'image_location,"AU1,AU2",AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26\nv/00001.jpg' + ",0" * 12,
         r"line 1: expected the header .*its quotes group names into one column, but each row has 13 fields"),
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
         r"line 3: expected an integer class .*'v/00002\.jpg,4\.0' \(a whole number written as a float: write the "
         r"integer, or read it leniently with --lenient-numbers\)"),
        ("expr", f"{EXPR_HEADER}\nv/00001.jpg,4.5\n",
         r"line 2: expected an integer class after the location, found 'v/00001\.jpg,4\.5'$"),
        ("au", f"{AU_HEADER}\nv/00001.jpg,0,0,0,0,0,0,0,0,0,0,0,0\nv/00002.jpg,0,0.7,0,0,0,0,0,0,0,0,0,0\n",
         r"pred\.txt, line 3: expected 12 comma-separated values 0 or 1 after the location, found "
         r"'v/00002\.jpg,0,0\.7,0,0,0,0,0,0,0,0,0,0'$"),
        ("au", f"{AU_HEADER}\nv/00001.jpg,1\n",
         r"line 2: 2 fields, expected 13 'TRACK/00001\.jpg,0/1,0/1,.*,0/1'; found 'v/00001\.jpg,1'"),
        ("au", f"{EXPR_HEADER}\nv/00001.jpg,0,0,0,0,0,0,0,0,0,0,0,0\n",
         r"line 1: expected the header 'image_location,AU1,.*AU26', .*that is the header of the other task"),
        ("au", "", r"empty file; expected the header 'image_location,AU1,.*' and rows 'TRACK/00001\.jpg,0/1,"),
    ],
)  # fmt: skip
def test_read_rejects(tmp_path, task, text, message):
    with pytest.raises(SubmissionError, match=message):
        read_predictions(write(tmp_path, text), task)


def test_read_accepts_the_sun_teams_quoted_header_with_a_warning(tmp_path):
    sun_header = 'image_location,"Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"'
    path = write(tmp_path, EXPR_GOOD.replace(EXPR_HEADER, sun_header))
    read = read_predictions(path, "expr")
    assert read.values.tolist() == [4, 0, 7, 6, 1]
    (warning,) = read.warnings
    assert warning.startswith(f"line 1: found '{sun_header}', which differs from '{EXPR_HEADER}' only by quotes around")
    assert read_predictions(write(tmp_path, EXPR_GOOD), "expr").warnings == ()
    with pytest.raises(SubmissionError, match=r"pred\.txt, line 1: found .* only by quotes .*\(strict: every warning"):
        read_predictions(write(tmp_path, EXPR_GOOD.replace(EXPR_HEADER, sun_header)), "expr", strict=True)


def test_read_float_classes_only_leniently(tmp_path):
    text = EXPR_GOOD.replace(",4\n", ",4.0\n").replace(",7\n", ",7.\n")
    with pytest.raises(
        SubmissionError,
        match=r"line 2: expected an integer class after the location, found 'video10_1_left/00001\.jpg,4\.0'",
    ):
        read_predictions(write(tmp_path, text), "expr")
    read = read_predictions(write(tmp_path, text), "expr", lenient_numbers=True)
    assert read.values.dtype == np.int64 and read.values.tolist() == [4, 0, 7, 6, 1]
    assert read.warnings == (
        "line 2: 2 EXPR class(es) written as whole-number floats, first 'video10_1_left/00001.jpg,4.0'; "
        "read as integer classes (write integers to be safe)",
    )
    with pytest.raises(SubmissionError, match=r"line 2: 2 EXPR class\(es\) written as .*\(strict: every warning"):
        read_predictions(write(tmp_path, text), "expr", strict=True, lenient_numbers=True)
    with pytest.raises(
        SubmissionError, match=r"line 3: expected an integer class after the location, found .*00002\.jpg,0\.5'"
    ):
        read_predictions(write(tmp_path, text.replace(",0\n", ",0.5\n")), "expr", lenient_numbers=True)


def test_the_writer_writes_the_exact_header_so_strict_validation_passes(tmp_path, templates):
    predictions = {"video10_1_left": np.array([4, 0, 7]), "118-30-640x480": np.array([6, 1, 3])}
    path = write_predictions(tmp_path / "expr.txt", "expr", templates["expr"], predictions)
    assert path.read_text().splitlines()[0] == EXPR_HEADER
    report = validate_predictions(path, "expr", templates["expr"], strict=True)
    assert report.ok and not report.warnings and read_predictions(path, "expr", strict=True).warnings == ()


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
        ("[ ]", {"va": "va.txt"}, None, r"system name '\[ \]' cannot name a file"),
        ("s", {"va": "missing.txt"}, None, r"missing\.txt: cannot read the va prediction file"),
        ("s", {"mtl": "va.txt"}, None, r"unknown task 'mtl'"),
        ("s", {"va": "va.txt"}, {"bad": object()}, r"cannot be written as JSON"),
    ],
)
def test_package_rejects(tmp_path, system, files, extra, message):
    write(tmp_path, VA_GOOD, "va.txt")
    with pytest.raises(SubmissionError, match=message):
        package_submission(tmp_path / "pkg", system, {k: tmp_path / v for k, v in files.items()}, "h", {}, extra)
    assert not (tmp_path / "pkg").exists() or not any((tmp_path / "pkg").glob("*.zip"))


@pytest.mark.parametrize(
    ("system", "stem"),
    [("dwf", "dwf"), ("dynamic_vit_context[window_s=4]", "dynamic_vit_context_window_s-4"), ("a b", "a_b")],
)
def test_file_stem_keeps_variant_names_readable(system, stem):
    assert file_stem(system) == stem


def test_tool_versions_reads_torch_without_importing_it():
    versions = tool_versions()
    assert versions["numpy"] == np.__version__ and versions["harness"]


@pytest.mark.parametrize(
    ("task", "round_", "name"),
    [
        ("va", 6, "CVPR_6th_ABAW_VA_test_set.txt"),
        ("expr", 6, "CVPR_6th_ABAW_Expr_test_set.txt"),
        ("au", 6, "CVPR_6th_ABAW_AU_test_set.txt"),
        ("expr", None, "CVPR_6th_ABAW_Expr_test_set.txt"),  # the release unknown: 6th ABAW
        ("va", 5, "CVPR_5th_ABAW_VA_test_set.txt"),
        ("expr", 5, "CVPR_5th_ABAW_EXPR_test_set.txt"),
        ("au", 5, "CVPR_5th_ABAW_AU_test_set.txt"),
        ("expr", 8, "CVPR_8th_ABAW_Expr_test_set.txt"),
    ],
)
def test_submission_file_names_follow_the_release(task, round_, name):
    assert get_task(task).submission_name(round_) == name
