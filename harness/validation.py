"""Validate an ABAW prediction file against its template and list every problem, grouped by kind.

:func:`validate_predictions` reads the file leniently (where :func:`harness.submission.read_predictions` stops at the
first problem) and reports each kind in :data:`KINDS` with its count and the first :data:`MAX_EXAMPLES` examples: the
header, field counts, locations, tracks and rows missing, unknown, extra, duplicated or out of the template's order,
and values that are not finite VA numbers in [-1, 1], EXPR classes 0..7 or AU values 0/1 (each task's
:attr:`~harness.tasks.TaskDef.value_kinds`). Differences that any CSV reader undoes (a
quoted or padded header, :data:`WARNING_KINDS`) are warnings, grouped the same way; strict mode makes them problems.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.data.templates import Locations, RowScan, Template, parse_locations, scan_rows
from harness.errors import SubmissionError
from harness.submission import (
    check_task,
    field_count_message,
    header_problem,
    header_variant,
    location_message,
    parse_values,
    parse_whole_classes,
    value_message,
)
from harness.tasks import Task, all_tasks, get_task

MAX_EXAMPLES = 5
_FRAME_KEY = np.int64(1) << 32  # track * _FRAME_KEY + frame: one sortable key per template row

KINDS: dict[str, str] = {
    "empty": "the file is empty",
    "header": "the header is not the expected one",
    "header_format": "the header differs from the expected one only by quoting or whitespace",
    "row_count": "the number of rows differs from the template's",
    "field_count": "rows with the wrong number of fields",
    "location": "malformed image locations",
    "missing_track": "template tracks with no row in the file",
    "unknown_track": "tracks that are not in the template",
    "missing_row": "template rows with no row in the file (their track has other rows)",
    "extra_row": "rows for frames the template does not list",
    "duplicate_row": "rows repeating an earlier row's location",
    "order": "rows out of the template's order",
    **{kind: text for task in all_tasks() for kind, text in task.value_kinds.items()},  # the values, per task
}
# Kinds that are warnings unless strict ("float_class" only when numbers are read leniently, else a problem).
WARNING_KINDS = ("header_format", "float_class")


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
    """What :func:`validate_predictions` found; ``ok`` when no problem (warnings allowed). Render with ``str()``, store
    with ``to_dict()``. With ``strict`` every warning is recorded as a problem."""

    path: Path
    task: Task
    template: Path
    rows: int
    expected_rows: int
    problems: dict[str, ProblemGroup] = field(default_factory=dict)
    warnings: dict[str, ProblemGroup] = field(default_factory=dict)
    strict: bool = False
    lenient_numbers: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, line: int | None, message: str, count: int = 1, warning: bool = False) -> None:
        """Record a problem, or a warning when ``warning`` and not strict."""
        group = self._groups(warning).setdefault(kind, ProblemGroup(kind))
        group.count += count
        if len(group.examples) < MAX_EXAMPLES:
            group.examples.append((line, message))

    def add_rows(self, kind: str, rows: np.ndarray, message: Callable[[int], str], warning: bool = False) -> None:
        """Record one problem (or warning) per row in ``rows`` (row ``k`` is line ``k + 2``), building only the shown
        messages."""
        for row in rows[:MAX_EXAMPLES].tolist():
            self.add(kind, row + 2, message(row), warning=warning)
        if len(rows) > MAX_EXAMPLES:
            self._groups(warning)[kind].count += len(rows) - MAX_EXAMPLES

    def _groups(self, warning: bool) -> dict[str, ProblemGroup]:
        return self.warnings if warning and not self.strict else self.problems

    def render(self) -> str:
        head = f"{self.path}: {self.task} predictions, {self.rows} rows (template: {self.expected_rows})"
        warned = _count(self.warnings)
        with_warnings = f", with {warned} warnings of {len(self.warnings)} kinds" if warned else ""
        if self.ok:
            return "\n".join([f"{head}: valid{with_warnings}", *_render_groups(self.warnings, "warning ")])
        total = _count(self.problems)
        lines = [f"{head}: INVALID, {total} problems of {len(self.problems)} kinds{with_warnings}"]
        lines += _render_groups(self.problems, "") + _render_groups(self.warnings, "warning ")
        if self.strict and any(kind in WARNING_KINDS for kind in self.problems):
            lines.append("  (strict: every warning is a problem)")
        return "\n".join(lines)

    __str__ = render

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "task": self.task,
            "template": str(self.template),
            "ok": self.ok,
            "strict": self.strict,
            "lenient_numbers": self.lenient_numbers,
            "rows": self.rows,
            "expected_rows": self.expected_rows,
            "problems": _groups_dict(self.problems),
            "warnings": _groups_dict(self.warnings),
        }


def _count(groups: dict[str, ProblemGroup]) -> int:
    return sum(group.count for group in groups.values())


def _render_groups(groups: dict[str, ProblemGroup], label: str) -> list[str]:
    lines = []
    for group in sorted(groups.values(), key=lambda group: list(KINDS).index(group.kind)):
        lines.append(f"  {label}{group.kind} ({group.count}): {group.description}")
        lines.extend(f"    {'line ' + str(line) if line else '-'}: {text}" for line, text in group.examples)
        if group.count > len(group.examples):
            lines.append(f"    ... and {group.count - len(group.examples)} more")
    return lines


def _groups_dict(groups: dict[str, ProblemGroup]) -> dict:
    return {
        kind: {
            "description": group.description,
            "count": group.count,
            "examples": [{"line": line, "message": text} for line, text in group.examples],
        }
        for kind, group in groups.items()
    }


def validate_predictions(
    path: Path | str, task: Task, template: Template, *, strict: bool = False, lenient_numbers: bool = False
) -> ValidationReport:
    """Check a prediction file against the template and list every problem; raises only if it cannot be read.

    Checks: header, row count, field count (VA 3, EXPR 2, AU 13), locations, tracks missing or unknown, rows missing,
    extra, duplicated or out of the template's order (row ``k`` must be template row ``k``), finite VA values in
    [-1, 1], EXPR integer classes 0..7, AU values 0 or 1. A header that differs only by CSV quoting or whitespace is
    a warning; EXPR classes written as whole floats (``4.0``) are a problem, or a warning with ``lenient_numbers``.
    ``strict`` makes every warning a problem.
    """
    check_task(task)
    definition = get_task(task)
    if template.task != task:
        raise SubmissionError(f"{path}: cannot validate {task} predictions with the {template.task} template")
    scan = scan_rows(path, SubmissionError)
    report = ValidationReport(
        scan.path, task, template.path, scan.n_rows, template.n_rows, strict=strict, lenient_numbers=lenient_numbers
    )
    if scan.header is None:
        report.add("empty", None, f"expected the header '{definition.prediction_header}' and {template.n_rows} rows")
        return report
    problem = header_problem(scan.header, task)
    if problem:
        report.add("header", 1, problem)
    variant = header_variant(scan.header, task)
    if variant:
        report.add("header_format", 1, variant, warning=True)
    if scan.n_rows != template.n_rows:
        report.add("row_count", None, f"{scan.n_rows} rows, expected {template.n_rows} (one per template row)")
    right = scan.field_counts == definition.fields
    report.add_rows("field_count", np.flatnonzero(~right), lambda row: field_count_message(scan, task, row))
    locations = parse_locations(scan)
    report.add_rows("location", np.flatnonzero(~locations.valid), lambda row: location_message(scan, row))
    _check_rows(report, scan, locations, template)
    values, parsed = parse_values(scan, task, right)
    if definition.whole_float_values and not parsed[right].all():
        classes, whole = parse_whole_classes(scan, right & ~parsed)
        if not lenient_numbers:
            fix = "write the integer class {} (or pass --lenient-numbers)"
        else:
            fix = "write the integer class {}" if strict else "read as class {}"

        def float_class(row: int) -> str:
            return f"'{scan.text(row)}': " + fix.format(classes[row])

        report.add_rows("float_class", np.flatnonzero(whole), float_class, warning=lenient_numbers)
        values[whole], parsed = classes[whole], parsed | whole
    unparsed = np.flatnonzero(right & ~parsed)
    report.add_rows(definition.unparsed_kind, unparsed, lambda row: value_message(scan, task, row))

    def show(row: int) -> str:
        return f"'{scan.text(row)}'"

    for kind, outside in definition.range_problems(values).items():
        report.add_rows(kind, np.flatnonzero(parsed & outside), show)
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
