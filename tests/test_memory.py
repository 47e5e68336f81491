"""Peak memory per node: the resident high-water mark is reset per node, recorded in run.json and on the row."""

import json
import subprocess
import sys

from test_reliability import world  # noqa: F401  (the toy world: hand-written root, toy kinds, store, board)

from harness.runner import run_system

PEAK_PROBE = """
import json
import numpy as np
from harness import memory

memory.reset_peak()
before = memory.peak_mb()["rss"]
block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
during = memory.peak_mb()["rss"]
del block
memory.reset_peak()
print(json.dumps([before, during, memory.peak_mb()["rss"]]))
"""


def test_the_peak_rises_with_an_allocation_and_resets() -> None:
    """In a fresh interpreter: inside the test session's, freed memory still resident could hold the block without
    raising the resident set (seen once in CI)."""
    probe = subprocess.run([sys.executable, "-c", PEAK_PROBE], capture_output=True, text=True, check=True)
    before, during, after = json.loads(probe.stdout)
    assert during - before >= 60
    assert after < during


def test_each_node_and_its_leaderboard_row_record_the_peak(world) -> None:  # noqa: F811
    dataset, store, board, systems = world
    results = run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert all(result.peak_memory_mb["rss"] > 0 for result in results)
    stored = store.node(results[-1].plan.key).read_json("run.json")["peak_memory_mb"]
    assert stored == results[-1].peak_memory_mb
    (row,) = board.rows(task="va")
    assert row.extra["peak_memory_mb"] == stored
    again = run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert again[-1].hit and again[-1].peak_memory_mb == stored
