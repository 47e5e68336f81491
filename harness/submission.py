"""ABAW prediction files: write them exactly, read them strictly, validate them against the template, package them.

Format (5th/6th ABAW, one file per challenge): the header of :data:`~harness.tasks.PREDICTION_HEADER`, unquoted, then
one row per template row in the template's order. VA rows are ``TRACK/00001.jpg,valence,arousal``, values written with
6 decimals (``%.6f``: at most 5e-7 from the float64 value, far below what moves a CCC); EXPR rows are
``TRACK/00001.jpg,class`` with a class 0..7 and two fields only, even though the header names all 8 classes.
Everything here works on whole columns (see :mod:`harness.data.templates`): a million rows take about a second.
"""

import hashlib
import importlib.metadata
import io
import json
import os
import platform
import re
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from harness import __version__ as harness_version
from harness.data.templates import (
    LOCATION_FORM,
    Locations,
    RowScan,
    Template,
    TemplateTrack,
    location_problem,
    parse_locations,
    scan_rows,
    write_atomically,
)
from harness.errors import SubmissionError
from harness.tasks import NUM_EXPR_CLASSES, PREDICTION_HEADER, TASKS, Task

VA_DECIMALS = 6
MAX_EXAMPLES = 5
FIELDS: dict[Task, int] = {"va": 3, "expr": 2}
ROW_FORM: dict[Task, str] = {"va": "'TRACK/00001.jpg,valence,arousal'", "expr": "'TRACK/00001.jpg,class'"}
_FRAME_KEY = np.int64(1) << 32


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise SubmissionError(f"unknown task {task!r}; expected one of {TASKS}")


# ---------------------------------------------------------------------------------------------------------- writing


def write_predictions(path: Path | str, task: Task, template: Template, predictions: Mapping[str, np.ndarray]) -> Path:
    """Write one prediction file holding exactly the template's rows, atomically.

    ``predictions[track]`` is indexed by frame: row ``i - 1`` is frame ``i``. VA: ``(n, 2)`` valence, arousal
    (finite; clipped to [-1, 1]); EXPR: ``(n,)`` integer classes 0..7. ``n`` must reach the track's last template
    frame (a longer array is fine: the extra frames are not written); tracks not in the template are ignored.
    """
    _check_task(task)
    path = Path(path)
    if template.task != task:
        raise SubmissionError(
            f"{path}: cannot write {task} predictions with the {template.task} template {template.path}"
        )
    missing = [name for name in template.names if name not in predictions]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise SubmissionError(
            f"{path}: no {task} predictions for {len(missing)} of the {len(template.tracks)} tracks of "
            f"{template.path}: {shown}; expected one array per template track"
        )
    values = np.concatenate([_template_rows(path, task, track, predictions[track.name]) for track in template.tracks])
    if task == "va":
        values = np.clip(values, -1.0, 1.0)
        values[np.abs(values) < 0.5 * 10.0**-VA_DECIMALS] = 0.0  # never write '-0.000000'
        row = f"{{}},{{:.{VA_DECIMALS}f}},{{:.{VA_DECIMALS}f}}\n".format
        body = "".join(map(row, template.locations, values[:, 0].tolist(), values[:, 1].tolist()))
    else:
        body = "".join(map("{},{}\n".format, template.locations, values.tolist()))
    write_atomically(path, f"{PREDICTION_HEADER[task]}\n{body}".encode())
    return path


def _template_rows(path: Path, task: Task, track: TemplateTrack, array: np.ndarray) -> np.ndarray:
    """The values of ``track``'s template frames, checked: shape, dtype, length, finite, class range."""
    name, need = track.name, int(track.frames[-1])
    array = np.asarray(array)
    if task == "va" and (array.ndim != 2 or array.shape[1] != 2 or array.dtype.kind not in "fiu"):
        raise SubmissionError(
            f"{path}: VA predictions for track {name!r} are {array.dtype} of shape {array.shape}; "
            f"expected real numbers of shape (n_frames, 2) (valence, arousal) with n_frames >= {need}"
        )
    if task == "expr" and (array.ndim != 1 or array.dtype.kind not in "iu"):
        raise SubmissionError(
            f"{path}: EXPR predictions for track {name!r} are {array.dtype} of shape {array.shape}; expected "
            f"integer classes 0..{NUM_EXPR_CLASSES - 1} of shape (n_frames,) (take the argmax of class scores)"
        )
    if len(array) < need:
        raise SubmissionError(
            f"{path}: predictions for track {name!r} cover {len(array)} frames, but the template lists frames up to "
            f"{need} ({track.n_rows} rows, from line {track.first_line}); expected an array of at least {need} frames"
        )
    rows = array[track.frames.astype(np.int64) - 1]
    bad = ~np.isfinite(rows).all(axis=1) if task == "va" else (rows < 0) | (rows >= NUM_EXPR_CLASSES)
    if bad.any():
        index = int(np.argmax(bad))
        accepted = "finite values" if task == "va" else f"classes 0..{NUM_EXPR_CLASSES - 1}"
        raise SubmissionError(
            f"{path}: track {name!r} frame {int(track.frames[index])} has prediction {rows[index].tolist()} "
            f"({int(bad.sum())} frames like it); expected {accepted}"
        )
    return rows.astype(np.float64) if task == "va" else rows.astype(np.int64)


# ---------------------------------------------------------------------------------------------------------- reading


def header_problem(header: str, task: Task) -> str:
    """Why ``header`` is not exactly the ``task`` prediction header (``''`` when it is)."""
    expected = PREDICTION_HEADER[task]
    if header == expected:
        return ""
    if header.replace('"', "").replace("'", "").strip() == expected:
        hint = "it is quoted or padded with spaces; write it unquoted"
    elif any(header.strip() == PREDICTION_HEADER[other] for other in TASKS):
        hint = "that is the header of the other task"
    elif ".jpg" in header:
        hint = "the first line is a data row: the header is missing"
    else:
        hint = "check the spelling and the order of the columns"
    return f"expected the header '{expected}', found '{header}' ({hint})"


@dataclass(frozen=True, eq=False)
class PredictionFile:
    """A prediction file's rows: row ``k`` is track ``track_names[track_index[k]]``, frame ``frames[k]``.

    ``values`` are ``(n, 2)`` float64 for VA and ``(n,)`` int64 for EXPR; ``line_numbers`` are 1-based file lines.
    """

    task: Task
    path: Path
    track_names: tuple[str, ...]
    track_index: np.ndarray
    frames: np.ndarray
    values: np.ndarray
    line_numbers: np.ndarray

    @property
    def n_rows(self) -> int:
        return len(self.frames)

    @cached_property
    def locations(self) -> list[str]:
        """The rows' ``image_location`` strings (``TRACK/00001.jpg``), built on first use."""
        names = self.track_names
        return [f"{names[t]}/{f:05d}.jpg" for t, f in zip(self.track_index.tolist(), self.frames.tolist(), strict=True)]

    def by_track(self, template: Template) -> dict[str, np.ndarray]:
        """Values per template track, aligned with its template rows; the rows must be exactly the template's."""
        positions = {name: index for index, name in enumerate(template.names)}
        ids = np.array([positions.get(name, -1) for name in self.track_names], np.int64)
        expected = np.repeat(np.arange(len(template.tracks)), np.diff(template.offsets))
        frames = np.concatenate([t.frames for t in template.tracks]) if template.tracks else np.zeros(0, np.int32)
        same = self.n_rows == template.n_rows
        if not (same and np.array_equal(ids[self.track_index], expected) and np.array_equal(self.frames, frames)):
            raise SubmissionError(
                f"{self.path}: its rows are not exactly the rows of {template.path} in order ({self.n_rows} rows, "
                f"template {template.n_rows}); run validate_predictions (abaw validate) for the differences"
            )
        bounds = template.offsets.tolist()
        return {t.name: self.values[bounds[i] : bounds[i + 1]] for i, t in enumerate(template.tracks)}


def read_predictions(path: Path | str, task: Task) -> PredictionFile:
    """Read a prediction file strictly: exact header, field count, well-formed locations, numbers that parse.

    Windows line endings and trailing blank lines are accepted. Whether the rows match a template, and whether
    values are in range, is :func:`validate_predictions`' job.
    """
    _check_task(task)
    scan = scan_rows(path, SubmissionError)
    path, n = scan.path, scan.n_rows
    if scan.header is None:
        raise SubmissionError(
            f"{path}: empty file; expected the header '{PREDICTION_HEADER[task]}' and rows {ROW_FORM[task]}"
        )
    problem = header_problem(scan.header, task)
    if problem:
        raise SubmissionError(f"{path}, line 1: {problem}")
    if n == 0:
        raise SubmissionError(f"{path}: the header is not followed by any row; expected rows {ROW_FORM[task]}")
    wrong = np.flatnonzero(scan.field_counts != FIELDS[task])
    if len(wrong):
        raise SubmissionError(f"{path}, line {wrong[0] + 2}: {_field_count_message(scan, task, int(wrong[0]))}")
    locations = parse_locations(scan)
    if not locations.valid.all():
        row = int(np.argmin(locations.valid))
        raise SubmissionError(f"{path}, line {row + 2}: {_location_message(scan, row)}")
    values, parsed = parse_values(scan, task, np.ones(n, bool))
    if not parsed.all():
        row = int(np.argmin(parsed))
        raise SubmissionError(f"{path}, line {row + 2}: {_value_message(scan, task, row)}")
    starts, names = locations.segments()
    ids: dict[str, int] = {}
    segment_ids = np.array([ids.setdefault(name, len(ids)) for name in names], np.int32)
    track_index = np.repeat(segment_ids, np.diff(np.append(starts, n)))
    lines = np.arange(2, n + 2, dtype=np.int64)
    return PredictionFile(task, path, tuple(ids), track_index, locations.frames.astype(np.int32), values, lines)


def parse_values(scan: RowScan, task: Task, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse the value fields of the rows in mask ``rows`` (which must have the task's field count).

    Returns the values (VA ``(n, 2)`` float64, NaN where unparsed; EXPR ``(n,)`` int64, -1 where unparsed) and the
    mask of rows that parsed. Numbers follow Python's ``float`` / ``int`` syntax; one vectorised pass when all parse.
    """
    width, dtype = FIELDS[task] - 1, (np.float64 if task == "va" else np.int64)
    out = np.full((scan.n_rows, width), np.nan if task == "va" else -1, dtype)
    parsed, chosen = rows.copy(), np.flatnonzero(rows).tolist()
    body = scan.data.tobytes()
    lines = body.split(b"\n") if len(chosen) < scan.n_rows else None
    block = None
    if chosen:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                text = io.BytesIO(body if lines is None else b"\n".join([lines[row] for row in chosen]))
                block = np.loadtxt(text, dtype, comments=None, delimiter=",", usecols=range(1, width + 1), ndmin=2)
        except ValueError:
            pass
    if block is not None and block.shape == (len(chosen), width):
        out[chosen] = block
    elif chosen:
        convert, lines = (float if task == "va" else int), lines or body.split(b"\n")
        for row in chosen:
            try:
                out[row] = [convert(value) for value in lines[row].split(b",")[1:]]
            except (ValueError, OverflowError):
                parsed[row] = False
    return (out if task == "va" else out[:, 0]), parsed


def _field_count_message(scan: RowScan, task: Task, row: int) -> str:
    count, hint = int(scan.field_counts[row]), ""
    if task == "expr" and count == 9:
        hint = " (class probabilities? write one class per row, the argmax)"
    return f"{count} fields, expected {FIELDS[task]} {ROW_FORM[task]}{hint}; found '{scan.text(row)}'"


def _location_message(scan: RowScan, row: int) -> str:
    location = scan.data[scan.starts[row] : scan.location_ends[row]].tobytes().decode("utf-8", "replace")
    why = location_problem(location) or "not the expected form"
    return f"malformed image location {location[:120]!r} ({why}); expected {LOCATION_FORM}"


def _value_message(scan: RowScan, task: Task, row: int) -> str:
    expected = "two numbers" if task == "va" else "an integer class"
    return f"expected {expected} after the location, found '{scan.text(row)}'"


# ------------------------------------------------------------------------------------------------------- validating

KINDS: dict[str, str] = {
    "empty": "the file is empty",
    "header": "the header is not exactly the expected one",
    "row_count": "the number of rows differs from the template's",
    "field_count": "rows with the wrong number of fields",
    "location": "malformed image locations",
    "missing_track": "template tracks with no row in the file",
    "unknown_track": "tracks that are not in the template",
    "missing_row": "template rows with no row in the file (their track has other rows)",
    "extra_row": "rows for frames the template does not list",
    "duplicate_row": "rows repeating an earlier row's location",
    "order": "rows out of the template's order",
    "not_a_number": "VA values that are not numbers",
    "non_finite": "VA values that are NaN or infinite",
    "out_of_range": "VA values outside [-1, 1]",
    "not_a_class": "EXPR values that are not integers",
    "class_out_of_range": f"EXPR classes outside 0..{NUM_EXPR_CLASSES - 1}",
}


@dataclass
class ProblemGroup:
    """All problems of one kind: their count and the first few, as ``(line or None, message)``."""

    kind: str
    count: int = 0
    examples: list[tuple[int | None, str]] = field(default_factory=list)

    @property
    def description(self) -> str:
        return KINDS[self.kind]


@dataclass
class ValidationReport:
    """What :func:`validate_predictions` found; ``ok`` when nothing. Render with ``str()``, store with ``to_dict()``."""

    path: Path
    task: Task
    template: Path
    rows: int
    expected_rows: int
    problems: dict[str, ProblemGroup] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, line: int | None, message: str, count: int = 1) -> None:
        group = self.problems.setdefault(kind, ProblemGroup(kind))
        group.count += count
        if len(group.examples) < MAX_EXAMPLES:
            group.examples.append((line, message))

    def add_rows(self, kind: str, rows: np.ndarray, message: Callable[[int], str]) -> None:
        """Record one problem per row in ``rows`` (row ``k`` is line ``k + 2``), building only the shown messages."""
        for row in rows[:MAX_EXAMPLES].tolist():
            self.add(kind, row + 2, message(row))
        if len(rows) > MAX_EXAMPLES:
            self.problems[kind].count += len(rows) - MAX_EXAMPLES

    def render(self) -> str:
        head = f"{self.path}: {self.task} predictions, {self.rows} rows (template: {self.expected_rows})"
        if self.ok:
            return f"{head}: valid"
        total = sum(group.count for group in self.problems.values())
        lines = [f"{head}: INVALID, {total} problems of {len(self.problems)} kinds"]
        for group in sorted(self.problems.values(), key=lambda group: list(KINDS).index(group.kind)):
            lines.append(f"  {group.kind} ({group.count}): {group.description}")
            lines.extend(f"    {'line ' + str(line) if line else '-'}: {text}" for line, text in group.examples)
            if group.count > len(group.examples):
                lines.append(f"    ... and {group.count - len(group.examples)} more")
        return "\n".join(lines)

    __str__ = render

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "task": self.task,
            "template": str(self.template),
            "ok": self.ok,
            "rows": self.rows,
            "expected_rows": self.expected_rows,
            "problems": {
                kind: {
                    "description": group.description,
                    "count": group.count,
                    "examples": [{"line": line, "message": text} for line, text in group.examples],
                }
                for kind, group in self.problems.items()
            },
        }


def validate_predictions(path: Path | str, task: Task, template: Template) -> ValidationReport:
    """Check a prediction file against the template and list every problem; raises only if it cannot be read.

    Checks: header, row count, field count (VA 3, EXPR 2), locations, tracks missing or unknown, rows missing, extra,
    duplicated or out of the template's order (row ``k`` must be template row ``k``), finite VA values in [-1, 1],
    EXPR integer classes 0..7.
    """
    _check_task(task)
    if template.task != task:
        raise SubmissionError(f"{path}: cannot validate {task} predictions with the {template.task} template")
    scan = scan_rows(path, SubmissionError)
    report = ValidationReport(scan.path, task, template.path, scan.n_rows, template.n_rows)
    if scan.header is None:
        report.add("empty", None, f"expected the header '{PREDICTION_HEADER[task]}' and {template.n_rows} rows")
        return report
    problem = header_problem(scan.header, task)
    if problem:
        report.add("header", 1, problem)
    if scan.n_rows != template.n_rows:
        report.add("row_count", None, f"{scan.n_rows} rows, expected {template.n_rows} (one per template row)")
    right = scan.field_counts == FIELDS[task]
    report.add_rows("field_count", np.flatnonzero(~right), lambda row: _field_count_message(scan, task, row))
    locations = parse_locations(scan)
    report.add_rows("location", np.flatnonzero(~locations.valid), lambda row: _location_message(scan, row))
    _check_rows(report, scan, locations, template)
    values, parsed = parse_values(scan, task, right)
    kind = "not_a_number" if task == "va" else "not_a_class"
    report.add_rows(kind, np.flatnonzero(right & ~parsed), lambda row: _value_message(scan, task, row))

    def show(row: int) -> str:
        return f"'{scan.text(row)}'"

    if task == "va":
        finite = np.isfinite(values).all(axis=1)
        report.add_rows("non_finite", np.flatnonzero(parsed & ~finite), show)
        report.add_rows("out_of_range", np.flatnonzero(parsed & finite & (np.abs(values) > 1).any(axis=1)), show)
    else:
        outside = (values < 0) | (values >= NUM_EXPR_CLASSES)
        report.add_rows("class_out_of_range", np.flatnonzero(parsed & outside), show)
    return report


def _check_rows(report: ValidationReport, scan: RowScan, locations: Locations, template: Template) -> None:
    """Tracks missing or unknown; rows missing, extra, duplicated or out of order (valid locations only)."""
    n, valid = scan.n_rows, locations.valid
    positions = {name: index for index, name in enumerate(template.names)}
    starts, names = locations.segments()
    lengths = np.diff(np.append(starts, n))
    track = np.repeat(np.array([positions.get(name, -1) for name in names], np.int64), lengths)
    unknown: dict[str, list[int]] = {}
    for start, name, length in zip(starts.tolist(), names, lengths.tolist(), strict=True):
        if valid[start] and name not in positions:
            unknown.setdefault(name, [start, 0])[1] += length
    for name, (start, count) in unknown.items():
        report.add("unknown_track", start + 2, f"track {name!r} ({count} rows) is not in the template")
    keys = np.repeat(np.arange(len(template.tracks), dtype=np.int64), np.diff(template.offsets)) * _FRAME_KEY
    if template.tracks:
        keys += np.concatenate([t.frames for t in template.tracks])
    known = valid & (track >= 0)
    file_keys = track * _FRAME_KEY + locations.frames
    index = np.minimum(np.searchsorted(keys, file_keys), max(len(keys) - 1, 0))
    matched = known & (keys[index] == file_keys) if len(keys) else np.zeros(n, bool)
    report.add_rows("extra_row", np.flatnonzero(known & ~matched), lambda row: f"'{scan.text(row)}'")
    rows = np.flatnonzero(matched)
    order = np.argsort(index[rows], kind="stable")
    repeated = np.flatnonzero(index[rows][order][1:] == index[rows][order][:-1]) + 1
    earlier = np.full(n, -1, np.int64)
    earlier[rows[order[repeated]]] = rows[order[repeated - 1]]
    duplicate = earlier >= 0
    report.add_rows(
        "duplicate_row",
        np.flatnonzero(duplicate),
        lambda row: f"'{scan.text(row)}' repeats the location of line {earlier[row] + 2}",
    )
    single = np.flatnonzero(matched & ~duplicate)
    at = index[single]
    before = np.maximum.accumulate(np.concatenate([[-1], at[:-1]])) if len(at) else at
    late = single[at < before]
    report.add_rows("order", late, lambda row: f"'{scan.text(row)}' comes after a row that the template puts later")
    present = np.zeros(len(keys), bool)
    present[index[rows]] = True
    seen = set(track[known].tolist())
    bounds = template.offsets.tolist()
    for t, entry in enumerate(template.tracks):
        absent = np.flatnonzero(~present[bounds[t] : bounds[t + 1]])
        if t not in seen:
            message = f"track {entry.name!r} ({entry.n_rows} rows, template line {entry.first_line}) has no rows"
            report.add("missing_track", None, message)
        elif len(absent):
            for i in absent[:MAX_EXAMPLES].tolist():
                report.add("missing_row", None, f"no row for '{entry.name}/{int(entry.frames[i]):05d}.jpg'")
            report.problems["missing_row"].count += max(len(absent) - MAX_EXAMPLES, 0)


# -------------------------------------------------------------------------------------------------------- packaging


@dataclass(frozen=True)
class Package:
    """The files a submission is made of: the manifest and the zip holding the prediction files and the manifest."""

    manifest_path: Path
    zip_path: Path
    manifest: dict


def tool_versions() -> dict[str, str | None]:
    """Python, numpy, harness and torch versions; torch is looked up without importing it."""
    torch = sys.modules.get("torch")
    try:
        torch_version = torch.__version__ if torch is not None else importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "harness": harness_version,
        "torch": torch_version,
    }


def package_submission(
    out_dir: Path | str,
    system: str,
    files: Mapping[Task, Path | str],
    spec_hash: str,
    validation_scores: Mapping,
    extra: Mapping | None = None,
) -> Package:
    """Write ``manifest.json`` and ``<system>.zip`` (prediction files + manifest) into ``out_dir``, atomically.

    The manifest records the system, spec hash, validation scores, tool versions, creation time (UTC) and, per
    file, its name, row count and sha256. Validate the files (:func:`validate_predictions`) before packaging.
    """
    out_dir = Path(out_dir)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", system):
        raise SubmissionError(f"system name {system!r} cannot name the zip; expected letters, digits, '.', '_', '-'")
    entries, names = {}, set()
    for task, file in files.items():
        _check_task(task)
        file = Path(file)
        try:
            raw = file.read_bytes()
        except OSError as error:
            raise SubmissionError(f"{file}: cannot read the {task} prediction file to package ({error})") from error
        if file.name in names or file.name == "manifest.json":
            raise SubmissionError(f"{file}: another packaged file has the name {file.name!r}; rename one")
        names.add(file.name)
        rows = raw.replace(b"\r\n", b"\n").rstrip(b" \t\r\n").count(b"\n")
        entries[task] = {"file": file.name, "rows": rows, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    manifest = {
        "system": system,
        "spec_hash": spec_hash,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "validation_scores": dict(validation_scores),
        "files": entries,
        "versions": tool_versions(),
        "extra": dict(extra or {}),
    }
    try:
        text = json.dumps(manifest, indent=2, default=_json_value) + "\n"
    except (TypeError, ValueError) as error:
        raise SubmissionError(f"{out_dir}: the manifest of {system!r} cannot be written as JSON ({error})") from error
    manifest_path, zip_path = out_dir / "manifest.json", out_dir / f"{system}.zip"
    write_atomically(manifest_path, text.encode())
    handle, temporary = tempfile.mkstemp(dir=out_dir, prefix=f".{zip_path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for file in files.values():
                archive.write(file, arcname=Path(file).name)
            archive.writestr("manifest.json", text)
        os.replace(temporary, zip_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Package(manifest_path, zip_path, manifest)


def _json_value(value):
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
