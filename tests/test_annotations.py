"""Annotation files: exact parsing of the ABAW format and a clear error for each kind of bad line."""

from pathlib import Path

import numpy as np
import pytest
from conftest import EXPR_HEADER, VA_HEADER, write_text

from harness.data.annotations import read_annotation, valid_mask, write_annotation
from harness.errors import DataError

AU_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


def test_va_rows_map_to_frames_and_invalid_marker_is_kept(tmp_path: Path) -> None:
    path = write_text(tmp_path / "a.txt", f"{VA_HEADER}\n0.1,0.2\n-5,-5\n-1,1\n")
    labels = read_annotation(path, "va")
    assert labels.dtype == np.float32 and labels.shape == (3, 2)
    np.testing.assert_allclose(labels, [[0.1, 0.2], [-5, -5], [-1, 1]], rtol=1e-6)
    assert valid_mask(labels, "va").tolist() == [True, False, True]


def test_expr_rows_and_windows_line_endings_and_trailing_blank_lines(tmp_path: Path) -> None:
    path = write_text(tmp_path / "e.txt", f"{EXPR_HEADER}\r\n0\r\n-1\r\n7\r\n\r\n")
    labels = read_annotation(path, "expr")
    assert labels.tolist() == [0, -1, 7]
    assert valid_mask(labels, "expr").tolist() == [True, False, True]


def test_au_rows_map_to_frames_and_a_minus_one_row_is_invalid(tmp_path: Path) -> None:
    text = f"{AU_HEADER}\r\n1,0,0,0,0,0,1,0,0,0,1,0\r\n{','.join(['-1'] * 12)}\r\n0,0,0,0,0,0,0,0,0,0,0,1\r\n\r\n"
    labels = read_annotation(write_text(tmp_path / "u.txt", text), "au")
    assert labels.dtype == np.int8 and labels.shape == (3, 12)
    assert labels[0].tolist() == [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0] and labels[2, 11] == 1
    assert valid_mask(labels, "au").tolist() == [True, False, True]


@pytest.mark.parametrize(
    ("task", "text", "message"),
    [
        ("va", f"{VA_HEADER}\n0.1,0.2\n0.3\n", r"a\.txt, line 3: expected two numbers 'valence,arousal', found '0.3'"),
        ("va", f"{VA_HEADER}\n0.1,zero\n", r"line 2: expected two numbers"),
        ("va", f"{VA_HEADER}\n0.1,1.5\n", r"line 2: VA values must lie in \[-1, 1\].*'0.1,1.5'"),
        ("va", f"{VA_HEADER}\nnan,0\n", r"line 2: VA values must lie in \[-1, 1\]"),
        ("va", "arousal,valence\n0,0\n", r"line 1: wrong header; expected 'valence,arousal', found 'arousal,valence'"),
        ("va", "0.1,0.2\n", r"line 1: the header is missing; expected 'valence,arousal'"),
        ("va", "", r"empty annotation file"),
        ("va", f"{VA_HEADER}\r\n\n", r"a\.txt: the header alone, no label lines"),
        ("expr", f"{EXPR_HEADER}\n", r"a\.txt: the header alone, no label lines"),
        ("expr", f"{EXPR_HEADER}\n4.0\n", r"line 2: expected one integer class 0..7 \(or -1\), found '4.0'"),
        ("expr", f"{EXPR_HEADER}\n3\n8\n", r"line 3: expression class must be 0..7 or -1, found '8'"),
        ("expr", f"{VA_HEADER}\n1\n", r"wrong header; expected 'Neutral,Anger"),
        (
            "au",
            f"{AU_HEADER}\n0,1,0,0,0,0,0,0,0,0,0,0\n0,1,0\n",
            r"a\.txt, line 3: expected 12 comma-separated 0/1 "
            r"values \(or -1 for an invalid frame\), found '0,1,0'",
        ),
        ("au", f"{AU_HEADER}\n0,1,0,0,0,0,0,0,0,0,0,0.5\n", r"line 2: expected 12 comma-separated 0/1 values"),
        (
            "au",
            f"{AU_HEADER}\n0,0,0,0,0,0,0,0,0,0,0,0\n0,2,0,0,0,0,0,0,0,0,0,0\n",
            r"a\.txt, line 3: AU values must be 0 or 1 \(or -1 for an invalid frame\), found '0,2,0,0,0,0,0,0,0,0,0,0'",
        ),
        ("au", f"{EXPR_HEADER}\n0\n", r"line 1: wrong header; expected 'AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23"),
        ("au", f"{AU_HEADER}\n", r"a\.txt: the header alone, no label lines"),
    ],
)
def test_bad_annotation_names_file_line_and_expectation(tmp_path: Path, task: str, text: str, message: str) -> None:
    path = write_text(tmp_path / "a.txt", text)
    with pytest.raises(DataError, match=message):
        read_annotation(path, task)


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    va = np.array([[0.125, -0.5], [-5, -5]], dtype=np.float32)
    write_annotation(tmp_path / "v.txt", "va", va)
    np.testing.assert_array_equal(read_annotation(tmp_path / "v.txt", "va"), va)
    write_annotation(tmp_path / "e.txt", "expr", np.array([3, -1, 0]))
    assert (tmp_path / "e.txt").read_text().splitlines() == [EXPR_HEADER, "3", "-1", "0"]
    au = np.array([[1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0], [-1] * 12], np.int8)
    write_annotation(tmp_path / "u.txt", "au", au)
    assert (tmp_path / "u.txt").read_text().splitlines() == [
        AU_HEADER,
        "1,0,0,0,0,0,1,0,0,0,1,0",
        ",".join(["-1"] * 12),
    ]
    np.testing.assert_array_equal(read_annotation(tmp_path / "u.txt", "au"), au)
