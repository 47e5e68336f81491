"""Functionals + Kernel ELM kind (SUN team, ABAW 2024, arXiv 2403.12609, "functionals" systems).

A static video spec's frame embeddings on the 5 Hz step grid (:mod:`harness.models.step_table`) are summarised
over windows of W seconds (hop W/2) by functionals — mean, max, min and optionally std per feature — standardised
with training statistics, and mapped to the window's target by a Kernel ELM (:mod:`harness.models.kernel_elm`); the
task defines the target (:meth:`~harness.tasks.base.TaskDef.window_target`: VA the mean label over the window's steps,
EXPR the most frequent class as a one-hot row, AU per unit whether it is on in most labelled steps) and the row
weights (:meth:`~harness.tasks.base.TaskDef.sample_weights`: EXPR inverse class frequency, the weighted ELM).
Beyond the exact solve's bound (20 k windows, ~27 k on the real train split) the kind switches to Nyström with
``AUTO_LANDMARKS`` landmarks and says so in the run's notes, unless the spec sets ``nystrom_landmarks``.
C is chosen on validation from a grid (step-level score, the task's hard decisions); since that choice sees
validation, the kind also yields ``honest`` validation predictions: per fold of whole videos, the C chosen on the other
folds.
Window outputs are averaged per step and interpolated to every frame, then made outputs by the task
(:meth:`~harness.tasks.base.TaskDef.outputs_from_scores`): VA clipped to [-1, 1], EXPR scores a distribution (clipped
at 0, normalised), AU scores clipped to [0, 1] as probabilities, so that fusion can weigh them like a neural kind's.
AU outputs are first shifted per unit (:func:`prevalence_offsets`, from training outputs) so that 0.5 decides each
unit on about as often as it is on in training.
"""

from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from harness import distributed
from harness.errors import SpecError
from harness.frames import average_windows, frame_times, interpolate_to_frames
from harness.fusion_math import video_folds
from harness.metrics import task_scores
from harness.models import kernel_elm
from harness.models.context import HONEST, Context
from harness.models.registry import Kind, register_kind
from harness.models.step_table import StepTable, build_table, window_rows, windows
from harness.steps import step_centres
from harness.tasks import Task, get_task

Functional = Literal["mean", "max", "min", "std"]
# Nyström landmarks used when the training windows exceed the exact bound and the spec names none: the count that
# bench/bench_kelm.py measured within 1% of the exact score (2026-11-29, docs/benchmarks.md: CCC gap 0.34% at
# N = 5,000 and 0.69% at N = 20,000 with M = 3,000; M = 2,000 missed at 20,000 with 1.1%).
AUTO_LANDMARKS = 3000
AUTO_EVIDENCE = "bench/bench_kelm.py measured M = 3,000 within 1% of exact (CCC gap 0.69% at N = 20,000)"


class KelmSettings(BaseModel):
    """Settings of the functionals + Kernel ELM kind."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(4.0, gt=0)
    rate: float = Field(5.0, gt=0)  # steps a second
    functionals: list[Functional] = Field(default_factory=lambda: ["mean", "max", "min"], min_length=1)
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = "rbf"
    gamma: float | None = Field(None, gt=0)  # None: 1 / number of features
    degree: int = Field(3, ge=1)
    coef0: float = 1.0
    c_grid: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0], min_length=1
    )
    class_weighted: bool = True  # the weighted ELM, W = the task's sample weights (EXPR: inverse class frequency)
    nystrom_landmarks: int | None = Field(None, ge=1)  # None: exact up to max_exact_rows, AUTO_LANDMARKS Nyström beyond
    max_exact_rows: int = Field(kernel_elm.MAX_EXACT_ROWS, ge=1)
    honest_folds: int = Field(5, ge=2)


@register_kind("kelm")
class KelmKind(Kind):
    """Functionals of one static video spec's embeddings → Kernel ELM, for one task."""

    version = "2"  # 2: AU decisions at the training prevalence (offsets in the state)
    Settings = KelmSettings
    profiles = {"paper": {}, "smoke": {}}
    outputs = ("pred",)
    validation_outputs = (HONEST,)
    distributed_fit = True  # under torchrun the ranks share the grid's solves (see fit)

    def __init__(self, settings: KelmSettings, task: Task, seed: int) -> None:
        self.settings = settings
        self.task = task
        self.seed = seed

    @property
    def width(self) -> int:
        return max(1, round(self.settings.window_s * self.settings.rate))

    def _table(self, context: Context, split_name: str, names: list[str] | None = None) -> StepTable:
        if len(context.inputs) != 1:
            raise SpecError(
                f"a kelm system takes exactly one input (a static video spec), found {len(context.inputs)}: "
                f"{', '.join(context.inputs) or 'none'}"
            )
        source = next(iter(context.inputs.values()))
        dim = len(self.mean_) // len(self.settings.functionals) if hasattr(self, "mean_") else None
        return build_table(context.split(split_name), source, self.task, self.settings.rate, names, dim)

    def _windows(self, table: StepTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per window: its track, start, functionals (unstandardised) and the mask of its labelled steps."""
        tracks, starts = windows(table, self.width, max(1, self.width // 2))
        rows, inside = window_rows(table, tracks, starts, self.width)
        values = window_functionals(table.features, rows, inside, self.settings.functionals)
        return tracks, starts, values, table.valid[rows] & inside

    # -- fit -----------------------------------------------------------------------------------------------------------
    def fit(self, context: Context) -> "KelmKind":
        """Fit one Kernel ELM per C on the training windows; pick C on validation, and per fold for ``honest``.

        Under ``torchrun`` the Cs of the grid are dealt to the ranks (each builds the kernel matrix and solves its
        own; the solves are independent) and gathered on rank 0, which chooses; one process solves them all."""
        s = self.settings
        train, validation = self._table(context, "train"), self._table(context, "validation")
        tracks, starts, values, labelled = self._windows(train)
        rows, _ = window_rows(train, tracks, starts, self.width)
        keep = labelled.any(1)
        task = get_task(self.task)
        targets = task.window_target(train.targets[rows[keep]], labelled[keep])
        self.mean_, self.std_ = values[keep].mean(0), values[keep].std(0) + 1e-6
        self.prior_ = targets.mean(0).astype(np.float32)
        weight = task.sample_weights(task.from_one_hot(targets)) if s.class_weighted else None
        _, val_starts, val_values, _ = self._windows(validation)
        params = kernel_elm.KernelParams(s.kernel, s.gamma, s.degree, s.coef0)
        landmarks, notes = s.nystrom_landmarks, []
        if landmarks is None and len(targets) > s.max_exact_rows:
            landmarks = AUTO_LANDMARKS
            notes.append(
                f"kelm ({self.task}): {len(targets):,} training windows exceed the exact bound "
                f"(max_exact_rows={s.max_exact_rows:,}): Nyström with {min(landmarks, len(targets)):,} landmarks; "
                f"{AUTO_EVIDENCE}"
            )
        mine = distributed.shard(list(range(len(s.c_grid))))  # under torchrun each rank solves some of the Cs
        try:
            grid = kernel_elm.fit_grid(
                self._standardised(values[keep]),
                targets,
                [s.c_grid[i] for i in mine] or s.c_grid[:1],  # a rank without a C of its own solves one, unused
                params,
                X_eval=self._standardised(val_values),
                sample_weight=weight,
                nystrom_landmarks=landmarks,
                seed=self.seed,
                max_exact_rows=s.max_exact_rows,
            )
        except ValueError as error:
            raise SpecError(f"kelm ({self.task}): {error}") from None
        models, eval_predictions = _gathered(mine, grid, s.c_grid)
        if not distributed.is_main():  # the runner loads the model rank 0 saves
            return self
        self.models_ = models
        self.offsets_ = np.zeros((len(models), targets.shape[1]), np.float32)
        if task.problem == "multilabel":  # a unit's decisions at the rate it is on in training
            train_x = self._standardised(values[keep])
            for c, model in enumerate(models):
                self.offsets_[c] = prevalence_offsets(kernel_elm.predict(model, train_x), targets)
        eval_predictions = eval_predictions + self.offsets_[:, None, :]
        per_track = self._per_track_steps(validation, val_starts, eval_predictions)
        self.choice_ = int(np.argmax(self._scores(validation, per_track, np.arange(len(validation.names)))))
        folds = video_folds(validation.names, s.honest_folds, self.seed)
        self.honest_choice_ = np.empty(len(validation.names), np.int64)
        for fold in np.unique(folds):
            scores = self._scores(validation, per_track, np.flatnonzero(folds != fold))
            self.honest_choice_[folds == fold] = int(np.argmax(scores))
        self.notes_: list[str] = notes
        return self

    def _standardised(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean_) / self.std_).astype(np.float32)

    def _per_track_steps(self, table: StepTable, starts: np.ndarray, window_outputs: np.ndarray) -> list[np.ndarray]:
        """``(n_C, steps, K)`` per track: each C's window outputs spread over their steps and averaged per step."""
        tracks, _ = windows(table, self.width, max(1, self.width // 2))
        out = []
        for index in range(len(table.names)):
            chosen = tracks == index
            spread = np.repeat(window_outputs[:, chosen, None, :], self.width, axis=2)  # (n_C, n_w, W, K)
            out.append(
                np.stack([average_windows(s, starts[chosen], int(table.lengths[index])) for s in spread]).astype(
                    np.float32
                )
            )
        return out

    def _scores(self, table: StepTable, per_track: list[np.ndarray], track_indices: np.ndarray) -> np.ndarray:
        """The step-level validation score of every C over the given tracks."""
        valid = [table.valid[table.track_rows(i)] for i in track_indices]
        labels = np.concatenate(
            [table.targets[table.track_rows(i)][v] for i, v in zip(track_indices, valid, strict=True)]
        )
        task, scores = get_task(self.task), []
        for c in range(len(self.settings.c_grid)):
            pred = np.concatenate([per_track[i][c][v] for i, v in zip(track_indices, valid, strict=True)])
            pred = task.decide(task.clip_scores(pred))
            scores.append(task_scores(self.task, pred, labels).score if len(labels) else 0.0)
        return np.asarray(scores)

    # -- predict -------------------------------------------------------------------------------------------------------
    def predict(
        self, context: Context, split_name: str, tracks: list[str]
    ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Per track, ``pred`` (one row per label line) and, on validation, ``honest`` (the fold's C)."""
        if not hasattr(self, "models_"):
            raise RuntimeError("this kelm system is not fitted: call fit() or load_state() first")
        split = context.split(split_name)
        table = self._table(context, split_name, tracks)
        faceless = set(table.faceless)
        news = {
            f"kelm ({self.task}): track {n!r} has no face in its input's embeddings; the prior answers"
            for n in faceless
        }
        self.notes_ = sorted(set(getattr(self, "notes_", [])) | news)
        _, starts, values, _ = self._windows(table)
        wanted = [self.choice_]
        if split_name == "validation":
            wanted += sorted(set(self.honest_choice_.tolist()) - {self.choice_})
        x = self._standardised(values)
        outputs = np.stack([kernel_elm.predict(self.models_[c], x) + self.offsets_[c] for c in wanted])
        per_track = self._per_track_steps(table, starts, outputs)
        for index, name in enumerate(table.names):
            track = split.track(name)
            centres, times = (
                step_centres(int(table.lengths[index]), self.settings.rate),
                frame_times(track.n_rows, split.fps(name)),
            )
            chosen = {"pred": self.choice_}
            if split_name == "validation":
                chosen[HONEST] = int(self.honest_choice_[split.names.index(name)])  # fit's validation order
            result = {}
            for output, c in chosen.items():
                if name in faceless:
                    result[output] = np.tile(self.prior_, (track.n_rows, 1)).astype(np.float32)
                else:
                    result[output] = get_task(self.task).outputs_from_scores(
                        interpolate_to_frames(centres, per_track[index][wanted.index(c)], times)
                    )
            yield name, result

    # -- state ---------------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        if not hasattr(self, "models_"):
            raise RuntimeError("this kelm system is not fitted: call fit() or load_state() first")
        first = self.models_[0]
        params = first.params
        arrays = {
            "support": first.support,
            "betas": np.stack([m.beta for m in self.models_]),
            "kernel": np.array([params.gamma, params.degree, params.coef0], np.float64),
            "method": np.array([first.method == "nystrom"], np.int64),
            "mean": self.mean_,
            "std": self.std_,
            "prior": self.prior_,
            "choice": np.array([self.choice_], np.int64),
            "honest_choice": self.honest_choice_,
            "offsets": self.offsets_,
        }
        return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> "KelmKind":
        s = self.settings
        gamma, degree, coef0 = state["kernel"].tolist()
        params = kernel_elm.KernelParams(s.kernel, gamma, int(degree), coef0)
        method = "nystrom" if int(state["method"][0]) else "exact"
        support = state["support"].numpy()
        self.models_ = tuple(
            kernel_elm.KernelELM(params, c, method, support, beta)
            for c, beta in zip(s.c_grid, state["betas"].numpy(), strict=True)
        )
        self.mean_, self.std_, self.prior_, self.offsets_ = (
            state[k].numpy() for k in ("mean", "std", "prior", "offsets")
        )
        self.choice_ = int(state["choice"][0])
        self.honest_choice_ = state["honest_choice"].numpy()
        return self


def prevalence_offsets(train_outputs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per column of a multi-label output, the shift that moves ``threshold`` to the training outputs'
    (1 − prevalence) quantile, so that a unit on in 8% of the training windows is decided on in about 8% of them.

    A least-squares fit to 0/1 targets shrinks a rare unit's outputs towards its low mean, so that at 0.5 it is never
    decided on (F1 0); the shift uses training outputs only. A column never or always on is left unshifted."""
    prevalence = targets.mean(0)
    offsets = np.zeros(targets.shape[1], np.float32)
    for k, share in enumerate(prevalence):
        if 0.0 < share < 1.0:
            offsets[k] = threshold - np.quantile(train_outputs[:, k], 1.0 - share)
    return offsets


def window_functionals(
    features: np.ndarray, rows: np.ndarray, inside: np.ndarray, names: list[str], chunk: int = 2048
) -> np.ndarray:
    """``(n_windows, len(names) · D)``: each functional of the features over each window's steps inside its track,
    one block of D columns per functional in the order of ``names``; computed ``chunk`` windows at a time."""
    out = []
    for begin in range(0, len(rows), chunk):
        block = features[rows[begin : begin + chunk]].astype(np.float32)  # (n, W, D)
        out.append(np.concatenate([_functional(name, block, inside[begin : begin + chunk]) for name in names], 1))
    return np.concatenate(out).astype(np.float32)


def _functional(name: str, block: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """One functional over axis 1 of ``block`` (n, W, D), counting only the steps where ``inside`` (n, W)."""
    mask = inside[:, :, None]
    if name == "max":
        return np.where(mask, block, -np.inf).max(1)
    if name == "min":
        return np.where(mask, block, np.inf).min(1)
    count = mask.sum(1)
    mean = np.where(mask, block, 0.0).sum(1) / count
    if name == "mean":
        return mean
    return np.sqrt(np.where(mask, (block - mean[:, None, :]) ** 2, 0.0).sum(1) / count)


def _gathered(
    mine: list[int], grid: kernel_elm.GridFit, c_grid: list[float]
) -> tuple[tuple[kernel_elm.KernelELM, ...], np.ndarray]:
    """Every rank's solves in grid order: the models (on this rank's support rows, the same on every rank) and their
    validation predictions ``(n_C, windows, K)``; in one process the same values as ``grid``'s."""
    shares = distributed.all_gather((mine, [m.beta for m in grid.models][: len(mine)], grid.eval_predictions))
    template = grid.models[0]
    models: dict[int, kernel_elm.KernelELM] = {}
    predictions: dict[int, np.ndarray] = {}
    for indices, betas, evaluated in shares:
        for position, (index, beta) in enumerate(zip(indices, betas, strict=True)):
            models[index] = kernel_elm.KernelELM(
                template.params, float(c_grid[index]), template.method, template.support, beta
            )
            predictions[index] = evaluated[position]
    order = sorted(models)
    return tuple(models[i] for i in order), np.stack([predictions[i] for i in order])
