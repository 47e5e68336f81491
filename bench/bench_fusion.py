"""Time the DWF candidate search against DESIGN.md's goals, side by side with a per-candidate loop over frames.

    python bench/bench_fusion.py            # a table on stdout, then the results as JSON
    python bench/bench_fusion.py --quick    # fewer candidates

Goals (DESIGN.md, "Performance goals"): VA fusion search >= 10^6 candidates/s on 2 cores (closed form from means and
covariances); EXPR fusion search of 10^4 candidates over 376 k frames <= 60 s on 2 cores. The straightforward way
fuses the frames and scores them once per candidate; it runs on a subset of the candidates and is extrapolated.
``run()`` returns one dict per measurement: name, value, unit, goal, and reference, reference_value, speedup.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from harness.fusion_math import (
    dirichlet_candidates,
    expr_candidate_scores,
    fuse,
    surviving_classes,
    va_candidate_scores,
    va_moments,
)
from harness.metrics import task_scores


def inputs(n_frames: int, n_models: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Three models' predictions that share an error (as models of one video do) and add their own."""
    rng = np.random.default_rng(seed)
    va_labels = rng.uniform(-1, 1, (n_frames, 2))
    shared = rng.normal(0, 0.3, (n_frames, 2))
    va = np.clip(0.6 * va_labels[None] + shared[None] + rng.normal(0, 0.4, (n_models, n_frames, 2)), -1, 1)
    va_labels[rng.random(n_frames) < 0.02] = -5.0
    labels = rng.integers(0, 8, n_frames)
    logits = (
        2.0 * np.eye(8)[labels][None] + rng.normal(0, 1, (1, n_frames, 8)) + rng.normal(0, 1, (n_models, n_frames, 8))
    )
    expr = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return {"va": va, "va_labels": va_labels, "expr": expr.astype(np.float32), "expr_labels": labels}


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(va_candidates: int = 1_000_000, expr_candidates: int = 10_000, loop_candidates: int = 20) -> list[dict]:
    """VA and EXPR searches over 382 k and 376 k frames of 3 models; one dict per measurement."""
    rng = np.random.default_rng(1)
    va_data = inputs(382_000, 3)
    data = inputs(376_000, 3, seed=2)
    results = []

    va_weights = dirichlet_candidates(rng, va_candidates, 3, 2)
    seconds, _ = timed(lambda: va_candidate_scores(va_weights, va_moments(va_data["va"], va_data["va_labels"])))
    loop, _ = timed(
        lambda: [
            task_scores("va", fuse(w, list(va_data["va"])), va_data["va_labels"]) for w in va_weights[:loop_candidates]
        ]
    )
    per_loop = loop / loop_candidates
    results.append(
        {
            "name": f"va_dwf_{va_candidates}_candidates_382k_frames",
            "value": round(va_candidates / seconds),
            "unit": "candidates/s",
            "goal": 1e6,
            "reference": f"fuse frames + CCC per candidate ({loop_candidates} run, extrapolated)",
            "reference_value": round(1 / per_loop, 1),
            "speedup": round(per_loop * va_candidates / seconds, 1),
        }
    )

    expr_weights = dirichlet_candidates(rng, expr_candidates, 3, 8)
    seconds, _ = timed(lambda: expr_candidate_scores(expr_weights, data["expr"], data["expr_labels"]))
    loop, _ = timed(
        lambda: [
            task_scores("expr", fuse(w, list(data["expr"])).argmax(1), data["expr_labels"])
            for w in expr_weights[:loop_candidates]
        ]
    )
    decided = float((surviving_classes(data["expr"]).sum(axis=1) == 1).mean())
    results.append(
        {
            "name": f"expr_dwf_{expr_candidates}_candidates_376k_frames",
            "value": round(seconds, 2),
            "unit": "s",
            "goal": 60.0,
            "reference": f"fuse frames + argmax + F1 per candidate ({loop_candidates} run, extrapolated)",
            "reference_value": round(loop / loop_candidates * expr_candidates, 1),
            "speedup": round(loop / loop_candidates * expr_candidates / seconds, 1),
            "frames_decided_for_every_candidate": round(decided, 3),
        }
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 VA and 10^3 EXPR candidates")
    args = parser.parse_args()
    sizes = (100_000, 1_000, 5) if args.quick else (1_000_000, 10_000, 20)
    print(f"bench_fusion: numpy {np.__version__}, {os.cpu_count()} CPU(s)")
    results = run(*sizes)
    for r in results:
        line = f"{r['name']:<44} {r['value']:>12,} {r['unit']:<13} goal {r['goal']:g}"
        line += f"  {r['reference']}: {r['reference_value']:,} ({r['speedup']:.0f}x)"
        print(line)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
