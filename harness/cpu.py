"""The CPU budget of a run: how many cores this process may use, and the torch threads and decoding workers from it.

A run crawls when it asks for more cores than it gets: torch's intra-op threads spin-wait for each other, so N
threads on fewer than N cores stall every operation (issue #20: a smoke run took over 4 minutes instead of 105 s
beside another heavy job). The budget is the cores the process may run on: its CPU affinity
(``os.sched_getaffinity``: taskset, cpusets) and its cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``: a
container's ``--cpus``), whichever is smaller, a quota rounded down (at least 1). ``$ABAW_THREADS`` overrides it: on
a machine shared with other heavy jobs, set it to the cores this run may take. Under ``torchrun`` the processes of
one machine (``$LOCAL_WORLD_SIZE``) split its cores and its shared memory between them (``$ABAW_THREADS`` is then
each process's own).

From the budget: torch's intra-op threads are lowered to it when torch's own choice (all cores, or
``OMP_NUM_THREADS``) is larger, never raised; DataLoader decoding workers are capped at it where their number cannot
change what is computed (a training loader that flips images at random draws from one generator per worker, so
there the spec's ``workers`` holds: it is part of the store key). So on an idle machine whose cores are all the
process's, nothing changes. The load of the machine is deliberately not read: the thread count can change the
rounding of float reductions, and a run's result must not depend on what else ran beside it.
"""

import functools
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

ENV = "ABAW_THREADS"
SHARED_MEMORY = Path("/dev/shm")  # where DataLoader workers hand their batches over
PREFETCH = 2  # DataLoader's prefetch_factor: the batches each worker holds ready
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class CpuBudget:
    """``cores`` this process may use, and ``source``: where that number comes from, for the run's notes."""

    cores: int
    source: str


def cgroup_cpus(root: Path = CGROUP_ROOT, membership: Path = PROC_CGROUP) -> float | None:
    """The CPU quota of this process's cgroups in cores (quota / period), the tightest from its group up to the root of
    the hierarchy, cgroup v2 and v1; None when no quota is set or none can be read."""
    limits = [limit for folder in _cgroup_folders(root, membership) if (limit := _quota(folder)) is not None]
    return min(limits) if limits else None


def _cgroup_folders(root: Path, membership: Path) -> list[Path]:
    """The cgroup folders of this process's CPU controller and their ancestors (``/proc/self/cgroup`` lines
    ``hierarchy:controllers:path``: ``0::path`` for v2; a ``cpu`` controller for v1)."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    folders: list[Path] = []
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and not controllers:
            mounts = [root, root / "unified"]
        elif "cpu" in controllers.split(","):
            mounts = [root / controllers, root / "cpu", root / "cpu,cpuacct"]
        else:
            continue
        for mount in mounts:
            folder = mount / path.strip("/")
            while True:  # from the group up to the mount: a parent's quota binds its children
                folders.append(folder)
                if folder == mount:
                    break
                folder = folder.parent
    return [folder for folder in dict.fromkeys(folders) if folder.is_dir()]


def _quota(folder: Path) -> float | None:
    """One cgroup folder's quota in cores: v2 ``cpu.max`` (``max 100000`` or ``150000 100000``), v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: none)."""
    try:
        if (folder / "cpu.max").is_file():
            quota, period = ((folder / "cpu.max").read_text().split() + ["100000"])[:2]
        elif (folder / "cpu.cfs_quota_us").is_file():
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        else:
            return None
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


def local_processes() -> int:
    """The processes of this run on this machine: torchrun's ``$LOCAL_WORLD_SIZE`` (each rank's cores and shared
    memory are its share), else 1."""
    value = os.environ.get("LOCAL_WORLD_SIZE", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 1


@functools.cache
def machine_budget() -> CpuBudget:
    """The cores affinity and cgroup quota leave this process, shared with torchrun's other local ranks (read once
    per process)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None and int(quota) < affinity:
        cores, source = max(1, int(quota)), f"cgroup CPU quota {quota:g} of {affinity} cores in its affinity"
    else:
        quoted = "" if quota is None else f", cgroup quota {quota:g}"
        cores, source = affinity, f"CPU affinity {affinity} of {os.cpu_count()} cores{quoted}"
    ranks = local_processes()
    if ranks > 1:
        cores, source = max(1, cores // ranks), f"{source}, shared by {ranks} local ranks"
    return CpuBudget(cores, source)


def cpu_budget() -> CpuBudget:
    """``$ABAW_THREADS`` when set (a positive integer), else :func:`machine_budget`."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return machine_budget()
    if not value.isdigit() or int(value) < 1:
        raise HarnessError(f"${ENV} must be a positive whole number of cores (e.g. 1), found {value!r}; or unset it")
    return CpuBudget(int(value), f"${ENV}={int(value)}")


def limit_torch_threads(budget: CpuBudget) -> int | None:
    """Lower torch's intra-op threads to the budget (never raise them); the thread count, None without torch.

    Only a process that has imported torch (a kind that uses it) is touched: the others never import it here."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    threads = torch.get_num_threads()
    if threads > budget.cores:
        torch.set_num_threads(budget.cores)
    return torch.get_num_threads()


def decoding_workers(setting: int, random: bool) -> int:
    """DataLoader worker processes for a loader the spec gives ``setting``: capped at the budget, unless the loader
    draws random numbers in its workers (``random``), whose number then decides the draws and must stay."""
    return setting if random else min(setting, cpu_budget().cores)


def shared_memory_workers(batch_bytes: int, folder: Path = SHARED_MEMORY) -> int | None:
    """The most DataLoader workers whose ready batches (:data:`PREFETCH` each of ``batch_bytes``) take at most half
    the free shared memory; None where it cannot be read. A container's /dev/shm is 64 MB unless it is run with
    ``--shm-size``: 15 workers of 64 crops at 224 px would hold 290 MB there, and die of a bus error."""
    try:
        free = shutil.disk_usage(folder).free // local_processes()  # torchrun's local ranks load at once
    except OSError:
        return None
    return int(free // 2 // (PREFETCH * max(1, batch_bytes)))


def budget_note(budget: CpuBudget, threads: int | None) -> str:
    """The run-notes line saying the choice."""
    torch = f"torch threads {threads}" if threads is not None else "no torch"
    return f"cpu: {budget.cores} core(s) ({budget.source}): {torch}, DataLoader workers at most {budget.cores}"
