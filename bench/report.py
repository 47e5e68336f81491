"""Run every benchmark of ``bench/`` and rewrite the goals table of ``docs/benchmarks.md`` (``make bench``).

    python bench/report.py                    # every benchmark, full size (about 35 minutes on 2 cores)
    python bench/report.py --quick            # smaller sizes, for a check that the scripts still run
    python bench/report.py --only fusion kelm # re-run some; the others keep their last figures
    python bench/report.py --render-only      # rewrite the table from docs/bench-results.json

Each script prints its results as JSON on its last line. This script keeps every benchmark's last result with its
date and machine in ``docs/bench-results.json`` and renders DESIGN.md's goals as one table, each row with its
measured figure, whether it is met, the reference measured beside it, the date and the machine. Only the part of
``docs/benchmarks.md`` between the goal markers is rewritten; the hand-written analysis around it stays.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_atomically

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench:goals:begin -->", "<!-- bench:goals:end -->"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # named with the machine when set


@dataclass(frozen=True)
class GoalRow:
    """One line of the goals table."""

    goal: str
    measured: str
    met: bool | None  # None: a figure without a goal
    reference: str = ""


@dataclass(frozen=True)
class Bench:
    """A benchmark script, its arguments (full and quick), and how its JSON result reads as goal rows."""

    name: str
    script: str
    args: tuple[str, ...]
    quick_args: tuple[str, ...]
    rows: Callable[[object], list[GoalRow]]


def measurement_rows(goals: dict[str, str]) -> Callable[[object], list[GoalRow]]:
    """Rows from a list of ``{name, value, unit, goal, reference, reference_value, speedup}`` dicts.

    ``goals`` maps a prefix of the measurement name to the goal's wording; a unit ending in ``/s`` is a rate
    (higher is better; ``s/s``, seconds per second, is not), any other unit a time (lower is better).
    """

    def rows(result: object) -> list[GoalRow]:
        out = []
        for item in result:
            wording = next((text for prefix, text in goals.items() if item["name"].startswith(prefix)), None)
            if wording is None:
                continue
            value, unit, goal = item["value"], item["unit"], item.get("goal")
            higher_is_better = unit.endswith("/s") and unit != "s/s"  # a rate, not seconds per second
            met = None if goal is None else (value >= goal if higher_is_better else value <= goal)
            reference = ""
            if "reference" in item:
                reference = f"{item['reference']}: {item['reference_value']:,} {unit} (ratio {item['speedup']:,}×)"
            out.append(GoalRow(wording, f"{value:,} {unit}", met, reference))
        return out

    return rows


def video_rows(label: str) -> Callable[[object], list[GoalRow]]:
    def rows(r: dict) -> list[GoalRow]:
        measured = f"{r['ratio']:.2f}× ({r['pipeline_images_per_s']} img/s)"
        reference = (
            f"raw forward, {r['backbone']} {r['image_size']} px, batch {r['batch']}, {r['device']}: "
            f"{r['raw_images_per_s']} img/s"
        )
        return [GoalRow(f"extraction pipeline ≥ 0.9× raw forward ({label})", measured, r["ratio"] >= 0.9, reference)]

    return rows


def faces_rows(r: dict) -> list[GoalRow]:
    measured = f"{r['ratio']:.2f}× ({r['pipeline_frames_per_s']} frames/s)"
    reference = (
        f"RetinaFace forward alone, {r['video']} video, detector at {r['detect_size']} px, batch {r['batch']}, "
        f"{r['device']}: {r['raw_frames_per_s']} frames/s"
    )
    return [
        GoalRow(
            "face pipeline (`abaw faces`) ≥ 0.9× the detector's raw forward", measured, r["ratio"] >= 0.9, reference
        )
    ]


def kelm_rows(result: list[dict]) -> list[GoalRow]:
    exact = [r for r in result if r["method"] == "exact"]
    rows = []
    if exact:
        big = max(exact, key=lambda r: r["n"])
        measured = f"exact fit of {big['n']:,} rows: {big['seconds']:.0f} s, {big['peak_mib']:,.0f} MiB"
        rows.append(GoalRow("Kernel ELM exact up to ~20 k rows (refusal above: tested)", measured, big["n"] >= 20_000))
    for n in sorted({r["n"] for r in exact}):
        nystrom = [r for r in result if r["n"] == n and r["method"] == "nystrom"]
        if nystrom:
            best = max(nystrom, key=lambda r: r["landmarks"])
            measured = f"score gap {100 * best['score_gap']:.2f}% at N = {n:,}, M = {best['landmarks']:,}"
            reference = (
                f"exact: {next(r['seconds'] for r in exact if r['n'] == n):.0f} s; Nyström: {best['seconds']:.0f} s"
            )
            rows.append(
                GoalRow("Kernel ELM: Nyström within 1% of exact", measured, best["score_gap"] <= 0.01, reference)
            )
    for r in result:
        if r["method"] == "nystrom" and not any(e["n"] == r["n"] for e in exact):
            measured = f"N = {r['n']:,}, M = {r['landmarks']:,}: {r['seconds']:.0f} s, {r['peak_mib']:,.0f} MiB"
            rows.append(GoalRow("Kernel ELM: Nyström beyond the exact bound", measured, None, f"CCC {r['score']:.3f}"))
    return rows


def rerun_rows(r: dict) -> list[GoalRow]:
    measured = f"{r['rerun_seconds']} s, {100 * r['rerun_hit_share']:.0f}% store hits"
    met = r["rerun_hit_share"] == 1.0 and r["rerun_seconds"] < 60
    reference = f"first run of {r['system']} ({r['task']}, {r['nodes']} nodes): {r['first_seconds']} s"
    return [GoalRow("a re-run of an unchanged system: 100% store hits, seconds", measured, met, reference)]


SCALE_GOALS = {  # phase: (wording, goal in seconds at the largest scale measured)
    "fingerprint_cold": ("harness: discovery + fingerprint ≤ 30 s cold", 30.0),
    "fingerprint_unchanged": ("harness: discovery + fingerprint ≤ 1 s when unchanged", 1.0),
    "score": ("harness: scoring a split + 10⁴ bootstrap ≤ 2 s", 2.0),
    "write_validate": ("harness: writing + validating a 1 M-row test file ≤ 5 s", 5.0),
    "data_check": ("harness: `abaw data check`, every video probed", None),
    "step_table": ("harness: step tables, VA train + validation", None),
    "dwf": ("harness: DWF search, 3 inputs × 2,000 candidates", None),
    "leaderboard": ("harness: leaderboard, 16 runs recorded, ranked, rendered", None),
}


def scale_rows(r: dict) -> list[GoalRow]:
    """The harness's overhead at the largest scale measured, with the smaller scales as the reference."""
    scales = r["scales"]
    largest = max(scales, key=lambda name: scales[name]["label_rows"])
    top = scales[largest]
    size = f"{largest}{' × ' + str(top['fraction']) if 'fraction' in top else ''}, {top['label_rows'] / 1e6:.2f} M rows"
    rows = []
    for phase, (wording, goal) in SCALE_GOALS.items():
        figures = top["phases"][phase]
        smaller = "; ".join(
            f"{name}: {entry['phases'][phase]['seconds']:,} s" for name, entry in scales.items() if name != largest
        )
        measured = f"{figures['seconds']:,} s, {figures['peak_mib']:,} MiB ({size})"
        met = None if goal is None else figures["seconds"] <= goal
        rows.append(GoalRow(wording, measured, met, smaller))
    memory = r["memory"]
    worst = max(memory, key=memory.get)
    rows.append(
        GoalRow(
            "harness: memory linear in frames, constant stated",
            f"≤ {memory[worst]:,} bytes a label row ({worst}, {size})",
            None,
            ", ".join(f"{phase} {value:,}" for phase, value in memory.items() if phase != worst),
        )
    )
    return rows


def suite_rows(r: dict) -> list[GoalRow]:
    measured = f"{r['seconds'] / 60:.1f} min ({r['summary']})"
    return [
        GoalRow(
            "the whole test suite ≤ 10 minutes on 2 CPU cores", measured, r["exit_code"] == 0 and r["seconds"] <= 600
        )
    ]


BENCHES = (
    Bench(
        "metrics",
        "bench_metrics.py",
        (),
        ("--quick",),
        measurement_rows(
            {
                "va_score": "CCC (valence + arousal) over 2.6 M frames ≤ 50 ms",
                "expr_macro_f1": "macro-F1 over 2.6 M frames ≤ 50 ms",
                "va_bootstrap": "10⁴ video-block bootstrap resamples ≤ 1 s (VA)",
                "expr_bootstrap": "10⁴ video-block bootstrap resamples ≤ 1 s (EXPR)",
            }
        ),
    ),
    Bench(
        "fusion",
        "bench_fusion.py",
        (),
        ("--quick",),
        measurement_rows(
            {
                "va_dwf": "VA fusion search ≥ 10⁶ candidates/s",
                "expr_dwf": "EXPR fusion search, 10⁴ candidates over 376 k frames ≤ 60 s",
            }
        ),
    ),
    Bench(
        "audio",
        "bench_audio.py",
        (),
        ("--seconds", "20", "--windows", "8", "--epochs", "1"),
        measurement_rows(
            {
                "audio_seconds_encoded": "audio: each second of audio encoded at most twice",
                "epoch_": "audio: a training epoch on the cached frozen part (no goal)",
            }
        ),
    ),
    Bench(
        "video_paper",
        "bench_video.py",
        ("--backbone", "efficientnet_b1", "--size", "224", "--images", "128", "--batch", "32"),
        ("--backbone", "efficientnet_b1", "--size", "224", "--images", "32", "--batch", "16"),
        video_rows("EfficientNet-B1, 224 px"),
    ),
    Bench(
        "video_smoke",
        "bench_video.py",
        ("--backbone", "test_efficientnet", "--size", "64", "--images", "1024", "--batch", "64", "--resize", "pil"),
        ("--backbone", "test_efficientnet", "--size", "64", "--images", "256", "--batch", "64", "--resize", "pil"),
        video_rows("smoke model, 64 px"),
    ),
    Bench(
        "faces",
        "bench_faces.py",
        ("--frames", "32", "--detect-size", "320", "--batch", "8"),
        ("--frames", "8", "--detect-size", "160", "--batch", "4"),
        faces_rows,
    ),
    Bench(
        "kelm",
        "bench_kelm.py",
        ("--landmarks", "1000", "2000", "3000"),
        ("--quick",),
        kelm_rows,
    ),
    Bench("scale", "bench_scale.py", (), ("--quick",), scale_rows),
    Bench("rerun", "bench_rerun.py", (), (), rerun_rows),
    Bench("suite", "bench_suite.py", (), (), suite_rows),
)


class BenchFailed(RuntimeError):
    """A benchmark script failed or printed no JSON result."""


def run_bench(script: Path, args: tuple[str, ...]) -> object:
    """Run one script in a subprocess and parse the JSON on its last line; errors name the script."""
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, str(script), *args], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchFailed(f"{script.name} exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as error:
        raise BenchFailed(f"{script.name} printed no JSON result on its last line ({error})") from error


def machine() -> str:
    """The machine in words: CPU, cores, memory, GPU and versions."""
    import numpy
    import torch

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = [f"{name}={os.environ[name]}" for name in THREAD_VARIABLES if name in os.environ]
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {memory:.0f} GiB, {gpu}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}"
        + (f"; {', '.join(threads)}" if threads else "")
    )


def render(results: dict[str, dict]) -> str:
    """The goals table (and the machines it was measured on) as markdown, from the stored results."""
    machines: list[str] = []
    lines = [
        "| goal (DESIGN.md) | measured | met | reference, same run | date (load average) | machine |",
        "|---|---|---|---|---|---|",
    ]
    for bench in BENCHES:
        entry = results.get(bench.name)
        if entry is None:
            lines.append(f"| `{bench.script}` | not measured yet | | | | |")
            continue
        if entry["machine"] not in machines:
            machines.append(entry["machine"])
        label = f"M{machines.index(entry['machine']) + 1}"
        size = " (quick)" if entry.get("quick") else ""
        when = entry["date"] + (f" (load {entry['load']:.1f})" if "load" in entry else "")
        for row in bench.rows(entry["result"]):
            met = {True: "yes", False: "**no**", None: "—"}[row.met]
            lines.append(f"| {row.goal} | {row.measured}{size} | {met} | {row.reference} | {when} | {label} |")
    notes = [f"- M{i + 1}: {text}" for i, text in enumerate(machines)]
    return "\n".join([*lines, "", *notes])


def rewrite(document: str, table: str) -> str:
    """Replace what lies between the goal markers (or insert the block before the first section)."""
    block = f"{BEGIN}\n## Goals and measured figures (rewritten by `make bench`)\n\n{table}\n{END}"
    if BEGIN in document and END in document:
        head, rest = document.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    at = document.find("\n## ")
    if at < 0:
        return document.rstrip("\n") + "\n\n" + block + "\n"
    return document[: at + 1] + block + "\n\n" + document[at + 1 :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the scripts' quick sizes")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], help="run only these benchmarks")
    parser.add_argument("--render-only", action="store_true", help="run nothing; rewrite the table from the results")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "bench-results.json")
    args = parser.parse_args()
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    failed = []
    for bench in [] if args.render_only else [b for b in BENCHES if not args.only or b.name in args.only]:
        print(f"bench: {bench.name} ({bench.script})", flush=True)
        started_on, started_machine, load = datetime.date.today().isoformat(), machine(), os.getloadavg()[0]
        try:
            result = run_bench(ROOT / "bench" / bench.script, bench.quick_args if args.quick else bench.args)
        except BenchFailed as error:
            print(f"bench: {bench.name} failed, its last figures are kept: {error}", file=sys.stderr)
            failed.append(bench.name)
            continue
        entry = {"date": started_on, "machine": started_machine, "load": load, "quick": args.quick}
        results[bench.name] = entry | {"result": result}
        write_atomically(args.results, (json.dumps(results, indent=1) + "\n").encode())
    document = args.doc.read_text() if args.doc.is_file() else "# Benchmarks\n"
    write_atomically(args.doc, rewrite(document, render(results)).encode())
    print(render(results))
    if failed:
        sys.exit(f"bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
