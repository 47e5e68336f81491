"""`make mutation`: apply realistic breaks to the code one at a time and report whether the guard catches each.

A break is a literal source edit (``old`` -> ``new``) on one named file. For each, on a scratch copy of the tree
(the tracked and untracked-but-not-ignored files, so uncommitted work counts), this runs ``abaw regress --systems
<affected>`` and the focused test files, and records whether each failed (caught) or passed (blind).

Cheap by construction:

- one synthetic dataset (``tiny``, the default generator) for everything, generated once under ``--work``;
- one clean ``abaw regress --update`` of the chosen breaks' systems into a reference store, leaderboard and
  baselines file (cached: a later run only re-scores, and trains what new systems need);
- per break a hard-linked copy of the reference store (writes are atomic renames, so the reference stays intact)
  minus the nodes the break can affect: every node of the kinds the break names, every node downstream of one, and
  the shared caches it names (the audio kind's frozen features). Store keys do not include code, so these are
  exactly the nodes that must be recomputed.
- ``--control`` first recomputes the same nodes per system without any edit: it must pass, or "caught" could be
  run-to-run noise.

Usage: ``python bench/mutation.py [--only NAME ...] [--list] [--work DIR] [--no-tests]``. Results accumulate in
``<work>/results.json`` (a later ``--only`` run replaces that break's row); the table is printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORK = Path(os.environ.get("TMPDIR", "/tmp")) / "abaw-mutation"
PROFILE = "smoke"
BASELINES = "guarded.json"  # the reference's baselines file, in <work>/reference/


@dataclass(frozen=True)
class Break:
    """One deliberate bug: replace ``old`` (which occurs exactly once) by ``new`` in ``path``."""

    name: str
    what: str
    path: str  # relative to the repository root
    old: str
    new: str
    systems: tuple[str, ...]  # what `abaw regress --systems` runs
    kinds: tuple[str, ...]  # the kinds whose nodes the break changes (they and everything downstream are recomputed)
    tests: tuple[str, ...]  # the focused test files
    caches: tuple[str, ...] = ()  # shared cache nodes the break changes, by store folder prefix (dropped too)


BREAKS: tuple[Break, ...] = (
    Break(
        "frame_off_by_one",
        "face-frame embeddings placed one frame late on the step grid (frame alignment)",
        "harness/models/step_table.py",
        "resample_to_steps(embeddings, frames, fps, total, rate)",
        "resample_to_steps(embeddings, frames + 1, fps, total, rate)",
        ("kelm",),
        ("kelm", "dynamic"),
        ("tests/test_temporal.py",),
    ),
    Break(
        "va_swapped",
        "valence and arousal swapped in the closed-form kinds' VA outputs (kelm, fusion)",
        "harness/tasks/va.py",
        "return np.clip(scores, -1.0, 1.0).astype(np.float32)",
        "return np.clip(scores[:, ::-1], -1.0, 1.0).astype(np.float32)",
        ("kelm",),
        ("kelm", "dwf", "rf"),
        ("tests/test_kelm.py",),
    ),
    Break(
        "labels_shifted_1s",
        "each track's step labels shifted by one second (windowed kinds' training targets)",
        "harness/models/step_table.py",
        "rows = step_rows(total, rate, fps, track.n_rows)",
        "rows = np.roll(step_rows(total, rate, fps, track.n_rows), -round(rate))",
        ("kelm",),
        ("kelm", "dynamic"),
        ("tests/test_temporal.py",),
    ),
    Break(
        "audio_offset_1s",
        "each track's audio taken one second late against its video frames (its first second dropped)",
        "harness/models/audio.py",
        "samples = samples_for_frames(audio, n_rows, fps)",
        "samples = samples_for_frames(audio, n_rows, fps)[SAMPLE_RATE:]",
        ("audio_v1",),
        ("audio",),
        ("tests/test_audio_kind.py",),
        ("cache-audio-frozen-",),  # the frozen encoder's features of each window are cached across audio nodes
    ),
    Break(
        "fusion_weights_unnormalised",
        "DWF candidate weight columns scaled to a largest weight of 1 instead of a sum of 1",
        "harness/fusion_math.py",
        "return np.ascontiguousarray(draws.transpose(0, 2, 1))",
        "return np.ascontiguousarray((draws / draws.max(axis=2, keepdims=True)).transpose(0, 2, 1))",
        ("dwf",),
        ("dwf",),
        ("tests/test_fusion.py",),
    ),
    Break(
        "expr_order_rotated_in_writer",
        "the submission writer writes EXPR class c as c + 1 (class order rotated)",
        "harness/tasks/expr.py",
        'return "".join(map("{},{}\\n".format, locations, rows.tolist()))',
        'return "".join(map("{},{}\\n".format, locations, ((rows + 1) % K).tolist()))',
        ("kelm",),
        (),
        ("tests/test_submission.py",),
    ),
    Break(
        "validation_own_normalisation",
        "the dynamic kind normalises each split with its own min/max instead of the training split's",
        "harness/models/temporal.py",
        "features = torch.from_numpy(normalise(table, self.settings.normalisation, self.shift_, self.scale_)).to(on)",
        "features = torch.from_numpy(normalise(table, self.settings.normalisation, "
        "*normalisation(table, self.settings.normalisation))).to(on)",
        ("dynamic_b1",),
        ("dynamic",),
        ("tests/test_temporal.py",),
    ),
    Break(
        "early_stop_last_epoch",
        "early stopping keeps the last epoch's weights instead of the best epoch's",
        "harness/models/training.py",
        "            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}\n",
        "        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}\n",
        ("dynamic_b1",),
        ("dynamic",),
        ("tests/test_temporal.py",),
    ),
    Break(
        "au_threshold",
        "AU decision threshold 0.25 instead of 0.5",
        "harness/tasks/au.py",
        "THRESHOLD = 0.5\n",
        "THRESHOLD = 0.25\n",
        ("kelm",),
        ("kelm",),
        ("tests/test_kelm.py",),  # the kelm kind's AU decision at 0.5
    ),
    Break(
        "video_frame_off_by_one",
        "the video kind writes each face frame's output on the next label line",
        "harness/models/video.py",
        "values[frames[inside] - 1] = per_face[inside]",
        "values[np.minimum(frames[inside], n_rows - 1)] = per_face[inside]",
        ("video_b1",),
        ("video",),
        ("tests/test_video_model.py",),
    ),
)


@dataclass
class Outcome:
    """What one break did: ``tests`` / ``regress`` are True (caught: the check failed), False (passed: blind) or
    None (not run); ``detail`` says why, e.g. the first failing row."""

    name: str
    tests: bool | None
    regress: bool | None
    seconds: float
    detail: str = ""


# ----------------------------------------------------------------------------------------------- pure parts


def controls(breaks: Sequence[Break]) -> list[Break]:
    """One control per system of ``breaks``: no edit, the same nodes dropped and recomputed from the clean tree. It
    must pass, or a "caught" break may be run-to-run noise rather than the break."""
    kinds: dict[str, set[str]] = {}
    for brk in breaks:
        for system in brk.systems:
            kinds.setdefault(system, set()).update(brk.kinds)
    return [
        Break(
            f"control_{system}",
            f"no edit; {system}'s affected nodes recomputed",
            "",
            "",
            "",
            (system,),
            tuple(sorted(k)),
            (),
        )
        for system, k in sorted(kinds.items())
        if k
    ]


def snippet_problems(root: Path, breaks: Iterable[Break] = BREAKS) -> list[str]:
    """Breaks whose ``old`` text does not occur exactly once in their file under ``root`` (the list has rotted)."""
    problems = []
    for brk in breaks:
        path = root / brk.path
        if not path.is_file():
            problems.append(f"{brk.name}: {brk.path} does not exist")
            continue
        count = path.read_text(encoding="utf-8").count(brk.old)
        if count != 1:
            problems.append(f"{brk.name}: {brk.path} holds its old snippet {count} times (expected once): {brk.old!r}")
    return problems


def apply(root: Path, brk: Break) -> None:
    """Edit ``root/brk.path`` in place: ``old`` -> ``new`` (it must occur exactly once)."""
    path = root / brk.path
    text = path.read_text(encoding="utf-8")
    if text.count(brk.old) != 1:
        raise SystemExit(f"{brk.name}: {brk.path} does not hold its old snippet exactly once")
    path.write_text(text.replace(brk.old, brk.new), encoding="utf-8")


def affected(plans: Sequence, kinds: Iterable[str]) -> list[str]:
    """Store keys of the plans (inputs first, as :func:`harness.runner.plan_nodes` orders them) whose kind is one of
    ``kinds`` or that take such a node as input, directly or not."""
    kinds, hit = set(kinds), set()
    for plan in plans:
        if plan.resolved.kind in kinds or any(p.key in hit for p in plan.inputs):
            hit.add(plan.key)
    return [plan.key for plan in plans if plan.key in hit]


def mark(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not run"}[value]


def table(outcomes: Sequence[Outcome], breaks: Sequence[Break] = BREAKS) -> str:
    """The Markdown table ``break | what | caught by tests | caught by regress | seconds | detail``: the controls
    run, then ``breaks`` in order; breaks without an outcome are listed as not run."""
    by_name = {o.name: o for o in outcomes}
    ran = [o.name for o in outcomes if o.name.startswith("control_")]
    breaks = [brk for brk in controls(BREAKS) if brk.name in ran] + list(breaks)
    lines = [
        "| break | what | caught by tests | caught by regress | seconds | detail |",
        "|---|---|---|---|---:|---|",
    ]
    for brk in breaks:
        found = by_name.get(brk.name)
        if found is None:
            lines.append(f"| `{brk.name}` | {brk.what} | not run | not run | | |")
            continue
        detail = found.detail.replace("|", "/").replace("\n", " ")
        regress = mark(found.regress)
        if not brk.path:  # a control: it must pass
            regress = "**failed** (noise)" if found.regress else "passed (as it must)"
        lines.append(
            f"| `{brk.name}` | {brk.what} | {mark(found.tests)} | {regress} | {found.seconds:.0f} | {detail} |"
        )
    return "\n".join(lines)


def regress_detail(report: dict) -> str:
    """The first failing row of an ``abaw regress --json`` report (or its drift), shortened, for the table."""
    for row in report.get("rows", []):
        if row["status"] in ("FAIL", "error"):
            message = (row.get("message") or "").split("; ")[0]
            return f"{row['system']} {row['task']}: {message}"[:160]
    findings = report.get("drift", {}).get("findings", [])
    if findings:
        return f"drift: {findings[0]['system']} {findings[0]['task']} {findings[0]['field']}"[:160]
    return ""


def merge(previous: Sequence[Outcome], new: Sequence[Outcome]) -> list[Outcome]:
    """``previous`` with each of ``new`` replacing the row of the same break."""
    replaced = {o.name: o for o in new}
    return [replaced.pop(o.name, o) for o in previous] + list(replaced.values())


# ----------------------------------------------------------------------------------------------- running


def copy_tree(destination: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, copied to ``destination`` (replaced)."""
    if destination.exists():
        shutil.rmtree(destination)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def environment(work: Path, store: Path, board: Path, tree: Path) -> dict[str, str]:
    return os.environ | {
        "PYTHONPATH": str(tree),
        "ABAW_HOME": str(work / "home"),
        "ABAW_DATA": str(dataset_root(work)),
        "ABAW_STORE": str(store),
        "ABAW_LEADERBOARD": str(board),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }


def dataset_root(work: Path) -> Path:
    from harness.data.root import DEFAULT_SCALE, DEFAULT_SEED
    from harness.data.synthetic import GENERATOR_VERSION

    return work / "data" / f"synthetic-{DEFAULT_SCALE}-seed{DEFAULT_SEED}-v{GENERATOR_VERSION}"


def ensure_dataset(work: Path) -> Path:
    from harness.data.root import DEFAULT_SCALE, DEFAULT_SEED
    from harness.data.synthetic import generate

    root = dataset_root(work)
    if not root.is_dir():
        print(f"generating {root}", flush=True)
        generate(root, seed=DEFAULT_SEED, scale=DEFAULT_SCALE)
    return root


def regress_run(tree: Path, env: dict, systems: Sequence[str], baselines: Path, update: bool) -> tuple[int, dict]:
    command = [sys.executable, "-m", "harness.cli", "regress", "--systems", ",".join(systems)]
    command += ["--baselines", str(baselines), "--json"] + (["--update"] if update else [])
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    except json.JSONDecodeError:
        report = {}
    if not report:
        report = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return done.returncode, report


def reference(work: Path, breaks: Sequence[Break]) -> Path:
    """The clean reference: ``abaw regress --update`` of the breaks' systems (trains only what the store lacks)."""
    ref = work / "reference"
    ref.mkdir(parents=True, exist_ok=True)
    tree = copy_tree(work / "tree-reference")
    systems = sorted({system for brk in breaks for system in brk.systems})
    env = environment(work, ref / "store", ref / "leaderboard.sqlite", tree)
    started = time.monotonic()
    code, report = regress_run(tree, env, systems, ref / BASELINES, update=True)
    if code != 0 or not report.get("ok"):
        raise SystemExit(f"the clean reference run failed (exit {code}): {json.dumps(report)[:2000]}")
    print(f"reference: {', '.join(systems)} in {time.monotonic() - started:.0f} s", flush=True)
    return ref


def run_break(work: Path, ref: Path, brk: Break, tests: bool) -> Outcome:
    """Apply ``brk`` on a scratch tree, drop the nodes it affects from a copy of the reference store, and run
    ``abaw regress --systems`` and the focused tests there."""
    from harness.data.affwild2 import Dataset
    from harness.runner import plan_nodes
    from harness.tasks import TASKS

    started = time.monotonic()
    scratch = work / "breaks" / brk.name
    if scratch.exists():
        shutil.rmtree(scratch)
    tree = copy_tree(scratch / "tree")
    if brk.path:  # a control edits nothing
        apply(tree, brk)
    store = scratch / "store"
    subprocess.run(["cp", "-al", str(ref / "store"), str(store)], check=True)
    shutil.copy2(ref / "leaderboard.sqlite", scratch / "leaderboard.sqlite")
    shutil.copy2(ref / BASELINES, scratch / "baselines.json")
    dataset = Dataset(dataset_root(work))
    keys = set()
    for system in brk.systems:
        keys.update(affected(plan_nodes(system, list(TASKS), dataset, PROFILE, tree / "systems"), brk.kinds))
    keys.update(path.name for path in store.iterdir() if path.name.startswith(brk.caches) and brk.caches)
    for key in keys:
        shutil.rmtree(store / key, ignore_errors=True)
    env = environment(work, store, scratch / "leaderboard.sqlite", tree)
    code, report = regress_run(tree, env, brk.systems, scratch / "baselines.json", update=False)
    caught_regress = code != 0
    detail = (regress_detail(report) or report.get("error", "")) if caught_regress else ""
    caught_tests = None
    if tests and brk.tests:
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *brk.tests]
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        caught_tests = done.returncode != 0
        if caught_tests:
            failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
            detail += ("; " if detail else "") + (failed[0][:120] if failed else f"pytest exit {done.returncode}")
    shutil.rmtree(scratch / "tree", ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)
    return Outcome(brk.name, caught_tests, caught_regress, time.monotonic() - started, detail)


def load_results(path: Path) -> list[Outcome]:
    if not path.is_file():
        return []
    return [Outcome(**row) for row in json.loads(path.read_text(encoding="utf-8"))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run this break (repeatable); default: all")
    parser.add_argument("--list", action="store_true", help="list the breaks and exit")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"scratch folder (default {DEFAULT_WORK})")
    parser.add_argument("--no-tests", action="store_true", help="skip the focused tests (regress only)")
    parser.add_argument(
        "--control", action="store_true", help="first, per system, recompute the same nodes without any edit"
    )
    args = parser.parse_args(argv)
    if args.list:
        for brk in BREAKS:
            print(f"{brk.name:30} {brk.path}: {brk.what} (regress {', '.join(brk.systems)})")
        return 0
    problems = snippet_problems(ROOT)
    if problems:
        raise SystemExit("\n".join(problems))
    names = {brk.name for brk in BREAKS}
    unknown = [name for name in args.only if name not in names]
    if unknown:
        raise SystemExit(f"unknown break {unknown[0]!r}; breaks: {', '.join(sorted(names))}")
    chosen = [brk for brk in BREAKS if not args.only or brk.name in args.only]
    sys.path.insert(0, str(ROOT))
    work = args.work.resolve()
    os.environ.setdefault("ABAW_HOME", str(work / "home"))
    started = time.monotonic()
    ensure_dataset(work)
    ref = reference(work, chosen)
    results_path = work / "results.json"
    for brk in (controls(chosen) if args.control else []) + chosen:
        outcome = run_break(work, ref, brk, not args.no_tests)
        print(f"{brk.name}: tests {mark(outcome.tests)}, regress {mark(outcome.regress)} ({outcome.seconds:.0f} s)")
        merged = merge(load_results(results_path), [outcome])
        results_path.write_text(json.dumps([asdict(o) for o in merged], indent=2) + "\n", encoding="utf-8")
    print(f"\ntotal {time.monotonic() - started:.0f} s\n")
    print(table(load_results(results_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
