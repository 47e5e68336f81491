"""Oracle scores of a synthetic dataset: what a model that sees the generator's clean cues would reach.

The oracle is a linear read-out of the cues the generator drew (face cues as rendered; what the voice carries
while someone speaks), fitted on the train tracks and scored on validation and test with the challenge metrics.
Frames without a face, and silent stretches, are filled from their neighbours exactly as the harness fills
predictions, so the oracle faces the same gaps a real model does. It is a reference ceiling for the learnable
signal, per modality and for both together: a trained system well below it has room to grow; one above it overfits.
"""

from dataclasses import dataclass

import numpy as np

from harness.frames import fill_missing
from harness.metrics import expr_scores, va_scores


@dataclass(frozen=True)
class OracleTrack:
    """One track's labels (as written, invalid markers kept) and its cue features per label line."""

    split: str
    va: np.ndarray | None
    expr: np.ndarray | None
    video: np.ndarray  # (n, 7) face cues, NaN where no face
    audio: np.ndarray  # (n, 2) voice cues, NaN where nobody speaks


def _features(track: OracleTrack, modality: str) -> np.ndarray:
    parts = (
        [track.video] if modality == "video" else [track.audio] if modality == "audio" else [track.video, track.audio]
    )
    return np.concatenate([_filled(part) for part in parts], axis=1)


def _filled(cues: np.ndarray) -> np.ndarray:
    """Gaps filled from neighbours; a track that never shows the cue (no face, never speaks) reads as zeros."""
    return fill_missing(cues) if np.isfinite(cues).any() else np.zeros_like(cues)


def _stack(tracks: list[OracleTrack], task: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
    features = np.concatenate([_features(t, modality) for t in tracks])
    labels = np.concatenate([t.va if task == "va" else t.expr for t in tracks])
    return features, labels


def oracle_scores(tracks: list[OracleTrack], seed: int) -> dict:
    """``{task: {modality: {split: score dict}}}`` for the linear oracle over the clean cues."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    results: dict = {}
    for task in ("va", "expr"):
        labelled = [t for t in tracks if (t.va if task == "va" else t.expr) is not None]
        train = [t for t in labelled if t.split == "train"]
        reason = _unfittable(train, task)
        if reason:
            results[task] = {"unavailable": reason}
            continue
        results[task] = {}
        for modality in ("video", "audio", "audio+video"):
            x, y = _stack(train, task, modality)
            results[task][modality] = {}
            if task == "va":
                keep = ~np.any(y == -5, axis=1)
                model = LinearRegression().fit(x[keep], y[keep])
            else:
                keep = y != -1
                model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
                model.fit(x[keep], y[keep])
            for split in ("validation", "test"):
                held = [t for t in labelled if t.split == split]
                if not held:
                    continue
                hx, hy = _stack(held, task, modality)
                if task == "va":
                    scores = va_scores(np.clip(model.predict(hx), -1, 1), hy)
                    entry = {
                        "score": scores.score,
                        "ccc_valence": scores.ccc_valence,
                        "ccc_arousal": scores.ccc_arousal,
                    }
                else:
                    scores = expr_scores(model.predict(hx).astype(np.int64), hy)
                    entry = {"score": scores.score, "f1_per_class": list(scores.f1_per_class)}
                results[task][modality][split] = {k: _round(v) for k, v in entry.items()}
    return results


def _unfittable(train: list[OracleTrack], task: str) -> str | None:
    """Why no oracle can be fitted on these train tracks (none, or fewer than two classes), else None."""
    if not train:
        return "no train tracks"
    if task == "expr":
        classes = np.unique(np.concatenate([t.expr for t in train]))
        if np.count_nonzero(classes >= 0) < 2:
            return "fewer than two expression classes in train"
    return None


def _round(value):
    return [round(float(v), 4) for v in value] if isinstance(value, list) else round(float(value), 4)
