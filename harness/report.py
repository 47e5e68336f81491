"""Renderings of a leaderboard ranking: a rich terminal table, one JSON object, and a static HTML report with plots.

The HTML file is self-contained (styles inline, PNG plots embedded as base64) and written atomically. matplotlib is
imported only by :func:`write_html`, and only its object-oriented API (no pyplot, no global backend switch).
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.table import Table
from rich.text import Text

from harness.atomic import write_atomically
from harness.errors import LeaderboardError
from harness.leaderboard import Leaderboard, MultitaskScore, RankedEntry
from harness.resampling import MIN_CI_VIDEOS, ci_note
from harness.run_record import RunRecord
from harness.tables import Col, dropped_note, fitted_table
from harness.tasks import TASKS, get_task

BELOW = "▼"
HONEST = "†"
FEW_VIDEOS = "‡"  # marks a 95% interval over too few videos to mean anything (harness.resampling.ci_note)
_HONEST_NOTE = "fitted on validation: ranked by the honest cross-fitted score"
_MULTITASK_NOTE = (
    "P sums each task's validation score (the latest run of the system, profile and dataset per task), each on its "
    "own task's tracks, not the 7th ABAW's one set of frames; ranked per dataset"
)


def ranking_table(entries: Sequence[RankedEntry], title: str | None = None, width: int | None = None) -> Table:
    """A terminal table of ``entries`` (from :meth:`Leaderboard.ranking`), with footnotes as its caption.

    Given the console's ``width``, columns leave a table too wide for it (date first, then frames / videos, the
    breakdown, p, the profile, the dataset, Δ) so that system names always print whole; the caption names them.
    """
    several = len({_group(e) for e in entries}) > 1
    columns = [Col("data", drop=6)] if several else []
    columns += [
        Col("#", justify="right"),
        Col("system", whole=True),
        Col("profile", drop=5),
        Col("score [95% CI]"),
        Col("breakdown", drop=3),
        Col("Δ vs best [95% CI]", drop=7),
        Col("p", drop=4, justify="right"),
        Col(""),
        Col("frames / videos", drop=2, justify="right"),
        Col("date (UTC)", drop=1),
    ]
    rows = []
    for entry in entries:
        cells = [_group_label(entry)] if several else []
        cells += _cells(entry)
        rows.append([Text(cell, style="red" if cell == BELOW else "") for cell in cells])
    styles = ["bold" if entry.is_best else None for entry in entries]
    table, dropped = fitted_table(columns, rows, width or 10_000, styles, title=title, caption_justify="left")
    notes = _footnotes(entries) + ([dropped_note(dropped)] if dropped else [])
    if notes:
        table.caption = Text("\n".join(notes))
    return table


def ranking_json(entries: Sequence[RankedEntry]) -> dict:
    """One JSON-serialisable object: ``{"tasks": [...], "entries": [...]}``, one entry per ranked run.

    Each entry holds the challenge metric under ``score`` (with the task's breakdown: ``ccc_valence``/``ccc_arousal``,
    ``f1_per_class`` or ``f1_per_au``; ``frames``, ``videos``, ``ci95`` and ``ci95_note``: ``None``, or why the
    interval (and ``rank_ci95``) over so few videos is not meaningful), ``rank_score`` (the honest score when there is
    one), and the paired comparison with the best: ``difference_vs_best``, ``difference_ci95``, ``p_value``,
    ``significantly_below_best`` and ``comparison_note`` (why there is no comparison, when there is none).
    """
    out = []
    for entry in entries:
        run, comparison = entry.run, entry.comparison
        item = {
            "rank": entry.rank,
            "id": run.id,
            "system": run.system,
            "task": run.task,
            "split": run.split,
            "profile": run.profile,
            "dataset_fingerprint": run.dataset_fingerprint,
            "score": run.score,
            "ci95": None if run.ci_low is None else [run.ci_low, run.ci_high],
            "ci95_note": ci_note(run.videos),
            **{key: value for key, value in run.details.items()},
            "rank_score": run.rank_score,
            "rank_ci95": None if run.rank_ci is None else list(run.rank_ci),
            "honest": run.honest,
            "is_best": entry.is_best,
            "best_id": entry.best_id,
            "difference_vs_best": None if comparison is None else comparison.difference,
            "difference_ci95": None if comparison is None else list(comparison.ci),
            "p_value": None if comparison is None else comparison.p_value,
            "significantly_below_best": entry.significantly_below_best,
            "comparison_note": entry.note,
            "worst_tracks": _worst_tracks(run),
            "spec_hash": run.spec_hash,
            "store_key": run.store_key,
            "git_commit": run.git_commit,
            "created_at": run.created_at,
            "train_seconds": run.train_seconds,
            "infer_seconds": run.infer_seconds,
            "extra": run.extra,
        }
        out.append({key: _finite(value) for key, value in item.items()})
    tasks = [task for task in TASKS if any(e.run.task == task for e in entries)]
    return {"tasks": tasks, "entries": out}


def multitask_formula(tasks: Sequence[str]) -> str:
    """``P = P_VA + P_EXPR + …``: what a multi-task score over ``tasks`` sums."""
    return "P = " + " + ".join(f"P_{task.upper()}" for task in tasks)


def multitask_table(scores: Sequence[MultitaskScore], title: str | None = None, width: int | None = None) -> Table:
    """A terminal table of :func:`harness.leaderboard.multitask_scores`: the sum and each task's part per system."""
    tasks = list(scores[0].parts) if scores else []
    several = len({s.dataset_fingerprint for s in scores}) > 1
    columns = [Col("data", drop=3)] if several else []
    columns += [Col("#", justify="right"), Col("system", whole=True), Col("profile", drop=2), Col("P", justify="right")]
    columns += [Col(f"P_{task.upper()}", justify="right") for task in tasks] + [Col("date (UTC)", drop=1)]
    rows = [([s.dataset_fingerprint[:8]] if several else []) + _multitask_cells(s) for s in scores]
    styles = ["bold" if s.rank == 1 else None for s in scores]
    table, dropped = fitted_table(columns, rows, width or 10_000, styles, title=title, caption_justify="left")
    table.caption = Text("\n".join(_multitask_notes(scores) + ([dropped_note(dropped)] if dropped else [])))
    return table


def multitask_json(scores: Sequence[MultitaskScore]) -> list[dict]:
    """One JSON-serialisable entry per multi-task score: its sum under ``score``, and per task under ``parts`` the
    leaderboard row ``id``, ``rank_score``, whether it is ``honest`` and its ``created_at``."""
    return [
        {
            "rank": s.rank,
            "system": s.system,
            "profile": s.profile,
            "dataset_fingerprint": s.dataset_fingerprint,
            "score": _finite(s.score),
            "honest": s.honest,
            "parts": {
                task: {
                    "id": run.id,
                    "rank_score": _finite(run.rank_score),
                    "honest": run.honest,
                    "created_at": run.created_at,
                }
                for task, run in s.parts.items()
            },
        }
        for s in scores
    ]


def write_html(
    path: str | os.PathLike,
    leaderboard: Leaderboard,
    task: str | None = None,
    dataset_fingerprint: str | None = None,
    profile: str | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    multitask: Sequence[str] | None = None,
) -> Path:
    """Write one static HTML report of the current rankings (one task, or those of :func:`task_rankings`) to
    ``path``; returns the path.

    Per task and dataset: the ranking table, the scores with their 95% intervals, the per-track score distribution of
    each system, and the best system's row-normalised confusion matrix (a task whose statistics hold one: EXPR) or
    else its per-entry breakdown line (the per-AU F1). Without ``task``, a first section holds the multi-task scores
    over the tasks ``multitask`` (default: the tasks shown) when a system has them all.
    """
    sections = []
    rankings = task_rankings(leaderboard, task, dataset_fingerprint, profile, n_resamples, seed)
    if task is None:
        summed = tuple(rankings if multitask is None else multitask)
        scores = leaderboard.multitask(summed, dataset_fingerprint, profile) if len(summed) > 1 else []
        if scores:
            sections += [
                f"<h2>Multi-task score ({html.escape(multitask_formula(summed))})</h2>",
                _html_multitask(scores),
            ]
    for name, entries in rankings.items():
        sections.append(f"<h2>{html.escape(get_task(name).heading)}</h2>")
        if not entries:
            sections.append('<p class="note">No runs recorded yet.</p>')
        for group in _groups(entries):
            sections.append(_html_group(group))
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = _PAGE.format(
        head=html.escape(f"{leaderboard.path} — generated {generated}"),
        body="\n".join(sections),
        below=BELOW,
        honest=HONEST,
        few=FEW_VIDEOS,
        min_videos=MIN_CI_VIDEOS,
    )
    target = Path(path)
    try:
        write_atomically(target, page.encode("utf-8"))
    except OSError as exc:
        raise LeaderboardError(f"cannot write the HTML report {target}: {exc.strerror or exc}") from exc
    return target


def task_rankings(
    leaderboard: Leaderboard,
    task: str | None = None,
    dataset_fingerprint: str | None = None,
    profile: str | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, list[RankedEntry]]:
    """The rankings of ``task``; with None, of every registered task that has a ranked run (of every registered task
    when none has), in registry order."""
    names = TASKS if task is None else (task,)
    rankings = {
        name: leaderboard.ranking(name, dataset_fingerprint, profile, n_resamples=n_resamples, seed=seed)
        for name in names
    }
    return {name: entries for name, entries in rankings.items() if entries} or rankings


# ----------------------------------------------------------------------------------------------- text pieces


def _group(entry: RankedEntry) -> tuple[str, str, str]:
    return entry.run.task, entry.run.dataset_fingerprint, entry.run.split


def _group_label(entry: RankedEntry) -> str:
    return f"{entry.run.task} {entry.run.split} {entry.run.dataset_fingerprint[:8]}"


def _groups(entries: Sequence[RankedEntry]) -> list[list[RankedEntry]]:
    groups: dict[tuple[str, str, str], list[RankedEntry]] = {}
    for entry in entries:
        groups.setdefault(_group(entry), []).append(entry)
    return list(groups.values())


def _score_text(run: RunRecord) -> str:
    ci = run.rank_ci
    interval = f" [{ci[0]:.4f}, {ci[1]:.4f}]{' ' + FEW_VIDEOS if ci_note(run.videos) else ''}" if ci else ""
    return f"{run.rank_score:.4f}{HONEST if run.honest else ''}{interval}"


def _breakdown(run: RunRecord) -> str:
    text = get_task(run.task).breakdown_cell(run.details)
    return f"in-sample {run.score:.4f}: {text}" if run.honest else text


def _delta_text(entry: RankedEntry) -> str:
    if entry.is_best:
        return "best"
    if entry.comparison is None:
        return "n/a"
    c = entry.comparison
    return f"{c.difference:+.4f} [{c.ci[0]:+.4f}, {c.ci[1]:+.4f}]"


def _date(run: RunRecord) -> str:
    return run.created_at[:16].replace("T", " ")


def _footnotes(entries: Sequence[RankedEntry]) -> list[str]:
    notes = []
    if any(e.significantly_below_best for e in entries):
        notes.append(f"{BELOW} significantly below the best: the paired video-block 95% interval of Δ is below 0")
    if any(e.run.honest for e in entries):
        notes.append(f"{HONEST} {_HONEST_NOTE}")
    few = sorted({note for e in entries if e.run.rank_ci and (note := ci_note(e.run.videos))})
    notes += [f"{FEW_VIDEOS} 95% interval {note}" for note in few]
    notes += [f"n/a {e.run.system}: {e.note}" for e in entries if e.note]
    return notes


def _worst_tracks(run: RunRecord, shown: int = 5) -> list[str]:
    scored = [t for t in run.per_track if t.get("score") is not None and t.get("frames")]
    return [t["track"] for t in sorted(scored, key=lambda t: t["score"])[:shown]]


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------- HTML


def _html_group(entries: list[RankedEntry]) -> str:
    first = entries[0].run
    parts = [
        f"<h3>{html.escape(first.split)} split · dataset {html.escape(first.dataset_fingerprint)} · "
        f"{len(entries)} system(s)</h3>",
        _html_table(entries),
        _img(_score_plot(entries), "scores with 95% intervals"),
        _img(_track_plot(entries), "per-track scores"),
    ]
    best = entries[0].run
    if best.confusion_matrix is not None:
        parts.append(_img(_confusion_plot(best), f"confusion matrix of {best.system}"))
    elif get_task(best.task).part_labels:
        line = f"{best.system} ({best.profile}){', in-sample' if best.honest else ''}: {_entries_line(best)}"
        parts.append(f'<p class="note">{html.escape(line)}</p>')
    return "\n".join(parts)


def _entries_line(run: RunRecord) -> str:
    """The recorded breakdown entry by entry (per-AU F1); a missing entry reads n/a."""
    definition = get_task(run.task)
    pieces = []
    for key, names in definition.part_labels.items():
        values = ", ".join(
            f"{name} {'n/a' if value is None else f'{value:.3f}'}"
            for name, value in zip(names, run.details[key], strict=True)
        )
        pieces.append(f"{definition.part_titles[key]}: {values}")
    return "; ".join(pieces)


def _html_multitask(scores: Sequence[MultitaskScore]) -> str:
    tasks = list(scores[0].parts)
    head = ("dataset", "#", "system", "profile", "P", *(f"P_{task.upper()}" for task in tasks), "date (UTC)")
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for s in scores:
        css = "best" if s.rank == 1 else ""
        cells = [s.dataset_fingerprint, *_multitask_cells(s)]
        rows.append(f'<tr class="{css}">' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in _multitask_notes(scores))
    return f'<table>{"".join(rows)}</table><ul class="note">{notes}</ul>'


def _multitask_notes(scores: Sequence[MultitaskScore]) -> list[str]:
    return [_MULTITASK_NOTE] + ([f"{HONEST} {_HONEST_NOTE}"] if any(s.honest for s in scores) else [])


def _multitask_cells(score: MultitaskScore) -> list[str]:
    """The row of a multi-task score, shared by the terminal table and the HTML report."""
    parts = [f"{run.rank_score:.4f}{HONEST if run.honest else ''}" for run in score.parts.values()]
    latest = max(score.parts.values(), key=lambda run: (run.created_at, run.id or 0))
    return [str(score.rank), score.system, score.profile, f"{score.score:.4f}", *parts, _date(latest)]


def _cells(entry: RankedEntry) -> list[str]:
    """The row of a ranked entry, shared by the terminal table and the HTML report."""
    run = entry.run
    return [
        str(entry.rank),
        run.system,
        run.profile,
        _score_text(run),
        _breakdown(run),
        _delta_text(entry),
        "" if entry.comparison is None else f"{entry.comparison.p_value:.3g}",
        BELOW if entry.significantly_below_best else "",
        f"{run.frames:,} / {run.videos}",
        _date(run),
    ]


def _html_table(entries: list[RankedEntry]) -> str:
    head = ("#", "system", "profile", "score [95% CI]", "breakdown", "Δ vs best [95% CI]", "p", "", "frames / videos")
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in (*head, "date (UTC)")) + "</tr>"]
    for entry in entries:
        cells = _cells(entry)
        css = "best" if entry.is_best else "below" if entry.significantly_below_best else ""
        title = f' title="{html.escape(entry.note, quote=True)}"' if entry.note else ""
        rows.append(f'<tr class="{css}"{title}>' + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in _footnotes(entries))
    return f"<table>{''.join(rows)}</table>" + (f'<ul class="note">{notes}</ul>' if notes else "")


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}"></figure>'


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return buffer.getvalue()


def _figure(height_rows: int, width: float = 8.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 1.2 + 0.38 * height_rows))
    return fig, fig.subplots()


def _labels(entries: list[RankedEntry]) -> list[str]:
    return [f"{e.rank}. {e.run.system} ({e.run.profile})" for e in entries]


def _score_plot(entries: list[RankedEntry]) -> bytes:
    fig, ax = _figure(len(entries))
    y = np.arange(len(entries))[::-1]
    for yi, entry in zip(y, entries, strict=True):
        run = entry.run
        colour = "tab:green" if entry.is_best else "tab:red" if entry.significantly_below_best else "tab:blue"
        ci = run.rank_ci
        xerr = None if ci is None else [[max(run.rank_score - ci[0], 0.0)], [max(ci[1] - run.rank_score, 0.0)]]
        ax.errorbar([run.rank_score], [yi], xerr=xerr, fmt="o", color=colour, capsize=4)
    ax.axvline(entries[0].run.rank_score, color="tab:green", linestyle="--", linewidth=0.8)
    ax.set_yticks(y, _labels(entries))
    ax.set_xlabel(f"{get_task(entries[0].run.task).heading}, video-block 95% interval")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _track_plot(entries: list[RankedEntry]) -> bytes:
    fig, ax = _figure(len(entries))
    y = np.arange(len(entries))[::-1]
    rng = np.random.default_rng(0)  # jitter of the points only
    data = [np.array([t["score"] for t in e.run.per_track if t.get("score") is not None], dtype=float) for e in entries]
    shown = [(yi, d) for yi, d in zip(y, data, strict=True) if d.size]
    if shown:
        import matplotlib

        major, minor = (int(part) for part in matplotlib.__version__.split(".")[:2])
        sideways = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}  # vert deprecated
        ax.boxplot([d for _, d in shown], positions=[yi for yi, _ in shown], widths=0.6, showfliers=False, **sideways)
        for yi, d in shown:
            ax.scatter(d, yi + rng.uniform(-0.2, 0.2, d.size), s=9, alpha=0.5, color="tab:blue", linewidths=0)
    ax.set_yticks(y, _labels(entries))
    ax.set_ylim(-0.7, len(entries) - 0.3)
    ax.set_xlabel("score of each track alone")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def _confusion_plot(run: RunRecord) -> bytes:
    cm = run.confusion_matrix.astype(np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    fig, ax = _figure(14, width=7.0)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    classes = get_task(run.task).columns
    k = len(classes)
    for i in range(k):
        for j in range(k):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), [f"{name} ({int(n):,})" for name, n in zip(classes, totals[:, 0], strict=True)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (frames)")
    ax.set_title(f"{run.system} ({run.profile}): confusion matrix, each row sums to 1")
    return _png(fig)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ABAW leaderboard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; white-space: nowrap; }}
tr.best td {{ font-weight: bold; background: #eef8ee; }}
tr.below td {{ color: #a33; }}
.note {{ color: #555; font-size: 0.9em; }}
figure {{ margin: 1em 0; }}
</style></head>
<body>
<h1>ABAW leaderboard</h1>
<p class="note">{head}. Scores are pooled over all valid frames of the split; intervals resample whole videos.
Δ is each system minus the best of its data, from a paired video-block bootstrap; {below} marks a system whose
interval of Δ lies below 0; {honest} marks a system fitted on validation, ranked by its cross-fitted score;
{few} marks an interval over fewer than {min_videos} videos, kept but not meaningful.</p>
{body}
</body></html>
"""
