"""``--crops pool``: a synthetic Aff-Wild2 at full size for cost measurement, made in minutes instead of days.

Labels are drawn exactly as in a rendered dataset (same random stream per video, so a pooled ``tiny`` has the
rendered ``tiny``'s label files). Only the pixels are cheap: a pool of 256 aligned crops is rendered once (8
expressions × 4 valence × 4 arousal bins × 2 people), and every face frame's crop file is a hard link to the pool
crop of its frame's class and valence/arousal bin (a copy starts a new link chain when a file system's link limit is
reached). Each raw video is a real container with the planned frame rate, size, codec and sound, but only
``VIDEO_SECONDS`` long: frame counts differ from the label lines, which the metadata states. There is no face truth
(``synthetic_faces/``) and no oracle: the crops are not the drawn frames.
"""

import dataclasses
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data.synthetic.aus import video_aus
from harness.data.synthetic.face import SubjectLook, draw_face, make_background
from harness.data.synthetic.labels import write_video_labels
from harness.data.synthetic.plan import SINGLE_SIZE, VideoPlan
from harness.data.synthetic.render import FACE_HEIGHT, _aligned_crop, _Encoder
from harness.data.synthetic.signals import CUE_BOUNDS, NUM_EXPR_CLASSES, clean_cues, face_cues, track_signals

POOL_FOLDER = "synthetic_crop_pool"
VA_BINS = 4  # bins of valence and of arousal over [-1, 1]
PEOPLE = 2
VIDEO_SECONDS = 2.0


@dataclass(frozen=True)
class PooledVideo:
    """What the writer needs back from one pooled video: test rows, crop links made, valid label lines."""

    plan: VideoPlan
    test_rows: dict[str, dict[str, int]]
    face_images: int
    container_frames: int


def render_pool(root: Path, seed: int) -> Path:
    """Render the pool crops under ``root/POOL_FOLDER``; one file per (class, valence bin, arousal bin, person)."""
    rng = np.random.default_rng([seed, 4])
    folder = root / POOL_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    looks = [SubjectLook.random(rng) for _ in range(PEOPLE)]
    width, height = SINGLE_SIZE
    background = make_background(height, width, rng)
    centres = -1 + (2 * np.arange(VA_BINS) + 1) / VA_BINS
    for cls in range(NUM_EXPR_CLASSES):
        for v, valence in enumerate(centres):
            for a, arousal in enumerate(centres):
                cues = clean_cues(np.array([[valence, arousal]]), np.array([cls]), np.ones(1))
                cues = np.clip(cues, *CUE_BOUNDS)[0]
                for person, look in enumerate(looks):
                    canvas = background.copy()
                    marks = draw_face(canvas, (width / 2, height / 2), FACE_HEIGHT, 0.0, face_cues(cues), look)
                    crop = _aligned_crop(Image.fromarray(canvas), marks)
                    crop.save(folder / pool_name(cls, v, a, person), quality=92)
    return folder


def pool_name(cls: int, valence_bin: int, arousal_bin: int, person: int) -> str:
    return f"{cls}_{valence_bin}_{arousal_bin}_{person}.jpg"


def pool_video(plan: VideoPlan, root: Path, seed: int) -> PooledVideo:
    """Write ``plan``'s label files, crop links and short container under ``root``."""
    rng = np.random.default_rng([seed, 1, plan.index])  # the rendered video's stream: the same labels
    fps = float(plan.fps)
    signals = {t.name: track_signals(plan.n_labels, fps, rng, t.late_start) for t in plan.tracks}
    test_rows = write_video_labels(root, plan, signals, video_aus(plan, signals, seed))
    linker = _Linker(root / POOL_FOLDER)
    links = 0
    for position, track in enumerate(plan.tracks):
        track_signal = signals[track.name]
        folder = root / plan.crops_folder / track.name
        folder.mkdir(parents=True, exist_ok=True)
        rows = np.minimum(np.arange(plan.n_frames), plan.n_labels - 1)
        shown = np.ones(plan.n_frames, dtype=bool)
        labelled = min(plan.n_frames, plan.n_labels)
        shown[:labelled] = track_signal.face[:labelled]  # frames past the label lines always show the face
        bins = np.clip(((track_signal.va[rows] + 1) / 2 * VA_BINS).astype(np.int64), 0, VA_BINS - 1)
        person = (plan.index + position) % PEOPLE
        for index in np.flatnonzero(shown):
            cls = int(track_signal.expr[rows[index]])
            source = pool_name(cls, int(bins[index, 0]), int(bins[index, 1]), person)
            linker.link(source, folder / f"{index + 1:05d}.jpg")
            links += 1
    frames = _short_video(plan, root, rng)
    return PooledVideo(plan, test_rows, links, frames)


def _short_video(plan: VideoPlan, root: Path, rng: np.random.Generator) -> int:
    """A ``VIDEO_SECONDS`` container of the plan's codec, rate, size and sound (silent); its frame count."""
    frames = max(1, round(VIDEO_SECONDS * float(plan.fps)))
    short = dataclasses.replace(plan, n_frames=frames, label_offset=0)
    path = root / plan.folder / f"{plan.name}{plan.suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    background = make_background(plan.size[1], plan.size[0], rng)
    silence = np.zeros(int(frames / float(plan.fps) * plan.audio_rate), dtype=np.float32)
    with _Encoder(path, short, silence) as encoder:
        for index in range(frames):
            encoder.add_frame(background, index)
    return frames


class _Linker:
    """Hard links to pool crops; when a crop reaches the file system's link limit, links go to a fresh copy."""

    def __init__(self, pool: Path) -> None:
        self.pool = pool
        self.current: dict[str, Path] = {}
        self.copies = 0

    def link(self, name: str, target: Path) -> None:
        source = self.current.get(name, self.pool / name)
        try:
            os.link(source, target)
        except OSError as error:
            if error.errno != errno.EMLINK:
                raise
            self.copies += 1
            fresh = self.pool / f"{Path(name).stem}.{os.getpid()}.{self.copies}.jpg"
            shutil.copyfile(self.pool / name, fresh)
            self.current[name] = fresh
            os.link(fresh, target)
