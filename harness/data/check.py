"""``abaw data check``: discover a dataset root, count what is there per task and split, and list every problem.

Problems (the check fails): unreadable or malformed annotation files, a track whose video or crop folder is missing,
an empty crop folder, a file among the crops not named as a frame, an unreadable video, template rows for a track
that is not in the test track list, a test track without template rows, two video files with one name, a symbolic
link whose target is gone. Notes (normal in Aff-Wild2, reported only): label
lines that differ from the container's frame count by a few frames, tracks whose first face comes late, the test
material found or not found, other copies of it that were not used. The report names the release (5th, 6th ABAW...),
the tasks the root holds data of (``tasks``: a root without AU annotations simply has no ``au``, not a problem) and
where each task's test track list and template were found.
"""

from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np

from harness.data.affwild2 import SEARCH_DEPTH, SPLITS, Dataset, Split
from harness.data.annotations import valid_mask
from harness.data.media import VideoInfo, broken_link, probe_video
from harness.data.releases import looked_for
from harness.errors import DataError
from harness.progress import track as progress_track

MAX_LISTED = 20  # frame-count differences listed one by one; the rest are counted


def check_dataset(root: Path) -> dict:
    """A JSON-able report: layout, counts per task and split, videos, problems and notes; ``ok`` when no problems."""
    dataset = Dataset(root)
    layout = dataset.layout
    problems: list[str] = [f"{path}: a second video file named {path.stem!r}" for path in layout.duplicate_videos]
    problems += [broken_link(path) for path in layout.broken_links]
    notes: list[str] = list(layout.notes)
    if not layout.test_files:
        notes.append(f"no test material found within {SEARCH_DEPTH} levels (looked for {looked_for()})")
    splits: dict[str, dict[str, dict]] = {}
    loaded: list[Split] = []
    for task in layout.tasks:
        splits[task] = {}
        for split_name in SPLITS:
            try:
                split = dataset.scan(task, split_name, problems)
            except DataError as error:
                if _expected(dataset, task, split_name):
                    problems.append(str(error))
                continue
            loaded.append(split)
            splits[task][split_name] = _split_counts(split, problems, notes, dataset.dead_crop_links)
    videos = _check_videos(dataset, loaded, problems, notes)
    return {
        "root": str(dataset.root),
        "fingerprint": dataset.fingerprint(),
        "layout": {
            "annotations": str(layout.annotations) if layout.annotations else None,
            "crops": [str(c) for c in layout.crops],
            "video_files": len(layout.videos),
            "test_set": str(layout.test_set) if layout.test_set else None,
            "test_labels": str(layout.test_labels) if layout.test_labels else None,
        },
        "release": layout.release.to_dict(),
        "tasks": list(layout.tasks),
        "test_material": {
            task: {
                "track_list": str(layout.track_lists[task]) if task in layout.track_lists else None,
                "template": str(layout.templates[task]) if task in layout.templates else None,
            }
            for task in layout.tasks
        },
        "splits": splits,
        "videos": videos,
        "problems": list(dict.fromkeys(problems)),  # a track in several tasks' splits is checked once per split
        "notes": notes,
        "ok": not problems,
    }


def _expected(dataset: Dataset, task: str, split: str) -> bool:
    """Whether a missing (task, split) is a problem: the task's train/validation where its challenge folder exists,
    its test split where its template or track list was found."""
    if split == "test":
        return task in dataset.layout.templates or task in dataset.layout.track_lists
    return dataset.layout.challenge_dir(task) is not None


def _split_counts(split: Split, problems: list[str], notes: list[str], dead_links: dict[str, Path]) -> dict:
    counts = {"tracks": len(split.tracks), "label_rows": 0, "valid_labels": 0, "face_images": 0, "missing_faces": 0}
    late = 0
    for entry in split.tracks:
        counts["label_rows"] += entry.n_rows
        if entry.labels is not None:
            counts["valid_labels"] += int(valid_mask(entry.labels, split.task).sum())
        if entry.crops_dir is None:
            missing = f"track {entry.name!r} ({split.task} {split.name}): no face-crop folder {entry.name}/"
            problems.append(broken_link(dead_links[entry.name]) if entry.name in dead_links else missing)
            counts["missing_faces"] += entry.n_rows
            continue
        try:
            frames = split.face_frames(entry.name)
        except DataError as error:  # a stray file among the crops: listed, and the check goes on
            problems.append(str(error))
            continue
        if len(frames) == 0:
            problems.append(f"{entry.crops_dir}: empty face-crop folder for track {entry.name!r}")
        counts["face_images"] += len(frames)
        counts["missing_faces"] += entry.n_rows - int(np.count_nonzero(frames <= entry.n_rows))
        late += bool(len(frames) and frames[0] > 1)
    if split.name == "test":
        counts["labelled"] = split.has_labels
    if late:
        notes.append(f"{split.task} {split.name}: {late} track(s) whose first face comes after frame 1")
    return counts


def _check_videos(dataset: Dataset, splits: list[Split], problems: list[str], notes: list[str]) -> dict:
    """Probe every video a track needs once; compare its frame count with the track's label rows."""
    needed: dict[str, list[tuple[str, int]]] = {}
    for split in splits:
        for entry in split.tracks:
            if entry.video_path is None:
                problems.append(
                    f"track {entry.name!r} ({split.task} {split.name}): video {entry.video!r} not found in "
                    f"batch1/, batch2/ or new_vids/"
                )
                continue
            needed.setdefault(entry.video, []).append((entry.name, entry.n_rows))
    infos: dict[str, VideoInfo] = {}
    for name in progress_track(sorted(needed), "probing videos"):
        try:
            infos[name] = probe_video(dataset.layout.videos[name])
        except DataError as error:
            problems.append(str(error))
    differences = sorted(
        {
            (track, rows, infos[video].n_frames)
            for video, entries in needed.items()
            if video in infos
            for track, rows in entries
            if rows != infos[video].n_frames
        },
        key=lambda item: (-abs(item[1] - item[2]), item[0]),  # ties by track: the set has no order
    )
    if differences:
        largest = max(abs(rows - frames) for _, rows, frames in differences)
        notes.append(
            f"{len(differences)} track(s) have label/template rows that differ from their video's frame count "
            f"(largest difference {largest} frames); the rows are the truth, as in Aff-Wild2"
        )
    return {
        "needed": len(needed),
        "probed": len(infos),
        "fps": dict(Counter(_fps_text(info.fps) for info in infos.values())),
        "without_audio": sorted(name for name, info in infos.items() if not info.has_audio),
        "frame_count_differences": [
            {"track": track, "rows": rows, "video_frames": frames, "difference": rows - frames}
            for track, rows, frames in differences[:MAX_LISTED]
        ],
    }


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps.numerator}/{fps.denominator}"
