"""The SQLite leaderboard: round trips, current rows, rankings, paired comparisons from stored stats, renderings."""

import base64
import dataclasses
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import AU_RATES
from rich.console import Console

import harness.leaderboard as leaderboard_module
from harness.data.affwild2 import Split, Track
from harness.errors import LeaderboardError
from harness.leaderboard import SCHEMA_VERSION, IncomparableRuns, Leaderboard, RankedEntry, compare_runs
from harness.metrics import confusion_counts
from harness.report import ranking_json, ranking_table, write_html
from harness.resampling import paired_bootstrap, track_statistics
from harness.run_record import RunRecord, git_commit
from harness.scoring import score_split
from harness.tasks import get_task

FP = "f00dfeedcafe0001"


# ----------------------------------------------------------------------------------------------- builders


def make_split(task: str, n_tracks: int = 10, seed: int = 0, prefix: str = "video", empty: int | None = None) -> Split:
    """A hand-built split of ``n_tracks`` labelled tracks; track ``empty`` (if given) has no valid label."""
    rng = np.random.default_rng(seed)
    tracks = []
    for i in range(n_tracks):
        n = int(rng.integers(40, 90))
        if task == "va":
            labels = rng.uniform(-1, 1, (n, 2))
            labels[rng.random(n) < 0.1, 0] = -5.0
        elif task == "au":
            labels = (rng.random((n, 12)) < AU_RATES).astype(np.int8)
            labels[rng.random(n) < 0.1] = -1
        else:
            labels = rng.integers(0, 8, n)
            labels[rng.random(n) < 0.1] = -1
        if i == empty:
            labels[:] = -5.0 if task == "va" else -1
        tracks.append(Track(f"{prefix}{i}_left", n, labels, None, None, None))
    return Split(task, "validation", tuple(tracks))


def predict(split: Split, quality: float, seed: int) -> np.ndarray:
    """Predictions of the whole split (concatenated rows): ``quality`` 1 copies the labels, 0 is noise."""
    rng = np.random.default_rng(seed)
    labels = split.labels()
    if split.task == "va":
        clean = np.where(labels == -5.0, 0.0, labels)
        return np.clip(quality * clean + (1 - quality) * rng.uniform(-1, 1, clean.shape), -1, 1)
    if split.task == "au":
        noise = rng.integers(0, 2, labels.shape)
        return np.where(rng.random(labels.shape) < quality, np.maximum(labels, 0), noise).astype(np.int8)
    noise = rng.integers(0, 8, labels.shape)
    return np.where((rng.random(labels.shape) < quality) & (labels >= 0), labels, noise)


def make_run(split: Split, pred: np.ndarray, system: str, fingerprint: str = FP, **kwargs) -> RunRecord:
    index = split.track_index()
    by_track = {name: pred[index == i] for i, name in enumerate(split.names)}
    result = score_split(split, by_track, n_resamples=200)
    stats = track_statistics(split.task, pred, split.labels(), index, len(split.names))
    return RunRecord.from_scores(
        system, "smoke", "spec" + system, "key" + system, fingerprint, result, stats, split.names, **kwargs
    )


def make_honest_run(split: Split, in_sample: np.ndarray, honest: np.ndarray, system: str, **kwargs) -> RunRecord:
    """A system fitted on validation: in-sample scores, and the statistics and score of cross-fitted predictions."""
    index = split.track_index()
    scored = score_split(split, {name: honest[index == i] for i, name in enumerate(split.names)}, n_resamples=200)
    extra = {"fitted_on_validation": True, "honest_score": scored["score"], "honest_ci": scored["ci95"]}
    run = make_run(split, honest, system, extra=extra, **kwargs)  # statistics and frames of the honest predictions
    in_sample_run = make_run(split, in_sample, system)
    return dataclasses.replace(
        run,
        score=in_sample_run.score,
        ci_low=in_sample_run.ci_low,
        ci_high=in_sample_run.ci_high,
        details=in_sample_run.details,
    )


@pytest.fixture
def board(tmp_path: Path) -> Leaderboard:
    return Leaderboard(tmp_path / "lb" / "board.sqlite")


@pytest.fixture(scope="module")
def va_split() -> Split:
    return make_split("va", n_tracks=12, seed=1)


# ----------------------------------------------------------------------------------------------- storage


@pytest.mark.parametrize("task", ["va", "expr", "au"])
def test_record_round_trip_keeps_every_field(board: Leaderboard, task: str) -> None:
    split = make_split(task, seed=2)
    pred = predict(split, 0.6, seed=3)
    run = make_honest_run(
        split,
        predict(split, 0.9, 4),
        pred,
        "dynamic_vit[window_s=4]",
        train_seconds=12.5,
        infer_seconds=0.25,
        git_commit="a" * 40,
    )
    run = dataclasses.replace(run, extra=run.extra | {"notes": ["audio fallback for 2 tracks"]})
    row_id = board.record(run)
    (back,) = board.rows(task=task)
    assert back.id == row_id == board.get(row_id).id
    for f in dataclasses.fields(RunRecord):
        if f.name not in ("id", "stats"):
            assert getattr(back, f.name) == getattr(run, f.name), f.name
    assert back.stats.dtype == np.float64 and back.stats.tobytes() == run.stats.tobytes()
    assert back.track_names == split.names
    assert back.honest and back.rank_score == run.extra["honest_score"] != back.score
    assert back.rank_ci == tuple(run.extra["honest_ci"]) and back.extra["notes"] == ["audio fallback for 2 tracks"]
    assert back.stats_score == pytest.approx(back.rank_score, abs=1e-12)
    assert back.frames == back.details["frames"] and back.videos == back.details["videos"]
    if task == "expr":
        p, lab = get_task("expr").check_pair(pred, split.labels())
        np.testing.assert_array_equal(back.confusion_matrix, confusion_counts(lab, p, 8))
        assert len(back.details["f1_per_class"]) == 8
    elif task == "au":
        assert back.confusion_matrix is None and len(back.details["f1_per_au"]) == 12
    else:
        assert back.confusion_matrix is None
        assert {"ccc_valence", "ccc_arousal"} <= set(back.details)


def test_schema_is_created_once_and_shared_between_instances(board: Leaderboard, va_split: Split) -> None:
    assert not board.path.exists()  # the constructor does no I/O
    run = make_run(va_split, predict(va_split, 0.5, 0), "a")
    board.record(run)
    board.record(run)
    other = Leaderboard(board.path)
    assert [r.system for r in other.rows()] == ["a", "a"]
    with sqlite3.connect(board.path) as db:
        assert db.execute("SELECT key, value FROM meta").fetchall() == [("schema_version", str(SCHEMA_VERSION))]
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "runs"} <= tables


def test_default_path_is_under_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Leaderboard().path == tmp_path / "leaderboard" / "leaderboard.sqlite"
    assert Leaderboard().rows() == []
    assert not (tmp_path / "leaderboard").exists()  # viewing creates nothing; the first record creates the file


def test_pretty_created_at_is_normalised_to_utc(board: Leaderboard, va_split: Split) -> None:
    run = make_run(va_split, predict(va_split, 0.5, 0), "a", created_at="2024-03-18T14:00:00+02:00")
    assert run.created_at == "2024-03-18T12:00:00.000000+00:00"
    board.record(run)
    assert board.rows()[0].created_at == run.created_at


# ----------------------------------------------------------------------------------------------- current, ranking


def test_current_keeps_the_latest_row_of_each_system(board: Leaderboard, va_split: Split) -> None:
    old = board.record(make_run(va_split, predict(va_split, 0.9, 0), "a"))
    board.record(make_run(va_split, predict(va_split, 0.5, 1), "b"))
    new = board.record(make_run(va_split, predict(va_split, 0.2, 2), "a"))
    backdated = make_run(va_split, predict(va_split, 0.95, 3), "b", created_at="2001-01-01T00:00:00+00:00")
    board.record(backdated)  # recorded last but older: history, not current
    current = {r.system: r for r in board.current("va")}
    assert sorted(current) == ["a", "b"] and current["a"].id == new
    assert current["b"].created_at != backdated.created_at
    assert [r.id for r in board.rows(system="a")] == [old, new]
    assert [e.run.system for e in board.ranking("va", n_resamples=200)] == ["b", "a"]  # old a was better
    assert board.current("va", profile="paper") == [] and board.current("expr") == []
    assert len(board.current("va", dataset_fingerprint=FP)) == 2


def test_ranking_orders_by_score_and_prefers_the_honest_score(board: Leaderboard, va_split: Split) -> None:
    runs = {
        name: make_run(va_split, predict(va_split, q, i), name)
        for i, (name, q) in enumerate([("mid", 0.5), ("top", 0.9), ("low", 0.2)])
    }
    for run in runs.values():
        board.record(run)
    entries = board.ranking("va", n_resamples=300)
    assert [e.run.system for e in entries] == ["top", "mid", "low"] and [e.rank for e in entries] == [1, 2, 3]
    assert entries[0].is_best and entries[0].comparison is None and not entries[0].significantly_below_best
    assert all(e.best_id == entries[0].run.id for e in entries)

    fused = make_honest_run(va_split, predict(va_split, 0.99, 9), predict(va_split, 0.35, 9), "fusion")
    assert fused.score > runs["top"].score  # in sample it would win ...
    board.record(fused)
    entries = board.ranking("va", n_resamples=300)
    assert [e.run.system for e in entries] == ["top", "mid", "fusion", "low"]  # ... honestly it does not
    assert entries[2].comparison.difference == fused.extra["honest_score"] - runs["top"].score
    assert entries[2].comparison.score_a == fused.rank_score


# ----------------------------------------------------------------------------------------------- paired tests


def test_a_clearly_better_system_makes_the_other_significantly_below(board: Leaderboard, va_split: Split) -> None:
    board.record(make_run(va_split, predict(va_split, 0.95, 0), "good"))
    board.record(make_run(va_split, predict(va_split, 0.1, 1), "bad"))
    best, other = board.ranking("va", n_resamples=1000)
    assert best.run.system == "good" and other.significantly_below_best
    assert other.comparison.difference < 0 and other.comparison.ci[1] < 0
    assert other.comparison.p_value == pytest.approx(2 / 1001)


def test_identical_systems_differ_by_zero_with_p_one(board: Leaderboard, va_split: Split) -> None:
    pred = predict(va_split, 0.6, 0)
    board.record(make_run(va_split, pred, "twin_a"))
    board.record(make_run(va_split, pred, "twin_b"))
    best, other = board.ranking("va", n_resamples=500)
    assert other.comparison.difference == 0.0 and other.comparison.ci == (0.0, 0.0)
    assert other.comparison.p_value == 1.0 and not other.significantly_below_best


@pytest.mark.parametrize("task", ["va", "expr"])
def test_stored_statistics_reproduce_paired_bootstrap_on_raw_predictions(board: Leaderboard, task: str) -> None:
    split = make_split(task, n_tracks=9, seed=4, empty=3)  # one track without a valid label is never drawn
    pred_best, pred_other = predict(split, 0.8, 5), predict(split, 0.7, 6)
    board.record(make_run(split, pred_best, "best"))
    other = make_run(split, pred_other, "other")
    order = np.random.default_rng(0).permutation(len(split.names))  # stored in another track order
    board.record(
        dataclasses.replace(
            other,
            track_names=tuple(np.array(split.names)[order]),
            stats=other.stats[order],
            per_track=[other.per_track[i] for i in order],
        )
    )
    n, seed = 2500, 7  # more than one block of resamples
    entry = board.ranking(task, n_resamples=n, seed=seed)[1]
    reference = paired_bootstrap(task, pred_other, pred_best, split.labels(), split.track_index(), n, seed=seed)
    assert entry.run.system == "other"
    assert entry.comparison.difference == pytest.approx(reference.difference, abs=1e-12)
    assert entry.comparison.ci == reference.ci
    assert entry.comparison.p_value == reference.p_value
    # compare_runs aligns to its first run's track order: best minus other is the mirror image
    direct = compare_runs(board.rows(system="best")[0], board.rows(system="other")[0], n, seed=seed)
    assert direct.difference == -entry.comparison.difference and direct.p_value == reference.p_value
    assert direct.ci == pytest.approx((-reference.ci[1], -reference.ci[0]), abs=1e-12)


def test_runs_on_other_tracks_are_not_compared(board: Leaderboard, va_split: Split) -> None:
    board.record(make_run(va_split, predict(va_split, 0.9, 0), "full"))
    fewer = make_split("va", n_tracks=11, seed=1)
    board.record(make_run(fewer, predict(fewer, 0.3, 1), "fewer"))
    relabelled = make_split("va", n_tracks=12, seed=5)  # same names, other labels
    board.record(make_run(relabelled, predict(relabelled, 0.3, 1), "relabelled"))
    entries = {e.run.system: e for e in board.ranking("va", n_resamples=200)}
    assert entries["full"].is_best
    for name, reason in (("fewer", "track sets differ"), ("relabelled", "valid frames")):
        assert entries[name].comparison is None and not entries[name].significantly_below_best
        assert reason in entries[name].note
    with pytest.raises(IncomparableRuns, match="dataset_fingerprint"):
        compare_runs(make_run(va_split, predict(va_split, 0.5, 0), "x", fingerprint="other"), entries["full"].run)
    with pytest.raises(IncomparableRuns, match="no track has a valid frame"):
        blank = make_split("va", n_tracks=1, seed=1, empty=0)
        stats = np.zeros((1, 11))
        run = dataclasses.replace(entries["full"].run, track_names=blank.names, stats=stats)
        compare_runs(run, run)


def test_groups_of_other_datasets_are_ranked_apart(board: Leaderboard, va_split: Split) -> None:
    board.record(make_run(va_split, predict(va_split, 0.9, 0), "a", fingerprint="old"))
    board.record(make_run(va_split, predict(va_split, 0.2, 1), "b", fingerprint="new"))
    board.record(make_run(va_split, predict(va_split, 0.1, 2), "c", fingerprint="new"))
    entries = board.ranking("va", n_resamples=200)
    assert [(e.run.system, e.rank, e.is_best) for e in entries] == [("b", 1, True), ("c", 2, False), ("a", 1, True)]
    assert [e.run.system for e in board.ranking("va", dataset_fingerprint="old", n_resamples=200)] == ["a"]


# ----------------------------------------------------------------------------------------------- renderings


def test_ranking_json_is_one_serialisable_object(board: Leaderboard, va_split: Split) -> None:
    board.record(make_run(va_split, predict(va_split, 0.9, 0), "good"))
    board.record(make_run(va_split, predict(va_split, 0.1, 1), "bad"))
    expr = make_split("expr", seed=3, empty=0)
    board.record(make_run(expr, predict(expr, 0.5, 2), "expr_sys"))
    entries = board.ranking("va", n_resamples=300) + board.ranking("expr", n_resamples=300)
    obj = json.loads(json.dumps(ranking_json(entries), allow_nan=False))
    assert obj["tasks"] == ["va", "expr"]
    good, bad, ex = obj["entries"]
    assert all(isinstance(e["score"], float) for e in obj["entries"])
    assert {"ccc_valence", "ccc_arousal", "frames", "videos", "ci95", "p_value"} <= set(good)
    assert bad["significantly_below_best"] and bad["p_value"] < 0.05 and bad["difference_ci95"][1] < 0
    assert len(ex["f1_per_class"]) == 8 and ex["is_best"] and ex["difference_vs_best"] is None


def test_ranking_table_shows_systems_markers_and_notes(board: Leaderboard, va_split: Split) -> None:
    board.record(make_run(va_split, predict(va_split, 0.9, 0), "good"))
    board.record(make_run(va_split, predict(va_split, 0.1, 1), "bad"))
    fewer = make_split("va", n_tracks=11, seed=1)
    board.record(make_honest_run(fewer, predict(fewer, 0.95, 1), predict(fewer, 0.05, 1), "fewer"))
    board.record(make_run(va_split, predict(va_split, 0.2, 2), "dynamic_vit[window_s=4]"))
    console = Console(record=True, width=250)
    console.print(ranking_table(board.ranking("va", n_resamples=300), title="VA"))
    text = console.export_text()
    for piece in (
        "good",
        "bad",
        "fewer",
        "dynamic_vit[window_s=4]",
        "best",
        "▼",
        "†",
        "n/a",
        "track sets differ",
        "V 0.",
        "in-sample",
    ):
        assert piece in text, piece


def test_write_html_embeds_tables_and_plots(board: Leaderboard, va_split: Split, tmp_path: Path) -> None:
    board.record(make_run(va_split, predict(va_split, 0.9, 0), "video_b1"))
    board.record(make_run(va_split, predict(va_split, 0.1, 1), "<b>odd</b>"))
    expr = make_split("expr", seed=3)
    board.record(make_run(expr, predict(expr, 0.6, 2), "dynamic_vit[window_s=4]"))
    out = write_html(tmp_path / "report" / "index.html", board)
    page = out.read_text(encoding="utf-8")
    assert "video_b1" in page and "dynamic_vit[window_s=4]" in page
    assert "&lt;b&gt;odd&lt;/b&gt;" in page and "<b>odd" not in page
    images = page.split('<img src="data:image/png;base64,')[1:]
    assert len(images) == 2 + 3  # VA: scores, tracks; EXPR: scores, tracks, confusion matrix
    assert all(base64.b64decode(img.split('"')[0])[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert [p.name for p in out.parent.iterdir()] == ["index.html"]  # no temporary file left behind
    empty = write_html(tmp_path / "empty.html", Leaderboard(tmp_path / "none.sqlite"), task="expr")
    assert "No runs recorded yet" in empty.read_text(encoding="utf-8")


def test_an_interval_over_few_videos_is_marked_in_json_table_and_html(board: Leaderboard, tmp_path: Path) -> None:
    two = make_split("va", n_tracks=2, seed=4)
    board.record(make_run(two, predict(two, 0.9, 0), "two_videos"))
    entries = board.ranking("va", n_resamples=300)
    (entry,) = ranking_json(entries)["entries"]
    assert entry["videos"] == 2 and len(entry["ci95"]) == 2
    assert entry["ci95_note"] == "over 2 videos: not meaningful (fewer than 5)"
    console = Console(record=True, width=250)
    console.print(ranking_table(entries))
    text = console.export_text()
    assert re.search(r"\[0\.\d{4}, 0\.\d{4}\] ‡", text) and "‡ 95% interval over 2 videos: not meaningful" in text
    page = write_html(tmp_path / "few.html", board, task="va").read_text(encoding="utf-8")
    assert re.search(r"<td>0\.\d{4} \[0\.\d{4}, 0\.\d{4}\] ‡</td>", page)
    assert "<li>‡ 95% interval over 2 videos: not meaningful (fewer than 5)</li>" in page
    many = make_split("va", n_tracks=5, seed=4)
    board.record(make_run(many, predict(many, 0.9, 0), "five_videos", fingerprint="f00dfeedcafe0002"))
    (five,) = [e for e in ranking_json(board.ranking("va", n_resamples=300))["entries"] if e["videos"] == 5]
    assert five["ci95_note"] is None


def test_renderings_are_reachable_lazily_and_import_nothing_heavy() -> None:
    assert leaderboard_module.ranking_table is ranking_table
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = leaderboard_module.nope
    code = "import sys, harness.leaderboard, harness.report; print(sorted({'matplotlib', 'torch'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_git_commit_is_a_hash_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here = git_commit(Path(__file__).parent)
    assert here is None or (len(here) == 40 and int(here, 16) >= 0)
    assert git_commit(tmp_path) is None
    monkeypatch.setenv("PATH", str(tmp_path))
    assert git_commit() is None


# ----------------------------------------------------------------------------------------------- errors


def test_unknown_task_is_refused_with_a_suggestion(board: Leaderboard) -> None:
    for call in (board.ranking, board.current, board.rows):
        with pytest.raises(LeaderboardError, match="unknown task 'vaa'.*did you mean 'va'"):
            call("vaa")


def test_malformed_results_are_refused(va_split: Split) -> None:
    pred = predict(va_split, 0.5, 0)
    good = make_run(va_split, pred, "a")
    index = va_split.track_index()
    result = score_split(va_split, {n: pred[index == i] for i, n in enumerate(va_split.names)}, n_resamples=50)
    args = ("a", "smoke", "h", "k", FP)
    with pytest.raises(LeaderboardError, match="lacks ci95, per_track"):
        RunRecord.from_scores(
            *args, {k: v for k, v in result.items() if k not in ("ci95", "per_track")}, good.stats, va_split.names
        )
    with pytest.raises(LeaderboardError, match="va score result lacks ccc_arousal"):
        RunRecord.from_scores(
            *args, {k: v for k, v in result.items() if k != "ccc_arousal"}, good.stats, va_split.names
        )
    with pytest.raises(LeaderboardError, match="unknown task 'VA'"):
        RunRecord.from_scores(*args, result | {"task": "VA"}, good.stats, va_split.names)
    with pytest.raises(LeaderboardError, match=r"shape \(12, 11\) for va; got \(11, 11\)"):
        RunRecord.from_scores(*args, result, good.stats[1:], va_split.names)
    with pytest.raises(LeaderboardError, match="another order than track_names"):
        RunRecord.from_scores(*args, result, good.stats, va_split.names[::-1])
    with pytest.raises(LeaderboardError, match="the result scored"):
        RunRecord.from_scores(*args, result | {"frames": 3}, good.stats, va_split.names)
    with pytest.raises(LeaderboardError, match="created_at must be an ISO date with a time zone"):
        RunRecord.from_scores(*args, result, good.stats, va_split.names, created_at="2024-03-18 12:00")
    with pytest.raises(LeaderboardError, match="not JSON data"):
        RunRecord.from_scores(*args, result, good.stats, va_split.names, extra={"when": object()})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"system": ""}, "system must be a non-empty string"),
        ({"score": float("nan")}, "score must be a finite number"),
        ({"task": "exp"}, "unknown task 'exp'.*did you mean 'expr'"),
        ({"stats": "not an array"}, "got str"),
        ({"extra": {"honest_score": "high"}}, r"extra\['honest_score'\] must be a finite number"),
        ({"extra": {"honest_score": 0.5, "honest_ci": [0.1]}}, r"extra\['honest_ci'\] must be \[low, high\]"),
        ({"created_at": "yesterday"}, "created_at must be an ISO date"),
        ({"score": 0.5}, "statistics pool to a score of .* but the row ranks by score 0.500000"),
        ({"extra": {"honest_score": 0.5}}, "ranks by honest_score 0.500000; store the statistics of the predictions"),
    ],
)
def test_malformed_records_are_refused(board: Leaderboard, va_split: Split, change: dict, message: str) -> None:
    run = dataclasses.replace(make_run(va_split, predict(va_split, 0.5, 0), "a"), **change)
    with pytest.raises(LeaderboardError, match=message):
        board.record(run)
    assert not board.path.exists() or board.rows() == []


def test_bad_statistics_are_refused(board: Leaderboard, va_split: Split) -> None:
    run = make_run(va_split, predict(va_split, 0.5, 0), "a")
    stats = run.stats.copy()
    stats[0, 1] = np.inf
    with pytest.raises(LeaderboardError, match="stats contain NaN or inf"):
        board.record(dataclasses.replace(run, stats=stats))
    names = (va_split.names[0],) * len(va_split.names)
    with pytest.raises(LeaderboardError, match="track_names has duplicates"):
        board.record(dataclasses.replace(run, track_names=names))


def test_bad_resampling_settings_are_refused(board: Leaderboard, va_split: Split) -> None:
    run = make_run(va_split, predict(va_split, 0.5, 0), "a")
    with pytest.raises(LeaderboardError, match="n_resamples must be a positive integer"):
        board.ranking("va", n_resamples=0)
    with pytest.raises(LeaderboardError, match="level must lie strictly between 0 and 1"):
        compare_runs(run, run, level=95)


def test_unreadable_files_and_rows_are_reported(board: Leaderboard, va_split: Split, tmp_path: Path) -> None:
    board.record(make_run(va_split, predict(va_split, 0.5, 0), "a"))
    with pytest.raises(LeaderboardError, match="no run with id 99"):
        board.get(99)
    with sqlite3.connect(board.path) as db:
        db.execute("UPDATE runs SET stats = x'00'")
    with pytest.raises(LeaderboardError, match="run 1 is unreadable"):
        board.rows()

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LeaderboardError, match="not a readable SQLite leaderboard"):
        Leaderboard(junk).rows()

    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(LeaderboardError, match="SQLite file of something else"):
        Leaderboard(foreign).rows()

    newer = tmp_path / "newer.sqlite"
    Leaderboard(newer).record(make_run(va_split, predict(va_split, 0.5, 0), "a"))
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(
        LeaderboardError, match=f"schema version 99, newer than version {SCHEMA_VERSION} that this harness"
    ):
        Leaderboard(newer).rows()


def _read_only_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection the leaderboard opens is read-only, as on a read-only file or mount (root ignores chmod)."""
    connect = sqlite3.connect

    def read_only(target, *args, uri: bool = False, **kwargs):
        if not uri:
            target, uri = f"{Path(target).resolve().as_uri()}?mode=ro", True
        return connect(target, *args, uri=True, **kwargs)

    monkeypatch.setattr(leaderboard_module.sqlite3, "connect", read_only)


def test_a_read_only_leaderboard_is_viewed_and_refuses_writes_in_one_line(
    board: Leaderboard, va_split: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board.record(make_run(va_split, predict(va_split, 0.5, 0), "a"))
    before = board.path.read_bytes()
    _read_only_sqlite(monkeypatch)
    viewer = Leaderboard(board.path)  # a fresh process: the schema is not known to be there
    assert [r.system for r in viewer.rows()] == ["a"] and len(viewer.ranking("va")) == 1
    write_html(tmp_path / "report.html", viewer)
    with pytest.raises(LeaderboardError, match=r"cannot write to the leaderboard .*board\.sqlite \(attempt to write"):
        viewer.record(make_run(va_split, predict(va_split, 0.5, 1), "b"))
    assert board.path.read_bytes() == before


def test_a_writer_killed_mid_transaction_leaves_the_board_viewable(board: Leaderboard, va_split: Split) -> None:
    """Its hot journal would make every read-only read fail until the next write: a viewer rolls it back."""
    board.record(make_run(va_split, predict(va_split, 0.5, 0), "a"))
    killed = (
        "import os, sqlite3\n"
        f"db = sqlite3.connect({str(board.path)!r}, isolation_level=None)\n"
        "db.execute('PRAGMA cache_size = 1')\n"  # spill the transaction's pages into the file: the journal is needed
        "db.execute('BEGIN IMMEDIATE')\n"
        "db.execute('CREATE TABLE filler (x BLOB)')\n"
        "for _ in range(40):\n    db.execute('INSERT INTO filler VALUES (zeroblob(65536))')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", killed], check=False)
    assert Path(f"{board.path}-journal").exists()
    assert [r.system for r in Leaderboard(board.path).rows()] == ["a"]
    assert not Path(f"{board.path}-journal").exists()


def test_a_full_disk_under_the_leaderboard_is_one_line(
    board: Leaderboard, va_split: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    board.record(make_run(va_split, predict(va_split, 0.5, 0), "a"))
    connect = sqlite3.connect

    def full(*args, **kwargs):  # the file may not grow by a page: SQLite's own "database or disk is full"
        db = connect(*args, **kwargs)
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    monkeypatch.setattr(leaderboard_module.sqlite3, "connect", full)
    big = make_run(make_split("va", n_tracks=400, seed=3), predict(make_split("va", 400, 3), 0.5, 0), "big")
    with pytest.raises(LeaderboardError, match=r"cannot write to the leaderboard .*database or disk is full"):
        board.record(big)
    monkeypatch.undo()
    assert [r.system for r in board.rows()] == ["a"]


@pytest.mark.parametrize(
    "failure", [PermissionError(13, "Permission denied"), OSError(28, "No space left on device")], ids=str
)
def test_html_report_write_failure_is_one_line(
    board: Leaderboard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: OSError
) -> None:
    import harness.atomic

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(harness.atomic.os, "fsync", fail)
    with pytest.raises(LeaderboardError, match=rf"cannot write the HTML report .*report\.html: {failure.strerror}"):
        write_html(tmp_path / "report.html", board)
    assert list(tmp_path.iterdir()) == []  # no temporary file is left behind


def test_a_failed_write_leaves_no_row(board: Leaderboard, va_split: Split) -> None:
    board.record(make_run(va_split, predict(va_split, 0.5, 0), "a"))
    with sqlite3.connect(board.path) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON runs WHEN NEW.system = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    with pytest.raises(LeaderboardError, match="disk on fire"):
        board.record(make_run(va_split, predict(va_split, 0.5, 0), "boom"))
    assert [r.system for r in board.rows()] == ["a"]


# ----------------------------------------------------------------------------------------------- AU


def test_au_record_round_trips_through_its_columns() -> None:
    split = make_split("au", seed=5)
    run = make_honest_run(split, predict(split, 0.9, 6), predict(split, 0.6, 7), "dwf", git_commit="b" * 40)
    back = RunRecord.from_columns(run.to_columns() | {"id": 3})
    assert back.id == 3
    for f in dataclasses.fields(RunRecord):
        if f.name not in ("id", "stats"):
            assert getattr(back, f.name) == getattr(run, f.name), f.name
    assert back.stats.shape == (10, 37) and back.stats.tobytes() == run.stats.tobytes()
    assert back.confusion_matrix is None and len(back.details["f1_per_au"]) == 12
    assert back.frames == back.details["frames"] and back.videos == back.details["videos"] == 10
    assert back.honest and back.stats_score == pytest.approx(back.rank_score, abs=1e-12)
    assert np.mean(back.details["f1_per_au"]) == pytest.approx(back.score, abs=1e-12)  # the in-sample breakdown
    with pytest.raises(LeaderboardError, match=r"shape \(10, 37\) for au; got \(10, 64\)"):
        dataclasses.replace(run, stats=np.zeros((10, 64))).to_columns()
    with pytest.raises(LeaderboardError, match="au score result lacks f1_per_au"):
        result = score_split(
            split, {name: np.zeros((t.n_rows, 12), np.int8) for name, t in zip(split.names, split.tracks, strict=True)}
        )
        del result["f1_per_au"]
        RunRecord.from_scores("a", "smoke", "h", "k", FP, result, run.stats, split.names)


def test_au_runs_are_compared_from_stored_statistics_and_rendered() -> None:
    split = make_split("au", n_tracks=9, seed=8, empty=4)
    pred_best, pred_other = predict(split, 0.9, 9), predict(split, 0.5, 10)
    best, other = make_run(split, pred_best, "video_b1"), make_run(split, pred_other, "kelm")
    n, seed = 800, 2
    comparison = compare_runs(other, best, n, seed=seed)
    reference = paired_bootstrap("au", pred_other, pred_best, split.labels(), split.track_index(), n, seed=seed)
    assert comparison.difference == pytest.approx(reference.difference, abs=1e-12)
    assert (comparison.ci, comparison.p_value) == (reference.ci, reference.p_value)
    assert comparison.ci[1] < 0  # clearly worse
    entries = [RankedEntry(1, best, True, None), RankedEntry(2, other, False, None, comparison)]
    console = Console(record=True, width=250)
    console.print(ranking_table(entries, title="au validation"))
    text = console.export_text()
    f1 = best.details["f1_per_au"]
    low, high = int(np.argmin(f1)), int(np.argmax(f1))
    units = get_task("au").columns
    assert f"F1 {f1[low]:.2f} ({units[low]}) to {f1[high]:.2f} ({units[high]})" in text
    assert "video_b1" in text and "kelm" in text and "▼" in text
    obj = json.loads(json.dumps(ranking_json(entries), allow_nan=False))
    assert obj["tasks"] == ["au"]
    first, second = obj["entries"]
    assert len(first["f1_per_au"]) == 12 and first["frames"] == best.frames and first["videos"] == 8
    assert second["significantly_below_best"] and second["difference_vs_best"] == comparison.difference


def test_write_html_gives_au_its_per_au_f1_line(board: Leaderboard, tmp_path: Path) -> None:
    au = make_split("au", seed=11)
    best = make_honest_run(au, predict(au, 0.95, 12), predict(au, 0.8, 13), "dwf")
    board.record(best)
    board.record(make_run(au, predict(au, 0.4, 14), "kelm"))
    page = write_html(tmp_path / "au.html", board, task="au", n_resamples=200).read_text(encoding="utf-8")
    assert "<h2>Action units (mean AU F1)</h2>" in page
    f1 = best.details["f1_per_au"]
    line = ", ".join(f"{name} {value:.3f}" for name, value in zip(get_task("au").columns, f1, strict=True))
    assert f'<p class="note">dwf (smoke), in-sample: F1 per AU: {line}</p>' in page
    assert len(page.split('<img src="data:image/png;base64,')[1:]) == 2  # scores, tracks: no confusion matrix
