"""What a challenge task is to the harness: :class:`TaskDef`, the one place that knows a task's formats and metric.

Kinds, scoring, validation, the submission writer, the leaderboard, reports and the CLI hold a task *name* and ask its
definition (:func:`harness.tasks.get_task`); no code outside ``harness/tasks/`` branches on a name. A definition covers
the annotation files (folder names per release, header, label parsing, invalid marker), the models' side (output
width, activation, training loss and weighting, the train prior, the hard decision taken from outputs), the metric
from per-track additive sufficient statistics (so that the bootstrap, paired test, drift guard and leaderboard work
for any task), a typed breakdown, and the prediction file (header, row form, release file names).

Torch is imported inside the methods that need it, so commands that never train never import it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from harness.errors import DataError

if TYPE_CHECKING:
    import torch

SPLIT_FOLDERS = {"train": "Train_Set", "validation": "Validation_Set", "test": "Test_Set"}


def ordinal(number: int) -> str:
    """``6`` → ``'6th'``."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


@dataclass(frozen=True, slots=True)
class Breakdown:
    """A score's parts, named per task: ``parts`` maps a key (``ccc_valence``, ``f1_per_class``, ...) to a float or a
    tuple of floats, ``labels`` names the entries of each tuple (class or AU names), in order."""

    parts: Mapping[str, float | tuple[float, ...]]
    labels: Mapping[str, tuple[str, ...]]

    def to_dict(self) -> dict[str, float | list[float]]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in self.parts.items()}


@dataclass(frozen=True, slots=True)
class TaskScores:
    """A pooled task score over ``frames`` frames with a valid label, and its breakdown."""

    score: float
    frames: int
    breakdown: Breakdown

    def __getattr__(self, key: str) -> Any:
        """Breakdown parts read as attributes (``scores.ccc_valence``, ``scores.f1_per_class``)."""
        try:
            return self.breakdown.parts[key]
        except KeyError:
            raise AttributeError(key) from None


@dataclass(frozen=True, slots=True)
class Chance:
    """What trivial predictions score on a split, scored as real predictions are: ``constant`` is the best constant
    prediction's score (``constant_name`` says which), ``sampled`` the mean score of predictions drawn from the train
    labels (the train prior); ``level`` is the higher of the two, the score a system must beat to have learnt."""

    level: float
    constant: float
    constant_name: str
    sampled: float

    def describe(self) -> str:
        """``'0.0123 (best constant: always Neutral 0.0123; prior-sampled 0.0110)'``."""
        return (
            f"{self.level:.4f} (best constant: {self.constant_name} {self.constant:.4f}; "
            f"prior-sampled {self.sampled:.4f})"
        )

    def to_dict(self) -> dict[str, float | str]:
        return {
            "level": self.level,
            "constant": self.constant,
            "constant_name": self.constant_name,
            "sampled": self.sampled,
        }


CHANCE_DRAWS = 5  # prior-sampled predictions scored per chance level (their mean is the sampled score)


@dataclass(frozen=True)
class LossOptions:
    """A kind's choices for its training loss; each task reads the ones that concern it."""

    va_loss: str = "ccc"  # "ccc" or "rmse"
    focal_gamma: float | None = None  # None: weighted cross-entropy / BCE; else the focal exponent
    class_weighted: bool = True
    label_smoothing: float = 0.0  # EXPR's cross-entropy (without focal_gamma) only


class TaskDef(ABC):
    """One ABAW challenge task. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]  # 'va', 'expr', 'au': store keys, CLI, leaderboard rows
    title: ClassVar[str]  # 'valence-arousal estimation'
    columns: ClassVar[tuple[str, ...]]  # the annotation file's header fields, in order
    width: ClassVar[int]  # columns of a model's output per frame
    challenge_folders: ClassVar[tuple[str, ...]]  # annotation folder names, newest release first
    track_list_names: ClassVar[tuple[str, ...]]  # test track list file names, newest release first
    template_codes: ClassVar[tuple[str, ...]]  # the <TASK> of CVPR_<N>th_ABAW_<TASK>_test_set_sample.txt
    template_dummy: ClassVar[str]  # the values of a template row after the location
    stats_width: ClassVar[int]  # columns of one track's sufficient statistics
    label_form: ClassVar[str]  # one label line, for messages
    value_form: ClassVar[str]  # a prediction row's values, for messages
    fields: ClassVar[int]  # comma-separated fields of a prediction row, location included
    metric_name: ClassVar[str]  # 'mean CCC', 'macro F1', 'mean AU F1'
    breakdown_names: ClassVar[tuple[str, ...]]  # the keys a score result and a leaderboard row carry

    # -- annotation files ---------------------------------------------------------------------------------------
    @property
    def annotation_header(self) -> str:
        return ",".join(self.columns)

    @property
    def prediction_header(self) -> str:
        return "image_location," + self.annotation_header

    @abstractmethod
    def parse_labels(self, path: Path, body: Sequence[str]) -> np.ndarray:
        """Label lines (after the header) as an array, one row per frame; a :class:`DataError` names a bad line."""

    @abstractmethod
    def format_labels(self, labels: np.ndarray) -> list[str]:
        """One annotation line per row (the inverse of :meth:`parse_labels`)."""

    @abstractmethod
    def valid(self, labels: np.ndarray) -> np.ndarray:
        """Mask of frames whose label counts for training and scoring."""

    @abstractmethod
    def invalid_labels(self, n: int) -> np.ndarray:
        """``n`` rows of the invalid marker, in the label dtype and shape."""

    # -- models -------------------------------------------------------------------------------------------------
    @abstractmethod
    def prior(self, valid_targets: np.ndarray) -> np.ndarray:
        """``(width,)`` float32: what a model without input answers (train mean, class or AU frequencies)."""

    @abstractmethod
    def decide(self, outputs: np.ndarray) -> np.ndarray:
        """Hard predictions (what the metric and prediction files take) from ``(n, width)`` stored outputs."""

    @abstractmethod
    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        """Stored outputs from a head's raw outputs: values, class probabilities or AU probabilities."""

    @abstractmethod
    def train_outputs(self, raw: torch.Tensor) -> torch.Tensor:
        """What the loss takes from a head's raw outputs (bounded values for VA, logits otherwise)."""

    @abstractmethod
    def criterion(self, valid_targets: np.ndarray, options: LossOptions) -> torch.nn.Module:
        """The training loss, weighted from the valid training targets; called as ``loss(train_outputs, target)``."""

    @abstractmethod
    def target_tensor(self, targets: np.ndarray) -> torch.Tensor:
        """Targets as the loss takes them (float for values and AUs, long for classes)."""

    @abstractmethod
    def one_hot_targets(self, targets: np.ndarray) -> np.ndarray:
        """``(n, width)`` float regression targets for closed-form learners (values, one-hot classes, 0/1 AUs)."""

    @abstractmethod
    def sample_weights(self, valid_targets: np.ndarray) -> np.ndarray:
        """Per-row weights balancing the targets (1 where the task has no imbalance to correct)."""

    @abstractmethod
    def window_target(self, step_targets: np.ndarray, labelled: np.ndarray) -> np.ndarray:
        """``(n_windows, width)`` targets of windows from ``(n_windows, steps, ...)`` targets and validity masks."""

    # -- metric -------------------------------------------------------------------------------------------------
    @abstractmethod
    def check_pair(self, pred: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated hard predictions and labels with one row per frame each (``ValueError`` naming the problem)."""

    @abstractmethod
    def check_predictions(self, pred: Any, what: str) -> np.ndarray:
        """Validated hard predictions alone (``ValueError`` naming ``what`` and the problem)."""

    @abstractmethod
    def track_statistics(self, pred: np.ndarray, labels: np.ndarray, track: np.ndarray, n_tracks: int) -> np.ndarray:
        """``(n_tracks, stats_width)`` float64 additive sufficient statistics of checked arrays."""

    @abstractmethod
    def frames_from_stats(self, stats: np.ndarray) -> np.ndarray:
        """Valid-frame counts from statistics ``(..., stats_width)``."""

    @abstractmethod
    def scores_from_stats(self, summed: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Scores ``(...)`` and their named parts from summed statistics ``(..., stats_width)``."""

    @property
    @abstractmethod
    def part_labels(self) -> dict[str, tuple[str, ...]]:
        """For each vector part of the breakdown, the names of its entries."""

    def breakdown(self, parts: Mapping[str, np.ndarray]) -> Breakdown:
        """Typed breakdown from :meth:`scores_from_stats`'s parts of one pooled score."""
        clean = {
            key: tuple(float(v) for v in np.ravel(value)) if key in self.part_labels else float(value)
            for key, value in parts.items()
        }
        return Breakdown(clean, self.part_labels)

    def scores(self, pred: Any, labels: Any) -> TaskScores:
        """The pooled ABAW score of hard predictions against labels, frames with an invalid label left out."""
        p, lab = self.check_pair(pred, labels)
        stats = self.track_statistics(p, lab, np.zeros(len(p), np.intp), 1)[0]
        frames = int(self.frames_from_stats(stats))
        if frames == 0:
            raise ValueError(f"{self.name.upper()} labels have no valid frame; nothing to score")
        score, parts = self.scores_from_stats(stats)
        return TaskScores(float(score), frames, self.breakdown(parts))

    # -- chance level -------------------------------------------------------------------------------------------
    @abstractmethod
    def constant_predictions(self, train_valid: np.ndarray) -> dict[str, np.ndarray]:
        """The constant predictions worth trying, by name: one hard prediction (one row of :meth:`check_predictions`'s
        form) each, e.g. the train mean, each single class, every AU on; ``train_valid`` are the valid train labels."""

    def chance(self, labels: np.ndarray, train_labels: np.ndarray, seed: int = 0) -> Chance:
        """The chance level of a split's ``labels``: the higher of the best constant prediction's score and the mean
        score of :data:`CHANCE_DRAWS` predictions drawn frame by frame from the valid ``train_labels`` (seeded, so
        the level is reproducible), all scored by :meth:`scores` like real predictions. Pure: labels in, level out."""
        labels = np.asarray(labels)
        train_valid = np.asarray(train_labels)[self.valid(np.asarray(train_labels))]
        if len(train_valid) == 0:
            raise ValueError(f"{self.name.upper()} train labels have no valid frame; no prior to draw from")
        n = len(labels)
        constants = {
            name: self.scores(np.repeat(np.asarray(row)[None], n, axis=0), labels).score
            for name, row in self.constant_predictions(train_valid).items()
        }
        best = max(constants, key=constants.__getitem__)
        rng = np.random.default_rng(seed)
        draws = [
            self.scores(train_valid[rng.integers(len(train_valid), size=n)], labels).score for _ in range(CHANCE_DRAWS)
        ]
        sampled = float(np.mean(draws))
        return Chance(max(constants[best], sampled), constants[best], best, sampled)

    # -- score reports: how a result is shown, what a record derives from its statistics ----------------------
    heading: ClassVar[str]  # a report's section title: 'Valence-arousal (mean CCC)'
    part_titles: ClassVar[dict[str, str]]  # breakdown key -> its name in a score line: 'CCC valence', 'F1 per class'
    part_abbrevs: ClassVar[dict[str, str]]  # breakdown key -> its short name in a ranking cell: 'V', 'F1'

    def score_line(self, result: Mapping[str, Any]) -> str:
        """The breakdown of a score result in one line, as ``abaw score`` prints it (``CCC valence 0.4100, CCC
        arousal 0.3700``; ``F1 per class: Neutral 0.512, ...``)."""
        pieces = []
        for key in self.breakdown_names:
            if key in self.part_labels:
                pairs = zip(self.part_labels[key], result[key], strict=True)
                pieces.append(f"{self.part_titles[key]}: " + ", ".join(f"{name} {value:.3f}" for name, value in pairs))
            else:
                pieces.append(f"{self.part_titles[key]} {result[key]:.4f}")
        return ", ".join(pieces)

    def breakdown_cell(self, details: Mapping[str, Any]) -> str:
        """The breakdown of a recorded result in a ranking table's cell: scalar parts (``V 0.410 · A 0.370``), and of a
        vector part its lowest and highest entry (``F1 0.12 (Fear) to 0.80 (Happiness)``; missing entries skipped)."""
        pieces = []
        for key in self.breakdown_names:
            short = self.part_abbrevs[key]
            if key in self.part_labels:
                names = self.part_labels[key]
                values = [math.nan if value is None else value for value in details[key]]
                low, high = int(np.nanargmin(values)), int(np.nanargmax(values))
                pieces.append(f"{short} {values[low]:.2f} ({names[low]}) to {values[high]:.2f} ({names[high]})")
            else:
                pieces.append(f"{short} {details[key]:.3f}")
        return " · ".join(pieces)

    def confusion_matrix(self, summed: np.ndarray) -> np.ndarray | None:
        """The ``(k, k)`` int64 confusion matrix (rows = true class, columns in :attr:`columns` order) that summed
        statistics hold, for a task whose statistics are one; None for the others."""
        return None

    # -- prediction files ---------------------------------------------------------------------------------------
    @property
    def row_form(self) -> str:
        return f"'TRACK/00001.jpg,{self.value_form}'"

    def submission_name(self, round_: int | None) -> str:
        """The prediction file's name for a release round (6th ABAW when unknown)."""
        return f"CVPR_{ordinal(round_ or 6)}_ABAW_{self.submission_code(round_ or 6)}_test_set.txt"

    def submission_code(self, round_: int) -> str:
        """The ``<TASK>`` of the release's file names (the organizers' capitalisation changed between rounds)."""
        return self.template_codes[0]

    def split_folder(self, challenge: Path, split: str) -> Path:
        return challenge / SPLIT_FOLDERS[split]

    # -- prediction file values: what the submission writer, reader and validator check ---------------------------
    value_dtype: ClassVar[type]  # a prediction file's parsed values: np.float64 or np.int64 (one field: 1-D)
    value_expected: ClassVar[str]  # what a row holds after its location, for messages ('two numbers')
    value_range: ClassVar[str]  # the values a scored file may hold, for messages ('finite values in [-1, 1]')
    value_kinds: ClassVar[Mapping[str, str]]  # the validator's problem kinds about values (kind → description)
    unparsed_kind: ClassVar[str]  # the kind (of value_kinds) of a value that does not parse
    whole_float_values: ClassVar[bool] = False  # whether '4.0' may be read leniently as the integer 4
    wide_row_hint: ClassVar[str] = ""  # the hint for a row holding one field per model output column
    folder_releases: ClassVar[Mapping[str, str]] = {}  # challenge folder name → the release it tells, if it does

    @property
    def value_fields(self) -> int:
        """Comma-separated value fields of a prediction row, after the location."""
        return self.fields - 1

    @abstractmethod
    def array_ok(self, array: np.ndarray) -> bool:
        """Whether a track's prediction array has the dtype and shape the writer takes."""

    @abstractmethod
    def array_form(self, need: int) -> str:
        """The prediction array the writer takes for a track of ``need`` frames, for messages."""

    @abstractmethod
    def range_problems(self, values: np.ndarray) -> dict[str, np.ndarray]:
        """Per kind of :attr:`value_kinds`, the row mask of parsed values outside what a file may hold (NaN too)."""

    def unwritable(self, rows: np.ndarray) -> np.ndarray:
        """Row mask of predictions the writer refuses (default: any of :meth:`range_problems`)."""
        return np.logical_or.reduce(list(self.range_problems(rows).values()))

    @property
    def writable_form(self) -> str:
        """What the writer accepts, for messages (default: :attr:`value_range`)."""
        return self.value_range

    @abstractmethod
    def format_rows(self, locations: Sequence[str], rows: np.ndarray) -> str:
        """The body of a prediction file: one line per location with its row of ``rows`` (``value_dtype``)."""

    # -- neural kinds and `abaw predict` ------------------------------------------------------------------------
    audio_step_rate: ClassVar[float]  # target steps a second of the audio kind's windows

    @abstractmethod
    def stored_outputs(self, train_outputs: torch.Tensor) -> torch.Tensor:
        """Stored outputs from :meth:`train_outputs` (for heads that apply it in their forward, e.g. before pooling
        over time): ``activate(raw) == stored_outputs(train_outputs(raw))``."""

    @property
    @abstractmethod
    def csv_columns(self) -> tuple[str, ...]:
        """The columns of this task in ``abaw predict``'s frame-level CSV."""

    @abstractmethod
    def csv_fields(self, outputs: np.ndarray) -> list[str]:
        """Per row of ``(n, width)`` stored outputs, its :attr:`csv_columns` values, comma-joined."""

    # -- closed-form and fusion kinds ---------------------------------------------------------------------------
    problem: ClassVar[str]  # "regression" (values per column), "multiclass" (one class), "multilabel" (0/1 per column)

    @abstractmethod
    def from_one_hot(self, rows: np.ndarray) -> np.ndarray:
        """Targets in label form from :meth:`one_hot_targets` rows (its inverse), e.g. for :meth:`sample_weights`."""

    @abstractmethod
    def clip_scores(self, scores: np.ndarray) -> np.ndarray:
        """A regressor's scores of :meth:`one_hot_targets` brought into the outputs' range where :meth:`decide` needs
        it (VA values clipped to [-1, 1], AU probabilities to [0, 1]; EXPR scores as they are, their argmax decides)."""

    @abstractmethod
    def outputs_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Stored float32 outputs from a regressor's scores of :meth:`one_hot_targets` (values, a class distribution,
        AU probabilities), so that fusion can weigh them like a neural kind's."""


def read_fields(path: Path, body: Sequence[str], count: int, form: str) -> np.ndarray:
    """Label lines split into ``count`` comma-separated string fields, ``(n, count)``; a line with another count is
    a :class:`DataError` naming the file, the line and the expected form."""
    rows = [line.split(",") for line in body]
    for index, fields in enumerate(rows):
        if len(fields) != count:
            raise DataError(f"{path}, line {index + 2}: expected {form}, found '{body[index].strip()}'")
    return np.array(rows, dtype=object).reshape(len(rows), count)


def first_bad_line(path: Path, body: Sequence[str], bad: np.ndarray, expected: str) -> DataError:
    """The error for the first label line flagged in ``bad`` (rows may be ``(n,)`` or ``(n, k)``)."""
    row = int(np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))[0])
    return DataError(f"{path}, line {row + 2}: {expected}, found '{body[row].strip()}'")
