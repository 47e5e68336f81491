"""The ``affwild2`` scale: a plan with the 6th ABAW release's sizes, for measuring what the harness costs at real size.

Track counts per split and task, and the label lines per split and task, are the published ones where published
(``../shared/ABAW.md``, "Sizes" and "AU detection"): VA 356/76/162 tracks train/validation/test, EXPR 248/70/228,
AU 296/105/141 (the 6th ABAW paper's 542 AU videos less the 105 validation and 141 test tracks); 1.68 M / 382 k VA
and 597 k / 284 k EXPR train/validation frames, 927 k / 1.02 M / 730 k VA/EXPR/AU test rows. The AU train and
validation frames are not published: they follow from the tracks (below), 1.08 M / 528 k. The tracks fall into
groups that carry the same tasks (:data:`GROUPS`): every EXPR train/validation track also carries VA and AU, 48 of
the 108 other VA train tracks and the 6 other VA validation tracks carry AU too, 29 validation tracks carry AU alone
(in the release they carry VA or EXPR in another split; this plan keeps a video in one split), and 141 of the 162 VA
test tracks (all of which carry EXPR) carry AU: 689 tracks in all. Per-track lengths are log-normal, rescaled so
each group sums to its lines exactly; frame rates follow the release's mix (mostly 30 and 29.97, some 25 and 24, a
few down to 6). About 4% of videos show two people (``_left``/``_right``), 30% of tracks have a late first face, and
label files are a frame or two off the video, as in ``tiny``. The plan draws from its own random stream, so the
``tiny`` and ``small`` plans are untouched.

``fraction`` shrinks the track counts (at least one track per group) and the totals with them, keeping the real
per-track lengths: a test can build the same shape of dataset in seconds.
"""

from fractions import Fraction

import numpy as np

from harness.data.synthetic.plan import PAIR_SIZE, SINGLE_SIZE, TrackPlan, VideoPlan, _folder_and_suffix, _video_name

SCALE = "affwild2"
# (split, task): label lines in the release (train/validation: frames with a valid label; test: rows to predict)
ROWS = {
    ("train", "va"): 1_679_857,
    ("validation", "va"): 382_021,
    ("test", "va"): 927_210,
    ("train", "expr"): 597_361,
    ("validation", "expr"): 284_230,
    ("test", "expr"): 1_022_655,
    ("test", "au"): 729_736,
}
# split: (tasks, tracks, label lines) of each group of tracks that carry the same tasks. Where a published total
# spans two groups, they share it by their track counts: the 108 VA-only train tracks' 1,082,496 lines (VA less
# EXPR) split 48/60; the 29 AU-only validation tracks have the validation VA tracks' mean length (382,021 / 76).
GROUPS: dict[str, tuple[tuple[tuple[str, ...], int, int], ...]] = {
    "train": ((("va", "expr", "au"), 248, 597_361), (("va", "au"), 48, 481_109), (("va",), 60, 601_387)),
    "validation": ((("va", "expr", "au"), 70, 284_230), (("va", "au"), 6, 97_791), (("au",), 29, 145_771)),
    "test": ((("va", "expr", "au"), 141, 729_736), (("va", "expr"), 21, 197_474), (("expr",), 66, 95_445)),
}
FPS_MIX = (
    (Fraction(30), 0.46),
    (Fraction(30000, 1001), 0.36),
    (Fraction(25), 0.09),
    (Fraction(24), 0.04),
    (Fraction(15), 0.03),
    (Fraction(10), 0.01),
    (Fraction(6), 0.01),
)
PAIR_SHARE = 0.04  # share of a group's videos that show two people
LENGTH_SPREAD = 0.6  # sigma of the log-normal per-track length
MIN_LINES = 60


def group_totals(fraction: float = 1.0) -> list[tuple[str, tuple[str, ...], int, int]]:
    """(split, tasks, tracks, label lines) of each group of tracks that carry the same tasks."""
    groups = []
    for split, split_groups in GROUPS.items():
        for tasks, count, lines in split_groups:
            kept = max(1, round(count * fraction))
            groups.append((split, tasks, kept, round(lines * kept / count)))
    return groups


def plan_release(seed: int, fraction: float = 1.0) -> tuple[VideoPlan, ...]:
    """Draw the videos of the ``affwild2`` scale (``fraction`` < 1: fewer tracks of the same lengths)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction!r}")
    rng = np.random.default_rng([seed, 3])  # its own stream: tiny and small draw from [seed, 0]
    drafts = []  # (split, tasks, tracks in the video, label lines)
    for split, tasks, count, lines in group_totals(fraction):
        pairs = round(PAIR_SHARE * count / (1 + PAIR_SHARE)) if count > 2 else 0
        sizes = np.array([2] * pairs + [1] * (count - 2 * pairs))
        for size, length in zip(sizes, _lengths(sizes, lines, rng), strict=True):
            drafts.append((split, tasks, int(size), int(length)))
    order = rng.permutation(len(drafts))
    rates, weights = zip(*FPS_MIX, strict=True)
    videos = []
    for index, at in enumerate(order):
        split, tasks, size, n_labels = drafts[int(at)]
        fps = rates[int(rng.choice(len(rates), p=np.array(weights) / sum(weights)))]
        offset = int(rng.choice([0, 0, 0, -1, 1, -2, 2]))
        pair = size == 2
        folder, suffix = _folder_and_suffix(index, len(drafts))
        frame_size = PAIR_SIZE if pair else SINGLE_SIZE
        name = _video_name(index, pair, round(float(fps)), frame_size)
        sides: tuple[str | None, ...] = ("left", "right") if pair else (None,)
        tracks = tuple(
            TrackPlan(f"{name}_{side}" if side else name, side, tasks, bool(rng.random() < 0.3)) for side in sides
        )
        videos.append(
            VideoPlan(
                index=index,
                name=name,
                folder=folder,
                suffix=suffix,
                fps=fps,
                n_frames=n_labels - offset,
                label_offset=offset,
                size=frame_size,
                audio_rate=44100 if suffix == ".avi" else 48000,
                split=split,
                tracks=tracks,
            )
        )
    return tuple(videos)


def _lengths(sizes: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Label lines per video, log-normal, so that the lines over all tracks (a pair counts twice) sum to ``total``."""
    draws = rng.lognormal(0.0, LENGTH_SPREAD, size=len(sizes))
    lengths = np.maximum(MIN_LINES, np.floor(total * draws / np.sum(sizes * draws))).astype(np.int64)
    rest = total - int(np.sum(sizes * lengths))
    singles = np.flatnonzero(sizes == 1)
    fix = singles[np.argmax(lengths[singles])] if len(singles) else int(np.argmax(lengths))
    step = 1 if len(singles) else 2
    lengths[fix] += rest // step
    return lengths
