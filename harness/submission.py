"""ABAW prediction files: write them exactly, read them strictly, package them (:mod:`harness.validation` validates).

Format (5th/6th ABAW, one file per challenge): the task's
:attr:`~harness.tasks.TaskDef.prediction_header`, unquoted, then one row per template row in the template's order.
VA rows are ``TRACK/00001.jpg,valence,arousal``, values written with 6 decimals (``%.6f``: at most 5e-7 from the
float64 value, far below what moves a CCC); EXPR rows are ``TRACK/00001.jpg,class`` with a class 0..7 and two fields
only, even though the header names all 8 classes; AU rows are ``TRACK/00001.jpg`` and 12 comma-separated 0/1 values.
The file is named after the release of the data (:meth:`~harness.tasks.TaskDef.submission_name`:
``CVPR_6th_ABAW_Expr_test_set.txt``, 5th ABAW ``CVPR_5th_ABAW_EXPR_test_set.txt``). What differs between tasks
(array shapes, value ranges, the row text, the validator's kinds) is the task's definition's.
Everything here works on whole columns (see :mod:`harness.data.templates`): a million rows take about a second. The
reader's row checks (:func:`header_problem`, :func:`header_variant`, :func:`parse_values`, :func:`parse_whole_classes`
and the ``*_message`` functions) are shared with the validator, so both word a problem the same way. The writer writes
the exact header; the reader also takes one that differs only by CSV quoting or whitespace (a warning), and EXPR
classes written ``4.0`` when asked to read numbers leniently.
"""

import ctypes
import errno
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import re
import secrets
import shutil
import sys
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

import numpy as np

from harness import __version__ as harness_version
from harness.atomic import sweep_dead_staging, write_atomically
from harness.data.templates import (
    LOCATION_FORM,
    RowScan,
    Template,
    TemplateTrack,
    location_problem,
    parse_locations,
    printable,
    scan_rows,
)
from harness.errors import SubmissionError
from harness.tasks import TASKS, Task, all_tasks, get_task


def check_task(task: str) -> None:
    """Refuse a task that is not registered with a :class:`SubmissionError`."""
    if task not in TASKS:
        raise SubmissionError(f"unknown task {task!r}; expected one of {TASKS}")


# ---------------------------------------------------------------------------------------------------------- writing


def write_predictions(path: Path | str, task: Task, template: Template, predictions: Mapping[str, np.ndarray]) -> Path:
    """Write one prediction file holding exactly the template's rows, atomically.

    ``predictions[track]`` is indexed by frame: row ``i - 1`` is frame ``i``. VA: ``(n, 2)`` valence, arousal
    (finite; clipped to [-1, 1]); EXPR: ``(n,)`` integer classes 0..7; AU: ``(n, 12)`` 0/1 values. ``n`` must reach
    the track's last template frame (a longer array is fine: the extra frames are not written); tracks not in the
    template are ignored.
    """
    check_task(task)
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
    definition = get_task(task)
    body = definition.format_rows(template.locations, values)
    write_atomically(path, f"{definition.prediction_header}\n{body}".encode())
    return path


def _template_rows(path: Path, task: Task, track: TemplateTrack, array: np.ndarray) -> np.ndarray:
    """The values of ``track``'s template frames, checked: shape, dtype, length, the values the task writes."""
    name, need, definition = track.name, int(track.frames[-1]), get_task(task)
    array = np.asarray(array)
    if not definition.array_ok(array):
        raise SubmissionError(
            f"{path}: {task.upper()} predictions for track {name!r} are {array.dtype} of shape {array.shape}; "
            f"expected {definition.array_form(need)}"
        )
    if len(array) < need:
        raise SubmissionError(
            f"{path}: predictions for track {name!r} cover {len(array)} frames, but the template lists frames up to "
            f"{need} ({track.n_rows} rows, from line {track.first_line}); expected an array of at least {need} frames"
        )
    rows = array[track.frames.astype(np.int64) - 1]
    bad = definition.unwritable(rows)
    if bad.any():
        index = int(np.argmax(bad))
        raise SubmissionError(
            f"{path}: track {name!r} frame {int(track.frames[index])} has prediction {rows[index].tolist()} "
            f"({int(bad.sum())} frames like it); expected {definition.writable_form}"
        )
    return rows.astype(definition.value_dtype)


# ---------------------------------------------------------------------------------------------------------- reading


def header_problem(header: str, task: Task) -> str:
    """Why ``header`` is not the ``task`` prediction header (``''`` when it is, exactly or as a
    :func:`header_variant`)."""
    expected = get_task(task).prediction_header
    if header == expected or header_variant(header, task):
        return ""
    unquoted = header.replace('"', "").replace("'", "")
    if [name.strip() for name in unquoted.split(",")] == expected.split(","):
        if "'" in header or header.count('"') % 2 or not re.search(r'"[^"]*,[^"]*"', header):
            hint = "it is quoted in a way CSV readers do not undo (single quotes, or unbalanced); write it unquoted"
        else:
            fields = get_task(task).fields
            hint = f"its quotes group names into one column, but each row has {fields} fields; write it unquoted"
    elif any(header.strip() == other.prediction_header for other in all_tasks()):
        hint = "that is the header of the other task"
    elif ".jpg" in header:
        hint = "the first line is a data row: the header is missing"
    else:
        hint = "check the spelling and the order of the columns"
    return f"expected the header '{expected}', found '{printable(header)}' ({hint})"


_HEADER_GROUP = re.compile(r'(?P<space>\s*)(?:"(?P<quoted>[^"]*)"|(?P<plain>[^",]*?))(?P<after>\s*)(?P<end>,|\Z)')


def header_variant(header: str, task: Task) -> str:
    """How ``header`` differs from the ``task`` header when it differs ONLY by CSV quoting (of single names or of a
    group of names, as pandas writes the SUN team's class list, so long as the header's column count stays the
    expected header's or the rows' field count) or by whitespace around the names; ``''`` otherwise.

    Such a header reads as the expected one with any CSV reader; it is a warning, not an error (see the README on
    what the organizers are known to accept).
    """
    expected = get_task(task).prediction_header
    if header == expected:
        return ""
    groups, position = [], 0
    while True:
        match = _HEADER_GROUP.match(header, position)
        if match is None:
            return ""
        groups.append(match)
        if not match["end"]:
            break
        position = match.end()
    quoted = [group["quoted"] for group in groups if group["quoted"] is not None]
    names = [
        name.strip()
        for group in groups
        for name in ([group["plain"]] if group["quoted"] is None else group["quoted"].split(","))
    ]
    if names != expected.split(",") or len(groups) not in (len(names), get_task(task).fields):
        return ""  # other names, or quotes that change the column count to neither the header's nor the rows'
    differences = []
    if quoted:
        shown = [
            f'"{text}"' + (f" ({text.count(',') + 1} names in one field)" if "," in text else "") for text in quoted
        ]
        differences.append("quotes around " + ", ".join(shown))
    ends = [
        (where, text) for where, text in (("leading", groups[0]["space"]), ("trailing", groups[-1]["after"])) if text
    ]
    if ends:
        differences.append(" and ".join(f"{where} whitespace {text!r}" for where, text in ends))
    inner = [group["space"] for group in groups[1:]] + [group["after"] for group in groups[:-1]]
    if any(inner) or any(name != name.strip() for text in quoted for name in text.split(",")):
        differences.append("spaces around names")
    return f"found '{header}', which differs from '{expected}' only by {'; '.join(differences)}: read as that header"


@dataclass(frozen=True, eq=False)
class PredictionFile:
    """A prediction file's rows: row ``k`` is track ``track_names[track_index[k]]``, frame ``frames[k]``.

    ``values`` are ``(n, 2)`` float64 for VA, ``(n,)`` int64 for EXPR and ``(n, 12)`` int64 for AU;
    ``line_numbers`` are 1-based file lines; ``warnings`` say what was read leniently (``'line 1: header ...'``).
    """

    task: Task
    path: Path
    track_names: tuple[str, ...]
    track_index: np.ndarray
    frames: np.ndarray
    values: np.ndarray
    line_numbers: np.ndarray
    warnings: tuple[str, ...] = ()

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


def read_predictions(
    path: Path | str, task: Task, *, strict: bool = False, lenient_numbers: bool = False
) -> PredictionFile:
    """Read a prediction file strictly: the header, field count, well-formed locations, numbers that parse.

    Windows line endings and trailing blank lines are accepted. A :func:`header_variant` (quoted or padded header)
    is read as the header with a warning in ``warnings``; with ``lenient_numbers`` EXPR classes written as whole
    floats (``4.0``) are read as integers with a warning (else they are an error). ``strict`` makes every warning an
    error. Whether the rows match a template, and whether values are in range, is
    :func:`harness.validation.validate_predictions`' job.
    """
    check_task(task)
    definition = get_task(task)
    scan = scan_rows(path, SubmissionError)
    path, n = scan.path, scan.n_rows
    if scan.header is None:
        raise SubmissionError(
            f"{path}: empty file; expected the header '{definition.prediction_header}' and rows {definition.row_form}"
        )
    problem = header_problem(scan.header, task)
    if problem:
        raise SubmissionError(f"{path}, line 1: {problem}")
    notes = []
    variant = header_variant(scan.header, task)
    if variant:
        notes.append(_warn(path, "line 1", variant, strict))
    if n == 0:
        raise SubmissionError(f"{path}: the header is not followed by any row; expected rows {definition.row_form}")
    wrong = np.flatnonzero(scan.field_counts != definition.fields)
    if len(wrong):
        raise SubmissionError(f"{path}, line {wrong[0] + 2}: {field_count_message(scan, task, int(wrong[0]))}")
    locations = parse_locations(scan)
    if not locations.valid.all():
        row = int(np.argmin(locations.valid))
        raise SubmissionError(f"{path}, line {row + 2}: {location_message(scan, row)}")
    values, parsed = parse_values(scan, task, np.ones(n, bool))
    if definition.whole_float_values and lenient_numbers and not parsed.all():
        classes, whole = parse_whole_classes(scan, ~parsed)
        if whole.any():
            rows = np.flatnonzero(whole)
            notes.append(_warn(path, f"line {rows[0] + 2}", whole_classes_message(scan, rows), strict))
            values[whole], parsed = classes[whole], parsed | whole
    if not parsed.all():
        row = int(np.argmin(parsed))
        raise SubmissionError(f"{path}, line {row + 2}: {value_message(scan, task, row)}")
    starts, names = locations.segments()
    ids: dict[str, int] = {}
    segment_ids = np.array([ids.setdefault(name, len(ids)) for name in names], np.int32)
    track_index = np.repeat(segment_ids, np.diff(np.append(starts, n)))
    lines = np.arange(2, n + 2, dtype=np.int64)
    frames = locations.frames.astype(np.int32)
    return PredictionFile(task, path, tuple(ids), track_index, frames, values, lines, tuple(notes))


def _warn(path: Path, where: str, message: str, strict: bool) -> str:
    """``where: message`` as a warning, or a :class:`SubmissionError` when ``strict``."""
    if strict:
        raise SubmissionError(f"{path}, {where}: {message} (strict: every warning is an error)")
    return f"{where}: {message}"


def parse_values(scan: RowScan, task: Task, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parse the value fields of the rows in mask ``rows`` (which must have the task's field count).

    Returns the values in the task's ``value_dtype`` (VA ``(n, 2)`` float64, NaN where unparsed; EXPR ``(n,)``
    int64, AU ``(n, 12)`` int64, -1 where unparsed; one value field gives a 1-D array) and the mask of rows that
    parsed. Numbers follow Python's ``float`` / ``int`` syntax; one vectorised pass when all parse.
    """
    definition = get_task(task)
    convert = float if np.dtype(definition.value_dtype).kind == "f" else int
    values, parsed = _parse_fields(scan, rows, definition.value_fields, definition.value_dtype, convert)
    return (values[:, 0] if definition.value_fields == 1 else values), parsed


def parse_whole_classes(scan: RowScan, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EXPR classes written as whole-number floats (``4.0``, ``4.``, ``4e0``) in the rows of mask ``rows``.

    Returns the classes (int64, -1 elsewhere) and the mask of rows holding one; a fraction (``4.5``) or a non-finite
    number is not a whole class. The rows must have two fields.
    """
    values, parsed = _parse_fields(scan, rows, 1, np.float64, float)
    values = values[:, 0]
    with np.errstate(invalid="ignore"):
        whole = parsed & np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0**62)
    return np.where(whole, values, -1).astype(np.int64), whole


def whole_classes_message(scan: RowScan, rows: np.ndarray) -> str:
    """The warning for EXPR rows ``rows`` whose classes are written as whole floats, with the first one."""
    return (
        f"{len(rows)} EXPR class(es) written as whole-number floats, first '{scan.text(int(rows[0]))}'; "
        "read as integer classes (write integers to be safe)"
    )


def _parse_fields(scan: RowScan, rows: np.ndarray, width: int, dtype, convert) -> tuple[np.ndarray, np.ndarray]:
    """The ``width`` fields after the location of the rows in mask ``rows``, parsed as ``dtype`` (``convert`` per
    row when the vectorised pass fails); unparsed rows hold NaN (float) or -1 (int) and are False in the mask."""
    out = np.full((scan.n_rows, width), np.nan if dtype == np.float64 else -1, dtype)
    parsed = rows.copy()
    if np.dtype(dtype).kind == "i":  # one-digit integers (classes, AU 0/1) read straight from the bytes
        single, digits = _single_digits(scan, rows, width)
        if single.all():
            out = digits
        else:
            out[single] = digits
        rows = rows & ~single
    chosen = np.flatnonzero(rows).tolist()
    if not chosen:
        return out, parsed
    body = scan.data.tobytes()
    lines = body.split(b"\n") if len(chosen) < scan.n_rows else None
    block = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = io.BytesIO(body if lines is None else b"\n".join([lines[row] for row in chosen]))
            block = np.loadtxt(text, dtype, comments=None, delimiter=",", usecols=range(1, width + 1), ndmin=2)
    except ValueError:
        pass
    if block is not None and block.shape == (len(chosen), width):
        out[chosen] = block
    else:
        lines = lines or body.split(b"\n")
        for row in chosen:
            try:
                out[row] = [convert(value) for value in lines[row].split(b",")[1:]]
            except (ValueError, OverflowError):
                parsed[row] = False
    return out, parsed


def _single_digits(scan: RowScan, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of mask ``rows`` whose ``width`` fields after the location are one digit each (``,4`` or
    ``,0,1,...``), and their values ``(n_single, width)``; other rows are left to the general parser."""
    start, span = scan.location_ends, 2 * width
    single = rows & (scan.ends - start == span)
    if not single.any():
        return single, np.zeros((0, width), np.int64)
    windows = np.lib.stride_tricks.as_strided(scan.data, shape=(len(scan.data) - span + 1, span), strides=(1, 1))
    pairs = windows[start[single]].view("<u2")  # (n_single, width): ',' then a digit in each 16-bit pair
    shifted = pairs - np.uint16(ord(",") | ord("0") << 8)  # a valid pair leaves digit << 8 (wraps if below '0')
    ok = ((shifted & 0xFF == 0) & (shifted <= 9 << 8)).all(axis=1)
    single[single] = ok
    values = (shifted >> 8).astype(np.int64)
    return single, values if ok.all() else values[ok]  # (boolean row selection is slow: only when needed)


def field_count_message(scan: RowScan, task: Task, row: int) -> str:
    """What row ``row`` holds instead of the task's field count (a hint for EXPR class probabilities)."""
    count, definition = int(scan.field_counts[row]), get_task(task)
    hint = definition.wide_row_hint if count == 1 + definition.width else ""
    return f"{count} fields, expected {definition.fields} {definition.row_form}{hint}; found '{scan.text(row)}'"


def location_message(scan: RowScan, row: int) -> str:
    """Why row ``row``'s image location is malformed, and the accepted form."""
    location = scan.data[scan.starts[row] : scan.location_ends[row]].tobytes().decode("utf-8", "replace")
    why = location_problem(location) or "not the expected form"
    return f"malformed image location {location[:120]!r} ({why}); expected {LOCATION_FORM}"


def value_message(scan: RowScan, task: Task, row: int) -> str:
    """What row ``row`` should hold after its location, and what it holds (and a hint for a class like ``4.0``)."""
    definition = get_task(task)
    hint = ""
    if definition.whole_float_values and definition.fields == int(scan.field_counts[row]):
        single = np.zeros(scan.n_rows, bool)
        single[row] = True
        if parse_whole_classes(scan, single)[1][row]:
            hint = (
                " (a whole number written as a float: write the integer, or read it leniently with --lenient-numbers)"
            )
    return f"expected {definition.value_expected} after the location, found '{scan.text(row)}'{hint}"


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


def file_stem(system: str) -> str:
    """A file and folder name for a system: ``dynamic_vit_context[window_s=4]`` → ``dynamic_vit_context_window_s-4``.

    Letters, digits, ``.``, ``_`` and ``-`` are kept, ``=`` becomes ``-``, any other run of characters one ``_``.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", system.replace("=", "-")).strip("_.-")
    if not stem:
        raise SubmissionError(f"system name {system!r} cannot name a file; expected letters, digits, '.', '_', '-'")
    return stem


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
    file, its name, row count and sha256. Validate the files (:func:`harness.validation.validate_predictions`)
    before packaging.
    """
    out_dir = Path(out_dir)
    stem = file_stem(system)
    entries, names = {}, set()
    for task, file in files.items():
        check_task(task)
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
    manifest_path, zip_path = out_dir / "manifest.json", out_dir / f"{stem}.zip"
    write_atomically(manifest_path, text.encode())
    archive_bytes = io.BytesIO()
    with zipfile.ZipFile(archive_bytes, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in files.values():
            archive.write(file, arcname=Path(file).name)
        archive.writestr("manifest.json", text)
    write_atomically(zip_path, archive_bytes.getvalue())
    return Package(manifest_path, zip_path, manifest)


@contextmanager
def staged_folder(folder: Path | str) -> Iterator[Path]:
    """A new empty staging folder beside ``folder`` to write a package into; when the block ends without an error,
    the staging folder replaces ``folder`` as a unit and the old package is deleted only then.

    The swap is one ``renameat2(RENAME_EXCHANGE)`` where the system offers it (Linux), else two renames (the old
    folder aside, the new one in: for that instant there is no folder, never a mix of old and new files). An error
    or a kill inside the block leaves ``folder`` as it was; the staging folder is deleted on an error, and one left by
    a killed process is deleted by the next staging of the same folder.
    """
    folder = Path(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        sweep_dead_staging(folder)
        staging = folder.parent / f".{folder.name}.staging-{os.getpid()}-{secrets.token_hex(4)}"
        staging.mkdir()
    except OSError as error:
        raise SubmissionError(f"{folder}: cannot create a staging folder beside it ({error})") from error
    try:
        yield staging
        _swap_in(staging, folder)
    except OSError as error:
        raise SubmissionError(f"{folder}: cannot put the new package in place ({error})") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after an exchange it holds the old package


def _swap_in(new: Path, folder: Path) -> None:
    """Put folder ``new`` at ``folder``; ``new`` then holds the old one (or nothing), to delete."""
    if not folder.exists():
        os.rename(new, folder)
    elif not _exchange(new, folder):
        old = folder.parent / f".{folder.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(folder, old)
        os.rename(new, folder)
        shutil.rmtree(old, ignore_errors=True)
    try:  # make the renames durable
        handle = os.open(folder.parent, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
    except OSError:
        pass


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step with Linux ``renameat2(RENAME_EXCHANGE)``; False where that is not offered."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _json_value(value):
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
