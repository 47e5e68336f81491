"""Late fusion kinds fitted on the validation split (SUN team, ABAW 2024, arXiv 2403.12609): ``dwf`` and ``rf``.

``dwf`` (Dirichlet-based random weighted fusion): S candidate weight matrices (inputs × outputs) drawn from
Dirichlet(α) with the spec's seed, plus each input alone and the plain average; the fused output is
``Σ_m w[m, k] · p_m[:, k]`` and the candidate with the best validation score wins (closed-form CCC for VA, blocked
argmax counts for EXPR: :mod:`harness.fusion_math`). For AU every unit chooses its own weight column and its own
decision threshold (:data:`~harness.fusion_math.AU_THRESHOLDS`) for its F1, the unit's score being independent of the
others'; ``pred`` stores the fused probabilities mapped per unit so that its threshold lands at 0.5
(:func:`~harness.fusion_math.threshold_at_half`): the task's decision (>= 0.5), which scoring and the submission
writer take, is the thresholded one, and the values keep their order for a fusion on top. An optional per-input
entropy gate zeroes an input's EXPR rows whose class probabilities are too unsure (the paper gated audio this way).

``rf`` (random-forest fusion): VA, one regressor per dimension on the inputs' predictions of that dimension; AU, one
classifier per unit on the inputs' probabilities of that unit, with balanced class weights (its stored output is the
probability of the unit being on, decided at 0.5); EXPR, one classifier on the inputs' concatenated class
probabilities with balanced class weights. Tree count and criterion are chosen by the out-of-bag challenge score
(CCC, the unit's F1, macro-F1); training frames are a seeded subsample.

What differs between tasks is asked of the task (:mod:`harness.tasks`): its output width, which frames are valid, and
its ``problem`` ("regression", "multiclass", "multilabel"), which picks the search and the forests.

An input that was itself fitted on validation (``kelm``, another fusion) is fused through its cross-fitted validation
predictions. Both kinds fit on the validation split, so their validation score is optimistic. Each also yields the
``honest`` output for validation (:data:`harness.models.context.HONEST`): the whole fit repeated on K folds of whole
videos, each fold's tracks predicted by the fit that never saw them. The runner scores it beside ``pred`` and ranks
by it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Annotated

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from harness.errors import SpecError, StoreError
from harness.fusion_math import (
    au_best_choices,
    corner_candidates,
    dirichlet_candidates,
    entropy_gate,
    expr_candidate_scores,
    fuse,
    normalise_rows,
    threshold_at_half,
    va_candidate_scores,
    va_moments,
    video_folds,
)
from harness.metrics import ccc, confusion_counts, f1_from_confusion
from harness.models.context import HONEST, Context
from harness.models.registry import Kind, register_kind
from harness.tasks import Task, TaskDef, get_task


class DWFSettings(BaseModel):
    """Settings of Dirichlet-based random weighted fusion."""

    model_config = ConfigDict(extra="forbid")

    samples: int | None = Field(None, ge=1)  # random candidates; default 1000 for 2 inputs, 2000 for 3 or more
    alpha: float = Field(1.0, gt=0)  # Dirichlet concentration: 1 = uniform over the simplex
    corners: bool = True  # also try each input alone and the plain average
    entropy_gate: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)  # EXPR (one class
    # distribution per row) only: input spec → threshold on its rows' entropy / log K; rows above it are zeroed
    folds: int = Field(5, ge=2)  # video-level folds of the honest estimate
    workers: int = Field(2, ge=1)  # threads of the EXPR and AU searches


class RFSettings(BaseModel):
    """Settings of random-forest fusion."""

    model_config = ConfigDict(extra="forbid")

    trees: list[Annotated[int, Field(ge=1)]] = Field(  # chosen by out-of-bag score
        default_factory=lambda: [50, 100, 200], min_length=1
    )
    criteria: list[str] | None = None  # default: squared_error (VA; absolute_error is slow); gini, entropy (EXPR, AU)
    # frames per leaf: one count, or one per task ({va: 500, expr: 20}); every task the spec serves needs one
    min_samples_leaf: Annotated[int, Field(ge=1)] | dict[str, Annotated[int, Field(ge=1)]] = 10
    max_rows: int = Field(100_000, ge=100)  # validation frames a forest trains on (a seeded subsample)
    folds: int = Field(5, ge=2)
    jobs: int = Field(2, ge=1)  # scikit-learn n_jobs


# Per forest type (a task's problem: regression or not): the accepted criteria, and the default ones.
REGRESSION_CRITERIA = ("squared_error", "absolute_error")
CLASSIFICATION_CRITERIA = ("gini", "entropy", "log_loss")
DEFAULT_REGRESSION_CRITERIA = ("squared_error",)
DEFAULT_CLASSIFICATION_CRITERIA = ("gini", "entropy")


class _Fusion(Kind):
    """What both fusion kinds share: reading and checking inputs, cross-fitting, predicting ``pred`` and ``honest``."""

    outputs = ("pred",)
    validation_outputs = (HONEST,)

    def __init__(self, settings: BaseModel, task: Task, seed: int) -> None:
        self.settings = settings
        self.task = task
        self.seed = seed

    @property
    def definition(self) -> TaskDef:
        return get_task(self.task)

    # -- inputs ----------------------------------------------------------------------------------------------
    def _inputs(self, context: Context) -> list[str]:
        names = list(context.inputs)
        if not names:
            raise SpecError(
                f"{self.name} ({self.task}): key 'inputs' is empty; list the specs whose predictions to fuse"
            )
        return names

    def _track_inputs(self, context: Context, split_name: str, track: str) -> list[np.ndarray]:
        """Each input's predictions of ``track``, ``(n_rows, K)`` float64, checked and cut to the track's rows.

        On validation an input that was itself fitted there offers its cross-fitted ``honest`` predictions, and those
        are fused: its in-sample ones would draw the weights toward it (stacking on out-of-fold predictions)."""
        n_rows = context.split(split_name).track(track).n_rows
        width = self.definition.width
        arrays = []
        for name in self._inputs(context):
            source = context.inputs[name]
            output = HONEST if split_name == "validation" and source.honest else "pred"
            try:
                values = np.asarray(source.read(output, split_name, track), dtype=np.float64)
            except StoreError as error:
                raise SpecError(
                    f"{self.name} ({self.task}): input spec {name!r} has no {split_name} predictions for track "
                    f"{track!r} ({error}); re-run {name!r} so that it predicts every track of the {split_name} split"
                ) from None
            if values.ndim != 2 or values.shape[1] != width:
                raise SpecError(
                    f"{self.name} ({self.task}): input spec {name!r}, track {track!r} ({split_name}): expected "
                    f"predictions of shape (n_rows, {width}), found {values.shape}"
                )
            if len(values) < n_rows:
                raise SpecError(
                    f"{self.name} ({self.task}): input spec {name!r}, track {track!r} ({split_name}): "
                    f"{len(values)} prediction rows for {n_rows} label rows; every label row needs a prediction"
                )
            values = values[:n_rows]  # rows past the last label line (a longer video) are never scored
            if not np.isfinite(values).all():
                row = int(np.argmax(~np.isfinite(values).all(axis=1)))
                raise SpecError(
                    f"{self.name} ({self.task}): input spec {name!r}, track {track!r} ({split_name}): NaN or inf "
                    f"in its predictions (first at frame {row + 1}); expected finite values"
                )
            arrays.append(values)
        return arrays

    def _validation(self, context: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validation inputs ``(M, n, K)``, labels and each frame's track number, over all label rows."""
        split = context.split("validation")
        per_track = [self._prepared(context, "validation", name) for name in split.names]
        inputs = np.concatenate([np.stack(arrays) for arrays in per_track], axis=1)
        return inputs, split.labels(), split.track_index()

    def _prepared(self, context: Context, split_name: str, track: str) -> list[np.ndarray]:
        return self._track_inputs(context, split_name, track)

    # -- fit -------------------------------------------------------------------------------------------------
    def fit(self, context: Context) -> _Fusion:
        """Fit on every validation frame, and once per fold of videos on the others (for the honest output)."""
        names = self._inputs(context)
        inputs, labels, track_index = self._validation(context)
        split = context.split("validation")
        try:
            folds = video_folds(split.names, self.settings.folds, self.seed)
        except ValueError as error:
            raise SpecError(f"{self.name} ({self.task}): key 'folds': {error}") from None
        frame_fold = folds[track_index]
        self._fit_all(inputs, labels, frame_fold, names)
        self.folds_ = folds
        return self

    # -- predict ---------------------------------------------------------------------------------------------
    def predict(
        self, context: Context, split_name: str, tracks: list[str]
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Per track: ``pred`` (the task's outputs: VA values, EXPR or AU probabilities, one row per label line); on
        validation also ``honest``, the prediction of the fold fit that did not see the track's video."""
        self._check_fitted()
        split = context.split(split_name)
        position = {name: i for i, name in enumerate(context.split("validation").names)}
        for track in tracks:
            inputs = np.stack(self._prepared(context, split_name, track))
            outputs = {"pred": self._predict_rows(inputs, None).astype(np.float32)}
            if split_name == "validation":
                outputs[HONEST] = self._honest_rows(inputs, split, track, position[track]).astype(np.float32)
            yield track, outputs

    def _check_fitted(self) -> None:
        if not hasattr(self, "folds_"):
            raise RuntimeError(f"this {self.name} system is not fitted: call fit() or load_state() first")


@register_kind("dwf")
class DWFKind(_Fusion):
    """Dirichlet-based random weighted fusion of the inputs' frame predictions, fitted on validation."""

    version = "2"
    Settings = DWFSettings
    profiles: dict[str, dict] = {"paper": {}, "smoke": {}}

    def _prepared(self, context: Context, split_name: str, track: str) -> list[np.ndarray]:
        arrays = self._track_inputs(context, split_name, track)
        if self.definition.problem == "multilabel":  # thresholds are searched on probabilities
            for name, values in zip(self._inputs(context), arrays, strict=True):
                if values.min() < 0.0 or values.max() > 1.0:
                    raise SpecError(
                        f"{self.name} ({self.task}): input spec {name!r}, track {track!r} ({split_name}): expected "
                        f"probabilities in [0, 1], found values from {values.min():.4g} to {values.max():.4g}"
                    )
        if self.definition.problem != "multiclass":  # the gate reads a class distribution per row
            return arrays
        gates = self.settings.entropy_gate
        names = self._inputs(context)
        unknown = sorted(set(gates) - set(names))
        if unknown:
            raise SpecError(
                f"{self.name} ({self.task}): key 'entropy_gate': {unknown[0]!r} is not an input of this node "
                f"(inputs: {', '.join(names)})"
            )
        return [entropy_gate(a, gates[n]) if n in gates else a for n, a in zip(names, arrays, strict=True)]

    def candidates(self, n_inputs: int) -> np.ndarray:
        """The searched weights ``(S, M, K)``: random draws, then (with ``corners``) each input alone and the mean."""
        s = self.settings
        count = s.samples if s.samples is not None else (1000 if n_inputs <= 2 else 2000)
        rng = np.random.default_rng(self.seed)
        width = self.definition.width
        drawn = dirichlet_candidates(rng, count, n_inputs, width, s.alpha)
        return np.concatenate([drawn, corner_candidates(n_inputs, width)]) if s.corners else drawn

    def search(
        self, candidates: np.ndarray, inputs: np.ndarray, labels: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None, float]:
        """The best weights ``(M, K)`` on these frames and their score: the first of equal candidates; for a
        multilabel task (AU) each unit's best weight column and its decision threshold ``(K,)`` (else None)."""
        task = self.definition
        valid = task.valid(labels)
        if not valid.any():
            raise SpecError(f"dwf ({self.task}): no validation frame with a valid label to choose the weights on")
        if task.problem == "multilabel":
            weights, thresholds, f1 = au_best_choices(
                candidates, inputs[:, valid], labels[valid], self.settings.workers
            )
            return weights, thresholds, float(f1.mean())
        if task.problem == "regression":
            scores = va_candidate_scores(candidates, va_moments(inputs, labels, valid))
        else:
            scores = expr_candidate_scores(
                candidates, inputs[:, valid], labels[valid], self.settings.workers, classes=task.width
            )
        best = int(np.nanargmax(scores))
        return candidates[best], None, float(scores[best])

    def _fit_all(self, inputs: np.ndarray, labels: np.ndarray, frame_fold: np.ndarray, names: list[str]) -> None:
        candidates = self.candidates(len(names))
        self.weights_, self.thresholds_, score = self.search(candidates, inputs, labels)
        fold_weights, fold_thresholds = [], []
        for fold in range(int(frame_fold.max()) + 1):
            keep = frame_fold != fold
            weights, thresholds, _ = self.search(candidates, inputs[:, keep], labels[keep])
            fold_weights.append(weights)
            fold_thresholds.append(thresholds)
        self.fold_weights_ = np.stack(fold_weights)
        self.fold_thresholds_ = None if self.thresholds_ is None else np.stack(fold_thresholds)
        rows = "; ".join(
            f"{n} {'/'.join(f'{w:.2f}' for w in row)}" for n, row in zip(names, self.weights_, strict=True)
        )
        note = f"dwf {self.task}: best of {len(candidates)} candidates, in-sample {score:.4f}: {rows}"
        if self.thresholds_ is not None:
            note += f"; thresholds {'/'.join(f'{t:.2f}' for t in self.thresholds_)}"
        self.notes_ = [note]

    def _predict_rows(self, inputs: np.ndarray, fold: int | None) -> np.ndarray:
        """The fused outputs with the weights (and thresholds) of the fit on all validation, or of fold ``fold``'s."""
        fused = fuse(self.weights_ if fold is None else self.fold_weights_[fold], list(inputs))
        problem = self.definition.problem
        if problem == "multiclass":
            return normalise_rows(fused)
        if problem == "multilabel":
            return threshold_at_half(fused, self.thresholds_ if fold is None else self.fold_thresholds_[fold])
        return fused

    def _honest_rows(self, inputs: np.ndarray, split, track: str, position: int) -> np.ndarray:
        return self._predict_rows(inputs, int(self.folds_[position]))

    def state(self) -> dict[str, torch.Tensor]:
        self._check_fitted()
        state = {
            "weights": torch.from_numpy(np.ascontiguousarray(self.weights_)),
            "fold_weights": torch.from_numpy(np.ascontiguousarray(self.fold_weights_)),
            "folds": torch.from_numpy(self.folds_),
        }
        if self.thresholds_ is not None:
            state["thresholds"] = torch.from_numpy(np.ascontiguousarray(self.thresholds_))
            state["fold_thresholds"] = torch.from_numpy(np.ascontiguousarray(self.fold_thresholds_))
        return state

    def load_state(self, state: Mapping[str, torch.Tensor]) -> DWFKind:
        self.weights_ = state["weights"].numpy()
        self.fold_weights_ = state["fold_weights"].numpy()
        self.folds_ = state["folds"].numpy()
        self.thresholds_ = state["thresholds"].numpy() if "thresholds" in state else None
        self.fold_thresholds_ = state["fold_thresholds"].numpy() if "fold_thresholds" in state else None
        return self


@register_kind("rf")
class RFKind(_Fusion):
    """Random-forest fusion: per-dimension regressors (VA), per-unit balanced classifiers (AU) or one balanced
    classifier (EXPR) on the inputs."""

    version = "2"
    Settings = RFSettings
    profiles: dict[str, dict] = {
        "paper": {},
        # smoke: on tiny's 11 VA validation videos small leaves memorise each video's frames (in-sample CCC 0.98,
        # honest 0.18); 250-1000 frames a leaf give honest 0.35-0.40 (2000: no split). Classification keeps small
        # leaves: EXPR honest macro-F1 0.27-0.30 from 10 to 50 frames, 0.13 at 500 (README, "Default systems").
        "smoke": {"trees": [10, 25, 50], "max_rows": 5000, "min_samples_leaf": {"va": 500, "expr": 20, "au": 20}},
    }

    @property
    def _regression(self) -> bool:
        return self.definition.problem == "regression"

    @property
    def _per_column(self) -> bool:
        """One forest per output column (VA dimensions, AUs) rather than one over all (EXPR classes)."""
        return self.definition.problem != "multiclass"

    def _criteria(self) -> tuple[str, ...]:
        allowed = REGRESSION_CRITERIA if self._regression else CLASSIFICATION_CRITERIA
        default = DEFAULT_REGRESSION_CRITERIA if self._regression else DEFAULT_CLASSIFICATION_CRITERIA
        chosen = tuple(self.settings.criteria or default)
        bad = [c for c in chosen if c not in allowed]
        if bad:
            raise SpecError(
                f"rf ({self.task}): key 'criteria': {bad[0]!r} is not a criterion of a random forest for {self.task} "
                f"(accepted: {', '.join(allowed)})"
            )
        return chosen

    def _min_samples_leaf(self) -> int:
        leaf = self.settings.min_samples_leaf
        if isinstance(leaf, int):
            return leaf
        if self.task not in leaf:
            raise SpecError(
                f"rf ({self.task}): key 'min_samples_leaf': no count for task {self.task!r} (given for "
                f"{', '.join(leaf) or 'none'}); add '{self.task}: N' or give one count for every task"
            )
        return leaf[self.task]

    def _design(self, inputs: np.ndarray) -> list[np.ndarray]:
        """Feature matrices: per column (VA, AU) one ``(n, M)`` of the inputs' values of it; EXPR one ``(n, M·K)``."""
        if self._per_column:
            return [np.ascontiguousarray(inputs[:, :, d].T, dtype=np.float32) for d in range(inputs.shape[2])]
        return [np.ascontiguousarray(inputs.transpose(1, 0, 2).reshape(inputs.shape[1], -1), dtype=np.float32)]

    def _forest(self, trees: int, criterion: str, warm: bool = False):
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        s = self.settings
        options = dict(
            n_estimators=trees,
            criterion=criterion,
            min_samples_leaf=self._min_samples_leaf(),
            n_jobs=s.jobs,
            random_state=self.seed,
            oob_score=warm,
            warm_start=warm,
        )
        if self._regression:
            return RandomForestRegressor(**options)
        return RandomForestClassifier(class_weight="balanced", **options)

    def _oob_score(self, forest, target: np.ndarray) -> float:
        """The challenge metric of the out-of-bag predictions (rows no tree left out are skipped): a dimension's CCC,
        an AU's F1, the task's score over all classes."""
        if self._regression:
            oob = forest.oob_prediction_
            keep = np.isfinite(oob)
            return ccc(oob[keep], target[keep]) if keep.sum() > 1 else -np.inf
        votes = forest.oob_decision_function_
        keep = np.isfinite(votes).all(axis=1)
        if not keep.any():
            return -np.inf
        predicted = forest.classes_[votes[keep].argmax(axis=1)]
        if self._per_column:
            return float(f1_from_confusion(confusion_counts(target[keep], predicted, 2))[1])
        return self.definition.scores(predicted, target[keep]).score

    def _choose(self, x: np.ndarray, y: np.ndarray) -> tuple[int, int]:
        """(trees, criterion index) with the best out-of-bag score; trees grow in place (warm start)."""
        best, choice = -np.inf, (min(self.settings.trees), 0)
        for index, criterion in enumerate(self._criteria()):
            forest = self._forest(min(self.settings.trees), criterion, warm=True)
            for trees in sorted(set(self.settings.trees)):
                forest.set_params(n_estimators=trees)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # few trees leave some rows without an OOB vote
                    forest.fit(x, y)
                score = self._oob_score(forest, y)
                if score > best:
                    best, choice = score, (trees, index)
        return choice

    def _train_rows(self, labels: np.ndarray, keep: np.ndarray, salt: int) -> np.ndarray:
        """At most ``max_rows`` frames with a valid label among ``keep``, a seeded subsample in frame order."""
        rows = np.flatnonzero(self.definition.valid(labels) & keep)
        if not len(rows):
            raise SpecError(f"rf ({self.task}): no validation frame with a valid label to train the forest on")
        if len(rows) > self.settings.max_rows:
            rng = np.random.default_rng([self.seed, salt])
            rows = np.sort(rng.choice(rows, self.settings.max_rows, replace=False))
        return rows

    def _fit_forests(self, designs: list[np.ndarray], targets: list[np.ndarray]) -> tuple[list, np.ndarray]:
        choices = np.array([self._choose(x, y) for x, y in zip(designs, targets, strict=True)], np.int64)
        return self._refit(designs, targets, choices), choices

    def _refit(self, designs: list[np.ndarray], targets: list[np.ndarray], choices: np.ndarray) -> list:
        criteria = self._criteria()
        return [
            self._forest(int(trees), criteria[int(index)]).fit(x, y)
            for (trees, index), x, y in zip(choices, designs, targets, strict=True)
        ]

    def _targets(self, labels: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
        if not self._per_column:
            return [labels[rows].astype(np.int64)]
        dtype = np.float32 if self._regression else np.int64
        return [labels[rows, d].astype(dtype) for d in range(labels.shape[1])]

    def _fit_all(self, inputs: np.ndarray, labels: np.ndarray, frame_fold: np.ndarray, names: list[str]) -> None:
        designs = self._design(inputs)
        honest = np.zeros((inputs.shape[1], self.definition.width), np.float32)
        n_folds = int(frame_fold.max()) + 1
        for fold in range(n_folds):
            rows = self._train_rows(labels, frame_fold != fold, salt=fold + 1)
            forests, _ = self._fit_forests([x[rows] for x in designs], self._targets(labels, rows))
            held = frame_fold == fold
            honest[held] = self._apply(forests, [x[held] for x in designs])
        rows = self._train_rows(labels, np.ones(len(labels), bool), salt=0)
        self.train_x_ = [x[rows] for x in designs]
        self.train_y_ = self._targets(labels, rows)
        self.forests_, self.choices_ = self._fit_forests(self.train_x_, self.train_y_)
        self.honest_ = honest
        criteria = self._criteria()
        chosen = ", ".join(f"{t} trees, {criteria[c]}" for t, c in self.choices_)
        self.notes_ = [f"rf {self.task}: {chosen} (out-of-bag), {len(rows)} training frames"]

    def _apply(self, forests: list, designs: list[np.ndarray]) -> np.ndarray:
        """VA the regressors' values, AU each unit's probability of being on, EXPR the class probabilities."""
        if self._regression:
            return np.stack([forest.predict(x) for forest, x in zip(forests, designs, strict=True)], axis=1)
        if self._per_column:
            return np.stack([self._probabilities(f, x, 2)[:, 1] for f, x in zip(forests, designs, strict=True)], 1)
        (forest,), (x,) = forests, designs
        return self._probabilities(forest, x, self.definition.width)

    @staticmethod
    def _probabilities(forest, x: np.ndarray, classes: int) -> np.ndarray:
        """``(n, classes)`` probabilities of a classifier; 0 for a class its training rows never held."""
        probabilities = np.zeros((len(x), classes))
        probabilities[:, forest.classes_] = forest.predict_proba(x)
        return probabilities

    def _predict_rows(self, inputs: np.ndarray, fold: None) -> np.ndarray:
        return self._apply(self.forests_, self._design(inputs))

    def _honest_rows(self, inputs: np.ndarray, split, track: str, position: int) -> np.ndarray:
        start = sum(t.n_rows for t in split.tracks[:position])
        return self.honest_[start : start + split.tracks[position].n_rows]

    def state(self) -> dict[str, torch.Tensor]:
        """The training frames and the chosen settings (the forests are refitted from them, identically, on load:
        no pickled objects are ever stored) and the honest validation predictions."""
        self._check_fitted()
        state = {"choices": torch.from_numpy(self.choices_), "folds": torch.from_numpy(self.folds_)}
        state["honest"] = torch.from_numpy(self.honest_)
        for i, (x, y) in enumerate(zip(self.train_x_, self.train_y_, strict=True)):
            state[f"x{i}"], state[f"y{i}"] = torch.from_numpy(x), torch.from_numpy(y)
        return state

    def load_state(self, state: Mapping[str, torch.Tensor]) -> RFKind:
        count = len(state["choices"])
        self.choices_ = state["choices"].numpy()
        self.train_x_ = [state[f"x{i}"].numpy() for i in range(count)]
        self.train_y_ = [state[f"y{i}"].numpy() for i in range(count)]
        self.forests_ = self._refit(self.train_x_, self.train_y_, self.choices_)
        self.honest_ = state["honest"].numpy()
        self.folds_ = state["folds"].numpy()
        return self
