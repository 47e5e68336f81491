"""The step grid of the audio and temporal kinds: window starts, label rows at step centres, windows to frames."""

import numpy as np
import pytest

from harness.steps import n_steps, step_rows, window_starts, windows_to_frames


def test_windows_cover_every_step_and_the_last_one_ends_the_track() -> None:
    assert window_starts(100, 20, 10).tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80]
    assert window_starts(105, 20, 10).tolist() == [0, 10, 20, 30, 40, 50, 60, 70, 80, 85]
    assert window_starts(3, 4, 2).tolist() == [0]  # shorter than one window: one padded window


@pytest.mark.parametrize("fps", [30.0, 30000 / 1001, 25.0, 6.0])
def test_step_rows_sit_at_step_centres_with_the_real_fps(fps: float) -> None:
    n_rows = 61
    total = n_steps(n_rows, fps, 5.0)
    rows = step_rows(total, 5.0, fps, n_rows)
    centres = (np.arange(total) + 0.5) / 5.0
    inside = rows >= 0
    assert np.all(rows[inside] / fps <= centres[inside] + 1e-9)
    assert np.all((rows[inside] + 1) / fps > centres[inside])
    assert total == int(np.ceil(n_rows / fps * 5.0 - 1e-9))


def test_windows_to_frames_averages_overlaps_and_interpolates() -> None:
    fps, rate, n_rows = 10.0, 5.0, 20  # 2 s: 10 steps
    starts = window_starts(10, 4, 2)
    values = np.stack([np.full((4, 1), float(i)) for i in range(len(starts))])
    frames = windows_to_frames(values, starts, 10, rate, n_rows, fps)
    assert frames.shape == (n_rows, 1)
    per_step = np.array([0, 0, 0.5, 0.5, 1.5, 1.5, 2.5, 2.5, 3, 3])
    expected = np.interp(np.arange(n_rows) / fps, (np.arange(10) + 0.5) / rate, per_step)
    np.testing.assert_allclose(frames[:, 0], expected)


def test_a_track_shorter_than_one_window_is_still_predicted() -> None:
    frames = windows_to_frames(np.ones((1, 20, 2)), window_starts(3, 20, 10), 3, 5.0, 15, 25.0)
    assert frames.shape == (15, 2) and np.all(frames == 1)
