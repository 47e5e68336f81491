"""A track on a fixed-rate step grid: window starts, labels sampled at step centres, windows back to frames.

The audio and temporal kinds work at a few steps a second (5 for valence/arousal, 1 for expressions), over
windows of W steps that advance by a hop. Step ``j`` covers ``[j / rate, (j + 1) / rate)`` seconds and stands at
its centre; frame ``i`` (1-based) of a track sits at ``(i - 1) / fps`` with the container's real fps.
"""

import math

import numpy as np

from harness.frames import average_windows, frame_times, interpolate_to_frames


def n_steps(n_rows: int, fps: float, rate: float) -> int:
    """Steps needed to cover a track of ``n_rows`` frames (at least one)."""
    return max(1, math.ceil(n_rows / fps * rate - 1e-9))


def window_starts(total_steps: int, width: int, hop: int) -> np.ndarray:
    """Start step of each window: every ``hop`` steps, plus one window ending at the last step.

    A track shorter than one window gets a single window at 0 (its tail is padding).

    >>> window_starts(25, 20, 10).tolist()
    [0, 5]
    >>> window_starts(8, 20, 10).tolist()
    [0]
    """
    last = max(total_steps - width, 0)
    starts = list(range(0, last + 1, hop))
    if starts[-1] != last:
        starts.append(last)
    return np.asarray(starts, dtype=np.int64)


def step_centres(total_steps: int, rate: float) -> np.ndarray:
    """Time in seconds of the centre of every step."""
    return (np.arange(total_steps) + 0.5) / rate


def step_rows(total_steps: int, rate: float, fps: float, n_rows: int) -> np.ndarray:
    """For each step, the 0-based label row of the frame at the step's centre; -1 past the track's end."""
    rows = np.floor(step_centres(total_steps, rate) * fps + 1e-9).astype(np.int64)
    return np.where(rows < n_rows, rows, -1)


def windows_to_frames(
    window_values: np.ndarray, starts: np.ndarray, total_steps: int, rate: float, n_rows: int, fps: float
) -> np.ndarray:
    """Window predictions ``(n_windows, W, K)`` → one row per frame: overlapping windows averaged per step, then
    linear interpolation from step centres to frame times (first/last value held at the ends)."""
    per_step = average_windows(window_values, starts, total_steps)
    return interpolate_to_frames(step_centres(total_steps, rate), per_step, frame_times(n_rows, fps))
