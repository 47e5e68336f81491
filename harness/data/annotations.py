"""Read Aff-Wild2 annotation files (one per track) into label arrays, strictly.

Format (6th ABAW): a header line (``valence,arousal`` or the 8 expression names), then line ``i`` after the header
is the label of video frame ``i`` (1-based). VA lines are ``v,a`` floats in [-1, 1], ``-5`` marking an invalid frame;
EXPR lines are one integer 0..7, ``-1`` marking an invalid frame. Windows line endings and trailing blank lines are
accepted; anything else that is off is a :class:`DataError` naming the file, the line and what was expected.
"""

from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.tasks import ANNOTATION_HEADER, EXPR_INVALID, NUM_EXPR_CLASSES, VA_INVALID, Task

LAST_CLASS = NUM_EXPR_CLASSES - 1


def read_lines(path: Path) -> list[str]:
    """The file's lines without line endings (CRLF accepted), trailing blank lines dropped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the file ({error})") from error
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def check_header(path: Path, line: str, expected: str) -> None:
    """Raise unless ``line`` is exactly the expected header (surrounding spaces tolerated)."""
    if line.strip() == expected:
        return
    found = line.strip()
    if not found or found[0] in "-0123456789":
        raise DataError(f"{path}, line 1: the header is missing; expected '{expected}', found a label line '{found}'")
    raise DataError(f"{path}, line 1: wrong header; expected '{expected}', found '{found}'")


def read_annotation(path: Path, task: Task) -> np.ndarray:
    """Labels of one track: VA ``(n, 2)`` float32 with -5 kept as the invalid marker, EXPR ``(n,)`` int64 with -1.

    Row ``i - 1`` of the result is frame ``i`` (image ``{i:05d}.jpg``).
    """
    lines = read_lines(path)
    if not lines:
        raise DataError(
            f"{path}: empty annotation file; expected the header '{ANNOTATION_HEADER[task]}' and label lines"
        )
    check_header(path, lines[0], ANNOTATION_HEADER[task])
    body = lines[1:]
    if not body:
        raise DataError(f"{path}: the header alone, no label lines; expected one label line per video frame after it")
    return _parse_va(path, body) if task == "va" else _parse_expr(path, body)


def va_valid(labels: np.ndarray) -> np.ndarray:
    """Mask of VA frames whose label is valid: neither value is the -5 marker."""
    return ~np.any(labels == VA_INVALID, axis=1)


def expr_valid(labels: np.ndarray) -> np.ndarray:
    """Mask of EXPR frames whose label is valid (not -1)."""
    return labels != EXPR_INVALID


def valid_mask(labels: np.ndarray, task: Task) -> np.ndarray:
    """Mask of frames whose label counts for scoring."""
    return va_valid(labels) if task == "va" else expr_valid(labels)


def _parse_va(path: Path, body: list[str]) -> np.ndarray:
    values = np.empty((len(body), 2), dtype=np.float32)
    for index, line in enumerate(body):
        fields = line.split(",")
        try:
            if len(fields) != 2:
                raise ValueError
            valence, arousal = float(fields[0]), float(fields[1])
        except ValueError:
            raise DataError(
                f"{path}, line {index + 2}: expected two numbers 'valence,arousal', found '{line.strip()}'"
            ) from None
        values[index] = valence, arousal
    invalid = values == VA_INVALID
    bad = ~invalid & ~((values >= -1.0) & (values <= 1.0))  # NaN fails the range test too
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise DataError(
            f"{path}, line {row + 2}: VA values must lie in [-1, 1] (or be -5 for an invalid frame), "
            f"found '{body[row].strip()}'"
        )
    return values


def _parse_expr(path: Path, body: list[str]) -> np.ndarray:
    labels = np.empty(len(body), dtype=np.int64)
    for index, line in enumerate(body):
        text = line.strip()
        try:
            labels[index] = int(text)
        except ValueError:
            raise DataError(
                f"{path}, line {index + 2}: expected one integer class 0..{LAST_CLASS} (or -1), found '{text}'"
            ) from None
    bad = (labels < EXPR_INVALID) | (labels >= NUM_EXPR_CLASSES)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}, line {row + 2}: expression class must be 0..{LAST_CLASS} or -1, found '{body[row].strip()}'"
        )
    return labels


def write_annotation(path: Path, task: Task, labels: np.ndarray) -> None:
    """Write one track's labels in the ABAW annotation format (used by the synthetic generator and tests)."""
    if task == "va":
        rows = [f"{v:.3f},{a:.3f}" if v != VA_INVALID and a != VA_INVALID else "-5,-5" for v, a in labels.tolist()]
    else:
        rows = [str(int(c)) for c in labels.tolist()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([ANNOTATION_HEADER[task], *rows]) + "\n", encoding="utf-8")
