"""The math of the ABAW metrics: CCC and F1 from their sufficient statistics, as pure functions over numpy arrays.

Each task's score is its definition's (:mod:`harness.tasks`: VA the mean CCC, EXPR the macro F1, AU the mean per-AU
F1), built from these pieces; :func:`task_scores` asks the task. Definitions follow the 6th ABAW protocol: scores pool
all frames of all tracks into one vector; frames whose label is invalid are excluded; every frame still needs a finite
prediction.

Sufficient statistics are public so that fusion and resampling code reuses them instead of re-deriving the metric:
:func:`ccc_from_moments` / :func:`ccc_from_central_moments` for CCC, :func:`confusion_counts` /
:func:`f1_from_confusion` for F1. Per-track scores and the video-block bootstrap, which re-weight whole tracks, live in
:mod:`harness.resampling`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from harness.metric_inputs import check_finite

# A variance at most this fraction of the mean square is rounding noise, i.e. the series is constant. Raw sums
# (sum of squares minus squared sum) lose far more digits than centred sums, hence two tolerances.
_CENTRAL_TOL = 1e-14
_RAW_TOL = 1e-9
_BLOCK = 1 << 15  # frames per cache-sized block in the VA score


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
    check_finite(xv, "ccc x")
    check_finite(yv, "ccc y")
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
    """CCC from moments, clipped to [-1, 1]: |CCC| <= 1 exactly, but float rounding lands a perfect (or perfectly
    anti-correlated) prediction a few ulps outside (1.0000000000000047); the clip moves nothing inside the range."""
    with np.errstate(divide="ignore", invalid="ignore"):
        zero_x = vx <= tol * (vx + mx * mx)
        zero_y = vy <= tol * (vy + my * my)
        cov = np.where(zero_x | zero_y, 0.0, cxy)
        denom = np.where(zero_x, 0.0, vx) + np.where(zero_y, 0.0, vy) + (mx - my) ** 2
        return np.clip(np.where(denom > 0, 2.0 * cov / denom, 0.0), -1.0, 1.0)


def _ccc_centred(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = x.size
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    return _ccc_core(mx, my, dx @ dx / n, dy @ dy / n, dx @ dy / n, _CENTRAL_TOL)


def va_moments(p: np.ndarray, lab: np.ndarray, valid) -> tuple[int, np.ndarray, ...]:
    """Valid-frame count (``valid(labels)`` masks the frames that count), then per dimension: means, population
    variances and covariance of prediction and label.

    One pass in cache-sized blocks (numpy temporaries the size of 2.6 M rows cost more than the arithmetic), summing
    values shifted by the first block's means so that the raw-sum formulas lose no more than a few digits.
    """
    w0 = valid(lab[:_BLOCK]).astype(np.float64)
    k0 = max(w0.sum(), 1.0)
    c_p, c_l = w0 @ p[:_BLOCK] / k0, w0 @ lab[:_BLOCK] / k0
    rows = min(_BLOCK, p.shape[0])
    shift_p, shift_l = np.tile(c_p, (rows, 1)), np.tile(c_l, (rows, 1))  # same shape as a block: fast subtraction
    n = 0.0
    sums = np.zeros((5, 2))  # sum p, sum l, sum p², sum l², sum p·l, over valid frames
    for start in range(0, p.shape[0], _BLOCK):
        pb, lb = p[start : start + _BLOCK], lab[start : start + _BLOCK]
        if not (np.isfinite(pb).all() and np.isfinite(lb).all()):
            check_finite(p, "VA predictions")
            check_finite(lab, "VA labels")
        w = valid(lb).astype(np.float64)
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


def confusion_counts(true: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """``(classes, classes)`` int64 confusion matrix of checked class arrays, rows = true class; true -1 is left out."""
    counts = np.bincount((true + 1) * classes + pred, minlength=(classes + 1) * classes)  # -1 lands in the first row
    return counts[classes:].reshape(classes, classes).astype(np.int64, copy=False)


def task_scores(task: str, pred: ArrayLike, labels: ArrayLike):
    """The pooled ABAW score of ``task`` (a registered name) as a :class:`harness.tasks.TaskScores`."""
    from harness.tasks import get_task

    return get_task(task).scores(pred, labels)
