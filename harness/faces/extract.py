"""Faces from raw videos: decode every frame (PyAV), detect (RetinaFace), pick the track's face, crop, write.

Crops go to ``<store>/faces-<key>/cropped_aligned/<track>/<frame:05d>.jpg`` (1-based frames, the organizers'
layout), where the key hashes the settings, this module's version and the detector weights' content. A frame where
no face of the track is found reuses the track's previous face (its box and eyes, cut from the current frame), as
the SUN team did; frames before the first face have no crop. A track is written into a temporary folder and renamed
into place with its ``faces.json`` (counts, and the size, modification time and content hash of the video it was
cut from), so a killed run never leaves a
folder that a later run trusts: a track is done when its folder, its ``faces.json`` and every crop it lists are
there and the video is unchanged; anything else is recomputed.
"""

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness.cpu import cpu_budget
from harness.data.media import face_path, list_face_frames
from harness.errors import HarnessError
from harness.faces.align import FacePosition, aligned_crop, pick_face, track_side
from harness.faces.detector import Detector, FaceError, file_sha256, load_network, weights_path
from harness.faces.overlap import BoundedPool, read_ahead
from harness.locks import LOCKS, held

VERSION = "1"
CROPS_FOLDER = "cropped_aligned"
TRACK_MANIFEST = "faces.json"
JPEG_QUALITY = 95
SHORT_FRAMES = 2  # decoded frames a video may fall short of its container's count (or 1% of it) before it is torn


@dataclass(frozen=True)
class FaceSettings:
    """How faces are found and cut: crop side, margin around the box, detector input size and thresholds."""

    size: int = 224
    margin: float = 1.3
    detect_size: int = 640
    threshold: float = 0.9
    nms_iou: float = 0.4
    batch: int = 8

    def __post_init__(self) -> None:
        checks = {
            "size": self.size >= 16,
            "margin": 0.5 <= self.margin <= 4,
            "detect_size": self.detect_size >= 32,
            "threshold": 0 < self.threshold < 1,
            "nms_iou": 0 < self.nms_iou <= 1,
            "batch": self.batch >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise FaceError(f"face setting {name!r}: {getattr(self, name)!r} is out of range")

    def key_settings(self) -> dict:
        """What decides the crops (the batch size does not)."""
        return {k: v for k, v in asdict(self).items() if k != "batch"}


@dataclass
class TrackFaces:
    """What one track's pass produced: crops written, frames with a found face, reused faces, ambiguous frames."""

    track: str
    video: str
    frames: int = 0
    crops: int = 0
    detected: int = 0
    reused: int = 0
    ambiguous: int = 0
    video_size: int = 0
    video_mtime_ns: int | None = None  # the video's stamp and content hash when it was cut (None: older manifests)
    video_sha256: str | None = None
    first_face: int | None = None
    crop_frames: list[int] = field(default_factory=list, repr=False)

    def note(self) -> str | None:
        """A line for the user when the track needs one: no face at all, or frames with a rival face."""
        if self.detected == 0:
            return (
                f"{self.track}: no face found in any of its {self.frames} frames; it has no crops (its predictions "
                "fall back as for missing faces)"
            )
        if self.ambiguous:
            return (
                f"{self.track}: {self.ambiguous} frames showed another face as large as the track's (the track's "
                "face was picked by continuity and size)"
            )
        return None


def crops_root(store_root: Path, settings: FaceSettings, weights_sha256: str) -> Path:
    """The folder holding ``cropped_aligned/`` for these settings and weights."""
    from harness.store import node_key

    key = node_key("faces", VERSION, settings.key_settings(), [], "raw-videos", "any", [], {"weights": weights_sha256})
    return Path(store_root) / key / CROPS_FOLDER


def done_track(folder: Path, video: Path) -> TrackFaces | None:
    """The finished track in ``folder``, or None when absent, torn, foreign or cut from another version of ``video``:
    another size, or another modification time and other contents (a re-copy of the same size is hashed)."""
    try:
        record = json.loads((folder / TRACK_MANIFEST).read_text(encoding="utf-8"))
        faces = TrackFaces(**record)
        info = video.stat()
        if faces.video_size != info.st_size:
            return None
        if faces.video_mtime_ns not in (None, info.st_mtime_ns) and faces.video_sha256 != file_sha256(video):
            return None
        present = list_face_frames(folder)
    except (OSError, ValueError, TypeError, HarnessError):
        return None
    return faces if present.tolist() == faces.crop_frames else None


def stated_frames(path: Path) -> int:
    """The frame count a video's container states (0 when it states none, or cannot be read: decoding says why)."""
    import av

    try:
        with av.open(str(path)) as container:
            return int(container.streams.video[0].frames) if container.streams.video else 0
    except av.FFmpegError:
        return 0


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video as an (H, W, 3) uint8 RGB array, in decoding order; a bad file is a FaceError."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FaceError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield upright(frame.to_ndarray(format="rgb24"), frame.rotation)
    except av.FFmpegError as error:
        message = f"{path}: unreadable or corrupt video ({error}); re-copy the file or leave its tracks out"
        raise FaceError(message) from error


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded (H, W, 3) frame turned as its container says to show it: ``rotation`` is the display matrix's
    counterclockwise angle in degrees (PyAV's ``frame.rotation``; a phone's portrait video says -90: a quarter turn
    clockwise), rounded to quarter turns. RetinaFace finds upright faces, and crops are cut from what is shown.

    >>> upright(np.arange(6).reshape(2, 3, 1).repeat(3, axis=2), -90)[..., 0].tolist()
    [[3, 0], [4, 1], [5, 2]]
    """
    turns = round(rotation / 90) % 4 if np.isfinite(rotation) else 0
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def batched(frames: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for frame in frames:
        if batch and frame.shape != batch[0].shape:
            yield np.stack(batch)
            batch = []
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def _write_crop(image: np.ndarray, face: FacePosition, path: Path, size: int, margin: float) -> None:
    aligned_crop(Image.fromarray(image), face, size, margin).save(path, quality=JPEG_QUALITY)


def crop_threads(on: torch.device) -> int:
    """Threads cutting and writing crops: with the detector on a GPU every core of the CPU budget but the main
    thread's, at least one; on the CPU one (the detector's own threads take the cores)."""
    return max(1, cpu_budget().cores - 1) if on.type == "cuda" else 1


class _TrackWriter:
    """One track's state while a video is decoded: its previous face, its temporary folder and its counts. Its crops
    are cut and written in ``pool``; :meth:`finish` once the pool has finished them."""

    def __init__(
        self, track: str, video: Path, stamp: dict, final: Path, settings: FaceSettings, pool: BoundedPool
    ) -> None:
        self.final = final
        self.side = track_side(track)
        self.settings = settings
        self.pool = pool
        self.previous: FacePosition | None = None
        self.faces = TrackFaces(track, video.name, **stamp)
        self.temporary = final.parent / f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        self.temporary.mkdir(parents=True)

    def add(self, frame_number: int, image: np.ndarray, found) -> None:
        self.faces.frames = frame_number
        pick = pick_face(found, self.side, image.shape[1], self.previous)
        if pick.index is not None:
            self.previous = FacePosition.from_faces(found, pick.index)
            self.faces.detected += 1
            self.faces.ambiguous += int(pick.ambiguous)
            if self.faces.first_face is None:
                self.faces.first_face = frame_number
        elif self.previous is not None:
            self.faces.reused += 1
        if self.previous is None:
            return
        path = face_path(self.temporary, frame_number)
        self.pool.submit(_write_crop, image, self.previous, path, self.settings.size, self.settings.margin)
        self.faces.crops += 1
        self.faces.crop_frames.append(frame_number)

    def finish(self) -> TrackFaces:
        self.pool.wait()  # every crop written before the manifest that lists them
        text = json.dumps(asdict(self.faces)) + "\n"
        with open(self.temporary / TRACK_MANIFEST, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.temporary, self.final)
        return self.faces

    def abandon(self) -> None:
        shutil.rmtree(self.temporary, ignore_errors=True)


def extract_video(
    detector: Detector,
    video: Path,
    tracks: dict[str, Path],
    settings: FaceSettings,
    progress: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> list[TrackFaces]:
    """Detect faces in every frame of ``video`` once and write the crops of each of ``tracks`` (name → final
    folder); a failure leaves no track folder behind. The main thread runs the detector and picks each track's
    face; the video is decoded ahead in a thread and the crops are cut and written in ``threads`` others
    (:func:`crop_threads` by default; :mod:`harness.faces.overlap`), with at most ``2 × batch`` crops (or one a
    thread) waiting for them. The crops do not depend on ``threads``."""
    threads = threads or crop_threads(detector.device)
    pool = BoundedPool(threads, pending=max(2 * settings.batch, threads))
    writers: list[_TrackWriter] = []
    info = video.stat()  # hashed once for both people of a _left/_right video
    stamp = {"video_size": info.st_size, "video_mtime_ns": info.st_mtime_ns, "video_sha256": file_sha256(video)}
    try:
        for name, folder in tracks.items():  # one by one: a failure leaves the folders made so far to clean up
            writers.append(_TrackWriter(name, video, stamp, folder, settings, pool))
        number = 0
        for frames in read_ahead(batched(iter_frames(video), settings.batch)):
            for image, found in zip(frames, detector.detect(frames), strict=True):
                number += 1
                for writer in writers:
                    writer.add(number, image, found)
            if progress:
                progress(len(frames))
        if number == 0:
            raise FaceError(f"{video}: no frame could be decoded; re-copy the file or leave its tracks out")
        stated = stated_frames(video)
        if number < stated - max(SHORT_FRAMES, stated // 100):  # frame-threaded decoding ends a torn file quietly
            raise FaceError(
                f"{video}: decoded {number} of the {stated} frames its container states: a truncated file? re-copy "
                "it or leave its tracks out"
            )
        return [writer.finish() for writer in writers]
    finally:
        pool.close()
        for writer in writers:
            writer.abandon()


def make_detector(settings: FaceSettings, weights: Path | None = None, device=None) -> tuple[Detector, str]:
    """The detector with its weights loaded (on the GPU when there is one) and the weights' content hash."""
    import torch

    path = weights_path(weights)
    net = load_network(path)
    on = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Detector(net.to(on), settings.detect_size, settings.threshold, settings.nms_iou), file_sha256(path)


def weights_sha256(weights: Path | None = None) -> str:
    """Content hash of the detector weights, or a FaceError saying where to put them."""
    path = weights_path(weights)
    if not path.is_file():
        load_network(path)  # raises the message naming the file and where it goes
    return file_sha256(path)


def dataset_tracks(dataset) -> dict[str, list[str]]:
    """Video name → its tracks, over every task the dataset holds and its splits, for tracks with a raw video."""
    from harness.data.affwild2 import SPLITS, video_of

    names: set[str] = set()
    for task in dataset.layout.tasks:
        for split in SPLITS:
            try:
                names.update(dataset.split(task, split).names)
            except HarnessError:
                continue  # a split the dataset does not have
    by_video: dict[str, list[str]] = {}
    for name in sorted(names):
        if video_of(name) in dataset.layout.videos:
            by_video.setdefault(video_of(name), []).append(name)
    return by_video


@dataclass
class FaceRun:
    """What :func:`extract_dataset` did: where the crops are, the tracks computed and those already there."""

    root: Path
    computed: list[TrackFaces]
    reused: list[str]

    @property
    def notes(self) -> list[str]:
        return [note for faces in self.computed if (note := faces.note())]


def extract_dataset(
    dataset,
    store_root: Path,
    settings: FaceSettings,
    weights: Path | None = None,
    tracks: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FaceRun:
    """RetinaFace crops of every track of ``dataset`` (or of ``tracks``) that the store does not hold yet.

    Processes sharing the store share the work: a video is cut under its lock (``<faces node>/.locks/<video>``), so
    torchrun's ranks, or two ``abaw faces`` at once, each take the videos no other holds and return once every
    video is done by one of them."""
    by_video = dataset_tracks(dataset)
    if tracks is not None:
        known = {name for names in by_video.values() for name in names}
        unknown = [name for name in tracks if name not in known]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise FaceError(
                f"--tracks: {unknown[0]!r} is not a track of {dataset.root} with a raw video{hint} "
                f"({len(known)} such tracks, e.g. {', '.join(sorted(known)[:3])})"
            )
        wanted = set(tracks)
        by_video = {video: [n for n in names if n in wanted] for video, names in by_video.items()}
        by_video = {video: names for video, names in by_video.items() if names}
    sha = weights_sha256(weights)
    root = crops_root(store_root, settings, sha)
    _sweep(root)
    todo: dict[str, dict[str, Path]] = {}
    reused: list[str] = []
    for video, names in by_video.items():
        path = dataset.layout.videos[video]
        for name in names:
            if done_track(root / name, path) is None:
                todo.setdefault(video, {})[name] = root / name
            else:
                reused.append(name)
    computed: list[TrackFaces] = []
    if todo:
        detector, _ = make_detector(settings, weights)
        frames = {video: _frame_count(dataset.layout.videos[video]) for video in todo}
        total, done = sum(frames.values()), 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress:
                progress(done, total)

        # one process per video at a time (torchrun's ranks, two `abaw faces`): each takes the videos no other holds,
        # then waits for the others' and cuts any that their process left undone
        pending = list(todo.items())
        for block in (False, True):
            deferred = []
            for video, folders in pending:
                path = dataset.layout.videos[video]
                waiting = partial(_say_waiting, video)
                with held(root.parent / LOCKS / video, waiting, block=block) as mine:
                    if not mine:
                        deferred.append((video, folders))
                        continue
                    left = {name: folder for name, folder in folders.items() if done_track(folder, path) is None}
                    if left:
                        computed += extract_video(detector, path, left, settings, advance)
                    else:
                        advance(frames[video])
                    reused += [name for name in folders if name not in left]
            pending = deferred
    return FaceRun(root, computed, reused)


def _say_waiting(video: str, holder: str) -> None:
    from harness.progress import notice

    notice(f"{video}: another process ({holder}) is cutting its faces; waiting for it")


def _sweep(root: Path, max_age_s: float = 3600.0) -> None:
    """Remove temporary track folders that killed runs left (older than ``max_age_s``; a live run's are fresh)."""
    import time

    if not root.is_dir():
        return
    for temporary in root.glob(".*.tmp-*"):
        try:
            if time.time() - temporary.stat().st_mtime > max_age_s:
                shutil.rmtree(temporary, ignore_errors=True)
        except FileNotFoundError:
            continue


def raw_frames(dataset, track: str) -> int:
    """Frames of ``track``'s raw video (0 without one): the crops RetinaFace cuts for it."""
    from harness.data.affwild2 import video_of

    path = dataset.layout.videos.get(video_of(track))
    return _frame_count(path) if path is not None else 0


def frames_to_detect(dataset, store_root: Path) -> int:
    """Raw frames RetinaFace has still to see before ``faces: retinaface`` nodes can train: those of every video
    with a track the store's crops lack (a FaceError when the weights are missing)."""
    root = crops_root(store_root, FaceSettings(), weights_sha256())
    videos = dataset.layout.videos
    return sum(
        _frame_count(videos[video])
        for video, names in dataset_tracks(dataset).items()
        if any(done_track(root / name, videos[video]) is None for name in names)
    )


def _frame_count(path: Path) -> int:
    from harness.data.media import probe_video

    try:
        return probe_video(path).n_frames
    except HarnessError:
        return 0


class CropView:
    """A split's face frames and crop paths taken from a crops root instead of the organizers' folders."""

    def __init__(self, split, root: Path) -> None:
        self.split = split
        self.root = Path(root)
        self.name, self.names, self.tracks = split.name, split.names, split.tracks
        self._frames: dict[str, np.ndarray] = {}

    def face_frames(self, name: str) -> np.ndarray:
        if name not in self._frames:
            folder = self.root / name
            found = list_face_frames(folder) if folder.is_dir() else np.empty(0, dtype=np.int64)
            self._frames[name] = found
        return self._frames[name]

    def frame_path(self, name: str, frame: int) -> Path:
        return face_path(self.root / name, frame)

    def track(self, name: str):
        return self.split.track(name)


_ROOTS: dict[tuple[str, FaceSettings], Path] = {}


def retinaface_view(dataset, split, settings: FaceSettings | None = None) -> CropView:
    """``split`` seen through RetinaFace crops (the video kind's ``faces: retinaface``): the crops of every track of
    the dataset are computed first where the store (``$ABAW_STORE`` or ``$ABAW_HOME/store``) lacks them."""
    from harness.progress import bar
    from harness.store import default_store_root

    settings = settings or FaceSettings()
    cached = (str(dataset.root), settings)
    if cached not in _ROOTS:
        with bar() as shown:
            job = shown.add_task("RetinaFace crops (faces: retinaface)", total=None)
            run = extract_dataset(
                dataset, default_store_root(), settings, progress=lambda d, t: shown.update(job, completed=d, total=t)
            )
        _ROOTS[cached] = run.root
    return CropView(split, _ROOTS[cached])
