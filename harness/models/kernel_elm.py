"""Kernel extreme learning machine (Kernel ELM): exact solve up to a size bound, Nyström approximation beyond.

Huang et al., "Extreme learning machine for regression and multiclass classification" (IEEE TSMC-B, 2012): with a
kernel matrix ``K`` over the N training rows and targets ``Y`` (N × k), ``β = (K + I/C)⁻¹ Y`` and a prediction is
``K(x, X_train) β``; this is kernel ridge regression with ``alpha = 1/C``. The class-weighted variant (Zong et al.,
"Weighted extreme learning machine for imbalance learning", Neurocomputing 2013) is ``β = (W K + I/C)⁻¹ W Y`` with
``W = diag(w)``, which equals ``(K + W⁻¹/C)⁻¹ Y``: a symmetric system, solved by Cholesky.

Exact: one N × N kernel matrix, then one Cholesky per C (N³/3 flops each). An eigendecomposition would serve a whole
grid of C at once, but costs 15–40 Choleskys (measured at N = 2500 on a 2-core CPU: 3.7–11 s against 0.25 s), more
than a usual grid. Memory ~ 2 N² float64 (the kernel and its factor); above ``max_exact_rows`` it is refused.

Nyström (Williams & Seeger, NIPS 2001), subset of regressors: M landmarks L,
``β_M = (K_MN W K_NM + K_MM/C)⁻¹ K_MN W Y``, prediction ``K(x, L) β_M``. Solved stably in feature space: with the
eigendecomposition ``K_MM = V Λ Vᵀ`` and ``T = V_r Λ_r^-½`` over the r eigenvalues above the rank tolerance
``λ_max · M · eps`` (numpy's ``matrix_rank`` default), features ``Φ = K_NL T`` give ``β_M = T (ΦᵀWΦ + I/C)⁻¹ ΦᵀWY``,
the same solution when ``K_MM`` is invertible. Dropping the tiny eigen-directions is a pseudo-inverse, used instead of
a jitter. The indefinite sigmoid kernel keeps its negative eigenvalues: ``T = V_r |Λ_r|^-½`` and ``I/C`` becomes
``sign(Λ_r)/C``. ``ΦᵀWΦ`` (r × r) is accumulated over chunks of rows, so memory is O(M² + chunk·M) whatever N; each C
then costs one r × r factorisation (~0.1 s at r = 2000). Landmarks are the first M entries of a seeded permutation of
the rows (uniform without replacement, nested as M grows), in row order; M = N makes every row a landmark, and the
solution then equals the exact one.

Kernels follow scikit-learn's ``pairwise_kernels`` parameterisation; all kernel values are computed in float64 (inputs
keep their dtype in memory and are cast chunk by chunk). Public: :data:`KERNELS`, :data:`MAX_EXACT_ROWS`,
:class:`KernelParams`, :func:`kernel`, :class:`KernelELM`, :class:`GridFit`, :func:`fit_grid`, :func:`fit`,
:func:`predict`.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import LinAlgError, cho_factor, cho_solve, eigh, solve

KERNELS: tuple[str, ...] = ("rbf", "linear", "poly", "sigmoid")
MAX_EXACT_ROWS = 20_000
_CHUNK_BYTES = 64 << 20  # float64 working set per chunk of rows (row block + its kernel block + its features)
_CHECK_ROWS = 1 << 16  # rows per finiteness check, so checking a 10⁶-row input allocates little


@dataclass(frozen=True, slots=True)
class KernelParams:
    """A kernel and its parameters: ``rbf`` exp(-γ|x−z|²), ``linear`` x·z, ``poly`` (γ x·z + coef0)^degree,
    ``sigmoid`` tanh(γ x·z + coef0). ``gamma=None`` means 1 / n_features, as in scikit-learn."""

    name: str = "rbf"
    gamma: float | None = None
    degree: int = 3
    coef0: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in KERNELS:
            close = difflib.get_close_matches(str(self.name), KERNELS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown kernel {self.name!r}: accepted are {', '.join(KERNELS)}{hint}")
        if self.gamma is not None and not (np.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"kernel gamma must be a finite number > 0 or None (1 / n_features); got {self.gamma!r}")
        if isinstance(self.degree, bool) or not isinstance(self.degree, int | np.integer) or self.degree < 1:
            raise ValueError(f"kernel degree must be an integer >= 1; got {self.degree!r}")
        if not np.isfinite(self.coef0):
            raise ValueError(f"kernel coef0 must be finite; got {self.coef0!r}")

    def resolved(self, n_features: int) -> KernelParams:
        """These parameters with ``gamma`` fixed to a number (1 / n_features when unset)."""
        gamma = 1.0 / n_features if self.gamma is None else float(self.gamma)
        return KernelParams(self.name, gamma, int(self.degree), float(self.coef0))


def kernel(
    name: str, X: ArrayLike, Z: ArrayLike, gamma: float | None = None, degree: int = 3, coef0: float = 1.0
) -> np.ndarray:
    """The kernel matrix ``k(X[i], Z[j])`` (float64, len(X) × len(Z)); parameters as in :class:`KernelParams`.

    The rbf distance is ``|x|² + |z|² − 2 x·z`` clipped at 0 (rounding can make it slightly negative).
    """
    params = KernelParams(name, gamma, degree, coef0)
    Xm = _matrix("X", X)
    return _kernel(params.resolved(Xm.shape[1]), Xm, _matrix("Z", Z, Xm.shape[1]))


@dataclass(frozen=True, slots=True)
class KernelELM:
    """A fitted Kernel ELM: ``prediction(x) = kernel(x, support) @ beta``.

    ``support`` holds the training rows (``method="exact"``) or the Nyström landmarks (``"nystrom"``), ``beta`` one
    column per output. :meth:`to_tensors` / :meth:`from_tensors` turn it into safetensors tensors and metadata.
    """

    params: KernelParams
    C: float
    method: str
    support: np.ndarray = field(repr=False)
    beta: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if self.params.gamma is None:
            raise ValueError("a fitted KernelELM needs a resolved gamma; use KernelParams.resolved(n_features)")
        if self.method not in ("exact", "nystrom"):
            raise ValueError(f"KernelELM method must be 'exact' or 'nystrom'; got {self.method!r}")
        s, b = np.shape(self.support), np.shape(self.beta)
        if len(s) != 2 or len(b) != 2 or s[0] != b[0] or s[0] == 0:
            raise ValueError(f"KernelELM needs support (S, d) and beta (S, k) with the same S >= 1; got {s} and {b}")

    def to_tensors(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """``({"support", "beta"}, metadata)`` for ``safetensors.numpy.save_file(tensors, path, metadata)``."""
        p = self.params
        metadata = {
            "kernel": p.name,
            "gamma": repr(float(p.gamma)),
            "degree": str(p.degree),
            "coef0": repr(float(p.coef0)),
            "C": repr(float(self.C)),
            "method": self.method,
        }
        return {"support": np.ascontiguousarray(self.support), "beta": np.ascontiguousarray(self.beta)}, metadata

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> KernelELM:
        """The model written by :meth:`to_tensors`."""
        missing = sorted({"support", "beta"} - tensors.keys()) + sorted(
            {"kernel", "gamma", "degree", "coef0", "C", "method"} - (metadata or {}).keys()
        )
        if missing:
            raise ValueError(f"a saved KernelELM lacks {', '.join(missing)}; it was not written by to_tensors")
        params = KernelParams(
            metadata["kernel"], float(metadata["gamma"]), int(metadata["degree"]), float(metadata["coef0"])
        )
        return cls(params, float(metadata["C"]), metadata["method"], tensors["support"], tensors["beta"])


@dataclass(frozen=True, slots=True)
class GridFit:
    """One model per C (in the order given) and, when evaluation rows were given, their predictions there:
    ``eval_predictions[i]`` (n_eval × k) comes from ``models[i]``."""

    models: tuple[KernelELM, ...]
    eval_predictions: np.ndarray | None


def fit_grid(
    X: ArrayLike,
    Y: ArrayLike,
    Cs: Sequence[float] | ArrayLike,
    params: KernelParams | None = None,
    *,
    X_eval: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    nystrom_landmarks: int | None = None,
    seed: int = 0,
    max_exact_rows: int = MAX_EXACT_ROWS,
    chunk_rows: int | None = None,
) -> GridFit:
    """Fit a Kernel ELM for every C in ``Cs``, sharing the kernel work, and predict ``X_eval`` with each.

    ``X`` (N × d) rows, ``Y`` (N × k) targets (one-hot for classes), ``params`` the kernel (None: rbf with
    gamma = 1 / d), ``sample_weight`` (N,) the diagonal of W (> 0; None = 1). ``nystrom_landmarks=None`` solves
    exactly and refuses N > ``max_exact_rows``; an integer M uses the Nyström approximation with min(M, N) landmarks
    drawn with ``seed``. ``chunk_rows`` bounds the rows per kernel block (None: a 64 MiB working set). Each extra C
    costs one N × N Cholesky (exact) or one r × r one (Nyström); the kernel matrix or ΦᵀWΦ is computed once.
    """
    Xm = _matrix("X", X)
    n, d = Xm.shape
    Ym = np.asarray(Y, dtype=np.float64)
    if Ym.ndim != 2 or Ym.shape[0] != n:
        raise ValueError(f"Y must be (N, k) = ({n}, k), one column per output; got shape {Ym.shape} (1-D: Y[:, None])")
    _check_finite("Y", Ym)
    C_arr = np.asarray(Cs, dtype=np.float64)
    if C_arr.ndim != 1 or C_arr.size == 0 or not (np.isfinite(C_arr) & (C_arr > 0)).all():
        raise ValueError(f"Cs must be a non-empty 1-D list of finite numbers > 0; got {Cs!r}")
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not (np.isfinite(w) & (w > 0)).all():
        raise ValueError(f"sample_weight must be {n} finite numbers > 0 (one per row of X); got shape {w.shape}")
    Xe = None if X_eval is None else _matrix("X_eval", X_eval, d)
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or int(chunk_rows) != chunk_rows or chunk_rows < 1):
        raise ValueError(f"chunk_rows must be an integer >= 1 or None; got {chunk_rows!r}")
    p = (params or KernelParams()).resolved(d)
    if nystrom_landmarks is None:
        if n > max_exact_rows:
            raise ValueError(
                f"exact Kernel ELM refuses {n} training rows: the bound is max_exact_rows={max_exact_rows}. The exact "
                f"solve would need about {_exact_bytes(n) / 2**30:.1f} GiB (the {n} x {n} float64 kernel matrix and "
                f"its factor) and O(N³) time. Set nystrom_landmarks (e.g. 2000) to use the Nyström approximation, "
                f"whose memory stays O(M² + chunk·M)."
            )
        support, betas = Xm.copy(), _exact_betas(Xm, Ym, C_arr, p, w)
        method = "exact"
    else:
        if isinstance(nystrom_landmarks, bool) or int(nystrom_landmarks) != nystrom_landmarks or nystrom_landmarks < 1:
            raise ValueError(f"nystrom_landmarks must be an integer >= 1 or None (exact); got {nystrom_landmarks!r}")
        support, betas = _nystrom_betas(Xm, Ym, C_arr, p, w, min(int(nystrom_landmarks), n), seed, chunk_rows)
        method = "nystrom"
    support.flags.writeable = betas.flags.writeable = False
    models = tuple(KernelELM(p, float(C), method, support, beta) for C, beta in zip(C_arr, betas, strict=True))
    if Xe is None:
        return GridFit(models, None)
    g, s, k = betas.shape
    stacked = betas.transpose(1, 0, 2).reshape(s, g * k)
    preds = _predict(p, support, stacked, Xe, chunk_rows)
    return GridFit(models, preds.reshape(len(Xe), g, k).transpose(1, 0, 2))


def fit(
    X: ArrayLike,
    Y: ArrayLike,
    C: float,
    params: KernelParams | None = None,
    **options: object,
) -> KernelELM:
    """One Kernel ELM at one C; ``options`` as in :func:`fit_grid` (sample_weight, nystrom_landmarks, ...)."""
    return fit_grid(X, Y, [C], params, **options).models[0]


def predict(model: KernelELM, X: ArrayLike, chunk_rows: int | None = None) -> np.ndarray:
    """``kernel(X, model.support) @ model.beta`` (len(X) × k, float64), a chunk of rows at a time."""
    Xm = _matrix("X", X, model.support.shape[1])
    return _predict(model.params, model.support, np.asarray(model.beta, dtype=np.float64), Xm, chunk_rows)


# --------------------------------------------------------------------------------------------------- internals


def _exact_bytes(n: int) -> int:
    """Memory of the exact solve: the N × N float64 kernel matrix and one working copy for the factorisation."""
    return 2 * n * n * 8


def _exact_betas(X: np.ndarray, Y: np.ndarray, Cs: np.ndarray, p: KernelParams, w: np.ndarray) -> np.ndarray:
    """β = (K + W⁻¹/C)⁻¹ Y for each C (len(Cs) × N × k)."""
    K = _kernel(p, X, X)
    work = np.empty_like(K)
    return np.stack([_solve_shifted(K, 1.0 / (C * w), Y, work) for C in Cs])


def _nystrom_betas(
    X: np.ndarray,
    Y: np.ndarray,
    Cs: np.ndarray,
    p: KernelParams,
    w: np.ndarray,
    m: int,
    seed: int,
    chunk_rows: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (M × d) and the subset-of-regressors β_M for each C (len(Cs) × M × k), see the module docstring."""
    n = len(X)
    landmarks = X[np.sort(np.random.default_rng(seed).permutation(n)[:m])]
    lam, V = eigh(_kernel(p, landmarks, landmarks), check_finite=False)
    top = np.abs(lam).max()
    if top == 0:
        raise ValueError(
            f"the {p.name} kernel matrix of the {m} Nyström landmarks is zero, so it gives no features: check the "
            f"kernel parameters and that X is not all zeros"
        )
    keep = np.abs(lam) > top * m * np.finfo(np.float64).eps
    T = V[:, keep] / np.sqrt(np.abs(lam[keep]))
    H = np.zeros((T.shape[1], T.shape[1]))
    b = np.zeros((T.shape[1], Y.shape[1]))
    sw = np.sqrt(w)
    step = chunk_rows or _chunk_rows(X.shape[1], m)
    for a in range(0, n, step):
        phi = _kernel(p, X[a : a + step], landmarks) @ T
        phi *= sw[a : a + step, None]
        H += phi.T @ phi
        b += phi.T @ (sw[a : a + step, None] * Y[a : a + step])
    sign = np.sign(lam[keep])
    work = np.empty_like(H)
    return landmarks, np.stack([T @ _solve_shifted(H, sign / C, b, work) for C in Cs])


def _solve_shifted(A: np.ndarray, shift: np.ndarray, Y: np.ndarray, work: np.ndarray) -> np.ndarray:
    """``(A + diag(shift))⁻¹ Y`` for symmetric A, factorised in ``work``: Cholesky, or symmetric LDLᵀ when the matrix
    is not positive definite (the indefinite sigmoid kernel)."""
    try:
        return cho_solve(cho_factor(_shifted(A, shift, work), overwrite_a=True, check_finite=False), Y)
    except LinAlgError:
        return solve(_shifted(A, shift, work), Y, assume_a="sym", overwrite_a=True, check_finite=False)


def _shifted(A: np.ndarray, shift: np.ndarray, work: np.ndarray) -> np.ndarray:
    """``A + diag(shift)`` written into ``work``, returned as its transpose: the same symmetric matrix, in the Fortran
    order LAPACK factorises in place."""
    np.copyto(work, A)
    work.flat[:: len(A) + 1] += shift
    return work.T


def _predict(
    p: KernelParams, support: np.ndarray, beta: np.ndarray, X: np.ndarray, chunk_rows: int | None
) -> np.ndarray:
    """``kernel(X, support) @ beta`` computed over chunks of rows of X."""
    out = np.empty((len(X), beta.shape[1]))
    step = chunk_rows or _chunk_rows(X.shape[1], len(support))
    for a in range(0, len(X), step):
        out[a : a + step] = _kernel(p, X[a : a + step], support) @ beta
    return out


def _chunk_rows(d: int, s: int) -> int:
    """Rows per chunk so that a float64 row block (d), its kernel block (s) and its features (s) fit _CHUNK_BYTES."""
    return max(1, _CHUNK_BYTES // (8 * (d + 2 * s)))


def _kernel(p: KernelParams, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """The kernel matrix in float64 for resolved parameters, computed in place on the matrix of inner products."""
    same = B is A
    A = np.asarray(A, dtype=np.float64)
    B = A if same else np.asarray(B, dtype=np.float64)
    K = A @ B.T
    if p.name == "rbf":
        K *= -2.0
        K += np.einsum("ij,ij->i", A, A)[:, None]
        K += np.einsum("ij,ij->i", B, B)[None, :]
        np.maximum(K, 0.0, out=K)
        K *= -p.gamma
        np.exp(K, out=K)
    elif p.name in ("poly", "sigmoid"):
        K *= p.gamma
        K += p.coef0
        if p.name == "poly":
            K **= p.degree
        else:
            np.tanh(K, out=K)
    return K


def _matrix(name: str, A: ArrayLike, n_features: int | None = None) -> np.ndarray:
    """``A`` as a 2-D float array (float32 kept, anything else float64), non-empty and finite."""
    A = np.asarray(A)
    if A.dtype not in (np.float32, np.float64):
        A = A.astype(np.float64)
    if A.ndim != 2 or 0 in A.shape:
        raise ValueError(f"{name} must be a 2-D array (rows x features) with at least one of each; got {A.shape}")
    if n_features is not None and A.shape[1] != n_features:
        raise ValueError(f"{name} has {A.shape[1]} features; the training rows have {n_features}")
    _check_finite(name, A)
    return A


def _check_finite(name: str, A: np.ndarray) -> None:
    """Raise naming the first row of ``A`` that holds a NaN or an infinity; checks a block of rows at a time."""
    for a in range(0, len(A), _CHECK_ROWS):
        bad = ~np.isfinite(A[a : a + _CHECK_ROWS]).all(axis=1)
        if bad.any():
            raise ValueError(f"{name} has a NaN or infinite value in row {a + int(np.argmax(bad))}")
