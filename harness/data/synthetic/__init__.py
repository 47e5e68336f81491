"""A synthetic Aff-Wild2: the exact layout and file formats of the 6th ABAW release, with a learnable signal.

``generate(out, seed, scale)`` writes annotation folders for the three challenges (VA, EXPR and AU detection, whose
labels :mod:`.aus` reads from the drawn face; train/validation), the test track lists and prediction templates, the
test labels in ``synthetic_test_labels/`` (so test predictions can be scored here), raw videos with sound in
``batch1``/``batch2``/``new_vids``, 112×112 aligned face crops with gaps, the true face positions per frame in
``synthetic_faces/``, and ``synthetic_metadata.json`` with the generator's settings and the oracle scores. The
dataset is built in a temporary folder and renamed into place, so a crash never leaves a half-written dataset that a
later run would trust. Scales: ``tiny`` and ``small`` (:mod:`.plan`) and ``affwild2``, the real release's sizes
(:mod:`.release`); ``crops="pool"`` (:mod:`.pool`) makes any of them cheaply, for cost measurement: the same label
files, crops hard-linked to a small pool, short videos.
"""

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from harness.atomic import public_mode, sweep_dead_staging
from harness.cpu import cpu_budget
from harness.data.synthetic import aus, release
from harness.data.synthetic import signals as signal_settings
from harness.data.synthetic.labels import write_test_lists, write_video_labels
from harness.data.synthetic.oracle import OracleTrack, oracle_scores
from harness.data.synthetic.plan import SCALES, TrackPlan, VideoPlan, plan_dataset
from harness.data.synthetic.pool import POOL_FOLDER, VIDEO_SECONDS, PooledVideo, pool_video, render_pool
from harness.data.synthetic.render import FACE_COLUMNS, RenderedVideo, render_video
from harness.errors import DataError

TASKS = ("va", "expr", "au")  # the challenges a synthetic dataset labels
GENERATOR_VERSION = 5  # 5: vocal expression cues in the voice (4: AU detection labels; 3's folders lack them)
METADATA = "synthetic_metadata.json"
CROP_MODES = ("render", "pool")


def generate(
    out: Path,
    seed: int = 0,
    scale: str = "tiny",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    crops: str = "render",
    fraction: float = 1.0,
) -> dict:
    """Write a synthetic Aff-Wild2 to ``out`` (which must not exist yet) and return its metadata.

    ``crops="pool"`` links every crop to a small rendered pool and writes short videos (see ``pool.py``): minutes
    at the ``affwild2`` scale, for cost measurement. ``fraction`` < 1 shrinks the ``affwild2`` scale's track counts.
    """
    out = Path(out)
    scales = (*SCALES, release.SCALE)
    if scale not in scales:
        raise DataError(f"unknown scale {scale!r}; expected one of {', '.join(scales)}")
    if crops not in CROP_MODES:
        raise DataError(f"unknown crops mode {crops!r}; expected one of {', '.join(CROP_MODES)}")
    if fraction != 1.0 and (scale != release.SCALE or not 0 < fraction < 1):
        raise DataError(f"fraction {fraction!r}: only the {release.SCALE} scale shrinks, by a fraction in (0, 1)")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} already exists and is not empty; remove it or choose another folder")
    started = time.perf_counter()
    plans = release.plan_release(seed, fraction) if scale == release.SCALE else plan_dataset(seed, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_dead_staging(out)  # what a killed generation left
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-{os.getpid()}-", dir=out.parent))
    workers = workers or min(2, cpu_budget().cores)
    try:
        if crops == "pool":
            render_pool(staging, seed)
            pooled = _render_all(plans, staging, seed, workers, progress, pool_video)
            write_test_lists(staging, _merged_test_rows([video.test_rows for video in pooled]))
            metadata = _pool_metadata(plans, pooled, seed, scale, fraction)
        else:
            rendered = _render_all(plans, staging, seed, workers, progress, render_video)
            _write_labels(staging, rendered)
            _write_faces(staging, rendered)
            metadata = _metadata(plans, rendered, seed, scale)
        metadata["generation_seconds"] = round(time.perf_counter() - started, 1)
        (staging / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        public_mode(staging, directory=True)
        try:
            if out.exists():
                out.rmdir()
            staging.rename(out)
        except OSError:
            existing = _same_dataset(out, metadata)
            if existing is None:
                raise
            shutil.rmtree(staging, ignore_errors=True)  # another process made this very dataset meanwhile
            return existing
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metadata


def _same_dataset(out: Path, metadata: dict) -> dict | None:
    """The metadata of the dataset at ``out`` when it is the one ``metadata`` describes (generator version, seed,
    scale, crops mode, fraction), else None."""
    try:
        found = json.loads((out / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = all(found.get(key) == metadata.get(key) for key in ("version", "seed", "scale", "crops", "fraction"))
    return found if same else None


def _render_all(plans, root: Path, seed: int, workers: int, progress, job: Callable) -> list:
    """``job(plan, root, seed)`` for every video, in plan order, over ``workers`` processes."""
    results: list = []
    if workers <= 1:
        for plan in plans:
            results.append(job(plan, root, seed))
            if progress:
                progress(len(results), len(plans))
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job, plan, root, seed) for plan in plans]
        for future in futures:
            results.append(future.result())
            if progress:
                progress(len(results), len(plans))
    return results


def _write_labels(root: Path, rendered: list[RenderedVideo]) -> None:
    """Annotation files per split, test labels apart, and the test track lists and templates."""
    write_test_lists(root, _merged_test_rows([write_video_labels(root, v.plan, v.signals, v.aus) for v in rendered]))


def _write_faces(root: Path, rendered: list[RenderedVideo]) -> None:
    """True face box and eye centres per drawn frame, in raw-video pixels, one CSV per video."""
    folder = root / "synthetic_faces"
    folder.mkdir(exist_ok=True)
    for video in rendered:
        lines = [",".join(FACE_COLUMNS)]
        lines += [f"{r[0]},{r[1]}," + ",".join(f"{v:.2f}" for v in r[2:]) for r in video.faces]
        (folder / f"{video.plan.name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _merged_test_rows(per_video: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """The videos' ``{task: {test track: rows}}`` in video order, as the test lists and templates list them."""
    test_rows: dict[str, dict[str, int]] = {"va": {}, "expr": {}, "au": {}}
    for rows_of_video in per_video:
        for task, rows in rows_of_video.items():
            test_rows[task].update(rows)
    return test_rows


def _oracle_tracks(rendered: list[RenderedVideo]) -> list[OracleTrack]:
    tracks = []
    for video in rendered:
        for track in video.plan.tracks:
            signals = video.signals[track.name]
            n = len(signals.va)
            cues = np.where(signals.face[:, None], signals.cues, np.nan)
            heard = _fit_rows(video.heard, n)
            vocal = _fit_rows(video.vocal, n)
            tracks.append(
                OracleTrack(
                    split=video.plan.split,
                    va=signals.va_file if "va" in track.tasks else None,
                    expr=signals.expr_file if "expr" in track.tasks else None,
                    au=video.aus[track.name] if aus.has_aus(track) else None,
                    video=cues,
                    audio=heard,
                    vocal=vocal,
                )
            )
    return tracks


def _fit_rows(values: np.ndarray, n: int) -> np.ndarray:
    if len(values) >= n:
        return values[:n]
    return np.concatenate([values, np.full((n - len(values), values.shape[1]), np.nan)])


def _settings() -> dict:
    """The signal generator's settings, as the metadata records them."""
    settings = {
        name: getattr(signal_settings, name).tolist()
        for name in ("PROTOTYPES", "CLASS_PRIOR", "CLASS_CUES", "VIDEO_NOISE", "SUBJECT_BIAS")
    }
    settings["action_units"] = {
        "names": list(aus.AU_NAMES),
        "thresholds": aus.THRESHOLDS,
        "drawn": {
            name: {"classes": list(classes), "lips_closed": closed} for name, (classes, closed) in aus.DRAWN.items()
        },
        "drawn_seconds": aus.DRAWN_SECONDS,
    }
    settings.update(
        cue_names=list(signal_settings.CUE_NAMES),
        prototype_pull=signal_settings.PROTOTYPE_PULL,
        audio_arousal_noise=signal_settings.AUDIO_AROUSAL_NOISE,
        audio_valence_gain=signal_settings.AUDIO_VALENCE_GAIN,
        audio_valence_noise=signal_settings.AUDIO_VALENCE_NOISE,
    )
    return settings


def _track_entry(track: TrackPlan) -> dict:
    """A track in the metadata: its name, the tasks that label it, whether its face appears late."""
    return {"name": track.name, "tasks": list(track.tasks), "late_start": track.late_start}


def _metadata(plans: tuple[VideoPlan, ...], rendered: list[RenderedVideo], seed: int, scale: str) -> dict:
    videos = [
        {
            "name": p.name,
            "file": f"{p.folder}/{p.name}{p.suffix}",
            "fps": str(p.fps),
            "frames": p.n_frames,
            "label_lines": p.n_labels,
            "audio_rate": p.audio_rate,
            "split": p.split,
            "tracks": [_track_entry(t) for t in p.tracks],
        }
        for p in plans
    ]
    return {
        "generator": "harness synthetic Aff-Wild2",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "scale": scale,
        "tasks": list(TASKS),
        "frames": sum(len(s.va) for v in rendered for s in v.signals.values()),
        "face_images": sum(len(v.faces) for v in rendered),
        "settings": _settings(),
        "oracle": oracle_scores(_oracle_tracks(rendered), seed),
        "videos": videos,
    }


def _pool_metadata(
    plans: tuple[VideoPlan, ...], pooled: list[PooledVideo], seed: int, scale: str, fraction: float
) -> dict:
    """Metadata of a pooled dataset: what it is for, what differs from a rendered one, and its plan."""
    unavailable = {"unavailable": "not computed: pooled crops are not the drawn frames (cost measurement only)"}
    metadata = {
        "generator": "harness synthetic Aff-Wild2",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "scale": scale,
        "tasks": list(TASKS),
        "crops": "pool",
        "purpose": "cost measurement, not learning: crops are hard links to a pool of rendered faces and the videos "
        f"are {VIDEO_SECONDS:g} s clips; the label files are drawn as in a rendered dataset",
        "differences": [
            f"every crop is a hard link to one of the pool crops in {POOL_FOLDER}/, chosen by the frame's expression "
            "class and valence/arousal bin (no per-person motion, noise or occlusion in the pixels)",
            f"videos are {VIDEO_SECONDS:g} s long with the planned fps, size, codec and (silent) sound: their frame "
            "counts differ from the label lines (the lines are the truth)",
            "no synthetic_faces/ (no face truth) and no oracle scores",
        ],
        "frames": sum(p.n_labels * len(p.tracks) for p in plans),
        "face_images": sum(v.face_images for v in pooled),
        "settings": _settings(),
        "oracle": {"va": unavailable, "expr": unavailable, "au": unavailable},
        "videos": [
            {
                "name": v.plan.name,
                "file": f"{v.plan.folder}/{v.plan.name}{v.plan.suffix}",
                "fps": str(v.plan.fps),
                "frames": v.plan.n_frames,
                "container_frames": v.container_frames,
                "label_lines": v.plan.n_labels,
                "audio_rate": v.plan.audio_rate,
                "split": v.plan.split,
                "tracks": [_track_entry(t) for t in v.plan.tracks],
            }
            for v in pooled
        ],
    }
    if fraction != 1.0:
        metadata["fraction"] = fraction
    return metadata
