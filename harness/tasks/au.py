"""Action unit detection: 12 binary AUs per frame, scored by the mean over AUs of each AU's pooled binary F1.

6th ABAW (Aff-Wild2): ``AU_Detection_Challenge/{Train_Set,Validation_Set}/TRACK.txt``, header
``AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26``, one line of 12 comma-separated 0/1 values per frame, a line
holding -1 invalid. Models output 12 probabilities; the hard prediction is each at or above 0.5 (a fusion that chose
its own per-AU thresholds stores its probabilities mapped so that each threshold lands at 0.5:
:func:`harness.fusion_math.threshold_at_half`).
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.metric_inputs import check_finite
from harness.tasks.base import LossOptions, TaskDef, first_bad_line

UNITS = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26")
INVALID = -1
A = len(UNITS)
THRESHOLD = 0.5


class ActionUnits(TaskDef):
    name = "au"
    title = "action unit detection"
    columns = UNITS
    width = A
    challenge_folders = ("AU_Detection_Challenge",)
    track_list_names = ("Action_Unit_Detection_Challenge_test_set_release.txt",)
    template_codes = ("AU",)
    template_dummy = ",".join("0" * A)
    stats_width = 1 + 3 * A  # valid frames, then per AU: true positives, false positives, false negatives
    label_form = f"{A} comma-separated 0/1 values (or -1 for an invalid frame)"
    value_form = ",".join(["0/1"] * A)
    fields = 1 + A
    metric_name = "mean AU F1"
    breakdown_names = ("f1_per_au",)

    # -- annotation files
    def parse_labels(self, path: Path, body) -> np.ndarray:
        labels = np.empty((len(body), A), dtype=np.int8)
        for index, line in enumerate(body):
            fields = line.split(",")
            try:
                if len(fields) != A:
                    raise ValueError
                labels[index] = [int(field) for field in fields]
            except (ValueError, OverflowError):
                raise DataError(
                    f"{path}, line {index + 2}: expected {self.label_form}, found '{line.strip()}'"
                ) from None
        bad = (labels < INVALID) | (labels > 1)
        if bad.any():
            raise first_bad_line(path, body, bad, "AU values must be 0 or 1 (or -1 for an invalid frame)")
        return labels

    def format_labels(self, labels: np.ndarray) -> list[str]:
        return [",".join(map(str, row)) for row in np.asarray(labels, np.int64).tolist()]

    def valid(self, labels: np.ndarray) -> np.ndarray:
        return ~np.any(labels == INVALID, axis=1)

    def invalid_labels(self, n: int) -> np.ndarray:
        return np.full((n, A), INVALID, np.int8)

    # -- models
    def prior(self, valid_targets: np.ndarray) -> np.ndarray:
        return np.asarray(valid_targets, np.float32).mean(0) if len(valid_targets) else np.zeros(A, np.float32)

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        return (np.asarray(outputs) >= THRESHOLD).astype(np.int8)

    def activate(self, raw):
        import torch

        return torch.sigmoid(raw)

    def train_outputs(self, raw):
        return raw

    def criterion(self, valid_targets: np.ndarray, options: LossOptions):
        import torch
        from torch import nn

        weight = torch.as_tensor(self.positive_weights(valid_targets), dtype=torch.float32)
        return nn.BCEWithLogitsLoss(pos_weight=weight if options.class_weighted else None)

    def positive_weights(self, valid_targets: np.ndarray) -> np.ndarray:
        """Per AU, negatives / positives over the valid training frames (capped at 50; 1 when an AU never occurs)."""
        targets = np.asarray(valid_targets, np.float64)
        positives = targets.sum(0)
        negatives = len(targets) - positives
        return np.where(positives > 0, np.minimum(negatives / np.maximum(positives, 1), 50.0), 1.0)

    def target_tensor(self, targets: np.ndarray):
        import torch

        return torch.as_tensor(targets, dtype=torch.float32)

    def one_hot_targets(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets, dtype=np.float64)

    def sample_weights(self, valid_targets: np.ndarray) -> np.ndarray:
        return np.ones(len(valid_targets))

    def window_target(self, step_targets: np.ndarray, labelled: np.ndarray) -> np.ndarray:
        """Per AU, whether it is on in most labelled steps of the window."""
        weights = labelled[:, :, None].astype(np.float64)
        share = (np.maximum(step_targets, 0) * weights).sum(1) / np.maximum(weights.sum(1), 1)
        return (share >= 0.5).astype(np.float64)

    # -- metric
    def check_pair(self, pred: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        p = self.check_predictions(pred, "AU predictions")
        lab = np.asarray(labels)
        if lab.ndim != 2 or lab.shape[1] != A:
            raise ValueError(f"AU labels must have shape (n, {A}) with columns {','.join(UNITS)}; got {lab.shape}")
        if p.shape[0] != lab.shape[0]:
            raise ValueError(
                f"AU predictions have {p.shape[0]} rows but labels have {lab.shape[0]}; need one per frame"
            )
        bad = ~np.isin(lab, (INVALID, 0, 1))
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ValueError(f"AU labels must be 0, 1 or -1; row {row} holds {lab[row].tolist()}")
        return p, lab.astype(np.int8, copy=False)

    def check_predictions(self, pred: Any, what: str) -> np.ndarray:
        p = np.asarray(pred)
        if p.ndim != 2 or p.shape[1] != A:
            raise ValueError(
                f"{what} must have shape (n, {A}), one 0/1 column per AU ({','.join(UNITS)}); got {p.shape}"
            )
        if p.dtype.kind == "f":
            check_finite(p, what)
        elif p.dtype.kind not in "iub":
            raise ValueError(f"{what} must be 0/1 numbers; got dtype {p.dtype}")
        bad = (p != 0) & (p != 1)
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ValueError(
                f"{what} must be 0 or 1 per AU (threshold probabilities first); {int(bad.any(axis=1).sum())} row(s) "
                f"are not, the first at row {row}: {p[row].tolist()}"
            )
        return p.astype(np.int8, copy=False)

    def track_statistics(self, pred: np.ndarray, labels: np.ndarray, track: np.ndarray, n_tracks: int) -> np.ndarray:
        valid = self.valid(labels)
        t, p, y = track[valid], pred[valid].astype(bool), labels[valid].astype(bool)
        out = np.empty((n_tracks, self.stats_width))
        out[:, 0] = np.bincount(t, minlength=n_tracks)
        for unit in range(A):
            for j, hit in enumerate((p[:, unit] & y[:, unit], p[:, unit] & ~y[:, unit], ~p[:, unit] & y[:, unit])):
                out[:, 1 + 3 * unit + j] = np.bincount(t[hit], minlength=n_tracks)
        return out

    def frames_from_stats(self, stats: np.ndarray) -> np.ndarray:
        return stats[..., 0]

    def scores_from_stats(self, summed: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        counts = summed[..., 1:].reshape(*summed.shape[:-1], A, 3)
        tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
        denom = 2 * tp + fp + fn
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=np.float64), where=denom > 0)
        return f1.mean(axis=-1), {"f1_per_au": f1}

    # -- chance level
    def constant_predictions(self, train_valid: np.ndarray) -> dict[str, np.ndarray]:
        """Every AU on (per AU the better constant: always off scores F1 0)."""
        return {"every AU on": np.ones(A, np.int8)}

    # -- score reports
    heading = "Action units (mean AU F1)"
    part_titles = {"f1_per_au": "F1 per AU"}
    part_abbrevs = {"f1_per_au": "F1"}

    @property
    def part_labels(self) -> dict[str, tuple[str, ...]]:
        return {"f1_per_au": UNITS}

    # -- prediction file values
    value_dtype = np.int64
    value_expected = f"{A} comma-separated values 0 or 1"
    value_range = "0 or 1 per AU"
    value_kinds = {
        "not_an_integer": "AU values that are not integers",
        "au_out_of_range": "AU values other than 0 and 1",
    }
    unparsed_kind = "not_an_integer"

    def array_ok(self, array: np.ndarray) -> bool:
        return array.ndim == 2 and array.shape[1] == A and array.dtype.kind in "fiub"

    def array_form(self, need: int) -> str:
        return (
            f"0/1 values of shape (n_frames, {A}) ({','.join(UNITS)}) with n_frames >= {need} "
            f"(threshold the probabilities)"
        )

    def range_problems(self, values: np.ndarray) -> dict[str, np.ndarray]:
        return {"au_out_of_range": ((values != 0) & (values != 1)).any(axis=1)}

    def format_rows(self, locations, rows: np.ndarray) -> str:
        """Rows of 0/1 (the writer checked them) as ``,0,1,...`` text built from bytes: no Python object per value."""
        text = np.empty((len(rows), 2 * A + 1), np.uint8)
        text[:, 0:-1:2] = ord(",")
        text[:, 1::2] = np.asarray(rows) + ord("0")
        text[:, -1] = ord("\n")
        suffixes = text.view(f"S{2 * A + 1}").ravel().astype(f"U{2 * A + 1}").tolist()
        return "".join(map(operator.add, locations, suffixes))

    # -- neural kinds and `abaw predict`
    audio_step_rate = 5.0  # as VA: AUs are frame-level events, often shorter than a second

    def stored_outputs(self, train_outputs):
        import torch

        return torch.sigmoid(train_outputs)

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return UNITS

    def csv_fields(self, outputs: np.ndarray) -> list[str]:
        return [",".join(map(str, row)) for row in self.decide(outputs).tolist()]

    # -- closed-form and fusion kinds
    problem = "multilabel"

    def from_one_hot(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows).astype(np.int8)

    def clip_scores(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(scores, 0.0, 1.0)

    def outputs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(scores, 0.0, 1.0).astype(np.float32)
