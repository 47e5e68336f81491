"""A synthetic Aff-Wild2: the exact layout and file formats of the 6th ABAW release, with a learnable signal.

``generate(out, seed, scale)`` writes annotation folders for both challenges (train/validation), the test track
lists and prediction templates, the test labels in ``synthetic_test_labels/`` (so test predictions can be scored
here), raw videos with sound in ``batch1``/``batch2``/``new_vids``, 112×112 aligned face crops with gaps, the true
face positions per frame in ``synthetic_faces/``, and ``synthetic_metadata.json`` with the generator's settings and
the oracle scores. The dataset is built in a temporary folder and renamed into place, so a crash never leaves a
half-written dataset that a later run would trust.
"""

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from harness.atomic import public_mode
from harness.cpu import cpu_budget
from harness.data.annotations import write_annotation
from harness.data.synthetic import signals as signal_settings
from harness.data.synthetic.oracle import OracleTrack, oracle_scores
from harness.data.synthetic.plan import SCALES, VideoPlan, plan_dataset
from harness.data.synthetic.render import FACE_COLUMNS, RenderedVideo, render_video
from harness.data.templates import write_template
from harness.errors import DataError

GENERATOR_VERSION = 3
ANNOTATION_FOLDER = "6th ABAW Annotations"  # with a space, as the release unpacks
CHALLENGE = {"va": "VA_Estimation_Challenge", "expr": "EXPR_Recognition_Challenge"}
SPLIT_FOLDER = {"train": "Train_Set", "validation": "Validation_Set", "test": "Test_Set"}
TRACK_LIST = {
    "va": "Valence_Arousal_Estimation_Challenge_test_set_release.txt",
    "expr": "Expression_Recognition_Challenge_test_set_release.txt",
}
TEMPLATE = {"va": "CVPR_6th_ABAW_VA_test_set_sample.txt", "expr": "CVPR_6th_ABAW_Expr_test_set_sample.txt"}
METADATA = "synthetic_metadata.json"


def generate(
    out: Path,
    seed: int = 0,
    scale: str = "tiny",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a synthetic Aff-Wild2 to ``out`` (which must not exist yet) and return its metadata."""
    out = Path(out)
    if scale not in SCALES:
        raise DataError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} already exists and is not empty; remove it or choose another folder")
    started = time.perf_counter()
    plans = plan_dataset(seed, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rendered = _render_all(plans, staging, seed, workers or min(2, cpu_budget().cores), progress)
        _write_labels(staging, rendered)
        _write_faces(staging, rendered)
        metadata = _metadata(plans, rendered, seed, scale)
        metadata["generation_seconds"] = round(time.perf_counter() - started, 1)
        (staging / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        public_mode(staging, directory=True)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metadata


def _render_all(plans, root: Path, seed: int, workers: int, progress) -> list[RenderedVideo]:
    results: list[RenderedVideo] = []
    if workers <= 1:
        for plan in plans:
            results.append(render_video(plan, root, seed))
            if progress:
                progress(len(results), len(plans))
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(render_video, plan, root, seed) for plan in plans]
        for future in futures:
            results.append(future.result())
            if progress:
                progress(len(results), len(plans))
    return results


def _write_labels(root: Path, rendered: list[RenderedVideo]) -> None:
    """Annotation files per split, test labels apart, and the test track lists and templates."""
    test_rows: dict[str, dict[str, int]] = {"va": {}, "expr": {}}
    for video in rendered:
        split = video.plan.split
        base = root / "synthetic_test_labels" if split == "test" else root / ANNOTATION_FOLDER
        for track in video.plan.tracks:
            signals = video.signals[track.name]
            for task in track.tasks:
                labels = signals.va_file if task == "va" else signals.expr_file
                write_annotation(base / CHALLENGE[task] / SPLIT_FOLDER[split] / f"{track.name}.txt", task, labels)
                if split == "test":
                    test_rows[task][track.name] = len(labels)
    lists = root / "test_set" / "names_of_videos_in_each_test_set"
    templates = root / "test_set" / "prediction_files_format"
    lists.mkdir(parents=True, exist_ok=True)
    templates.mkdir(parents=True, exist_ok=True)
    for task, rows in test_rows.items():
        (lists / TRACK_LIST[task]).write_text("".join(f"{name}\n" for name in rows), encoding="utf-8")
        write_template(templates / TEMPLATE[task], task, rows)


def _write_faces(root: Path, rendered: list[RenderedVideo]) -> None:
    """True face box and eye centres per drawn frame, in raw-video pixels, one CSV per video."""
    folder = root / "synthetic_faces"
    folder.mkdir(exist_ok=True)
    for video in rendered:
        lines = [",".join(FACE_COLUMNS)]
        lines += [f"{r[0]},{r[1]}," + ",".join(f"{v:.2f}" for v in r[2:]) for r in video.faces]
        (folder / f"{video.plan.name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _oracle_tracks(rendered: list[RenderedVideo]) -> list[OracleTrack]:
    tracks = []
    for video in rendered:
        for track in video.plan.tracks:
            signals = video.signals[track.name]
            n = len(signals.va)
            cues = np.where(signals.face[:, None], signals.cues, np.nan)
            heard = _fit_rows(video.heard, n)
            tracks.append(
                OracleTrack(
                    split=video.plan.split,
                    va=signals.va_file if "va" in track.tasks else None,
                    expr=signals.expr_file if "expr" in track.tasks else None,
                    video=cues,
                    audio=heard,
                )
            )
    return tracks


def _fit_rows(values: np.ndarray, n: int) -> np.ndarray:
    if len(values) >= n:
        return values[:n]
    return np.concatenate([values, np.full((n - len(values), values.shape[1]), np.nan)])


def _metadata(plans: tuple[VideoPlan, ...], rendered: list[RenderedVideo], seed: int, scale: str) -> dict:
    settings = {
        name: getattr(signal_settings, name).tolist()
        for name in ("PROTOTYPES", "CLASS_PRIOR", "CLASS_CUES", "VIDEO_NOISE", "SUBJECT_BIAS")
    }
    settings.update(
        cue_names=list(signal_settings.CUE_NAMES),
        prototype_pull=signal_settings.PROTOTYPE_PULL,
        audio_arousal_noise=signal_settings.AUDIO_AROUSAL_NOISE,
        audio_valence_gain=signal_settings.AUDIO_VALENCE_GAIN,
        audio_valence_noise=signal_settings.AUDIO_VALENCE_NOISE,
    )
    videos = [
        {
            "name": p.name,
            "file": f"{p.folder}/{p.name}{p.suffix}",
            "fps": str(p.fps),
            "frames": p.n_frames,
            "label_lines": p.n_labels,
            "audio_rate": p.audio_rate,
            "split": p.split,
            "tracks": [{"name": t.name, "tasks": list(t.tasks), "late_start": t.late_start} for t in p.tracks],
        }
        for p in plans
    ]
    return {
        "generator": "harness synthetic Aff-Wild2",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "scale": scale,
        "frames": sum(len(s.va) for v in rendered for s in v.signals.values()),
        "face_images": sum(len(v.faces) for v in rendered),
        "settings": settings,
        "oracle": oracle_scores(_oracle_tracks(rendered), seed),
        "videos": videos,
    }
