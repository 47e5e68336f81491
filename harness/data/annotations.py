"""Read Aff-Wild2 annotation files (one per track) into label arrays, strictly.

Format (6th ABAW): a header line (``valence,arousal``, the 8 expression names or the 12 action units), then line ``i``
after the header is the label of video frame ``i`` (1-based). VA lines are ``v,a`` floats in [-1, 1], ``-5`` marking
an invalid frame; EXPR lines are one integer 0..7, ``-1`` marking an invalid frame; AU lines are 12 comma-separated
0/1 values, ``-1`` marking an invalid frame. The task's definition (:mod:`harness.tasks`) parses and writes the lines.
Windows line endings and trailing blank lines are accepted; anything else that is off is a :class:`DataError` naming
the file, the line and what was expected.
"""

from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.tasks import Task, get_task


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
    """Labels of one track: VA ``(n, 2)`` float32 with -5 kept as the invalid marker, EXPR ``(n,)`` int64 with -1,
    AU ``(n, 12)`` int8 with -1 rows (:meth:`~harness.tasks.TaskDef.parse_labels`).

    Row ``i - 1`` of the result is frame ``i`` (image ``{i:05d}.jpg``).
    """
    definition = get_task(task)
    lines = read_lines(path)
    if not lines:
        raise DataError(
            f"{path}: empty annotation file; expected the header '{definition.annotation_header}' and label lines"
        )
    check_header(path, lines[0], definition.annotation_header)
    body = lines[1:]
    if not body:
        raise DataError(f"{path}: the header alone, no label lines; expected one label line per video frame after it")
    return definition.parse_labels(path, body)


def valid_mask(labels: np.ndarray, task: Task) -> np.ndarray:
    """Mask of frames whose label counts for scoring."""
    return get_task(task).valid(labels)


def write_annotation(path: Path, task: Task, labels: np.ndarray) -> None:
    """Write one track's labels in the ABAW annotation format (used by the synthetic generator and tests)."""
    definition = get_task(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "\n".join([definition.annotation_header, *definition.format_labels(labels)]) + "\n", encoding="utf-8"
    )
