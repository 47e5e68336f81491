"""The harness's own overhead (everything but model forward/backward) at tiny, small and the real release's size.

    python bench/bench_scale.py                          # tiny, small, affwild2, each made with --crops pool
    python bench/bench_scale.py --quick                  # tiny, and affwild2 at 2% of its tracks
    python bench/bench_scale.py --root affwild2=/tmp/aw2 # measure an existing tree instead of generating one

Each scale's synthetic tree is generated with ``--crops pool`` (crop files hard-linked to a small pool, 2 s
videos: minutes for ~3 M frames) in a temporary folder that is deleted afterwards, unless ``--root SCALE=PATH``
names one. Per scale and phase: wall seconds and peak resident memory above the phase's start (``VmHWM`` reset
through ``/proc/self/clear_refs``; the label arrays loaded before count in the baseline). Phases, in order:

- ``fingerprint_cold``: discovery (``Dataset(root)``) + ``fingerprint()`` with an empty fingerprint cache;
- ``fingerprint_unchanged``: the same on a new ``Dataset`` of the unchanged root (the cache hits);
- ``data_check``: ``abaw data check``'s work (every annotation read, every crop folder listed, every video probed);
- ``labels``: every (task, split) built (annotation files parsed, crop folders listed);
- ``step_table``: VA train + validation step tables (5 Hz) from ``--dim``-d stand-in embeddings per face frame;
- ``functionals``: the kelm kind's window functionals (4 s windows, mean/max/min) over the VA train table;
- ``score``: ``score_split`` with its 10⁴-resample bootstrap, for the largest scored split of each task;
- ``dwf``: one DWF search of 3 inputs (2,000 candidates, the kind's default) per task on validation (AU: per unit
  and threshold);
- ``write_validate``: the VA, EXPR and AU test files written from predictions and validated against the templates;
- ``leaderboard``: 8 runs per task recorded, then every task's ranking (10⁴ resamples) rendered as text and HTML.

Goals (issue 17) at affwild2 size on 2 cores: fingerprint ≤ 30 s cold and ≤ 1 s unchanged; scoring + bootstrap
≤ 2 s; writing + validating a 1 M-row file ≤ 5 s; memory linear in frames with a stated constant.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

SCALES = ("tiny", "small", "affwild2")
STEP_RATE = 5.0
WINDOW_STEPS = 20  # 4 s at 5 Hz, the kelm kind's default
DWF_CANDIDATES = 2000
BOARD_RUNS = 8


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def measured(fn: Callable[[], object]) -> tuple[dict, object]:
    """Run ``fn``; its wall seconds and its peak resident memory above the start, in MiB."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident size
    start_rss = _rss_kib("VmRSS:")
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    peak = max(0, _rss_kib("VmHWM:") - start_rss) / 1024
    return {"seconds": round(seconds, 3), "peak_mib": round(peak, 1)}, value


class StandInEmbeddings:
    """A static video spec's ``emb`` output without a model: ``dim`` floats per face frame, from a small block; its
    ``frames`` output: those face frames."""

    name = "stand_in_video"
    honest = False

    def __init__(self, dataset, task: str, dim: int) -> None:
        self.dataset, self.task = dataset, task
        self.block = np.random.default_rng(0).normal(size=(97, dim)).astype(np.float32)

    def read(self, output: str, split: str, track: str) -> np.ndarray:
        from harness.models.context import FRAMES

        frames = self.dataset.split(self.task, split).face_frames(track)
        return frames if output == FRAMES else self.block[frames % len(self.block)]


def predictions(split, quality: float, seed: int) -> dict[str, np.ndarray]:
    """Per track, hard predictions (the task's problem type) that follow the labels with ``quality`` (test: any
    labels the tree has)."""
    from harness.tasks import get_task

    task = get_task(split.task)
    rng = np.random.default_rng(seed)
    out = {}
    for track in split.tracks:
        labels = track.labels if track.labels is not None else task.invalid_labels(track.n_rows)
        clean = np.where(task.valid(labels).reshape((-1,) + (1,) * (labels.ndim - 1)), labels, 0)
        if task.problem == "regression":
            noisy = np.clip(quality * clean + rng.normal(0, 0.3, clean.shape), -1, 1)
        else:
            noise = rng.integers(0, task.width if task.problem == "multiclass" else 2, clean.shape)
            noisy = np.where(rng.random(clean.shape) < quality, clean, noise)
        out[track.name] = noisy.astype(np.float32 if task.problem == "regression" else np.int64)
    return out


def probabilities(split, quality: float, seed: int) -> np.ndarray:
    """Concatenated ``(frames, width)`` stored outputs of a classification task whose decisions follow the labels
    with ``quality``: class probabilities (EXPR) or unit probabilities (AU)."""
    from harness.tasks import get_task

    task = get_task(split.task)
    hard = np.concatenate(list(predictions(split, quality, seed).values()))
    rng = np.random.default_rng(seed)
    if task.problem == "multilabel":
        return np.clip(0.3 + 0.4 * hard + rng.normal(0, 0.15, hard.shape), 0, 1).astype(np.float32)
    logits = 2.0 * np.eye(task.width, dtype=np.float32)[hard] + rng.normal(0, 1, (len(hard), task.width))
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return (exp / exp.sum(1, keepdims=True)).astype(np.float32)


def measure_scale(root: Path, dim: int, work: Path) -> dict:
    """Every phase on one dataset root; one dict per phase plus the tree's sizes."""
    from harness.data.affwild2 import SPLITS, Dataset
    from harness.data.check import check_dataset
    from harness.data.fingerprint import RACY_SECONDS
    from harness.fusion_math import dirichlet_candidates
    from harness.leaderboard import Leaderboard
    from harness.models.kelm import window_functionals
    from harness.models.step_table import build_table, window_rows, windows
    from harness.report import ranking_table, write_html
    from harness.resampling import track_statistics
    from harness.run_record import RunRecord
    from harness.scoring import score_split
    from harness.submission import write_predictions
    from harness.tasks import TASKS, get_task
    from harness.validation import validate_predictions

    os.environ["ABAW_HOME"] = str(work / "home")  # an empty fingerprint cache
    newest = max(p.stat().st_mtime for p in root.iterdir())
    time.sleep(max(0.0, newest + RACY_SECONDS + 0.5 - time.time()))  # past the racy window, so the cache may hold
    phases: dict[str, dict] = {}
    phases["fingerprint_cold"], fingerprint = measured(lambda: Dataset(root).fingerprint())
    phases["fingerprint_unchanged"], again = measured(lambda: Dataset(root).fingerprint())
    assert again == fingerprint
    phases["data_check"], report = measured(lambda: check_dataset(root))
    dataset = Dataset(root)
    phases["labels"], splits = measured(lambda: {(t, s): dataset.split(t, s) for t in TASKS for s in SPLITS})

    source = StandInEmbeddings(dataset, "va", dim)
    phases["step_table"], tables = measured(
        lambda: [build_table(splits[("va", s)], source, "va", STEP_RATE) for s in ("train", "validation")]
    )

    def functionals(table=tables[0]):
        tracks, starts = windows(table, WINDOW_STEPS, WINDOW_STEPS // 2)
        rows, inside = window_rows(table, tracks, starts, WINDOW_STEPS)
        return window_functionals(table.features, rows, inside, ["mean", "max", "min"])

    phases["functionals"], values = measured(functionals)
    steps, windows_count = int(sum(len(t.features) for t in tables)), len(values)
    del tables, values

    def largest_scored(task: str):
        return max((splits[(task, s)] for s in ("validation", "test") if splits[(task, s)].has_labels), key=_rows)

    score_parts = {}
    for task in TASKS:
        split = largest_scored(task)
        pred = predictions(split, 0.6, 1)
        score_parts[task], _ = measured(lambda split=split, pred=pred: score_split(split, pred, n_resamples=10_000))
        score_parts[task]["rows"] = _rows(split)
        score_parts[task]["split"] = split.name
    phases["score"] = _worst(score_parts)

    dwf_parts = {}
    rng = np.random.default_rng(3)
    for task in TASKS:
        split = splits[(task, "validation")]
        labels = split.labels()
        problem = get_task(task).problem
        if problem == "regression":
            stacked = np.stack([np.concatenate(list(predictions(split, 0.6, s).values())) for s in range(3)])
            search = partial(_va_search, dirichlet_candidates(rng, DWF_CANDIDATES, 3, 2), stacked, labels)
        else:
            stacked = np.stack([probabilities(split, 0.6, s) for s in range(3)])
            width = stacked.shape[2]
            searcher = _expr_search if problem == "multiclass" else _au_search
            search = partial(searcher, dirichlet_candidates(rng, DWF_CANDIDATES, 3, width), stacked, labels)
        dwf_parts[task], _ = measured(search)
        dwf_parts[task]["rows"] = _rows(split)
        del stacked, search
    phases["dwf"] = _worst(dwf_parts)

    file_parts = {}
    for task in TASKS:
        template = dataset.template(task)
        pred = predictions(splits[(task, "test")], 0.6, 2)
        path = work / f"{task}_test.txt"

        def write_and_validate(task=task, template=template, pred=pred, path=path):
            write_predictions(path, task, template, pred)
            report = validate_predictions(path, task, template)
            assert report.ok, report.render()

        file_parts[task], _ = measured(write_and_validate)
        file_parts[task]["rows"] = _rows(splits[(task, "test")])
        path.unlink()
    phases["write_validate"] = _worst(file_parts)

    def board():
        from rich.console import Console

        leaderboard = Leaderboard(work / "board.sqlite")
        for task in TASKS:
            split = splits[(task, "validation")]
            index = split.track_index()
            for run in range(BOARD_RUNS):
                by_track = predictions(split, 0.3 + 0.05 * run, 10 + run)
                pred = np.concatenate([by_track[name] for name in split.names])
                result = score_split(split, by_track, n_resamples=200)
                stats = track_statistics(task, pred, split.labels(), index, len(split.names))
                leaderboard.record(
                    RunRecord.from_scores(
                        f"system{run}", "smoke", f"spec{run}", f"key{run}", fingerprint, result, stats, split.names
                    )
                )
        console = Console(file=io.StringIO(), width=160)
        for task in TASKS:
            console.print(ranking_table(leaderboard.ranking(task), title=f"{task} validation"))
        write_html(work / "board.html", leaderboard)

    phases["leaderboard"], _ = measured(board)
    frames = sum(_rows(split) for split in splits.values())
    return {
        "fingerprint": fingerprint,
        "tracks": {f"{t} {s}": len(splits[(t, s)].tracks) for t in TASKS for s in SPLITS},
        "label_rows": frames,
        "face_images": sum(c.get("face_images", 0) for task in report["splits"].values() for c in task.values()),
        "videos_probed": report["videos"]["probed"],
        "steps": steps,
        "windows": windows_count,
        "dim": dim,
        "score": score_parts,
        "dwf": dwf_parts,
        "write_validate": file_parts,
        "phases": phases,
    }


def _va_search(weights: np.ndarray, inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from harness.fusion_math import va_candidate_scores, va_moments

    return va_candidate_scores(weights, va_moments(inputs, labels))


def _expr_search(weights: np.ndarray, inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    from harness.fusion_math import expr_candidate_scores

    valid = labels >= 0
    return expr_candidate_scores(weights, inputs[:, valid], labels[valid])


def _au_search(weights: np.ndarray, inputs: np.ndarray, labels: np.ndarray) -> tuple:
    from harness.fusion_math import au_best_choices
    from harness.tasks import get_task

    valid = get_task("au").valid(labels)
    return au_best_choices(weights, inputs[:, valid], labels[valid])


def _rows(split) -> int:
    return int(sum(track.n_rows for track in split.tracks))


def _worst(parts: dict[str, dict]) -> dict:
    """The slower of the per-task measurements (its seconds and memory), naming the task."""
    task = max(parts, key=lambda name: parts[name]["seconds"])
    return {"seconds": parts[task]["seconds"], "peak_mib": parts[task]["peak_mib"], "task": task}


def make_tree(scale: str, out: Path, fraction: float) -> tuple[Path, float]:
    """A ``--crops pool`` tree of ``scale``; the path and the generation seconds."""
    from harness.data.synthetic import generate

    started = time.perf_counter()
    generate(out, seed=0, scale=scale, crops="pool", fraction=fraction)
    return out, round(time.perf_counter() - started, 1)


def run(scales: tuple[str, ...], roots: dict[str, Path], dim: int, fraction: float, workdir: Path) -> dict:
    """Every scale in order: generated (or given), measured, and its generated tree removed."""
    results = {}
    for scale in scales:
        work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{scale}-", dir=workdir))
        try:
            if scale in roots:
                root, generation = roots[scale], None
            else:
                shrink = fraction if scale == "affwild2" else 1.0
                root, generation = make_tree(scale, work / "data", shrink)
            entry = measure_scale(root, dim, work)
            entry["generation_seconds"] = generation
            entry["root"] = "given" if scale in roots else "generated (--crops pool)"
            if scale == "affwild2" and fraction != 1.0 and scale not in roots:
                entry["fraction"] = fraction
            results[scale] = entry
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(_lines(scale, results[scale]), flush=True)
    return {"scales": results, "memory": memory_constants(results)}


def memory_constants(results: dict) -> dict:
    """Peak memory per label row of each phase at the largest scale measured (bytes a row, rounded)."""
    largest = max(results.values(), key=lambda entry: entry["label_rows"])
    rows = largest["label_rows"]
    return {
        phase: round(figures["peak_mib"] * 2**20 / rows, 1)
        for phase, figures in largest["phases"].items()
        if figures["peak_mib"] > 0
    }


def _lines(scale: str, entry: dict) -> str:
    head = f"{scale}: {entry['label_rows']:,} label rows, {entry['face_images']:,} crops, generated in "
    head += f"{entry['generation_seconds']} s" if entry["generation_seconds"] is not None else "(given)"
    rows = [head]
    for phase, figures in entry["phases"].items():
        rows.append(f"  {phase:<22} {figures['seconds']:>9.3f} s {figures['peak_mib']:>9.1f} MiB")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", choices=SCALES, default=list(SCALES))
    parser.add_argument("--root", nargs="+", default=[], metavar="SCALE=PATH", help="measure these trees as given")
    parser.add_argument("--dim", type=int, default=256, help="stand-in embedding size of the step tables")
    parser.add_argument("--fraction", type=float, default=1.0, help="affwild2 generated at this share of tracks")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--quick", action="store_true", help="tiny, and affwild2 at 2%% of its tracks")
    args = parser.parse_args()
    if args.quick:
        args.scales, args.fraction = ["tiny", "affwild2"], 0.02
    roots = {}
    for item in args.root:
        scale, _, path = item.partition("=")
        if scale not in SCALES or not path:
            parser.error(f"--root {item!r}: expected SCALE=PATH with SCALE one of {', '.join(SCALES)}")
        roots[scale] = Path(path)
    print(f"bench_scale: numpy {np.__version__}, {os.cpu_count()} CPU(s), stand-in embeddings of {args.dim} floats")
    results = run(tuple(args.scales), roots, args.dim, args.fraction, args.workdir)
    print("memory per label row at the largest scale (bytes):", results["memory"])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
