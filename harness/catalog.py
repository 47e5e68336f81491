"""What can be run: every spec under ``systems/`` with its latest recorded scores, and one system's resolved plan.

:func:`list_systems` reads the spec files and the leaderboard; nothing is computed. :func:`describe_system` resolves
one system as ``abaw run`` would (the same :func:`harness.runner.plan_nodes`: profile merging, sweeps, the input
DAG, store keys) and says for each node whether the store holds it, without training or extracting anything.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.data.affwild2 import Dataset
from harness.leaderboard import Leaderboard
from harness.run_record import RunRecord
from harness.spec import Spec, available_specs, load_spec, resolve_variants, systems_dir
from harness.store import Store
from harness.tasks import TASKS, Task

IN_STORE, PARTIAL, MISSING = "in store", "partial", "missing"


@dataclass(frozen=True)
class SystemEntry:
    """One spec as written, its variants under ``profile`` and the latest recorded validation run of each variant
    and task (``latest[task]``, one run per variant that has one)."""

    spec: Spec  # the file as written: name, path, kind, tasks, inputs, description
    profile: str
    variants: tuple[str, ...]  # one name without a sweep, else one per combination of the swept settings
    swept: tuple[str, ...]  # the settings a sweep varies
    latest: dict[Task, list[RunRecord]]

    def best(self, task: Task) -> RunRecord | None:
        """The latest run with the highest ranking score among the variants (the only one without a sweep)."""
        runs = self.latest.get(task, [])
        return max(runs, key=lambda run: run.rank_score) if runs else None

    def to_dict(self) -> dict:
        return {
            "name": self.spec.name,
            "path": str(self.spec.path),
            "kind": self.spec.kind,
            "tasks": list(self.spec.tasks),
            "inputs": list(self.spec.inputs),
            "description": self.spec.description,
            "profile": self.profile,
            "variants": list(self.variants) if self.swept else [],
            "swept": list(self.swept),
            "latest": {task: [_run_summary(run) for run in runs] for task, runs in self.latest.items()},
        }


def list_systems(profile: str, leaderboard: Leaderboard | None, systems: Path | None = None) -> list[SystemEntry]:
    """Every spec under ``systems`` (default ``$ABAW_SYSTEMS`` or ``./systems``), by name. A spec whose file does
    not load or resolve raises its :class:`~harness.errors.SpecError`, naming the file and key."""
    folder = systems or systems_dir()
    runs = _latest_runs(leaderboard) if leaderboard is not None and leaderboard.path.is_file() else {}
    entries = []
    for name in available_specs(folder):
        spec = load_spec(name, folder)
        resolved = resolve_variants(spec, profile)
        variants = tuple(variant.name for variant in resolved)
        latest = {
            task: [runs[(variant, task)] for variant in variants if (variant, task) in runs]
            for task in spec.tasks
            if any((variant, task) in runs for variant in variants)
        }
        entries.append(
            SystemEntry(
                spec=spec,
                profile=profile,
                variants=variants,
                swept=tuple(key for key, _ in resolved[0].variant),
                latest=latest,
            )
        )
    return entries


def _latest_runs(leaderboard: Leaderboard) -> dict[tuple[str, Task], RunRecord]:
    """The most recent validation run of each (system, task), whatever its dataset or profile."""
    latest: dict[tuple[str, Task], RunRecord] = {}
    for task in TASKS:
        for run in leaderboard.rows(task=task, split="validation"):  # oldest first: later rows replace earlier
            latest[(run.system, task)] = run
    return latest


def _run_summary(run: RunRecord) -> dict:
    return {
        "system": run.system,
        "leaderboard_id": run.id,
        "score": run.score,
        "rank_score": run.rank_score,
        "honest": run.honest,
        "profile": run.profile,
        "dataset_fingerprint": run.dataset_fingerprint,
        "created_at": run.created_at,
    }


@dataclass(frozen=True)
class NodeStatus:
    """One node of a system's plan: what it is, its store key, its inputs (positions in the plan) and store status."""

    position: int
    name: str
    kind: str
    task: Task
    key: str
    inputs: tuple[int, ...]
    status: str
    settings: dict
    own: bool  # one of the requested system's own nodes (not an input)


@dataclass(frozen=True)
class SystemPlan:
    """A system resolved for a dataset and profile, as :func:`harness.runner.run_system` would compute it."""

    system: str
    profile: str
    dataset_root: Path
    dataset_fingerprint: str
    store_root: Path
    nodes: list[NodeStatus]

    def to_dict(self) -> dict:
        return {
            "system": self.system,
            "profile": self.profile,
            "dataset": {"root": str(self.dataset_root), "fingerprint": self.dataset_fingerprint},
            "store": str(self.store_root),
            "nodes": [
                {
                    "position": node.position,
                    "name": node.name,
                    "kind": node.kind,
                    "task": node.task,
                    "store_key": node.key,
                    "inputs": list(node.inputs),
                    "status": node.status,
                    "in_store": node.status == IN_STORE,
                    "own": node.own,
                    "settings": node.settings,
                }
                for node in self.nodes
            ],
        }


def describe_system(system: str, tasks: Sequence[Task], dataset: Dataset, profile: str, store: Store) -> SystemPlan:
    """The plan of ``system`` for ``tasks`` (inputs first, positions from 1) with each node's store status:
    ``in store`` (complete, a run would reuse it), ``partial`` (a killed run's files, a run resumes them) or
    ``missing``. Nothing is computed: the dataset is only fingerprinted, as ``abaw run`` does before planning."""
    from harness.runner import plan_nodes

    plans = plan_nodes(system, tasks, dataset, profile)
    target = plans[-1].resolved.spec.name  # every variant of the requested spec is its own
    positions = {id(plan): number for number, plan in enumerate(plans, start=1)}
    nodes = []
    for plan in plans:
        node = store.node(plan.key)
        status = IN_STORE if node.is_complete() else PARTIAL if node.path.is_dir() else MISSING
        nodes.append(
            NodeStatus(
                position=positions[id(plan)],
                name=plan.name,
                kind=plan.resolved.kind,
                task=plan.task,
                key=plan.key,
                inputs=tuple(positions[id(p)] for p in plan.inputs),
                status=status,
                settings=plan.material["settings"],
                own=plan.resolved.spec.name == target,
            )
        )
    return SystemPlan(system, profile, dataset.root, plans[-1].material["dataset"], store.root, nodes)
