"""A trained system on a video that is not in the dataset: every node of its graph, a CSV (``abaw predict``).

The system's nodes are looked up in the store exactly as ``abaw run`` plans them (same dataset, profile and
settings, hence the same keys); every one of them must be complete. The video is then seen as a one-track release
(:class:`OneVideo`: its test split holds the video, one row per decoded frame) and each node of the graph, inputs
first, loads its stored model and predicts that track through its kind's own ``predict``, the code path of
``abaw run``: static video → embeddings → dynamic windows or functionals → KELM; the voice decoded from the same file
→ the audio kind; the inputs' predictions → fusion with the stored weights. So a video of the dataset, predicted
from the crops the runner used (``--crops``), gives what the runner wrote for it.

Faces: RetinaFace finds the person's face in every frame (the previous face reused where none is found) and the crops
are cut as each static video input's training crops were (``faces: retinaface``: the harness's crop settings;
``organizers``: 112 px with the release's margin), or ``crops`` gives a folder already cut (``00001.jpg``, …, the
organizers' layout). Frames without a face are filled from their neighbours; a video where no face is ever found
gets each input's no-face fallback (its train prior), and a video without sound the audio input's prior; notes say so.
Per-track caches of the new video (frozen audio features, voice activity) live in a scratch folder, never in the
dataset's store; models a kind keeps among the caches (the fine-tuned smoke encoder) are read from the store.
"""

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from harness.data.affwild2 import SPLITS, Split, Track
from harness.data.media import list_face_frames, probe_video
from harness.errors import DataError, HarnessError, SpecError, StoreError
from harness.faces.detector import FaceError
from harness.faces.extract import FaceSettings, extract_video, make_detector
from harness.tasks import TASKS, Task, get_task

ORGANIZER_CROPS = FaceSettings(size=112, margin=1.25)  # the release's crop size; the synthetic crops' margin
CROPPING_KINDS = ("video",)  # kinds that read face crops themselves
ON_ONE_INPUT = ("dynamic", "kelm")  # kinds that place one static video input's embeddings on its crops' frames


def csv_header(tasks: list[Task]) -> str:
    """``time`` and the CSV columns of each task, in registry order (``time,valence,arousal,expression`` for VA and
    EXPR; AU adds ``AU1,...,AU26``)."""
    return ",".join(["time", *(column for task in _ordered(tasks) for column in get_task(task).csv_columns)])


@dataclass
class Prediction:
    """Frame-level predictions of one video: times (s), per task served its stored outputs ``(n, width)`` (VA values,
    EXPR or AU probabilities), the frames with a face crop, and notes."""

    video: Path
    fps: float
    times: np.ndarray
    outputs: dict[Task, np.ndarray]
    faces: int
    notes: list[str] = field(default_factory=list)

    def decided(self, task: Task) -> np.ndarray:
        """The hard predictions of ``task`` per frame (VA values, EXPR classes, AU 0/1 at 0.5)."""
        return get_task(task).decide(self.outputs[task])

    def write_csv(self, path: Path) -> Path:
        """:func:`csv_header`, then per frame its time and each task's values (VA to 4 decimals, the expression's
        class name, each AU 0/1)."""
        from harness.atomic import write_atomically

        tasks = _ordered(list(self.outputs))
        columns = [[f"{time:.3f}" for time in self.times]]
        columns += [get_task(task).csv_fields(self.outputs[task]) for task in tasks]
        lines = [csv_header(tasks), *(",".join(fields) for fields in zip(*columns, strict=True))]
        write_atomically(Path(path), ("\n".join(lines) + "\n").encode())
        return Path(path)


def _ordered(tasks: list[Task]) -> list[Task]:
    return [task for task in TASKS if task in tasks]


class OneVideo:
    """A release of one video, as the kinds see a dataset: its test split holds the video's track (``n_rows``
    frames, its crops folder if any, no labels); train and validation are empty."""

    def __init__(self, root: Path, track: str, n_rows: int, video: Path, crops: Path | None) -> None:
        self.root = Path(root)
        self.track = Track(track, n_rows, None, None, crops, Path(video))
        self._splits: dict[tuple[Task, str], Split] = {}

    def split(self, task: Task, split: str) -> Split:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
        if (task, split) not in self._splits:
            self._splits[task, split] = Split(task, split, (self.track,) if split == "test" else ())
        return self._splits[task, split]


@dataclass
class _Predicted:
    """An input node's outputs on the one video (the kinds' view of an input, as ``StoreInput`` in the runner)."""

    name: str
    honest: bool
    outputs: Mapping[str, np.ndarray]

    def read(self, output: str, split: str, track: str) -> np.ndarray:
        if output not in self.outputs:
            raise StoreError(f"input {self.name!r} has no {output!r} output")
        return self.outputs[output]


class _ScratchCache:
    """A shared cache for the one video: per-track arrays in a scratch node (a new video must never land in the
    dataset's caches, where a track of the same name would take them); saved models read from the store's node."""

    def __init__(self, scratch, stored) -> None:
        self.scratch, self.stored = scratch, stored

    def missing_tracks(self, group: str, tracks: list[str]) -> list[str]:
        return self.scratch.missing_tracks(group, tracks)

    def write_track(self, group: str, track: str, array: np.ndarray, dtype=None) -> None:
        self.scratch.write_track(group, track, array, dtype)

    def read_track(self, group: str, track: str, mmap: bool = True) -> np.ndarray:
        return self.scratch.read_track(group, track, mmap)

    def has(self, name: str) -> bool:
        return self.stored.has(name) or self.scratch.has(name)

    def load_state(self, name: str):
        return (self.stored if self.stored.has(name) else self.scratch).load_state(name)

    def save_state(self, name: str, state) -> None:
        self.scratch.save_state(name, state)


def system_plans(
    system: str, dataset, profile: str | None, store, systems: Path | None = None, tasks: list[Task] | None = None
) -> list:
    """Every node plan ``system`` needs for ``tasks`` (default: all) of those it serves, inputs first, each complete
    in the store."""
    from harness.runner import default_profile, plan_nodes

    profile = profile or default_profile(dataset)
    plans = plan_nodes(system, tasks or list(TASKS), dataset, profile, systems)
    target = plans[-1].resolved.spec.name
    own = [plan for plan in plans if plan.resolved.spec.name == target]
    if len({plan.name for plan in own}) > 1:
        names = ", ".join(sorted({plan.name for plan in own}))
        raise SpecError(f"{system!r} is a sweep of {len({p.name for p in own})} systems ({names}); predict with one")
    for plan in plans:
        if not store.node(plan.key).is_complete():
            trained = "" if plan.resolved.spec.name == target else f" (an input of {system!r})"
            raise SpecError(
                f"{plan.name} ({plan.task}){trained} is not trained on {dataset.root} with profile {profile!r} (store "
                f"node {plan.key} missing or incomplete); run `abaw run {system} --task {plan.task}` first"
            )
    return plans


def predict_video(
    system: str,
    video: Path,
    dataset,
    profile: str | None = None,
    store=None,
    weights: Path | None = None,
    side: str | None = None,
    systems: Path | None = None,
    detect_size: int = 640,
    crops: Path | None = None,
    tasks: list[Task] | None = None,
) -> Prediction:
    """Run ``system`` (trained on ``dataset``) on every frame of ``video`` for ``tasks`` (default: every task it
    serves); ``crops``: the video's face crops, already cut (else RetinaFace cuts them)."""
    from harness.store import Store, default_store_root

    video = Path(video)
    if not video.is_file():
        raise FaceError(f"{video}: no such video file")
    if crops is not None and not Path(crops).is_dir():
        raise FaceError(f"{crops}: no such folder of face crops (expected 00001.jpg, 00002.jpg, … of the video)")
    store = store or Store(default_store_root())
    plans = system_plans(system, dataset, profile, store, systems, tasks)
    try:
        info = probe_video(video)
    except HarnessError as error:
        raise FaceError(str(error)) from None
    track = f"video_{side}" if side else "video"
    with tempfile.TemporaryDirectory(prefix="abaw-predict-") as scratch:
        faces = _Faces(Path(scratch), track, video, weights, detect_size, Path(crops) if crops else None)
        crops_of = _crops_of(plans, faces)  # cut before anything runs: the decoded frames give the rows
        world = _World(Path(scratch), track, faces.n_rows(info.n_frames), video, crops_of)
        outputs, notes = _run_graph(plans, world, store)
    own = [plan for plan in plans if plan.resolved.spec.name == plans[-1].resolved.spec.name]
    n_rows = world.n_rows
    return Prediction(
        video=video,
        fps=float(info.fps),
        times=np.arange(n_rows) / float(info.fps),
        outputs={plan.task: outputs[plan.key]["pred"] for plan in own},
        faces=faces.most,
        notes=[*faces.notes, *(note.replace(repr(track), repr(video.name)) for note in notes)],
    )


class _Faces:
    """The video's face crops per crop setting (RetinaFace, run once per setting), or the folder given."""

    def __init__(self, scratch: Path, track: str, video: Path, weights, detect_size: int, given: Path | None) -> None:
        self.scratch, self.track, self.video, self.weights = scratch, track, video, weights
        self.detect_size, self.given = detect_size, given
        self.folders: dict[FaceSettings, Path] = {}
        self.decoded: int | None = None  # frames decoded by the face pass (a container's stated count may be off)
        self.most = len(list_face_frames(given)) if given is not None else 0
        self.notes: list[str] = []

    def folder(self, settings) -> Path:
        """The crops folder for a static video input's settings."""
        if self.given is not None:
            return self.given
        base = FaceSettings() if getattr(settings, "faces", "organizers") == "retinaface" else ORGANIZER_CROPS
        wanted = replace(base, detect_size=self.detect_size)
        if wanted not in self.folders:
            folder = self.scratch / f"crops-{len(self.folders)}" / self.track
            detector, _ = make_detector(wanted, self.weights)
            (result,) = extract_video(detector, self.video, {self.track: folder}, wanted)
            self.folders[wanted], self.decoded = folder, result.frames
            self.most = max(self.most, result.detected)
            if note := result.note():
                self.notes.append(note.replace(self.track, self.video.name, 1))
        return self.folders[wanted]

    def n_rows(self, stated: int) -> int:
        """One row per frame: those decoded when faces were cut here, else the container's count."""
        return self.decoded if self.decoded is not None else stated


def _crops_of(plans: list, faces: _Faces) -> dict[str, Path | None]:
    """Per plan key, the crops folder its kind reads: a static video node its own, a node over one static video
    input (dynamic, kelm) that input's, other kinds none."""
    crops: dict[str, Path | None] = {}
    for plan in plans:
        if plan.resolved.kind in CROPPING_KINDS:
            crops[plan.key] = faces.folder(plan.resolved.settings)
        elif plan.resolved.kind in ON_ONE_INPUT and len(plan.inputs) == 1:
            crops[plan.key] = crops[plan.inputs[0].key]
        else:
            crops[plan.key] = None
    return crops


@dataclass
class _World:
    """The one video as each node sees it: its rows, and per plan key the crops folder of a :class:`OneVideo`."""

    scratch: Path
    track: str
    n_rows: int
    video: Path
    crops_of: dict[str, Path | None]

    def release(self, key: str) -> OneVideo:
        return OneVideo(self.scratch, self.track, self.n_rows, self.video, self.crops_of[key])

    def caches(self, store, fingerprint: str):
        """The cache opener of a node: the scratch node of the one video beside the store's node."""
        from harness.runner import cache_opener
        from harness.store import Store

        scratch, stored = cache_opener(Store(self.scratch / "store"), "predict"), cache_opener(store, fingerprint)
        return lambda name, material: _ScratchCache(scratch(name, material), stored(name, material))


def _run_graph(plans: list, world: _World, store) -> tuple[dict[str, dict], list[str]]:
    """Each plan's outputs on the one video (by store key), inputs first (through the kinds' ``predict``, each
    track checked as the runner checks it), and the kinds' notes."""
    from harness.models.checks import check_track
    from harness.models.context import HONEST, Context, split_outputs
    from harness.models.registry import build_kind, get_kind
    from harness.runner import MODEL_FILE

    outputs: dict[str, dict] = {}
    notes: list[str] = []
    for plan in plans:
        if plan.key in outputs:
            continue
        settings = plan.resolved.settings
        if plan.resolved.kind in CROPPING_KINDS:  # the crops of this video are cut already, by the setting's rules
            settings = settings.model_copy(update={"faces": "organizers"})
        inputs = {}
        for source in plan.inputs:
            honest = HONEST in split_outputs(get_kind(source.resolved.kind), "validation")
            inputs[source.name] = _Predicted(source.name, honest, outputs[source.key])
        context = Context(world.release(plan.key), plan.task, inputs, world.caches(store, plan.material["dataset"]))
        model = build_kind(plan.resolved.kind, settings, plan.task, plan.resolved.spec.seed)
        model.load_state(store.node(plan.key).load_state(MODEL_FILE))
        asked = {world.track: world.n_rows}
        where = f"system {plan.name!r} ({plan.task}), node {plan.key}"
        for name, result in model.predict(context, "test", [world.track]):
            check_track(where, plan.task, settings, "test", name, asked, result, split_outputs(model, "test"))
            outputs[plan.key] = dict(result)
        notes += [note for note in model.notes_ if note not in notes]
    return outputs, notes
