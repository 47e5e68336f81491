"""Score frame-level predictions of a split like the organizers do: one pooled score over all valid frames.

Alongside the challenge score: the task's breakdown (per-dimension CCC, per-class or per-AU F1), the video-block
bootstrap 95% interval, and the per-track breakdown with the worst tracks. Used by ``abaw score`` on any ABAW-format
file; :func:`score_node_predictions` scores a stored node, for the runner's leaderboard rows and the drift guard.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.data.affwild2 import Dataset, Split
from harness.errors import SubmissionError
from harness.metrics import task_scores
from harness.models.context import HONEST
from harness.resampling import bootstrap_ci, ci_note, per_track_scores, track_statistics
from harness.store import Node
from harness.submission import PredictionFile
from harness.tasks import get_task

WORST_SHOWN = 5


def file_by_track(predictions: PredictionFile, split: Split) -> dict[str, np.ndarray]:
    """The file's values per track of ``split``, row ``i - 1`` being frame ``i``; every label line needs one row.

    Rows may come in any order; a track missing from the file, a track the split does not have, a duplicate row,
    and a missing or extra frame are errors that name the track.
    """
    known = set(split.names)
    extra = [name for name in predictions.track_names if name not in known]
    if extra:
        raise SubmissionError(
            f"{predictions.path}: track {extra[0]!r} is not in the {split.task} {split.name} split "
            f"({len(extra)} such tracks); is this a file for another split?"
        )
    positions = {name: index for index, name in enumerate(predictions.track_names)}
    by_track: dict[str, np.ndarray] = {}
    for track in split.tracks:
        if track.name not in positions:
            raise SubmissionError(
                f"{predictions.path}: track {track.name!r} of the {split.task} {split.name} split is missing "
                f"(expected {track.n_rows} rows, frames 1..{track.n_rows})"
            )
        rows = np.flatnonzero(predictions.track_index == positions[track.name])
        frames = predictions.frames[rows].astype(np.int64)
        order = np.argsort(frames, kind="stable")
        frames, rows = frames[order], rows[order]
        if len(frames) != track.n_rows or not np.array_equal(frames, np.arange(1, track.n_rows + 1)):
            raise SubmissionError(f"{predictions.path}: track {track.name!r}: {_row_mismatch(frames, track.n_rows)}")
        values = predictions.values[rows]
        bad = _out_of_range(values, split.task)
        if bad.any():
            line = int(predictions.line_numbers[rows][np.argmax(bad)])
            raise SubmissionError(
                f"{predictions.path}, line {line}: track {track.name!r}: expected {get_task(split.task).value_range} "
                f"({int(bad.sum())} row(s) of this track are not)"
            )
        by_track[track.name] = values
    return by_track


def _out_of_range(values: np.ndarray, task: str) -> np.ndarray:
    """Row mask of values a scored file may not hold (any of the task's range problems; NaN included)."""
    return np.logical_or.reduce(list(get_task(task).range_problems(values).values()))


def _row_mismatch(frames: np.ndarray, n_rows: int) -> str:
    duplicates = frames[1:][frames[1:] == frames[:-1]]
    if len(duplicates):
        return f"frame {int(duplicates[0])} has more than one row"
    expected = np.arange(1, n_rows + 1)
    missing = np.setdiff1d(expected, frames)
    extra = np.setdiff1d(frames, expected)
    parts = [f"expected {n_rows} rows (frames 1..{n_rows}), found {len(frames)}"]
    if len(missing):
        parts.append(f"{len(missing)} frame(s) missing, first {int(missing[0])}")
    if len(extra):
        parts.append(f"{len(extra)} frame(s) beyond the labels, first {int(extra[0])}")
    return "; ".join(parts)


def score_split(split: Split, predictions: Mapping[str, np.ndarray], n_resamples: int = 10_000, seed: int = 0) -> dict:
    """Pooled challenge score of per-track frame predictions over ``split``'s valid frames, with its breakdown.

    ``predictions[track]`` has one row per label line of hard predictions (VA ``(n, 2)`` values, EXPR ``(n,)``
    classes, AU ``(n, 12)`` 0/1). The result holds ``score``, the task's breakdown (``ccc_valence``/``ccc_arousal``,
    ``f1_per_class`` or ``f1_per_au``: :attr:`harness.tasks.TaskDef.breakdown_names`), ``frames`` (valid frames scored),
    ``videos`` (tracks with a valid frame), ``ci95`` (video-block bootstrap), ``ci95_note`` (``None``, or why the
    interval is not meaningful: :func:`harness.resampling.ci_note`), ``per_track`` and ``worst_tracks``.
    """
    task = split.task
    pred = np.concatenate([np.asarray(predictions[name]) for name in split.names])
    labels = split.labels()
    track_index = split.track_index()
    scores = task_scores(task, pred, labels)
    result: dict = {"task": task, "split": split.name, "score": scores.score}
    result.update(scores.breakdown.to_dict())
    tracks = per_track_scores(task, pred, labels, track_index, split.names)
    scored = [t for t in tracks if t.frames > 0]
    low, high = bootstrap_ci(task, pred, labels, track_index, n_resamples=n_resamples, seed=seed)
    result.update(
        frames=scores.frames,
        videos=len(scored),
        ci95=[low, high],
        ci95_note=ci_note(len(scored)),
        per_track=[{"track": t.track, "score": t.score, "frames": t.frames} for t in tracks],
        worst_tracks=[t.track for t in sorted(scored, key=lambda t: t.score)[:WORST_SHOWN]],
    )
    return result


# ----------------------------------------------------------------------------------------------- stored nodes


def node_predictions(
    node: Node, dataset: Dataset, task: str, split: str, output: str = "pred"
) -> dict[str, np.ndarray]:
    """Hard frame-level predictions of a complete node's ``output`` for a split: the task's decision from the stored
    outputs (:meth:`harness.tasks.TaskDef.decide`: VA values, EXPR argmax classes, AU 0/1)."""
    names = dataset.split(task, split).names
    outputs = {name: np.asarray(node.read_track(f"{output}-{split}", name)) for name in names}
    decide = get_task(task).decide
    return {name: decide(values) for name, values in outputs.items()}


@dataclass(frozen=True)
class NodeScores:
    """A node's stored predictions of a split, scored: ``scores`` (:func:`score_split`) of its predictions, ``honest``
    those of its cross-fitted ones (a kind fitted on validation, else None), and ``stats``, the per-track statistics of
    the predictions a ranking compares (the honest ones when there are), rows in ``track_names`` order."""

    task: str
    scores: dict
    honest: dict | None
    stats: np.ndarray
    track_names: tuple[str, ...]

    @property
    def ranked(self) -> dict:
        """The score a ranking uses: the honest one when there is one."""
        return self.scores if self.honest is None else self.honest

    def record_result(self) -> dict:
        """What a leaderboard row is made from: the ranked per-track scores, frames and videos, with the in-sample
        score, interval and breakdown (:meth:`harness.run_record.RunRecord.from_scores`)."""
        if self.honest is None:
            return self.scores
        in_sample = ("score", "ci95", *get_task(self.task).breakdown_names)
        return self.honest | {key: self.scores[key] for key in in_sample if key in self.scores}

    def honest_extra(self) -> dict:
        """A leaderboard row's ``extra`` keys of the honest score: ``fitted_on_validation``, ``honest_score``,
        ``honest_ci`` and its breakdown as ``honest_<part>``; empty without one."""
        if self.honest is None:
            return {}
        parts = get_task(self.task).breakdown_names
        honest = {"honest_score": self.honest["score"], "honest_ci": self.honest["ci95"]}
        return {"fitted_on_validation": True, **honest, **{f"honest_{key}": self.honest[key] for key in parts}}


def score_node_predictions(node: Node, dataset: Dataset, task: str, split: str, honest: bool) -> NodeScores:
    """Score a complete node's stored predictions of ``split``, and its cross-fitted ``honest`` ones when ``honest``.

    The one procedure behind a run's leaderboard row (:func:`harness.runner.score_node`) and the drift guard's
    re-scoring of it (:func:`harness.drift.rescore`), so that the two cannot disagree.
    """
    labelled = dataset.split(task, split)
    predictions = node_predictions(node, dataset, task, split)
    scores = score_split(labelled, predictions)
    ranked, honest_scores = predictions, None
    if honest:
        ranked = node_predictions(node, dataset, task, split, HONEST)
        honest_scores = score_split(labelled, ranked)
    pooled = np.concatenate([np.asarray(ranked[name]) for name in labelled.names])
    stats = track_statistics(task, pooled, labelled.labels(), labelled.track_index(), len(labelled.tracks))
    return NodeScores(task, scores, honest_scores, stats, tuple(labelled.names))
