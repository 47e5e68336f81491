"""Where a synthetic dataset's label files go and how they are written: annotation files, test lists, templates.

Train and validation labels go to the annotation folder as the release ships it; test labels go to
``synthetic_test_labels/`` in the same layout, and the test track lists and prediction templates to ``test_set/``.
"""

from pathlib import Path

from harness.data.annotations import write_annotation
from harness.data.synthetic.plan import VideoPlan
from harness.data.synthetic.signals import TrackSignals
from harness.data.templates import write_template

ANNOTATION_FOLDER = "6th ABAW Annotations"  # with a space, as the release unpacks
CHALLENGE = {"va": "VA_Estimation_Challenge", "expr": "EXPR_Recognition_Challenge"}
SPLIT_FOLDER = {"train": "Train_Set", "validation": "Validation_Set", "test": "Test_Set"}
TRACK_LIST = {
    "va": "Valence_Arousal_Estimation_Challenge_test_set_release.txt",
    "expr": "Expression_Recognition_Challenge_test_set_release.txt",
}
TEMPLATE = {"va": "CVPR_6th_ABAW_VA_test_set_sample.txt", "expr": "CVPR_6th_ABAW_Expr_test_set_sample.txt"}


def write_video_labels(root: Path, plan: VideoPlan, signals: dict[str, TrackSignals]) -> dict[str, dict[str, int]]:
    """Write one video's annotation files; return ``{task: {test track: rows}}`` for the test lists."""
    test_rows: dict[str, dict[str, int]] = {"va": {}, "expr": {}}
    split = plan.split
    base = root / "synthetic_test_labels" if split == "test" else root / ANNOTATION_FOLDER
    for track in plan.tracks:
        for task in track.tasks:
            labels = signals[track.name].va_file if task == "va" else signals[track.name].expr_file
            write_annotation(base / CHALLENGE[task] / SPLIT_FOLDER[split] / f"{track.name}.txt", task, labels)
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
        (lists / TRACK_LIST[task]).write_text("".join(f"{name}\n" for name in rows), encoding="utf-8")
        write_template(templates / TEMPLATE[task], task, rows)
