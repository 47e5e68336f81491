"""A scored run as the leaderboard keeps it: :class:`RunRecord`, the checks it must pass, its column encoding.

A record keeps what identifies the run (system, task, split, profile, spec hash, store key, dataset fingerprint, git
commit, date), its score with the video-block 95% interval and breakdown, and the per-track sufficient statistics of
:func:`harness.resampling.track_statistics` with the ordered track names, from which any two records of the same
(task, dataset fingerprint, split) can be compared later. What a task derives from statistics (valid frames, the EXPR
confusion matrix: the sum of the per-track ones) is its definition's (:mod:`harness.tasks`), not stored.

:attr:`RunRecord.rank_score` is ``extra["honest_score"]`` when a system was fitted on the validation split (fusion),
else ``score``. Such a record must carry the statistics of its honest (cross-fitted) predictions so that a paired test
compares what a ranking ranks: a record whose statistics do not pool to its rank score is refused.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from harness import metric_inputs
from harness.errors import LeaderboardError
from harness.resampling import scores_from_counts
from harness.tasks import Task, get_task

_SCORE_TOL = 1e-6  # raw-sum (statistics) and centred (scoring) CCC agree far closer than this


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One scored run. ``stats`` is ``(len(track_names), stats_width)`` (the task's) from
    :func:`harness.resampling.track_statistics`.

    ``details`` holds the task's breakdown (:attr:`harness.tasks.TaskDef.breakdown_names`: ``ccc_valence``/
    ``ccc_arousal``, ``f1_per_class`` or ``f1_per_au``), ``frames`` and ``videos``;
    ``per_track`` is a list of ``{"track", "score", "frames"}`` (score None for a track without a valid label);
    ``extra`` is free JSON, with known keys ``fitted_on_validation``, ``honest_score``, ``honest_ci`` and ``notes``.
    ``id`` is set on rows read from the database.
    """

    system: str
    task: Task
    split: str
    profile: str
    spec_hash: str
    store_key: str
    dataset_fingerprint: str
    created_at: str
    score: float
    ci_low: float | None
    ci_high: float | None
    details: dict
    per_track: list[dict]
    track_names: tuple[str, ...]
    stats: np.ndarray
    git_commit: str | None = None
    train_seconds: float | None = None
    infer_seconds: float | None = None
    extra: dict = field(default_factory=dict)
    id: int | None = None

    @classmethod
    def from_scores(
        cls,
        system: str,
        profile: str,
        spec_hash: str,
        store_key: str,
        dataset_fingerprint: str,
        result: Mapping,
        stats: np.ndarray,
        track_names: Sequence[str],
        train_seconds: float | None = None,
        infer_seconds: float | None = None,
        git_commit: str | None = None,
        extra: Mapping | None = None,
        created_at: str | None = None,
    ) -> RunRecord:
        """A record from :func:`harness.scoring.score_split`'s ``result`` and the same predictions' statistics.

        ``stats`` rows follow ``track_names``, which must be the order of ``result["per_track"]``; ``created_at``
        defaults to now (UTC).
        """
        missing = [
            key for key in ("task", "split", "score", "frames", "videos", "ci95", "per_track") if key not in result
        ]
        if missing:
            raise LeaderboardError(
                f"run {system!r}: the score result lacks {', '.join(missing)}; pass the dict that "
                "harness.scoring.score_split returns"
            )
        task = check_task(result["task"])
        parts = get_task(task).breakdown_names
        absent = [key for key in parts if key not in result]
        if absent:
            raise LeaderboardError(f"run {system!r}: the {task} score result lacks {', '.join(absent)}")
        details = {key: result[key] for key in parts} | {"frames": result["frames"], "videos": result["videos"]}
        per_track = [{"track": t["track"], "score": t["score"], "frames": t["frames"]} for t in result["per_track"]]
        low, high = result["ci95"] if result["ci95"] is not None else (None, None)
        record = cls(
            system=system,
            task=task,
            split=str(result["split"]),
            profile=profile,
            spec_hash=spec_hash,
            store_key=store_key,
            dataset_fingerprint=dataset_fingerprint,
            created_at=_now() if created_at is None else _utc_iso(created_at, system),
            score=float(result["score"]),
            ci_low=None if low is None else float(low),
            ci_high=None if high is None else float(high),
            details=_clean_json(details),
            per_track=_clean_json(per_track),
            track_names=tuple(str(name) for name in track_names),
            stats=np.ascontiguousarray(stats, dtype=np.float64),
            git_commit=git_commit,
            train_seconds=None if train_seconds is None else float(train_seconds),
            infer_seconds=None if infer_seconds is None else float(infer_seconds),
            extra=_clean_json(dict(extra or {})),
        )
        _check_record(record)
        if [t["track"] for t in record.per_track] != list(record.track_names):
            raise LeaderboardError(
                f"run {system!r}: result['per_track'] lists tracks in another order than track_names; "
                "pass split.names for both"
            )
        if record.frames != int(result["frames"]):
            raise LeaderboardError(
                f"run {system!r}: the statistics count {record.frames} valid frames but the result scored "
                f"{result['frames']}; were they computed from the same predictions and split?"
            )
        return record

    @property
    def honest(self) -> bool:
        """Whether the row carries an honest (cross-fitted) score beside an in-sample one."""
        return self.extra.get("honest_score") is not None

    @property
    def rank_score(self) -> float:
        """The score the ranking uses: ``extra["honest_score"]`` when present, else ``score``."""
        return float(self.extra["honest_score"]) if self.honest else self.score

    @property
    def rank_ci(self) -> tuple[float, float] | None:
        """The 95% interval of :attr:`rank_score` (``extra["honest_ci"]`` for honest rows), if known."""
        if self.honest:
            ci = self.extra.get("honest_ci")
            return (float(ci[0]), float(ci[1])) if ci else None
        return None if self.ci_low is None or self.ci_high is None else (self.ci_low, self.ci_high)

    @property
    def stats_score(self) -> float:
        """The pooled score of all tracks from the statistics alone (equals :attr:`rank_score` up to rounding)."""
        return float(scores_from_counts(self.task, self.stats, np.ones((1, self.stats.shape[0])))[0])

    @property
    def frames(self) -> int:
        """Valid frames scored, from the statistics."""
        return int(self.track_frames.sum())

    @property
    def videos(self) -> int:
        """Tracks with at least one valid frame."""
        return int(np.count_nonzero(self.track_frames))

    @property
    def track_frames(self) -> np.ndarray:
        """Valid frames per track, in ``track_names`` order."""
        return get_task(self.task).frames_from_stats(self.stats)

    @property
    def confusion_matrix(self) -> np.ndarray | None:
        """The task's confusion matrix summed over tracks (EXPR: 8×8 int64, rows = true class); None for a task whose
        statistics are not one (:meth:`harness.tasks.TaskDef.confusion_matrix`)."""
        return get_task(self.task).confusion_matrix(self.stats.sum(axis=0))

    def to_columns(self) -> dict:
        """The leaderboard's column values, every field but ``id``, once the record passes :meth:`from_scores`' checks.

        Dicts and lists become JSON text, ``stats`` an ``.npy`` blob and ``created_at`` an ISO date in UTC.
        """
        _check_record(self)
        return {
            "system": self.system,
            "task": self.task,
            "split": self.split,
            "profile": self.profile,
            "spec_hash": self.spec_hash,
            "store_key": self.store_key,
            "dataset_fingerprint": self.dataset_fingerprint,
            "git_commit": self.git_commit,
            "created_at": _utc_iso(self.created_at, self.system),
            "score": self.score,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "details": _dumps(self.details),
            "per_track": _dumps(self.per_track),
            "track_names": _dumps(list(self.track_names)),
            "stats": _stats_blob(self.stats),
            "train_seconds": self.train_seconds,
            "infer_seconds": self.infer_seconds,
            "extra": _dumps(self.extra),
        }

    @classmethod
    def from_columns(cls, values: Mapping) -> RunRecord:
        """The record stored as ``values`` (:meth:`to_columns` plus ``id``).

        Raises ``ValueError``, ``TypeError`` or ``OSError`` when a JSON text or the ``stats`` blob is unreadable.
        """
        decoded = dict(values)
        for key in ("details", "per_track", "extra"):
            decoded[key] = json.loads(decoded[key])
        decoded["track_names"] = tuple(json.loads(decoded["track_names"]))
        decoded["stats"] = np.load(io.BytesIO(decoded["stats"]), allow_pickle=False)
        return cls(**decoded)


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit hash checked out at ``cwd`` (default: the current folder), or None outside git or without git."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or len(commit) not in (40, 64) or any(c not in "0123456789abcdef" for c in commit):
        return None
    return commit


def check_task(task: object) -> Task:
    """``task`` when it names a registered task; else :class:`LeaderboardError` with a did-you-mean."""
    try:
        return metric_inputs.check_task(task)  # type: ignore[return-value]
    except ValueError as exc:
        raise LeaderboardError(str(exc)) from None


def _check_record(run: RunRecord) -> None:
    """Refuse a record the database could not hold faithfully or later code could not compare."""
    owner = f"run {run.system!r}"
    check_task(run.task)
    for name in ("system", "split", "profile", "spec_hash", "store_key", "dataset_fingerprint"):
        value = getattr(run, name)
        if not isinstance(value, str) or not value:
            raise LeaderboardError(f"{owner}: {name} must be a non-empty string; got {value!r}")
    if not math.isfinite(run.score):
        raise LeaderboardError(f"{owner}: score must be a finite number; got {run.score!r}")
    stats = run.stats
    expected = (len(run.track_names), get_task(run.task).stats_width)
    if not isinstance(stats, np.ndarray) or stats.shape != expected:
        shape = getattr(stats, "shape", type(stats).__name__)
        raise LeaderboardError(
            f"{owner}: stats must be harness.resampling.track_statistics output with one row per track name, shape "
            f"{expected} for {run.task}; got {shape}"
        )
    if not np.isfinite(stats).all():
        raise LeaderboardError(f"{owner}: stats contain NaN or inf")
    if len(set(run.track_names)) != len(run.track_names):
        raise LeaderboardError(f"{owner}: track_names has duplicates; each track must appear once")
    honest = run.extra.get("honest_score")
    if honest is not None and (
        isinstance(honest, bool) or not isinstance(honest, int | float) or not math.isfinite(honest)
    ):
        raise LeaderboardError(f"{owner}: extra['honest_score'] must be a finite number; got {honest!r}")
    ci = run.extra.get("honest_ci")
    if ci is not None and (not isinstance(ci, list | tuple) or len(ci) != 2):
        raise LeaderboardError(f"{owner}: extra['honest_ci'] must be [low, high]; got {ci!r}")
    _dumps(run.extra, owner)
    if not abs(run.stats_score - run.rank_score) <= _SCORE_TOL:
        what = "honest_score" if run.honest else "score"
        raise LeaderboardError(
            f"{owner}: its statistics pool to a score of {run.stats_score:.6f} but the row ranks by {what} "
            f"{run.rank_score:.6f}; store the statistics of the predictions that give the rank score (for a system "
            "fitted on validation: its cross-fitted predictions)"
        )


def _clean_json(value):
    """``value`` with numpy scalars as Python numbers, tuples as lists and non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dumps(value, owner: str = "run") -> str:
    try:
        return json.dumps(_clean_json(value), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise LeaderboardError(
            f"{owner}: a field is not JSON data ({exc}); use numbers, strings, lists, dicts"
        ) from exc


def _stats_blob(stats: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(stats, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _utc_iso(text: str, system: str) -> str:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise LeaderboardError(
            f"run {system!r}: created_at must be an ISO date with a time zone, e.g. 2024-03-18T12:00:00+00:00; "
            f"got {text!r}"
        )
    return when.astimezone(UTC).isoformat(timespec="microseconds")
