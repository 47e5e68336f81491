"""From windows and steps to one value per frame: each function on small hand-worked arrays."""

import doctest

import numpy as np
import pytest

from harness import frames
from harness.frames import average_windows, fill_missing, fit_rows, frame_times, hamming_smooth, interpolate_to_frames

NAN = np.nan


def test_doctests():
    assert doctest.testmod(frames).failed == 0


def test_frame_times():
    np.testing.assert_allclose(frame_times(4, 30.0), [0.0, 1 / 30, 2 / 30, 3 / 30], rtol=0, atol=1e-15)
    assert frame_times(0, 25.0).shape == (0,)
    assert frame_times(np.int64(2), 6)[1] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        frame_times(3, 0.0)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        frame_times(3, float("nan"))
    with pytest.raises(ValueError, match="n_frames must be a non-negative integer; got -1"):
        frame_times(-1, 30.0)
    with pytest.raises(ValueError, match="n_frames must be a non-negative integer; got 2.5"):
        frame_times(2.5, 30.0)


WINDOWS = np.array(
    [
        [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]],  # steps 0, 1, 2
        [[5.0, 50.0], [7.0, 70.0], [9.0, 90.0]],  # steps 2, 3, 4
    ]
)


def test_average_windows_overlap_and_uncovered_steps():
    got = average_windows(WINDOWS, np.array([0, 2]), 6)
    want = [[1, 10], [2, 20], [4, 40], [7, 70], [9, 90], [NAN, NAN]]
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float64


def test_average_windows_drops_padding_past_the_end_and_ignores_nan():
    np.testing.assert_array_equal(average_windows(WINDOWS, [0, 2], 4), [[1, 10], [2, 20], [4, 40], [7, 70]])
    holes = WINDOWS.astype(np.float32)
    holes[1, 0, 0] = NAN  # step 2, column 0: only the first window has a value
    holes[0, 0, :] = NAN  # step 0: no value at all
    got = average_windows(holes, [0, 2], 5)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([[NAN, NAN], [2, 20], [3, 40], [7, 70], [9, 90]], np.float32))
    assert average_windows(np.zeros((0, 3, 2)), np.zeros(0, dtype=int), 2).shape == (2, 2)


def test_average_windows_keeps_probabilities_summing_to_one():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(8), size=(6, 4))  # 6 windows of 4 steps, K = 8
    got = average_windows(probs, np.arange(6) * 2, 16)  # stride W/2; the windows cover steps 0..13
    assert got.shape == (16, 8)
    np.testing.assert_allclose(got[:14].sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[3], (probs[0, 3] + probs[1, 1]) / 2, rtol=0, atol=1e-15)
    assert np.isnan(got[14:]).all()


def test_average_windows_rejects_bad_input():
    with pytest.raises(ValueError, match=r"window_values must have shape \(n_windows, W, K\); got \(2, 3\)"):
        average_windows(np.zeros((2, 3)), [0, 1], 4)
    with pytest.raises(ValueError, match=r"one integer step index per window, shape \(2,\); got shape \(3,\)"):
        average_windows(WINDOWS, [0, 1, 2], 4)
    with pytest.raises(ValueError, match="dtype float64"):
        average_windows(WINDOWS, [0.0, 1.0], 4)
    with pytest.raises(ValueError, match="window_starts must be step indices >= 0; got -1"):
        average_windows(WINDOWS, [-1, 1], 4)
    with pytest.raises(ValueError, match="n_steps must be a non-negative integer; got -2"):
        average_windows(WINDOWS, [0, 1], -2)
    bad = WINDOWS.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="window_values contain inf"):
        average_windows(bad, [0, 1], 4)


def test_interpolate_to_frames_linear_with_held_ends_and_skipped_nan():
    steps = np.array([0.0, 0.2, 0.4])
    values = np.array([[0.0, 1.0], [NAN, NAN], [1.0, 3.0]])
    got = interpolate_to_frames(steps, values, [-0.1, 0.0, 0.1, 0.2, 0.3, 0.5])
    np.testing.assert_allclose(got, [[0, 1], [0, 1], [0.25, 1.5], [0.5, 2], [0.75, 2.5], [1, 3]], rtol=0, atol=1e-12)
    single = interpolate_to_frames([1.0], [[0.3, 0.7]], [0.0, 2.0])
    np.testing.assert_array_equal(single, [[0.3, 0.7], [0.3, 0.7]])
    assert interpolate_to_frames(steps, values.astype(np.float32), [0.1]).dtype == np.float32


def test_interpolate_to_frames_probabilities_from_5_fps_to_30_fps():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(8), size=10)
    got = interpolate_to_frames(frame_times(10, 5.0), probs, frame_times(60, 30.0))
    assert got.shape == (60, 8)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[6], probs[1], rtol=0, atol=1e-12)  # frame 7 at 0.2 s is step 1
    np.testing.assert_allclose(got[9], (probs[1] + probs[2]) / 2, rtol=0, atol=1e-12)  # 0.3 s: half-way
    np.testing.assert_allclose(got[-1], probs[-1], rtol=0, atol=1e-12)  # after the last step: held


def test_interpolate_to_frames_rejects_bad_input():
    with pytest.raises(ValueError, match="column 1 has no value"):
        interpolate_to_frames([0.0, 1.0], [[0.0, NAN], [1.0, NAN]], [0.5])
    with pytest.raises(ValueError, match="step_times must be strictly increasing"):
        interpolate_to_frames([0.0, 0.0], [[0.0], [1.0]], [0.5])
    with pytest.raises(ValueError, match=r"step_values shape \(S, K\); got \(2,\) and \(3, 1\)"):
        interpolate_to_frames([0.0, 1.0], [[0.0], [1.0], [2.0]], [0.5])
    with pytest.raises(ValueError, match=r"frame_times must have shape \(F,\)"):
        interpolate_to_frames([0.0, 1.0], [[0.0], [1.0]], [[0.5]])
    with pytest.raises(ValueError, match="must be finite"):
        interpolate_to_frames([0.0, NAN], [[0.0], [1.0]], [0.5])
    with pytest.raises(ValueError, match="step_values contain inf"):
        interpolate_to_frames([0.0, 1.0], [[0.0], [np.inf]], [0.5])


def test_fill_missing():
    values = np.array([[NAN, 5.0], [1.0, NAN], [NAN, NAN], [3.0, 8.0], [NAN, NAN]])
    got = fill_missing(values)
    np.testing.assert_allclose(got, [[1, 5], [1, 6], [2, 7], [3, 8], [3, 8]], rtol=0, atol=1e-12)
    known = ~np.isnan(values)
    np.testing.assert_array_equal(got[known], values[known])
    assert np.isnan(values).sum() == 6  # the input is left alone
    assert fill_missing(np.zeros((0, 8))).shape == (0, 8)
    with pytest.raises(ValueError, match="values column 0 has no value"):
        fill_missing(np.full((3, 2), NAN))
    with pytest.raises(ValueError, match=r"values must have shape \(F, K\); got \(3,\)"):
        fill_missing(np.zeros(3))


def test_hamming_smooth_hand_worked():
    # width 3 -> weights (0.08, 1, 0.08); each output divides by the weights that fall inside the track
    got = hamming_smooth(np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0], [4.0, 0.0], [5.0, 0.0]]), 3)
    want_a = [1.16 / 1.08, 2.0, 3.0, 4.0, 5.32 / 1.08]
    want_b = [0.0, 0.08 / 1.16, 1 / 1.16, 0.08 / 1.16, 0.0]
    np.testing.assert_allclose(got, np.column_stack([want_a, want_b]), rtol=0, atol=1e-12)


def test_hamming_smooth_edges_width_and_nan():
    values = np.random.default_rng(2).normal(size=(20, 8))
    np.testing.assert_array_equal(hamming_smooth(values, 1), values)
    np.testing.assert_array_equal(hamming_smooth(values, 0.4), values)
    np.testing.assert_array_equal(hamming_smooth(values, 4), hamming_smooth(values, 5))  # even widths are centred
    np.testing.assert_array_equal(hamming_smooth(values, 14.985), hamming_smooth(values, 15))  # 29.97 fps / 2
    flat = hamming_smooth(np.full((6, 2), 0.7), 15)  # a window wider than the track
    np.testing.assert_allclose(flat, 0.7, rtol=0, atol=1e-12)  # ends are not pulled toward 0
    probs = np.random.default_rng(3).dirichlet(np.ones(8), size=30)
    np.testing.assert_allclose(hamming_smooth(probs, 9).sum(axis=1), 1.0, rtol=0, atol=1e-12)
    holes = np.array([[1.0], [NAN], [3.0], [NAN], [NAN], [NAN]], dtype=np.float32)
    got = hamming_smooth(holes, 3)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[:4, 0], [1.0, 2.0, 3.0, 3.0], rtol=1e-6)
    assert np.isnan(got[4:]).all()  # no value anywhere in the window
    assert hamming_smooth(np.zeros((0, 2)), 5).shape == (0, 2)


def test_hamming_smooth_rejects_bad_input():
    with pytest.raises(ValueError, match=r"values must have shape \(F, K\); got \(4,\)"):
        hamming_smooth(np.zeros(4), 3)
    with pytest.raises(ValueError, match="width must be a finite number of frames; got nan"):
        hamming_smooth(np.zeros((4, 1)), float("nan"))
    with pytest.raises(ValueError, match="values contain inf"):
        hamming_smooth(np.array([[0.0], [np.inf]]), 3)


def test_fit_rows():
    values = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    np.testing.assert_array_equal(fit_rows(values, 5), [[1, 2], [3, 4], [5, 6], [5, 6], [5, 6]])
    np.testing.assert_array_equal(fit_rows(values, 2), [[1, 2], [3, 4]])
    exact = fit_rows(values, 3)
    np.testing.assert_array_equal(exact, values)
    assert exact is not values
    np.testing.assert_array_equal(fit_rows(np.array([4, 2]), 4), [4, 2, 2, 2])  # 1-D classes
    assert fit_rows(values, 0).shape == (0, 2)
    with pytest.raises(ValueError, match="cannot pad an empty prediction to 3 rows"):
        fit_rows(np.zeros((0, 2)), 3)
    with pytest.raises(ValueError, match="n_rows must be a non-negative integer; got -1"):
        fit_rows(values, -1)
    with pytest.raises(ValueError, match="at least one dimension"):
        fit_rows(np.float64(1.0), 2)
