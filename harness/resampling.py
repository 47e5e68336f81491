"""Track-level scoring and the video-block bootstrap: per-track statistics and scores, intervals, paired comparisons.

Frames of one video are strongly autocorrelated, so the uncertainty of a pooled ABAW score is estimated by resampling
whole tracks, never frames. :func:`track_statistics` reduces each track once to additive sufficient statistics; a
resample is then a vector of track counts (:func:`resample_counts`) and :func:`scores_from_counts` scores many at once.
:func:`bootstrap_ci` gives the percentile interval of one system (:func:`ci_note` says when it is over too few videos
to mean anything); :func:`paired_from_statistics` compares two systems
from their per-track statistics alone (the leaderboard stores them), and :func:`paired_bootstrap` is the same from raw
predictions. The point metrics themselves live in :mod:`harness.metrics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from harness.metrics import task_scores
from harness.tasks import get_task

_CHUNK = 2048  # bootstrap resamples drawn and scored per block, to bound memory ...
_CHUNK_CELLS = 1 << 23  # ... and at most this many (resample, track) counts per block
# A video-block interval over fewer videos is not meaningful: with 2 videos there are 3 distinct resamples, and the
# percentiles of so few values say nothing about a test set's spread. Intervals below this are kept but marked.
MIN_CI_VIDEOS = 5


@dataclass(frozen=True, slots=True)
class TrackScore:
    """The task score of one track alone; ``nan`` with ``frames == 0`` when the track has no valid label."""

    track: str
    score: float
    frames: int
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """System a minus system b: full-data ``difference``, its bootstrap ``ci`` and two-sided ``p_value``."""

    difference: float
    ci: tuple[float, float]
    p_value: float
    score_a: float
    score_b: float


# --------------------------------------------------------------------------------------------------- per track


def track_statistics(
    task: str, pred: ArrayLike, labels: ArrayLike, track_index: ArrayLike, n_tracks: int | None = None
) -> np.ndarray:
    """Per-track sufficient statistics, ``(n_tracks, m)`` float64, additive over tracks (m: the task's
    ``stats_width``; VA: the valid frame count then five raw sums per dimension, EXPR: the flattened 8×8 confusion
    matrix, AU: the valid frame count then per AU true positives, false positives and false negatives).

    ``track_index`` gives each frame's track 0..n_tracks-1 (default: its maximum + 1). Weighted sums of rows are the
    statistics of the tracks pooled with those multiplicities: :func:`scores_from_counts` scores them.
    """
    definition = get_task(task)
    p, lab = definition.check_pair(pred, labels)
    t, n_tracks = _track_index(track_index, p.shape[0], n_tracks)
    return definition.track_statistics(p, lab, t, n_tracks)


def scores_from_counts(task: str, stats: ArrayLike, counts: ArrayLike) -> np.ndarray:
    """Pooled task score of each weighting of tracks: ``counts (B, T)`` times ``stats (T, m)`` -> ``(B,)`` scores.

    A bootstrap resample is a row of counts (how often each track was drawn); an identity row picks one track.
    """
    s = np.asarray(stats, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or s.ndim != 2 or c.shape[1] != s.shape[0]:
        raise ValueError(f"counts (B, T) and stats (T, m) do not match; got {c.shape} and {s.shape}")
    return _stats_scores(task, c @ s)[0]


def per_track_scores(
    task: str, pred: ArrayLike, labels: ArrayLike, track_index: ArrayLike, track_names: Sequence[str]
) -> list[TrackScore]:
    """The task score of each track alone, in ``track_names`` order; frame i belongs to ``track_names[track_index[i]]``.

    Per-track scores are pooled the same way as the split's (EXPR: macro-F1 over all 8 classes, so a track showing few
    classes scores low). A track with no valid label gets ``score = nan`` and ``frames = 0``; ``parts`` holds the
    scalar parts of the task's breakdown (the two CCCs of VA).
    """
    names = [str(name) for name in track_names]
    stats = track_statistics(task, pred, labels, track_index, n_tracks=len(names))
    frames = _track_frames(task, stats)
    score, parts = _stats_scores(task, stats)
    score = np.where(frames > 0, score, np.nan)
    scalars = {key: value for key, value in parts.items() if np.ndim(value) == 1}
    return [
        TrackScore(name, float(score[i]), int(frames[i]), {key: float(value[i]) for key, value in scalars.items()})
        for i, name in enumerate(names)
    ]


def _stats_scores(task: str, summed: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Scores and their named parts (the two CCCs, per-class or per-AU F1) from summed statistics ``(..., m)``."""
    return get_task(task).scores_from_stats(summed)


# --------------------------------------------------------------------------------------------------- bootstrap


def resample_counts(rng: np.random.Generator, n_tracks: int, n_resamples: int) -> np.ndarray:
    """``(n_resamples, n_tracks)`` int64: how often each track is drawn when drawing n_tracks with replacement."""
    draws = rng.integers(0, n_tracks, size=(n_resamples, n_tracks))
    draws += np.arange(n_resamples)[:, None] * n_tracks
    return np.bincount(draws.ravel(), minlength=n_resamples * n_tracks).reshape(n_resamples, n_tracks)


def bootstrap_ci(
    task: str,
    pred: ArrayLike,
    labels: ArrayLike,
    track_index: ArrayLike,
    n_resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the pooled score under a video-block bootstrap: whole tracks, not frames, are resampled.

    Frames of one track are strongly autocorrelated, so resampling frames would understate the spread. Only tracks with
    at least one valid label are drawn. Per-track statistics are computed once; each resample is a vector of track
    counts (``np.random.default_rng(seed)``), and all resamples are scored at once.
    """
    _check_resampling(n_resamples, level)
    stats = track_statistics(task, pred, labels, track_index)
    keep = _drawn_tracks(task, stats)
    boot = _bootstrap(task, [stats[keep]], n_resamples, np.random.default_rng(seed))[0]
    return _interval(boot, level)


def ci_note(videos: int) -> str | None:
    """Why a video-block interval over ``videos`` videos is not meaningful; ``None`` from :data:`MIN_CI_VIDEOS` on.

    The one rule behind every ``ci95_note`` (``abaw score``, ``run``, ``submit``, ``leaderboard`` and the HTML report).

    >>> ci_note(2)
    'over 2 videos: not meaningful (fewer than 5)'
    >>> ci_note(5) is None
    True
    """
    if videos >= MIN_CI_VIDEOS:
        return None
    return f"over {videos} video{'' if videos == 1 else 's'}: not meaningful (fewer than {MIN_CI_VIDEOS})"


def paired_from_statistics(
    task: str,
    stats_a: ArrayLike,
    stats_b: ArrayLike,
    n_resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
    scores: tuple[float, float] | None = None,
) -> PairedComparison:
    """Paired video-block bootstrap of system a minus system b from per-track statistics of the same tracks.

    ``stats_a`` and ``stats_b`` are :func:`track_statistics` of the two systems, rows in the same track order (so with
    the same valid frames per track). Only tracks with at least one valid label are drawn, and both systems are scored
    on the SAME resamples (``np.random.default_rng(seed)``), so the variation shared by the two (hard videos are hard
    for both) cancels in the difference. ``ci`` is the percentile interval of the resampled differences d*; the
    p-value tests "no difference" by how often d* falls on either side of zero:
    ``p = min(1, 2 · min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (n_resamples + 1))`` (the +1 counts the observed data as
    one resample, so p is never 0). ``scores`` are the full-data (score_a, score_b) to report; by default they are
    pooled from the statistics.
    """
    _check_resampling(n_resamples, level)
    a, b = (np.asarray(s, dtype=np.float64) for s in (stats_a, stats_b))
    width = get_task(task).stats_width
    if a.ndim != 2 or a.shape != b.shape or a.shape[1] != width:
        raise ValueError(
            f"stats_a and stats_b must both be {task} track statistics of shape (n_tracks, {width}); "
            f"got {a.shape} and {b.shape}"
        )
    frames_a, frames_b = _track_frames(task, a), _track_frames(task, b)
    if not np.array_equal(frames_a, frames_b):
        row = int(np.argmax(frames_a != frames_b))
        raise ValueError(
            f"stats_a and stats_b count different valid frames in row {row} ({frames_a[row]:g} vs {frames_b[row]:g}); "
            "pass both systems' statistics on the same labels, rows in the same track order"
        )
    if scores is None:
        scores = tuple(float(_stats_scores(task, s.sum(axis=0))[0]) for s in (a, b))
    score_a, score_b = scores
    keep = _drawn_tracks(task, a)
    boot_a, boot_b = _bootstrap(task, [a[keep], b[keep]], n_resamples, np.random.default_rng(seed))
    diff = boot_a - boot_b
    below = int(np.count_nonzero(diff <= 0))
    above = int(np.count_nonzero(diff >= 0))
    p_value = min(1.0, 2.0 * (1 + min(below, above)) / (n_resamples + 1))
    return PairedComparison(score_a - score_b, _interval(diff, level), p_value, score_a, score_b)


def paired_bootstrap(
    task: str,
    pred_a: ArrayLike,
    pred_b: ArrayLike,
    labels: ArrayLike,
    track_index: ArrayLike,
    n_resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """Compare two systems on the same frames: difference a − b, its bootstrap interval and a two-sided p-value.

    :func:`paired_from_statistics` on both systems' :func:`track_statistics`, with the full-data scores of
    :func:`harness.metrics.task_scores`. Identical systems give difference 0 and p = 1.
    """
    _check_resampling(n_resamples, level)
    scores = (task_scores(task, pred_a, labels).score, task_scores(task, pred_b, labels).score)
    stats_a, stats_b = (track_statistics(task, p, labels, track_index) for p in (pred_a, pred_b))
    return paired_from_statistics(task, stats_a, stats_b, n_resamples, level, seed, scores)


def _track_frames(task: str, stats: np.ndarray) -> np.ndarray:
    return get_task(task).frames_from_stats(stats)


def _drawn_tracks(task: str, stats: np.ndarray) -> np.ndarray:
    """The tracks a resample draws: those with at least one valid label."""
    keep = _track_frames(task, stats) > 0
    if not keep.any():
        raise ValueError(f"{task} labels have no valid frame in any track; nothing to resample")
    return keep


def _bootstrap(task: str, stats: list[np.ndarray], n_resamples: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = [np.empty(n_resamples) for _ in stats]
    n_tracks = stats[0].shape[0]
    chunk = max(1, min(_CHUNK, _CHUNK_CELLS // n_tracks))
    for start in range(0, n_resamples, chunk):
        counts = resample_counts(rng, n_tracks, min(chunk, n_resamples - start)).astype(np.float64)
        for s, o in zip(stats, out, strict=True):
            o[start : start + counts.shape[0]] = _stats_scores(task, counts @ s)[0]
    return out


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _check_resampling(n_resamples, level) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer; got {n_resamples!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95); got {level!r}")


def _track_index(track_index, n_frames: int, n_tracks: int | None) -> tuple[np.ndarray, int]:
    t = np.asarray(track_index)
    if t.shape != (n_frames,) or (t.size and t.dtype.kind not in "iu"):
        raise ValueError(
            f"track_index must be an integer array with one entry per frame, shape ({n_frames},); "
            f"got shape {t.shape} and dtype {t.dtype}"
        )
    t = t.astype(np.intp, copy=False)
    top = int(t.max()) + 1 if t.size else 0
    if n_tracks is None:
        n_tracks = top
    if t.size and (t.min() < 0 or top > n_tracks):
        raise ValueError(f"track_index values must lie in 0..{n_tracks - 1}; got {int(t.min())}..{top - 1}")
    return t, n_tracks
