"""Shared fixtures: a hand-written dataset root in the real Aff-Wild2 layout, and the synthetic tiny dataset."""

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

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
