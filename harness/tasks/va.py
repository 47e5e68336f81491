"""Valence-arousal estimation: two values in [-1, 1] per frame, scored by the mean of the two CCCs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.metric_inputs import check_finite
from harness.metrics import ccc_from_central_moments, ccc_from_moments, va_moments
from harness.tasks.base import Breakdown, LossOptions, TaskDef, TaskScores, first_bad_line

INVALID = -5.0
DIMENSIONS = ("valence", "arousal")
DECIMALS = 6  # of a prediction file's values


class ValenceArousal(TaskDef):
    name = "va"
    title = "valence-arousal estimation"
    columns = DIMENSIONS
    width = 2
    challenge_folders = ("VA_Estimation_Challenge",)
    track_list_names = ("Valence_Arousal_Estimation_Challenge_test_set_release.txt",)
    template_codes = ("VA",)
    template_dummy = "0,0"
    stats_width = 11  # n, then (sum_x, sum_y, sum_xx, sum_yy, sum_xy) for valence and for arousal
    label_form = "two numbers 'valence,arousal'"
    value_form = "valence,arousal"
    fields = 3
    metric_name = "mean CCC"
    breakdown_names = ("ccc_valence", "ccc_arousal")

    # -- annotation files
    def parse_labels(self, path: Path, body) -> np.ndarray:
        values = np.empty((len(body), 2), dtype=np.float32)
        for index, line in enumerate(body):
            fields = line.split(",")
            try:
                if len(fields) != 2:
                    raise ValueError
                values[index] = float(fields[0]), float(fields[1])
            except ValueError:
                raise DataError(
                    f"{path}, line {index + 2}: expected {self.label_form}, found '{line.strip()}'"
                ) from None
        bad = (values != INVALID) & ~((values >= -1.0) & (values <= 1.0))  # NaN fails the range test too
        if bad.any():
            raise first_bad_line(path, body, bad, "VA values must lie in [-1, 1] (or be -5 for an invalid frame)")
        return values

    def format_labels(self, labels: np.ndarray) -> list[str]:
        return [f"{v:.3f},{a:.3f}" if v != INVALID and a != INVALID else "-5,-5" for v, a in labels.tolist()]

    def valid(self, labels: np.ndarray) -> np.ndarray:
        return ~np.any(labels == INVALID, axis=1)

    def invalid_labels(self, n: int) -> np.ndarray:
        return np.full((n, 2), INVALID, np.float32)

    # -- models
    def prior(self, valid_targets: np.ndarray) -> np.ndarray:
        return valid_targets.mean(0).astype(np.float32)

    def decide(self, outputs: np.ndarray) -> np.ndarray:
        return np.asarray(outputs)

    def activate(self, raw):
        import torch

        return torch.tanh(raw)

    def train_outputs(self, raw):
        import torch

        return torch.tanh(raw)

    def criterion(self, valid_targets: np.ndarray, options: LossOptions):
        from harness.models.training import FunctionLoss, ccc_loss, rmse_loss

        return FunctionLoss(ccc_loss if options.va_loss == "ccc" else rmse_loss)

    def target_tensor(self, targets: np.ndarray):
        import torch

        return torch.as_tensor(targets, dtype=torch.float32)

    def one_hot_targets(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(targets, dtype=np.float64)

    def sample_weights(self, valid_targets: np.ndarray) -> np.ndarray:
        return np.ones(len(valid_targets))

    def window_target(self, step_targets: np.ndarray, labelled: np.ndarray) -> np.ndarray:
        weights = labelled[:, :, None].astype(np.float64)
        return ((step_targets * weights).sum(1) / weights.sum(1)).astype(np.float64)

    # -- metric
    def check_pair(self, pred: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        p = self.check_predictions(pred, "VA predictions")
        lab = np.asarray(labels, dtype=np.float64)
        if lab.ndim != 2 or lab.shape[1] != 2:
            raise ValueError(f"VA labels must have shape (n, 2) with columns valence, arousal; got {lab.shape}")
        if p.shape[0] != lab.shape[0]:
            raise ValueError(
                f"VA predictions have {p.shape[0]} rows but labels have {lab.shape[0]}; need one per frame"
            )
        check_finite(lab, "VA labels")
        return p, np.ascontiguousarray(lab)

    def check_predictions(self, pred: Any, what: str) -> np.ndarray:
        p = np.asarray(pred, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 2:
            raise ValueError(f"{what} must have shape (n, 2) with columns valence, arousal; got {p.shape}")
        check_finite(p, what)
        return np.ascontiguousarray(p)

    def track_statistics(self, pred: np.ndarray, labels: np.ndarray, track: np.ndarray, n_tracks: int) -> np.ndarray:
        valid = self.valid(labels)
        t = track[valid]
        out = np.empty((n_tracks, self.stats_width))
        out[:, 0] = np.bincount(t, minlength=n_tracks)
        for d in range(2):
            x, y = pred[:, d][valid], labels[:, d][valid]  # masking 1-D columns is much faster than (n, 2) rows
            for j, w in enumerate((x, y, x * x, y * y, x * y)):
                out[:, 1 + 5 * d + j] = np.bincount(t, weights=w, minlength=n_tracks)
        return out

    def frames_from_stats(self, stats: np.ndarray) -> np.ndarray:
        return stats[..., 0]

    def scores_from_stats(self, summed: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        cv = ccc_from_moments(*(summed[..., i] for i in (0, 1, 2, 3, 4, 5)))
        ca = ccc_from_moments(*(summed[..., i] for i in (0, 6, 7, 8, 9, 10)))
        return (cv + ca) / 2, {"ccc_valence": cv, "ccc_arousal": ca}

    @property
    def part_labels(self) -> dict[str, tuple[str, ...]]:
        return {}

    # -- chance level
    def constant_predictions(self, train_valid: np.ndarray) -> dict[str, np.ndarray]:
        """The train mean (any constant scores CCC 0: it has no covariance with the labels)."""
        return {"train mean": self.prior(train_valid)}

    # -- score reports
    heading = "Valence-arousal (mean CCC)"
    part_titles = {"ccc_valence": "CCC valence", "ccc_arousal": "CCC arousal"}
    part_abbrevs = {"ccc_valence": "V", "ccc_arousal": "A"}

    def scores(self, pred: Any, labels: Any) -> TaskScores:
        """Pooled score from centred moments (one blocked pass; raw sums would lose digits on 2.6 M frames)."""
        p, lab = self.check_pair(pred, labels)
        n, mean_p, mean_l, var_p, var_l, cov = va_moments(p, lab, self.valid)
        if n == 0:
            raise ValueError("VA labels have no valid frame (every row has -5); nothing to score")
        cv, ca = (float(c) for c in ccc_from_central_moments(mean_p, mean_l, var_p, var_l, cov))
        return TaskScores((cv + ca) / 2, int(n), Breakdown({"ccc_valence": cv, "ccc_arousal": ca}, {}))

    # -- prediction file values
    value_dtype = np.float64
    value_expected = "two numbers"
    value_range = "finite values in [-1, 1]"
    value_kinds = {
        "not_a_number": "VA values that are not numbers",
        "non_finite": "VA values that are NaN or infinite",
        "out_of_range": "VA values outside [-1, 1]",
    }
    unparsed_kind = "not_a_number"
    writable_form = "finite values"  # the writer clips to [-1, 1]

    def array_ok(self, array: np.ndarray) -> bool:
        return array.ndim == 2 and array.shape[1] == 2 and array.dtype.kind in "fiu"

    def array_form(self, need: int) -> str:
        return f"real numbers of shape (n_frames, 2) (valence, arousal) with n_frames >= {need}"

    def range_problems(self, values: np.ndarray) -> dict[str, np.ndarray]:
        finite = np.isfinite(values).all(axis=1)
        return {"non_finite": ~finite, "out_of_range": finite & (np.abs(values) > 1).any(axis=1)}

    def unwritable(self, rows: np.ndarray) -> np.ndarray:
        return ~np.isfinite(rows).all(axis=1)

    def format_rows(self, locations, rows: np.ndarray) -> str:
        """Values clipped to [-1, 1] with :data:`DECIMALS` decimals (at most 5e-7 from the float64 value)."""
        values = np.clip(rows, -1.0, 1.0)
        values[np.abs(values) <= 0.5 * 10.0**-DECIMALS] = 0.0  # never write "-0.000000" (5e-7 itself rounds to it)
        row = f"{{}},{{:.{DECIMALS}f}},{{:.{DECIMALS}f}}\n".format
        return "".join(map(row, locations, values[:, 0].tolist(), values[:, 1].tolist()))

    # -- neural kinds and `abaw predict`
    audio_step_rate = 5.0

    def stored_outputs(self, train_outputs):
        return train_outputs

    @property
    def csv_columns(self) -> tuple[str, ...]:
        return DIMENSIONS

    def csv_fields(self, outputs: np.ndarray) -> list[str]:
        return [f"{v:.4f},{a:.4f}" for v, a in self.decide(outputs).tolist()]

    # -- closed-form and fusion kinds
    problem = "regression"

    def from_one_hot(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows)

    def clip_scores(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(scores, -1.0, 1.0)

    def outputs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(scores, -1.0, 1.0).astype(np.float32)
