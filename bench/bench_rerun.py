"""A re-run of an unchanged system against its first run: store hits and wall time, in one run.

    python bench/bench_rerun.py [--system audio_v3] [--task va]

Goal (DESIGN.md, "Performance goals"): a re-run of an unchanged system is 100% store hits, seconds not minutes.
Everything happens in a fresh temporary ``ABAW_HOME`` (default synthetic dataset ``tiny``, profile ``smoke``); the
dataset is generated before the clock starts. Each run starts with nothing verified, as a new process would
(:func:`harness.store.forget_verified`). Then the cost of verifying reads: hashing every artifact of the run's nodes
once, as a process does before a node reads them (``verify_seconds``, ``verified_mb``). Prints a line, then the
result as JSON.
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
        from harness.store import Store, default_store_root, forget_verified

        dataset = Dataset(resolve_root(None)[0])
        timings, hits = [], []
        for _ in range(2):
            forget_verified()
            started = time.perf_counter()
            results = run_system(system, [task], dataset)
            timings.append(time.perf_counter() - started)
            hits.append(sum(r.hit for r in results) / len(results))
        nodes = [Store(default_store_root()).node(r.plan.key) for r in results]
        forget_verified()
        started = time.perf_counter()
        trusted = [node.is_complete(verify=True) for node in nodes]
        verify_seconds = time.perf_counter() - started
        if not all(trusted):
            raise SystemExit(f"bench_rerun: a node of {system} does not match its checksums")
        size = sum(meta["size"] for node in nodes for meta in node.provenance()["artifacts"].values())
    return {
        "system": system,
        "task": task,
        "nodes": len(results),
        "first_seconds": round(timings[0], 2),
        "rerun_seconds": round(timings[1], 2),
        "first_hit_share": hits[0],
        "rerun_hit_share": hits[1],
        "speedup": round(timings[0] / timings[1], 1),
        "verify_seconds": round(verify_seconds, 3),
        "verified_mb": round(size / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="audio_v3")
    parser.add_argument("--task", default="va", choices=["va", "expr"])
    args = parser.parse_args()
    r = run(args.system, args.task)
    print(
        f"bench_rerun: {r['system']} {r['task']}: first run {r['first_seconds']} s, re-run {r['rerun_seconds']} s "
        f"({100 * r['rerun_hit_share']:.0f}% of {r['nodes']} nodes from the store, {r['speedup']}x faster); "
        f"verifying all {r['verified_mb']} MB of them: {r['verify_seconds']} s"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
