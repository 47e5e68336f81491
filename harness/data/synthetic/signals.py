"""The learnable signal of the synthetic dataset: labels per frame and the cues that video and audio show of them.

Per track (one person):
- valence/arousal: smooth random trajectories (seconds-long time constants), pulled toward the prototype of the
  current expression so that labels of the two tasks agree;
- expression: segments of 1–4 s whose class is drawn from an imbalanced prior (flatter than Aff-Wild2's, so that
  every class shows up in a tiny dataset), weighted by
  how close the current valence/arousal lies to each class's prototype;
- face cues (what the drawn face shows): mouth curvature follows valence closely, eye and brow opening follow
  arousal weakly (blinks and noise hide it), each class adds its own cue; per-subject biases and per-frame noise
  (the cues before them, ``expressed``, are what the action units of :mod:`.aus` are read from);
- audio cues (what the voice carries while the person speaks): arousal strongly, valence weakly and noisily.
So video is the stronger modality for valence and expressions, audio for arousal, and fusing them helps.
"""

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from harness.data.synthetic.face import FaceCues
from harness.tasks import get_task

NUM_EXPR_CLASSES = get_task("expr").width
VA_INVALID = float(get_task("va").invalid_labels(1)[0, 0])
EXPR_INVALID = int(get_task("expr").invalid_labels(1)[0])

# (valence, arousal) prototype of each class in ABAW order, and the class prior (train-like imbalance)
PROTOTYPES = np.array(
    [[0.0, 0.0], [-0.6, 0.6], [-0.6, 0.25], [-0.45, 0.7], [0.7, 0.4], [-0.6, -0.45], [0.25, 0.8], [0.15, -0.25]]
)
CLASS_PRIOR = np.array([0.22, 0.09, 0.08, 0.08, 0.15, 0.12, 0.09, 0.17])
PROTOTYPE_PULL = 0.45
# cue offsets each class adds at full intensity, in FaceCues field order
CUE_NAMES = ("mouth_curve", "mouth_open", "eye_open", "brow_raise", "brow_tilt", "nose_wrinkle", "mouth_asym")
CLASS_CUES = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # Neutral
        [-0.3, 0.0, 0.05, -0.7, -0.9, 0.0, 0.0],  # Anger
        [-0.35, 0.1, -0.15, -0.2, 0.0, 0.95, 0.0],  # Disgust
        [-0.1, 0.35, 0.35, 0.6, 0.7, 0.0, 0.0],  # Fear
        [0.55, 0.3, -0.05, 0.1, 0.0, 0.0, 0.0],  # Happiness
        [-0.45, 0.0, -0.25, 0.0, 0.85, 0.0, 0.0],  # Sadness
        [0.0, 0.75, 0.4, 0.95, 0.2, 0.0, 0.0],  # Surprise
        [0.0, 0.05, 0.0, 0.0, 0.0, 0.0, 0.85],  # Other (a one-sided smirk)
    ]
)
CUE_BOUNDS = ([-1, 0, 0, -1, -1, 0, -1], [1, 1, 1, 1, 1, 1, 1])  # each cue's range, CUE_NAMES order
VIDEO_NOISE = np.array([0.08, 0.08, 0.2, 0.2, 0.1, 0.06, 0.08])  # per-frame noise on each cue
SUBJECT_BIAS = np.array([0.12, 0.05, 0.12, 0.15, 0.08, 0.0, 0.05])  # per-person offset scale on each cue
AUDIO_AROUSAL_NOISE = 0.08
AUDIO_VALENCE_GAIN = 0.35
AUDIO_VALENCE_NOISE = 0.35


@dataclass(frozen=True)
class TrackSignals:
    """Everything the generator knows about one track, frame by frame (index i-1 is frame i)."""

    va: np.ndarray  # (n, 2) clean labels in [-1, 1]
    expr: np.ndarray  # (n,) class 0..7
    cues: np.ndarray  # (n, 7) face cues as drawn, CUE_NAMES order
    expressed: np.ndarray  # (n, 7) what the expression and valence/arousal put on the face: cues before the
    # person's resting offset, per-frame noise and blinks (the action units are read from these)
    audio_va: np.ndarray  # (n, 2) valence/arousal as the voice carries them (when speaking)
    face: np.ndarray  # (n,) bool: a face is visible (gaps are frames with no face)
    va_file: np.ndarray  # (n, 2) labels as written, with runs of -5
    expr_file: np.ndarray  # (n,) labels as written, with runs of -1


def smooth_process(n: int, fps: float, rng: np.random.Generator, seconds: float, scale: float) -> np.ndarray:
    """Zero-mean smooth noise with a correlation time of about ``seconds`` and standard deviation ``scale``."""
    sigma = seconds * fps
    smooth = gaussian_filter1d(rng.standard_normal(n + int(6 * sigma)), sigma=sigma, mode="wrap")[:n]
    return scale * smooth * np.sqrt(2 * np.sqrt(np.pi) * sigma)  # Gaussian-filtered unit white noise has this 1/std


def expression_sequence(va: np.ndarray, fps: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Classes in segments of 1–4 s, drawn near the current valence/arousal; returns (classes, intensity ramp)."""
    n = len(va)
    classes = np.empty(n, dtype=np.int64)
    intensity = np.empty(n)
    start = 0
    while start < n:
        length = max(1, int(rng.uniform(1.0, 4.0) * fps))
        distance = np.sum((PROTOTYPES - va[start]) ** 2, axis=1)
        weights = CLASS_PRIOR * np.exp(-distance / 0.3)
        classes[start : start + length] = rng.choice(NUM_EXPR_CLASSES, p=weights / weights.sum())
        ramp = np.minimum(1.0, np.minimum(np.arange(length) + 1, np.arange(length)[::-1] + 1) / (0.3 * fps))
        intensity[start : start + length] = (rng.uniform(0.6, 1.0) * ramp)[: n - start]
        start += length
    return classes, intensity


def gap_mask(n: int, fps: float, rng: np.random.Generator, late_start: bool) -> np.ndarray:
    """Frames where a face is visible: occlusion runs of 0.2–1.5 s, and a late first face for some tracks."""
    face = np.ones(n, dtype=bool)
    for _ in range(rng.poisson(n / fps / 12.0)):
        begin = int(rng.integers(0, n))
        face[begin : begin + int(rng.uniform(0.2, 1.5) * fps)] = False
    if late_start:
        face[: int(rng.uniform(0.05, 0.15) * n)] = False
    return face


def invalid_runs(n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Frames whose label the annotators left invalid: a run or two of 0.3–2 s on about half the tracks."""
    invalid = np.zeros(n, dtype=bool)
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 3))):
            begin = int(rng.integers(0, n))
            invalid[begin : begin + int(rng.uniform(0.3, 2.0) * fps)] = True
    return invalid


def track_signals(n: int, fps: float, rng: np.random.Generator, late_start: bool) -> TrackSignals:
    """Draw labels, face cues and audio cues for one track of ``n`` label lines."""
    mood = rng.uniform(-0.3, 0.3, size=2)
    latent = np.stack([smooth_process(n, fps, rng, s, 0.45) for s in (3.0, 2.0)], axis=1) + mood
    classes, intensity = expression_sequence(np.tanh(latent), fps, rng)
    pulled = (1 - PROTOTYPE_PULL) * latent + PROTOTYPE_PULL * PROTOTYPES[classes] * intensity[:, None]
    va = np.clip(gaussian_filter1d(pulled, sigma=0.15 * fps, axis=0), -1.0, 1.0)

    expressed = clean_cues(va, classes, intensity)
    cues = expressed + (
        SUBJECT_BIAS * rng.standard_normal(len(CUE_NAMES)) + VIDEO_NOISE * rng.standard_normal(expressed.shape)
    )
    blinks = _blinks(n, fps, rng)
    cues[blinks, 2] = 0.05
    cues = np.clip(cues, *CUE_BOUNDS)

    audio_va = np.stack(
        [
            AUDIO_VALENCE_GAIN * va[:, 0] + smooth_process(n, fps, rng, 1.0, AUDIO_VALENCE_NOISE),
            va[:, 1] + AUDIO_AROUSAL_NOISE * rng.standard_normal(n),
        ],
        axis=1,
    )
    invalid = invalid_runs(n, fps, rng)
    va_file = np.where(invalid[:, None], VA_INVALID, np.round(va, 3)).astype(np.float32)
    expr_file = np.where(invalid, EXPR_INVALID, classes)
    face = gap_mask(n, fps, rng, late_start)
    return TrackSignals(
        va, classes, cues, np.clip(expressed, *CUE_BOUNDS), np.clip(audio_va, -1, 1), face, va_file, expr_file
    )


def clean_cues(va: np.ndarray, classes: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Face cues (n, 7) before per-person bias, noise and blinks: what valence, arousal and the class show."""
    base = np.zeros((len(va), len(CUE_NAMES)))
    base[:, 0] = 0.75 * va[:, 0]  # mouth curvature ~ valence
    base[:, 1] = 0.2 * np.clip(va[:, 1], 0, None)  # mouth opening ~ arousal (weak)
    base[:, 2] = 0.55 + 0.25 * va[:, 1]  # eye opening ~ arousal (noisy)
    base[:, 3] = 0.25 * va[:, 1]  # brow height ~ arousal (weak)
    return base + CLASS_CUES[classes] * intensity[:, None]


def _blinks(n: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Eye-blink frames: ~0.15 s closures every 2–6 s."""
    blink = np.zeros(n, dtype=bool)
    at = rng.uniform(0, 4.0) * fps
    while at < n:
        blink[int(at) : int(at + 0.15 * fps) + 1] = True
        at += rng.uniform(2.0, 6.0) * fps
    return blink


def face_cues(row: np.ndarray) -> FaceCues:
    """One frame's cue vector as the renderer's parameters."""
    return FaceCues(**dict(zip(CUE_NAMES, row.tolist(), strict=True)))
