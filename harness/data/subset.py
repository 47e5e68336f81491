"""A small dataset root cut from a larger one: a few tracks, each cut to its first frames, media linked, not copied.

For trying systems at their full-size architectures on a handful of tracks (``make paper-check``) before a run that
takes hours: the subset keeps the Aff-Wild2 layout (annotations, test track lists and templates, crops, videos), so
every command works on it. Label files and template rows stop at ``max_frames``; crop folders hold hard links (or
symbolic links across file systems) to the frames kept; videos are linked whole (label rows are the truth, so a
video longer than its rows is normal in Aff-Wild2).
"""

import os
from collections.abc import Mapping
from pathlib import Path

from harness.data.affwild2 import SPLIT_FOLDERS, TEST_LABELS_FOLDER, Dataset, Split
from harness.data.annotations import read_lines
from harness.data.templates import write_template
from harness.errors import DataError
from harness.tasks import Task, get_task

ANNOTATION_FOLDER = "6th ABAW Annotations"


def choose_videos(dataset: Dataset, counts: Mapping[str, int]) -> dict[str, list[str]]:
    """The first ``counts[split]`` videos of each split (sorted by name), those serving every task first."""
    chosen: dict[str, list[str]] = {}
    for split, count in counts.items():
        served: dict[str, set[str]] = {}
        for task in _tasks_with(dataset, split):
            for track in dataset.split(task, split).tracks:
                served.setdefault(track.video, set()).add(task)
        every = max((len(tasks) for tasks in served.values()), default=0)
        ranked = sorted(served, key=lambda video: (len(served[video]) < every, video))
        if len(ranked) < count:
            raise DataError(f"{dataset.root}: the {split} split has {len(ranked)} videos, {count} were asked for")
        chosen[split] = ranked[:count]
    return chosen


def write_subset(dataset: Dataset, out: Path, videos: Mapping[str, list[str]], max_frames: int) -> Path:
    """Write the tracks of ``videos`` (per split) under ``out``, each cut to its first ``max_frames`` rows."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: the subset's folder must not exist or be empty")
    if max_frames < 1:
        raise DataError(f"max_frames must be at least 1, got {max_frames}")
    linked: set[str] = set()  # tracks and videos already linked (a track may serve two tasks)
    for split, wanted in videos.items():
        for task in _tasks_with(dataset, split):
            data = dataset.split(task, split)
            tracks = [track for track in data.tracks if track.video in wanted]
            if split == "test":
                _write_test(dataset, data, task, tracks, out, max_frames)
            else:
                folder = out / ANNOTATION_FOLDER / _challenge(dataset, task) / SPLIT_FOLDERS[split]
                for track in tracks:
                    _write_labels(track.annotation, folder / f"{track.name}.txt", max_frames)
            for track in tracks:
                if track.name not in linked:
                    linked.add(track.name)
                    _link_crops(data, track.name, out / "cropped_aligned" / track.name, max_frames)
                if track.video_path is not None and f"video:{track.video}" not in linked:
                    linked.add(f"video:{track.video}")
                    _link(track.video_path, out / "batch1" / track.video_path.name)
    return out


def _tasks_with(dataset: Dataset, split: str) -> list[Task]:
    if split == "test":
        return [task for task in dataset.layout.tasks if task in dataset.layout.templates]
    return [task for task in dataset.layout.tasks if dataset.layout.split_dir(task, split) is not None]


def _challenge(dataset: Dataset, task: Task) -> str:
    folder = dataset.layout.challenge_dir(task)
    return folder.name if folder is not None else get_task(task).challenge_folders[0]


def _write_labels(source: Path | None, target: Path, max_frames: int) -> None:
    """The header and the first ``max_frames`` label lines of ``source``, as written there."""
    if source is None:
        raise DataError(f"{target.stem}: no annotation file to cut")
    lines = read_lines(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines[: max_frames + 1]) + "\n", encoding="utf-8")


def _write_test(dataset: Dataset, data: Split, task: Task, tracks: list, out: Path, max_frames: int) -> None:
    """The task's track list and template for ``tracks`` (rows cut at ``max_frames``), and their test labels."""
    lists = out / "test_set" / "names_of_videos_in_each_test_set"
    lists.mkdir(parents=True, exist_ok=True)
    list_path = dataset.layout.track_lists.get(task)
    list_name = list_path.name if list_path else get_task(task).track_list_names[0]
    (lists / list_name).write_text("".join(f"{track.name}\n" for track in tracks), encoding="utf-8")
    rows = {track.name: min(track.n_rows, max_frames) for track in tracks}
    write_template(out / "test_set" / "prediction_files_format" / dataset.layout.templates[task].name, task, rows)
    if data.has_labels:
        folder = out / TEST_LABELS_FOLDER / _challenge(dataset, task) / SPLIT_FOLDERS["test"]
        for track in tracks:
            _write_labels(track.annotation, folder / f"{track.name}.txt", max_frames)


def _link_crops(data: Split, name: str, target: Path, max_frames: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for frame in data.face_frames(name).tolist():
        if frame <= max_frames:
            _link(data.frame_path(name, frame), target / f"{frame:05d}.jpg")


def _link(source: Path, target: Path) -> None:
    """A hard link where the file system allows it, else a symbolic link to the absolute path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.symlink_to(Path(source).resolve())
