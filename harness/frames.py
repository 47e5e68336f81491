"""From step or window predictions to exactly one prediction per frame of a track.

The path the SUN team's systems take (see ABAW.md, "From windows to frames"): average overlapping windows per time
step (:func:`average_windows`), interpolate linearly to the frame times (:func:`frame_times`,
:func:`interpolate_to_frames`), optionally smooth with a Hamming window of about fps/2 frames (:func:`hamming_smooth`),
and fit to the template's row count (:func:`fit_rows`). Frames without a face are filled from their neighbours
(:func:`fill_missing`).

Every function takes ``(rows, K)`` arrays of any width K (VA values, K = 2; EXPR class probabilities, K = 8) and uses
NaN for "no value here". Floating inputs keep their dtype; anything else comes back as float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def frame_times(n_frames: int, fps: float) -> np.ndarray:
    """Times in seconds of frames 1..n_frames: frame i (1-based, as in annotation files) sits at ``(i - 1) / fps``.

    >>> frame_times(3, 25.0)
    array([0.  , 0.04, 0.08])
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, int | np.integer) or n_frames < 0:
        raise ValueError(f"n_frames must be a non-negative integer; got {n_frames!r}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number (read it from the video container); got {fps!r}")
    return np.arange(n_frames, dtype=np.float64) / float(fps)


def average_windows(window_values: ArrayLike, window_starts: ArrayLike, n_steps: int) -> np.ndarray:
    """Average overlapping windows per step: ``(n_windows, W, K)`` values -> ``(n_steps, K)``.

    Window j covers steps ``window_starts[j] .. window_starts[j] + W - 1``; positions at or past ``n_steps`` (the
    padding of a last window) are dropped, and NaN entries are left out of the average. A step that no window covers
    with a value comes back as NaN.

    >>> average_windows(np.array([[[1.0], [2.0]], [[4.0], [6.0]]]), [0, 1], 3)[:, 0]
    array([1., 3., 6.])
    """
    v = _floating(window_values)
    if v.ndim != 3:
        raise ValueError(f"window_values must have shape (n_windows, W, K); got {v.shape}")
    _reject_inf(v, "window_values")
    starts = np.asarray(window_starts)
    n_windows, width, k = v.shape
    if starts.shape != (n_windows,) or (starts.size and starts.dtype.kind not in "iu"):
        raise ValueError(
            f"window_starts must hold one integer step index per window, shape ({n_windows},); "
            f"got shape {starts.shape} and dtype {starts.dtype}"
        )
    if starts.size and starts.min() < 0:
        raise ValueError(f"window_starts must be step indices >= 0; got {int(starts.min())}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer; got {n_steps!r}")
    steps = starts.astype(np.intp)[:, None] + np.arange(width)  # (n_windows, W)
    keep = np.isfinite(v) & (steps < n_steps)[:, :, None]
    flat = (steps[:, :, None] * k + np.arange(k))[keep]  # (step, column) cells, as flat indices
    sums = np.bincount(flat, weights=v[keep].astype(np.float64), minlength=n_steps * k)
    counts = np.bincount(flat, minlength=n_steps * k)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts > 0, sums / counts, np.nan)
    return out.reshape(n_steps, k).astype(v.dtype, copy=False)


def interpolate_to_frames(step_times: ArrayLike, step_values: ArrayLike, frame_times: ArrayLike) -> np.ndarray:
    """Linear interpolation of ``(S, K)`` step values at ``(S,)`` increasing times to ``(F,)`` frame times: ``(F, K)``.

    NaN entries are skipped (each column separately); before the first and after the last value the nearest value is
    held. A column with no value at all cannot be interpolated.

    >>> interpolate_to_frames([0.0, 0.2], [[0.0], [1.0]], [-0.1, 0.05, 0.2, 0.3])[:, 0]
    array([0.  , 0.25, 1.  , 1.  ])
    """
    t = np.asarray(step_times, dtype=np.float64)
    v = _floating(step_values)
    f = np.asarray(frame_times, dtype=np.float64)
    if t.ndim != 1 or v.ndim != 2 or v.shape[0] != t.shape[0]:
        raise ValueError(f"step_times must have shape (S,) and step_values shape (S, K); got {t.shape} and {v.shape}")
    if f.ndim != 1:
        raise ValueError(f"frame_times must have shape (F,); got {f.shape}")
    if not (np.isfinite(t).all() and np.isfinite(f).all()):
        raise ValueError("step_times and frame_times must be finite")
    if t.size > 1 and not (np.diff(t) > 0).all():
        raise ValueError("step_times must be strictly increasing")
    return _interp_columns(t, v, f, "step_values")


def fill_missing(values: ArrayLike) -> np.ndarray:
    """Fill NaN entries of ``(F, K)`` per-frame values (frames without a face) from their neighbours.

    Linear interpolation over the frame index between the nearest frames with a value, each column separately; the
    first value is held before it and the last after it. Entries that have a value are returned unchanged.

    >>> fill_missing(np.array([[np.nan], [1.0], [np.nan], [3.0], [np.nan]]))[:, 0]
    array([1., 1., 2., 3., 3.])
    """
    v = _floating(values)
    if v.ndim != 2:
        raise ValueError(f"values must have shape (F, K); got {v.shape}")
    if v.shape[0] == 0:
        return v.copy()
    index = np.arange(v.shape[0], dtype=np.float64)
    out = _interp_columns(index, v, index, "values")
    known = ~np.isnan(v)
    out[known] = v[known]
    return out


def hamming_smooth(values: ArrayLike, width: float) -> np.ndarray:
    """Centred moving average of ``(F, K)`` values with Hamming weights over ``width`` frames (e.g. fps / 2).

    ``width`` is rounded to whole frames and an even width grows by one so that the window is centred; ``width <= 1``
    returns the values unchanged. Near the ends, and around NaN entries (which are left out), the weights present
    are renormalised to sum to one, so the ends are not pulled toward zero. A row stays NaN only if its whole window
    is NaN.

    >>> hamming_smooth(np.ones((4, 1)), 3)[:, 0]
    array([1., 1., 1., 1.])
    """
    v = _floating(values)
    if v.ndim != 2:
        raise ValueError(f"values must have shape (F, K); got {v.shape}")
    if not np.isfinite(width):
        raise ValueError(f"width must be a finite number of frames; got {width!r}")
    _reject_inf(v, "values")
    w = int(round(width))
    if w <= 1 or v.shape[0] == 0:
        return v.copy()
    w += 1 - w % 2
    kernel = np.hamming(w)
    known = np.isfinite(v)
    data = np.where(known, v, 0.0).astype(np.float64)
    half = (w - 1) // 2
    out = np.empty(v.shape, dtype=np.float64)
    for col in range(v.shape[1]):
        num = np.convolve(data[:, col], kernel)[half : half + v.shape[0]]
        den = np.convolve(known[:, col].astype(np.float64), kernel)[half : half + v.shape[0]]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, col] = np.where(den > 0, num / den, np.nan)
    return out.astype(v.dtype, copy=False)


def fit_rows(values: ArrayLike, n_rows: int) -> np.ndarray:
    """Exactly ``n_rows`` rows: truncate, or pad by repeating the last row (the template's line count is the truth).

    >>> fit_rows(np.array([[1.0], [2.0]]), 4)[:, 0]
    array([1., 2., 2., 2.])
    """
    v = np.asarray(values)
    if v.ndim < 1:
        raise ValueError(f"values must have at least one dimension (rows); got shape {v.shape}")
    if isinstance(n_rows, bool) or not isinstance(n_rows, int | np.integer) or n_rows < 0:
        raise ValueError(f"n_rows must be a non-negative integer; got {n_rows!r}")
    if n_rows <= v.shape[0]:
        return v[:n_rows].copy()
    if v.shape[0] == 0:
        raise ValueError(f"cannot pad an empty prediction to {n_rows} rows: there is no last row to repeat")
    return np.concatenate([v, np.repeat(v[-1:], n_rows - v.shape[0], axis=0)])


def _floating(values: ArrayLike) -> np.ndarray:
    a = np.asarray(values)
    return a if a.dtype.kind == "f" else a.astype(np.float64)


def _reject_inf(values: np.ndarray, what: str) -> None:
    if np.isinf(values).any():
        raise ValueError(f"{what} contain inf; only finite values, or NaN for 'no value', are accepted")


def _interp_columns(x: np.ndarray, values: np.ndarray, x_new: np.ndarray, what: str) -> np.ndarray:
    _reject_inf(values, what)
    out = np.empty((x_new.shape[0], values.shape[1]), dtype=values.dtype)
    for col in range(values.shape[1]):
        known = ~np.isnan(values[:, col])
        if not known.any():
            raise ValueError(
                f"{what} column {col} has no value (all NaN) to interpolate from; "
                "a track needs at least one predicted step or frame"
            )
        out[:, col] = np.interp(x_new, x[known], values[known, col])
    return out
