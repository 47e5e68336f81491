"""Kernel ELM against independent references: scikit-learn's pairwise kernels and KernelRidge, the textbook formulas
solved with numpy, and the subset-of-regressors formula for Nyström."""

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file
from sklearn.kernel_ridge import KernelRidge
from sklearn.metrics.pairwise import pairwise_kernels

from harness.models import kernel_elm
from harness.models.kernel_elm import KernelELM, KernelParams, fit, fit_grid, kernel, predict

TOL = 1e-9
# Parameters for which K + I/C is positive definite at the C used below, so KernelRidge solves by Cholesky too.
KERNEL_CASES = [
    ("rbf", {"gamma": 0.3}),
    ("rbf", {}),
    ("linear", {}),
    ("poly", {"gamma": 0.2, "degree": 2, "coef0": 0.5}),
    ("sigmoid", {"gamma": 0.05, "coef0": 0.1}),
]


def data(n=120, d=6, k=2, n_eval=25, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.column_stack([np.sin(X[:, 0]) + 0.1 * rng.normal(size=n) for _ in range(k)])
    return X, Y, rng.normal(size=(n_eval, d))


def sk_params(name, kw):
    """The same parameters spelled for scikit-learn (gamma=None there also means 1 / n_features)."""
    return {"kernel": name, "gamma": kw.get("gamma"), "degree": kw.get("degree", 3), "coef0": kw.get("coef0", 1)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "kw"), KERNEL_CASES)
def test_kernel_matches_sklearn(name, kw, dtype):
    X, _, Z = data()
    X, Z = X.astype(dtype), Z.astype(dtype)
    ref = pairwise_kernels(X.astype(np.float64), Z.astype(np.float64), metric=name, filter_params=True, **kw)
    got = kernel(name, X, Z, **kw)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_rbf_distance_of_a_row_to_itself_is_zero():
    X = np.full((3, 4), 1e8)  # |x|² + |x|² − 2 x·x cancels catastrophically here; the clip keeps it at 0
    assert (kernel("rbf", X, X, gamma=1.0) <= 1.0).all()


@pytest.mark.parametrize(("name", "kw"), KERNEL_CASES)
def test_exact_equals_kernel_ridge(name, kw):
    X, Y, Xe = data()
    C = 3.0
    model = fit(X, Y, C, KernelParams(name, **kw))
    ref = KernelRidge(alpha=1 / C, **sk_params(name, kw)).fit(X, Y).predict(Xe)
    np.testing.assert_allclose(predict(model, Xe), ref, rtol=0, atol=TOL)
    assert model.method == "exact" and model.C == C and model.support.shape == X.shape


@pytest.mark.parametrize(("name", "kw"), KERNEL_CASES)
def test_class_weighted_equals_direct_formula_and_kernel_ridge_with_sample_weight(name, kw):
    X, Y, Xe = data()
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    C = 1.0  # K + W⁻¹/C stays positive definite for the sigmoid case (min eigenvalue of K: -0.2)
    model = fit(X, Y, C, KernelParams(name, **kw), sample_weight=w)
    K = pairwise_kernels(X, metric=name, filter_params=True, **kw)
    beta = np.linalg.solve(np.diag(w) @ K + np.eye(len(X)) / C, w[:, None] * Y)  # (W K + I/C)⁻¹ W Y
    np.testing.assert_allclose(model.beta, beta, rtol=0, atol=1e-8 * np.abs(beta).max())
    direct = pairwise_kernels(Xe, X, metric=name, filter_params=True, **kw) @ beta
    np.testing.assert_allclose(predict(model, Xe), direct, rtol=0, atol=TOL)
    ref = KernelRidge(alpha=1 / C, **sk_params(name, kw)).fit(X, Y, sample_weight=w).predict(Xe)
    np.testing.assert_allclose(predict(model, Xe), ref, rtol=0, atol=TOL)


def test_indefinite_sigmoid_system_is_solved_without_cholesky():
    X, Y, Xe = data()
    kw, C = {"gamma": 1.0, "coef0": -1.0}, 1e3
    K = pairwise_kernels(X, metric="sigmoid", **kw)
    assert np.linalg.eigvalsh(K + np.eye(len(X)) / C).min() < 0  # the case under test: Cholesky must fail
    beta = np.linalg.solve(K + np.eye(len(X)) / C, Y)
    model = fit(X, Y, C, KernelParams("sigmoid", **kw))
    np.testing.assert_allclose(model.beta, beta, rtol=0, atol=1e-8 * np.abs(beta).max())


@pytest.mark.parametrize("landmarks", [None, 40])
def test_grid_equals_separate_fits(landmarks):
    X, Y, Xe = data()
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(X))
    Cs = [0.01, 1.0, 100.0]
    grid = fit_grid(X, Y, Cs, X_eval=Xe, sample_weight=w, nystrom_landmarks=landmarks, chunk_rows=17)
    assert grid.eval_predictions.shape == (3, len(Xe), 2)
    for C, model, preds in zip(Cs, grid.models, grid.eval_predictions, strict=True):
        alone = fit(X, Y, C, sample_weight=w, nystrom_landmarks=landmarks)
        assert model.C == C
        np.testing.assert_allclose(model.beta, alone.beta, rtol=0, atol=1e-10 * np.abs(alone.beta).max())
        np.testing.assert_allclose(preds, predict(alone, Xe), rtol=0, atol=TOL)
    assert fit_grid(X, Y, Cs).eval_predictions is None


def test_nystrom_equals_subset_of_regressors_formula():
    X, Y, Xe = data()
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(X))
    params, C = KernelParams("rbf", gamma=0.3), 5.0
    model = fit(X, Y, C, params, sample_weight=w, nystrom_landmarks=30, seed=7, chunk_rows=11)
    L = model.support
    assert len(L) == 30 and all((row == X).all(axis=1).any() for row in L)  # landmarks are rows of X
    K_nm = pairwise_kernels(X, L, metric="rbf", gamma=0.3)
    K_mm = pairwise_kernels(L, metric="rbf", gamma=0.3)
    beta = np.linalg.solve(K_nm.T @ (w[:, None] * K_nm) + K_mm / C, K_nm.T @ (w[:, None] * Y))
    ref = pairwise_kernels(Xe, L, metric="rbf", gamma=0.3) @ beta
    np.testing.assert_allclose(predict(model, Xe), ref, rtol=0, atol=1e-8)


def test_nystrom_approaches_exact_as_landmarks_grow():
    X, Y, Xe = data(n=400)
    exact = predict(fit(X, Y, 1.0), Xe)
    approx = [predict(fit(X, Y, 1.0, nystrom_landmarks=m), Xe) for m in (25, 50, 100, 200)]
    rms = [np.sqrt(np.mean((a - exact) ** 2)) for a in approx]
    assert rms == sorted(rms, reverse=True) and rms[-1] < rms[0] / 5


@pytest.mark.parametrize(("name", "kw"), KERNEL_CASES)
def test_nystrom_with_every_row_a_landmark_equals_exact(name, kw):
    X, Y, Xe = data()
    w = np.random.default_rng(4).uniform(0.5, 2.0, len(X))
    params = KernelParams(name, **kw)
    exact = predict(fit(X, Y, 3.0, params, sample_weight=w), Xe)
    for m in (len(X), 10 * len(X)):  # more landmarks than rows: every row once
        model = fit(X, Y, 3.0, params, sample_weight=w, nystrom_landmarks=m)
        assert model.method == "nystrom" and len(model.support) == len(X)
        np.testing.assert_allclose(predict(model, Xe), exact, rtol=0, atol=1e-8)


def test_nystrom_is_deterministic_given_the_seed():
    X, Y, Xe = data()
    a, b = (predict(fit(X, Y, 1.0, nystrom_landmarks=20, seed=5), Xe) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    other = fit(X, Y, 1.0, nystrom_landmarks=20, seed=6)
    assert not np.array_equal(other.support, fit(X, Y, 1.0, nystrom_landmarks=20, seed=5).support)


def test_float32_rows_are_kept_and_computed_in_float64():
    X, Y, Xe = data()
    X32 = X.astype(np.float32)
    model = fit(X32, Y, 2.0, nystrom_landmarks=30)
    assert model.support.dtype == np.float32
    ref = fit(X32.astype(np.float64), Y, 2.0, nystrom_landmarks=30)
    np.testing.assert_allclose(predict(model, Xe), predict(ref, Xe), rtol=0, atol=TOL)


def test_chunked_prediction_equals_one_block():
    X, Y, Xe = data()
    model = fit(X, Y, 2.0)
    one = pairwise_kernels(Xe, X, metric="rbf", gamma=1 / X.shape[1]) @ model.beta
    np.testing.assert_allclose(predict(model, Xe, chunk_rows=4), one, rtol=0, atol=TOL)


def test_model_is_a_private_read_only_copy():
    X, Y, Xe = data()
    model = fit(X, Y, 2.0)
    before = predict(model, Xe)
    X[:] = 0.0
    np.testing.assert_array_equal(predict(model, Xe), before)
    with pytest.raises(ValueError, match="read-only"):
        model.support[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        model.beta[0, 0] = 1.0


@pytest.mark.parametrize("landmarks", [None, 30])
def test_safetensors_round_trip(tmp_path, landmarks):
    X, Y, Xe = data()
    model = fit(X, Y, 2.5, KernelParams("poly", gamma=0.1, degree=2, coef0=0.3), nystrom_landmarks=landmarks)
    tensors, metadata = model.to_tensors()
    save_file(tensors, tmp_path / "kelm.safetensors", metadata=metadata)
    with safe_open(tmp_path / "kelm.safetensors", framework="np") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
        loaded = KernelELM.from_tensors(tensors, f.metadata())
    assert loaded.params == model.params and loaded.C == model.C and loaded.method == model.method
    np.testing.assert_array_equal(predict(loaded, Xe), predict(model, Xe))


# --------------------------------------------------------------------------------------------------- refusals


def test_exact_refuses_above_the_bound_and_names_the_nystrom_setting():
    X, Y, _ = data(n=60)
    with pytest.raises(ValueError, match=r"refuses 60 training rows.*max_exact_rows=50.*GiB.*Set nystrom_landmarks"):
        fit(X, Y, 1.0, max_exact_rows=50)
    assert fit(X, Y, 1.0, max_exact_rows=50, nystrom_landmarks=10).method == "nystrom"
    assert kernel_elm.MAX_EXACT_ROWS == 20_000


def test_refusal_states_the_memory_exact_would_need():
    # the kernel and its factor: 2 · 12000² · 8 bytes = 2.304e9 bytes = 2.1 GiB
    with pytest.raises(ValueError, match=r"about 2\.1 GiB \(the 12000 x 12000 float64 kernel matrix and its factor\)"):
        fit(np.zeros((12_000, 1)), np.zeros((12_000, 1)), 1.0, max_exact_rows=100)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"name": "rbg"}, r"unknown kernel 'rbg': accepted are rbf, linear, poly, sigmoid; did you mean 'rbf'\?"),
        ({"name": "gaussian"}, r"unknown kernel 'gaussian': accepted are rbf, linear, poly, sigmoid$"),
        ({"gamma": 0.0}, "gamma must be a finite number > 0"),
        ({"gamma": float("nan")}, "gamma must be a finite number > 0"),
        ({"degree": 0}, "degree must be an integer >= 1"),
        ({"degree": 2.5}, "degree must be an integer >= 1"),
        ({"coef0": float("inf")}, "coef0 must be finite"),
    ],
)
def test_bad_kernel_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        KernelParams(**kw)
    with pytest.raises(ValueError, match=match):
        kernel(kw.pop("name", "rbf"), np.ones((2, 2)), np.ones((2, 2)), **kw)


def test_bad_kernel_inputs():
    with pytest.raises(ValueError, match=r"X must be a 2-D array .* got \(3,\)"):
        kernel("rbf", np.ones(3), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"X must be a 2-D array .* got \(0, 3\)"):
        kernel("rbf", np.ones((0, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="Z has 2 features; the training rows have 3"):
        kernel("rbf", np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="Z has a NaN or infinite value in row 1"):
        kernel("rbf", np.ones((2, 3)), np.array([[0.0, 0, 0], [0, np.inf, 0]]))


def test_bad_fit_inputs():
    X, Y, Xe = data()
    bad_X = X.copy()
    bad_X[7, 2] = np.nan
    cases = [
        ({"X": bad_X}, "X has a NaN or infinite value in row 7"),
        ({"Y": Y[:, 0]}, r"Y must be \(N, k\) = \(120, k\).*got shape \(120,\).*Y\[:, None\]"),
        ({"Y": Y[:-1]}, r"Y must be \(N, k\) = \(120, k\)"),
        ({"Y": np.where(np.arange(120)[:, None] == 3, np.inf, Y)}, "Y has a NaN or infinite value in row 3"),
        ({"Cs": []}, "Cs must be a non-empty 1-D list of finite numbers > 0"),
        ({"Cs": [1.0, -1.0]}, "Cs must be a non-empty 1-D list of finite numbers > 0"),
        ({"Cs": [[1.0]]}, "Cs must be a non-empty 1-D list"),
        ({"sample_weight": np.ones(119)}, r"sample_weight must be 120 finite numbers > 0 .* got shape \(119,\)"),
        ({"sample_weight": np.zeros(120)}, "sample_weight must be 120 finite numbers > 0"),
        ({"X_eval": Xe[:, :3]}, "X_eval has 3 features; the training rows have 6"),
        ({"X_eval": np.full((2, 6), np.nan)}, "X_eval has a NaN or infinite value in row 0"),
        ({"nystrom_landmarks": 0}, "nystrom_landmarks must be an integer >= 1 or None"),
        ({"nystrom_landmarks": 2.5}, "nystrom_landmarks must be an integer >= 1 or None"),
        ({"chunk_rows": 0}, "chunk_rows must be an integer >= 1 or None"),
    ]
    for change, match in cases:
        args = {"X": X, "Y": Y, "Cs": [1.0]} | change
        with pytest.raises(ValueError, match=match):
            fit_grid(args.pop("X"), args.pop("Y"), args.pop("Cs"), **args)


def test_nystrom_refuses_an_all_zero_kernel():
    with pytest.raises(ValueError, match="kernel matrix of the 5 Nyström landmarks is zero"):
        fit(np.zeros((10, 3)), np.ones((10, 1)), 1.0, KernelParams("linear"), nystrom_landmarks=5)


def test_bad_predict_inputs():
    X, Y, Xe = data()
    model = fit(X, Y, 1.0)
    with pytest.raises(ValueError, match="X has 5 features; the training rows have 6"):
        predict(model, Xe[:, :5])
    with pytest.raises(ValueError, match="X has a NaN or infinite value in row 0"):
        predict(model, np.full((1, 6), np.nan))


def test_bad_models():
    params = KernelParams("rbf", gamma=0.5)
    with pytest.raises(ValueError, match="needs a resolved gamma"):
        KernelELM(KernelParams(), 1.0, "exact", np.ones((2, 3)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="method must be 'exact' or 'nystrom'; got 'svd'"):
        KernelELM(params, 1.0, "svd", np.ones((2, 3)), np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"support \(S, d\) and beta \(S, k\).*got \(2, 3\) and \(3, 1\)"):
        KernelELM(params, 1.0, "exact", np.ones((2, 3)), np.ones((3, 1)))
    tensors, metadata = KernelELM(params, 1.0, "exact", np.ones((2, 3)), np.ones((2, 1))).to_tensors()
    del tensors["beta"], metadata["C"]
    with pytest.raises(ValueError, match="a saved KernelELM lacks beta, C; it was not written by to_tensors"):
        KernelELM.from_tensors(tensors, metadata)
