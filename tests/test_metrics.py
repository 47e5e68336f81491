"""ABAW point metrics against independent references (numpy moments, scikit-learn) and their edge cases."""

import doctest

import numpy as np
import pytest
from conftest import au_data, expr_data, va_data
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score

from harness import metrics
from harness.metrics import (
    ccc,
    ccc_from_central_moments,
    ccc_from_moments,
    confusion_counts,
    f1_from_confusion,
    task_scores,
)
from harness.tasks import get_task

TOL = 1e-9
VA, EXPR, AU = get_task("va"), get_task("expr"), get_task("au")


def ref_ccc(x, y):
    """Lin's CCC written out with numpy's population moments, independently of harness.metrics."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    cov = np.cov(x, y, ddof=0)[0, 1]
    denom = np.var(x) + np.var(y) + (x.mean() - y.mean()) ** 2
    return 0.0 if denom == 0 else 2 * cov / denom


def ref_f1(pred, labels):
    keep = labels != -1
    return f1_score(labels[keep], pred[keep], labels=range(8), average=None, zero_division=0)


def confusion(pred, labels):
    """The EXPR confusion matrix of checked predictions and labels (rows = true class, -1 left out)."""
    p, lab = EXPR.check_pair(pred, labels)
    return confusion_counts(lab, p, EXPR.width)


def test_doctests():
    assert doctest.testmod(metrics).failed == 0


# ------------------------------------------------------------------------------------------------------ CCC


@pytest.mark.parametrize("n", [2, 7, 1000])
@pytest.mark.parametrize("offset", [0.0, 3.0, -250.0])
def test_ccc_matches_numpy_reference(n, offset):
    rng = np.random.default_rng(n)
    x = rng.normal(offset, 1.0, n)
    y = 0.5 * x + rng.normal(0.2, 0.7, n)
    assert ccc(x, y) == pytest.approx(ref_ccc(x, y), abs=TOL)
    assert ccc(x, y) == pytest.approx(ccc(y, x), abs=1e-15)


def test_ccc_edge_cases():
    x = np.array([0.1, -0.4, 0.9, 0.3])
    assert ccc(x, x) == pytest.approx(1.0, abs=1e-15)
    assert ccc(x, -x) == pytest.approx(ref_ccc(x, -x), abs=TOL)
    assert ccc(x, np.full(4, 0.2)) == 0.0  # one constant: zero covariance
    assert ccc(np.full(4, 0.3), np.full(4, 0.3)) == 0.0  # both constant and equal: 0/0 defined as 0
    assert ccc(np.full(4, 0.3), np.full(4, -0.7)) == 0.0
    assert ccc(np.full(10**5, 0.1), np.full(10**5, 0.1)) == 0.0  # rounding noise in the mean is not variance
    assert ccc([0.5], [0.2]) == 0.0  # a single frame has no variance


def test_ccc_is_clipped_to_minus_one_one_after_rounding():
    # Perfectly anti-correlated series (y mirrors x about its mean): float rounding lands some a few ulps below -1
    # (seed 11 gives -1.0000000000000002 unclipped); a perfect fusion of copies of the label lands some above 1.
    from harness.fusion_math import va_candidate_scores, va_moments

    anti, perfect = [], []
    for seed in range(100):
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, 50)
        y = 2 * x.mean() - x
        n, sums = x.size, (x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())
        anti += [ccc(x, y), float(ccc_from_moments(n, *sums))]
        labels = rng.uniform(-1, 1, (40, 2))
        weights = rng.dirichlet(np.ones(3), size=(1, 2)).transpose(0, 2, 1)
        perfect.append(float(va_candidate_scores(weights, va_moments(np.stack([labels] * 3), labels))[0]))
        perfect.append(VA.scores(labels, labels).score)
    assert min(anti) == -1.0 and max(anti) < -1.0 + 1e-12
    assert max(perfect) == 1.0 and min(perfect) > 1.0 - 1e-12
    assert ccc_from_central_moments(0.2, 0.2, 1.0, 1.0, 1.0000000000000047) == 1.0
    assert ccc_from_central_moments([0.2, 0.0], [0.2, 0.0], 1.0, 1.0, [-1.0000000000000047, 0.5]).tolist() == [
        -1.0,
        0.5,
    ]


def test_ccc_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        ccc([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same length"):
        ccc(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="at least one value"):
        ccc([], [])
    with pytest.raises(ValueError, match=r"ccc x contain 1 row\(s\) with NaN or inf, the first at row 1"):
        ccc([0.0, np.nan, 1.0], [0.0, 1.0, 2.0])


def test_ccc_from_moments_vectorised():
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 1.0, (3, 4, 50))
    y = x + rng.normal(-0.1, 0.5, (3, 4, 50))
    got = ccc_from_moments(50, x.sum(-1), y.sum(-1), (x * x).sum(-1), (y * y).sum(-1), (x * y).sum(-1))
    want = np.array([[ref_ccc(a, b) for a, b in zip(xr, yr, strict=True)] for xr, yr in zip(x, y, strict=True)])
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    dx, dy = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    central = ccc_from_central_moments(x.mean(-1), y.mean(-1), x.var(-1), y.var(-1), (dx * dy).mean(-1))
    np.testing.assert_allclose(central, want, rtol=0, atol=TOL)


def test_ccc_from_moments_edge_cases():
    const = np.full(10**5, 0.1)
    s, ss = const.sum(), (const * const).sum()
    assert ccc_from_moments(const.size, s, s, ss, ss, ss) == 0.0  # both constant despite rounding in raw sums
    assert np.isnan(ccc_from_moments(0, 0.0, 0.0, 0.0, 0.0, 0.0))
    assert ccc_from_central_moments(0.5, 0.5, 0.0, 0.0, 0.0) == 0.0


def test_va_scores_match_reference_and_exclude_invalid_frames():
    pred, labels = va_data(np.random.default_rng(2), 5000)
    keep = (labels != -5).all(axis=1)
    got = VA.scores(pred, labels)
    assert got.frames == keep.sum() < 5000
    assert got.ccc_valence == pytest.approx(ref_ccc(pred[keep, 0], labels[keep, 0]), abs=TOL)
    assert got.ccc_arousal == pytest.approx(ref_ccc(pred[keep, 1], labels[keep, 1]), abs=TOL)
    assert got.score == pytest.approx((got.ccc_valence + got.ccc_arousal) / 2, abs=1e-15)
    assert task_scores("va", pred, labels) == got


def test_va_scores_over_many_blocks_and_with_offset():
    pred, labels = va_data(np.random.default_rng(3), 200_003, invalid=0.3, offset=40.0)
    labels[:70_000] = -5.0  # the whole first block invalid
    keep = (labels != -5).all(axis=1)
    got = VA.scores(pred, labels)
    assert got.ccc_valence == pytest.approx(ref_ccc(pred[keep, 0], labels[keep, 0]), abs=TOL)
    assert got.ccc_arousal == pytest.approx(ref_ccc(pred[keep, 1], labels[keep, 1]), abs=TOL)


def test_va_scores_edge_cases():
    labels = np.array([[0.1, 0.2], [0.3, -0.4], [-5.0, 0.5], [0.7, -5.0]])
    assert VA.scores(np.full((4, 2), 0.25), labels).score == 0.0  # constant predictions
    assert VA.scores(np.full((2, 2), 0.4), np.full((2, 2), 0.4)).score == 0.0  # both constant
    single = VA.scores([[0.1, 0.2]], [[0.1, 0.2]])
    assert (single.score, single.frames) == (0.0, 1)
    assert VA.scores(labels.clip(-1, 1), labels).score == pytest.approx(1.0, abs=1e-12)


def test_va_scores_reject_bad_input():
    labels = np.zeros((5, 2))
    labels[:, 0] = np.arange(5)
    with pytest.raises(ValueError, match=r"VA predictions must have shape \(n, 2\)"):
        VA.scores(np.zeros((5, 3)), labels)
    with pytest.raises(ValueError, match=r"VA labels must have shape \(n, 2\)"):
        VA.scores(np.zeros((5, 2)), np.zeros(5))
    with pytest.raises(ValueError, match="VA predictions have 4 rows but labels have 5"):
        VA.scores(np.zeros((4, 2)), labels)
    pred = np.zeros((5, 2))
    pred[3, 1], pred[4, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"VA predictions contain 2 row\(s\) with NaN or inf, the first at row 3"):
        VA.scores(pred, labels)
    labels[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"VA labels contain 1 row\(s\) with NaN or inf, the first at row 1"):
        VA.scores(np.zeros((5, 2)), labels)
    with pytest.raises(ValueError, match="no valid frame"):
        VA.scores(np.zeros((3, 2)), np.full((3, 2), -5.0))
    with pytest.raises(ValueError, match="no valid frame"):
        VA.scores(np.zeros((0, 2)), np.zeros((0, 2)))


# ------------------------------------------------------------------------------------------------------ F1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expr_scores_match_sklearn(seed):
    pred, labels = expr_data(np.random.default_rng(seed), 3000)
    keep = labels != -1
    got = EXPR.scores(pred, labels)
    np.testing.assert_allclose(got.f1_per_class, ref_f1(pred, labels), rtol=0, atol=TOL)
    macro = f1_score(labels[keep], pred[keep], labels=range(8), average="macro", zero_division=0)
    assert got.score == pytest.approx(macro, abs=TOL)
    assert got.frames == keep.sum()
    want_cm = sk_confusion(labels[keep], pred[keep], labels=range(8))
    cm = confusion(pred, labels)
    assert cm.dtype == np.int64 and cm.shape == (8, 8)
    np.testing.assert_array_equal(cm, want_cm)
    assert task_scores("expr", pred, labels) == got


def test_expr_scores_edge_cases():
    labels = np.array([0, 0, 4, 4, 7, -1, -1])
    pred = np.array([0, 4, 4, 4, 7, 3, 2])  # classes 1, 5, 6 absent from both; 2, 3 predicted only on invalid frames
    got = EXPR.scores(pred, labels)
    np.testing.assert_allclose(got.f1_per_class, ref_f1(pred, labels), rtol=0, atol=TOL)
    assert got.f1_per_class[1] == got.f1_per_class[2] == 0.0
    assert got.score == pytest.approx(sum(ref_f1(pred, labels)) / 8, abs=TOL)
    assert EXPR.scores([3], [3]).score == 1 / 8  # single frame, right class: one F1 of 1 among 8
    assert EXPR.scores(np.full(6, 4), np.array([4, 4, 0, 0, 4, 7])).score == pytest.approx(
        f1_score([4, 4, 0, 0, 4, 7], [4] * 6, labels=range(8), average="macro", zero_division=0), abs=TOL
    )
    float_pred = EXPR.scores(pred.astype(np.float32), labels)  # whole-number floats are accepted
    assert float_pred == got


def test_f1_from_confusion_vectorised():
    rng = np.random.default_rng(4)
    cms = rng.integers(0, 20, (5, 3, 8, 8))
    cms[0, 0] = 0
    got = f1_from_confusion(cms)
    assert got.shape == (5, 3, 8)
    for i in range(5):
        for j in range(3):
            cm = cms[i, j]
            want = [2 * cm[k, k] / d if (d := cm[k].sum() + cm[:, k].sum()) else 0.0 for k in range(8)]
            np.testing.assert_allclose(got[i, j], want, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., K, K\)"):
        f1_from_confusion(np.zeros((8, 7)))


def test_expr_scores_reject_bad_input():
    labels = np.array([0, 1, 2, -1])
    outside = r"EXPR predictions must be classes 0\.\.7; 2 value\(s\) are outside, the first at row 1 \(value 8\)"
    with pytest.raises(ValueError, match=outside):
        EXPR.scores([0, 8, 2, -1], labels)
    with pytest.raises(ValueError, match=r"EXPR labels must be classes -1\.\.7 \(-1 = invalid\); 1 value"):
        EXPR.scores([0, 1, 2, 3], [0, 1, -2, 3])
    with pytest.raises(ValueError, match="EXPR predictions must be whole class indices; 1 are not, the first at row 2"):
        EXPR.scores([0.0, 1.0, 2.5, 3.0], labels)
    with pytest.raises(ValueError, match=r"EXPR predictions contain 1 row\(s\) with NaN or inf, the first at row 3"):
        EXPR.scores([0.0, 1.0, 2.0, np.nan], labels)
    with pytest.raises(ValueError, match="must be integer class indices; got dtype <U"):
        EXPR.scores(np.array(["a", "b", "c", "d"]), labels)
    with pytest.raises(ValueError, match="1-D array of class indices"):
        EXPR.scores(np.zeros((4, 8), dtype=int), labels)
    with pytest.raises(ValueError, match="EXPR predictions have 3 rows but labels have 4"):
        confusion([0, 1, 2], labels)
    with pytest.raises(ValueError, match="no valid frame"):
        EXPR.scores([0, 1], [-1, -1])


# ------------------------------------------------------------------------------------------------------ AU


def ref_au_f1(pred, labels):
    """Per-AU binary F1 over the rows without -1, by scikit-learn (multilabel, zero_division=0)."""
    keep = (labels != -1).all(axis=1)
    return f1_score(labels[keep], pred[keep], average=None, zero_division=0)


def numpy_au_f1(pred, labels):
    """Per-AU F1 = 2 tp / (2 tp + fp + fn), written out with numpy; 0 for an AU neither labelled nor predicted."""
    keep = (labels != -1).all(axis=1)
    p, y = pred[keep].astype(bool), labels[keep].astype(bool)
    tp, fp, fn = (p & y).sum(0), (p & ~y).sum(0), (~p & y).sum(0)
    denom = 2 * tp + fp + fn
    return np.array([2 * t / d if d else 0.0 for t, d in zip(tp, denom, strict=True)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_au_scores_match_sklearn_and_numpy(seed):
    pred, labels = au_data(np.random.default_rng(seed), 4000)
    keep = (labels != -1).all(axis=1)
    got = AU.scores(pred, labels)
    np.testing.assert_allclose(got.f1_per_au, ref_au_f1(pred, labels), rtol=0, atol=TOL)
    np.testing.assert_allclose(got.f1_per_au, numpy_au_f1(pred, labels), rtol=0, atol=TOL)
    macro = f1_score(labels[keep], pred[keep], average="macro", zero_division=0)
    assert got.score == pytest.approx(macro, abs=TOL)
    assert got.frames == keep.sum() < 4000
    assert got.breakdown.labels["f1_per_au"] == AU.columns and len(got.f1_per_au) == 12
    assert task_scores("au", pred, labels) == got


def test_au_scores_edge_cases():
    pred, labels = au_data(np.random.default_rng(3), 300, invalid=0.0)
    labels[:, 9] = 0  # AU24 never on ...
    pred[:, 9] = 0  # ... nor predicted: F1 0, still one of the 12 in the mean
    labels[5, 3] = -1  # a -1 in one column leaves the whole row out
    got = AU.scores(pred, labels)
    assert got.f1_per_au[9] == 0.0 and got.frames == 299
    np.testing.assert_allclose(got.f1_per_au, numpy_au_f1(pred, labels), rtol=0, atol=TOL)
    assert got.score == pytest.approx(np.mean(numpy_au_f1(pred, labels)), abs=TOL)
    assert AU.scores(pred.astype(np.float32), labels) == got  # 0.0 / 1.0 floats are accepted
    assert AU.scores(pred.astype(bool), labels) == got
    perfect = AU.scores(np.maximum(labels, 0), labels)
    assert perfect.f1_per_au[9] == 0.0 and perfect.score == pytest.approx(11 / 12, abs=1e-15)


def test_au_scores_reject_bad_input():
    pred, labels = au_data(np.random.default_rng(4), 6, invalid=0.0)
    with pytest.raises(ValueError, match=r"AU predictions must have shape \(n, 12\), one 0/1 column per AU"):
        AU.scores(pred[:, :11], labels)
    with pytest.raises(ValueError, match=r"AU labels must have shape \(n, 12\)"):
        AU.scores(pred, labels[:, 0])
    with pytest.raises(ValueError, match="AU predictions have 5 rows but labels have 6"):
        AU.scores(pred[:5], labels)
    probabilities = pred.astype(np.float64)
    probabilities[2, 4] = 0.7
    with pytest.raises(ValueError, match=r"must be 0 or 1 per AU \(threshold probabilities first\); 1 row\(s\)"):
        AU.scores(probabilities, labels)
    probabilities[2, 4] = np.nan
    with pytest.raises(ValueError, match=r"AU predictions contain 1 row\(s\) with NaN or inf, the first at row 2"):
        AU.scores(probabilities, labels)
    with pytest.raises(ValueError, match="must be 0/1 numbers; got dtype <U"):
        AU.scores(pred.astype(str), labels)
    bad = labels.copy()
    bad[3, 0] = 2
    with pytest.raises(ValueError, match="AU labels must be 0, 1 or -1; row 3 holds"):
        AU.scores(pred, bad)
    with pytest.raises(ValueError, match="no valid frame"):
        AU.scores(pred, np.full_like(labels, -1))
