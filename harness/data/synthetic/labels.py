"""Where a synthetic dataset's label files go and how they are written: annotation files, test lists, templates.

Train and validation labels go to the annotation folder as the release ships it; test labels go to
``synthetic_test_labels/`` in the same layout, and the test track lists and prediction templates to ``test_set/``.
Names and formats are the task registry's (:mod:`harness.tasks`), with the 6th ABAW's file names.
"""

from pathlib import Path

import numpy as np

from harness.data.affwild2 import SPLIT_FOLDERS
from harness.data.annotations import write_annotation
from harness.data.synthetic.plan import VideoPlan
from harness.data.synthetic.signals import TrackSignals
from harness.data.templates import write_template
from harness.tasks import get_task

ANNOTATION_FOLDER = "6th ABAW Annotations"  # with a space, as the release unpacks
RELEASE_ROUND = 6  # the synthetic tree carries the 6th ABAW's names


def template_name(task: str) -> str:
    """The 6th ABAW template's file name of ``task`` (``CVPR_6th_ABAW_Expr_test_set_sample.txt``)."""
    return get_task(task).submission_name(RELEASE_ROUND).replace("_test_set.txt", "_test_set_sample.txt")


def write_video_labels(
    root: Path, plan: VideoPlan, signals: dict[str, TrackSignals], aus: dict[str, np.ndarray]
) -> dict[str, dict[str, int]]:
    """Write one video's annotation files; return ``{task: {test track: rows}}`` for the test lists.

    The AU labels ``aus`` (per track, see :func:`.aus.track_aus`) go to the tracks that have them (:func:`.has_aus`:
    their plan lists ``au``).
    """
    test_rows: dict[str, dict[str, int]] = {"va": {}, "expr": {}, "au": {}}
    split = plan.split
    base = root / "synthetic_test_labels" if split == "test" else root / ANNOTATION_FOLDER
    for track in plan.tracks:
        drawn = {"va": signals[track.name].va_file, "expr": signals[track.name].expr_file, "au": aus.get(track.name)}
        labelled = {task: drawn[task] for task in track.tasks}
        for task, labels in labelled.items():
            folder = base / get_task(task).challenge_folders[0] / SPLIT_FOLDERS[split]
            write_annotation(folder / f"{track.name}.txt", task, labels)
            if split == "test":
                test_rows[task][track.name] = len(labels)
    return test_rows


def write_test_lists(root: Path, test_rows: dict[str, dict[str, int]]) -> None:
    """The test track lists and prediction templates, tracks in the order given."""
    lists = root / "test_set" / "names_of_videos_in_each_test_set"
    templates = root / "test_set" / "prediction_files_format"
    lists.mkdir(parents=True, exist_ok=True)
    templates.mkdir(parents=True, exist_ok=True)
    for task, rows in test_rows.items():
        (lists / get_task(task).track_list_names[0]).write_text("".join(f"{name}\n" for name in rows), encoding="utf-8")
        write_template(templates / template_name(task), task, rows)
