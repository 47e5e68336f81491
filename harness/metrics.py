"""ABAW metrics: CCC for valence-arousal, macro-F1 for expressions, per-track scores and video-block bootstrap.

Pure functions over numpy arrays that return plain floats or small frozen dataclasses. Definitions follow the 6th ABAW
protocol: scores pool all frames of all tracks into one vector; frames whose label is invalid (-5 in either VA column,
-1 for EXPR) are excluded; every frame still needs a finite prediction.

Sufficient statistics are public so that fusion and resampling code reuses them instead of re-deriving the metric:
:func:`ccc_from_moments` / :func:`ccc_from_central_moments` for CCC, :func:`confusion_matrix` /
:func:`f1_from_confusion` for F1, and :func:`track_statistics` / :func:`scores_from_counts` for anything that
re-weights whole tracks (the bootstrap, cross-fitting).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from harness.tasks import EXPR_INVALID, NUM_EXPR_CLASSES, TASKS, VA_INVALID

# A variance at most this fraction of the mean square is rounding noise, i.e. the series is constant. Raw sums
# (sum of squares minus squared sum) lose far more digits than centred sums, hence two tolerances.
_CENTRAL_TOL = 1e-14
_RAW_TOL = 1e-9
_VA_STATS = 11  # n, then (sum_x, sum_y, sum_xx, sum_yy, sum_xy) for valence and for arousal
_EXPR_STATS = NUM_EXPR_CLASSES * NUM_EXPR_CLASSES  # a flattened confusion matrix, rows = true class
_CHUNK = 2048  # bootstrap resamples drawn and scored per block, to bound memory ...
_CHUNK_CELLS = 1 << 23  # ... and at most this many (resample, track) counts per block
_BLOCK = 1 << 15  # frames per cache-sized block in the VA score


@dataclass(frozen=True, slots=True)
class VAScores:
    """``score = (ccc_valence + ccc_arousal) / 2`` over ``frames`` frames with a valid label."""

    score: float
    ccc_valence: float
    ccc_arousal: float
    frames: int


@dataclass(frozen=True, slots=True)
class ExprScores:
    """``score`` is the mean of ``f1_per_class`` (all 8 classes, in ``EXPR_CLASSES`` order) over ``frames`` frames."""

    score: float
    f1_per_class: tuple[float, ...]
    frames: int


@dataclass(frozen=True, slots=True)
class TrackScore:
    """The task score of one track alone; ``nan`` with ``frames == 0`` when the track has no valid label."""

    track: str
    score: float
    frames: int
    ccc_valence: float | None = None
    ccc_arousal: float | None = None


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """System a minus system b: full-data ``difference``, its bootstrap ``ci`` and two-sided ``p_value``."""

    difference: float
    ci: tuple[float, float]
    p_value: float
    score_a: float
    score_b: float


# --------------------------------------------------------------------------------------------------- CCC


def ccc(x: ArrayLike, y: ArrayLike) -> float:
    """Lin's concordance correlation coefficient of two 1-D series, with population (ddof=0) moments.

    ``CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)``. If both series are constant (both variances
    zero up to float rounding) the ratio is 0/0 and CCC is defined as 0.0; if only one is constant the covariance is
    zero and so is CCC. Computed in float64 from centred values.

    >>> ccc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    1.0
    >>> round(ccc([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]), 6)  # (4/3) / (2/3 + 2/3 + 1)
    0.571429
    >>> ccc([0.5, 0.5], [0.5, 0.5])
    0.0
    """
    xv = np.asarray(x, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    if xv.ndim != 1 or xv.shape != yv.shape:
        raise ValueError(f"ccc needs two 1-D series of the same length; got shapes {xv.shape} and {yv.shape}")
    if xv.size == 0:
        raise ValueError("ccc needs at least one value; got two empty series")
    _check_finite(xv, "ccc x")
    _check_finite(yv, "ccc y")
    return float(_ccc_centred(xv, yv))


def ccc_from_central_moments(
    mean_x: ArrayLike, mean_y: ArrayLike, var_x: ArrayLike, var_y: ArrayLike, cov_xy: ArrayLike
) -> np.ndarray:
    """CCC from means, population variances and covariance; arrays broadcast, float64 array out.

    A variance at most 1e-14 times the mean square counts as zero (constant series): then the covariance is taken as
    zero, and a zero denominator (both constant, equal means) gives 0.0, as in :func:`ccc`.
    """
    return _ccc_core(*(np.asarray(a, dtype=np.float64) for a in (mean_x, mean_y, var_x, var_y, cov_xy)), _CENTRAL_TOL)


def ccc_from_moments(
    n: ArrayLike, sum_x: ArrayLike, sum_y: ArrayLike, sum_xx: ArrayLike, sum_yy: ArrayLike, sum_xy: ArrayLike
) -> np.ndarray:
    """CCC from a count and raw sums (of x, y, x², y², x·y), vectorised over any broadcastable leading shape.

    Moments are population moments (divide by ``n``); ``n == 0`` gives ``nan``. Raw sums cancel digits when the mean
    is large next to the spread, so a variance at most 1e-9 times the mean square counts as zero (constant series);
    the zero-variance rule is that of :func:`ccc`.
    """
    n, sx, sy, sxx, syy, sxy = (np.asarray(a, dtype=np.float64) for a in (n, sum_x, sum_y, sum_xx, sum_yy, sum_xy))
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = sx / n, sy / n
        vx = np.maximum(sxx / n - mx * mx, 0.0)
        vy = np.maximum(syy / n - my * my, 0.0)
        cxy = sxy / n - mx * my
    return np.where(n > 0, _ccc_core(mx, my, vx, vy, cxy, _RAW_TOL), np.nan)


def _ccc_core(mx, my, vx, vy, cxy, tol: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        zero_x = vx <= tol * (vx + mx * mx)
        zero_y = vy <= tol * (vy + my * my)
        cov = np.where(zero_x | zero_y, 0.0, cxy)
        denom = np.where(zero_x, 0.0, vx) + np.where(zero_y, 0.0, vy) + (mx - my) ** 2
        return np.where(denom > 0, 2.0 * cov / denom, 0.0)


def _ccc_centred(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = x.size
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    return _ccc_core(mx, my, dx @ dx / n, dy @ dy / n, dx @ dy / n, _CENTRAL_TOL)


def va_scores(pred: ArrayLike, labels: ArrayLike) -> VAScores:
    """ABAW VA score of ``pred`` against ``labels``, both ``(n, 2)`` (valence, arousal) rows for the same frames.

    Frames whose label is -5 in either column are excluded; every prediction row must be finite.
    """
    p, lab = _va_pair(pred, labels)
    n, mean_p, mean_l, var_p, var_l, cov = _va_moments(p, lab)
    if n == 0:
        raise ValueError("VA labels have no valid frame (every row has -5); nothing to score")
    cv, ca = (float(c) for c in ccc_from_central_moments(mean_p, mean_l, var_p, var_l, cov))
    return VAScores(score=(cv + ca) / 2, ccc_valence=cv, ccc_arousal=ca, frames=int(n))


def _va_moments(p: np.ndarray, lab: np.ndarray) -> tuple[int, np.ndarray, ...]:
    """Valid-frame count, then per dimension: means, population variances and covariance of prediction and label.

    One pass in cache-sized blocks (numpy temporaries the size of 2.6 M rows cost more than the arithmetic), summing
    values shifted by the first block's means so that the raw-sum formulas lose no more than a few digits.
    """
    w0 = _va_valid(lab[:_BLOCK]).astype(np.float64)
    k0 = max(w0.sum(), 1.0)
    c_p, c_l = w0 @ p[:_BLOCK] / k0, w0 @ lab[:_BLOCK] / k0
    rows = min(_BLOCK, p.shape[0])
    shift_p, shift_l = np.tile(c_p, (rows, 1)), np.tile(c_l, (rows, 1))  # same shape as a block: fast subtraction
    n = 0.0
    sums = np.zeros((5, 2))  # sum p, sum l, sum p², sum l², sum p·l, over valid frames
    for start in range(0, p.shape[0], _BLOCK):
        pb, lb = p[start : start + _BLOCK], lab[start : start + _BLOCK]
        if not (np.isfinite(pb).all() and np.isfinite(lb).all()):
            _check_finite(p, "VA predictions")
            _check_finite(lab, "VA labels")
        w = _va_valid(lb).astype(np.float64)
        dp, dl = pb - shift_p[: len(pb)], lb - shift_l[: len(lb)]
        n += w.sum()
        sums += np.stack([w @ dp, w @ dl, w @ (dp * dp), w @ (dl * dl), w @ (dp * dl)])
    with np.errstate(divide="ignore", invalid="ignore"):
        mp, ml = sums[0] / n, sums[1] / n
        var_p = np.maximum(sums[2] / n - mp * mp, 0.0)
        var_l = np.maximum(sums[3] / n - ml * ml, 0.0)
        cov = sums[4] / n - mp * ml
    return int(n), mp + c_p, ml + c_l, var_p, var_l, cov


# --------------------------------------------------------------------------------------------------- F1


def confusion_matrix(pred: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """8×8 int64 confusion matrix, rows = true class, columns = predicted class; frames labelled -1 are left out."""
    p, lab = _expr_arrays(pred, labels)
    return _confusion(p, lab)


def f1_from_confusion(cm: ArrayLike) -> np.ndarray:
    """Per-class F1 ``2·tp / (true + predicted)``, ``(..., K)``, from ``(..., K, K)`` confusion matrices (rows = true).

    A class with no true and no predicted frame gets F1 = 0 (scikit-learn's ``zero_division=0``).
    """
    m = np.asarray(cm)
    if m.ndim < 2 or m.shape[-1] != m.shape[-2]:
        raise ValueError(f"confusion matrices must have shape (..., K, K); got {m.shape}")
    tp = np.diagonal(m, axis1=-2, axis2=-1).astype(np.float64)
    denom = m.sum(axis=-1, dtype=np.float64) + m.sum(axis=-2, dtype=np.float64)
    return np.divide(2.0 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def expr_scores(pred: ArrayLike, labels: ArrayLike) -> ExprScores:
    """ABAW EXPR score: macro-F1 over all 8 classes of hard predictions ``(n,)`` 0..7 against labels ``(n,)``.

    Frames labelled -1 are excluded; a class absent from both labels and predictions still counts, with F1 = 0.
    """
    cm = confusion_matrix(pred, labels)
    frames = int(cm.sum())
    if frames == 0:
        raise ValueError("EXPR labels have no valid frame (every label is -1); nothing to score")
    f1 = f1_from_confusion(cm)
    return ExprScores(score=float(f1.mean()), f1_per_class=tuple(float(v) for v in f1), frames=frames)


def _confusion(p: np.ndarray, lab: np.ndarray) -> np.ndarray:
    k = NUM_EXPR_CLASSES
    counts = np.bincount((lab + 1) * k + p, minlength=(k + 1) * k)  # label -1 lands in the first k bins
    return counts[k:].reshape(k, k).astype(np.int64, copy=False)


def task_scores(task: str, pred: ArrayLike, labels: ArrayLike) -> VAScores | ExprScores:
    """:func:`va_scores` or :func:`expr_scores`, by ``task`` ('va' or 'expr')."""
    return va_scores(pred, labels) if _check_task(task) == "va" else expr_scores(pred, labels)


# --------------------------------------------------------------------------------------------------- per track


def track_statistics(
    task: str, pred: ArrayLike, labels: ArrayLike, track_index: ArrayLike, n_tracks: int | None = None
) -> np.ndarray:
    """Per-track sufficient statistics, ``(n_tracks, m)`` float64, additive over tracks.

    ``track_index`` gives each frame's track 0..n_tracks-1 (default: its maximum + 1). VA: m = 11 columns, the valid
    frame count then (sum_x, sum_y, sum_xx, sum_yy, sum_xy) for valence and for arousal, x = prediction, y = label.
    EXPR: m = 64, the flattened 8×8 confusion matrix. Weighted sums of rows are the statistics of the tracks pooled
    with those multiplicities: :func:`scores_from_counts` scores them.
    """
    task = _check_task(task)
    if task == "expr":
        p, lab = _expr_arrays(pred, labels)
        t, n_tracks = _track_index(track_index, p.shape[0], n_tracks)
        flat = np.where(lab != EXPR_INVALID, t * _EXPR_STATS + lab * NUM_EXPR_CLASSES + p, n_tracks * _EXPR_STATS)
        counts = np.bincount(flat, minlength=(n_tracks + 1) * _EXPR_STATS)[: n_tracks * _EXPR_STATS]
        return counts.reshape(n_tracks, _EXPR_STATS).astype(np.float64)
    p, lab = _va_pair(pred, labels)
    _check_finite(p, "VA predictions")
    _check_finite(lab, "VA labels")
    t, n_tracks = _track_index(track_index, p.shape[0], n_tracks)
    valid = _va_valid(lab)
    t = t[valid]
    out = np.empty((n_tracks, _VA_STATS))
    out[:, 0] = np.bincount(t, minlength=n_tracks)
    for d in range(2):
        x, y = p[:, d][valid], lab[:, d][valid]  # masking 1-D columns is much faster than masking (n, 2) rows
        for j, w in enumerate((x, y, x * x, y * y, x * y)):
            out[:, 1 + 5 * d + j] = np.bincount(t, weights=w, minlength=n_tracks)
    return out


def scores_from_counts(task: str, stats: ArrayLike, counts: ArrayLike) -> np.ndarray:
    """Pooled task score of each weighting of tracks: ``counts (B, T)`` times ``stats (T, m)`` -> ``(B,)`` scores.

    A bootstrap resample is a row of counts (how often each track was drawn); an identity row picks one track.
    """
    s = np.asarray(stats, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or s.ndim != 2 or c.shape[1] != s.shape[0]:
        raise ValueError(f"counts (B, T) and stats (T, m) do not match; got {c.shape} and {s.shape}")
    return _stats_scores(_check_task(task), c @ s)[0]


def per_track_scores(
    task: str, pred: ArrayLike, labels: ArrayLike, track_index: ArrayLike, track_names: Sequence[str]
) -> list[TrackScore]:
    """The task score of each track alone, in ``track_names`` order; frame i belongs to ``track_names[track_index[i]]``.

    EXPR per-track scores are macro-F1 over all 8 classes, as the pooled score is, so a track showing few classes scores
    low. A track with no valid label gets ``score = nan`` and ``frames = 0``.
    """
    names = [str(name) for name in track_names]
    task = _check_task(task)
    stats = track_statistics(task, pred, labels, track_index, n_tracks=len(names))
    frames = stats[:, 0] if task == "va" else stats.sum(axis=1)
    score, parts = _stats_scores(task, stats)
    score = np.where(frames > 0, score, np.nan)
    if task == "expr":
        return [TrackScore(n, float(s), int(f)) for n, s, f in zip(names, score, frames, strict=True)]
    cv, ca = parts
    rows = zip(names, score, frames, cv, ca, strict=True)
    return [TrackScore(n, float(s), int(f), float(v), float(a)) for n, s, f, v, a in rows]


def _stats_scores(task: str, summed: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Scores (and their parts: the two CCCs, or per-class F1) from summed statistics ``(..., m)``."""
    if task == "va":
        cv = ccc_from_moments(*(summed[..., i] for i in (0, 1, 2, 3, 4, 5)))
        ca = ccc_from_moments(*(summed[..., i] for i in (0, 6, 7, 8, 9, 10)))
        return (cv + ca) / 2, (cv, ca)
    k = NUM_EXPR_CLASSES
    f1 = f1_from_confusion(summed.reshape(*summed.shape[:-1], k, k))
    return f1.mean(axis=-1), (f1,)


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
    (stats,) = _valid_track_stats(task, [pred], labels, track_index)
    boot = _bootstrap(task, [stats], n_resamples, np.random.default_rng(seed))[0]
    return _interval(boot, level)


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

    Both systems are scored on the SAME track resamples, so the variation shared by the two (hard videos are hard for
    both) cancels in the difference. ``ci`` is the percentile interval of the resampled differences d*. The p-value
    tests "no difference" by how often the resampled difference falls on either side of zero:
    ``p = min(1, 2 · min(1 + #{d* <= 0}, 1 + #{d* >= 0}) / (n_resamples + 1))`` (the +1 counts the observed data as
    one resample, so p is never 0). Identical systems give difference 0 and p = 1.
    """
    _check_resampling(n_resamples, level)
    score_a = task_scores(task, pred_a, labels).score
    score_b = task_scores(task, pred_b, labels).score
    stats = _valid_track_stats(task, [pred_a, pred_b], labels, track_index)
    boot_a, boot_b = _bootstrap(task, stats, n_resamples, np.random.default_rng(seed))
    diff = boot_a - boot_b
    below = int(np.count_nonzero(diff <= 0))
    above = int(np.count_nonzero(diff >= 0))
    p_value = min(1.0, 2.0 * (1 + min(below, above)) / (n_resamples + 1))
    return PairedComparison(score_a - score_b, _interval(diff, level), p_value, score_a, score_b)


def _valid_track_stats(task: str, preds: list, labels, track_index) -> list[np.ndarray]:
    stats = [track_statistics(task, p, labels, track_index) for p in preds]
    frames = stats[0][:, 0] if _check_task(task) == "va" else stats[0].sum(axis=1)
    keep = frames > 0
    if not keep.any():
        raise ValueError(f"{task} labels have no valid frame in any track; nothing to resample")
    return [s[keep] for s in stats]


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


# --------------------------------------------------------------------------------------------------- input checks


def _check_task(task: str) -> str:
    if task not in TASKS:
        close = difflib.get_close_matches(str(task), TASKS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}{hint}")
    return task


def _check_finite(values: np.ndarray, what: str) -> None:
    if not np.isfinite(values).all():
        rows = ~np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
        bad = np.flatnonzero(rows)
        raise ValueError(
            f"{what} contain {bad.size} row(s) with NaN or inf, the first at row {bad[0]}; "
            "every frame needs a finite value (fill frames without a face from their neighbours)"
        )


def _va_pair(pred, labels) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.float64)
    for what, a in (("VA predictions", p), ("VA labels", lab)):
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"{what} must have shape (n, 2) with columns valence, arousal; got {a.shape}")
    if p.shape[0] != lab.shape[0]:
        raise ValueError(f"VA predictions have {p.shape[0]} rows but labels have {lab.shape[0]}; need one per frame")
    return np.ascontiguousarray(p), np.ascontiguousarray(lab)


def _va_valid(lab: np.ndarray) -> np.ndarray:
    return (lab[:, 0] != VA_INVALID) & (lab[:, 1] != VA_INVALID)


def _expr_arrays(pred, labels) -> tuple[np.ndarray, np.ndarray]:
    p = _classes(pred, "EXPR predictions", 0)
    lab = _classes(labels, "EXPR labels", EXPR_INVALID)
    if p.shape[0] != lab.shape[0]:
        raise ValueError(f"EXPR predictions have {p.shape[0]} rows but labels have {lab.shape[0]}; need one per frame")
    return p, lab


def _classes(values, what: str, lowest: int) -> np.ndarray:
    """``values`` as a 1-D intp array of classes lowest..7; floats must be finite whole numbers."""
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class indices, one per frame; got shape {a.shape}")
    if a.dtype.kind == "f":
        _check_finite(a, what)
        if not np.array_equal(a, np.round(a)):
            bad = np.flatnonzero(a != np.round(a))
            raise ValueError(f"{what} must be whole class indices; {bad.size} are not, the first at row {bad[0]}")
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integer class indices; got dtype {a.dtype}")
    a = a.astype(np.intp, copy=False)
    if a.size and (a.min() < lowest or a.max() >= NUM_EXPR_CLASSES):
        bad = np.flatnonzero((a < lowest) | (a >= NUM_EXPR_CLASSES))
        accepted = f"{lowest}..{NUM_EXPR_CLASSES - 1}" + (" (-1 = invalid)" if lowest < 0 else "")
        raise ValueError(
            f"{what} must be classes {accepted}; {bad.size} value(s) are outside, the first at row {bad[0]} "
            f"(value {a[bad[0]]})"
        )
    return a


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
