"""Test track lists and prediction templates: hand-written files in the real format, good and bad."""

from functools import partial

import conftest
import numpy as np
import pytest

from harness.data.templates import (
    location_problem,
    parse_locations,
    read_template,
    read_track_list,
    scan_rows,
    write_template,
)
from harness.errors import DataError

VA_HEADER = "image_location,valence,arousal"
EXPR_HEADER = "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
AU_HEADER = "image_location,AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
HEADERS = {"va": VA_HEADER, "expr": EXPR_HEADER, "au": AU_HEADER}
DUMMIES = {"va": "0,0", "expr": "0", "au": "0,0,0,0,0,0,0,0,0,0,0,0"}

write = partial(conftest.write, name="file.txt")  # the messages below name file.txt

VA_TEMPLATE = (
    "image_location,valence,arousal\r\n"
    "video10_1_left/00001.jpg,0,0\r\n"
    "video10_1_left/00002.jpg,0,0\r\n"
    "video10_1_left/00003.jpg,0,0\r\n"
    "118-30-640x480/00001.jpg,0,0\r\n"
    "118-30-640x480/00002.jpg,0,0\r\n"
    "\r\n"
)


# ---------------------------------------------------------------------------------------------------- track lists


def test_track_list_accepts_crlf_spaces_and_trailing_blank_lines(tmp_path):
    path = write(tmp_path, "video10_1_left\r\n  118-30-640x480 \r\n10-60-1280x720_right\r\n\r\n\n")
    assert read_track_list(path) == ("video10_1_left", "118-30-640x480", "10-60-1280x720_right")


def test_track_list_rejects_a_duplicate_naming_both_lines(tmp_path):
    path = write(tmp_path, "a\nb\na\n")
    with pytest.raises(DataError, match=r"file\.txt, line 3: track 'a' is listed again \(first on line 1\)"):
        read_track_list(path)


@pytest.mark.parametrize("text", ["", "\n\n", "  \r\n"])
def test_track_list_rejects_an_empty_file(tmp_path, text):
    with pytest.raises(DataError, match=r"file\.txt: empty track list"):
        read_track_list(write(tmp_path, text))


@pytest.mark.parametrize(("text", "line"), [("a\n\nb\n", 2), ("a\nb c\n", 2), ("a/b\n", 1), ("a,b\n", 1)])
def test_track_list_rejects_a_line_that_is_not_one_name(tmp_path, text, line):
    with pytest.raises(DataError, match=rf"file\.txt, line {line}: expected one track name"):
        read_track_list(write(tmp_path, text))


def test_track_list_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"missing\.txt: cannot read the track list"):
        read_track_list(tmp_path / "missing.txt")


# ------------------------------------------------------------------------------------------------------- templates


def test_va_template_with_crlf_and_trailing_blank_line(tmp_path):
    template = read_template(write(tmp_path, VA_TEMPLATE), "va")
    assert template.task == "va"
    assert template.names == ("video10_1_left", "118-30-640x480")
    assert template.n_rows == 5
    first, second = template.tracks
    assert first.frames.dtype == np.int32
    assert first.frames.tolist() == [1, 2, 3] and first.first_line == 2 and first.n_rows == 3
    assert second.frames.tolist() == [1, 2] and second.first_line == 5
    assert template.track("118-30-640x480") is second
    assert template.offsets.tolist() == [0, 3, 5]
    assert template.locations[3] == "118-30-640x480/00001.jpg"
    assert "video10_1_left" in template and "video10" not in template


def test_expr_template_ignores_dummy_value_count(tmp_path):
    text = f"{EXPR_HEADER}\ntest1/00001.jpg,0\ntest1/00002.jpg,0,0,0,0,0,0,0,0\ntest1/00003.jpg\n"
    template = read_template(write(tmp_path, text), "expr")
    assert template.names == ("test1",)
    assert template.track("test1").frames.tolist() == [1, 2, 3]


def test_template_with_gaps_and_six_digit_frames(tmp_path):
    text = f"{VA_HEADER}\nv/00003.jpg,0,0\nv/99999.jpg,0,0\nv/100000.jpg,0,0\nv/123456789.jpg,0,0\n"
    template = read_template(write(tmp_path, text), "va")
    assert template.track("v").frames.tolist() == [3, 99999, 100000, 123456789]
    assert template.locations == ["v/00003.jpg", "v/99999.jpg", "v/100000.jpg", "v/123456789.jpg"]


def test_unknown_track_suggests_close_names(tmp_path):
    template = read_template(write(tmp_path, VA_TEMPLATE), "va")
    with pytest.raises(DataError, match=r"no template rows for track 'video10_1_lft' .*did you mean 'video10_1_left'"):
        template.track("video10_1_lft")


def test_template_track_reappearing_names_both_lines(tmp_path):
    text = f"{VA_HEADER}\na/00001.jpg,0,0\na/00002.jpg,0,0\nb/00001.jpg,0,0\na/00003.jpg,0,0\n"
    with pytest.raises(DataError, match=r"file\.txt, line 5: rows of track 'a' start again .*began on line 2\)"):
        read_template(write(tmp_path, text), "va")


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("a/0001.jpg", "4 digits"),
        ("a/00001.png", "does not end in '.jpg'"),
        ("00001.jpg", "no '/'"),
        ("a/b/00001.jpg", "more than one '/'"),
        ("/00001.jpg", "no track name"),
        ("a b/00001.jpg", "spaces"),
        ('"a/00001.jpg"', "quotes"),
        ("a/000001.jpg", "zero-padded beyond 5 digits"),
        ("a/00000.jpg", "frame 0"),
        ("a/0000x.jpg", "not digits"),
        ("a/1234567890.jpg", "10 digits"),
        ("", "an empty location"),
    ],
)
def test_template_row_with_malformed_location(tmp_path, location, why):
    text = f"{VA_HEADER}\na/00001.jpg,0,0\n{location},0,0\na/00003.jpg,0,0\n"
    with pytest.raises(DataError, match=rf"file\.txt, line 3: malformed image location .*{why}.*expected '<track>/"):
        read_template(write(tmp_path, text), "va")


def test_template_blank_line_inside_is_a_malformed_row(tmp_path):
    text = f"{VA_HEADER}\na/00001.jpg,0,0\n\na/00002.jpg,0,0\n"
    with pytest.raises(DataError, match=r"line 3: malformed image location '' \(an empty location\)"):
        read_template(write(tmp_path, text), "va")


def test_template_frames_must_increase_within_a_track(tmp_path):
    text = f"{VA_HEADER}\na/00001.jpg,0,0\na/00002.jpg,0,0\na/00002.jpg,0,0\n"
    with pytest.raises(DataError, match=r"line 4: track 'a' frame 2 follows frame 2; expected increasing"):
        read_template(write(tmp_path, text), "va")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"file\.txt: empty template; expected the header 'image_location,valence,arousal'"),
        ("\r\n\r\n", r"empty template"),
        (f"{VA_HEADER}\n", r"file\.txt: the template has a header but no rows"),
        (f"{EXPR_HEADER}\na/00001.jpg,0\n", r"line 1: wrong va template header; expected 'image_location,valence,"),
        ("a/00001.jpg,0,0\n", r"line 1: wrong va template header; .*found 'a/00001\.jpg,0,0'"),
    ],
)
def test_template_bad_file(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_template(write(tmp_path, text), "va")


def test_template_missing_file_and_unknown_task(tmp_path):
    with pytest.raises(DataError, match=r"missing\.txt: cannot read the file"):
        read_template(tmp_path / "missing.txt", "va")
    with pytest.raises(DataError, match=r"unknown task 'mtl'"):
        read_template(write(tmp_path, VA_TEMPLATE), "mtl")


def test_au_template_reads_its_header_and_rows(tmp_path):
    rows = "".join(f"video{v}/{f:05d}.jpg,{DUMMIES['au']}\n" for v in (1, 2) for f in (1, 2, 3))
    template = read_template(write(tmp_path, f"{AU_HEADER}\n{rows}"), "au")
    assert template.task == "au" and template.names == ("video1", "video2") and template.n_rows == 6
    with pytest.raises(DataError, match=r"file\.txt, line 1: wrong au template header; expected 'image_location,AU1"):
        read_template(write(tmp_path, f"{EXPR_HEADER}\n{rows}"), "au")


def test_template_with_bom(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + VA_TEMPLATE.encode())
    assert read_template(path, "va").n_rows == 5


@pytest.mark.parametrize("task", ["va", "expr", "au"])
def test_write_template_round_trip(tmp_path, task):
    path = write_template(tmp_path / "sub" / "template.txt", task, {"video1": 3, "10-60-1280x720_right": 2})
    dummy = DUMMIES[task]
    expected = (
        f"{HEADERS[task]}\n"
        f"video1/00001.jpg,{dummy}\nvideo1/00002.jpg,{dummy}\nvideo1/00003.jpg,{dummy}\n"
        f"10-60-1280x720_right/00001.jpg,{dummy}\n10-60-1280x720_right/00002.jpg,{dummy}\n"
    )
    assert path.read_text() == expected
    template = read_template(path, task)
    assert template.names == ("video1", "10-60-1280x720_right")
    assert [t.frames.tolist() for t in template.tracks] == [[1, 2, 3], [1, 2]]
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.parametrize(("tracks", "message"), [({"a/b": 2}, "more than one '/'"), ({"a": 0}, "at least 1 row")])
def test_write_template_rejects_bad_tracks(tmp_path, tracks, message):
    with pytest.raises(DataError, match=message):
        write_template(tmp_path / "t.txt", "va", tracks)
    assert not (tmp_path / "t.txt").exists()


def test_vectorised_location_parser_agrees_with_the_row_by_row_reference(tmp_path):
    """Every location, good or bad, gets the same verdict and frame from the vectorised parser and the reference."""
    locations = [
        "a/00001.jpg", "a/1.jpg", "bb/00002.jpg", "a/b/00003.jpg", "c/123456.jpg", "c/012345.jpg", "/00001.jpg",
        "d/00001.jpeg", "d/00001jpg", "d/.jpg", "e/00009.jpg", "e/0000٣.jpg", "é/00001.jpg", "f\t/00001.jpg",
        "", "x", ".jpg", "g/99999.jpg", "g/00000.jpg", "h/999999999.jpg", "h/1000000000.jpg",
        "10-60-1280x720_right/00042.jpg", "n\x00/00001.jpg", "q\"/00001.jpg", "a/00001.jpg/00001.jpg", "a/00001/1.jpg",
    ]  # fmt: skip
    path = write(tmp_path, VA_HEADER + "\n" + "".join(f"{loc},0.1,/x\n" for loc in locations))
    scan = scan_rows(path, DataError)
    parsed = parse_locations(scan)
    for row, location in enumerate(locations):
        good = location_problem(location) == ""
        assert bool(parsed.valid[row]) == good, location
        if good:
            track, _, image = location.rpartition("/")
            assert parsed.names[row].decode() == track
            assert parsed.frames[row] == int(image[:-4])
    assert scan.field_counts.tolist() == [3] * len(locations)


def test_vectorised_location_parser_agrees_on_every_combination_of_parts(tmp_path):
    names = ["video1", "a", "b c", "", "x/y", 'q"', "é", "10-60-1280x720_right"]
    separators = ["/", "", "//"]
    numbers = ["00001", "1", "0001", "123456", "012345", "00000", "0000x", "999999999", "1234567890", ""]
    extensions = [".jpg", ".png", "", ".jpgx", "jpg"]
    locations = [n + s + d + x for n in names for s in separators for d in numbers for x in extensions]
    path = write(tmp_path, VA_HEADER + "\n" + "".join(f"{loc},0,0\n" for loc in locations))
    parsed = parse_locations(scan_rows(path, DataError))
    for row, location in enumerate(locations):
        assert bool(parsed.valid[row]) == (location_problem(location) == ""), location
    assert parsed.valid.sum() == 3 * 3  # 3 good names x 3 good frame spellings, with "/" and ".jpg"
