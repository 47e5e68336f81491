"""A static video spec's per-frame embeddings on a fixed-rate step grid, in one in-memory table per split.

The dynamic and functionals kinds work on windows of steps (5 a second), not on files: every track's face
embeddings are resampled by real timestamps once, concatenated into one ``(steps, D)`` array with per-track
offsets, and a batch of windows is a gather of row indices. Step ``j`` covers ``[j / rate, (j + 1) / rate)``
seconds; frame ``i`` (1-based) sits at ``(i - 1) / fps`` with the container's real fps.
"""

from dataclasses import dataclass

import numpy as np

from harness.data.affwild2 import Split
from harness.errors import SpecError, StoreError
from harness.models.context import FRAMES, InputOutputs
from harness.steps import n_steps, step_rows, window_starts
from harness.tasks import Task, TaskDef, get_task


def resample_to_steps(embeddings: np.ndarray, frames: np.ndarray, fps: float, total: int, rate: float) -> np.ndarray:
    """``(total, D)`` float32: the mean of the face embeddings whose frame time falls in each step; a step without
    a face takes the face nearest in time to its centre. Needs at least one face.

    >>> resample_to_steps(np.array([[1.0], [3.0], [10.0]]), np.array([1, 2, 31]), 30.0, 3, 2.0)[:, 0].tolist()
    [2.0, 10.0, 10.0]
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(frames) == 0 or len(frames) != len(embeddings):
        raise ValueError(f"need one embedding per face frame and at least one, got {len(embeddings)} for {len(frames)}")
    times = (np.asarray(frames, dtype=np.float64) - 1.0) / fps
    step = np.floor(times * rate + 1e-9).astype(np.int64)
    inside = (step >= 0) & (step < total)
    kept_steps, kept = step[inside], embeddings[inside]
    if np.any(kept_steps[1:] < kept_steps[:-1]):  # face frames come sorted; others are put in order, ties kept
        order = np.argsort(kept_steps, kind="stable")
        kept_steps, kept = kept_steps[order], kept[order]
    sums = np.zeros((total, embeddings.shape[1]), np.float64)
    if len(kept_steps):  # one sequential float64 sum per step's run of frames (as np.add.at, 5x faster)
        runs = np.flatnonzero(np.concatenate(([True], kept_steps[1:] != kept_steps[:-1])))
        sums[kept_steps[runs]] = np.add.reduceat(kept, runs, axis=0, dtype=np.float64)
    counts = np.bincount(kept_steps, minlength=total)
    out = np.empty((total, embeddings.shape[1]), np.float32)
    filled = counts > 0
    out[filled] = sums[filled] / counts[filled, None]
    if not filled.all():
        centres = (np.flatnonzero(~filled) + 0.5) / rate
        right = np.clip(np.searchsorted(times, centres), 1, len(times) - 1) if len(times) > 1 else np.zeros(1, int)
        left = np.maximum(right - 1, 0)
        nearest = np.where(np.abs(times[left] - centres) <= np.abs(times[right] - centres), left, right)
        out[~filled] = embeddings[nearest]
    return out


@dataclass
class StepTable:
    """One split's steps: features ``(steps, D)``, targets and their validity, and where each track lies."""

    names: list[str]
    offsets: np.ndarray  # first row of each track
    lengths: np.ndarray  # steps of each track
    features: np.ndarray
    targets: (
        np.ndarray
    )  # the step's labels in the task's dtype and shape (VA (steps, 2), EXPR (steps,), AU (steps, 12))
    valid: np.ndarray  # the step has a label to learn from
    faceless: list[str]  # tracks without any face: their features are zeros, their predictions the prior

    def track_rows(self, index: int) -> slice:
        return slice(int(self.offsets[index]), int(self.offsets[index] + self.lengths[index]))


def build_table(
    split: Split, source: InputOutputs, task: Task, rate: float, names: list[str] | None = None, dim: int | None = None
) -> StepTable:
    """The :class:`StepTable` of ``names`` (default: every track of ``split``) from ``source``'s ``emb`` output.

    ``dim`` is the embedding size a fitted model expects; without it (fitting) some track must have a face."""
    names = list(split.names if names is None else names)
    features, targets, valid, lengths, faceless = [], [], [], [], []
    for name in names:
        track = split.track(name)
        fps = split.fps(name)
        total = n_steps(track.n_rows, fps, rate)
        embeddings = _embeddings(source, split.name, name)
        frames = _frames(source, split, name)
        if len(embeddings) and len(embeddings) != len(frames):
            raise SpecError(
                f"input spec {source.name!r}: {split.name} track {name!r} has {len(embeddings)} embeddings for "
                f"{len(frames)} face frames; its stored outputs disagree (run it again)"
            )
        if len(embeddings) == 0:
            faceless.append(name)
            embeddings_on_steps = np.zeros((total, embeddings.shape[1] if embeddings.ndim == 2 else 0), np.float32)
        else:
            embeddings_on_steps = resample_to_steps(embeddings, frames, fps, total, rate)
        rows = step_rows(total, rate, fps, track.n_rows)
        labels, mask = step_targets(track.labels, rows, get_task(task), total)
        features.append(embeddings_on_steps)
        targets.append(labels)
        valid.append(mask)
        lengths.append(total)
    dims = {f.shape[1] for name, f in zip(names, features, strict=True) if name not in faceless}
    if dim is None and not dims:
        raise SpecError(
            f"input spec {source.name!r} produced no embeddings for the {split.name} tracks of {task}; dynamic and "
            "functionals systems need a static video spec as input"
        )
    dim = dim or dims.pop()
    if dims - {dim}:
        raise SpecError(f"input spec {source.name!r}: embeddings of size {sorted(dims)} where {dim} was expected")
    features = [f if f.shape[1] == dim else np.zeros((len(f), dim), np.float32) for f in features]
    lengths_array = np.asarray(lengths, dtype=np.int64)
    return StepTable(
        names=names,
        offsets=np.concatenate(([0], np.cumsum(lengths_array)[:-1])).astype(np.int64),
        lengths=lengths_array,
        features=np.concatenate(features),
        targets=np.concatenate(targets),
        valid=np.concatenate(valid),
        faceless=faceless,
    )


def _embeddings(source: InputOutputs, split: str, name: str) -> np.ndarray:
    try:
        return np.asarray(source.read("emb", split, name))
    except StoreError as error:
        raise SpecError(
            f"input spec {source.name!r} has no 'emb' output for {split} track {name!r} ({error}); dynamic and "
            "functionals systems need a static video spec (kind video) as input"
        ) from None


def _frames(source: InputOutputs, split: Split, name: str) -> np.ndarray:
    """The frame of each embedding row: the input's ``frames`` output; an input node written before that output
    existed embedded the release's crops (its key says so), whose face frames these are."""
    try:
        return np.asarray(source.read(FRAMES, split.name, name)).reshape(-1).astype(np.int64)
    except StoreError:
        return split.face_frames(name)


def step_targets(
    labels: np.ndarray | None, rows: np.ndarray, task: TaskDef, total: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the frame at each step's centre (``rows``: its label line, -1 outside the track) in the task's
    label dtype, and whether they count (inside the track and valid); without labels (the test split) invalid ones."""
    if labels is None:
        return task.invalid_labels(total), np.zeros(total, bool)
    inside = rows >= 0
    picked = labels[np.where(inside, rows, 0)]
    return picked.astype(task.invalid_labels(0).dtype), inside & task.valid(picked)


def normalisation(table: StepTable, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (shift, scale) fitted on a training table: ``minmax`` maps its range to [0, 1]; ``track``
    leaves this to :func:`normalise` (each track by its own mean and deviation) and returns identity."""
    dim = table.features.shape[1]
    if mode == "track":
        return np.zeros(dim, np.float32), np.ones(dim, np.float32)
    low, high = table.features.min(0), table.features.max(0)
    return low.astype(np.float32), np.maximum(high - low, 1e-6).astype(np.float32)


def normalise(table: StepTable, mode: str, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The table's features normalised: ``(x - shift) / scale``, or per track to zero mean and unit deviation."""
    if mode != "track":
        return ((table.features - shift) / scale).astype(np.float32)
    out = np.empty_like(table.features)
    for index in range(len(table.names)):
        rows = table.track_rows(index)
        values = table.features[rows]
        out[rows] = (values - values.mean(0)) / (values.std(0) + 1e-6)
    return out


def windows(table: StepTable, width: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of every track as (track index, start step): ``hop`` apart, the last one ending at the track's
    end; a track shorter than ``width`` gets one window (its tail is padding)."""
    tracks, starts = [], []
    for index, length in enumerate(table.lengths):
        begin = window_starts(int(length), width, hop)
        tracks.append(np.full(len(begin), index, np.int64))
        starts.append(begin)
    return np.concatenate(tracks), np.concatenate(starts)


def window_rows(table: StepTable, tracks: np.ndarray, starts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(n, width)`` into the table for windows, and a mask of the steps inside their track (steps past
    a short track's end repeat its last row and are masked)."""
    steps = starts[:, None] + np.arange(width)[None, :]
    inside = steps < table.lengths[tracks][:, None]
    rows = table.offsets[tracks][:, None] + np.minimum(steps, table.lengths[tracks][:, None] - 1)
    return rows, inside
