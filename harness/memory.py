"""Peak memory of one node's work, recorded beside its train and inference seconds.

The process's resident high-water mark (Linux ``VmHWM``), reset before the node by writing ``5`` to
``/proc/self/clear_refs``; where that cannot be reset (not Linux), the process's lifetime peak (``ru_maxrss``), so
the figure is an upper bound. On a GPU, torch's peak allocation on the current device, reset likewise.
"""

import contextlib
import resource
import sys
from pathlib import Path

_PROC = Path("/proc/self")


def reset_peak() -> None:
    """Start a new high-water mark (resident memory; GPU allocations when torch uses CUDA)."""
    with contextlib.suppress(OSError):
        (_PROC / "clear_refs").write_text("5")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_mb() -> dict[str, float]:
    """``{"rss": MiB}`` since :func:`reset_peak`, and ``"gpu"`` (MiB) when torch uses CUDA."""
    peak = {"rss": round(_resident_peak_kib() / 1024, 1)}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        peak["gpu"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def _resident_peak_kib() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
