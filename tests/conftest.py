"""Shared fixtures: a hand-written dataset root in the real Aff-Wild2 layout, the synthetic tiny dataset, hand-written
prediction templates and files (``templates``, ``TRACK_ROWS``, ``VA_GOOD``), random metric inputs, and a stand-in
static video spec whose embeddings carry the labels (``LabelEmbeddings``)."""

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from harness.data.affwild2 import Dataset
from harness.errors import StoreError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VA_HEADER = "valence,arousal"
EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


def write_video(path: Path, fps: Fraction, n_frames: int, audio: bool = True, size: tuple[int, int] = (64, 48)) -> Path:
    """A small real container (h264 .mp4 or mpeg4 .avi) with an optional 48 kHz sine track."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4" if path.suffix == ".avi" else "libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=48000, layout="mono") if audio else None
        for index in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), index % 255, np.uint8), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = int(n_frames / float(fps) * 48000)
            wave = (0.1 * np.sin(np.arange(samples) * 2 * np.pi * 220 / 48000)).astype(np.float32)
            for start in range(0, samples - 1023, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch_faces(folder: Path, frames) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        (folder / f"{frame:05d}.jpg").write_bytes(b"\xff\xd8\xff\xd9")


@pytest.fixture
def handmade_root(tmp_path: Path) -> Path:
    """A minimal 6th-ABAW-shaped release written line by line, with a space in its annotation folder name."""
    root = tmp_path / "Aff Wild2"
    ann = root / "6th ABAW Annotations"
    write_text(ann / "VA_Estimation_Challenge/Train_Set/video1.txt", f"{VA_HEADER}\n0.1,0.2\n-5,-5\n0.3,-0.4\n")
    write_text(
        ann / "VA_Estimation_Challenge/Validation_Set/10-60-1280x720_left.txt", f"{VA_HEADER}\r\n0.5,0.5\r\n-1,1\r\n"
    )
    write_text(
        ann / "VA_Estimation_Challenge/Validation_Set/10-60-1280x720_right.txt", f"{VA_HEADER}\n0,0\n0.25,0.75\n\n"
    )
    write_text(ann / "EXPR_Recognition_Challenge/Train_Set/video1.txt", f"{EXPR_HEADER}\n0\n-1\n7\n")
    write_text(ann / "EXPR_Recognition_Challenge/Validation_Set/118-30-640x480.txt", f"{EXPR_HEADER}\n4\n4\n5\n1\n")
    touch_faces(root / "cropped_aligned/video1", [1, 3])
    touch_faces(root / "cropped_aligned/10-60-1280x720_left", [1, 2])
    touch_faces(root / "cropped_aligned/10-60-1280x720_right", [2])
    touch_faces(root / "cropped_aligned_new_50_vids/118-30-640x480", [2, 3, 4])
    touch_faces(root / "cropped_aligned/test1", [1, 2])
    write_video(root / "batch1/video1.mp4", Fraction(30), 3)
    write_video(root / "batch2/10-60-1280x720.avi", Fraction(25), 2)
    write_video(root / "new_vids/118-30-640x480.mp4", Fraction(30000, 1001), 5)
    write_video(root / "batch1/test1.mp4", Fraction(24), 2)
    lists = root / "test_set/names_of_videos_in_each_test_set"
    write_text(lists / "Valence_Arousal_Estimation_Challenge_test_set_release.txt", "test1\n")
    write_text(lists / "Expression_Recognition_Challenge_test_set_release.txt", "test1\n")
    formats = root / "test_set/prediction_files_format"
    write_text(
        formats / "CVPR_6th_ABAW_VA_test_set_sample.txt",
        "image_location,valence,arousal\ntest1/00001.jpg,0,0\ntest1/00002.jpg,0,0\n",
    )
    write_text(
        formats / "CVPR_6th_ABAW_Expr_test_set_sample.txt",
        f"image_location,{EXPR_HEADER}\ntest1/00001.jpg,0\ntest1/00002.jpg,0\n",
    )
    return root


@pytest.fixture(scope="session")
def synthetic_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset at its tiny scale, generated once per test session (about half a minute)."""
    from harness.data.synthetic import generate

    root = tmp_path_factory.mktemp("synthetic") / "tiny"
    generate(root, seed=1, scale="tiny")
    return root


@pytest.fixture(scope="session")
def conformance_world(synthetic_tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    """The small specs of :mod:`kind_specs` (one per kind, and more), one store shared by every test that uses it
    (the conformance suite computes the nodes; ``abaw predict``'s tests reuse them) and a leaderboard."""
    from kind_specs import EXTRA_SPECS, SPECS

    from harness.leaderboard import Leaderboard
    from harness.store import Store

    base = tmp_path_factory.mktemp("conformance")
    systems = base / "systems"
    systems.mkdir()
    for name, text in {**{f"conf_{kind}": text for kind, text in SPECS.items()}, **EXTRA_SPECS}.items():
        (systems / f"{name}.yaml").write_text(text)
    return Dataset(synthetic_tiny), Store(base / "store"), Leaderboard(base / "board.sqlite"), systems


def va_data(rng, n, invalid=0.1, offset=0.0):
    """VA predictions and labels of ``n`` frames, a fraction ``invalid`` of them labelled -5 in one column."""
    labels = rng.uniform(-1, 1, (n, 2))
    pred = np.clip(0.7 * labels + rng.normal(0, 0.4, (n, 2)), -1, 1) + offset
    bad = rng.random(n) < invalid
    labels[bad, rng.integers(0, 2, bad.sum())] = -5.0  # -5 in one column invalidates the row
    return pred, labels


def expr_data(rng, n, invalid=0.1):
    """EXPR predictions (right at least half the time) and labels of ``n`` frames, a fraction ``invalid`` of them -1."""
    labels = rng.integers(0, 8, n)
    pred = np.where(rng.random(n) < 0.5, labels, rng.integers(0, 8, n))
    labels[rng.random(n) < invalid] = -1
    return pred, labels


AU_RATES = np.array([0.3, 0.2, 0.25, 0.4, 0.5, 0.45, 0.4, 0.08, 0.05, 0.03, 0.6, 0.15])  # AU1 .. AU26, some rare


def au_data(rng, n, invalid=0.1, flip=0.25):
    """AU 0/1 predictions (each AU flipped with probability ``flip``) and labels of ``n`` frames, ``(n, 12)`` int8,
    a fraction ``invalid`` of the label rows all -1."""
    labels = (rng.random((n, 12)) < AU_RATES).astype(np.int8)
    pred = np.where(rng.random((n, 12)) < flip, 1 - labels, labels).astype(np.int8)
    labels[rng.random(n) < invalid] = -1
    return pred, labels


# Prediction files, for the tests of harness.submission and harness.validation: the rows of the two templates, in
# order, and a valid VA file for them.
TRACK_ROWS = ["video10_1_left/00001.jpg", "video10_1_left/00002.jpg", "video10_1_left/00003.jpg"]
TRACK_ROWS += ["118-30-640x480/00001.jpg", "118-30-640x480/00002.jpg"]

VA_GOOD = (
    "image_location,valence,arousal\n"
    "video10_1_left/00001.jpg,0.5,-0.25\n"
    "video10_1_left/00002.jpg,1,-1\n"
    "video10_1_left/00003.jpg,0.000001,0.3\n"
    "118-30-640x480/00001.jpg,-0.75,0.125\n"
    "118-30-640x480/00002.jpg,0,0\n"
)


def write(folder: Path, text: str, name: str = "pred.txt") -> Path:
    """``text`` as UTF-8 bytes in ``folder / name``, line endings untouched."""
    path = folder / name
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture
def templates(tmp_path: Path) -> dict:
    """The VA and EXPR prediction templates listing ``TRACK_ROWS``, read by harness.data.templates.read_template."""
    from harness.data.templates import read_template

    va_rows = "".join(f"{row},0,0\n" for row in TRACK_ROWS)
    expr_rows = "".join(f"{row},0\n" for row in TRACK_ROWS)
    va = write(tmp_path, f"image_location,{VA_HEADER}\n{va_rows}", "va_template.txt")
    expr = write(tmp_path, f"image_location,{EXPR_HEADER}\n{expr_rows}", "expr_template.txt")
    return {"va": read_template(va, "va"), "expr": read_template(expr, "expr")}


class LabelEmbeddings:
    """A stand-in static video spec: per face frame, the frame's labels (one-hot for EXPR, 0/1 per AU) plus noise,
    16-d."""

    name = "fake_video"
    honest = False

    def __init__(self, dataset: Dataset, task: str, faceless: tuple[str, ...] = (), has_emb: bool = True) -> None:
        self.dataset, self.task, self.faceless, self.has_emb = dataset, task, faceless, has_emb

    def read(self, output: str, split: str, track: str) -> np.ndarray:
        if output != "emb" or not self.has_emb:
            raise StoreError(f"no file emb-{split}/{track}.npy")
        frames = self.dataset.split(self.task, split).face_frames(track)
        rng = np.random.default_rng(len(track) * 7 + len(frames))
        emb = rng.normal(0.0, 0.3, (len(frames), 16)).astype(np.float32)
        labels = self.dataset.split(self.task, split).track(track).labels
        if track in self.faceless:
            return np.zeros((0, 16), np.float16)
        if labels is not None:
            rows = np.minimum(frames, len(labels)) - 1
            if self.task == "va":
                emb[:, :2] += np.where(labels[rows] == -5, 0.0, labels[rows])
            elif self.task == "au":
                emb[:, 2:14] += np.maximum(labels[rows], 0)
            else:
                emb[np.flatnonzero(labels[rows] >= 0), 2 + labels[rows][labels[rows] >= 0]] += 1.0
        return emb.astype(np.float16)
