"""Expression recognition: one of 8 classes per frame, scored by the macro F1 over all 8 classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.metric_inputs import check_finite
from harness.metrics import f1_from_confusion
from harness.tasks.base import LossOptions, TaskDef, first_bad_line

CLASSES = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
INVALID = -1
K = len(CLASSES)


class Expression(TaskDef):
    name = "expr"
    title = "expression recognition"
    columns = CLASSES
    width = K
    challenge_folders = ("EXPR_Recognition_Challenge", "EXPR_Classification_Challenge")
    track_list_names = (
        "Expression_Recognition_Challenge_test_set_release.txt",
        "Expression_Classification_Challenge_test_set_release.txt",
    )
    template_codes = ("EXPR", "Expr")
    template_dummy = "0"
    stats_width = K * K  # a flattened confusion matrix, rows = true class
    label_form = f"one integer class 0..{K - 1} (or -1)"
    value_form = "class"
    fields = 2
    metric_name = "macro F1"
    breakdown_names = ("f1_per_class",)

    # -- annotation files
    def parse_labels(self, path: Path, body) -> np.ndarray:
        labels = np.empty(len(body), dtype=np.int64)
        for index, line in enumerate(body):
            text = line.strip()
            try:
                labels[index] = int(text)
            except ValueError:
                raise DataError(f"{path}, line {index + 2}: expected {self.label_form}, found '{text}'") from None
        bad = (labels < INVALID) | (labels >= K)
        if bad.any():
            raise first_bad_line(path, body, bad, f"expression class must be 0..{K - 1} or -1")
        return labels

    def format_labels(self, labels: np.ndarray) -> list[str]:
        return [str(int(c)) for c in labels.tolist()]

    def valid(self, labels: np.ndarray) -> np.ndarray:
        return labels != INVALID

    def invalid_labels(self, n: int) -> np.ndarray:
        return np.full(n, INVALID, np.int64)

    # -- models
    def prior(self, valid_targets: np.ndarray) -> np.ndarray:
        counts = np.bincount(valid_targets, minlength=K).astype(np.float32)
        return counts / counts.sum()

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        outputs = np.asarray(outputs)
        return outputs if outputs.ndim == 1 else outputs.argmax(-1)

    def activate(self, raw):
        import torch

        return torch.softmax(raw, dim=-1)

    def train_outputs(self, raw):
        return raw

    def criterion(self, valid_targets: np.ndarray, options: LossOptions):
        from torch import nn

        from harness.models.training import FocalLoss, inverse_frequency_weights

        weights = inverse_frequency_weights(valid_targets, K)
        if options.focal_gamma is not None:
            return FocalLoss(weights, options.focal_gamma)
        return nn.CrossEntropyLoss(
            weight=weights if options.class_weighted else None, label_smoothing=options.label_smoothing
        )

    def target_tensor(self, targets: np.ndarray):
        import torch

        return torch.as_tensor(targets, dtype=torch.long)

    def one_hot_targets(self, targets: np.ndarray) -> np.ndarray:
        return np.eye(K)[np.asarray(targets)]

    def sample_weights(self, valid_targets: np.ndarray) -> np.ndarray:
        """Per row, its class's inverse frequency, normalised to mean 1 over the rows (the weighted ELM's W)."""
        counts = np.bincount(valid_targets, minlength=K).astype(np.float64)
        weights = np.where(counts > 0, len(valid_targets) / (K * np.maximum(counts, 1)), 0.0)
        return weights[valid_targets] / weights[valid_targets].mean()

    def window_target(self, step_targets: np.ndarray, labelled: np.ndarray) -> np.ndarray:
        """The most frequent labelled class of each window, one-hot."""
        counts = np.zeros((len(step_targets), K))
        for column in range(step_targets.shape[1]):
            np.add.at(
                counts, (np.arange(len(step_targets)), np.maximum(step_targets[:, column], 0)), labelled[:, column]
            )
        return np.eye(K)[counts.argmax(1)]

    # -- metric
    def check_pair(self, pred: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        p = self.check_predictions(pred, "EXPR predictions")
        lab = _classes(labels, "EXPR labels", INVALID)
        if p.shape[0] != lab.shape[0]:
            raise ValueError(
                f"EXPR predictions have {p.shape[0]} rows but labels have {lab.shape[0]}; need one per frame"
            )
        return p, lab

    def check_predictions(self, pred: Any, what: str) -> np.ndarray:
        return _classes(pred, what, 0)

    def track_statistics(self, pred: np.ndarray, labels: np.ndarray, track: np.ndarray, n_tracks: int) -> np.ndarray:
        width = self.stats_width
        flat = np.where(labels != INVALID, track * width + labels * K + pred, n_tracks * width)
        counts = np.bincount(flat, minlength=(n_tracks + 1) * width)[: n_tracks * width]
        return counts.reshape(n_tracks, width).astype(np.float64)

    def frames_from_stats(self, stats: np.ndarray) -> np.ndarray:
        return stats.sum(axis=-1)

    def scores_from_stats(self, summed: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        f1 = f1_from_confusion(summed.reshape(*summed.shape[:-1], K, K))
        return f1.mean(axis=-1), {"f1_per_class": f1}

    # -- chance level
    def constant_predictions(self, train_valid: np.ndarray) -> dict[str, np.ndarray]:
        """Each single class (only that class gets an F1 above 0: 2p / (1 + p) for its share p)."""
        return {f"always {name}": np.int64(index) for index, name in enumerate(CLASSES)}

    # -- score reports
    heading = "Expression (macro-F1)"
    part_titles = {"f1_per_class": "F1 per class"}
    part_abbrevs = {"f1_per_class": "F1"}

    def confusion_matrix(self, summed: np.ndarray) -> np.ndarray:
        """The statistics are the flattened confusion matrix itself."""
        return np.rint(summed).astype(np.int64).reshape(K, K)

    @property
    def part_labels(self) -> dict[str, tuple[str, ...]]:
        return {"f1_per_class": CLASSES}

    # -- prediction file values
    value_dtype = np.int64
    value_expected = "an integer class"
    value_range = f"classes 0..{K - 1}"
    value_kinds = {
        "not_a_class": "EXPR values that are not integers",
        "float_class": "EXPR classes written as whole-number floats (4.0)",
        "class_out_of_range": f"EXPR classes outside 0..{K - 1}",
    }
    unparsed_kind = "not_a_class"
    whole_float_values = True
    wide_row_hint = " (class probabilities? write one class per row, the argmax)"
    folder_releases = {"EXPR_Classification_Challenge": "5th ABAW or earlier", "EXPR_Recognition_Challenge": "6th ABAW"}
    release_codes = {5: "EXPR", 6: "Expr"}  # the <TASK> of the file names from each round on

    def array_ok(self, array: np.ndarray) -> bool:
        return array.ndim == 1 and array.dtype.kind in "iu"

    def array_form(self, need: int) -> str:
        return f"integer classes 0..{K - 1} of shape (n_frames,) (take the argmax of class scores)"

    def range_problems(self, values: np.ndarray) -> dict[str, np.ndarray]:
        return {"class_out_of_range": (values < 0) | (values >= K)}

    def format_rows(self, locations, rows: np.ndarray) -> str:
        return "".join(map("{},{}\n".format, locations, rows.tolist()))

    def submission_code(self, round_: int) -> str:
        """``EXPR`` up to the 5th ABAW, ``Expr`` from the 6th on."""
        newest = [code for first, code in sorted(self.release_codes.items()) if round_ >= first]
        return newest[-1] if newest else self.template_codes[0]

    # -- neural kinds and `abaw predict`
    audio_step_rate = 1.0

    def stored_outputs(self, train_outputs):
        import torch

        return torch.softmax(train_outputs, dim=-1)

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return ("expression",)

    def csv_fields(self, outputs: np.ndarray) -> list[str]:
        return [CLASSES[c] for c in self.decide(outputs).tolist()]

    # -- closed-form and fusion kinds
    problem = "multiclass"

    def from_one_hot(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows).argmax(1)

    def clip_scores(self, scores: np.ndarray) -> np.ndarray:
        return scores

    def outputs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Scores clipped at 0 and normalised into a distribution (uniform where all are <= 0)."""
        positive = np.clip(scores, 0.0, None)
        total = positive.sum(1, keepdims=True)
        uniform = np.full_like(positive, 1.0 / positive.shape[1])
        return np.where(total > 0, positive / np.where(total > 0, total, 1.0), uniform).astype(np.float32)


def _classes(values: Any, what: str, lowest: int) -> np.ndarray:
    """``values`` as a 1-D intp array of classes lowest..7; floats must be finite whole numbers."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices, one per frame; got shape {a.shape}")
    if a.dtype.kind == "f":
        check_finite(a, what)
        if not np.array_equal(a, np.round(a)):
            bad = np.flatnonzero(a != np.round(a))
            raise ValueError(f"{what} must be whole class indices; {bad.size} are not, the first at row {bad[0]}")
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integer class indices; got dtype {a.dtype}")
    a = a.astype(np.intp, copy=False)
    if a.size and (a.min() < lowest or a.max() >= K):
        bad = np.flatnonzero((a < lowest) | (a >= K))
        accepted = f"{lowest}..{K - 1}" + (" (-1 = invalid)" if lowest < 0 else "")
        raise ValueError(
            f"{what} must be classes {accepted}; {bad.size} value(s) are outside, the first at row {bad[0]} "
            f"(value {a[bad[0]]})"
        )
    return a
