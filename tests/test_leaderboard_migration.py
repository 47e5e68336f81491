"""Leaderboard schema versions: a version 1 file (written by the version 1 code) is read as is, migrated by the first
write in one transaction, keeps its rows byte for byte; newer files are refused; and the multi-task score."""

import dataclasses
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from test_leaderboard import _read_only_sqlite, make_honest_run, make_run, make_split, predict
from typer.testing import CliRunner

import harness.cli as cli
import harness.leaderboard as leaderboard_module
from harness.errors import LeaderboardError
from harness.leaderboard import SCHEMA_VERSION, Leaderboard, multitask_scores
from harness.report import multitask_json, multitask_table, write_html
from harness.run_record import RunRecord

FIXTURE = Path(__file__).parent / "fixtures" / "leaderboard_v1.sqlite"  # see fixtures/make_leaderboard_v1.py
RESAMPLES = 500
# What the version 1 code ranked from the fixture (printed by make_leaderboard_v1.py): per task, in ranking order,
# (rank, id, system, rank score, None for the best else (difference vs best, its 95% interval, p-value)).
V1_RANKINGS = {
    "va": [
        (1, 7, "video_b1", 0.7950280152838671, None),
        (1, 2, "video_b1", 0.9522353052108435, None),
        (
            2,
            5,
            "dwf",
            0.8820516347927823,
            (-0.07018367041806128, (-0.07962734521003165, -0.06154081399250717), 0.003992015968063872),
        ),  # noqa: E501
        (
            3,
            4,
            "kelm",
            0.6619596751431245,
            (-0.29027563006771906, (-0.31059958580473407, -0.27344639414421373), 0.003992015968063872),
        ),  # noqa: E501
    ],
    "expr": [
        (1, 3, "video_b1", 0.6344809150831652, None),
        (
            2,
            6,
            "kelm",
            0.4737284855492325,
            (-0.16075242953393265, (-0.20877745565273598, -0.10591317905788254), 0.003992015968063872),
        ),  # noqa: E501
    ],
}


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    """A copy of the version 1 fixture."""
    path = tmp_path / "lb" / "leaderboard.sqlite"
    path.parent.mkdir()
    shutil.copyfile(FIXTURE, path)
    return path


def raw_rows(path: Path) -> list[tuple]:
    """Every stored value of every run, as SQLite holds it (blobs as bytes, JSON as text)."""
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM runs ORDER BY id").fetchall()


def schema_version(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]


def rankings(board: Leaderboard) -> dict[str, list[tuple]]:
    def row(entry) -> tuple:
        c = entry.comparison
        return entry.rank, entry.run.id, entry.run.system, entry.run.rank_score, c and (c.difference, c.ci, c.p_value)

    return {task: [row(e) for e in board.ranking(task, n_resamples=RESAMPLES)] for task in ("va", "expr")}


def a_later_run(board: Leaderboard, split: str = "train") -> RunRecord:
    """A new row that changes no validation ranking: a copy of run 2 on another split."""
    return dataclasses.replace(board.get(2), split=split, created_at="2026-12-01T00:00:00+00:00", id=None)


def insert_as(path: Path, run: RunRecord, task: str) -> None:
    """Insert ``run`` under another task name straight through SQL (the Python check knows only the registered ones)."""
    values = run.to_columns() | {"task": task}
    with sqlite3.connect(path) as db:
        db.execute(
            f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", list(values.values())
        )


# ----------------------------------------------------------------------------------------------- migration


def test_the_fixture_is_a_version_1_file_with_the_task_check() -> None:
    assert schema_version(FIXTURE) == "1" and len(raw_rows(FIXTURE)) == 7
    with sqlite3.connect(FIXTURE) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()
    assert "CHECK (task IN ('va', 'expr'))" in sql


def test_a_version_1_file_is_read_as_it_is(v1: Path) -> None:
    before = v1.read_bytes()
    board = Leaderboard(v1)
    assert [(r.id, r.system, r.task) for r in board.rows()][:3] == [
        (1, "kelm", "va"),
        (2, "video_b1", "va"),
        (3, "video_b1", "expr"),
    ]
    assert rankings(board) == V1_RANKINGS
    assert v1.read_bytes() == before  # reading migrates nothing


def test_the_first_write_migrates_a_version_1_file_keeping_every_row(v1: Path) -> None:
    stored = raw_rows(v1)
    board = Leaderboard(v1)
    row_id = board.record(a_later_run(board))
    assert row_id == 8  # ids continue where version 1 left them
    assert schema_version(v1) == str(SCHEMA_VERSION) == "2"
    assert raw_rows(v1)[:7] == stored  # byte for byte: statistics blobs, JSON texts, dates, ids
    assert rankings(Leaderboard(v1)) == V1_RANKINGS
    with sqlite3.connect(v1) as db:
        sql = {name: text for name, text in db.execute("SELECT name, sql FROM sqlite_master")}
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert "CHECK" not in sql["runs"] and "runs_by_data" in sql and "runs_v2" not in sql
    board.record(a_later_run(board, split="test"))  # a second write finds version 2 and migrates nothing
    assert len(raw_rows(v1)) == 9 and schema_version(v1) == "2"


def test_a_migrated_file_accepts_a_new_task_name_that_version_1_refused(v1: Path) -> None:
    run = Leaderboard(v1).get(2)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        insert_as(v1, run, "au")
    Leaderboard(v1).record(a_later_run(Leaderboard(v1)))  # migrates
    insert_as(v1, run, "au")
    (au,) = [r for r in Leaderboard(v1).rows() if r.task == "au"]
    assert au.id == 9 and au.stats.tobytes() == run.stats.tobytes() and au.details == run.details


def test_a_read_only_version_1_file_is_viewed_and_refuses_a_write_in_one_line(
    v1: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = v1.read_bytes()
    _read_only_sqlite(monkeypatch)
    board = Leaderboard(v1)
    assert rankings(board) == V1_RANKINGS
    write_html(tmp_path / "report.html", board, n_resamples=RESAMPLES)
    with pytest.raises(
        LeaderboardError,
        match=r"cannot migrate the leaderboard .*leaderboard\.sqlite from schema version 1 to 2 before writing "
        r"\(attempt to write a readonly database\); the file is unchanged",
    ):
        board.record(a_later_run(board))
    assert v1.read_bytes() == before


@pytest.mark.parametrize("failing", ["INSERT INTO runs_v2", "ALTER TABLE runs_v2", "CREATE INDEX"])
def test_a_migration_that_fails_midway_leaves_the_version_1_file(
    v1: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    stored = raw_rows(v1)
    connect = sqlite3.connect

    class Failing(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql.startswith(failing):
                raise sqlite3.OperationalError("disk I/O error")
            return super().execute(sql, *args)

    monkeypatch.setattr(leaderboard_module.sqlite3, "connect", lambda *a, **k: connect(*a, factory=Failing, **k))
    board = Leaderboard(v1)
    with pytest.raises(LeaderboardError, match=r"from schema version 1 to 2 before writing \(disk I/O error\)"):
        board.record(a_later_run(board))
    monkeypatch.undo()
    assert schema_version(v1) == "1" and raw_rows(v1) == stored
    assert rankings(Leaderboard(v1)) == V1_RANKINGS


def test_a_process_killed_during_the_migration_leaves_the_version_1_file(v1: Path) -> None:
    stored = raw_rows(v1)
    script = f"""
import os, sqlite3
import harness.leaderboard as lb
connect = sqlite3.connect
class Killed(sqlite3.Connection):
    def execute(self, sql, *args):
        if sql.startswith("ALTER TABLE runs_v2"):  # the old table is dropped, the new one not yet renamed
            os._exit(9)
        return super().execute(sql, *args)
lb.sqlite3.connect = lambda *a, **k: connect(*a, factory=Killed, **k)
board = lb.Leaderboard({str(v1)!r})
board.record(board.get(2))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    board = Leaderboard(v1)
    board.record(a_later_run(board))  # the next writer rolls the interrupted transaction back, then migrates
    assert raw_rows(v1)[:7] == stored and schema_version(v1) == "2"
    assert rankings(Leaderboard(v1)) == V1_RANKINGS


def test_a_newer_schema_is_refused_naming_the_file_and_both_versions(v1: Path) -> None:
    with sqlite3.connect(v1) as db:
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    before = v1.read_bytes()
    message = rf"{v1.name} has leaderboard schema version 3, newer than version {SCHEMA_VERSION} that this harness"
    with pytest.raises(LeaderboardError, match=message):
        Leaderboard(v1).rows()
    with pytest.raises(LeaderboardError, match=message):
        Leaderboard(v1).record(a_later_run(Leaderboard(v1)))  # a_later_run reads: refused before anything is written
    with sqlite3.connect(v1) as db:
        db.execute("UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    with pytest.raises(
        LeaderboardError, match=r"meta table holds no leaderboard schema version \(schema_version = 'two'\)"
    ):
        Leaderboard(v1).rows()
    assert schema_version(v1) == "two" and len(raw_rows(v1)) == 7 and before != v1.read_bytes()


# ----------------------------------------------------------------------------------------------- multi-task score


@pytest.fixture
def three_tasks(tmp_path: Path) -> Leaderboard:
    """VA, EXPR and AU rows.

    Systems: ``a`` and ``b`` have all three tasks (``a``'s VA re-run replaces its first one; ``b``'s VA is honest);
    ``c`` lacks the third; ``a`` also has all three under another profile, and ``d`` all three on another dataset.
    """
    board = Leaderboard(tmp_path / "board.sqlite")
    va, expr, au = make_split("va", 10, seed=1), make_split("expr", 10, seed=2), make_split("au", 10, seed=3)
    stamp = iter(f"2026-11-{day:02d}T12:00:00+00:00" for day in range(1, 29))

    def add(split, quality: float, system: str, **kwargs) -> None:
        run = make_run(split, predict(split, quality, int(quality * 100)), system, created_at=next(stamp), **kwargs)
        board.record(run)

    add(va, 0.2, "a")
    for system, q in (("a", 0.9), ("c", 0.5)):
        add(va, q, system)
        add(expr, q, system)
    board.record(make_honest_run(va, predict(va, 0.95, 7), predict(va, 0.6, 8), "b", created_at=next(stamp)))
    add(expr, 0.7, "b")
    add(au, 0.4, "a")
    add(au, 0.8, "b")
    add(au, 0.9, "a")  # a re-run: replaces the 0.4 one
    other = "0ther0da7a5e7002"
    add(va, 0.3, "d", fingerprint=other)
    add(expr, 0.3, "d", fingerprint=other)
    add(au, 0.3, "d", fingerprint=other)
    for task in ("va", "expr", "au"):  # the same runs of "a" under another profile, recorded later
        run = [r for r in board.rows(system="a") if r.task == task][-1]
        board.record(dataclasses.replace(run, profile="full", created_at=next(stamp), id=None))
    board.record(dataclasses.replace(board.rows(system="c", task="va")[-1], split="train", id=None))
    return board


def test_multitask_scores_sum_the_latest_row_of_every_task(three_tasks: Leaderboard) -> None:
    tasks = ("va", "expr", "au")
    scores = three_tasks.multitask(tasks)
    # the dataset with the latest row first; a tie (the same runs under two profiles) keeps the earlier one first
    assert [(s.rank, s.system, s.profile, s.dataset_fingerprint[:4]) for s in scores] == [
        (1, "a", "smoke", "f00d"),
        (2, "a", "full", "f00d"),
        (3, "b", "smoke", "f00d"),
        (1, "d", "smoke", "0the"),
    ]
    validation = [r for r in three_tasks.rows() if r.split == "validation"]
    for score in scores:
        assert list(score.parts) == list(tasks)
        for task, run in score.parts.items():
            key = (score.system, score.profile, score.dataset_fingerprint, task)
            assert (
                run.id == [r.id for r in validation if (r.system, r.profile, r.dataset_fingerprint, r.task) == key][-1]
            )
        assert score.score == sum(run.rank_score for run in score.parts.values())
    first_au = next(r for r in three_tasks.rows(system="a") if r.task == "au")
    assert scores[0].parts["au"].id != first_au.id  # the re-run replaced the first third-task run
    b = scores[2]
    assert b.honest and b.parts["va"].rank_score == b.parts["va"].extra["honest_score"] != b.parts["va"].score
    assert scores[2].score < scores[0].score and not scores[0].honest
    pairs = three_tasks.multitask(("va", "expr"))
    assert [(s.rank, s.system, s.profile) for s in pairs] == [
        (1, "a", "smoke"),
        (2, "a", "full"),
        (3, "b", "smoke"),
        (4, "c", "smoke"),
        (1, "d", "smoke"),
    ]  # "c" has no third-task row; its train-split row counts nowhere
    assert [(s.system, s.profile) for s in three_tasks.multitask(tasks, profile="full")] == [("a", "full")]
    identity = [(s.rank, s.system, s.profile, {t: r.id for t, r in s.parts.items()}) for s in scores]
    reordered = multitask_scores(reversed(three_tasks.rows()), tasks)  # the order of the rows given does not matter
    assert [(s.rank, s.system, s.profile, {t: r.id for t, r in s.parts.items()}) for s in reordered] == identity


@pytest.mark.parametrize("tasks", [("va",), ("va", "va"), ()])
def test_multitask_needs_two_distinct_tasks(tasks: tuple) -> None:
    with pytest.raises(LeaderboardError, match=r"a multi-task score sums two or more distinct tasks; got \["):
        multitask_scores([], tasks)


def test_multitask_renderings(three_tasks: Leaderboard, tmp_path: Path) -> None:
    scores = three_tasks.multitask(("va", "expr", "au"))
    console = Console(width=200, record=True)
    console.print(multitask_table(scores, title="multi"))
    text = console.export_text()
    for header in ("P_VA", "P_EXPR", "P_AU", "f00dfeed", "0ther0da"):  # two datasets: a data column
        assert header in text
    assert "† fitted on validation" in text and f"{scores[0].score:.4f}" in text
    data = json.loads(json.dumps(multitask_json(scores)))
    assert [d["system"] for d in data] == [s.system for s in scores]
    assert data[0]["parts"]["au"]["id"] == scores[0].parts["au"].id and data[0]["score"] == scores[0].score
    page = write_html(tmp_path / "r.html", three_tasks, n_resamples=RESAMPLES, multitask=("va", "expr", "au"))
    assert "Multi-task score (P = P_VA + P_EXPR + P_AU)" in page.read_text()
    page = write_html(tmp_path / "r.html", three_tasks, n_resamples=RESAMPLES, multitask=("va", "expr", "xx"))
    assert "Multi-task" not in page.read_text()  # no system has a run of every task


def test_the_leaderboard_command_shows_a_multitask_score_only_when_one_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "board.sqlite"
    monkeypatch.setenv("ABAW_LEADERBOARD", str(path))
    monkeypatch.setattr(cli, "out", Console(width=200, highlight=False))
    board = Leaderboard(path)
    va, expr = make_split("va", 10, seed=1), make_split("expr", 10, seed=2)
    board.record(make_run(va, predict(va, 0.8, 0), "a"))
    board.record(make_run(expr, predict(expr, 0.8, 0), "b"))
    runner = CliRunner()
    plain = runner.invoke(cli.app, ["leaderboard", "--json"])
    assert plain.exit_code == 0, plain.output
    assert set(json.loads(plain.stdout)) == {"va", "expr"}
    assert "multi-task" not in runner.invoke(cli.app, ["leaderboard"]).stdout

    board.record(make_run(expr, predict(expr, 0.6, 1), "a"))
    data = json.loads(runner.invoke(cli.app, ["leaderboard", "--json"]).stdout)
    (entry,) = data["multitask"]
    assert entry["system"] == "a" and set(entry["parts"]) == {"va", "expr"}
    assert entry["score"] == pytest.approx(
        data["va"]["entries"][0]["rank_score"] + entry["parts"]["expr"]["rank_score"]
    )
    shown = runner.invoke(cli.app, ["leaderboard", "--html", str(tmp_path / "r.html")])
    assert "multi-task validation (P = P_VA + P_EXPR)" in shown.stdout
    assert "Multi-task score (P = P_VA + P_EXPR)" in (tmp_path / "r.html").read_text()
    assert "multitask" not in json.loads(runner.invoke(cli.app, ["leaderboard", "--task", "va", "--json"]).stdout)
