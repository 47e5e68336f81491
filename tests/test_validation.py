"""Validation reports of prediction files against their template: every kind of problem, with line numbers."""

import json
from pathlib import Path

import pytest
from conftest import TRACK_ROWS, VA_GOOD, write

from harness.data.templates import read_template
from harness.errors import SubmissionError
from harness.validation import validate_predictions

VA_HEADER = "image_location,valence,arousal"
EXPR_HEADER = "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
# The SUN team's EXPR header as their pandas writer wrote it (class list quoted); the organizers scored that file.
SUN_EXPR_HEADER = 'image_location,"Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"'


def rows_text(header: str, rows: list[str]) -> str:
    return header + "\n" + "".join(row + "\n" for row in rows)


def lines_of(report, kind: str) -> list[int | None]:
    return [line for line, _ in report.problems[kind].examples]


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
        ("'image_location','valence','arousal'", "it is quoted in a way CSV readers do not undo"),
        ("image_location,valence,arrousal", "check the spelling"),
        ('"image_location,valence,arousal"', "its quotes group names into one column, but each row has 3 fields"),
        ('image_"location",valence,arousal', "it is quoted in a way CSV readers do not undo"),
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
    values = ["4", probabilities, "4.5", "8", "-1"]
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


@pytest.mark.parametrize(
    ("task", "header", "difference"),
    [
        (
            "expr",
            SUN_EXPR_HEADER,
            'quotes around "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other" (8 names',
        ),
        ("va", '"image_location","valence","arousal"', 'quotes around "image_location", "valence", "arousal"'),
        ("va", VA_HEADER + " ", "trailing whitespace ' '"),
        ("va", " image_location, valence ,arousal", "leading whitespace ' '; spaces around names"),
    ],
)
def test_a_header_differing_only_by_quoting_or_whitespace_is_a_warning(tmp_path, templates, task, header, difference):
    values = ["4", "0", "7", "6", "1"] if task == "expr" else ["0,0"] * 5
    path = va_file(tmp_path, values, header=header)
    report = validate_predictions(path, task, templates[task])
    assert report.ok and not report.problems, report.render()
    assert list(report.warnings) == ["header_format"]
    ((line, message),) = report.warnings["header_format"].examples
    assert line == 1 and f"found '{header}'" in message and difference in message
    text = report.render()
    assert text.splitlines()[0].endswith("valid, with 1 warnings of 1 kinds")
    assert "  warning header_format (1): the header differs from the expected one only by quoting" in text
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["ok"] is True and as_dict["problems"] == {} and as_dict["strict"] is False
    assert as_dict["warnings"]["header_format"]["count"] == 1
    assert as_dict["warnings"]["header_format"]["examples"] == [{"line": 1, "message": message}]

    strict = validate_predictions(path, task, templates[task], strict=True)
    assert not strict.ok and list(strict.problems) == ["header_format"] and not strict.warnings
    assert strict.problems["header_format"].examples == [(1, message)]
    assert "INVALID, 1 problems of 1 kinds" in strict.render()
    assert "(strict: every warning is a problem)" in strict.render()
    assert strict.to_dict()["ok"] is False and strict.to_dict()["strict"] is True


def test_warnings_are_listed_beside_problems(tmp_path, templates):
    report = validate_predictions(
        va_file(tmp_path, ["nan,0"] + ["0,0"] * 4, header=VA_HEADER + " "), "va", templates["va"]
    )
    assert not report.ok and list(report.problems) == ["non_finite"] and list(report.warnings) == ["header_format"]
    lines = report.render().splitlines()
    assert lines[0].endswith("INVALID, 1 problems of 1 kinds, with 1 warnings of 1 kinds")
    assert lines[1].startswith("  non_finite (1)") and lines[3].startswith("  warning header_format (1)")


def test_float_classes_are_a_problem_unless_read_leniently(tmp_path, templates):
    path = va_file(tmp_path, ["4.0", "0", "7.", "6e0", "1.5"], header=EXPR_HEADER)
    report = validate_predictions(path, "expr", templates["expr"])
    assert set(report.problems) == {"float_class", "not_a_class"} and not report.warnings
    assert lines_of(report, "float_class") == [2, 4, 5] and lines_of(report, "not_a_class") == [6]
    first = report.problems["float_class"].examples[0][1]
    assert first == "'video10_1_left/00001.jpg,4.0': write the integer class 4 (or pass --lenient-numbers)"
    assert "(a whole number written as a float" not in report.problems["not_a_class"].examples[0][1]

    lenient = validate_predictions(path, "expr", templates["expr"], lenient_numbers=True)
    assert list(lenient.problems) == ["not_a_class"] and list(lenient.warnings) == ["float_class"]
    assert lenient.warnings["float_class"].count == 3
    assert lenient.warnings["float_class"].examples[2] == (5, "'118-30-640x480/00001.jpg,6e0': read as class 6")
    assert lenient.to_dict()["lenient_numbers"] is True

    strict = validate_predictions(path, "expr", templates["expr"], strict=True, lenient_numbers=True)
    assert set(strict.problems) == {"float_class", "not_a_class"} and not strict.warnings
    assert strict.problems["float_class"].examples[0][1] == "'video10_1_left/00001.jpg,4.0': write the integer class 4"


def test_lenient_float_classes_still_need_a_class_in_range(tmp_path, templates):
    path = va_file(tmp_path, ["4.0", "0", "9.0", "6", "1"], header=EXPR_HEADER)
    report = validate_predictions(path, "expr", templates["expr"], lenient_numbers=True)
    assert list(report.problems) == ["class_out_of_range"] and lines_of(report, "class_out_of_range") == [4]
    assert report.warnings["float_class"].count == 2


def test_validate_escapes_control_characters_in_messages(tmp_path, templates):
    path = va_file(tmp_path, ["0,0", "\x1b[2J,0", "0,0\x07", "0,0", "0,0"], header=VA_HEADER + "\x1b]0;pwned\x07")
    report = validate_predictions(path, "va", templates["va"])
    text = str(report) + json.dumps(report.to_dict())
    assert "\x1b" not in text and "\x07" not in text
    assert "found 'image_location,valence,arousal\\x1b]0;pwned\\x07'" in report.problems["header"].examples[0][1]
    assert "'video10_1_left/00002.jpg,\\x1b[2J,0'" in report.problems["not_a_number"].examples[0][1]


def test_validate_au_values_that_are_not_0_or_1_with_their_lines(tmp_path):
    header = "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    zeros = ",".join(["0"] * 12)
    template = read_template(
        write(tmp_path, rows_text(header, [f"{row},{zeros}" for row in TRACK_ROWS]), "t.txt"), "au"
    )
    values = [zeros, "0,0.7,0,0,0,0,0,0,0,0,0,0", "1,1,1,1,1,1,1,1,1,1,1,2", "0,0,0,0,0,-1,0,0,0,0,0,0", "0,1"]
    path = write(tmp_path, rows_text(header, [f"{row},{value}" for row, value in zip(TRACK_ROWS, values, strict=True)]))
    report = validate_predictions(path, "au", template)
    assert set(report.problems) == {"not_an_integer", "au_out_of_range", "field_count"}
    assert report.problems["not_an_integer"].examples == [
        (3, "expected 12 comma-separated values 0 or 1 after the location, found "
            "'video10_1_left/00002.jpg,0,0.7,0,0,0,0,0,0,0,0,0,0'"),
    ]  # fmt: skip
    assert lines_of(report, "au_out_of_range") == [4, 5]
    assert report.problems["field_count"].examples[0][1].startswith("3 fields, expected 13 'TRACK/00001.jpg,0/1,")
    text = str(report)
    assert "au_out_of_range (2): AU values other than 0 and 1" in text
    assert "not_an_integer (1): AU values that are not integers" in text
    good = write(tmp_path, rows_text(header, [f"{row},{zeros}" for row in TRACK_ROWS]), "good.txt")
    assert validate_predictions(good, "au", template, strict=True).ok
