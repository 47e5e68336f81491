"""Wall time of the whole test suite, as CI runs it (``python -m pytest``), in a subprocess.

    python bench/bench_suite.py

Goal (DESIGN.md, "Performance goals"): the whole test suite in at most 10 minutes on 2 CPU cores. Prints a line,
then the result as JSON (seconds, pytest's exit code and its summary line).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run() -> dict:
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return {"seconds": round(seconds, 1), "exit_code": done.returncode, "summary": lines[-1] if lines else ""}


def main() -> None:
    r = run()
    print(f"bench_suite: {r['seconds']} s, exit code {r['exit_code']}: {r['summary']}")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
