"""Check a submission folder against its ``manifest.json`` (``abaw validate --package submissions/X``).

A package is what :func:`harness.runner.submit_system` writes: the prediction files, ``manifest.json`` and
``<system>.zip``. The check finds every file the manifest lists with its byte count, row count and sha256, each file
valid against its task's test template (:func:`harness.validation.validate_predictions`), the zip holding exactly
those files and the manifest, byte for byte, and no other file in the folder. A folder that is not a package at all
(no folder, no readable manifest, a malformed ``files`` entry) is a :class:`~harness.errors.SubmissionError`; what
disagrees inside a package is a problem in the report.
"""

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.templates import Template
from harness.errors import SubmissionError
from harness.submission import check_task, file_stem
from harness.tasks import Task
from harness.validation import ValidationReport, validate_predictions

MANIFEST = "manifest.json"


@dataclass
class PackageReport:
    """What :func:`validate_package` found: the problems (``ok`` when none) and each file's validation report."""

    folder: Path
    system: str
    problems: list[str] = field(default_factory=list)
    files: dict[str, ValidationReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        head = f"{self.folder}: package of {self.system!r}, {len(self.files)} prediction file(s)"
        lines = [f"{head}: {'valid' if self.ok else f'INVALID, {len(self.problems)} problems'}"]
        lines.extend(f"  {problem}" for problem in self.problems)
        lines.extend(report.render() for report in self.files.values() if not report.ok)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "folder": str(self.folder),
            "system": self.system,
            "ok": self.ok,
            "problems": self.problems,
            "files": {task: report.to_dict() for task, report in self.files.items()},
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(folder: Path) -> tuple[bytes, dict]:
    path = folder / MANIFEST
    if not folder.is_dir():
        raise SubmissionError(f"{folder}: not a folder; expected a submission folder (submissions/SYSTEM)")
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
    except FileNotFoundError:
        raise SubmissionError(f"{path}: missing; a submission folder holds the manifest abaw submit wrote") from None
    except (OSError, ValueError) as error:
        raise SubmissionError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        raise SubmissionError(f"{path}: key 'files' must map each task to its file entry; found none")
    if not isinstance(manifest.get("system"), str):
        raise SubmissionError(f"{path}: key 'system' must be the system's name")
    for task, entry in manifest["files"].items():
        check_task(task)
        keys = {"file": str, "rows": int, "sha256": str, "bytes": int}
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), t) for k, t in keys.items()):
            raise SubmissionError(f"{path}: key 'files.{task}' must hold file, rows, sha256 and bytes; found {entry!r}")
        if Path(entry["file"]).name != entry["file"] or entry["file"] in (MANIFEST, ""):
            raise SubmissionError(f"{path}: key 'files.{task}.file' must be a file name in the folder; found {entry!r}")
    return raw, manifest


def validate_package(folder: Path | str, template_of: Callable[[Task], Template]) -> PackageReport:
    """Check ``folder`` against its manifest (see the module docstring); ``template_of(task)`` gives a template."""
    folder = Path(folder)
    raw_manifest, manifest = _manifest(folder)
    report = PackageReport(folder, manifest["system"])
    contents: dict[str, bytes] = {MANIFEST: raw_manifest}
    for task, entry in manifest["files"].items():
        name, path = entry["file"], folder / entry["file"]
        try:
            data = path.read_bytes()
        except OSError as error:
            report.problems.append(f"{name} ({task}): listed in the manifest but not readable ({error.strerror})")
            continue
        contents[name] = data
        if len(data) != entry["bytes"] or _sha256(data) != entry["sha256"]:
            report.problems.append(
                f"{name} ({task}): {len(data)} bytes, sha256 {_sha256(data)[:16]}; the manifest records "
                f"{entry['bytes']} bytes, sha256 {entry['sha256'][:16]} (changed after packaging)"
            )
        rows = data.replace(b"\r\n", b"\n").rstrip(b" \t\r\n").count(b"\n")
        if rows != entry["rows"]:
            report.problems.append(f"{name} ({task}): {rows} rows; the manifest records {entry['rows']}")
        checked = validate_predictions(path, task, template_of(task))
        report.files[task] = checked
        if not checked.ok:
            report.problems.append(f"{name} ({task}): fails validation against {checked.template} (below)")
    listed = {MANIFEST, *(entry["file"] for entry in manifest["files"].values())}
    zip_name = f"{file_stem(manifest['system'])}.zip"
    _check_zip(folder / zip_name, listed, contents, report)
    for extra in sorted(p.name for p in folder.iterdir() if p.name not in listed | {zip_name}):
        report.problems.append(f"{extra}: in the folder but not in the manifest (left from another package?)")
    return report


def _check_zip(path: Path, listed: set[str], contents: dict[str, bytes], report: PackageReport) -> None:
    """The zip holds exactly the ``listed`` files and the manifest, each with the folder's bytes (``contents``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
    except FileNotFoundError:
        report.problems.append(f"{path.name}: missing (the package's zip)")
        return
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        report.problems.append(f"{path.name}: not a readable zip ({error})")
        return
    for name in sorted(listed | set(members)):
        if name not in members:
            report.problems.append(f"{path.name}: lacks {name}")
        elif name not in listed:
            report.problems.append(f"{path.name}: holds {name}, which the manifest does not list")
        elif name in contents and _sha256(members[name]) != _sha256(contents[name]):
            report.problems.append(f"{path.name}: its {name} differs from the folder's")
