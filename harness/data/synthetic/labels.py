"""Where a synthetic dataset's label files go and how they are written: annotation files, test lists, templates.

Train and validation labels go to the annotation folder as the release ships it; test labels go to
``synthetic_test_labels/`` in the same layout, and the test track lists and prediction templates to ``test_set/``.
The AU challenge's files are written here (header, 0/1 rows, template) rather than by the VA/EXPR readers' writers.
"""

from pathlib import Path

import numpy as np

from harness.atomic import write_atomically
from harness.data.annotations import write_annotation
from harness.data.synthetic.aus import AU_NAMES, has_aus
from harness.data.synthetic.plan import VideoPlan
from harness.data.synthetic.signals import TrackSignals
from harness.data.templates import write_template

ANNOTATION_FOLDER = "6th ABAW Annotations"  # with a space, as the release unpacks
CHALLENGE = {"va": "VA_Estimation_Challenge", "expr": "EXPR_Recognition_Challenge", "au": "AU_Detection_Challenge"}
SPLIT_FOLDER = {"train": "Train_Set", "validation": "Validation_Set", "test": "Test_Set"}
TRACK_LIST = {
    "va": "Valence_Arousal_Estimation_Challenge_test_set_release.txt",
    "expr": "Expression_Recognition_Challenge_test_set_release.txt",
    "au": "Action_Unit_Detection_Challenge_test_set_release.txt",
}
TEMPLATE = {
    "va": "CVPR_6th_ABAW_VA_test_set_sample.txt",
    "expr": "CVPR_6th_ABAW_Expr_test_set_sample.txt",
    "au": "CVPR_6th_ABAW_AU_test_set_sample.txt",
}
AU_HEADER = ",".join(AU_NAMES)
AU_DUMMY = ",".join("0" for _ in AU_NAMES)  # a template's placeholder values, as the VA/EXPR templates' zeros


def write_video_labels(
    root: Path, plan: VideoPlan, signals: dict[str, TrackSignals], aus: dict[str, np.ndarray]
) -> dict[str, dict[str, int]]:
    """Write one video's annotation files; return ``{task: {test track: rows}}`` for the test lists.

    The AU labels ``aus`` (per track, see :func:`.aus.track_aus`) go to the tracks that have them (:func:`.has_aus`).
    """
    test_rows: dict[str, dict[str, int]] = {"va": {}, "expr": {}, "au": {}}
    split = plan.split
    base = root / "synthetic_test_labels" if split == "test" else root / ANNOTATION_FOLDER
    for track in plan.tracks:
        for task in track.tasks:
            labels = signals[track.name].va_file if task == "va" else signals[track.name].expr_file
            write_annotation(base / CHALLENGE[task] / SPLIT_FOLDER[split] / f"{track.name}.txt", task, labels)
            if split == "test":
                test_rows[task][track.name] = len(labels)
        if has_aus(track):
            labels = aus[track.name]
            write_au_annotation(base / CHALLENGE["au"] / SPLIT_FOLDER[split] / f"{track.name}.txt", labels)
            if split == "test":
                test_rows["au"][track.name] = len(labels)
    return test_rows


def write_au_annotation(path: Path, labels: np.ndarray) -> None:
    """One track's AU labels ``(n, 12)`` in the ABAW format: the AU header, then one line of 12 values per frame."""
    rows = [",".join(map(str, row)) for row in labels.tolist()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([AU_HEADER, *rows]) + "\n", encoding="utf-8")


def write_test_lists(root: Path, test_rows: dict[str, dict[str, int]]) -> None:
    """The test track lists and prediction templates, tracks in the order given."""
    lists = root / "test_set" / "names_of_videos_in_each_test_set"
    templates = root / "test_set" / "prediction_files_format"
    lists.mkdir(parents=True, exist_ok=True)
    templates.mkdir(parents=True, exist_ok=True)
    for task, rows in test_rows.items():
        (lists / TRACK_LIST[task]).write_text("".join(f"{name}\n" for name in rows), encoding="utf-8")
        if task == "au":
            _write_au_template(templates / TEMPLATE[task], rows)
        else:
            write_template(templates / TEMPLATE[task], task, rows)


def _write_au_template(path: Path, tracks: dict[str, int]) -> None:
    """The AU prediction template: ``image_location,AU1,...,AU26``, then ``TRACK/00001.jpg,0,...,0`` per frame."""
    parts = [f"image_location,{AU_HEADER}\n"]
    for name, n_rows in tracks.items():
        parts.append("".join(f"{name}/{frame:05d}.jpg,{AU_DUMMY}\n" for frame in range(1, n_rows + 1)))
    write_atomically(path, "".join(parts).encode("utf-8"))
