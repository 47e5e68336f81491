"""The arithmetic of late fusion, as pure functions over numpy arrays (the kinds live in ``harness.models.fusion``).

Dirichlet-based random weighted fusion (SUN team, ABAW 2024, arXiv 2403.12609) draws S candidate weight matrices
``w`` of shape (M models, K outputs), each column on the simplex, fuses ``f[:, k] = Σ_m w[m, k] · p_m[:, k]`` and keeps
the candidate that scores best. Scoring S candidates must not cost S passes over the frames:

- VA: the CCC of a weighted sum follows from the means and the covariance matrix of (p_1, …, p_M, label) over the
  valid frames: ``mean f = w·μ``, ``var f = wᵀΣw``, ``cov(f, y) = w·σ_y``; :func:`va_moments` takes them once and
  :func:`va_candidate_scores` scores any number of candidates from them with the shared
  :func:`harness.metrics.ccc_from_central_moments`.
- EXPR: the argmax of each frame must be taken, but a convex combination keeps each class's fused value between
  the smallest and largest input probability of that class, so a class whose largest input value lies below another
  class's smallest can never win. Frames where a single class survives are decided for every candidate at once;
  the others are grouped by their set of surviving classes and scored in blocks of candidates × frames, the
  per-class counts taken as a product of the winner mask with one-hot labels (:func:`expr_candidate_confusions`).
- AU: each unit's F1 depends on its own weight column and decision threshold only, so every unit picks its best
  (candidate column, threshold) pair. Thresholds are the levels ``L / AU_STEPS`` (:data:`AU_THRESHOLDS`; a value is
  on at level L when ``value · AU_STEPS >= L``): a fused value's level index ``floor(value · AU_STEPS)`` is counted
  per candidate, and a cumulative sum over levels gives every threshold's true and predicted positives
  (:func:`au_candidate_f1`). A convex combination stays between the inputs' smallest and largest value, so a frame
  whose inputs share a level index has it under every candidate and is counted once for all. The chosen thresholds
  are stored by mapping each unit's fused probability so that its threshold lands at 0.5 (:func:`threshold_at_half`).

Cross-fitting (:func:`video_folds`) assigns validation tracks to folds by video, so the two tracks of a
``_left``/``_right`` pair are always held out together.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from harness.cpu import cpu_budget
from harness.data.affwild2 import video_of
from harness.metrics import ccc_from_central_moments, f1_from_confusion
from harness.tasks import get_task

_BLOCK_FRAMES = 1024  # frames per EXPR work item ...
_BLOCK_CANDIDATES = 128  # ... times candidates per block: (classes, 128, 1024) float32 stays within a few MiB
_SMALL_GROUP = 256  # frames of a rare surviving-class set are scored with all classes (fewer, larger blocks)
_ALIVE_TOL = 1e-5  # float32 rounding of a fused value stays far below this
_AU_BLOCK_FRAMES = 256  # frames per AU block: (candidates, 256) float64 stays in cache (4 MiB for 2000 candidates)
# The decision thresholds an AU fusion searches: 0.02 to 0.98 in steps of 0.02 (0.5 among them, so each input alone
# at the task's own threshold is a candidate and the in-sample choice never scores below its best input).
AU_STEPS = 50
AU_THRESHOLDS = np.arange(1, AU_STEPS) / AU_STEPS


def dirichlet_candidates(
    rng: np.random.Generator, n_candidates: int, n_models: int, n_outputs: int, alpha: float = 1.0
) -> np.ndarray:
    """``(n_candidates, n_models, n_outputs)`` weights: each (candidate, output) column drawn from Dirichlet(α…α)."""
    draws = rng.dirichlet(np.full(n_models, float(alpha)), size=(n_candidates, n_outputs))
    return np.ascontiguousarray(draws.transpose(0, 2, 1))


def corner_candidates(n_models: int, n_outputs: int) -> np.ndarray:
    """Each input alone, then the plain average: ``(n_models + 1, n_models, n_outputs)`` weights.

    Searched with the random candidates so that the chosen fusion never scores below its best input in-sample.
    """
    corners = np.repeat(np.eye(n_models)[:, :, None], n_outputs, axis=2)
    mean = np.full((1, n_models, n_outputs), 1.0 / n_models)
    return np.concatenate([corners, mean])


def fuse(weights: np.ndarray, predictions: Sequence[np.ndarray]) -> np.ndarray:
    """``Σ_m weights[m, k] · predictions[m][:, k]`` for one ``(M, K)`` weight matrix; ``(n, K)`` float64 out."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in predictions])  # (M, n, K)
    return np.einsum("mk,mnk->nk", np.asarray(weights, dtype=np.float64), stacked)


def normalise_rows(values: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (class probabilities; the argmax is unchanged); an all-zero row becomes uniform."""
    total = values.sum(axis=1, keepdims=True)
    uniform = np.full_like(values, 1.0 / values.shape[1])
    return np.divide(values, total, out=uniform, where=total > 0)


def normalised_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy of each row of class probabilities divided by log K: 0 for a one-hot row, 1 for a uniform one."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, None)
    p = normalise_rows(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1) / np.log(p.shape[1])


def entropy_gate(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """The rows whose normalised entropy exceeds ``threshold`` set to zero (an unsure input then does not vote)."""
    gated = np.array(probabilities, dtype=np.float64, copy=True)
    gated[normalised_entropy(gated) > threshold] = 0.0
    return gated


# --------------------------------------------------------------------------------------------------- VA


@dataclass(frozen=True)
class VAMoments:
    """Per VA dimension d: ``mean[d]`` of (p_1…p_M, label) and their population covariance ``cov[d]`` (M+1, M+1)."""

    mean: np.ndarray  # (2, M + 1)
    cov: np.ndarray  # (2, M + 1, M + 1)
    frames: int


def va_moments(predictions: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None) -> VAMoments:
    """Moments of the inputs and labels over the frames with a valid label.

    ``predictions`` is ``(M, n, 2)``, ``labels`` ``(n, 2)``; ``valid`` the frames to use (default: the VA task's
    valid labels, the invalid marker in neither column). Centred sums in float64, so the covariances lose no digits
    to large means.
    """
    labels = np.asarray(labels, dtype=np.float64)
    valid = get_task("va").valid(labels) if valid is None else np.asarray(valid, bool)
    frames = int(valid.sum())
    if frames == 0:
        raise ValueError("VA fusion needs frames with a valid label; every label row here is invalid")
    mean = np.empty((2, predictions.shape[0] + 1))
    cov = np.empty((2, predictions.shape[0] + 1, predictions.shape[0] + 1))
    for d in range(2):
        z = np.concatenate([np.asarray(predictions[:, valid, d], dtype=np.float64), labels[valid, d][None]])
        mean[d] = z.mean(axis=1)
        centred = z - mean[d][:, None]
        cov[d] = centred @ centred.T / frames
    return VAMoments(mean, cov, frames)


def va_candidate_scores(weights: np.ndarray, moments: VAMoments) -> np.ndarray:
    """``(S,)`` P_VA = mean of the two CCCs of each candidate ``weights (S, M, 2)``, with no pass over frames."""
    w = np.asarray(weights, dtype=np.float64)
    total = np.zeros(w.shape[0])
    for d in range(2):
        wd = w[:, :, d]
        mu, sigma = moments.mean[d], moments.cov[d]
        mean_f = wd @ mu[:-1]
        var_f = np.einsum("sm,sm->s", wd @ sigma[:-1, :-1], wd)
        cov_fy = wd @ sigma[:-1, -1]
        total += ccc_from_central_moments(mean_f, mu[-1], np.maximum(var_f, 0.0), sigma[-1, -1], cov_fy)
    return total / 2


# --------------------------------------------------------------------------------------------------- EXPR


def surviving_classes(probabilities: np.ndarray) -> np.ndarray:
    """``(n, K)`` mask of the classes that can win a frame's argmax under some convex combination of the inputs.

    ``probabilities`` is ``(M, n, K)``. A class whose largest input value lies below the largest smallest value of
    any class is beaten by that class under every weighting.
    """
    low, high = probabilities.min(axis=0), probabilities.max(axis=0)
    return high >= low.max(axis=1, keepdims=True) - _ALIVE_TOL


def expr_candidate_confusions(
    weights: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, workers: int | None = None
) -> np.ndarray:
    """``(S, K, K)`` int64 confusion matrices (rows = true class) of the argmax of each candidate's fused scores.

    ``weights (S, M, K)`` have columns on the simplex; ``probabilities (M, n, K)`` are the inputs' scores of the
    frames to count; ``labels (n,)`` their classes 0..K-1 (drop invalid frames first). Ties go to the lowest class,
    as ``argmax`` does. Blocks run on ``workers`` threads (numpy releases the GIL; default: up to 2 cores), with BLAS
    held to one thread each.
    """
    w = np.asarray(weights, dtype=np.float32)
    p = np.asarray(probabilities, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    n_candidates, _, k = w.shape
    out = np.zeros((n_candidates, k, k), np.int64)
    alive = surviving_classes(p)
    count = alive.sum(axis=1)
    decided = count == 1
    if decided.any():
        fixed = np.bincount(labels[decided] * k + alive[decided].argmax(axis=1), minlength=k * k)
        out += fixed.reshape(k, k)
    groups = _class_groups(alive, ~decided)
    if not groups:
        return out
    onehot = np.ascontiguousarray(np.eye(k, dtype=np.float32)[labels].T)  # (K, n): BLAS likes it this way round
    work = []
    for classes, frames in groups:
        block = np.ascontiguousarray(p[:, frames][:, :, classes].transpose(2, 0, 1))  # (R, M, n_g)
        for start in range(0, len(frames), _BLOCK_FRAMES):
            stop = min(start + _BLOCK_FRAMES, len(frames))
            work.append((classes, block[:, :, start:stop], np.ascontiguousarray(onehot[:, frames[start:stop]])))
    by_class = np.ascontiguousarray(w.transpose(2, 0, 1))  # (K, S, M)
    threads = max(1, workers or min(2, cpu_budget().cores))
    # the products are tiny: BLAS's own threads would only spin against ours (10x slower on a busy machine)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        for first in range(0, n_candidates, _BLOCK_CANDIDATES):
            chunk = by_class[:, first : first + _BLOCK_CANDIDATES]
            for classes, counts in pool.map(lambda item, c=chunk: (item[0], _block_counts(c, *item)), work):
                out[first : first + chunk.shape[1], :, classes] += counts.transpose(2, 1, 0).astype(np.int64)
    return out


def _class_groups(alive: np.ndarray, contested: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(surviving classes, frame indices) of the contested frames, grouped by their set of surviving classes."""
    k = alive.shape[1]
    frames = np.flatnonzero(contested)
    codes = alive[frames] @ (1 << np.arange(k))
    everything = (1 << k) - 1
    values, counts = np.unique(codes, return_counts=True)
    rare = values[counts < _SMALL_GROUP]
    codes = np.where(np.isin(codes, rare), everything, codes)
    groups = []
    for code in np.unique(codes):
        classes = np.flatnonzero((int(code) >> np.arange(k)) & 1)
        groups.append((classes, frames[codes == code]))
    return groups


def _block_counts(by_class: np.ndarray, classes: np.ndarray, block: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """``(R, K, C)`` float32: for each surviving class r, true class t and candidate c, the frames predicted r."""
    fused = np.matmul(by_class[classes], block)  # (R, C, b)
    best = fused.max(axis=0)
    taken = np.zeros(best.shape, bool)
    counts = np.empty((len(classes), onehot.shape[0], by_class.shape[1]), np.float32)
    for r in range(len(classes)):
        wins = fused[r] == best
        if r:
            wins &= ~taken  # a tie goes to the lowest class
        taken |= wins
        counts[r] = onehot @ wins.astype(np.float32).T
    return counts


def expr_candidate_scores(
    weights: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray,
    workers: int | None = None,
    *,
    classes: int | None = None,
) -> np.ndarray:
    """``(S,)`` macro-F1 over the ``classes`` classes (default: the EXPR task's width) of each candidate (see
    :func:`expr_candidate_confusions`)."""
    classes = get_task("expr").width if classes is None else classes
    if probabilities.shape[-1] != classes:
        raise ValueError(f"EXPR fusion needs {classes} class scores per frame; got {probabilities.shape[-1]}")
    confusions = expr_candidate_confusions(weights, probabilities, labels, workers)
    return f1_from_confusion(confusions).mean(axis=1)


# --------------------------------------------------------------------------------------------------- AU


def au_levels(values: np.ndarray) -> np.ndarray:
    """The number of thresholds of :data:`AU_THRESHOLDS` each probability is on at: ``floor(value · AU_STEPS)``, 0 to
    ``AU_STEPS - 1`` (a value of 1 or, by rounding, above it is on at every threshold)."""
    return np.clip((np.asarray(values, dtype=np.float64) * AU_STEPS).astype(np.intp), 0, AU_STEPS - 1)


def au_candidate_f1(
    weights: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, workers: int | None = None
) -> np.ndarray:
    """``(S, K, T)`` binary F1 of each candidate's fused unit ``k`` decided at each threshold of
    :data:`AU_THRESHOLDS` (on at level L: ``fused · AU_STEPS >= L``).

    ``weights (S, M, K)`` have columns on the simplex; ``probabilities (M, n, K)`` are the inputs' unit probabilities
    in [0, 1] of the frames to count; ``labels (n, K)`` their 0/1 units (drop invalid frames first). Fused values are
    float64 weighted sums, as :func:`fuse` makes them (equal up to the last bit: a value that lands exactly on a
    threshold may be counted on the other side). Units run on ``workers`` threads (default: up to 2 cores).
    """
    w = np.asarray(weights, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size and not (p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError(f"AU fusion needs probabilities in [0, 1]; got values from {p.min()} to {p.max()}")
    truth = (np.asarray(labels) == 1).astype(np.intp)
    k = w.shape[2]
    threads = max(1, workers or min(2, cpu_budget().cores))
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        counts = np.stack(list(pool.map(lambda u: _au_unit_counts(w[:, :, u], p[:, :, u], truth[:, u]), range(k))))
    # on at threshold j (level j + 1): the level indices j + 1 and above (the last cell holds values at or above 1)
    predicted = np.cumsum(counts.sum(axis=1)[..., ::-1], axis=-1)[..., ::-1][..., 1:AU_STEPS].astype(np.float64)
    hits = np.cumsum(counts[:, 1, :, ::-1], axis=-1)[..., ::-1][..., 1:AU_STEPS].astype(np.float64)
    denom = predicted + truth.sum(axis=0)[:, None, None]  # 2·tp + fp + fn = predicted positives + true positives
    f1 = np.divide(2.0 * hits, denom, out=np.zeros_like(denom), where=denom > 0)
    return np.ascontiguousarray(f1.transpose(1, 0, 2))


def _au_unit_counts(columns: np.ndarray, values: np.ndarray, on: np.ndarray) -> np.ndarray:
    """``(2, S, AU_STEPS + 1)`` frames per label (off, on), candidate and level index ``floor(fused · AU_STEPS)``
    (the last index: fused at or above 1) of one unit: ``columns (S, M)``, ``values (M, n)``, ``on (n,)`` 0/1."""
    n_candidates, cells = len(columns), AU_STEPS + 1
    size = n_candidates * cells
    counts = np.zeros((2, n_candidates, cells), np.int64)
    low, high = au_levels(values.min(axis=0)), au_levels(values.max(axis=0))
    shared = low == high  # one level under every weighting (cells AU_STEPS - 1 and up decide alike): counted once
    counts += np.bincount(low[shared] + cells * on[shared], minlength=2 * cells).reshape(2, 1, cells)
    contested = np.flatnonzero(~shared)
    columns = np.ascontiguousarray(columns)
    offsets = (np.arange(n_candidates, dtype=np.float64) * cells)[:, None]
    for start in range(0, len(contested), _AU_BLOCK_FRAMES):
        frames = contested[start : start + _AU_BLOCK_FRAMES]
        fused = columns @ values[:, frames]  # (S, b), values in [0, 1 + rounding]
        fused *= AU_STEPS
        fused += offsets  # whole numbers: the floor below adds them exactly
        index = fused.astype(np.intp)
        index += size * on[frames]
        counts += np.bincount(index.ravel(), minlength=2 * size).reshape(2, n_candidates, cells)
    return counts


def au_best_choices(
    weights: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit the best weight column and threshold of :func:`au_candidate_f1` (the first of equal ones, candidates
    before thresholds): ``(M, K)`` weights, ``(K,)`` thresholds and ``(K,)`` F1."""
    f1 = au_candidate_f1(weights, probabilities, labels, workers)
    n_candidates, k, n_thresholds = f1.shape
    flat = f1.transpose(1, 0, 2).reshape(k, n_candidates * n_thresholds)
    best = flat.argmax(axis=1)
    candidate, threshold = np.divmod(best, n_thresholds)
    chosen = np.asarray(weights, dtype=np.float64)[candidate, :, np.arange(k)].T  # (M, K)
    return chosen, AU_THRESHOLDS[threshold], flat[np.arange(k), best]


def threshold_at_half(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``(n, K)`` probabilities mapped per unit, monotonically and piecewise linearly, so that its threshold (one of
    :data:`AU_THRESHOLDS`) lands at 0.5: ``[0, t] → [0, 0.5]`` and ``[t, 1] → [0.5, 1]``. A value is at or above 0.5
    exactly where it is on at its threshold's level (``value · AU_STEPS >= t · AU_STEPS``, as the search counts), also
    once stored as float32 (values are returned float32-exact), so deciding at 0.5 takes the thresholded decisions
    while the order of the values is kept."""
    p = np.asarray(probabilities, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    on = p * AU_STEPS >= np.round(t * AU_STEPS)
    mapped = np.where(on, 0.5 + 0.5 * (p - t) / (1.0 - t), 0.5 * p / t).astype(np.float32)
    below_half = np.nextafter(np.float32(0.5), np.float32(0.0))
    mapped = np.where(on, np.maximum(mapped, np.float32(0.5)), np.minimum(mapped, below_half))
    return mapped.astype(np.float64)


# --------------------------------------------------------------------------------------------------- folds


def video_folds(track_names: Sequence[str], n_folds: int, seed: int) -> np.ndarray:
    """Fold number 0..F-1 of each track, F = min(n_folds, number of videos): whole videos, shuffled with ``seed``.

    Videos are dealt round-robin after a seeded shuffle, so fold sizes differ by at most one video.
    """
    videos = sorted({video_of(name) for name in track_names})
    if n_folds < 2 or len(videos) < 2:
        raise ValueError(
            f"cross-fitting needs at least 2 folds of whole videos; got {n_folds} folds, {len(videos)} videos"
        )
    order = np.random.default_rng(seed).permutation(len(videos))
    fold_of_video = {videos[v]: i % min(n_folds, len(videos)) for i, v in enumerate(order)}
    return np.array([fold_of_video[video_of(name)] for name in track_names], np.int64)
