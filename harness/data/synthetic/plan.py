"""What a synthetic Aff-Wild2 contains: its videos, tracks, splits, frame rates, folders and names.

The plan is drawn from the seed alone, before any pixel or sample is made, so the same seed always gives the
same dataset. It mirrors Aff-Wild2's quirks: ``_left``/``_right`` tracks sharing one video, frame rates that the
file name gets wrong, ``.avi`` beside ``.mp4``, a ``new_vids`` batch whose crops live in their own folder, label
files a frame or two longer or shorter than the video, tracks whose face appears late. A scale may add videos to
validation alone, drawn after the others from their own random stream (``extra_validation``).
"""

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

SCALES: dict[str, dict] = {
    # videos, how many of them show two people, the clip length range in seconds, and videos added to validation
    # alone (fusion weights and every other choice made on validation need more than the 4 videos its share gives)
    "tiny": {"videos": 16, "pairs": 4, "seconds": (16.0, 26.0), "extra_validation": (6, 1)},
    "small": {"videos": 48, "pairs": 10, "seconds": (40.0, 90.0), "extra_validation": (0, 0)},
}
FRAME_RATES = (Fraction(30), Fraction(30000, 1001), Fraction(25), Fraction(30), Fraction(24), Fraction(30000, 1001))
NAME_FPS = (30, 30, 30, 25, 30, 60)  # the frame rate the *name* claims, deliberately not always the real one
SPLIT_SHARES = (("train", 0.55), ("validation", 0.25), ("test", 0.2))
SINGLE_SIZE = (320, 240)
PAIR_SIZE = (480, 240)


@dataclass(frozen=True)
class TrackPlan:
    """One annotated person: a track name, its side in a two-person video, and which tasks label it (of
    ``va``, ``expr``, ``au``, in that order)."""

    name: str
    side: str | None  # "left", "right" or None for a one-person video
    tasks: tuple[str, ...]
    late_start: bool


@dataclass(frozen=True)
class VideoPlan:
    """One raw video and the tracks drawn into it."""

    index: int
    name: str
    folder: str  # batch1, batch2 or new_vids
    suffix: str  # .mp4 or .avi
    fps: Fraction
    n_frames: int  # frames in the container
    label_offset: int  # label lines minus container frames (a frame or two off is normal in Aff-Wild2)
    size: tuple[int, int]  # width, height
    audio_rate: int
    split: str
    tracks: tuple[TrackPlan, ...]

    @property
    def crops_folder(self) -> str:
        return "cropped_aligned_new_50_vids" if self.folder == "new_vids" else "cropped_aligned"

    @property
    def n_labels(self) -> int:
        return self.n_frames + self.label_offset


def plan_dataset(seed: int, scale: str) -> tuple[VideoPlan, ...]:
    """Draw the videos of a synthetic dataset of the given scale."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    config = SCALES[scale]
    rng = np.random.default_rng([seed, 0])
    n_videos = config["videos"]
    pair_at = set(rng.choice(n_videos, size=config["pairs"], replace=False).tolist())
    splits = _assign_splits(n_videos, rng)
    extra, extra_pairs = config["extra_validation"]
    extra_rng = np.random.default_rng([seed, 0, 1])  # their own stream: the other videos stay as they were
    if extra:
        pair_at |= {n_videos + int(i) for i in extra_rng.choice(extra, size=extra_pairs, replace=False)}
    splits += ["validation"] * extra
    videos = []
    for index in range(n_videos + extra):
        draw = rng if index < n_videos else extra_rng
        fps = FRAME_RATES[index % len(FRAME_RATES)]
        seconds = draw.uniform(*config["seconds"])
        n_frames = int(round(seconds * float(fps)))
        pair = index in pair_at
        folder, suffix = _folder_and_suffix(index, n_videos + extra if index >= n_videos else n_videos)
        name = _video_name(index, pair, NAME_FPS[index % len(NAME_FPS)], PAIR_SIZE if pair else SINGLE_SIZE)
        tasks = _tasks(index)
        sides: tuple[str | None, ...] = ("left", "right") if pair else (None,)
        tracks = tuple(
            TrackPlan(
                name=f"{name}_{side}" if side else name,
                side=side,
                tasks=tasks,
                late_start=bool(draw.random() < 0.3),
            )
            for side in sides
        )
        videos.append(
            VideoPlan(
                index=index,
                name=name,
                folder=folder,
                suffix=suffix,
                fps=fps,
                n_frames=n_frames,
                label_offset=int(draw.choice([0, 0, 0, -1, 1, -2, 2])),
                size=PAIR_SIZE if pair else SINGLE_SIZE,
                audio_rate=44100 if suffix == ".avi" else 48000,
                split=splits[index],
                tracks=tracks,
            )
        )
    return tuple(videos)


def _assign_splits(n_videos: int, rng: np.random.Generator) -> list[str]:
    """Whole videos go to one split (both people of a video stay together), in the shares of SPLIT_SHARES."""
    order = rng.permutation(n_videos)
    splits = [""] * n_videos
    start = 0
    for position, (split, share) in enumerate(SPLIT_SHARES):
        count = n_videos - start if position == len(SPLIT_SHARES) - 1 else int(round(share * n_videos))
        for video in order[start : start + count]:
            splits[int(video)] = split
        start += count
    return splits


def _tasks(index: int) -> tuple[str, ...]:
    """Most videos carry VA and EXPR labels; every fifth only VA and every seventh only EXPR, as in Aff-Wild2. AU
    labels go with EXPR's at these scales (the ``affwild2`` plan draws the release's own AU tracks)."""
    if index % 5 == 1:
        return ("va",)
    if index % 7 == 3:
        return ("expr", "au")
    return ("va", "expr", "au")


def _folder_and_suffix(index: int, n_videos: int) -> tuple[str, str]:
    """About 70% in batch1, 15% in batch2 (one of them an .avi), 15% in new_vids."""
    share = index / n_videos
    if share < 0.70:
        return "batch1", ".mp4"
    if share < 0.85:
        return "batch2", ".avi" if index == int(0.70 * n_videos + 0.999) else ".mp4"
    return "new_vids", ".mp4"


def _video_name(index: int, pair: bool, name_fps: int, size: tuple[int, int]) -> str:
    """Names in Aff-Wild2's styles: ``118-30-640x480`` (fps and size in the name) or ``video10_1``."""
    if index % 3 == 2:
        return f"video{index + 1}_1" if pair else f"video{index + 1}"
    return f"{index + 1}-{name_fps}-{size[0]}x{size[1]}"
