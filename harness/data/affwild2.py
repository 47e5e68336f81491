"""The Aff-Wild2 / ABAW release as the harness sees it: layout discovery, tracks, labels, crops, videos, templates.

A dataset root is searched (:data:`SEARCH_DEPTH` levels deep, names as the organizers ship them, paths with spaces
fine, folders in whatever layout an archive unpacked to) for
- the annotation folder: any folder holding a task's challenge folder (``VA_Estimation_Challenge``,
  ``EXPR_Recognition_Challenge``, 5th ABAW: ``EXPR_Classification_Challenge``, ``AU_Detection_Challenge``: each task's
  ``challenge_folders`` in :mod:`harness.tasks`), each with ``Train_Set`` and ``Validation_Set``; a task without its
  folder is simply absent (:attr:`Layout.tasks` are those present);
- the face crops: ``cropped_aligned`` and ``cropped_aligned_new_50_vids`` (``<track>/<frame:05d>.jpg``), also nested
  in a folder of their own name (``cropped_aligned/cropped_aligned/``) or under a raw-video folder
  (``batch2/cropped_aligned_new_50_vids/``);
- the raw videos: ``batch1``, ``batch2``, ``new_vids`` (``.mp4`` and ``.avi``);
- the test material, wherever it lies: the test track lists and prediction templates by their file names
  (:mod:`harness.data.releases`: 5th and 6th ABAW names, and later rounds' ``CVPR_<N>th_ABAW_*`` templates);
- ``synthetic_test_labels/`` (only the synthetic dataset has test labels) in the annotation layout with ``Test_Set``.

The release (5th, 6th ABAW, ...) is told from the names found. :class:`Split` is the one object later code asks for
data of a (task, split).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.data.annotations import read_annotation, valid_mask
from harness.data.fingerprint import cached_fingerprint
from harness.data.media import VideoInfo, broken_link, face_path, list_face_frames, probe_video
from harness.data.releases import (
    Release,
    detect_release,
    looked_for,
    parse_template_name,
    track_list_task,
)
from harness.data.templates import Template, read_template, read_track_list
from harness.errors import DataError
from harness.tasks import TASKS, Task, all_tasks, get_task

SPLITS = ("train", "validation", "test")
SPLIT_FOLDERS = {"train": "Train_Set", "validation": "Validation_Set", "test": "Test_Set"}
CROP_FOLDERS = ("cropped_aligned", "cropped_aligned_new_50_vids")
VIDEO_FOLDERS = ("batch1", "batch2", "new_vids")
VIDEO_SUFFIXES = (".mp4", ".avi")
TEST_LABELS_FOLDER = "synthetic_test_labels"
SEARCH_DEPTH = 4
_CHALLENGE_NAMES = frozenset(name for task in all_tasks() for name in task.challenge_folders)
_PART_FOLDERS = frozenset([*CROP_FOLDERS, *VIDEO_FOLDERS, *_CHALLENGE_NAMES, TEST_LABELS_FOLDER])


def video_of(track: str) -> str:
    """The video a track belongs to: ``NAME_left`` and ``NAME_right`` share video ``NAME``."""
    for suffix in ("_left", "_right"):
        if track.endswith(suffix):
            return track[: -len(suffix)]
    return track


@dataclass(frozen=True)
class Layout:
    """Where each part of a dataset lives; parts that are absent are None or empty.

    ``notes`` say what discovery chose between (another copy of a template, a track list taken from the template).
    """

    root: Path
    annotations: Path | None
    crops: tuple[Path, ...]
    videos: dict[str, Path]
    track_lists: Mapping[Task, Path]
    templates: Mapping[Task, Path]
    test_labels: Path | None
    release: Release
    duplicate_videos: tuple[Path, ...] = ()
    broken_links: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def test_files(self) -> tuple[Path, ...]:
        """The test track lists and templates found, sorted by path."""
        return tuple(sorted({*self.track_lists.values(), *self.templates.values()}))

    @property
    def test_set(self) -> Path | None:
        """The folder holding all the test material found (their closest common folder), None without any."""
        files = self.test_files
        return Path(os.path.commonpath([path.parent for path in files])) if files else None

    def challenge_dir(self, task: Task, base: Path | None = None) -> Path | None:
        """The task's challenge folder under ``base`` (default: the annotation folder)."""
        base = self.annotations if base is None else base
        if base is None:
            return None
        return next((base / name for name in get_task(task).challenge_folders if (base / name).is_dir()), None)

    def split_dir(self, task: Task, split: str) -> Path | None:
        """Folder of a split's annotation files (test: the synthetic test labels, when present)."""
        challenge = self.challenge_dir(task, self.test_labels if split == "test" else None)
        folder = challenge / SPLIT_FOLDERS[split] if challenge is not None else None
        return folder if folder is not None and folder.is_dir() else None

    def label_files(self, splits: tuple[str, ...]) -> list[Path]:
        """The annotation files of these splits, every task's, sorted: exactly what discovery reads (a folder named
        like one, ``17-30-320x240.txt/``, is not a file)."""
        folders = [self.split_dir(task, split) for task in TASKS for split in splits]
        files = (path for folder in folders if folder is not None for path in folder.glob("*.txt"))
        return sorted(path for path in files if path.is_file())

    @property
    def text_inputs(self) -> list[Path]:
        """The text files results depend on, in the fingerprint's order: the train and validation annotations, the
        test track lists and templates, the (synthetic) test labels."""
        return [*self.label_files(("train", "validation")), *self.test_files, *self.label_files(("test",))]

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The tasks this root holds data of (a challenge folder, a test template or track list), registry order."""
        return tuple(
            task
            for task in TASKS
            if self.challenge_dir(task) is not None or task in self.templates or task in self.track_lists
        )

    def track_list_path(self, task: Task) -> Path | None:
        return self.track_lists.get(task)

    def template_path(self, task: Task) -> Path | None:
        return self.templates.get(task)


@dataclass
class _Found:
    """What one walk over a root saw, before choices are made."""

    annotations: list[Path] = field(default_factory=list)
    crops: list[Path] = field(default_factory=list)
    video_dirs: list[Path] = field(default_factory=list)
    test_files: list[Path] = field(default_factory=list)
    test_labels: Path | None = None
    broken_links: list[Path] = field(default_factory=list)


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(Path(entry.path) for entry in os.scandir(folder) if entry.is_dir())
    except OSError:
        return []


def _crop_roots(folder: Path) -> list[Path]:
    """The folders under a crop folder that hold track folders: itself, and crop folders nested in it (an archive
    unpacked into a folder of its own name, ``cropped_aligned/cropped_aligned/<track>/``)."""
    children = _subfolders(folder)
    nested = [child for child in children if child.name in CROP_FOLDERS]
    roots = [folder] if len(nested) < len(children) or not children else []
    return roots + [root for child in nested for root in _crop_roots(child)]


def _walk(root: Path, depth: int) -> _Found:
    """One breadth-first walk of ``root`` up to ``depth`` levels; never descends into crop or challenge folders."""
    found = _Found()
    level = [root]
    for _ in range(depth + 1):
        following: list[Path] = []
        for folder in level:
            name = folder.name
            if name in CROP_FOLDERS:
                found.crops.extend(_crop_roots(folder))
                continue
            if name == TEST_LABELS_FOLDER:
                found.test_labels = found.test_labels or folder
                continue
            if name in _CHALLENGE_NAMES:
                continue
            if name in VIDEO_FOLDERS:
                found.video_dirs.append(folder)
            elif any((folder / challenge).is_dir() for challenge in _CHALLENGE_NAMES):
                found.annotations.append(folder)
            try:
                entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
            except OSError:
                continue
            for entry in entries:
                test_file = bool(track_list_task(entry.name) or parse_template_name(entry.name))
                if entry.is_symlink() and not os.path.exists(entry.path):
                    if test_file or entry.name in _PART_FOLDERS:  # a part of the release on a disk not there
                        found.broken_links.append(Path(entry.path))
                elif entry.is_dir():
                    following.append(Path(entry.path))
                elif test_file:
                    found.test_files.append(Path(entry.path))
        level = following
    return found


def _challenge_names() -> str:
    """Every task's challenge folder names, for the message about a root without any."""
    names = [name for task in all_tasks() for name in task.challenge_folders]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _shared_depth(a: Path, b: Path) -> int:
    return len(os.path.commonpath([a, b]).split(os.sep))


def _choose_test_files(files: list[Path]) -> tuple[dict[Task, Path], dict[Task, Path], list[str]]:
    """Per task, the template of the newest round (a ``sample`` before an ``example``, then the shallowest) and the
    track list nearest to it; other copies are named in the returned notes."""
    templates: dict[Task, Path] = {}
    lists: dict[Task, Path] = {}
    notes: list[str] = []
    for task in TASKS:
        named = [(parse_template_name(path.name), path) for path in files]
        candidates = [(name, path) for name, path in named if name is not None and name.task == task]
        if candidates:
            _, chosen = min(candidates, key=lambda c: (-c[0].round, c[0].kind != "sample", len(c[1].parts), c[1]))
            templates[task] = chosen
        task_lists = [path for path in files if track_list_task(path.name) == task]
        if task_lists:
            anchor = templates.get(task)
            lists[task] = min(
                task_lists,
                key=lambda p: (-_shared_depth(p, anchor) if anchor else 0, len(p.parts), p),
            )
        for path in [path for _, path in candidates] + task_lists:
            if path not in (templates.get(task), lists.get(task)):
                notes.append(f"{task} test material: also found {path}, not used")
        if task in templates and task not in lists:
            notes.append(f"{task}: no test track list found; the template's tracks are the test tracks")
    return templates, lists, notes


def discover(root: Path) -> Layout:
    """Find the parts of an Aff-Wild2-shaped dataset under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root {root} is not a folder; pass --data ROOT or set ABAW_DATA")
    found = _walk(root, SEARCH_DEPTH)
    if len(found.annotations) > 1:
        listed = ", ".join(str(a) for a in found.annotations)
        raise DataError(f"{root}: more than one annotation folder found ({listed}); point --data at one release")
    if not found.annotations and not found.test_files:
        raise DataError(
            f"{root}: no Aff-Wild2 annotation folder (holding {_challenge_names()}) "
            f"and no test material ({looked_for()}) found within {SEARCH_DEPTH} levels"
        )
    annotations = found.annotations[0] if found.annotations else None
    templates, lists, notes = _choose_test_files(found.test_files)
    challenges = sorted(p.name for p in _subfolders(annotations) if p.name in _CHALLENGE_NAMES) if annotations else []
    release = detect_release(annotations, challenges, list(templates.values()))
    videos, duplicates, broken_videos = _index_videos(found.video_dirs)
    return Layout(
        root=root,
        annotations=annotations,
        crops=tuple(sorted(set(found.crops))),
        videos=videos,
        track_lists=lists,
        templates=templates,
        test_labels=found.test_labels,
        release=release,
        duplicate_videos=tuple(duplicates),
        broken_links=tuple(sorted([*found.broken_links, *broken_videos])),
        notes=tuple(notes),
    )


def _index_videos(folders: list[Path]) -> tuple[dict[str, Path], list[Path], list[Path]]:
    """Video name (file stem) → file, over the batch folders and any depth below them (crop folders skipped; linked
    folders followed, each real folder once), the second files of a name, and video links whose target is gone."""
    outermost = [f for f in sorted(folders) if not any(o != f and o in f.parents for o in folders)]
    videos: dict[str, Path] = {}
    duplicates: list[Path] = []
    broken: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for folder in outermost:
        for directory, subdirs, files in os.walk(folder, followlinks=True):
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen:  # a link back up, or a second way to one folder
                subdirs[:] = []
                continue
            seen.add((info.st_dev, info.st_ino))
            subdirs[:] = sorted(d for d in subdirs if d not in CROP_FOLDERS)
            for name in sorted(files):
                path = Path(directory) / name
                if path.suffix.lower() not in VIDEO_SUFFIXES:
                    continue
                if not path.exists():
                    broken.append(path)
                elif path.stem in videos:
                    duplicates.append(path)
                else:
                    videos[path.stem] = path
    return videos, duplicates, broken


@dataclass(frozen=True)
class Track:
    """One track of a split: its labels (None for an unlabelled test track) and where its media live."""

    name: str
    n_rows: int
    labels: np.ndarray | None
    annotation: Path | None
    crops_dir: Path | None
    video_path: Path | None

    @property
    def video(self) -> str:
        return video_of(self.name)


@dataclass
class Split:
    """Tracks, labels, masks, face frames, frame paths and fps of one (task, split)."""

    task: Task
    name: str
    tracks: tuple[Track, ...]
    _faces: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _videos: dict[str, VideoInfo] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(track.name for track in self.tracks)

    @property
    def has_labels(self) -> bool:
        return all(track.labels is not None for track in self.tracks)

    def track(self, name: str) -> Track:
        try:
            return self._by_name[name]
        except KeyError:
            raise DataError(f"track {name!r} is not in the {self.task} {self.name} split") from None

    @cached_property
    def _by_name(self) -> dict[str, Track]:
        return {track.name: track for track in self.tracks}

    def labels(self) -> np.ndarray:
        """All tracks' labels concatenated in track order (see :meth:`track_index`)."""
        if not self.has_labels:
            raise DataError(f"the {self.task} {self.name} split has no labels here")
        return np.concatenate([track.labels for track in self.tracks])

    def valid(self) -> np.ndarray:
        """Mask over :meth:`labels` of frames that count for scoring."""
        return valid_mask(self.labels(), self.task)

    def track_index(self) -> np.ndarray:
        """Track number (position in :attr:`tracks`) of every concatenated frame row."""
        return np.repeat(np.arange(len(self.tracks)), [track.n_rows for track in self.tracks])

    def face_frames(self, name: str) -> np.ndarray:
        """1-based frame numbers with a face crop (gaps are frames with no face; empty if no crops folder)."""
        if name not in self._faces:
            folder = self.track(name).crops_dir
            self._faces[name] = list_face_frames(folder) if folder is not None else np.empty(0, dtype=np.int64)
        return self._faces[name]

    def frame_path(self, name: str, frame: int) -> Path:
        folder = self.track(name).crops_dir
        if folder is None:
            raise DataError(f"track {name!r}: no face-crop folder in any of {', '.join(CROP_FOLDERS)}")
        return face_path(folder, frame)

    def video_info(self, name: str) -> VideoInfo:
        """The container's facts about the track's raw video (probed once)."""
        track = self.track(name)
        if track.video_path is None:
            raise DataError(
                f"track {name!r}: its video {track.video!r} is in none of {', '.join(VIDEO_FOLDERS)} "
                f"(as {' or '.join(VIDEO_SUFFIXES)})"
            )
        if track.video not in self._videos:
            self._videos[track.video] = probe_video(track.video_path)
        return self._videos[track.video]

    def fps(self, name: str) -> float:
        return float(self.video_info(name).fps)


class Dataset:
    """A discovered dataset root; builds and caches :class:`Split` objects."""

    def __init__(self, root: Path) -> None:
        self.layout = discover(Path(root))
        self._splits: dict[tuple[Task, str], Split] = {}
        self._crop_index: dict[str, Path] | None = None
        self._dead_crop_links: dict[str, Path] = {}

    @property
    def root(self) -> Path:
        return self.layout.root

    def split(self, task: Task, split: str) -> Split:
        """The (task, split); raises a DataError naming what is missing."""
        if task not in TASKS or split not in SPLITS:
            raise DataError(f"unknown task/split {task}/{split}; expected one of {TASKS} and {SPLITS}")
        key = (task, split)
        if key not in self._splits:
            self._splits[key] = self._build_test(task) if split == "test" else self._build_labelled(task, split)
        return self._splits[key]

    def template(self, task: Task) -> Template:
        path = self.layout.template_path(task)
        if path is None:
            raise DataError(f"{self.root}: no {task} prediction template found (looked for {looked_for()})")
        return read_template(path, task)

    def test_track_names(self, task: Task) -> tuple[str, ...]:
        """The test track list's names; without a list, the template's tracks (a note of ``data check`` says so)."""
        path = self.layout.track_list_path(task)
        if path is None:
            return self.template(task).names
        return read_track_list(path)

    def scan(self, task: Task, split: str, problems: list[str]) -> Split:
        """Like :meth:`split`, but a bad annotation file is recorded in ``problems`` and skipped, not raised."""
        return self._build_test(task, problems) if split == "test" else self._build_labelled(task, split, problems)

    def _build_labelled(self, task: Task, split: str, problems: list[str] | None = None) -> Split:
        folder = self.layout.split_dir(task, split)
        if folder is None:
            raise DataError(
                f"{self.root}: no {task} {split} annotations "
                f"({' or '.join(get_task(task).challenge_folders)}/{SPLIT_FOLDERS[split]})"
            )
        files = sorted(path for path in folder.glob("*.txt") if path.is_file())
        if problems is not None:  # a folder named like an annotation file is not one; a link to nothing is no file
            folders = sorted(path for path in folder.glob("*.txt") if path.is_dir())
            problems += [f"{path}: a folder named like an annotation file, not one; move it away" for path in folders]
            problems += [broken_link(path) for path in sorted(folder.glob("*.txt")) if not path.exists()]
        if not files:
            raise DataError(f"{folder}: no annotation files (*.txt)")
        tracks = []
        for path in files:
            try:
                labels = read_annotation(path, task)
            except DataError as error:
                if problems is None:
                    raise
                problems.append(str(error))
                continue
            tracks.append(self._track(path.stem, len(labels), labels, path))
        return Split(task, split, tuple(tracks))

    def _build_test(self, task: Task, problems: list[str] | None = None) -> Split:
        template = self.template(task)
        names = self.test_track_names(task)
        listed = set(names)
        unknown = [t.name for t in template.tracks if t.name not in listed]
        if unknown:
            first = template.track(unknown[0])
            raise DataError(
                f"{template.path}, line {first.first_line}: template rows for track {unknown[0]!r}, which is not in "
                f"the test track list ({len(unknown)} such tracks)"
            )
        in_template = {t.name for t in template.tracks}
        rowless = [name for name in names if name not in in_template]
        if rowless and problems is not None:  # the submission would leave these tracks out
            problems.append(
                f"{self.layout.track_list_path(task)}: test track {rowless[0]!r} has no rows in the template "
                f"{template.path} ({len(rowless)} such tracks); the list and the template name the same tracks"
            )
        label_dir = self.layout.split_dir(task, "test")
        tracks = []
        for entry in template.tracks:
            n_rows = int(entry.frames.max()) if len(entry.frames) else 0
            path = label_dir / f"{entry.name}.txt" if label_dir is not None else None
            labels = read_annotation(path, task) if path is not None and path.is_file() else None
            tracks.append(self._track(entry.name, n_rows, labels, path if labels is not None else None))
        return Split(task, "test", tuple(tracks))

    def _track(self, name: str, n_rows: int, labels: np.ndarray | None, annotation: Path | None) -> Track:
        return Track(
            name=name,
            n_rows=n_rows,
            labels=labels,
            annotation=annotation,
            crops_dir=self.crop_index.get(name),
            video_path=self.layout.videos.get(video_of(name)),
        )

    @property
    def crop_index(self) -> dict[str, Path]:
        """Track name → its crop folder, over every cropped-aligned folder (a link to a gone folder is not one:
        see :attr:`dead_crop_links`)."""
        if self._crop_index is None:
            index: dict[str, Path] = {}
            for folder in self.layout.crops:
                for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                    if entry.name in CROP_FOLDERS:
                        continue
                    if entry.is_dir():
                        index.setdefault(entry.name, Path(entry.path))
                    elif entry.is_symlink() and not os.path.exists(entry.path):
                        self._dead_crop_links.setdefault(entry.name, Path(entry.path))
            self._crop_index = index
        return self._crop_index

    @property
    def dead_crop_links(self) -> dict[str, Path]:
        """Track name → a link in a cropped-aligned folder whose target is gone (an unplugged disk)."""
        _ = self.crop_index
        return {name: path for name, path in self._dead_crop_links.items() if name not in self.crop_index}

    def fingerprint(self) -> str:
        """A short hash of what determines results: label, list and template contents, crop counts, video sizes.

        Cached under ``$ABAW_HOME/fingerprints/``, keyed by the files' and crop folders' sizes and mtimes
        (:mod:`harness.data.fingerprint`): an unchanged root costs ``stat`` calls, not a scan of every crop.
        """
        return cached_fingerprint(self.root, self.layout.text_inputs, self.crop_index, self.layout.videos)
