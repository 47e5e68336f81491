"""Exact Kernel ELM against its Nyström approximation: time, peak memory and score gap at growing N, in one run.

    python bench/bench_kelm.py            # N = 1k, 5k, 20k (exact and Nyström), then Nyström at N = 10^6
    python bench/bench_kelm.py --quick    # N = 1k, 2k, and 50k rows for the Nyström-only run

Goal (DESIGN.md, "Performance goals"): exact up to ~20 k rows, refused above; Nyström beyond, within 1% of exact
where both run. Data: 768-d float32 rows ``tanh(z P) + noise`` from an 8-d latent z, two VA-like targets that are
smooth functions of z plus noise; scores on 2,000 held-out rows. Kernel rbf with gamma = 1 / (d · var(X)), one C.
``score`` is the mean CCC of the two targets (the ABAW VA score); ``score_gap`` = |score − exact| / exact and
``rmse_gap`` likewise for the RMSE. ``peak_mib`` is tracemalloc's peak over the fit and the held-out predictions,
above what was allocated before: numpy buffers (which dominate), not BLAS/LAPACK internal workspace or the
interpreter. The 10^6 × 768 float32 training matrix (2.9 GiB) exists before the fit and is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import tracemalloc

import numpy as np

from harness.metrics import ccc
from harness.models.kernel_elm import KernelParams, fit_grid

D, LATENT, N_TEST, C = 768, 8, 2000, 10.0
_GEN_ROWS = 1 << 16  # rows generated at a time, so the 10^6-row set needs no float64 copy


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (n × 768, float32) and ``Y`` (n × 2, in [-1, 1]); the projection P is the same for every seed."""
    P = np.random.default_rng(12345).normal(size=(LATENT, D)) / np.sqrt(LATENT)
    rng = np.random.default_rng(seed)
    X, Y = np.empty((n, D), np.float32), np.empty((n, 2))
    for a in range(0, n, _GEN_ROWS):
        z = rng.normal(size=(min(_GEN_ROWS, n - a), LATENT))
        X[a : a + len(z)] = np.tanh(z @ P) + 0.1 * rng.normal(size=(len(z), D))
        valence = np.tanh(z[:, 0] + 0.5 * z[:, 1] * z[:, 2])
        arousal = np.tanh(np.sin(2 * z[:, 3]) - 0.5 * z[:, 4] ** 2 + 0.5)
        Y[a : a + len(z)] = np.clip(np.column_stack([valence, arousal]) + 0.1 * rng.normal(size=(len(z), 2)), -1, 1)
    return X, Y


def scores(pred: np.ndarray, Y: np.ndarray) -> tuple[float, float]:
    """(mean CCC over the two targets, RMSE over all values)."""
    return float(np.mean([ccc(pred[:, j], Y[:, j]) for j in range(2)])), float(np.sqrt(np.mean((pred - Y) ** 2)))


def measure(X, Y, X_test, params: KernelParams, landmarks: int | None) -> tuple[np.ndarray, float, float]:
    """(held-out predictions, seconds, peak MiB above the start) of one fit and its predictions."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    grid = fit_grid(X, Y, [C], params, X_eval=X_test, nystrom_landmarks=landmarks, seed=0)
    seconds = time.perf_counter() - start
    peak = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    return grid.eval_predictions[0], seconds, peak


def run(sizes=(1000, 5000, 20000), landmarks=(500, 1000, 2000), million_rows=1_000_000, million_landmarks=1000):
    """One dict per fit: n, method, landmarks, seconds, peak_mib, score, rmse and, for Nyström, the gaps to exact."""
    tracemalloc.start()
    X_test, Y_test = synthetic(N_TEST, seed=1)
    params = None
    results = []
    for n in sizes:
        X, Y = synthetic(n, seed=2)
        params = params or KernelParams("rbf", gamma=1.0 / (D * float(X[:10_000].var())))
        exact, seconds, peak = measure(X, Y, X_test, params, None)
        ref_score, ref_rmse = scores(exact, Y_test)
        results.append(
            {"n": n, "method": "exact", "landmarks": None, "seconds": seconds, "peak_mib": peak}
            | {"score": ref_score, "rmse": ref_rmse}
        )
        for m in (m for m in landmarks if m < n):
            pred, seconds, peak = measure(X, Y, X_test, params, m)
            score, rmse = scores(pred, Y_test)
            results.append(
                {"n": n, "method": "nystrom", "landmarks": m, "seconds": seconds, "peak_mib": peak}
                | {"score": score, "rmse": rmse, "score_gap": abs(score - ref_score) / abs(ref_score)}
                | {"rmse_gap": abs(rmse - ref_rmse) / ref_rmse}
            )
        del X, Y
    if million_rows:
        X, Y = synthetic(million_rows, seed=2)
        pred, seconds, peak = measure(X, Y, X_test, params, million_landmarks)
        score, rmse = scores(pred, Y_test)
        results.append(
            {"n": million_rows, "method": "nystrom", "landmarks": million_landmarks, "seconds": seconds}
            | {"peak_mib": peak, "score": score, "rmse": rmse}
        )
    tracemalloc.stop()
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--landmarks", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--million-rows", type=int, default=1_000_000, help="rows of the Nyström-only run (0: skip)")
    parser.add_argument("--million-landmarks", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="N = 1k, 2k and a 50k-row Nyström-only run")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.million_rows = [1000, 2000], 50_000
    print(f"bench_kelm: numpy {np.__version__}, {os.cpu_count()} CPU(s), d = {D}, C = {C}, {N_TEST} held-out rows")
    results = run(args.sizes, args.landmarks, args.million_rows, args.million_landmarks)
    print(f"{'N':>9} {'method':<8} {'M':>5} {'time s':>8} {'peak MiB':>9} {'CCC':>7} {'RMSE':>7} {'CCC gap':>8}")
    for r in results:
        gap = f"{100 * r['score_gap']:.2f}%" if "score_gap" in r else "—"
        m = r["landmarks"] or "—"
        print(
            f"{r['n']:>9} {r['method']:<8} {m:>5} {r['seconds']:>8.2f} {r['peak_mib']:>9.1f} "
            f"{r['score']:>7.4f} {r['rmse']:>7.4f} {gap:>8}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f"process peak RSS (ru_maxrss, whole run incl. data): {rss:.1f} GiB")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
