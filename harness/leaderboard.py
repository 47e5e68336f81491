"""The local leaderboard: one SQLite row per scored run, rankings with paired video-block comparisons.

A row is a :class:`harness.run_record.RunRecord`: what identifies the run, its score and breakdown, and the per-track
sufficient statistics with the ordered track names. The statistics make any two rows of the same (task, dataset
fingerprint, split) comparable later, from the database alone: :func:`harness.resampling.paired_from_statistics`
resamples whole tracks with the same counts for both. Ranking uses :attr:`RunRecord.rank_score` (the honest,
cross-fitted score of a system fitted on the validation split, else its score). :func:`multitask_scores` sums the
rank scores of a system's tasks (the 7th ABAW's multi-task score).

The file records its schema version (:data:`SCHEMA_VERSION`): an older file is read as it is and migrated, in the
transaction of the first write, by the steps of ``_MIGRATIONS``; a newer one is refused. Task names are not listed in
SQL: :func:`harness.run_record.check_task` checks them.

The terminal table, the JSON object and the HTML report live in :mod:`harness.report` (``ranking_table``,
``ranking_json``, ``write_html`` are also importable from here, lazily).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from harness.errors import LeaderboardError
from harness.resampling import PairedComparison, paired_from_statistics
from harness.run_record import RunRecord, check_task

SCHEMA_VERSION = 2  # 1: the task column listed 'va' and 'expr' in a CHECK; 2: task names are checked in Python
DEFAULT_PATH = Path("leaderboard") / "leaderboard.sqlite"

_RUNS_COLUMNS = """(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system TEXT NOT NULL,
    task TEXT NOT NULL,
    split TEXT NOT NULL,
    profile TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    store_key TEXT NOT NULL,
    dataset_fingerprint TEXT NOT NULL,
    git_commit TEXT,
    created_at TEXT NOT NULL,
    score REAL NOT NULL,
    ci_low REAL,
    ci_high REAL,
    details TEXT NOT NULL,
    per_track TEXT NOT NULL,
    track_names TEXT NOT NULL,
    stats BLOB NOT NULL,
    train_seconds REAL,
    infer_seconds REAL,
    extra TEXT NOT NULL
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS runs_by_data ON runs (task, dataset_fingerprint, split, system, profile)"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS runs {_RUNS_COLUMNS}",
    _INDEX,
)
_COLUMNS = tuple(f.name for f in fields(RunRecord))  # the table's columns are the record's fields


class IncomparableRuns(LeaderboardError):
    """Two runs cannot be compared track by track (other task, dataset, split or tracks)."""


@dataclass(frozen=True, eq=False)
class RankedEntry:
    """A run's place in a ranking and its paired comparison against the best run of its (task, dataset, split).

    ``comparison`` is entry minus best (None for the best itself, and with ``note`` saying why when the two cannot be
    compared); ``significantly_below_best`` is True when the whole 95% interval of the difference is below 0.
    """

    rank: int
    run: RunRecord
    is_best: bool
    best_id: int | None
    comparison: PairedComparison | None = None
    note: str | None = None

    @property
    def significantly_below_best(self) -> bool:
        return self.comparison is not None and self.comparison.ci[1] < 0


class Leaderboard:
    """The SQLite leaderboard at ``path`` (default ``leaderboard/leaderboard.sqlite`` under the current folder).

    The file and its schema are created on the first write, or an older schema migrated; every write is one
    transaction. Reading opens the file read-only and writes nothing (an older schema is read as it is), so a
    read-only leaderboard can be viewed; a failed write is one :class:`LeaderboardError` line.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else Path.cwd() / DEFAULT_PATH
        self._ready = False

    def record(self, run: RunRecord) -> int:
        """Append ``run``; returns its row id. Older rows of the same system stay, as history."""
        values = run.to_columns()
        sql = f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
        with self._transaction() as db:
            return int(db.execute(sql, tuple(values.values())).lastrowid)

    def get(self, row_id: int) -> RunRecord:
        """The row with id ``row_id``."""
        found = self._select("id = ?", [row_id])
        if not found:
            raise LeaderboardError(f"{self.path}: no run with id {row_id}")
        return found[0]

    def rows(
        self,
        task: str | None = None,
        system: str | None = None,
        profile: str | None = None,
        dataset_fingerprint: str | None = None,
        split: str | None = None,
    ) -> list[RunRecord]:
        """Every recorded run matching the filters (None = any), oldest first."""
        where, params = _filters(task, system, profile, dataset_fingerprint, split)
        return self._select(where, params)

    def current(
        self,
        task: str,
        dataset_fingerprint: str | None = None,
        profile: str | None = None,
        split: str | None = "validation",
    ) -> list[RunRecord]:
        """The latest row of each (system, profile, dataset fingerprint, split): a re-run replaces the older row."""
        where, params = _filters(task, None, profile, dataset_fingerprint, split)
        latest = (
            "id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY system, profile, dataset_fingerprint, "
            f"split ORDER BY created_at DESC, id DESC) AS n FROM runs WHERE {where}) WHERE n = 1)"
        )
        return self._select(latest, params)

    def ranking(
        self,
        task: str,
        dataset_fingerprint: str | None = None,
        profile: str | None = None,
        split: str | None = "validation",
        n_resamples: int = 10_000,
        level: float = 0.95,
        seed: int = 0,
    ) -> list[RankedEntry]:
        """The current rows ranked by :attr:`RunRecord.rank_score`, each compared with the best of its data.

        Rows are grouped by (dataset fingerprint, split), the group with the most recent run first; ranks restart at
        1 in each group (with one dataset, as usual, this is one ranking by score). Ties keep the earlier run first.
        """
        _check_resampling(n_resamples, level)
        runs = self.current(task, dataset_fingerprint, profile, split)
        groups: dict[tuple[str, str], list[RunRecord]] = {}
        for run in runs:
            groups.setdefault((run.dataset_fingerprint, run.split), []).append(run)
        ordered = sorted(groups.values(), key=lambda g: max((r.created_at, r.id or 0) for r in g), reverse=True)
        entries: list[RankedEntry] = []
        for group in ordered:
            group.sort(key=lambda r: (-r.rank_score, r.created_at, r.id or 0))
            entries.extend(_rank_group(group, n_resamples, level, seed))
        return entries

    def multitask(
        self, tasks: Sequence[str], dataset_fingerprint: str | None = None, profile: str | None = None
    ) -> list[MultitaskScore]:
        """:func:`multitask_scores` of the recorded validation rows: the systems with a row for each of ``tasks``."""
        return multitask_scores(self.rows(None, None, profile, dataset_fingerprint, "validation"), tasks)

    # ------------------------------------------------------------------------------------------- database

    def _select(self, where: str, params: Sequence) -> list[RunRecord]:
        if not self.path.exists():
            return []  # nothing recorded yet; viewing creates nothing
        with self._connection() as db:
            if self._schema(db) is None:
                return []
            cursor = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE {where} ORDER BY created_at, id", params)
            return [self._from_row(row) for row in cursor.fetchall()]

    def _from_row(self, row: tuple) -> RunRecord:
        values = dict(zip(_COLUMNS, row, strict=True))
        try:
            return RunRecord.from_columns(values)
        except (ValueError, TypeError, OSError) as exc:
            raise LeaderboardError(f"{self.path}: run {values['id']} is unreadable ({exc}); delete the row") from exc

    def _roll_back_a_killed_writer(self) -> None:
        """A writer killed mid-transaction leaves ``<db>-journal``, which a read-only connection cannot roll back
        (SQLite refuses it every read): where the file is writable, one read-write read rolls it back first."""
        journal = Path(f"{self.path}-journal")
        if journal.exists() and os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK):
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()

    @contextmanager
    def _connection(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection: read-only (URI ``mode=ro``, so viewing needs no write access) unless ``write``."""
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            else:
                self._roll_back_a_killed_writer()
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise LeaderboardError(f"cannot open the leaderboard {self.path}: {exc}") from exc
        try:
            yield db
        except sqlite3.OperationalError as exc:
            if write:
                raise self._write_error(exc) from exc
            raise LeaderboardError(f"leaderboard {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise LeaderboardError(f"leaderboard {self.path}: {exc}") from exc
        finally:
            db.close()

    def _unreadable(self, exc: sqlite3.Error) -> LeaderboardError:
        return LeaderboardError(
            f"{self.path} is not a readable SQLite leaderboard ({exc}); move it away or pass another path"
        )

    def _write_error(self, exc: sqlite3.Error) -> LeaderboardError:
        return LeaderboardError(
            f"cannot write to the leaderboard {self.path} ({exc}); make the file and its folder writable or free disk "
            "space, or set $ABAW_LEADERBOARD to another file"
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, schema created first; rolled back on error (SQLite may have done it already)."""
        with self._connection(write=True) as db:
            if not self._ready:
                self._ensure_schema(db)
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # a full disk or an I/O error rolls back by itself
                    db.execute("ROLLBACK")
                raise

    def _schema(self, db: sqlite3.Connection) -> int | None:
        """The file's leaderboard schema version (None: an empty file); raises for another file or a newer schema.

        Every older version is read as it is (its columns are this version's); only a write migrates it.
        """
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError:
            raise  # locked, or an I/O error: not a question of the file's content
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc
        if "meta" not in tables:
            if tables - {"sqlite_sequence"}:
                raise LeaderboardError(
                    f"{self.path} is an SQLite file of something else (tables: {', '.join(sorted(tables))}), not a "
                    "harness leaderboard; pass another path"
                )
            return None
        found = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = found[0] if found else None
        if not (isinstance(version, str) and version.isdigit() and int(version) >= 1):
            raise LeaderboardError(
                f"{self.path}: the meta table holds no leaderboard schema version (schema_version = {version!r}); "
                "move the file away or pass another path"
            )
        if int(version) > SCHEMA_VERSION:
            raise LeaderboardError(
                f"{self.path} has leaderboard schema version {version}, newer than version {SCHEMA_VERSION} that this "
                "harness reads and writes. Use the harness version that wrote it (or a newer one), or start a new file"
            )
        return int(version) if "runs" in tables else None

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        """Create the tables on first write, or migrate an older schema, in one transaction (rolled back on error)."""
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc
        try:
            version = self._schema(db)
            if version is None:
                for statement in _SCHEMA:
                    db.execute(statement)
            else:
                self._migrate(db, version)
            if version != SCHEMA_VERSION:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._ready = True

    def _migrate(self, db: sqlite3.Connection, version: int) -> None:
        """Bring a file of schema ``version`` to :data:`SCHEMA_VERSION`, inside the caller's transaction."""
        try:
            for step in range(version, SCHEMA_VERSION):
                _MIGRATIONS[step](db)
        except sqlite3.Error as exc:
            raise LeaderboardError(
                f"cannot migrate the leaderboard {self.path} from schema version {version} to {SCHEMA_VERSION} "
                f"before writing ({exc}); the file is unchanged and still readable. Make it and its folder writable, "
                "or set $ABAW_LEADERBOARD to another file"
            ) from exc


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Drop version 1's ``CHECK (task IN ('va', 'expr'))``: SQLite cannot drop a constraint, so the rows move to a
    new table, ids and values as stored (statistics blobs, JSON texts); the id sequence continues where it was."""
    columns = ", ".join(_COLUMNS)
    (sequence,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'runs'").fetchone()
    db.execute(f"CREATE TABLE runs_v2 {_RUNS_COLUMNS}")
    db.execute(f"INSERT INTO runs_v2 ({columns}) SELECT {columns} FROM runs ORDER BY id")
    db.execute("DROP TABLE runs")
    db.execute("ALTER TABLE runs_v2 RENAME TO runs")
    db.execute(_INDEX)
    (copied,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'runs'").fetchone()
    db.execute("DELETE FROM sqlite_sequence WHERE name = 'runs'")
    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('runs', ?)", (max(sequence, copied),))


_MIGRATIONS = {1: _migrate_1_to_2}  # schema version -> the step to the next version


# ----------------------------------------------------------------------------------------------- comparisons


def compare_runs(
    a: RunRecord, b: RunRecord, n_resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> PairedComparison:
    """Paired video-block bootstrap of run ``a`` minus run ``b`` from their stored statistics.

    Tracks are aligned by name to ``a``'s order and compared by :func:`harness.resampling.paired_from_statistics`, so
    the interval and p-value are those of :func:`harness.resampling.paired_bootstrap` on the raw predictions (same
    seed, same draws); ``difference`` is ``a.rank_score - b.rank_score``. Raises :class:`IncomparableRuns`.
    """
    _check_resampling(n_resamples, level)
    scores = (a.rank_score, b.rank_score)
    return paired_from_statistics(a.task, a.stats, _align(a, b), n_resamples, level, seed, scores)


@dataclass(frozen=True, eq=False)
class MultitaskScore:
    """The multi-task score of one system, profile and dataset (the form of the 7th ABAW's P = P_VA + P_EXPR + P_AU).

    ``parts`` maps each task, in the order given, to the latest validation row of the system on that data; ``score``
    is the sum of their :attr:`RunRecord.rank_score` (each honest score for a system fitted on validation). Each part
    is scored on its own task's validation tracks (they differ between the challenges of the 6th ABAW release); the
    7th ABAW scored all three on one set of frames.
    ``rank`` counts from 1 among the systems of the same dataset fingerprint.
    """

    rank: int
    system: str
    profile: str
    dataset_fingerprint: str
    parts: dict[str, RunRecord]

    @property
    def score(self) -> float:
        return float(sum(run.rank_score for run in self.parts.values()))

    @property
    def honest(self) -> bool:
        """Whether any part is the honest score of a system fitted on validation."""
        return any(run.honest for run in self.parts.values())


def multitask_scores(rows: Iterable[RunRecord], tasks: Sequence[str]) -> list[MultitaskScore]:
    """The multi-task score of every (system, profile, dataset fingerprint) with a validation row for each of ``tasks``.

    Of several rows of one task the latest counts (as in :meth:`Leaderboard.current`); rows of other splits or tasks
    are ignored. Systems are grouped by dataset fingerprint, the group with the most recent row first, and ranked by
    score in each group (ties: the earlier latest row first). ``tasks`` are the tasks the score sums, at least two.
    """
    tasks = tuple(tasks)
    if len(tasks) < 2 or len(set(tasks)) != len(tasks):
        raise LeaderboardError(f"a multi-task score sums two or more distinct tasks; got {list(tasks)}")
    latest: dict[tuple[str, str, str], dict[str, RunRecord]] = {}
    for run in rows:
        if run.split != "validation" or run.task not in tasks:
            continue
        parts = latest.setdefault((run.system, run.profile, run.dataset_fingerprint), {})
        held = parts.get(run.task)
        if held is None or (run.created_at, run.id or 0) > (held.created_at, held.id or 0):
            parts[run.task] = run
    groups: dict[str, list[tuple[tuple[str, str, str], dict[str, RunRecord]]]] = {}
    for key, parts in latest.items():
        if len(parts) == len(tasks):
            groups.setdefault(key[2], []).append((key, {task: parts[task] for task in tasks}))
    newest = {fingerprint: max(_latest_of(parts) for _, parts in group) for fingerprint, group in groups.items()}
    scores: list[MultitaskScore] = []
    for fingerprint in sorted(groups, key=newest.__getitem__, reverse=True):
        group = groups[fingerprint]
        group.sort(key=lambda item: (-sum(r.rank_score for r in item[1].values()), _latest_of(item[1]), item[0]))
        scores += [MultitaskScore(n, key[0], key[1], key[2], parts) for n, (key, parts) in enumerate(group, start=1)]
    return scores


def _latest_of(parts: dict[str, RunRecord]) -> tuple[str, int]:
    return max((r.created_at, r.id or 0) for r in parts.values())


def _rank_group(group: list[RunRecord], n_resamples: int, level: float, seed: int) -> list[RankedEntry]:
    best = group[0]
    entries = [RankedEntry(1, best, True, best.id)]
    for rank, run in enumerate(group[1:], start=2):
        try:
            stats = _align(best, run)
        except IncomparableRuns as exc:
            entries.append(RankedEntry(rank, run, False, best.id, note=str(exc)))
            continue
        scores = (run.rank_score, best.rank_score)
        comparison = paired_from_statistics(best.task, stats, best.stats, n_resamples, level, seed, scores)
        entries.append(RankedEntry(rank, run, False, best.id, comparison))
    return entries


def _align(a: RunRecord, b: RunRecord) -> np.ndarray:
    """``b``'s statistics in ``a``'s track order, once the two are known comparable."""
    for what in ("task", "dataset_fingerprint", "split"):
        if getattr(a, what) != getattr(b, what):
            raise IncomparableRuns(
                f"not comparable with run {a.id} ({a.system}): {what} {getattr(b, what)!r} vs {getattr(a, what)!r}"
            )
    if set(a.track_names) != set(b.track_names) or len(b.track_names) != len(a.track_names):
        missing = sorted(set(a.track_names) - set(b.track_names))
        extra = sorted(set(b.track_names) - set(a.track_names))
        raise IncomparableRuns(
            f"not comparable with run {a.id} ({a.system}): the track sets differ ({len(missing)} of its tracks "
            f"missing here{', e.g. ' + repr(missing[0]) if missing else ''}; {len(extra)} not in it"
            f"{', e.g. ' + repr(extra[0]) if extra else ''})"
        )
    position = {name: i for i, name in enumerate(b.track_names)}
    order = [position[name] for name in a.track_names]
    stats, other = b.stats[order], b.track_frames[order]
    if not np.array_equal(other, a.track_frames):
        track = a.track_names[int(np.argmax(other != a.track_frames))]
        raise IncomparableRuns(
            f"not comparable with run {a.id} ({a.system}): track {track!r} has another count of valid frames, "
            "so the labels differ although the dataset fingerprint is the same"
        )
    if not (a.track_frames > 0).any():
        raise IncomparableRuns(f"not comparable with run {a.id} ({a.system}): no track has a valid frame")
    return stats


def _check_resampling(n_resamples: int, level: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise LeaderboardError(f"n_resamples must be a positive integer (e.g. 10000); got {n_resamples!r}")
    if not 0 < level < 1:
        raise LeaderboardError(f"level must lie strictly between 0 and 1 (e.g. 0.95); got {level!r}")


# ----------------------------------------------------------------------------------------------- helpers


def _filters(task, system, profile, dataset_fingerprint, split) -> tuple[str, list]:
    clauses, params = ["1 = 1"], []
    if task is not None:
        check_task(task)
    for column, value in (
        ("task", task),
        ("system", system),
        ("profile", profile),
        ("dataset_fingerprint", dataset_fingerprint),
        ("split", split),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(clauses), params


def __getattr__(name: str):
    if name in ("ranking_table", "ranking_json", "write_html"):
        from harness import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
