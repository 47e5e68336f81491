"""A re-run of an unchanged system against its first run: store hits and wall time, in one run.

    python bench/bench_rerun.py [--system audio_v3] [--task va]

Goal (DESIGN.md, "Performance goals"): a re-run of an unchanged system is 100% store hits, seconds not minutes.
Everything happens in a fresh temporary ``ABAW_HOME`` (default synthetic dataset ``tiny``, profile ``smoke``); the
dataset is generated before the clock starts. Prints a line, then the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def run(system: str, task: str) -> dict:
    """First run (trains), second run (should be all hits): seconds, node counts and hit shares."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["ABAW_HOME"] = home
        os.environ["ABAW_LEADERBOARD"] = str(Path(home) / "leaderboard.sqlite")
        from harness.data.affwild2 import Dataset
        from harness.data.root import resolve_root
        from harness.runner import run_system

        dataset = Dataset(resolve_root(None)[0])
        timings, hits = [], []
        for _ in range(2):
            started = time.perf_counter()
            results = run_system(system, [task], dataset)
            timings.append(time.perf_counter() - started)
            hits.append(sum(r.hit for r in results) / len(results))
    return {
        "system": system,
        "task": task,
        "nodes": len(results),
        "first_seconds": round(timings[0], 2),
        "rerun_seconds": round(timings[1], 2),
        "first_hit_share": hits[0],
        "rerun_hit_share": hits[1],
        "speedup": round(timings[0] / timings[1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="audio_v3")
    parser.add_argument("--task", default="va", choices=["va", "expr"])
    args = parser.parse_args()
    r = run(args.system, args.task)
    print(
        f"bench_rerun: {r['system']} {r['task']}: first run {r['first_seconds']} s, re-run {r['rerun_seconds']} s "
        f"({100 * r['rerun_hit_share']:.0f}% of {r['nodes']} nodes from the store, {r['speedup']}x faster)"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
