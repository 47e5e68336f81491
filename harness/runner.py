"""Run a system: resolve its specs into a DAG of nodes, compute what the store lacks, score, record.

A node is one (spec, task). Its key hashes the kind, its code version, the resolved settings, the seed, the keys
of its inputs, the dataset fingerprint and the profile, so a change to any of them computes anew and an unchanged
re-run is all store hits. Inside a node the work is resumable: the fitted model is saved before prediction
starts, and predictions/embeddings are written track by track, so a killed run picks up where it stopped.
Before any work the run checks what it will need (:mod:`harness.preflight`: the data's tasks, a writable store with
room, a writable leaderboard). A node is computed only after every byte of its inputs is verified against its
checksum; an input found corrupt (even one that looked complete) is computed again in the same run, and so is a node
whose stored predictions turn out corrupt when they are scored or packaged.
Validation predictions are then scored (pooled, with the video-block interval) and recorded on the leaderboard;
a kind fitted on validation also yields cross-fitted ``honest`` predictions, scored beside them (see
:mod:`harness.models.context`). :func:`submit_system` turns a system's test predictions into packaged ABAW files.
"""

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import distributed, memory
from harness.cost import node_work, record_throughput
from harness.cpu import budget_note, cpu_budget, limit_torch_threads
from harness.data.affwild2 import SPLITS, Dataset
from harness.errors import HarnessError, SpecError, StoreError, SubmissionError
from harness.leaderboard import Leaderboard
from harness.models.checks import check_track, check_tracks_done
from harness.models.context import HONEST, Context, split_outputs
from harness.models.registry import build_kind, get_kind
from harness.preflight import NodeWrites, check_before_work, check_data, check_writable_folder
from harness.progress import bar, notice
from harness.run_record import RunRecord, git_commit
from harness.scoring import file_by_track, node_predictions, score_node_predictions, score_split
from harness.spec import ResolvedSpec, load_graph
from harness.store import Node, Store, key_material, node_key
from harness.submission import (
    Package,
    file_stem,
    package_submission,
    read_predictions,
    staged_folder,
    write_predictions,
)
from harness.tasks import Task, get_task
from harness.validation import validate_predictions

MODEL_FILE = "model.safetensors"
TIMES_FILE = "run.json"  # train and inference seconds, and notes (e.g. tracks that fell back to a prior)


@dataclass
class NodePlan:
    """One (spec, task) to compute, with its key and the plans of its inputs."""

    resolved: ResolvedSpec
    task: Task
    key: str
    material: dict
    inputs: list["NodePlan"] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.resolved.name

    @property
    def node_id(self) -> tuple[str, str]:
        """(name, task): unique in a run, where two specs with the same settings share a store key."""
        return self.resolved.name, self.task


@dataclass
class NodeResult:
    """What running one node did and, for the requested system, how it scored."""

    plan: NodePlan
    hit: bool
    train_seconds: float | None
    infer_seconds: float | None
    notes: list[str] = field(default_factory=list)
    score: dict | None = None
    honest: dict | None = None  # the cross-fitted score of a kind fitted on validation (see models.context)
    leaderboard_id: int | None = None
    peak_memory_mb: dict | None = None  # resident (and GPU) peak while the node was computed (harness.memory)


Done = dict[tuple[str, str], NodeResult]  # the results of a run so far, by NodePlan.node_id


class StoreInput:
    """An input node's outputs, read from the store (the kinds' view of their inputs)."""

    def __init__(self, name: str, node: Node, honest: bool) -> None:
        self.name = name
        self.node = node
        self.honest = honest

    def read(self, output: str, split: str, track: str) -> np.ndarray:
        """One track of an output, verified against its checksum (hashed once per process; the runner has hashed
        the whole node before the kind runs, so this costs a stat)."""
        return self.node.read_track(f"{output}-{split}", track)


def store_input(store: Store, plan: NodePlan) -> StoreInput:
    """The input node of ``plan`` as its consumers read it."""
    honest = HONEST in split_outputs(get_kind(plan.resolved.kind), "validation")
    return StoreInput(plan.name, store.node(plan.key), honest)


def plan_nodes(system: str, tasks: Sequence[Task], dataset: Dataset, profile: str, systems: Path | None = None):
    """Plans of every node the system needs for ``tasks``, inputs first; the last ones are the system's own (one
    per variant and task). Of ``tasks``, those the system serves are planned (an error when it serves none); for each
    task a node takes those of its inputs that serve that task."""
    graph = load_graph(system, profile, systems)
    fingerprint = dataset.fingerprint()
    plans: dict[tuple[str, Task], NodePlan] = {}
    order: list[NodePlan] = []
    target = graph[-1]
    tasks = [task for task in tasks if task in target.spec.tasks]  # "both" means every task the system serves
    if not tasks:
        raise SpecError(f"{target.spec.path}: key 'tasks': {system!r} serves only {', '.join(target.spec.tasks)}")
    served = {resolved.name: resolved.spec.tasks for resolved in graph}
    for resolved in graph:
        for name in resolved.inputs:
            if not set(served[name]) & set(resolved.spec.tasks):
                raise SpecError(
                    f"{resolved.spec.path}: key 'inputs': {name!r} serves {', '.join(served[name])}, none of the "
                    f"tasks of {resolved.name!r} ({', '.join(resolved.spec.tasks)})"
                )
        for task in tasks:
            if task not in resolved.spec.tasks:
                continue
            inputs = [plans[(name, task)] for name in resolved.inputs if (name, task) in plans]
            if resolved.inputs and not inputs:
                raise SpecError(f"{resolved.spec.path}: key 'inputs': none of them serves task {task!r}")
            kind = get_kind(resolved.kind)
            arguments = {
                "kind": resolved.kind,
                "version": kind.version,
                "settings": {**resolved.settings.model_dump(mode="json"), "seed": resolved.spec.seed},
                "input_keys": [plan.key for plan in inputs],
                "dataset_fingerprint": fingerprint,
                "profile": profile,
                "tasks": [task],
                "extra": kind.key_extra(resolved.settings),
            }
            plan = NodePlan(resolved, task, node_key(**arguments), key_material(**arguments), inputs)
            plans[(resolved.name, task)] = plan
            order.append(plan)
    return _needed(order, target.spec.name)


def _needed(order: list[NodePlan], target: str) -> list[NodePlan]:
    """The plans the target's own nodes depend on, in order: an input serving a task that no node using it needs
    (``video_vit``'s VA node under an EXPR-only ``dynamic_vit``) is not computed."""
    needed: set[int] = set()
    stack = [plan for plan in order if plan.resolved.spec.name == target]
    while stack:
        plan = stack.pop()
        if id(plan) not in needed:
            needed.add(id(plan))
            stack.extend(plan.inputs)
    return [plan for plan in order if id(plan) in needed]


def run_node(plan: NodePlan, dataset: Dataset, store: Store) -> NodeResult:
    """Compute a node unless the store holds it complete; resume from its saved model and finished tracks.

    Under ``torchrun`` (:mod:`harness.distributed`) every rank runs this together: rank 0 decides what to reuse,
    fits (with every rank when the kind has ``distributed_fit``: DistributedDataParallel), saves the model and,
    once every rank has written its share of the tracks, completes the node; the others load the saved model."""
    node = store.node(plan.key)
    stored = _stored_times(node)
    if distributed.broadcast(stored is not None):
        times = stored if stored is not None else node.read_json(TIMES_FILE)
        return NodeResult(
            plan,
            True,
            times.get("train_seconds"),
            times.get("infer_seconds"),
            times.get("notes", []),
            peak_memory_mb=times.get("peak_memory_mb"),
        )
    memory.reset_peak()
    kind = get_kind(plan.resolved.kind)
    budget = cpu_budget()
    cpu_note = budget_note(budget, limit_torch_threads(budget))  # the kind's module has imported torch if it uses it
    system = build_kind(plan.resolved.kind, plan.resolved.settings, plan.task, plan.resolved.spec.seed)
    inputs = {p.name: store_input(store, p) for p in plan.inputs}
    context = Context(dataset, plan.task, inputs, cache=cache_opener(store, plan.material["dataset"]))
    times = _read_times(node)
    main = distributed.is_main()
    fitted_here = False  # a node fitted and predicted in this call measures this machine's throughput
    state = _saved_model(node) if main else None
    if not distributed.broadcast(state is None):
        system.load_state(state if main else node.load_state(MODEL_FILE))
    else:
        if main:
            store.remove(plan.key)  # outputs of another fit must not mix with this one's
        distributed.barrier()
        node, times = store.node(plan.key), {}
        fitted_here = True
        started = time.perf_counter()
        if main or kind.distributed_fit:
            system.fit(context)
        times["train_seconds"] = round(time.perf_counter() - started, 2)
        times["notes"] = list(system.notes_)
        if main:  # the times first: a model saved without them would resume with the training's seconds lost
            node.write_json(TIMES_FILE, times)
            node.save_state(MODEL_FILE, system.state())
        distributed.barrier()
        if not main:  # every rank predicts with the very model rank 0 saved
            system.load_state(node.load_state(MODEL_FILE))
    started = time.perf_counter()
    _predict_missing(plan, system, context, node)
    notes = set().union(*distributed.all_gather(sorted(system.notes_)))  # waits for every rank
    times["infer_seconds"] = round(times.get("infer_seconds", 0.0) + time.perf_counter() - started, 2)
    times["notes"] = sorted(set(times.get("notes", [])) | notes | {cpu_note})
    times["peak_memory_mb"] = memory.peak_mb()
    if main:
        _check_complete(plan, context, node)
        node.write_json(TIMES_FILE, times)
        node.complete({**plan.material, "system": plan.name, "git_commit": git_commit()})
        if fitted_here:
            _record_throughput(plan, dataset, store, times["train_seconds"] + times["infer_seconds"])
    distributed.barrier()
    return NodeResult(
        plan,
        False,
        times.get("train_seconds"),
        times["infer_seconds"],
        times["notes"],
        peak_memory_mb=times["peak_memory_mb"],
    )


def _record_throughput(plan: NodePlan, dataset: Dataset, store: Store, seconds: float) -> None:
    """Add this node's work and seconds to the store's throughput of its kind on this machine (for --dry-run)."""
    with contextlib.suppress(HarnessError):  # a node whose work cannot be counted leaves no estimate, nothing else
        _, amount = node_work(plan.resolved.kind, plan.resolved.settings, plan.task, dataset)
        record_throughput(store, plan.resolved.kind, plan.resolved.profile, amount, seconds)


def compute(plan: NodePlan, dataset: Dataset, store: Store, done: Done) -> NodeResult:
    """:func:`run_node`, with its inputs verified first; every node run lands in ``done``.

    A node that is not a store hit reads its inputs: before it runs, every artifact of each input is hashed against
    its checksum (once per process; the kind's reads then cost a stat), and an input found corrupt, though it counted
    as complete by its sizes, is computed again here (its result in ``done`` replaces the hit). An input that turns
    bad while the node runs (replaced meanwhile) makes the node fail; in one process it is then recomputed and the
    node run once more."""
    retried = False
    while True:
        if not distributed.broadcast(store.node(plan.key).is_complete()):
            for source in plan.inputs:
                if not distributed.broadcast(store.node(source.key).is_complete(verify=True)):
                    compute(source, dataset, store, done)
        try:
            with _one_writer(plan, store):
                done[plan.node_id] = run_node(plan, dataset, store)
            return done[plan.node_id]
        except HarnessError:
            alone = distributed.env_world_size() == 1
            if retried or not alone or all(store.node(s.key).is_complete(verify=True) for s in plan.inputs):
                raise
            retried = True


def _one_writer(plan: NodePlan, store: Store) -> contextlib.AbstractContextManager:
    """The node's store lock (rank 0 takes it for every rank under torchrun): a second run needing the node while
    one computes it waits and then finds it complete, instead of removing the node in progress."""
    if not distributed.is_main():
        return contextlib.nullcontext()

    def waiting(holder: str) -> None:
        notice(f"{plan.name} ({plan.task}): another run ({holder}) is computing this node; waiting for it")

    return store.lock(plan.key, waiting)


def _stored_times(node: Node) -> dict | None:
    """The ``run.json`` of a complete node, or None: not complete, or its ``run.json`` is bad (the read withdrew the
    node's ``node.json``, and the node is computed again)."""
    if not node.is_complete():
        return None
    try:
        return node.read_json(TIMES_FILE)
    except StoreError:
        return None


def cache_opener(store: Store, fingerprint: str):
    """Shared caches live in store nodes keyed by their name, material and the dataset fingerprint."""

    def open_cache(name: str, material: dict) -> Node:
        version = str(material.get("version", "1"))
        return store.node(node_key(f"cache-{name}", version, material, [], fingerprint, "any", []))

    return open_cache


def _saved_model(node: Node) -> dict | None:
    """The model a killed run saved before predicting, or None (absent, torn or foreign: it is fitted anew)."""
    if not node.has(MODEL_FILE, verify=False):
        return None
    try:
        return node.load_state(MODEL_FILE)
    except StoreError:
        node.discard(MODEL_FILE)
        return None


def _read_times(node: Node) -> dict:
    try:
        return node.read_json(TIMES_FILE) if node.has(TIMES_FILE) else {}
    except StoreError:
        return {}


def _predict_missing(plan: NodePlan, system, context: Context, node: Node) -> None:
    """Write each output of every track of every split that the node does not hold yet, track by track.

    With several ranks each one takes its share of every split's tracks (:func:`harness.distributed.shard`, balanced
    by label rows and fixed by the track list alone), so every track is written once and a restarted rank redoes only
    its own unfinished tracks."""
    for split_name in SPLITS:
        split = context.split(split_name)
        mine = distributed.shard(split.names, [track.n_rows for track in split.tracks])  # all of them in 1 process
        missing: list[str] = []
        for output in split_outputs(system, split_name):
            missing += node.missing_tracks(f"{output}-{split_name}", mine)
        todo = [name for name in mine if name in set(missing)]
        if not todo:
            continue
        asked = {name: split.track(name).n_rows for name in todo}
        expected = split_outputs(system, split_name)
        where = _where(plan)
        with bar() as progress:
            job = progress.add_task(f"{plan.name} {plan.task}: predicting {split_name}", total=len(todo))
            for track, outputs in system.predict(context, split_name, todo):
                check_track(where, plan.task, plan.resolved.settings, split_name, track, asked, outputs, expected)
                for output, array in outputs.items():
                    node.write_track(f"{output}-{split_name}", track, array)
                progress.update(job, advance=1)


def _where(plan: NodePlan) -> str:
    """How an output check names a node: its system, task and store key."""
    return f"system {plan.name!r} ({plan.task}), node {plan.key}"


def _check_complete(plan: NodePlan, context: Context, node: Node) -> None:
    """Before a node is completed: it holds every output of every track of every split (each checked when written,
    by :func:`harness.models.checks.check_track`)."""
    for split_name in SPLITS:
        names = context.split(split_name).names
        for output in split_outputs(get_kind(plan.resolved.kind), split_name):
            missing = node.missing_tracks(f"{output}-{split_name}", names, verify=False)
            check_tracks_done(_where(plan), split_name, output, missing)


def score_node(result: NodeResult, dataset: Dataset, store: Store, leaderboard: Leaderboard) -> NodeResult:
    """Score a node's validation predictions and record a leaderboard row.

    A kind fitted on validation (``honest`` among its validation outputs) gets both scores on one row: ``score`` is
    the in-sample one (``extra["fitted_on_validation"]``), ``extra["honest_score"]`` the cross-fitted one, and the
    row's statistics and per-track scores are those of the cross-fitted predictions, which rankings compare. The
    scoring is :func:`harness.scoring.score_node_predictions`, which the drift guard repeats.
    """
    plan = result.plan
    honest = HONEST in split_outputs(get_kind(plan.resolved.kind), "validation")
    scored = score_node_predictions(store.node(plan.key), dataset, plan.task, "validation", honest)
    extra: dict = {"notes": result.notes} if result.notes else {}
    if result.peak_memory_mb:
        extra["peak_memory_mb"] = result.peak_memory_mb
    extra |= scored.honest_extra()
    record = RunRecord.from_scores(
        system=plan.name,
        profile=plan.resolved.profile,
        spec_hash=plan.resolved.spec_hash,
        store_key=plan.key,
        dataset_fingerprint=plan.material["dataset"],
        result=scored.record_result(),
        stats=scored.stats,
        track_names=scored.track_names,
        train_seconds=result.train_seconds,
        infer_seconds=result.infer_seconds,
        git_commit=git_commit(),
        extra=extra or None,
    )
    result.score, result.honest = scored.scores, scored.honest
    result.leaderboard_id = leaderboard.record(record)
    return result


def default_profile(dataset: Dataset) -> str:
    """``smoke`` on a synthetic dataset, ``paper`` on real data."""
    return "smoke" if (dataset.root / "synthetic_metadata.json").is_file() else "paper"


def leaderboard_path() -> Path | None:
    """``$ABAW_LEADERBOARD`` when set (else the leaderboard's default file)."""
    value = os.environ.get("ABAW_LEADERBOARD")
    return Path(value) if value else None


def run_system(
    system: str,
    tasks: Sequence[Task],
    dataset: Dataset,
    profile: str | None = None,
    store: Store | None = None,
    leaderboard: Leaderboard | None = None,
    systems: Path | None = None,
) -> list[NodeResult]:
    """Compute every node ``system`` needs for ``tasks`` (all returned); score and record the system's own nodes.

    Under ``torchrun`` every rank calls this (:mod:`harness.distributed`); rank 0 alone scores and records, the
    other ranks return their results unscored."""
    from harness.store import default_store_root

    distributed.init()
    profile = profile or default_profile(dataset)
    store = store or Store(default_store_root())
    if distributed.is_main():
        store.sweep()  # temporary files of killed runs (a live writer's are kept)
    leaderboard = leaderboard or Leaderboard(leaderboard_path())
    plans = plan_nodes(system, tasks, dataset, profile, systems)
    target = plans[-1].resolved.spec.name  # every variant of the requested spec is scored and recorded
    _check_before_work(system, plans, target, dataset, store, leaderboard)
    done: Done = {}
    for plan in plans:
        compute(plan, dataset, store, done)
    if distributed.is_main():
        for plan in plans:
            if plan.resolved.spec.name == target:
                done[plan.node_id] = _scored(done[plan.node_id], dataset, store, leaderboard, done)
    return [done[plan.node_id] for plan in plans]


def _check_before_work(
    system: str, plans: list[NodePlan], target: str, dataset: Dataset, store: Store, leaderboard: Leaderboard
) -> None:
    """:func:`harness.preflight.check_before_work` for the nodes the store lacks and the tasks scored."""
    missing = [plan for plan in plans if not store.node(plan.key).is_complete()]
    writes = [NodeWrites(p.name, get_kind(p.resolved.kind), p.task, p.resolved.settings) for p in missing]
    scored = sorted({plan.task for plan in plans if plan.resolved.spec.name == target})
    check_before_work(system, dataset, scored, writes, store.root, leaderboard.path)


def _scored(result: NodeResult, dataset: Dataset, store: Store, leaderboard: Leaderboard, done: Done) -> NodeResult:
    """:func:`score_node`; a stored prediction found corrupt there (the read withdrew the node's ``node.json``) has
    its node computed again from what it still trusts (its model, its other tracks), then scored."""
    try:
        return score_node(result, dataset, store, leaderboard)
    except StoreError:
        if distributed.env_world_size() > 1:  # the other ranks have left: no node can be computed together now
            raise
        return score_node(compute(result.plan, dataset, store, done), dataset, store, leaderboard)


def _stored_predictions(
    result: NodeResult, dataset: Dataset, store: Store, split: str, done: Done
) -> dict[str, np.ndarray]:
    """:func:`node_predictions` of a computed node; corrupt ones are computed again first (as in :func:`_scored`)."""
    plan = result.plan
    try:
        return node_predictions(store.node(plan.key), dataset, plan.task, split)
    except StoreError:
        result.hit = compute(plan, dataset, store, done).hit
        return node_predictions(store.node(plan.key), dataset, plan.task, split)


@dataclass
class Submission:
    """What :func:`submit_system` wrote: the validated test files, the package, and the scores behind them.

    ``validation`` and ``honest`` hold, per task, the in-sample and (for a system fitted on validation) the
    cross-fitted validation scores; ``test`` the test scores where the dataset has test labels (the synthetic one).
    """

    system: str
    folder: Path
    files: dict[str, Path]
    package: Package
    validation: dict[str, dict]
    honest: dict[str, dict | None]
    test: dict[str, dict]
    results: list[NodeResult]


def submit_system(
    system: str,
    tasks: Sequence[Task],
    dataset: Dataset,
    out_dir: Path = Path("submissions"),
    profile: str | None = None,
    store: Store | None = None,
    leaderboard: Leaderboard | None = None,
    systems: Path | None = None,
) -> Submission | None:
    """Run what ``system`` lacks, write its test-set files from the templates, validate and package them.

    Files go to ``out_dir/<system>/``, named after the data's release (:meth:`~harness.tasks.TaskDef.submission_name`:
    ``CVPR_6th_ABAW_VA_test_set.txt``), with ``manifest.json`` and
    ``<system>.zip`` (a sweep's variant is named by :func:`harness.submission.file_stem`; a whole sweep is refused),
    written in a staging folder that then replaces the old one as a unit (:func:`harness.submission.staged_folder`).
    A file the validator rejects or warns about is an error, never packaged. Where the test split has labels, each
    written file is also scored the way ``abaw score --split test`` scores it. Under ``torchrun`` only rank 0 writes
    and packages; the other ranks help compute the nodes and get None.
    """
    from harness.store import default_store_root

    graph = load_graph(system, profile or default_profile(dataset), systems)
    variants = [r.name for r in graph if r.spec.name == graph[-1].spec.name]
    if len(variants) > 1:
        raise SubmissionError(f"{system!r} sweeps {len(variants)} variants; submit one of them: {', '.join(variants)}")
    check_data(dataset, {task: ["test"] for task in tasks if task in graph[-1].spec.tasks}, system)  # templates
    check_writable_folder(Path(out_dir), "submission folder", SubmissionError)  # both before any training
    store = store or Store(default_store_root())
    results = run_system(system, tasks, dataset, profile, store, leaderboard, systems)
    if not distributed.is_main():
        return None  # under torchrun rank 0 alone writes and packages the files
    own = [r for r in results if r.score is not None]
    folder = Path(out_dir) / file_stem(system)
    files, validation, honest, test = {}, {}, {}, {}
    served = [task for task in tasks if any(r.plan.task == task for r in own)]  # run_system planned only these
    done = {r.plan.node_id: r for r in results}
    with staged_folder(folder) as staging:  # replaces the folder as a unit, only once all of it is written
        for task in served:
            scored = [r for r in own if r.plan.task == task]
            if len(scored) != 1:
                names = ", ".join(r.plan.name for r in scored)
                raise SubmissionError(
                    f"{system!r} ({task}): one system per submission file, found {len(scored)}: {names}"
                )
            (result,) = scored
            template = dataset.template(task)
            predictions = _stored_predictions(result, dataset, store, "test", done)
            name = get_task(task).submission_name(dataset.layout.release.round)
            path = write_predictions(staging / name, task, template, predictions)
            report = validate_predictions(path, task, template)
            if not report.ok or report.warnings:  # our own writer writes the exact header: a warning is a bug
                raise SubmissionError(
                    f"{folder / path.name}: the written file fails validation ({template.path}):\n{report.render()}"
                )
            files[task], validation[task], honest[task] = path, result.score, result.honest
            split = dataset.split(task, "test")
            if split.tracks and split.has_labels:
                test[task] = score_split(split, file_by_track(read_predictions(path, task), split))
        spec_hash = own[-1].plan.resolved.spec_hash
        summary = {task: _submission_scores(validation[task], honest[task]) for task in files}
        extra = {
            "profile": own[-1].plan.resolved.profile,
            "dataset_fingerprint": own[-1].plan.material["dataset"],
            "store_keys": {r.plan.task: r.plan.key for r in own},
            "git_commit": git_commit(),
        }
        if test:
            extra["test_scores"] = {task: test[task]["score"] for task in test}
        staged = package_submission(staging, system, files, spec_hash, summary, extra)
    files = {task: folder / path.name for task, path in files.items()}
    package = Package(folder / staged.manifest_path.name, folder / staged.zip_path.name, staged.manifest)
    return Submission(system, folder, files, package, validation, honest, test, results)


def _submission_scores(validation: dict, honest: dict | None) -> dict:
    """The manifest's validation entry of one task: the score, its interval and, when fitted on validation, the
    honest score beside it."""
    entry = {"score": validation["score"], "ci95": validation["ci95"]}
    if honest is not None:
        entry |= {"fitted_on_validation": True, "honest_score": honest["score"], "honest_ci95": honest["ci95"]}
    return entry
