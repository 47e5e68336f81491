"""Per-track scores and the video-block bootstrap: against slow references, determinism and the paired test."""

import numpy as np
import pytest
from conftest import au_data, expr_data, va_data

from harness.metrics import task_scores
from harness.resampling import (
    MIN_CI_VIDEOS,
    bootstrap_ci,
    ci_note,
    paired_bootstrap,
    paired_from_statistics,
    per_track_scores,
    resample_counts,
    scores_from_counts,
    track_statistics,
)
from harness.tasks import get_task

TOL = 1e-9
DATA = {"va": va_data, "expr": expr_data, "au": au_data}


# ------------------------------------------------------------------------------------------------------ per track


def tracks(sizes):
    return np.repeat(np.arange(len(sizes)), sizes)


def test_per_track_scores_va_and_expr():
    rng = np.random.default_rng(5)
    sizes = [40, 1, 0, 75, 30]
    track_index = tracks(sizes)
    names = ["a_left", "a_right", "empty", "b", "c"]
    pred, labels = va_data(rng, len(track_index))
    labels[track_index == 4] = -5.0  # a track with frames but no valid label
    got = per_track_scores("va", pred, labels, track_index, names)
    assert [t.track for t in got] == names
    for i, t in enumerate(got):
        sel = (track_index == i) & (labels != -5).all(axis=1)
        if not sel.any():
            assert np.isnan(t.score) and t.frames == 0
            continue
        want = task_scores("va", pred[sel], labels[sel])
        assert t.frames == want.frames
        assert t.score == pytest.approx(want.score, abs=TOL)
        assert list(t.parts) == ["ccc_valence", "ccc_arousal"]
        assert (t.parts["ccc_valence"], t.parts["ccc_arousal"]) == pytest.approx(
            (want.ccc_valence, want.ccc_arousal), abs=TOL
        )
    epred, elabels = expr_data(rng, len(track_index))
    got = per_track_scores("expr", epred, elabels, track_index, names)
    for i, t in enumerate(got):
        sel = (track_index == i) & (elabels != -1)
        if sel.any():
            assert t.score == pytest.approx(task_scores("expr", epred[sel], elabels[sel]).score, abs=TOL)
            assert t.frames == sel.sum() and t.parts == {}  # per-class F1 is a vector part: not per track
        else:
            assert np.isnan(t.score) and t.frames == 0


def test_per_track_scores_au():
    rng = np.random.default_rng(16)
    sizes = [50, 3, 0, 80, 20]
    track_index = tracks(sizes)
    names = ["a", "b", "empty", "c", "unlabelled"]
    pred, labels = au_data(rng, len(track_index))
    labels[track_index == 4] = -1
    got = per_track_scores("au", pred, labels, track_index, names)
    assert [t.track for t in got] == names
    for i, t in enumerate(got):
        sel = (track_index == i) & (labels != -1).all(axis=1)
        if not sel.any():
            assert np.isnan(t.score) and t.frames == 0
            continue
        want = task_scores("au", pred[sel], labels[sel])
        assert (t.frames, t.parts) == (want.frames, {})
        assert t.score == pytest.approx(want.score, abs=TOL)


def test_track_index_is_checked():
    pred, labels = expr_data(np.random.default_rng(6), 10)
    with pytest.raises(ValueError, match=r"values must lie in 0\.\.1; got 0\.\.2"):
        per_track_scores("expr", pred, labels, np.arange(10) % 3, ["x", "y"])
    with pytest.raises(ValueError, match=r"values must lie in 0\.\.2; got -1\.\.2"):
        per_track_scores("expr", pred, labels, np.arange(10) % 4 - 1, ["x", "y", "z"])
    with pytest.raises(ValueError, match=r"shape \(10,\); got shape \(9,\)"):
        track_statistics("expr", pred, labels, np.zeros(9, dtype=int))
    with pytest.raises(ValueError, match="dtype float64"):
        track_statistics("expr", pred, labels, np.zeros(10))
    with pytest.raises(ValueError, match="unknown task 'vaa'; expected one of va, expr, au; did you mean 'va'"):
        track_statistics("vaa", pred, labels, np.zeros(10, dtype=int))


# ------------------------------------------------------------------------------------------------------ bootstrap


def expand(pred, labels, track_index, counts):
    """The frames of a resample, built the slow way: each track's frames repeated as often as it was drawn."""
    rows = np.concatenate([np.flatnonzero(track_index == t) for t, c in enumerate(counts) for _ in range(c)])
    return pred[rows], labels[rows]


@pytest.mark.parametrize("task", ["va", "expr", "au"])
def test_scores_from_counts_equals_slow_loop(task):
    rng = np.random.default_rng(7)
    track_index = tracks(rng.integers(5, 60, 12))
    pred, labels = DATA[task](rng, len(track_index))
    stats = track_statistics(task, pred, labels, track_index)
    counts = resample_counts(np.random.default_rng(0), 12, 6)
    got = scores_from_counts(task, stats, counts)
    want = [task_scores(task, *expand(pred, labels, track_index, c)).score for c in counts]
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    with pytest.raises(ValueError, match=r"counts \(B, T\) and stats \(T, m\) do not match"):
        scores_from_counts(task, stats, counts[:, :5])


def test_resample_counts():
    a = resample_counts(np.random.default_rng(3), 7, 100)
    b = resample_counts(np.random.default_rng(3), 7, 100)
    assert a.shape == (100, 7) and (a.sum(axis=1) == 7).all() and (a >= 0).all()
    np.testing.assert_array_equal(a, b)


def autocorrelated_va(rng, n_tracks, frames):
    """Tracks whose prediction error is a per-track bias: frames of one track are far from independent."""
    track_index = np.repeat(np.arange(n_tracks), frames)
    labels = rng.uniform(-1, 1, (len(track_index), 2))
    bias = rng.normal(0, 0.5, (n_tracks, 2))[track_index]
    pred = labels + bias + rng.normal(0, 0.05, labels.shape)
    return pred, labels, track_index


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    rng = np.random.default_rng(8)
    pred, labels, track_index = autocorrelated_va(rng, 30, 50)
    point = task_scores("va", pred, labels).score
    low, high = bootstrap_ci("va", pred, labels, track_index, n_resamples=2000, seed=1)
    assert low < point < high
    assert bootstrap_ci("va", pred, labels, track_index, n_resamples=2000, seed=1) == (low, high)
    assert bootstrap_ci("va", pred, labels, track_index, n_resamples=2000, seed=2) != (low, high)
    narrow = bootstrap_ci("va", pred, labels, track_index, n_resamples=2000, level=0.5, seed=1)
    assert low < narrow[0] < narrow[1] < high
    epred, elabels = expr_data(rng, len(track_index))
    point = task_scores("expr", epred, elabels).score
    low, high = bootstrap_ci("expr", epred, elabels, track_index, n_resamples=3000)  # > one chunk of resamples
    assert low < point < high


def test_ci_note_marks_intervals_over_fewer_than_five_videos():
    assert MIN_CI_VIDEOS == 5
    assert ci_note(1) == "over 1 video: not meaningful (fewer than 5)"
    assert ci_note(4) == "over 4 videos: not meaningful (fewer than 5)"
    assert ci_note(5) is None and ci_note(200) is None


def test_track_bootstrap_is_wider_than_frame_bootstrap_on_autocorrelated_data():
    pred, labels, track_index = autocorrelated_va(np.random.default_rng(9), 40, 100)
    by_track = bootstrap_ci("va", pred, labels, track_index, n_resamples=1000)
    by_frame = bootstrap_ci("va", pred, labels, np.arange(len(track_index)), n_resamples=1000)  # every frame a track
    assert by_track[1] - by_track[0] > 3 * (by_frame[1] - by_frame[0])


def test_bootstrap_ignores_tracks_without_valid_labels():
    rng = np.random.default_rng(10)
    pred, labels, track_index = autocorrelated_va(rng, 20, 30)
    more = np.concatenate([track_index, np.full(30, 20)])
    extra_labels = np.concatenate([labels, np.full((30, 2), -5.0)])
    extra_pred = np.concatenate([pred, np.zeros((30, 2))])
    assert bootstrap_ci("va", extra_pred, extra_labels, more, n_resamples=500) == bootstrap_ci(
        "va", pred, labels, track_index, n_resamples=500
    )
    with pytest.raises(ValueError, match="no valid frame in any track"):
        bootstrap_ci("va", pred, np.full_like(labels, -5.0), track_index)


def test_bootstrap_rejects_bad_settings():
    pred, labels = expr_data(np.random.default_rng(11), 20)
    track_index = np.arange(20) % 4
    with pytest.raises(ValueError, match="n_resamples must be a positive integer; got 0"):
        bootstrap_ci("expr", pred, labels, track_index, n_resamples=0)
    with pytest.raises(ValueError, match="n_resamples must be a positive integer; got 10.0"):
        paired_bootstrap("expr", pred, pred, labels, track_index, n_resamples=10.0)
    with pytest.raises(ValueError, match="level must lie strictly between 0 and 1"):
        bootstrap_ci("expr", pred, labels, track_index, level=95)


def test_paired_bootstrap_identical_systems():
    pred, labels, track_index = autocorrelated_va(np.random.default_rng(12), 20, 40)
    got = paired_bootstrap("va", pred, pred.copy(), labels, track_index, n_resamples=500)
    assert got.difference == 0.0 and got.ci == (0.0, 0.0) and got.p_value == 1.0
    assert got.score_a == got.score_b == task_scores("va", pred, labels).score


@pytest.mark.parametrize("task", ["va", "expr"])
def test_paired_bootstrap_clearly_better_system(task):
    rng = np.random.default_rng(13)
    track_index = np.repeat(np.arange(30), 60)
    if task == "va":
        labels = rng.uniform(-1, 1, (len(track_index), 2))
        good = labels + rng.normal(0, 0.2, labels.shape)
        bad = labels + rng.normal(0, 0.8, labels.shape)
    else:
        labels = rng.integers(0, 8, len(track_index))
        good = np.where(rng.random(len(labels)) < 0.8, labels, rng.integers(0, 8, len(labels)))
        bad = np.where(rng.random(len(labels)) < 0.3, labels, rng.integers(0, 8, len(labels)))
    got = paired_bootstrap(task, good, bad, labels, track_index, n_resamples=999)
    assert got.difference == pytest.approx(
        task_scores(task, good, labels).score - task_scores(task, bad, labels).score, abs=1e-15
    )
    assert got.difference > 0 and got.ci[0] > 0
    assert got.p_value == pytest.approx(2 / 1000)  # no resample reverses the order: the smallest p possible
    flipped = paired_bootstrap(task, bad, good, labels, track_index, n_resamples=999)
    assert flipped.difference == -got.difference and flipped.p_value == got.p_value


@pytest.mark.parametrize("task", ["va", "expr", "au"])
def test_paired_from_statistics_is_paired_bootstrap_from_stored_statistics(task):
    rng = np.random.default_rng(14)
    track_index = np.repeat(np.arange(25), 40)
    pred_a, labels = DATA[task](rng, len(track_index))
    pred_b = DATA[task](rng, len(track_index))[0]
    labels[track_index == 3] = get_task(task).invalid_labels(40)  # a track that is never drawn
    stats_a, stats_b = (track_statistics(task, p, labels, track_index) for p in (pred_a, pred_b))
    raw = paired_bootstrap(task, pred_a, pred_b, labels, track_index, n_resamples=700, seed=4)
    scores = (raw.score_a, raw.score_b)
    assert paired_from_statistics(task, stats_a, stats_b, 700, seed=4, scores=scores) == raw
    pooled = paired_from_statistics(task, stats_a, stats_b, 700, seed=4)
    assert (pooled.ci, pooled.p_value) == (raw.ci, raw.p_value)
    assert (pooled.score_a, pooled.score_b) == pytest.approx(scores, abs=TOL)


def test_paired_from_statistics_rejects_mismatched_statistics():
    pred, labels = va_data(np.random.default_rng(15), 60)
    track_index = np.arange(60) % 6
    stats = track_statistics("va", pred, labels, track_index)
    with pytest.raises(ValueError, match=r"must both be va track statistics of shape \(n_tracks, 11\); got \(6, 11\)"):
        paired_from_statistics("va", stats, stats[:5])
    with pytest.raises(ValueError, match=r"shape \(n_tracks, 64\); got \(6, 11\) and \(6, 11\)"):
        paired_from_statistics("expr", stats, stats)
    other = stats.copy()
    other[2, 0] += 1
    with pytest.raises(ValueError, match="count different valid frames in row 2"):
        paired_from_statistics("va", stats, other)
    with pytest.raises(ValueError, match="no valid frame in any track"):
        paired_from_statistics("va", stats * 0, stats * 0)
    with pytest.raises(ValueError, match="n_resamples must be a positive integer; got 0"):
        paired_from_statistics("va", stats, stats, n_resamples=0)


def test_au_bootstrap_and_paired_test():
    rng = np.random.default_rng(17)
    track_index = np.repeat(np.arange(30), 60)
    good, labels = au_data(rng, len(track_index), flip=0.1)
    bad = np.where(rng.random(good.shape) < 0.35, 1 - np.maximum(labels, 0), np.maximum(labels, 0)).astype(np.int8)
    point = task_scores("au", good, labels).score
    low, high = bootstrap_ci("au", good, labels, track_index, n_resamples=1500, seed=3)
    assert low < point < high
    assert bootstrap_ci("au", good, labels, track_index, n_resamples=1500, seed=3) == (low, high)
    got = paired_bootstrap("au", good, bad, labels, track_index, n_resamples=999)
    assert got.difference == pytest.approx(point - task_scores("au", bad, labels).score, abs=1e-15)
    assert got.difference > 0 and got.ci[0] > 0 and got.p_value == pytest.approx(2 / 1000)
    same = paired_bootstrap("au", good, good.copy(), labels, track_index, n_resamples=300)
    assert same.difference == 0.0 and same.ci == (0.0, 0.0) and same.p_value == 1.0
    stats = track_statistics("au", good, labels, track_index)
    with pytest.raises(ValueError, match=r"must both be au track statistics of shape \(n_tracks, 37\); got \(30, 37\)"):
        paired_from_statistics("au", stats, stats[:, :36].copy())
