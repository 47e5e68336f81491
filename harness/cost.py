"""What a run will cost before it runs (``abaw run SYSTEM --dry-run``): per node, in order, whether the store holds
it, the work it would do, and a time estimate from the throughput this store measured on this machine.

Work is counted per kind in one unit, the one its time grows with: ``video`` crop passes (every crop embedded once,
the train crops once per epoch), ``audio`` audio-second passes (likewise over the tracks' seconds), ``dynamic``
step passes (5 Hz steps), ``kelm`` steps, ``dwf``/``rf`` frames (validation and test label rows). Each node the
runner computes from scratch adds its work and its train + inference seconds to ``<store>/throughput.json`` under
this machine (CPU architecture and count, GPU), kind and profile; an estimate is the work over that rate, "unknown"
before any such run. Estimates assume the profile and data of the runs measured scale linearly: they are a guide.
A ``faces: retinaface`` video node counts one crop per raw frame and lists the raw frames RetinaFace has still to
see (once per dataset, shared by every such node); the estimate leaves that detection out. An audio node also lists
the megabytes of its frozen-feature cache (the store's largest artifact on the real release, about 20 GB for VA
under ``paper``; shared by the nodes of one encoder, frozen blocks and task, so a node whose cache is filled writes
none of it).
"""

import contextlib
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_atomically
from harness.data.affwild2 import SPLITS, Dataset
from harness.steps import n_steps
from harness.store import Store
from harness.tasks import Task

THROUGHPUT_FILE = "throughput.json"
UNITS = {
    "video": "crop passes",
    "audio": "audio-second passes",
    "dynamic": "step passes",
    "kelm": "steps",
    "dwf": "frames",
    "rf": "frames",
}


@dataclass(frozen=True)
class NodeCost:
    """One planned node: name, task, kind, store key, whether stored, its work and the estimate (None: unknown)."""

    name: str
    task: Task
    kind: str
    key: str
    stored: bool
    work: dict[str, float]
    unit: str
    amount: float
    seconds: float | None


def machine() -> str:
    """This machine, as throughput is recorded under it: CPU architecture and count, and the GPU."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU, {gpu}"


def node_work(kind: str, settings, task: Task, dataset: Dataset) -> tuple[dict[str, float], float]:
    """The work of one node of ``kind``: its counts, and the amount in the kind's unit (see :data:`UNITS`)."""
    splits = {name: dataset.split(task, name) for name in SPLITS}
    if kind in ("dwf", "rf"):
        frames = sum(sum(t.n_rows for t in splits[name].tracks) for name in ("validation", "test"))
        return {"frames": frames}, frames
    if kind == "video":
        label = "crops"  # RetinaFace cuts one crop per raw frame of the track's video; the release, one per face
        if _on_retinaface(settings):
            from harness.faces.extract import raw_frames

            per_split = {name: sum(raw_frames(dataset, t) for t in split.names) for name, split in splits.items()}
        else:
            per_split = {name: sum(len(split.face_frames(t)) for t in split.names) for name, split in splits.items()}
    elif kind == "audio":
        label = "audio s"
        per_split = {
            name: sum(split.track(t).n_rows / split.fps(t) for t in split.names) for name, split in splits.items()
        }
    else:  # dynamic and kelm: steps of the 5 Hz grid
        label, rate = "steps", float(getattr(settings, "rate", 5.0))
        per_split = {
            name: sum(n_steps(split.track(t).n_rows, split.fps(t), rate) for t in split.names)
            for name, split in splits.items()
        }
    total = sum(per_split.values())
    if kind == "kelm":
        return {label: total}, total
    epochs = float(getattr(settings, "epochs", 1) or 1)
    work = {label: total, f"train {label}": per_split["train"], "epochs": epochs}
    if kind == "audio":
        from harness.models.audio import frozen_cache_bytes

        work["frozen-feature cache MB"] = frozen_cache_bytes(settings, total) / 1e6
    return work, per_split["train"] * epochs + total


def dry_run(
    system: str,
    tasks: Sequence[Task],
    dataset: Dataset,
    profile: str,
    store: Store,
    systems: Path | None = None,
) -> list[NodeCost]:
    """Every node ``system`` needs, in order, with what it would cost here; nothing is computed."""
    from harness.runner import plan_nodes

    rates = _read(store).get(machine(), {})
    out = []
    to_detect: int | None = None  # RetinaFace's frames left, shared by every faces: retinaface node: counted once
    for plan in plan_nodes(system, tasks, dataset, profile, systems):
        kind = plan.resolved.kind
        work, amount = node_work(kind, plan.resolved.settings, plan.task, dataset)
        stored = store.node(plan.key).is_complete()
        if not stored and _on_retinaface(plan.resolved.settings):
            from harness.faces.extract import frames_to_detect

            to_detect = frames_to_detect(dataset, store.root) if to_detect is None else to_detect
            work["RetinaFace frames"] = to_detect  # not in the estimate
        measured = rates.get(rate_key(kind, plan.resolved.profile))
        seconds = None
        if stored:
            seconds = 0.0
        elif measured and measured["amount"] > 0 and measured["seconds"] > 0:
            seconds = amount * measured["seconds"] / measured["amount"]
        out.append(NodeCost(plan.name, plan.task, kind, plan.key, stored, work, UNITS.get(kind, "?"), amount, seconds))
    return out


def _on_retinaface(settings) -> bool:
    return getattr(settings, "faces", "organizers") == "retinaface"


def rate_key(kind: str, profile: str) -> str:
    """Rates are kept per kind and profile: a paper-sized model is not a smoke one."""
    return f"{kind}/{profile}"


def record_throughput(store: Store, kind: str, profile: str, amount: float, seconds: float) -> None:
    """Add one computed node's work and seconds to this machine's rate for ``kind`` under ``profile`` (a write error
    is ignored)."""
    if amount <= 0 or seconds <= 0:
        return
    with store.lock(THROUGHPUT_FILE):  # runs finishing at once each add theirs
        recorded = _read(store)
        rates = recorded.setdefault(machine(), {})
        entry = rates.setdefault(rate_key(kind, profile), {"amount": 0.0, "seconds": 0.0, "runs": 0})
        entry.update(amount=entry["amount"] + amount, seconds=entry["seconds"] + seconds, runs=entry["runs"] + 1)
        entry["unit"] = UNITS.get(kind, "?")
        with contextlib.suppress(OSError):  # the run's results stand; only the estimate misses it
            write_atomically(store.root / THROUGHPUT_FILE, (json.dumps(recorded, indent=1) + "\n").encode())


def _read(store: Store) -> dict:
    try:
        recorded = json.loads((store.root / THROUGHPUT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def describe(cost: NodeCost) -> tuple[str, str]:
    """The work and the estimate as text for a table."""
    work = ", ".join(f"{value:,.0f} {name}" for name, value in cost.work.items())
    if cost.stored:
        return work, "in store"
    if cost.seconds is None:
        return work, "unknown"
    minutes = cost.seconds / 60
    return work, f"{cost.seconds:,.0f} s" if minutes < 2 else f"{minutes:,.1f} min"
