"""Action-unit labels of the synthetic Aff-Wild2: which of the AU challenge's 12 AUs each frame's face shows.

An AU is on when the movement that the face draws for it (:mod:`.face`) exceeds a threshold. The movement is read
from the track's *expressed* cues: what the expression and valence/arousal put on the face, before the person's
resting-face offset, per-frame jitter and blinks are added for drawing. FACS codes a movement against the person's
neutral face, so, as on real data, a model must see past a resting smile or low brows (and a blink is no AU7).

- AU1 inner brow raiser: the brows' inner ends rise (``brow_raise + 0.9 brow_tilt``; fear, surprise, sadness);
- AU2 outer brow raiser: the brows' outer ends rise (``brow_raise - 0.3 brow_tilt``; fear, surprise);
- AU4 brow lowerer: brows lowered and knitted, the frown creases (anger);
- AU6 cheek raiser: both cheeks rise with a wide smile (the mean lift of the two cheeks; happiness);
- AU7 lid tightener: narrowed eyes (``eye_open`` low; sadness, some disgust);
- AU10 upper lip raiser: the nose wrinkle that lifts the upper lip (disgust);
- AU12 lip corner puller: a mouth corner lifts (smiles, and the one-sided smirk of "Other");
- AU15 lip corner depressor: both mouth corners drop (sadness, some anger and disgust);
- AU25 lips part / AU26 jaw drop: the lip gap opens a little / wide (surprise, fear, happiness, arousal).

AU23 (lip tightener) and AU24 (lip pressor) have no drawn counterpart, so they are drawn from the expression: AU23
during anger and disgust, AU24 during anger and sadness with the lips closed, each while a smooth random process of
the AU (about a second's correlation) is above its median: about half of those frames, in runs. The thresholds give
Aff-Wild2-like base rates (on ``small``; ``tiny``'s 11 k frames vary by a few points between seeds): AU12 and AU25
about a third of the frames, AU1 about 18 %, AU2, AU6, AU7, AU26 about 10 %, AU4, AU10, AU15, AU23, AU24 5–8 %.
Frames whose VA/EXPR labels are invalid get the invalid row (-1 for every AU). The random draws come from their own
stream per video, so adding AUs left every other file of the dataset as it was.
"""

import numpy as np

from harness.data.synthetic.plan import TrackPlan, VideoPlan
from harness.data.synthetic.signals import CUE_NAMES, EXPR_INVALID, TrackSignals, smooth_process
from harness.tasks import get_task

AU_NAMES = get_task("au").columns
AU_INVALID = int(get_task("au").invalid_labels(1)[0, 0])
# the drawn movement of each rendered AU, as a function of the expressed cues, and the threshold it must exceed
THRESHOLDS = {
    "AU1": 0.35,
    "AU2": 0.3,
    "AU4": 0.15,
    "AU6": 0.6,
    "AU7": -0.38,  # eye opening below 0.38
    "AU10": 0.3,
    "AU12": 0.35,
    "AU15": 0.75,  # the lower corner drops below -0.75
    "AU25": 0.07,
    "AU26": 0.35,
}
# AUs drawn from the expression: the classes (ABAW order) during which they can occur, and whether the lips close
DRAWN = {"AU23": ((1, 2), False), "AU24": ((1, 5), True)}
DRAWN_SECONDS = 1.0  # correlation time of the smooth process that switches a drawn AU on and off


def has_aus(track: TrackPlan) -> bool:
    """Whether a track gets AU labels: its plan says so (``tiny`` and ``small``: the EXPR tracks; ``affwild2``: the
    release's AU track counts, which differ from EXPR's)."""
    return "au" in track.tasks


def movements(expressed: np.ndarray) -> dict[str, np.ndarray]:
    """The drawn movement behind each rendered AU, per frame, from the expressed cues ``(n, 7)`` (CUE_NAMES order)."""
    cue = dict(zip(CUE_NAMES, expressed.T, strict=True))
    asym = cue["mouth_asym"]
    # corner lift of each mouth half as face.py draws it: a smirk lifts one corner hard and lets the other sag
    left = cue["mouth_curve"] + 1.7 * np.maximum(-asym, 0) - 0.35 * np.maximum(asym, 0)
    right = cue["mouth_curve"] + 1.7 * np.maximum(asym, 0) - 0.35 * np.maximum(-asym, 0)
    raise_, tilt = cue["brow_raise"], cue["brow_tilt"]
    return {
        "AU1": raise_ + 0.9 * tilt,
        "AU2": raise_ - 0.3 * tilt,
        "AU4": 0.6 * np.maximum(-tilt, 0) + 0.4 * np.maximum(-raise_, 0),
        "AU6": (np.clip(left, 0, 1) + np.clip(right, 0, 1)) / 2,
        "AU7": -cue["eye_open"],
        "AU10": cue["nose_wrinkle"],
        "AU12": np.maximum(left, right),
        "AU15": -np.minimum(left, right),
        "AU25": cue["mouth_open"],
        "AU26": cue["mouth_open"],
    }


def track_aus(signals: TrackSignals, fps: float, rng: np.random.Generator) -> np.ndarray:
    """AU labels ``(n, 12)`` int8 of one track as written: 0/1 per AU (AU_NAMES order), rows of -1 where invalid."""
    n = len(signals.expr)
    moved = movements(signals.expressed)
    labels = np.zeros((n, len(AU_NAMES)), dtype=np.int8)
    for column, name in enumerate(AU_NAMES):
        if name in THRESHOLDS:
            labels[:, column] = moved[name] > THRESHOLDS[name]
            continue
        classes, lips_closed = DRAWN[name]
        active = np.isin(signals.expr, classes) & (smooth_process(n, fps, rng, DRAWN_SECONDS, 1.0) > 0)
        if lips_closed:
            active &= moved["AU25"] <= THRESHOLDS["AU25"]
        labels[:, column] = active
    labels[signals.expr_file == EXPR_INVALID] = AU_INVALID
    return labels


def video_aus(plan: VideoPlan, signals: dict[str, TrackSignals], seed: int) -> dict[str, np.ndarray]:
    """The AU labels of each track that has them (see :func:`track_aus`), drawn from the video's own AU stream
    ``[seed, 5, video]``: the other streams, so every other file, stay as they were before the dataset had AUs."""
    rng = np.random.default_rng([seed, 5, plan.index])
    return {t.name: track_aus(signals[t.name], float(plan.fps), rng) for t in plan.tracks if has_aus(t)}
