"""Oracle scores of a synthetic dataset: what a model that sees the generator's clean cues would reach.

The oracle is a linear read-out of the cues the generator drew (face cues as rendered; the valence/arousal the voice
carries while someone speaks, and the expression cues of :func:`.vocal.vocal_cues`: which class's voice quality or
nonverbal event is heard, from generator version 5 on), fitted on the train tracks and scored on validation and
test with the challenge metrics. Frames without a face, and silent stretches, are filled from their neighbours
exactly as the harness fills predictions, so the oracle faces the same gaps a real model does. It is a reference
ceiling for the learnable signal, per modality and for both together: a trained system well below it has room to
grow; one above it overfits.

Validation scores on ``tiny`` (seed 0) before and after the voice's expression cues (generator 4 -> 5): EXPR audio
0.165 -> 0.733, audio + video 0.774 -> 0.923 (video 0.893); VA audio 0.468 -> 0.584, audio + video 0.811 -> 0.824
(video 0.727); AU audio 0.310 -> 0.614, audio + video 0.763 -> 0.786 (video 0.762).

For AU detection the read-out is one logistic regression per AU whose decision threshold is the one with the best
F1 on train; the score is the challenge's: the mean over the 12 AUs of each AU's binary F1, pooled over the valid
frames of the split (the task's own metric).
"""

from dataclasses import dataclass

import numpy as np

from harness.data.synthetic.aus import AU_INVALID, AU_NAMES
from harness.frames import fill_missing
from harness.metrics import task_scores
from harness.tasks import get_task

MODALITIES = ("video", "audio", "audio+video")
THRESHOLD_GRID = np.linspace(0.05, 0.95, 19)  # decision thresholds an AU read-out chooses among, on train


@dataclass(frozen=True)
class OracleTrack:
    """One track's labels (as written, invalid markers kept) and its cue features per label line."""

    split: str
    va: np.ndarray | None
    expr: np.ndarray | None
    au: np.ndarray | None  # (n, 12) 0/1 per AU, rows of -1 where invalid
    video: np.ndarray  # (n, 7) face cues, NaN where no face
    audio: np.ndarray  # (n, 2) valence/arousal the voice carries, NaN where nobody speaks
    vocal: np.ndarray  # (n, 7) expression cues the voice carries (vocal.vocal_cues), per non-neutral class


def _features(track: OracleTrack, modality: str) -> np.ndarray:
    voice = [track.audio, track.vocal]
    parts = [track.video] if modality == "video" else voice if modality == "audio" else [track.video, *voice]
    return np.concatenate([_filled(part) for part in parts], axis=1)


def _filled(cues: np.ndarray) -> np.ndarray:
    """Gaps filled from neighbours; a track that never shows the cue (no face, never speaks) reads as zeros."""
    return fill_missing(cues) if np.isfinite(cues).any() else np.zeros_like(cues)


def _stack(tracks: list[OracleTrack], task: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
    features = np.concatenate([_features(t, modality) for t in tracks])
    labels = np.concatenate([getattr(t, task) for t in tracks])
    return features, labels


def oracle_scores(tracks: list[OracleTrack], seed: int) -> dict:
    """``{task: {modality: {split: score dict}}}`` for the linear oracle over the clean cues."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    results: dict = {}
    for task in ("va", "expr"):
        labelled = [t for t in tracks if getattr(t, task) is not None]
        train = [t for t in labelled if t.split == "train"]
        reason = _unfittable(train, task)
        if reason:
            results[task] = {"unavailable": reason}
            continue
        results[task] = {}
        definition = get_task(task)
        regression = definition.problem == "regression"
        for modality in MODALITIES:
            x, y = _stack(train, task, modality)
            results[task][modality] = {}
            keep = definition.valid(y)
            if regression:
                model = LinearRegression()
            else:
                model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
            model.fit(x[keep], y[keep])
            for split in ("validation", "test"):
                held = [t for t in labelled if t.split == split]
                if not held:
                    continue
                hx, hy = _stack(held, task, modality)
                raw = model.predict(hx)
                scores = task_scores(task, definition.clip_scores(raw) if regression else raw.astype(np.int64), hy)
                entry = {"score": scores.score, **scores.breakdown.to_dict()}
                results[task][modality][split] = {k: _round(v) for k, v in entry.items()}
    results["au"] = _au_oracle(tracks, seed)
    return results


def _au_oracle(tracks: list[OracleTrack], seed: int) -> dict:
    """``{modality: {split: {score, f1_per_au}}}``: one thresholded logistic read-out per AU, fitted on train."""
    labelled = [t for t in tracks if t.au is not None]
    train = [t for t in labelled if t.split == "train"]
    if not train:
        return {"unavailable": "no train tracks"}
    results: dict = {}
    for modality in MODALITIES:
        x, y = _stack(train, "au", modality)
        keep = _au_valid(y)
        detectors = [_fit_detector(x[keep], y[keep, column], seed) for column in range(len(AU_NAMES))]
        results[modality] = {}
        for split in ("validation", "test"):
            held = [t for t in labelled if t.split == split]
            if not held:
                continue
            hx, hy = _stack(held, "au", modality)
            scores = task_scores("au", np.stack([detect(hx) for detect in detectors], axis=1), hy)
            results[modality][split] = {"score": _round(scores.score), "f1_per_au": _round(list(scores.f1_per_au))}
    return results


def _fit_detector(x: np.ndarray, y: np.ndarray, seed: int):
    """A function from features to 0/1 for one AU: a logistic regression at its best-F1 threshold on train, or the
    one value train shows when it never (or always) has the AU."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y)) < 2:
        value = int(y[0]) if len(y) else 0
        return lambda features: np.full(len(features), value, dtype=np.int8)
    model = LogisticRegression(max_iter=2000, random_state=seed).fit(x, y)
    scores = model.predict_proba(x)[:, 1]
    f1 = [_binary_f1(scores >= threshold, y == 1) for threshold in THRESHOLD_GRID]
    threshold = THRESHOLD_GRID[int(np.argmax(f1))]
    return lambda features: (model.predict_proba(features)[:, 1] >= threshold).astype(np.int8)


def _binary_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = int(np.count_nonzero(pred & truth))
    wrong = int(np.count_nonzero(pred ^ truth))
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def _au_valid(labels: np.ndarray) -> np.ndarray:
    return ~np.any(labels == AU_INVALID, axis=1)


def _unfittable(train: list[OracleTrack], task: str) -> str | None:
    """Why no oracle can be fitted on these train tracks (none, or fewer than two classes), else None."""
    if not train:
        return "no train tracks"
    if get_task(task).problem == "multiclass":
        classes = np.unique(np.concatenate([t.expr for t in train]))
        if np.count_nonzero(classes >= 0) < 2:
            return "fewer than two expression classes in train"
    return None


def _round(value):
    return [round(float(v), 4) for v in value] if isinstance(value, list) else round(float(value), 4)
