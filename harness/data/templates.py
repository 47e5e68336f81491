"""Test track lists and prediction templates of the 5th/6th ABAW test set, read fast and strictly.

A track list (``Valence_Arousal_Estimation_Challenge_test_set_release.txt``) holds one track name a line. A template
(``CVPR_6th_ABAW_VA_test_set_sample.txt``) is the prediction file format filled with dummy values: the header
``image_location,...`` (the task's :attr:`~harness.tasks.TaskDef.prediction_header`), then one row per frame to
predict, ``TRACK/00001.jpg,<dummy values>``, the rows of one track contiguous. The dummy values are ignored.

Templates and prediction files hold about a million rows, so the row scanner here (:func:`scan_rows`,
:func:`parse_locations`, shared with :mod:`harness.submission`) works on the file's bytes with numpy: no Python
object per row. Messages about a bad row come from :func:`location_problem`, run on that row only.
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.atomic import write_atomically
from harness.errors import DataError, HarnessError
from harness.tasks import TASKS, Task, get_task

LOCATION_FORM = "'<track>/<frame, 5 digits>.jpg' such as 'video10_1_left/00001.jpg'"
MAX_NAME_BYTES = 255
MAX_FRAME_DIGITS = 9


def read_track_list(path: Path | str) -> tuple[str, ...]:
    """Track names of a test track list, in file order (CRLF, surrounding spaces and trailing blank lines accepted)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the track list ({error})") from error
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise DataError(f"{path}: empty track list; expected one track name a line, such as 'video10_1_left'")
    seen: dict[str, int] = {}
    for number, name in enumerate(lines, start=1):
        if not name or any(c.isspace() or c in ",/" for c in name):
            raise DataError(f"{path}, line {number}: expected one track name (no spaces, ',' or '/'), found {name!r}")
        if name in seen:
            raise DataError(f"{path}, line {number}: track {name!r} is listed again (first on line {seen[name]})")
        seen[name] = number
    return tuple(lines)


@dataclass(frozen=True, eq=False)
class TemplateTrack:
    """The template rows of one track: ``frames`` are the 1-based frame numbers (int32) in file order."""

    name: str
    frames: np.ndarray
    first_line: int

    @property
    def n_rows(self) -> int:
        return len(self.frames)


@dataclass(frozen=True, eq=False)
class Template:
    """A prediction template: every (track, frame) row a submission must hold, in the required order."""

    task: Task
    path: Path
    tracks: tuple[TemplateTrack, ...]

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(track.name for track in self.tracks)

    @cached_property
    def offsets(self) -> np.ndarray:
        """Row index of each track's first row, plus the row count at the end (int64, ``len(tracks) + 1``)."""
        return np.concatenate([[0], np.cumsum([t.n_rows for t in self.tracks], dtype=np.int64)]).astype(np.int64)

    @cached_property
    def _by_name(self) -> dict[str, TemplateTrack]:
        return {track.name: track for track in self.tracks}

    def track(self, name: str) -> TemplateTrack:
        """The rows of track ``name``; an unknown name is a :class:`DataError` with the closest names."""
        try:
            return self._by_name[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise DataError(
                f"{self.path}: no template rows for track {name!r} ({len(self.tracks)} tracks){hint}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @cached_property
    def locations(self) -> list[str]:
        """The ``image_location`` of every row, in order (``TRACK/00001.jpg``; built on first use)."""
        out: list[str] = []
        for track in self.tracks:
            prefix = f"{track.name}/"
            out += [f"{prefix}{frame:05d}.jpg" for frame in track.frames.tolist()]
        return out


def printable(text: str) -> str:
    """``text`` safe to echo on a terminal: control and other non-printable characters as ``\\x1b``-style escapes.

    >>> printable("a\\x1b[2Jb\\tc")
    'a\\\\x1b[2Jb\\\\tc'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@dataclass(frozen=True, eq=False)
class RowScan:
    """The body rows of an ``image_location,...`` file as byte offsets into ``data`` (row ``k`` is line ``k + 2``)."""

    path: Path
    header: str | None
    data: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    @property
    def n_rows(self) -> int:
        return len(self.starts)

    def text(self, row: int, limit: int = 120) -> str:
        """Row ``row`` as text for messages: shortened to ``limit`` characters, control characters escaped."""
        text = self.data[self.starts[row] : self.ends[row]].tobytes().decode("utf-8", "replace")
        return printable(text if len(text) <= limit else text[: limit - 3] + "...")

    @cached_property
    def field_counts(self) -> np.ndarray:
        """Number of comma-separated fields of each row."""
        return self.per_row(self._commas) + 1

    @cached_property
    def location_ends(self) -> np.ndarray:
        """Offset of each row's first comma (the end of its ``image_location``), or of its end without one."""
        counts = self.field_counts - 1
        return np.where(counts > 0, self.first_in_row(self._commas, counts), self.ends)

    @cached_property
    def _commas(self) -> np.ndarray:
        return self.data == ord(",")

    def per_row(self, mask: np.ndarray) -> np.ndarray:
        """How many bytes of each row (its newline included) are set in ``mask``."""
        if not self.n_rows:
            return np.zeros(0, np.int32)
        positions = np.flatnonzero(mask)  # a row spans starts..ends, its newline included
        counts = np.searchsorted(positions, self.ends, "right") - np.searchsorted(positions, self.starts, "left")
        return counts.astype(np.int32)

    def first_in_row(self, mask: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
        """Offset of the first byte of each row set in ``mask``; for a row without one, that of a later or earlier row.

        ``counts`` are ``per_row(mask)`` when already known.
        """
        positions, counts = np.flatnonzero(mask), self.per_row(mask) if counts is None else counts
        if not len(positions):
            return self.starts.copy()
        return positions[np.minimum(np.cumsum(counts, dtype=np.int64) - counts, len(positions) - 1)]


def scan_rows(path: Path | str, error: type[HarnessError]) -> RowScan:
    """Split a file into its header and body rows; only an unreadable file raises (``error``).

    A UTF-8 byte-order mark, Windows line endings and trailing blank lines are accepted; ``header`` is ``None``
    for an empty file. Blank lines inside the body stay rows (and fail as rows).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read the file ({exc})") from exc
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    raw = raw.replace(b"\r\n", b"\n") if b"\r" in raw else raw
    if not raw or raw.isspace():
        return RowScan(path, None, np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    head, _, body = raw.partition(b"\n")
    body = body.rstrip(b" \t\r\n")
    body = body + b"\n" if body else b""
    data = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else np.zeros(0, np.int64)
    return RowScan(path, head.decode("utf-8", "replace"), data, starts, ends)


@dataclass(frozen=True, eq=False)
class Locations:
    """Each row's ``image_location``: ``valid`` mask, track ``names`` (bytes, ``b''`` if invalid), ``frames``."""

    valid: np.ndarray
    names: np.ndarray
    frames: np.ndarray

    def segments(self) -> tuple[np.ndarray, list[str]]:
        """Start row of each run of consecutive rows with one track name, and the runs' names."""
        if not len(self.names):
            return np.zeros(0, np.int64), []
        starts = np.concatenate([[0], np.flatnonzero(self.names[1:] != self.names[:-1]) + 1]).astype(np.int64)
        return starts, [name.decode("utf-8", "replace") for name in self.names[starts].tolist()]


def parse_locations(scan: RowScan) -> Locations:
    """Parse every row's ``image_location`` as ``TRACK/NNNNN.jpg`` at once; a malformed one is marked invalid.

    Valid: a non-empty track name without ``/``, spaces, control characters or quotes (at most 255 bytes), one ``/``,
    a frame number >= 1 written with 5 digits (zero-padded) or more digits without a leading zero (at most 9),
    and ``.jpg``. :func:`location_problem` says what is wrong with an invalid one.
    """
    a, s, e = scan.data, scan.starts, scan.location_ends
    n = len(s)
    if n == 0:
        return Locations(np.zeros(0, bool), np.zeros(0, "S1"), np.zeros(0, np.int64))
    valid = (e - s) >= len("x/00001.jpg")
    for offset, char in zip(range(4, 0, -1), b".jpg", strict=True):
        valid &= a[np.maximum(e - offset, 0)] == char
    slash = scan.first_in_row(a == ord("/"))  # the location's only '/' if it comes before its end: digits follow
    valid &= (slash > s) & (slash < e) & (slash - s <= MAX_NAME_BYTES)
    digits = e - 4 - slash - 1
    valid &= (digits >= 5) & (digits <= MAX_FRAME_DIGITS)
    first = np.where(valid, slash + 1, 0)
    frames = np.zeros(n, np.int64)
    for k in range(5):
        digit = a[first + k].astype(np.int64) - ord("0")
        valid &= (digit >= 0) & (digit <= 9)
        frames = frames * 10 + digit
    longer = np.flatnonzero(valid & (digits > 5))
    for k in range(5, MAX_FRAME_DIGITS):
        longer = longer[digits[longer] > k]
        digit = a[first[longer] + k].astype(np.int64) - ord("0")
        valid[longer] &= (digit >= 0) & (digit <= 9)
        frames[longer] = frames[longer] * 10 + digit
    valid &= ((digits == 5) | (a[first] != ord("0"))) & (frames >= 1)
    lengths = np.where(valid, slash - s, 0)
    width = max(int(lengths.max()), 1)
    padded = np.concatenate([a, np.zeros(width, np.uint8)])
    grid = np.lib.stride_tricks.as_strided(padded, shape=(len(a), width), strides=(1, 1))[np.where(valid, s, 0)]
    inside = np.arange(width)[None, :] < lengths[:, None]
    valid &= ~(inside & ((grid < 33) | (grid == ord('"')) | (grid >= 127))).any(axis=1)  # spaces, controls, quotes
    grid[~(inside & valid[:, None])] = 0
    frames[~valid] = 0
    names = np.ascontiguousarray(grid).view(f"S{width}").ravel()
    return Locations(valid, names, frames)


def location_problem(location: str) -> str:
    """Why ``location`` is not a valid ``TRACK/NNNNN.jpg`` (``''`` when it is); for messages about one row."""
    track, slash, image = location.rpartition("/")
    stem = image.removesuffix(".jpg")
    if not location:
        return "an empty location"
    if not slash:
        return "no '/' between track and image"
    if "/" in track:
        return "more than one '/'"
    if not track:
        return "no track name before '/'"
    if any(c.isspace() or c == '"' or not c.isprintable() or not c.isascii() for c in location):
        return "spaces, quotes or non-ASCII characters"
    if len(track.encode()) > MAX_NAME_BYTES:
        return f"a track name longer than {MAX_NAME_BYTES} bytes"
    if stem == image:
        return "the image name does not end in '.jpg'"
    if not (stem.isascii() and stem.isdigit()):
        return "a frame number that is not digits"
    if len(stem) < 5 or len(stem) > MAX_FRAME_DIGITS:
        return f"a frame number of {len(stem)} digits, not 5 (up to {MAX_FRAME_DIGITS} without zero padding)"
    if len(stem) > 5 and stem[0] == "0":
        return "a frame number zero-padded beyond 5 digits"
    if int(stem) == 0:
        return "frame 0 (frames are numbered from 1)"
    return ""


def read_template(path: Path | str, task: Task) -> Template:
    """Read a prediction template: exact header, well-formed locations, each track's rows contiguous.

    Frame numbers must increase within a track. Dummy values are not read (any count is accepted).
    """
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; expected one of {TASKS}")
    scan = scan_rows(path, DataError)
    path, expected = scan.path, get_task(task).prediction_header
    if scan.header is None:
        raise DataError(f"{path}: empty template; expected the header '{expected}' and one row per frame")
    if scan.header.strip() != expected:
        found = printable(scan.header)
        raise DataError(f"{path}, line 1: wrong {task} template header; expected '{expected}', found '{found}'")
    if scan.n_rows == 0:
        raise DataError(f"{path}: the template has a header but no rows; expected rows such as 'track/00001.jpg,...'")
    locations = parse_locations(scan)
    if not locations.valid.all():
        row = int(np.argmin(locations.valid))
        location = scan.data[scan.starts[row] : scan.location_ends[row]].tobytes().decode("utf-8", "replace")
        raise DataError(
            f"{path}, line {row + 2}: malformed image location {location!r} "
            f"({location_problem(location) or 'not the expected form'}); expected {LOCATION_FORM}"
        )
    starts, names = locations.segments()
    bounds = np.append(starts, scan.n_rows)
    first_row: dict[str, int] = {}
    tracks = []
    for index, name in enumerate(names):
        begin, end = int(bounds[index]), int(bounds[index + 1])
        if name in first_row:
            raise DataError(
                f"{path}, line {begin + 2}: rows of track {name!r} start again after other tracks (its rows began on "
                f"line {first_row[name] + 2}); expected the rows of each track together"
            )
        first_row[name] = begin
        frames = locations.frames[begin:end].astype(np.int32)
        steps = np.diff(frames)
        if len(steps) and steps.min() <= 0:
            row = begin + 1 + int(np.argmax(steps <= 0))
            raise DataError(
                f"{path}, line {row + 2}: track {name!r} frame {int(locations.frames[row])} follows frame "
                f"{int(locations.frames[row - 1])}; expected increasing frame numbers within a track"
            )
        frames.setflags(write=False)
        tracks.append(TemplateTrack(name, frames, begin + 2))
    return Template(task, scan.path, tuple(tracks))


def write_template(path: Path | str, task: Task, tracks: Mapping[str, int]) -> Path:
    """Write a template listing frames ``1..n`` of each track (in mapping order) with dummy values, atomically."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; expected one of {TASKS}")
    path = Path(path)
    dummy = get_task(task).template_dummy
    parts = [get_task(task).prediction_header, "\n"]
    for name, n_rows in tracks.items():
        problem = location_problem(f"{name}/00001.jpg")
        if problem:
            raise DataError(f"{path}: cannot write rows for track {name!r}: it gives locations with {problem}")
        if int(n_rows) < 1:
            raise DataError(f"{path}: track {name!r} needs at least 1 row, got {n_rows}")
        parts.append("".join(f"{name}/{frame:05d}.jpg,{dummy}\n" for frame in range(1, int(n_rows) + 1)))
    write_atomically(path, "".join(parts).encode("utf-8"))
    return path
