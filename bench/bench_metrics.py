"""Time the ABAW metrics against DESIGN.md's goals, side by side with naive references, in one run.

    python bench/bench_metrics.py            # a table on stdout, then the results as JSON
    python bench/bench_metrics.py --quick    # fewer naive resamples

Goals (DESIGN.md, "Performance goals"): CCC and macro-F1 over 2.6 M frames <= 50 ms each; 10^4 video-block bootstrap
resamples <= 1 s (here end to end: per-track statistics over all frames, then the resamples). ``run()`` returns one
dict per measurement with keys name, value, unit, goal (an upper bound in ``unit``, or None) and, where a naive
reference ran, reference, reference_value and speedup (reference_value / value).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np

from harness.metrics import task_scores
from harness.resampling import bootstrap_ci, paired_bootstrap


def best_of(fn: Callable[..., object], repeats: int, *args, **kwargs) -> float:
    """The fastest of ``repeats`` calls of ``fn(*args, **kwargs)``, in seconds (time.perf_counter)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic(n_frames: int, n_tracks: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random pooled predictions and labels (2% invalid labels), frames spread over tracks of random length."""
    rng = np.random.default_rng(seed)
    lengths = rng.multinomial(n_frames - n_tracks, np.full(n_tracks, 1 / n_tracks)) + 1
    va_labels = rng.uniform(-1, 1, (n_frames, 2))
    va_pred = np.clip(0.6 * va_labels + rng.normal(0, 0.4, (n_frames, 2)), -1, 1)
    va_labels[rng.random(n_frames) < 0.02] = -5.0
    expr_labels = rng.integers(0, 8, n_frames)
    expr_pred = np.where(rng.random(n_frames) < 0.4, expr_labels, rng.integers(0, 8, n_frames))
    expr_labels[rng.random(n_frames) < 0.02] = -1
    return {
        "track_index": np.repeat(np.arange(n_tracks), lengths),
        "va_pred": va_pred,
        "va_pred_b": np.clip(va_pred + rng.normal(0, 0.1, va_pred.shape), -1, 1),
        "va_labels": va_labels,
        "expr_pred": expr_pred,
        "expr_labels": expr_labels,
    }


def naive_va(pred: np.ndarray, labels: np.ndarray) -> float:
    """The textbook way: mask rows, then np.cov / np.var per dimension."""
    keep = (labels != -5).all(axis=1)
    p, lab = pred[keep], labels[keep]
    cccs = []
    for d in range(2):
        cov = np.cov(p[:, d], lab[:, d], ddof=0)[0, 1]
        cccs.append(2 * cov / (p[:, d].var() + lab[:, d].var() + (p[:, d].mean() - lab[:, d].mean()) ** 2))
    return float(np.mean(cccs))


def naive_f1(pred: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    keep = labels != -1
    return float(f1_score(labels[keep], pred[keep], labels=range(8), average="macro", zero_division=0))


def naive_bootstrap(task: str, pred, labels, track_index, n_resamples: int, seed: int = 0) -> np.ndarray:
    """One resample at a time: draw tracks, gather their frames, score them."""
    rng = np.random.default_rng(seed)
    starts = np.r_[0, np.flatnonzero(np.diff(track_index)) + 1, len(track_index)]
    rows = [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    scores = np.empty(n_resamples)
    for i in range(n_resamples):
        picked = np.concatenate([rows[t] for t in rng.integers(0, len(rows), len(rows))])
        scores[i] = task_scores(task, pred[picked], labels[picked]).score
    return scores


def run(
    n_frames: int = 2_600_000,
    n_tracks: int = 600,
    n_resamples: int = 10_000,
    naive_resamples: int = 100,
    repeats: int = 5,
) -> list[dict]:
    """Time each measurement on one synthetic data set; one dict per measurement (see the module docstring)."""
    data = synthetic(n_frames, n_tracks)
    ti = data["track_index"]
    va, expr = (data["va_pred"], data["va_labels"]), (data["expr_pred"], data["expr_labels"])
    millions = f"{n_frames / 1e6:.1f}M"
    results = []

    def add(name, seconds, unit, goal, reference=None, reference_seconds=None):
        scale = 1e3 if unit == "ms" else 1.0
        row = {"name": name, "value": round(seconds * scale, 3), "unit": unit, "goal": goal}
        if reference is not None:
            row |= {
                "reference": reference,
                "reference_value": round(reference_seconds * scale, 3),
                "speedup": round(reference_seconds / seconds, 2),
            }
        results.append(row)

    add(
        f"va_score_ccc_{millions}_frames",
        best_of(lambda: task_scores("va", *va), repeats),
        "ms",
        50.0,
        "row mask + np.cov",
        best_of(lambda: naive_va(*va), max(1, repeats // 2)),
    )
    add(
        f"expr_macro_f1_{millions}_frames",
        best_of(lambda: task_scores("expr", *expr), repeats),
        "ms",
        50.0,
        "sklearn f1_score",
        best_of(lambda: naive_f1(*expr), 1),
    )
    boot_repeats = max(1, repeats // 2)
    for task, (pred, labels) in (("va", va), ("expr", expr)):
        seconds = best_of(bootstrap_ci, boot_repeats, task, pred, labels, ti, n_resamples=n_resamples)
        loop = best_of(naive_bootstrap, 1, task, pred, labels, ti, naive_resamples)
        add(
            f"{task}_bootstrap_{n_resamples}_resamples_{n_tracks}_tracks_{millions}_frames",
            seconds,
            "s",
            1.0,
            f"python loop, {naive_resamples} resamples extrapolated",
            loop * n_resamples / naive_resamples,
        )
    pair = (data["va_pred"], data["va_pred_b"], data["va_labels"])
    paired = best_of(paired_bootstrap, boot_repeats, "va", *pair, ti, n_resamples=n_resamples)
    add(f"va_paired_bootstrap_{n_resamples}_resamples_{n_tracks}_tracks_{millions}_frames", paired, "s", None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2_600_000)
    parser.add_argument("--tracks", type=int, default=600)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--naive-resamples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10 naive resamples and 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.naive_resamples, args.repeats = 10, 3
    print(f"bench_metrics: numpy {np.__version__}, {os.cpu_count()} CPU(s), best of {args.repeats}")
    results = run(args.frames, args.tracks, args.resamples, args.naive_resamples, args.repeats)
    for r in results:
        goal = "no goal" if r["goal"] is None else f"goal <= {r['goal']:g} {r['unit']}"
        line = f"{r['name']:<58} {r['value']:>10.3f} {r['unit']:<2}  {goal:<16}"
        if "reference" in r:
            line += f"  {r['reference']}: {r['reference_value']:.3f} {r['unit']} ({r['speedup']:.1f}x)"
        print(line.rstrip())
    print(json.dumps(results))


if __name__ == "__main__":
    main()
