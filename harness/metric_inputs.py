"""Checks and coercions of the arrays the ABAW metrics take: task names, finite values, VA rows, EXPR classes.

Shared by :mod:`harness.metrics` and :mod:`harness.resampling` so that both refuse bad input with the same messages.
Each function returns the validated input (float64 or intp arrays) or raises ``ValueError`` naming what was wrong.
"""

from __future__ import annotations

import difflib

import numpy as np

from harness.tasks import EXPR_INVALID, NUM_EXPR_CLASSES, TASKS, VA_INVALID


def check_task(task: str) -> str:
    """``task`` itself when it is 'va' or 'expr'; otherwise a ``ValueError`` with a did-you-mean."""
    if task not in TASKS:
        close = difflib.get_close_matches(str(task), TASKS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}{hint}")
    return task


def check_finite(values: np.ndarray, what: str) -> None:
    """Refuse NaN or inf anywhere in ``values``, naming the count of bad rows and the first one."""
    if not np.isfinite(values).all():
        rows = ~np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)
        bad = np.flatnonzero(rows)
        raise ValueError(
            f"{what} contain {bad.size} row(s) with NaN or inf, the first at row {bad[0]}; "
            "every frame needs a finite value (fill frames without a face from their neighbours)"
        )


def va_pair(pred, labels) -> tuple[np.ndarray, np.ndarray]:
    """VA predictions and labels as contiguous float64 ``(n, 2)`` arrays with the same number of rows."""
    p = np.asarray(pred, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.float64)
    for what, a in (("VA predictions", p), ("VA labels", lab)):
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"{what} must have shape (n, 2) with columns valence, arousal; got {a.shape}")
    if p.shape[0] != lab.shape[0]:
        raise ValueError(f"VA predictions have {p.shape[0]} rows but labels have {lab.shape[0]}; need one per frame")
    return np.ascontiguousarray(p), np.ascontiguousarray(lab)


def va_valid(lab: np.ndarray) -> np.ndarray:
    """Rows of VA labels with no -5 in either column."""
    return (lab[:, 0] != VA_INVALID) & (lab[:, 1] != VA_INVALID)


def expr_arrays(pred, labels) -> tuple[np.ndarray, np.ndarray]:
    """EXPR predictions (classes 0..7) and labels (-1..7) as 1-D intp arrays of the same length."""
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
        check_finite(a, what)
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
