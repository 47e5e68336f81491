"""A trained system on a video that is not in the dataset: faces, frame-level predictions, a CSV (``abaw predict``).

The system's nodes are looked up in the store exactly as ``abaw run`` plans them (same dataset, profile and
settings, hence the same keys); they must be complete. The video is decoded with PyAV, RetinaFace finds the
person's face in every frame (the previous face reused where none is found), the crops are cut as the system's
training crops were (``faces: retinaface``: the harness's crop settings; ``organizers``: 112 px with the release's
margin), and the model of each task the system serves predicts every crop (VA values, EXPR or AU probabilities).
Frames without a face are filled from their neighbours; a video where no face is ever found gets the system's no-face
fallback (the train prior) on every frame, and says so.

Supported kinds: the static ``video`` kind. Kinds over time (``dynamic``, ``kelm``), ``audio`` and fusion are
refused with a message naming them.
"""

import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from harness.errors import HarnessError, SpecError
from harness.faces.detector import FaceError
from harness.faces.extract import FaceSettings, extract_video, make_detector
from harness.tasks import TASKS, Task, get_task

SUPPORTED_KINDS = ("video",)
ORGANIZER_CROPS = FaceSettings(size=112, margin=1.25)  # the release's crop size; the synthetic crops' margin


def csv_header(tasks: list[Task]) -> str:
    """``time`` and the CSV columns of each task, in registry order (``time,valence,arousal,expression`` for VA and
    EXPR; AU adds ``AU1,...,AU26``)."""
    return ",".join(["time", *(column for task in _ordered(tasks) for column in get_task(task).csv_columns)])


@dataclass
class Prediction:
    """Frame-level predictions of one video: times (s), per task served its stored outputs ``(n, width)`` (VA values,
    EXPR or AU probabilities), the frames with a detected face, and notes."""

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


def system_nodes(system: str, dataset, profile: str | None, store, systems: Path | None = None) -> list:
    """The complete store nodes of ``system``'s own (spec, task) pairs: (plan, node) per task served."""
    from harness.runner import default_profile, plan_nodes

    profile = profile or default_profile(dataset)
    plans = plan_nodes(system, list(TASKS), dataset, profile, systems)
    target = plans[-1].resolved.spec.name
    own = [plan for plan in plans if plan.resolved.spec.name == target]
    if len({plan.name for plan in own}) > 1:
        names = ", ".join(sorted({plan.name for plan in own}))
        raise SpecError(f"{system!r} is a sweep of {len({p.name for p in own})} systems ({names}); predict with one")
    refused = sorted({plan.resolved.kind for plan in own} - set(SUPPORTED_KINDS))
    if refused:
        raise SpecError(
            f"abaw predict: {system!r} is of kind {', '.join(refused)}, which predict does not support yet; it "
            f"supports {', '.join(SUPPORTED_KINDS)} (static video systems such as video_b1, video_vit)"
        )
    found = []
    for plan in own:
        node = store.node(plan.key)
        if not node.is_complete():
            raise SpecError(
                f"{plan.name} ({plan.task}) is not trained on {dataset.root} with profile {profile!r} (store node "
                f"{plan.key} missing or incomplete); run `abaw run {system} --task {plan.task}` first"
            )
        found.append((plan, node))
    return found


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
) -> Prediction:
    """Run ``system`` (trained on ``dataset``) on every frame of ``video``."""
    from harness.data.media import list_face_frames, probe_video
    from harness.models.registry import build_kind
    from harness.runner import MODEL_FILE
    from harness.store import Store, default_store_root

    video = Path(video)
    if not video.is_file():
        raise FaceError(f"{video}: no such video file")
    store = store or Store(default_store_root())
    nodes = system_nodes(system, dataset, profile, store, systems)
    try:
        info = probe_video(video)
    except HarnessError as error:
        raise FaceError(str(error)) from None
    fps = float(info.fps)
    outputs: dict[str, np.ndarray] = {}
    notes: list[str] = []
    faces_found = 0
    with tempfile.TemporaryDirectory(prefix="abaw-predict-") as scratch:
        crops_for: dict[FaceSettings, tuple[Path, object]] = {}
        for plan, node in nodes:
            settings = plan.resolved.settings
            base = FaceSettings() if getattr(settings, "faces", "organizers") == "retinaface" else ORGANIZER_CROPS
            faces = replace(base, detect_size=detect_size)
            if faces not in crops_for:
                folder = Path(scratch) / f"crops-{len(crops_for)}" / _track_name(side)
                detector, _ = make_detector(faces, weights)
                (result,) = extract_video(detector, video, {_track_name(side): folder}, faces)
                crops_for[faces] = (folder, result)
                if note := result.note():
                    notes.append(note.replace(_track_name(side), video.name, 1))
            folder, result = crops_for[faces]
            faces_found = max(faces_found, result.detected)
            frames = list_face_frames(folder)
            kind = build_kind(plan.resolved.kind, settings, plan.task, plan.resolved.spec.seed)
            kind.load_state(node.load_state(MODEL_FILE))
            n_rows = result.frames
            outputs[plan.task] = _frame_outputs(kind, [folder / f"{f:05d}.jpg" for f in frames], frames, n_rows)
    n_rows = len(next(iter(outputs.values())))
    return Prediction(
        video=video, fps=fps, times=np.arange(n_rows) / fps, outputs=outputs, faces=faces_found, notes=notes
    )


def _track_name(side: str | None) -> str:
    return f"video_{side}" if side else "video"


def _frame_outputs(kind, paths: list[Path], frames: np.ndarray, n_rows: int) -> np.ndarray:
    """The kind's stored output on each crop, placed on its frame; gaps filled from neighbours, no face: the prior."""
    import torch

    from harness.frames import fill_missing
    from harness.models.face_data import FaceImages, loader

    net = kind.net_
    net.eval()
    on = next(net.parameters()).device
    if not len(paths):
        return np.tile(net.prior.cpu().numpy(), (n_rows, 1)).astype(np.float32)
    per_face = []
    with torch.no_grad():
        for pixels, _ in loader(FaceImages(paths, kind.settings.image_size, net.norm), kind.settings.batch_size, 0):
            _, output = net(pixels.to(on))
            per_face.append(kind.task_def.stored_outputs(output.float()).cpu().numpy())
    values = np.full((n_rows, per_face[0].shape[1]), math.nan, np.float32)
    values[frames - 1] = np.concatenate(per_face)
    return fill_missing(values).astype(np.float32)
