"""The ``abaw`` command line: argument handling and rendering only; the work is one library call per command.

Errors the harness raises on purpose (:class:`HarnessError`) become one line on stderr and exit code 2; problems
found in data or files exit 1. Progress and messages go to stderr, data and ``--json`` to stdout. Heavy libraries
(torch, timm, transformers) are imported only by the commands that need them.
"""

import dataclasses
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
from harness.tables import Col, dropped_note, fitted_table
from harness.tasks import TASKS, get_task

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
        str,
        typer.Option(
            help="tiny (~13 k frames, for tests and CI), small (~100 k, for demos) or affwild2 (the real release's "
            "660 tracks and ~3 M frames; use with --crops pool)."
        ),
    ] = "tiny",
    crops: Annotated[
        str,
        typer.Option(
            help="render (every crop drawn) or pool (crops hard-linked to a pool, 2 s videos: for cost measurement, "
            "not learning)."
        ),
    ] = "render",
) -> None:
    """Write a synthetic dataset in the exact Aff-Wild2 layout.

    Example: abaw data synth out/syn --seed 1 --scale tiny; abaw data synth /tmp/aw2 --scale affwild2 --crops pool
    """
    from harness.data.synthetic import generate
    from harness.progress import bar

    with bar() as progress:
        job = progress.add_task(f"generating {scale} synthetic Aff-Wild2", total=None)
        metadata = generate(
            out_dir,
            seed=seed,
            scale=scale,
            crops=crops,
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
    out.print(f"dataset {report['root']} (fingerprint {report['fingerprint']})", highlight=False)
    release = report["release"]
    clues = "; ".join(release["evidence"]) or "no release-specific names found"
    out.print(f"release: {release['name']} ({clues})", highlight=False)
    for task, material in report["test_material"].items():
        if material["template"] or material["track_list"]:
            found = (f"{kind.replace('_', ' ')} {material[kind] or 'not found'}" for kind in ("template", "track_list"))
            out.print(f"{task} test material: {', '.join(found)}", highlight=False)
    out.print(table)
    videos = report["videos"]
    fps = ", ".join(f"{rate} fps × {count}" for rate, count in sorted(videos["fps"].items()))
    out.print(f"videos: {videos['probed']} probed of {videos['needed']} needed ({fps})")
    for note in report["notes"]:
        out.print(f"note: {note}", highlight=False)
    for problem in report["problems"]:
        out.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
    out.print("[green]ok[/]" if report["ok"] else f"[red]{len(report['problems'])} problem(s)[/]")


TaskName = StrEnum("TaskName", {name: name for name in TASKS})  # every registered task


class SplitName(StrEnum):
    validation = "validation"
    test = "test"


TaskOption = Annotated[
    TaskName, typer.Option("--task", help=", ".join(f"{name} ({get_task(name).title})" for name in TASKS) + ".")
]
FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="A prediction file in the ABAW format.")]
StrictOption = Annotated[
    bool, typer.Option("--strict", help="Make every warning an error (a quoted or padded header, 4.0 classes).")
]
LenientOption = Annotated[
    bool,
    typer.Option("--lenient-numbers", help="Read EXPR classes written as whole floats (4.0) as integers, warning."),
]


@app.command("score")
@guarded
def score(
    file: FileArgument,
    task: TaskOption,
    data: DataOption = None,
    split: Annotated[
        SplitName, typer.Option(help="validation, or test where test labels exist (the synthetic dataset).")
    ] = SplitName.validation,
    strict: StrictOption = False,
    lenient_numbers: LenientOption = False,
    as_json: JsonOption = False,
) -> None:
    """Score an ABAW-format prediction file against a split's labels, as the organizers do.

    One pooled score over all valid frames of all tracks, with per-dimension CCC, per-class or per-AU F1, the
    video-block bootstrap 95% interval (marked when over fewer than 5 videos) and the worst tracks. The file needs one
    row per label line of every track of the split; a quoted or padded header is read with a warning on stderr.
    Example: abaw score predictions/va_val.txt --task va --json
    """
    from harness.data.affwild2 import Dataset
    from harness.data.root import resolve_root
    from harness.scoring import file_by_track, score_split
    from harness.submission import read_predictions

    labels = Dataset(resolve_root(data)[0]).split(task.value, split.value)
    predictions = read_predictions(file, task.value, strict=strict, lenient_numbers=lenient_numbers)
    result = score_split(labels, file_by_track(predictions, labels))
    for warning in predictions.warnings:
        err.print(f"[yellow]warning:[/] {escape(f'{file}, {warning}')}", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(result | {"warnings": list(predictions.warnings)}))
        return
    _render_score(result)


def _render_score(result: dict) -> None:
    low, high = result["ci95"]
    note = f" — {result['ci95_note']}" if result["ci95_note"] else ""
    out.print(
        f"{result['task']} {result['split']}: score [bold]{result['score']:.4f}[/] (95% video-block interval "
        f"{low:.4f}–{high:.4f}{escape(note)}) over {result['frames']:,} frames of {result['videos']} tracks"
    )
    out.print(get_task(result["task"]).score_line(result))
    per_track = {entry["track"]: entry for entry in result["per_track"]}
    worst = ", ".join(f"{name} {per_track[name]['score']:.3f}" for name in result["worst_tracks"])
    out.print(f"worst tracks: {worst}", highlight=False)


@app.command("validate")
@guarded
def validate(
    file: Annotated[Path | None, typer.Argument(metavar="[FILE]", help="A prediction file in the ABAW format.")] = None,
    task: Annotated[TaskName | None, typer.Option("--task", help=f"{', '.join(TASKS)} (the task of FILE).")] = None,
    data: DataOption = None,
    strict: StrictOption = False,
    lenient_numbers: LenientOption = False,
    as_json: JsonOption = False,
    package: Annotated[
        Path | None, typer.Option("--package", help="A submission folder: check it against its manifest.json.")
    ] = None,
) -> None:
    """Check a test-set prediction file against the test template; exit 0 only for a valid file.

    Checks the header, the row count and order, duplicates, tracks missing or unknown, field counts, finite VA
    values in [-1, 1] and integer classes 0..7, and lists the first problems of each kind with line numbers. A
    header that differs only by quoting or whitespace is a warning (exit 0), as are 4.0 classes with
    --lenient-numbers; --strict makes every warning an error. With --package (no FILE, no --task): every file a
    submission folder's manifest lists, its size, rows and sha256, each valid against its template, and the zip
    holding exactly those files.
    Example: abaw validate submissions/dwf/CVPR_6th_ABAW_VA_test_set.txt --task va --strict; abaw validate
    --package submissions/dwf
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
    report = validate_predictions(file, task.value, template, strict=strict, lenient_numbers=lenient_numbers)
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        out.print(report.render(), highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)


BOTH = ("va", "expr")  # what --task both meant before the registry had more tasks; kept for compatibility
TaskChoice = StrEnum("TaskChoice", {name: name for name in (*TASKS, "both", "all")})


class ProfileName(StrEnum):
    smoke = "smoke"
    paper = "paper"


SystemArgument = Annotated[str, typer.Argument(help="A spec name under systems/ (or a path to a spec file).")]
TaskOption = Annotated[
    TaskChoice,
    typer.Option(
        help=f"{', '.join(TASKS)}, both ({' and '.join(BOTH)}) or all (every registered task); of these, the tasks "
        "the system serves."
    ),
]
ProfileOption = Annotated[
    ProfileName | None, typer.Option(help="smoke (tiny models) or paper (published sizes); default by dataset.")
]


DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="List the nodes, what is stored, the work and an estimate; compute nothing.")
]


def _tasks(choice: TaskChoice) -> list[str]:
    """The tasks of ``--task``: a registered name, ``both`` or ``all``."""
    return {"both": list(BOTH), "all": list(TASKS)}.get(choice.value, [choice.value])


@app.command("systems")
@guarded
def systems(
    profile: Annotated[
        ProfileName, typer.Option(help="The profile whose settings resolve the specs (and their sweeps).")
    ] = ProfileName.paper,
    as_json: JsonOption = False,
) -> None:
    """List what can be run: every spec with its kind, tasks, inputs, sweep and latest scores.

    One row per spec under systems/ (or $ABAW_SYSTEMS); nothing is trained or computed. A score is the latest
    leaderboard row of the system on any dataset and profile (the honest cross-fitted one, marked †, for a system
    fitted on validation; for a sweep, the best variant's). Example: abaw systems --json
    """
    from harness.catalog import list_systems
    from harness.leaderboard import Leaderboard
    from harness.runner import leaderboard_path

    entries = list_systems(profile.value, Leaderboard(leaderboard_path()))
    if as_json:
        print(json.dumps({"profile": profile.value, "systems": [entry.to_dict() for entry in entries]}))
        return
    _render_systems(entries, profile.value)


def _render_systems(entries: list, profile: str) -> None:
    """One row per spec, a score column per registered task that some spec serves; in a narrow terminal the inputs,
    the sweep, then the kind give way to the names."""
    served = [task for task in TASKS if any(task in entry.spec.tasks for entry in entries)] or list(BOTH)
    columns = [Col("system", whole=True), Col("kind", drop=3), Col("tasks"), Col("inputs", drop=1)]
    columns += [Col("sweep", drop=2), *(Col(task) for task in served)]
    rows = [
        [
            escape(entry.spec.name),
            entry.spec.kind,
            ",".join(entry.spec.tasks),
            escape("\n".join(entry.spec.inputs)),
            f"{len(entry.variants)} × {', '.join(entry.swept)}" if entry.swept else "",
            *(_latest_cell(entry, task) for task in served),
        ]
        for entry in entries
    ]
    caption = (
        f"{', '.join(served)}: latest validation score († honest, cross-fitted) and its profile; abaw show SYSTEM for "
        "more"
    )
    table, dropped = fitted_table(
        columns, rows, out.width, title=f"systems ({profile})", caption=caption, caption_justify="left"
    )
    out.print(table)
    if dropped:
        out.print(dropped_note(dropped), highlight=False)


def _latest_cell(entry, task: str) -> str:
    run = entry.best(task)
    if run is None:
        return "" if task in entry.spec.tasks else "-"
    variant = run.system[len(entry.spec.name) :]
    return escape(f"{run.rank_score:.4f}{'†' if run.honest else ''} {run.profile}{' ' + variant if variant else ''}")


@app.command("show")
@guarded
def show(
    system: SystemArgument,
    task: TaskOption = TaskChoice.both,
    data: DataOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show how a system resolves, without running it: settings, input DAG, store keys and status.

    Prints the settings after profile merging, then the nodes in the order abaw run computes them, inputs first,
    each with its store key and whether the store holds it. Nothing is trained or computed; the dataset is resolved
    and fingerprinted as abaw run does (the key includes the fingerprint, and a pretrained spec's weights hash). A
    node is "in store" (a run reuses it), "partial" (a killed run's files, resumed) or "missing".
    Example: abaw show dwf --profile smoke --task va
    """
    from harness.catalog import describe_system
    from harness.data.affwild2 import Dataset
    from harness.data.root import resolve_root
    from harness.runner import default_profile
    from harness.store import Store, default_store_root

    dataset = Dataset(resolve_root(data)[0])
    resolved_profile = profile.value if profile else default_profile(dataset)
    plan = describe_system(system, _tasks(task), dataset, resolved_profile, Store(default_store_root()))
    if as_json:
        print(json.dumps(plan.to_dict()))
        return
    _render_plan(plan)


def _render_plan(plan) -> None:
    """Settings of the system's own nodes (a value that differs between its variants or tasks lists each one), then
    one line per node, inputs first: names, keys and paths are never cut (the terminal wraps a long line)."""
    line = functools.partial(out.print, highlight=False, soft_wrap=True)
    line(escape(f"{plan.system}: profile {plan.profile}, dataset {plan.dataset_root} ({plan.dataset_fingerprint})"))
    own = [node for node in plan.nodes if node.own]
    variants = len(dict.fromkeys(node.name for node in own))
    line(
        "settings"
        + (f" ({variants} variants; a value that differs lists each, in node order):" if variants > 1 else ":")
    )
    for key in own[-1].settings:
        values = list(dict.fromkeys(json.dumps(node.settings.get(key)) for node in own))
        line(escape(f"  {key} = {' | '.join(values)}"))
    line(escape(f"nodes, inputs first (store {plan.store_root}):"))
    colours = {"in store": "green", "partial": "yellow", "missing": "red"}
    for node in plan.nodes:
        inputs = f" ← {', '.join(map(str, node.inputs))}" if node.inputs else ""
        status = f"[{colours[node.status]}]{node.status:<8}[/]"
        line(
            f"  {node.position:>2}  {status}  " + escape(f"{node.name} ({node.task}, {node.kind}){inputs}  {node.key}")
        )


@app.command("run")
@guarded
def run(
    system: SystemArgument,
    task: TaskOption = TaskChoice.both,
    data: DataOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
    dry_run: DryRunOption = False,
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
    if dry_run:
        _print_dry_run(system, _tasks(task), dataset, profile, as_json)
        return
    results = run_system(system, _tasks(task), dataset, profile.value if profile else None)
    main = distributed.is_main()
    distributed.finish()
    if not main:
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
            "peak_memory_mb": r.peak_memory_mb,
            **({"leaderboard_id": r.leaderboard_id, **_summary(r.score)} if r.score else {}),
        }
        for r in results
    ]
    if as_json:
        print(json.dumps({"system": system, "nodes": rows}))
        return
    _render_run(system, rows)


def _render_run(system: str, rows: list[dict]) -> None:
    """One line per node; in a narrow terminal the train seconds, then the store column, give way to the names."""
    columns = [
        Col("system", whole=True),
        Col("task"),
        Col("store", drop=2),
        Col("train s", drop=1),
        Col("score (95% CI)"),
    ]
    cells = [
        [
            escape(row["system"]),
            row["task"],
            "hit" if row["store_hit"] else "computed",
            str(row["train_seconds"]),
            _score_cell(row if "score" in row else None),
        ]
        for row in rows
    ]
    table, dropped = fitted_table(columns, cells, out.width, title=escape(f"abaw run {system}"))
    table.caption = _few_videos_caption(rows)
    out.print(table)
    if dropped:
        out.print(dropped_note(dropped), highlight=False)


def _print_dry_run(system: str, tasks: list[str], dataset, profile, as_json: bool) -> None:
    """``--dry-run``: the nodes in order, stored or not, their work and the time this machine's throughput gives."""
    from harness.cost import describe, dry_run
    from harness.runner import default_profile
    from harness.store import Store, default_store_root

    chosen = profile.value if profile else default_profile(dataset)
    costs = dry_run(system, tasks, dataset, chosen, Store(default_store_root()))
    if as_json:
        print(json.dumps({"system": system, "profile": chosen, "nodes": [dataclasses.asdict(c) for c in costs]}))
        return
    columns = [Col("node", whole=True), Col("task"), Col("kind", drop=1), Col("store"), Col("work"), Col("estimate")]
    cells = []
    for cost in costs:
        work, estimate = describe(cost)
        cells.append([escape(cost.name), cost.task, cost.kind, "hit" if cost.stored else "to compute", work, estimate])
    table, dropped = fitted_table(columns, cells, out.width, title=escape(f"{system} ({chosen}): dry run"))
    out.print(table)
    if dropped:
        out.print(dropped_note(dropped), highlight=False)
    unknown = sum(1 for c in costs if c.seconds is None)
    if unknown:
        err.print(f"{unknown} estimate(s) unknown: no node of that kind was computed on this machine with this store")


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
    """A score result's headline: score, interval, the task's breakdown, frames and videos."""
    parts = tuple(key for task in TASKS for key in get_task(task).breakdown_names)
    keys = ("score", "ci95", "ci95_note", *parts, "frames", "videos")
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
    dry_run: DryRunOption = False,
) -> None:
    """Run what the system lacks, then write, validate and package its test-set prediction files.

    Writes submissions/SYSTEM/ with one ABAW file per task (exactly the template's rows), manifest.json and
    SYSTEM.zip, and prints the validation scores (for fusion: in-sample and the honest cross-fitted one) and, where
    the dataset has test labels (the synthetic one), the test scores. Example: abaw submit dwf --task both
    """
    from harness import distributed
    from harness.runner import submit_system

    dataset = _shared_dataset(data)
    if dry_run:
        _print_dry_run(system, _tasks(task), dataset, profile, as_json)
        return
    done = submit_system(system, _tasks(task), dataset, out_dir, profile.value if profile else None)
    distributed.finish()
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
    _render_submit(summary)


def _render_submit(summary: dict) -> None:
    """The scores as a table, then each written path on a line of its own, never cut or folded by rich (a terminal
    narrower than a path wraps it, and it still copies as one piece)."""
    columns = [Col("task"), Col("validation"), Col("honest (cross-fitted)"), Col("test")]
    rows = [
        [name, *(_score_cell(entry[key]) for key in ("validation", "honest", "test"))]
        for name, entry in summary["tasks"].items()
    ]
    table, _ = fitted_table(columns, rows, out.width, title=escape(f"abaw submit {summary['system']}"))
    scores = [entry[key] for entry in summary["tasks"].values() for key in ("validation", "honest", "test")]
    table.caption = _few_videos_caption([score for score in scores if score])
    out.print(table)
    for name, entry in summary["tasks"].items():
        out.print(f"{name}: {entry['file']}", highlight=False, markup=False, soft_wrap=True)
    out.print("valid files packaged in", highlight=False)
    for path in (summary["zip"], summary["manifest"]):
        out.print(f"  {path}", highlight=False, markup=False, soft_wrap=True)


def _score_cell(score: dict | None) -> str:
    """``score (low–high)``, the interval marked when :func:`harness.resampling.ci_note` says it is not meaningful."""
    if score is None:
        return ""
    from harness.report import FEW_VIDEOS

    mark = f" {FEW_VIDEOS}" if score.get("ci95_note") else ""
    return f"{score['score']:.4f} ({score['ci95'][0]:.3f}–{score['ci95'][1]:.3f}{mark})"


def _few_videos_caption(scores: list[dict]) -> str | None:
    """The footnote of the intervals :func:`_score_cell` marks, one line per distinct note."""
    from harness.report import FEW_VIDEOS

    notes = sorted({score["ci95_note"] for score in scores if score.get("ci95_note")})
    return "\n".join(f"{FEW_VIDEOS} 95% interval {escape(note)}" for note in notes) or None


@app.command("leaderboard")
@guarded
def leaderboard(
    task: Annotated[
        TaskName | None, typer.Option(help="Only this task (default: every task with a recorded run).")
    ] = None,
    as_json: JsonOption = False,
    html: Annotated[Path | None, typer.Option(help="Also write a static HTML report with plots to this file.")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data", help="Dataset whose chance levels to show (default: $ABAW_DATA, else the synthetic one)."
        ),
    ] = None,
) -> None:
    """Rank the recorded systems per task, with 95% intervals and a paired test against the best.

    Below each ranking, the task's chance level on validation (the better of the best constant prediction and
    predictions drawn from the train prior, scored the same way) when the dataset's files are at hand.

    Without --task: every task with a recorded run (every registered task when none has one), and for a system with
    a validation run of each of them on one dataset and profile, the multi-task score, the sum of its task scores
    (7th ABAW: P_VA + P_EXPR + P_AU).

    Example: abaw leaderboard --task va --html leaderboard/report.html
    """
    from harness.chance import leaderboard_chance
    from harness.leaderboard import Leaderboard
    from harness.report import (
        multitask_formula,
        multitask_json,
        multitask_table,
        ranking_json,
        ranking_table,
        task_rankings,
        write_html,
    )
    from harness.runner import leaderboard_path

    board = Leaderboard(leaderboard_path())
    rankings = task_rankings(board, task.value if task else None)
    tasks = list(rankings)
    fingerprints = {entry.run.dataset_fingerprint for entries in rankings.values() for entry in entries}
    found = leaderboard_chance(data, tasks, fingerprints) if fingerprints else None
    chance = found[2] if found else {}
    # the multi-task score sums the tasks shown; only a system with a run of each of them has one
    multitask = board.multitask(tasks) if not task and len(tasks) > 1 else []
    if as_json:
        print(
            json.dumps(
                {name: ranking_json(entries) for name, entries in rankings.items()}
                | ({"multitask": multitask_json(multitask)} if multitask else {})
                | ({"chance": {"dataset_fingerprint": found[0]} | _chance_json(chance)} if found else {})
            )
        )
    else:
        for name, entries in rankings.items():
            out.print(
                ranking_table(entries, title=f"{name} validation", width=out.width)
                if entries
                else f"{name}: no runs recorded yet"
            )
            if name in chance:
                out.print(
                    f"chance level on validation of {escape(found[1])}: {chance[name].describe()}", highlight=False
                )
        if multitask:
            title = f"multi-task validation ({multitask_formula(tasks)})"
            out.print(multitask_table(multitask, title=title, width=out.width))
    if html is not None:
        write_html(html, board, task=task.value if task else None, multitask=tasks)
        err.print(f"wrote {html}")


def _chance_json(levels) -> dict:
    return {task: level.to_dict() for task, level in levels.items()}


@app.command("regress")
@guarded
def regress(
    baselines: Annotated[
        Path,
        typer.Option(
            help="The baselines file (committed), keyed by dataset fingerprint and profile; its sibling "
            "<name>.<cpu family>.json is read instead where one exists for this machine's CPU family."
        ),
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
    exact: Annotated[
        bool,
        typer.Option("--exact", help="Also fail a row whose predictions differ from its baseline's (same machine)."),
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
        exact=exact,
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
        styles = {"ok": "green", "FAIL": "bold red", "error": "bold red", "new": "yellow"}
        columns = [Col("system", whole=True), Col("task"), Col("baseline", drop=2), Col("now")]
        columns += [
            Col("change", drop=1),
            Col("95% low", drop=3),
            Col("chance", drop=4),
            Col("> chance", drop=5),
            Col(""),
        ]
        marks = {True: "[green]yes[/]", False: "[bold red]no[/]", None: "?"}
        cells = [
            [
                escape(row.system),
                row.task,
                number(row.baseline),
                number(row.now) + ("†" if row.ranked_by == "honest_score" else ""),
                number(row.change, True),
                number(row.low) + ("*" if row.interval and row.interval != row.ranked_by else ""),
                number(row.chance),
                marks[row.above_chance] if row.status != "error" else "",
                f"[{styles[row.status]}]{row.status}[/]",
            ]
            for row in report.rows
        ]
        out.print(fitted_table(columns, cells, out.width, title=f"abaw regress ({report.profile})")[0])
        if any(row.ranked_by == "honest_score" for row in report.rows):
            out.print("† the honest (cross-fitted) score of a system fitted on validation, as the leaderboard ranks it")
        out.print("> chance: the low end of the score's 95% interval lies above the task's chance level")
        if any(row.interval and row.interval != row.ranked_by for row in report.rows):
            out.print("* no interval of the honest score recorded: the in-sample score's interval is used")
    for row in report.rows:
        if row.message and row.status in ("FAIL", "error"):
            err.print(f"{escape(row.system)} {row.task}: {escape(row.message)}", highlight=False)
    drift = report.drift
    if drift.findings:
        columns = [Col("system", whole=True), Col("task"), Col("value"), Col("recorded"), Col("re-scored now")]
        columns += [Col("where", drop=1)]
        cells = [
            [
                escape(finding.system),
                finding.task,
                escape(finding.field),
                *("" if v is None else repr(v) for v in (finding.recorded, finding.now)),
                escape(finding.source),
            ]
            for finding in drift.findings
        ]
        out.print(fitted_table(columns, cells, out.width, title="metric drift")[0])
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
    system: Annotated[str, typer.Argument(help="A trained spec name under systems/ (any kind, fusion included).")],
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
    crops: Annotated[
        Path | None,
        typer.Option(help="The video's face crops already cut (00001.jpg, …): no RetinaFace pass."),
    ] = None,
    task: TaskOption = TaskChoice.all,
) -> None:
    """Run a trained system on a video outside the dataset: one CSV row per frame (time, then the values of each
    task the system serves: valence, arousal; expression; AU1..AU26).

    The system and every node it depends on must have been trained (abaw run SYSTEM) on --data with the same
    profile. Every kind predicts through its own code path: static video on the RetinaFace crops (or --crops),
    dynamic and KELM on those embeddings, audio on the file's voice, fusion with its stored weights.
    Example: abaw predict dwf interview.mp4 --out interview.csv
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
        crops=crops,
        tasks=_tasks(task),
    )
    path = result.write_csv(out_file or video.with_suffix(".csv"))
    for note in result.notes:
        err.print(f"note: {escape(note)}", highlight=False)
    err.print(f"wrote {path}: {len(result.times)} frames at {result.fps:.3f} fps, a face in {result.faces}")


if __name__ == "__main__":
    app()
