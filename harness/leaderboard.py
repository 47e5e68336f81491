"""The local leaderboard: one SQLite row per scored run, rankings with paired video-block comparisons.

A row keeps what identifies the run (system, task, split, profile, spec hash, store key, dataset fingerprint, git
commit, date), its score with the video-block 95% interval and breakdown, and the per-track sufficient statistics of
:func:`harness.metrics.track_statistics` with the ordered track names. The statistics make any two rows of the same
(task, dataset fingerprint, split) comparable later, from the database alone: a paired bootstrap resamples whole tracks
with the same counts for both (:func:`harness.metrics.resample_counts`, :func:`harness.metrics.scores_from_counts`).
The EXPR confusion matrix is the sum of the per-track ones, so it is derived, not stored.

Ranking uses :attr:`RunRecord.rank_score`: ``extra["honest_score"]`` when a system was fitted on the validation split
(fusion), else ``score``. Such a row must store the statistics of its honest (cross-fitted) predictions so that the
paired test compares what the ranking ranks.

The terminal table, the JSON object and the HTML report live in :mod:`harness.report` (``ranking_table``,
``ranking_json``, ``write_html`` are also importable from here, lazily).
"""

from __future__ import annotations

import difflib
import io
import json
import math
import os
import sqlite3
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.metrics import PairedComparison, resample_counts, scores_from_counts
from harness.tasks import NUM_EXPR_CLASSES, TASKS, Task

SCHEMA_VERSION = 1
DEFAULT_PATH = Path("leaderboard") / "leaderboard.sqlite"
STATS_COLUMNS: dict[str, int] = {"va": 11, "expr": NUM_EXPR_CLASSES * NUM_EXPR_CLASSES}
# The bootstrap draws resamples in the same blocks as harness.metrics.paired_bootstrap, so that a comparison from
# stored statistics reproduces one from raw predictions exactly (a test holds the two together).
_CHUNK = 2048
_CHUNK_CELLS = 1 << 23

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    system TEXT NOT NULL,
    task TEXT NOT NULL CHECK (task IN ('va', 'expr')),
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
);
CREATE INDEX IF NOT EXISTS runs_by_data ON runs (task, dataset_fingerprint, split, system, profile);
"""
_COLUMNS = (
    "id system task split profile spec_hash store_key dataset_fingerprint git_commit created_at score ci_low ci_high "
    "details per_track track_names stats train_seconds infer_seconds extra"
).split()


class LeaderboardError(HarnessError):
    """The leaderboard file cannot be opened or read, or a run record is malformed."""


class IncomparableRuns(LeaderboardError):
    """Two runs cannot be compared track by track (other task, dataset, split or tracks)."""


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One scored run. ``stats`` is ``(len(track_names), 11 | 64)`` from :func:`harness.metrics.track_statistics`.

    ``details`` holds ``ccc_valence``/``ccc_arousal`` (VA) or ``f1_per_class`` (EXPR), ``frames`` and ``videos``;
    ``per_track`` is a list of ``{"track", "score", "frames"}`` (score None for a track without a valid label);
    ``extra`` is free JSON, with known keys ``fitted_on_validation``, ``honest_score``, ``honest_ci`` and ``notes``.
    ``id`` is set on rows read from the database.
    """

    system: str
    task: Task
    split: str
    profile: str
    spec_hash: str
    store_key: str
    dataset_fingerprint: str
    created_at: str
    score: float
    ci_low: float | None
    ci_high: float | None
    details: dict
    per_track: list[dict]
    track_names: tuple[str, ...]
    stats: np.ndarray
    git_commit: str | None = None
    train_seconds: float | None = None
    infer_seconds: float | None = None
    extra: dict = field(default_factory=dict)
    id: int | None = None

    @classmethod
    def from_scores(
        cls,
        system: str,
        profile: str,
        spec_hash: str,
        store_key: str,
        dataset_fingerprint: str,
        result: Mapping,
        stats: np.ndarray,
        track_names: Sequence[str],
        train_seconds: float | None = None,
        infer_seconds: float | None = None,
        git_commit: str | None = None,
        extra: Mapping | None = None,
        created_at: str | None = None,
    ) -> RunRecord:
        """A record from :func:`harness.scoring.score_split`'s ``result`` and the same predictions' statistics.

        ``stats`` rows follow ``track_names``, which must be the order of ``result["per_track"]``; ``created_at``
        defaults to now (UTC).
        """
        missing = [key for key in ("task", "split", "score", "frames", "videos", "ci95", "per_track") if key not in result]
        if missing:
            raise LeaderboardError(
                f"run {system!r}: the score result lacks {', '.join(missing)}; pass the dict that "
                "harness.scoring.score_split returns"
            )
        task = _check_task(result["task"])
        parts = ("ccc_valence", "ccc_arousal") if task == "va" else ("f1_per_class",)
        absent = [key for key in parts if key not in result]
        if absent:
            raise LeaderboardError(f"run {system!r}: the {task} score result lacks {', '.join(absent)}")
        details = {key: result[key] for key in parts} | {"frames": result["frames"], "videos": result["videos"]}
        per_track = [{"track": t["track"], "score": t["score"], "frames": t["frames"]} for t in result["per_track"]]
        low, high = result["ci95"] if result["ci95"] is not None else (None, None)
        record = cls(
            system=system,
            task=task,
            split=str(result["split"]),
            profile=profile,
            spec_hash=spec_hash,
            store_key=store_key,
            dataset_fingerprint=dataset_fingerprint,
            created_at=created_at if created_at is not None else _now(),
            score=float(result["score"]),
            ci_low=None if low is None else float(low),
            ci_high=None if high is None else float(high),
            details=_clean_json(details),
            per_track=_clean_json(per_track),
            track_names=tuple(str(name) for name in track_names),
            stats=np.ascontiguousarray(stats, dtype=np.float64),
            git_commit=git_commit,
            train_seconds=None if train_seconds is None else float(train_seconds),
            infer_seconds=None if infer_seconds is None else float(infer_seconds),
            extra=_clean_json(dict(extra or {})),
        )
        _check_record(record)
        if [t["track"] for t in record.per_track] != list(record.track_names):
            raise LeaderboardError(
                f"run {system!r}: result['per_track'] lists tracks in another order than track_names; "
                "pass split.names for both"
            )
        if record.frames != int(result["frames"]):
            raise LeaderboardError(
                f"run {system!r}: the statistics count {record.frames} valid frames but the result scored "
                f"{result['frames']}; were they computed from the same predictions and split?"
            )
        return record

    @property
    def honest(self) -> bool:
        """Whether the row carries an honest (cross-fitted) score beside an in-sample one."""
        return self.extra.get("honest_score") is not None

    @property
    def rank_score(self) -> float:
        """The score the ranking uses: ``extra["honest_score"]`` when present, else ``score``."""
        return float(self.extra["honest_score"]) if self.honest else self.score

    @property
    def rank_ci(self) -> tuple[float, float] | None:
        """The 95% interval of :attr:`rank_score` (``extra["honest_ci"]`` for honest rows), if known."""
        if self.honest:
            ci = self.extra.get("honest_ci")
            return (float(ci[0]), float(ci[1])) if ci else None
        return None if self.ci_low is None or self.ci_high is None else (self.ci_low, self.ci_high)

    @property
    def frames(self) -> int:
        """Valid frames scored, from the statistics."""
        return int(self.track_frames.sum())

    @property
    def videos(self) -> int:
        """Tracks with at least one valid frame."""
        return int(np.count_nonzero(self.track_frames))

    @property
    def track_frames(self) -> np.ndarray:
        """Valid frames per track, in ``track_names`` order."""
        return self.stats[:, 0] if self.task == "va" else self.stats.sum(axis=1)

    @property
    def confusion_matrix(self) -> np.ndarray | None:
        """EXPR: the 8×8 int64 confusion matrix (rows = true class) summed over tracks; None for VA."""
        if self.task != "expr":
            return None
        k = NUM_EXPR_CLASSES
        return np.rint(self.stats.sum(axis=0)).astype(np.int64).reshape(k, k)


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

    The file and its schema are created on first use; every write is one transaction.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else Path.cwd() / DEFAULT_PATH
        self._ready = False

    def record(self, run: RunRecord) -> int:
        """Append ``run``; returns its row id. Older rows of the same system stay, as history."""
        _check_record(run)
        values = {
            "system": run.system,
            "task": run.task,
            "split": run.split,
            "profile": run.profile,
            "spec_hash": run.spec_hash,
            "store_key": run.store_key,
            "dataset_fingerprint": run.dataset_fingerprint,
            "git_commit": run.git_commit,
            "created_at": _utc_iso(run.created_at, run.system),
            "score": run.score,
            "ci_low": run.ci_low,
            "ci_high": run.ci_high,
            "details": _dumps(run.details),
            "per_track": _dumps(run.per_track),
            "track_names": _dumps(list(run.track_names)),
            "stats": _stats_blob(run.stats),
            "train_seconds": run.train_seconds,
            "infer_seconds": run.infer_seconds,
            "extra": _dumps(run.extra),
        }
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

    # ------------------------------------------------------------------------------------------- database

    def _select(self, where: str, params: Sequence) -> list[RunRecord]:
        with self._connection() as db:
            cursor = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs WHERE {where} ORDER BY created_at, id", params)
            return [self._from_row(row) for row in cursor.fetchall()]

    def _from_row(self, row: tuple) -> RunRecord:
        values = dict(zip(_COLUMNS, row, strict=True))
        try:
            for key in ("details", "per_track", "extra"):
                values[key] = json.loads(values[key])
            values["track_names"] = tuple(json.loads(values["track_names"]))
            values["stats"] = np.load(io.BytesIO(values["stats"]), allow_pickle=False)
        except (ValueError, TypeError, OSError) as exc:
            raise LeaderboardError(f"{self.path}: run {values['id']} is unreadable ({exc}); delete the row") from exc
        return RunRecord(**values)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise LeaderboardError(f"cannot open the leaderboard {self.path}: {exc}") from exc
        try:
            if not self._ready:
                self._ensure_schema(db)
            yield db
        except sqlite3.DatabaseError as exc:
            raise LeaderboardError(f"leaderboard {self.path}: {exc}") from exc
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise LeaderboardError(
                f"{self.path} is not a readable SQLite leaderboard ({exc}); move it away or pass another path"
            ) from exc
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" not in tables and tables - {"sqlite_sequence"}:
                raise LeaderboardError(
                    f"{self.path} is an SQLite file of something else (tables: {', '.join(sorted(tables))}), not a "
                    "harness leaderboard; pass another path"
                )
            db.executescript("SAVEPOINT schema;" + _SCHEMA + "RELEASE schema;")
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version != str(SCHEMA_VERSION):
                raise LeaderboardError(
                    f"{self.path} has leaderboard schema version {version}; this harness reads version "
                    f"{SCHEMA_VERSION}. Use the harness version that wrote it, or start a new file"
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._ready = True


# ----------------------------------------------------------------------------------------------- comparisons


def compare_runs(
    a: RunRecord, b: RunRecord, n_resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> PairedComparison:
    """Paired video-block bootstrap of run ``a`` minus run ``b`` from their stored statistics.

    Tracks are aligned by name to ``a``'s order and only tracks with a valid label are drawn, with the same counts for
    both runs; the interval and p-value are those of :func:`harness.metrics.paired_bootstrap` on the raw predictions
    (same seed, same draws), and ``difference`` is ``a.rank_score - b.rank_score``. Raises :class:`IncomparableRuns`.
    """
    _check_resampling(n_resamples, level)
    aligned, keep = _align(a, b)
    boot_a, boot_b = _bootstrap([a.stats[keep], aligned[keep]], a.task, n_resamples, seed)
    return _paired(a, b, boot_a - boot_b, n_resamples, level)


def _rank_group(group: list[RunRecord], n_resamples: int, level: float, seed: int) -> list[RankedEntry]:
    best = group[0]
    notes: dict[int, str] = {}
    aligned: dict[int, np.ndarray] = {}
    keep = best.track_frames > 0
    for i, run in enumerate(group[1:], start=1):
        try:
            aligned[i] = _align(best, run)[0][keep]
        except IncomparableRuns as exc:
            notes[i] = str(exc)
    _check_resampling(n_resamples, level)
    boots = _bootstrap([best.stats[keep], *aligned.values()], best.task, n_resamples, seed) if aligned else []
    by_index = dict(zip(aligned, boots[1:], strict=True))
    entries = [RankedEntry(1, best, True, best.id)]
    for i, run in enumerate(group[1:], start=1):
        comparison = _paired(run, best, by_index[i] - boots[0], n_resamples, level) if i in by_index else None
        entries.append(RankedEntry(i + 1, run, False, best.id, comparison, notes.get(i)))
    return entries


def _align(a: RunRecord, b: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """``b``'s statistics in ``a``'s track order, and the mask of ``a``'s tracks with a valid label."""
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
            f"missing{', e.g. ' + missing[0] if missing else ''}; {len(extra)} others"
            f"{', e.g. ' + extra[0] if extra else ''})"
        )
    position = {name: i for i, name in enumerate(b.track_names)}
    stats = b.stats[[position[name] for name in a.track_names]]
    other = stats[:, 0] if b.task == "va" else stats.sum(axis=1)
    if not np.array_equal(other, a.track_frames):
        track = a.track_names[int(np.argmax(other != a.track_frames))]
        raise IncomparableRuns(
            f"not comparable with run {a.id} ({a.system}): track {track!r} has another count of valid frames, "
            "so the labels differ although the dataset fingerprint is the same"
        )
    keep = a.track_frames > 0
    if not keep.any():
        raise IncomparableRuns(f"not comparable with run {a.id} ({a.system}): no track has a valid frame")
    return stats, keep


def _bootstrap(stats: list[np.ndarray], task: str, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Scores of every statistics matrix on the same ``n_resamples`` track resamples, drawn as metrics draws them."""
    rng = np.random.default_rng(seed)
    n_tracks = stats[0].shape[0]
    chunk = max(1, min(_CHUNK, _CHUNK_CELLS // n_tracks))
    out = [np.empty(n_resamples) for _ in stats]
    for start in range(0, n_resamples, chunk):
        counts = resample_counts(rng, n_tracks, min(chunk, n_resamples - start))
        for s, o in zip(stats, out, strict=True):
            o[start : start + counts.shape[0]] = scores_from_counts(task, s, counts)
    return out


def _paired(a: RunRecord, b: RunRecord, diff: np.ndarray, n_resamples: int, level: float) -> PairedComparison:
    below = int(np.count_nonzero(diff <= 0))
    above = int(np.count_nonzero(diff >= 0))
    p_value = min(1.0, 2.0 * (1 + min(below, above)) / (n_resamples + 1))
    low, high = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
    return PairedComparison(a.rank_score - b.rank_score, (float(low), float(high)), p_value, a.rank_score, b.rank_score)


def _check_resampling(n_resamples: int, level: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer) or n_resamples < 1:
        raise LeaderboardError(f"n_resamples must be a positive integer (e.g. 10000); got {n_resamples!r}")
    if not 0 < level < 1:
        raise LeaderboardError(f"level must lie strictly between 0 and 1 (e.g. 0.95); got {level!r}")


# ----------------------------------------------------------------------------------------------- helpers


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit hash checked out at ``cwd`` (default: the current folder), or None outside git or without git."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    if done.returncode != 0 or len(commit) not in (40, 64) or any(c not in "0123456789abcdef" for c in commit):
        return None
    return commit


def _check_task(task: object) -> Task:
    if task not in TASKS:
        close = difflib.get_close_matches(str(task), TASKS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise LeaderboardError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}{hint}")
    return task  # type: ignore[return-value]


def _check_record(run: RunRecord) -> None:
    """Refuse a record the database could not hold faithfully or later code could not compare."""
    owner = f"run {run.system!r}"
    _check_task(run.task)
    for name in ("system", "split", "profile", "spec_hash", "store_key", "dataset_fingerprint"):
        value = getattr(run, name)
        if not isinstance(value, str) or not value:
            raise LeaderboardError(f"{owner}: {name} must be a non-empty string; got {value!r}")
    if not math.isfinite(run.score):
        raise LeaderboardError(f"{owner}: score must be a finite number; got {run.score!r}")
    stats = run.stats
    expected = (len(run.track_names), STATS_COLUMNS[run.task])
    if not isinstance(stats, np.ndarray) or stats.shape != expected:
        shape = getattr(stats, "shape", type(stats).__name__)
        raise LeaderboardError(
            f"{owner}: stats must be harness.metrics.track_statistics output with one row per track name, shape "
            f"{expected} for {run.task}; got {shape}"
        )
    if not np.isfinite(stats).all():
        raise LeaderboardError(f"{owner}: stats contain NaN or inf")
    if len(set(run.track_names)) != len(run.track_names):
        raise LeaderboardError(f"{owner}: track_names has duplicates; each track must appear once")
    honest = run.extra.get("honest_score")
    if honest is not None and (isinstance(honest, bool) or not isinstance(honest, int | float) or not math.isfinite(honest)):
        raise LeaderboardError(f"{owner}: extra['honest_score'] must be a finite number; got {honest!r}")
    ci = run.extra.get("honest_ci")
    if ci is not None and (not isinstance(ci, list | tuple) or len(ci) != 2):
        raise LeaderboardError(f"{owner}: extra['honest_ci'] must be [low, high]; got {ci!r}")
    _dumps(run.extra, owner)


def _filters(task, system, profile, dataset_fingerprint, split) -> tuple[str, list]:
    clauses, params = ["1 = 1"], []
    if task is not None:
        _check_task(task)
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


def _clean_json(value):
    """``value`` with numpy scalars as Python numbers, tuples as lists and non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_clean_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dumps(value, owner: str = "run") -> str:
    try:
        return json.dumps(_clean_json(value), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise LeaderboardError(f"{owner}: a field is not JSON data ({exc}); use numbers, strings, lists, dicts") from exc


def _stats_blob(stats: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(stats, dtype=np.float64), allow_pickle=False)
    return buffer.getvalue()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _utc_iso(text: str, system: str) -> str:
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        when = None
    if when is None or when.tzinfo is None:
        raise LeaderboardError(
            f"run {system!r}: created_at must be an ISO date with a time zone, e.g. 2024-03-18T12:00:00+00:00; "
            f"got {text!r}"
        )
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def __getattr__(name: str):
    if name in ("ranking_table", "ranking_json", "write_html"):
        from harness import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
