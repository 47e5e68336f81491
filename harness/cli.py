"""The ``abaw`` command line: argument handling and rendering only; the work is one library call per command.

Errors the harness raises on purpose (:class:`HarnessError`) become one line on stderr and exit code 2; problems
found in data or files exit 1. Progress and messages go to stderr, data and ``--json`` to stdout. Heavy libraries
(torch, timm, transformers) are imported only by the commands that need them.
"""

import functools
import json
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import HarnessError
from harness.tasks import EXPR_CLASSES

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ABAW challenge harness for Aff-Wild2.")
data_app = typer.Typer(no_args_is_help=True, help="Make and inspect datasets in the Aff-Wild2 layout.")
app.add_typer(data_app, name="data")
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable)

DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Dataset root (default: $ABAW_DATA, else the synthetic dataset made on first use)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def guarded(command: F) -> F:
    """Turn a HarnessError into a one-line message and exit code 2 (the single error boundary)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except HarnessError as error:
            err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@data_app.command("synth")
@guarded
def data_synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to create (must not exist or be empty).")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives byte-identical annotation files.")] = 0,
    scale: Annotated[
        str, typer.Option(help="tiny (~13 k frames, for tests and CI) or small (~100 k, for demos).")
    ] = "tiny",
) -> None:
    """Write a synthetic dataset in the exact Aff-Wild2 layout.

    Example: abaw data synth out/syn --seed 1 --scale tiny
    """
    from harness.data.synthetic import generate
    from harness.progress import bar

    with bar() as progress:
        job = progress.add_task(f"generating {scale} synthetic Aff-Wild2", total=None)
        metadata = generate(
            out_dir,
            seed=seed,
            scale=scale,
            progress=lambda done, total: progress.update(job, completed=done, total=total),
        )
    err.print(
        f"wrote {out_dir}: {metadata['frames']} label frames, {metadata['face_images']} face crops, "
        f"{len(metadata['videos'])} videos in {metadata['generation_seconds']} s"
    )
    table = Table("task", "oracle", "split", "score", title="oracle scores (linear read-out of the clean cues)")
    for task, modalities in metadata["oracle"].items():
        if "unavailable" in modalities:
            table.add_row(task, "-", "-", modalities["unavailable"])
            continue
        for modality, splits in modalities.items():
            for split, scores in splits.items():
                table.add_row(task, modality, split, f"{scores['score']:.3f}")
    err.print(table)


@data_app.command("check")
@guarded
def data_check(
    root: Annotated[
        Path | None, typer.Argument(help="Dataset root (default: $ABAW_DATA, else the synthetic one).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Discover and validate a dataset: counts per task and split, videos, and every problem found.

    Exits 1 when there are problems. Label rows that differ from a video's frame count by a few frames are normal
    in Aff-Wild2 and are reported as notes. Example: abaw data check "/data/Aff-Wild2" --json
    """
    from harness.data.check import check_dataset
    from harness.data.root import resolve_root

    report = check_dataset(resolve_root(root)[0])
    if as_json:
        print(json.dumps(report))
    else:
        _render_check(report)
    if not report["ok"]:
        raise typer.Exit(1)


def _render_check(report: dict) -> None:
    table = Table("task", "split", "tracks", "label rows", "valid labels", "face images", "missing faces")
    for task, splits in report["splits"].items():
        for split, counts in splits.items():
            table.add_row(
                task,
                split,
                *(
                    f"{counts[key]:,}"
                    for key in ("tracks", "label_rows", "valid_labels", "face_images", "missing_faces")
                ),
            )
    out.print(f"dataset {report['root']} (fingerprint {report['fingerprint']})")
    out.print(table)
    videos = report["videos"]
    fps = ", ".join(f"{rate} fps × {count}" for rate, count in sorted(videos["fps"].items()))
    out.print(f"videos: {videos['probed']} probed of {videos['needed']} needed ({fps})")
    for note in report["notes"]:
        out.print(f"note: {note}", highlight=False)
    for problem in report["problems"]:
        out.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
    out.print("[green]ok[/]" if report["ok"] else f"[red]{len(report['problems'])} problem(s)[/]")


class TaskName(StrEnum):
    va = "va"
    expr = "expr"


class SplitName(StrEnum):
    validation = "validation"
    test = "test"


TaskOption = Annotated[TaskName, typer.Option("--task", help="va (valence-arousal) or expr (expressions).")]
FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="A prediction file in the ABAW format.")]


@app.command("score")
@guarded
def score(
    file: FileArgument,
    task: TaskOption,
    data: DataOption = None,
    split: Annotated[
        SplitName, typer.Option(help="validation, or test where test labels exist (the synthetic dataset).")
    ] = SplitName.validation,
    as_json: JsonOption = False,
) -> None:
    """Score an ABAW-format prediction file against a split's labels, as the organizers do.

    One pooled score over all valid frames of all tracks, with per-dimension CCC or per-class F1, the video-block
    bootstrap 95% interval and the worst tracks. The file needs one row per label line of every track of the
    split. Example: abaw score predictions/va_val.txt --task va --json
    """
    from harness.data.affwild2 import Dataset
    from harness.data.root import resolve_root
    from harness.scoring import file_by_track, score_split
    from harness.submission import read_predictions

    labels = Dataset(resolve_root(data)[0]).split(task.value, split.value)
    predictions = read_predictions(file, task.value)
    result = score_split(labels, file_by_track(predictions, labels))
    if as_json:
        print(json.dumps(result))
        return
    _render_score(result)


def _render_score(result: dict) -> None:
    low, high = result["ci95"]
    out.print(
        f"{result['task']} {result['split']}: score [bold]{result['score']:.4f}[/] "
        f"(95% video-block interval {low:.4f}–{high:.4f}) over {result['frames']:,} frames of {result['videos']} tracks"
    )
    if result["task"] == "va":
        out.print(f"CCC valence {result['ccc_valence']:.4f}, CCC arousal {result['ccc_arousal']:.4f}")
    else:
        out.print(
            "F1 per class: "
            + ", ".join(f"{name} {f1:.3f}" for name, f1 in zip(EXPR_CLASSES, result["f1_per_class"], strict=True))
        )
    per_track = {entry["track"]: entry for entry in result["per_track"]}
    worst = ", ".join(f"{name} {per_track[name]['score']:.3f}" for name in result["worst_tracks"])
    out.print(f"worst tracks: {worst}", highlight=False)


@app.command("validate")
@guarded
def validate(
    file: Annotated[Path | None, typer.Argument(metavar="[FILE]", help="A prediction file in the ABAW format.")] = None,
    task: Annotated[TaskName | None, typer.Option("--task", help="va or expr (the task of FILE).")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
    package: Annotated[
        Path | None, typer.Option("--package", help="A submission folder: check it against its manifest.json.")
    ] = None,
) -> None:
    """Check a test-set prediction file against the test template; exit 0 only for a valid file.

    Checks the exact header, the row count and order, duplicates, tracks missing or unknown, field counts, finite
    VA values in [-1, 1] and integer classes 0..7, and lists the first problems of each kind with line numbers.
    With --package (no FILE, no --task): every file a submission folder's manifest lists, its size, rows and sha256,
    each valid against its template, and the zip holding exactly those files.
    Example: abaw validate submissions/dwf/CVPR_6th_ABAW_VA_test_set.txt --task va; abaw validate --package
    submissions/dwf
    """
    from harness.data.affwild2 import Dataset
    from harness.data.root import resolve_root
    from harness.validation import validate_predictions

    if package is not None:
        from harness.package_check import validate_package

        dataset = Dataset(resolve_root(data)[0])
        checked = validate_package(package, dataset.template)
        if as_json:
            print(json.dumps(checked.to_dict()))
        else:
            out.print(checked.render(), highlight=False, markup=False)
        if not checked.ok:
            raise typer.Exit(1)
        return
    if file is None or task is None:
        raise HarnessError("abaw validate: give a prediction FILE and --task, or --package FOLDER")
    template = Dataset(resolve_root(data)[0]).template(task.value)
    report = validate_predictions(file, task.value, template)
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        out.print(report.render(), highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)


class TaskChoice(StrEnum):
    va = "va"
    expr = "expr"
    both = "both"


class ProfileName(StrEnum):
    smoke = "smoke"
    paper = "paper"


SystemArgument = Annotated[str, typer.Argument(help="A spec name under systems/ (or a path to a spec file).")]
TaskOption = Annotated[TaskChoice, typer.Option(help="va, expr or both (every task the system serves).")]
ProfileOption = Annotated[
    ProfileName | None, typer.Option(help="smoke (tiny models) or paper (published sizes); default by dataset.")
]


def _tasks(choice: TaskChoice) -> list[str]:
    return ["va", "expr"] if choice == TaskChoice.both else [choice.value]


@app.command("run")
@guarded
def run(
    system: SystemArgument,
    task: TaskOption = TaskChoice.both,
    data: DataOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train what the store lacks, predict every frame, score on validation and record on the leaderboard.

    A re-run of an unchanged system is all store hits (no training, no extraction). The profile defaults to
    smoke on the synthetic dataset and paper on real data. Example: abaw run video_b1 --task both
    Under torchrun every rank extracts its share of the tracks and the video kind trains with DDP; rank 0 reports.
    Example: torchrun --nproc_per_node 4 -m harness.cli run video_b1
    """
    from harness import distributed
    from harness.runner import run_system

    dataset = _shared_dataset(data)
    results = run_system(system, _tasks(task), dataset, profile.value if profile else None)
    if not distributed.is_main():
        return  # under torchrun rank 0 alone reports
    rows = [
        {
            "system": r.plan.name,
            "task": r.plan.task,
            "profile": r.plan.resolved.profile,
            "store_key": r.plan.key,
            "store_hit": r.hit,
            "train_seconds": r.train_seconds,
            "infer_seconds": r.infer_seconds,
            **({"leaderboard_id": r.leaderboard_id, **_summary(r.score)} if r.score else {}),
        }
        for r in results
    ]
    if as_json:
        print(json.dumps({"system": system, "nodes": rows}))
        return
    table = Table("system", "task", "store", "train s", "score (95% CI)", title=f"abaw run {system}")
    for row in rows:
        score = f"{row['score']:.4f} ({row['ci95'][0]:.3f}–{row['ci95'][1]:.3f})" if "score" in row else ""
        table.add_row(
            escape(row["system"]),
            row["task"],
            "hit" if row["store_hit"] else "computed",
            str(row["train_seconds"]),
            score,
        )
    out.print(table)


def _shared_dataset(data: Path | None):
    """The dataset of ``run`` / ``submit``. Under torchrun (``WORLD_SIZE`` > 1) the process group is joined first and
    rank 0 resolves the dataset (generating the default synthetic one if needed) before the other ranks do."""
    from harness import distributed
    from harness.data.affwild2 import Dataset
    from harness.data.root import resolve_root

    distributed.init()
    with distributed.main_first():
        return Dataset(resolve_root(data)[0])


def _summary(score: dict) -> dict:
    keys = ("score", "ci95", "ccc_valence", "ccc_arousal", "f1_per_class", "frames", "videos")
    return {key: score[key] for key in keys if key in score}


@app.command("submit")
@guarded
def submit(
    system: SystemArgument,
    task: TaskOption = TaskChoice.both,
    data: DataOption = None,
    profile: ProfileOption = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder of the packages (one subfolder per system).")] = Path(
        "submissions"
    ),
    as_json: JsonOption = False,
) -> None:
    """Run what the system lacks, then write, validate and package its test-set prediction files.

    Writes submissions/SYSTEM/ with one ABAW file per task (exactly the template's rows), manifest.json and
    SYSTEM.zip, and prints the validation scores (for fusion: in-sample and the honest cross-fitted one) and, where
    the dataset has test labels (the synthetic one), the test scores. Example: abaw submit dwf --task both
    """
    from harness.runner import submit_system

    dataset = _shared_dataset(data)
    done = submit_system(system, _tasks(task), dataset, out_dir, profile.value if profile else None)
    if done is None:
        return  # under torchrun rank 0 alone writes, packages and reports
    summary = {
        "system": system,
        "folder": str(done.folder),
        "zip": str(done.package.zip_path),
        "manifest": str(done.package.manifest_path),
        "tasks": {
            name: {
                "file": str(path),
                "validation": _summary(done.validation[name]),
                "honest": _summary(done.honest[name]) if done.honest[name] else None,
                "test": _summary(done.test[name]) if name in done.test else None,
            }
            for name, path in done.files.items()
        },
    }
    if as_json:
        print(json.dumps(summary))
        return
    table = Table("task", "file", "validation", "honest (cross-fitted)", "test", title=f"abaw submit {system}")
    for name, entry in summary["tasks"].items():
        cells = [_score_cell(entry[key]) for key in ("validation", "honest", "test")]
        table.add_row(name, entry["file"], *cells)
    out.print(table)
    out.print(f"valid files packaged in {done.package.zip_path} with {done.package.manifest_path}", highlight=False)


def _score_cell(score: dict | None) -> str:
    return "" if score is None else f"{score['score']:.4f} ({score['ci95'][0]:.3f}–{score['ci95'][1]:.3f})"


@app.command("leaderboard")
@guarded
def leaderboard(
    task: Annotated[TaskName | None, typer.Option(help="Only this task (default: both).")] = None,
    as_json: JsonOption = False,
    html: Annotated[Path | None, typer.Option(help="Also write a static HTML report with plots to this file.")] = None,
) -> None:
    """Rank the recorded systems per task, with 95% intervals and a paired test against the best.

    Example: abaw leaderboard --task va --html leaderboard/report.html
    """
    from harness.leaderboard import Leaderboard
    from harness.report import ranking_json, ranking_table, write_html
    from harness.runner import leaderboard_path

    board = Leaderboard(leaderboard_path())
    tasks = [task.value] if task else ["va", "expr"]
    rankings = {name: board.ranking(name) for name in tasks}
    if as_json:
        print(json.dumps({name: ranking_json(entries) for name, entries in rankings.items()}))
    else:
        for name, entries in rankings.items():
            out.print(
                ranking_table(entries, title=f"{name} validation") if entries else f"{name}: no runs recorded yet"
            )
    if html is not None:
        write_html(html, board, task=task.value if task else None)
        err.print(f"wrote {html}")


@app.command("regress")
@guarded
def regress(
    baselines: Annotated[
        Path, typer.Option(help="The baselines file (committed), keyed by dataset fingerprint and profile.")
    ] = Path("leaderboard/baselines.json"),
    update: Annotated[
        bool, typer.Option("--update", help="Rewrite this dataset's and profile's baselines with the scores now.")
    ] = False,
    data: DataOption = None,
    profile: ProfileOption = None,
    systems: Annotated[
        str | None, typer.Option(help="Comma-separated specs or variants to run (default: every spec in systems/).")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="With --update: the tolerance to write (default: keep each entry's, 0.02 new).")
    ] = None,
    drift_only: Annotated[
        bool, typer.Option("--drift-only", help="Only re-score recorded runs' stored predictions (no training).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Fail when a validation score drops below its baseline, or when the metric code drifts.

    First re-scores the stored predictions of the runs recorded on this dataset with today's metric code (a change
    beyond a relative 1e-9 is drift). Then runs the systems (reusing the store), compares each score the leaderboard
    ranks by (the honest one for fusion) with baseline - tolerance, and prints the table. Exits 1 on a drop, on
    drift, or when no baseline matched this dataset and profile; --update writes the file instead. Example: abaw
    regress --systems video_b1,kelm
    """
    from harness.data.affwild2 import Dataset
    from harness.data.root import resolve_root
    from harness.regress import parse_systems
    from harness.regress import regress as run_regress

    dataset = Dataset(resolve_root(data)[0])
    report = run_regress(
        dataset,
        profile.value if profile else None,
        parse_systems(systems),
        baselines,
        update=update,
        tolerance=tolerance,
        drift_only=drift_only,
    )
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        _render_regress(report)
    if not report.ok:
        raise typer.Exit(1)


def _render_regress(report) -> None:
    def number(value: float | None, signed: bool = False) -> str:
        return "" if value is None else f"{value:+.4f}" if signed else f"{value:.4f}"

    if report.rows:
        table = Table("system", "task", "baseline", "now", "change", "", title=f"abaw regress ({report.profile})")
        styles = {"ok": "green", "FAIL": "bold red", "error": "bold red", "new": "yellow"}
        for row in report.rows:
            now = number(row.now) + ("†" if row.ranked_by == "honest_score" else "")
            status = f"[{styles[row.status]}]{row.status}[/]"
            table.add_row(escape(row.system), row.task, number(row.baseline), now, number(row.change, True), status)
        out.print(table)
        if any(row.ranked_by == "honest_score" for row in report.rows):
            out.print("† the honest (cross-fitted) score of a system fitted on validation, as the leaderboard ranks it")
    for row in report.rows:
        if row.message and row.status in ("FAIL", "error"):
            err.print(f"{escape(row.system)} {row.task}: {escape(row.message)}", highlight=False)
    drift = report.drift
    if drift.findings:
        table = Table("system", "task", "value", "recorded", "re-scored now", "where", title="metric drift")
        for finding in drift.findings:
            cells = ("" if v is None else repr(v) for v in (finding.recorded, finding.now))
            table.add_row(escape(finding.system), finding.task, escape(finding.field), *cells, escape(finding.source))
        out.print(table)
    for note in [*drift.notes, *report.notes]:
        err.print(f"note: {escape(note)}", highlight=False)
    summary = f"drift: {drift.checked} recorded run(s) re-scored, {len(drift.findings)} value(s) drifted"
    if not report.drift_only:
        summary += f"; {report.compared} score(s) compared, {len(report.failed)} below baseline or failed"
    verdict = "[green]ok[/]" if report.ok else "[bold red]FAIL[/]"
    out.print(f"{verdict}: {summary}" + (f"; wrote {report.baselines}" if report.updated else ""), highlight=False)


@app.command("faces")
@guarded
def faces(
    data: DataOption = None,
    size: Annotated[int, typer.Option(help="Side of the square crops in pixels.")] = 224,
    margin: Annotated[float, typer.Option(help="Crop side over the face box's height.")] = 1.3,
    detect_size: Annotated[int, typer.Option(help="Longer side of the frame fed to the detector.")] = 640,
    tracks: Annotated[
        list[str] | None, typer.Option("--tracks", help="Only these tracks (repeat, or comma-separated).")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="RetinaFace weights (default: $DEEPFACE_HOME/.deepface/weights/retinaface.pth).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Detect faces in every raw video frame with RetinaFace and write eye-aligned crops into the store.

    Crops land in the store as cropped_aligned/<track>/<frame:05d>.jpg; a frame without a face reuses the track's
    previous face; finished tracks are kept, so a killed run resumes. Example: abaw faces --size 224 --tracks video3
    """
    from harness.data.affwild2 import Dataset
    from harness.data.root import resolve_root
    from harness.faces.extract import FaceSettings, extract_dataset
    from harness.progress import bar
    from harness.store import default_store_root

    dataset = Dataset(resolve_root(data)[0])
    wanted = [name.strip() for entry in tracks or [] for name in entry.split(",") if name.strip()] or None
    settings = FaceSettings(size=size, margin=margin, detect_size=detect_size)
    with bar() as progress:
        job = progress.add_task("RetinaFace: frames", total=None)
        run = extract_dataset(
            dataset,
            default_store_root(),
            settings,
            weights,
            wanted,
            progress=lambda done, total: progress.update(job, completed=done, total=total),
        )
    summary = {
        "root": str(run.root),
        "computed": [{k: v for k, v in vars(t).items() if k != "crop_frames"} for t in run.computed],
        "already_done": sorted(run.reused),
        "notes": run.notes,
    }
    if as_json:
        print(json.dumps(summary))
        return
    table = Table("track", "frames", "crops", "detected", "reused", "ambiguous", title=f"abaw faces → {run.root}")
    for entry in summary["computed"]:
        table.add_row(
            escape(entry["track"]),
            *(str(entry[k]) for k in ("frames", "crops", "detected", "reused", "ambiguous")),
        )
    out.print(table)
    out.print(f"{len(run.reused)} track(s) already done", highlight=False)
    for note in run.notes:
        err.print(f"note: {escape(note)}", highlight=False)


class Side(StrEnum):
    left = "left"
    right = "right"


@app.command("predict")
@guarded
def predict(
    system: Annotated[str, typer.Argument(help="A trained spec name under systems/ (static video kinds).")],
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="A video file (.mp4, .avi, …) of one person.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="CSV to write (default: VIDEO with .csv beside it).")
    ] = None,
    data: DataOption = None,
    profile: Annotated[
        ProfileName | None, typer.Option(help="The profile the system was trained with; default by dataset.")
    ] = None,
    side: Annotated[Side | None, typer.Option(help="With two people: the left or right one.")] = None,
    detect_size: Annotated[int, typer.Option(help="Longer side of the frame fed to the detector.")] = 640,
    weights: Annotated[Path | None, typer.Option(help="RetinaFace weights file (default as abaw faces).")] = None,
) -> None:
    """Run a trained system on a video outside the dataset: one CSV row per frame (time, valence, arousal,
    expression).

    The system must have been trained (abaw run SYSTEM) on --data with the same profile. Supports the static video
    kind. Example: abaw predict video_b1 interview.mp4 --out interview.csv
    """
    from harness.data.affwild2 import Dataset
    from harness.data.root import resolve_root
    from harness.predict import predict_video

    dataset = Dataset(resolve_root(data)[0])
    result = predict_video(
        system,
        video,
        dataset,
        profile.value if profile else None,
        weights=weights,
        side=side.value if side else None,
        detect_size=detect_size,
    )
    path = result.write_csv(out_file or video.with_suffix(".csv"))
    for note in result.notes:
        err.print(f"note: {escape(note)}", highlight=False)
    err.print(f"wrote {path}: {len(result.times)} frames at {result.fps:.3f} fps, a face in {result.faces}")


if __name__ == "__main__":
    app()
