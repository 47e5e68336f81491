"""The CPU budget: affinity, cgroup quotas (v2 and v1), the $ABAW_THREADS override, and what is chosen from it."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict

from harness import cpu
from harness.cpu import CpuBudget, cgroup_cpus, cpu_budget, decoding_workers, limit_torch_threads, machine_budget
from harness.data.affwild2 import Dataset
from harness.errors import HarnessError
from harness.leaderboard import Leaderboard
from harness.models.registry import KIND_MODULES, Kind, register_kind
from harness.store import Store


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_tightest_from_the_group_up(tmp_path: Path) -> None:
    root, membership = tmp_path / "cgroup", tmp_path / "self_cgroup"
    write(membership, "0::/user.slice/job\n")
    write(root / "cpu.max", "max 100000\n")
    write(root / "user.slice/cpu.max", "150000 100000\n")
    write(root / "user.slice/job/cpu.max", "max 100000\n")
    assert cgroup_cpus(root, membership) == 1.5
    write(root / "user.slice/cpu.max", "max 100000\n")
    assert cgroup_cpus(root, membership) is None


def test_cgroup_v1_quota_of_a_container(tmp_path: Path) -> None:
    root, membership = tmp_path / "cgroup", tmp_path / "self_cgroup"
    write(membership, "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")  # the host's path: not mounted inside
    write(root / "cpu,cpuacct/cpu.cfs_quota_us", "50000\n")
    write(root / "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpus(root, membership) == 0.5
    write(root / "cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpus(root, membership) is None
    assert cgroup_cpus(tmp_path / "none", tmp_path / "no_such_file") is None


def test_budget_is_the_smaller_of_affinity_and_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cpu.ENV, raising=False)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(cpu, "cgroup_cpus", lambda: 1.5)
    machine_budget.cache_clear()
    try:
        assert cpu_budget() == CpuBudget(1, "cgroup CPU quota 1.5 of 8 cores in its affinity")
        monkeypatch.setattr(cpu, "cgroup_cpus", lambda: None)
        machine_budget.cache_clear()
        assert cpu_budget().cores == 8 and cpu_budget().source.startswith("CPU affinity 8 of ")
        monkeypatch.setenv(cpu.ENV, "3")
        assert cpu_budget() == CpuBudget(3, "$ABAW_THREADS=3")
        monkeypatch.setenv(cpu.ENV, "0")
        with pytest.raises(HarnessError, match=r"\$ABAW_THREADS must be a positive whole number of cores .* '0'"):
            cpu_budget()
    finally:
        machine_budget.cache_clear()


def test_torchruns_local_ranks_split_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cpu.ENV, raising=False)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(cpu, "cgroup_cpus", lambda: None)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    machine_budget.cache_clear()
    try:
        budget = cpu_budget()
        assert budget.cores == 4 and budget.source.endswith(", shared by 4 local ranks")
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")  # more ranks than cores: one each
        machine_budget.cache_clear()
        assert cpu_budget().cores == 1
    finally:
        machine_budget.cache_clear()


def test_two_free_cores_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle 2-core machine: torch's 2 threads and the specs' workers (smoke 0, paper 2) stay as they were."""
    monkeypatch.setenv(cpu.ENV, "2")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert limit_torch_threads(cpu_budget()) == 2
        assert [decoding_workers(n, random) for n in (0, 2) for random in (False, True)] == [0, 0, 2, 2]
        torch.set_num_threads(1)  # OMP_NUM_THREADS=1, or a budget of 1 earlier: never raised
        assert limit_torch_threads(cpu_budget()) == 1
    finally:
        torch.set_num_threads(threads)


def test_one_core_lowers_threads_and_deterministic_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cpu.ENV, "1")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert limit_torch_threads(cpu_budget()) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    assert decoding_workers(2, random=False) == 1  # inference: the outputs do not depend on it
    assert decoding_workers(2, random=True) == 2  # random flips: one generator per worker, so the spec's number holds


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


@register_kind("cpu_toy")
class _ThreadsKind(Kind):
    """Predicts the number of torch threads it ran with, as every label."""

    version = "1"
    Settings = _Settings
    profiles: dict = {}
    outputs = ("pred",)

    def __init__(self, settings: _Settings, task: str, seed: int) -> None:
        self.task = task

    def fit(self, context) -> "_ThreadsKind":
        return self

    def predict(self, context, split_name, tracks):
        for name in tracks:
            n = context.split(split_name).track(name).n_rows
            yield name, {"pred": np.full((n, 2), torch.get_num_threads() / 10, np.float32)}

    def state(self) -> dict:
        return {"w": torch.zeros(1)}

    def load_state(self, state) -> "_ThreadsKind":
        return self


def test_a_run_says_its_cpu_choice_in_its_notes(
    handmade_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.runner import run_system

    monkeypatch.setitem(KIND_MODULES, "cpu_toy", __name__)
    monkeypatch.setenv(cpu.ENV, "1")
    write(tmp_path / "systems/threads.yaml", "kind: cpu_toy\ntasks: [va]\n")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        (result,) = run_system(
            "threads", ["va"], Dataset(handmade_root), "smoke", Store(tmp_path / "store"),
            Leaderboard(tmp_path / "lb.sqlite"), tmp_path / "systems",
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    note = "cpu: 1 core(s) ($ABAW_THREADS=1): torch threads 1, DataLoader workers at most 1"
    assert note in result.notes
    assert Store(tmp_path / "store").node(result.plan.key).read_json("run.json")["notes"] == result.notes
    first = Dataset(handmade_root).split("va", "train").names[0]
    assert float(Store(tmp_path / "store").node(result.plan.key).read_track("pred-train", first)[0, 0]) == np.float32(
        0.1
    )
