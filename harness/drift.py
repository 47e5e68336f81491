"""Metric drift guard: re-score the stored predictions of recorded runs with today's metric code.

A leaderboard row keeps the scores computed when its run was made, and its store key names the node holding the very
predictions they came from (``pred-validation/<track>.npy``, plus ``honest-validation/`` for a kind fitted on the
validation split). Scoring those files again must give the same numbers to a relative :data:`DRIFT_RTOL`: when it
does not, the metric code changed (CCC, F1, pooling, the per-track statistics, the video-block bootstrap) although no
model did. Compared per row: ``score``, its 95% interval and the task's breakdown (``ccc_valence``/``ccc_arousal``,
``f1_per_class`` or ``f1_per_au``), the honest score with its interval and breakdown, every per-track score, and the
per-track statistics that rankings and paired tests use. The re-scoring is the runner's own procedure
(:func:`harness.scoring.score_node_predictions`).

The reference is the latest row of each (system, store key) recorded on the current dataset: a deliberate change of
the metric is accepted by re-running the systems (``abaw run``, ``abaw regress``), whose new rows then match. Rows of
other datasets (their labels are not at hand) and rows whose node left the store are skipped with a note.
:func:`predictions_digest` names a node's validation predictions by content, so a committed baseline can say when
a score came from the very same files (see :mod:`harness.regress`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.data.affwild2 import Dataset
from harness.errors import StoreError
from harness.leaderboard import Leaderboard
from harness.models.context import HONEST
from harness.run_record import RunRecord
from harness.scoring import score_node_predictions
from harness.spec import split_variant
from harness.store import Node, Store
from harness.tasks import TASKS, get_task

DRIFT_RTOL = 1e-9  # relative: the same files scored by the same definition agree to rounding
_ABS_TOL = 1e-12  # for values at (or next to) zero
PREDICTION_GROUPS = ("pred-validation/", f"{HONEST}-validation/")
STATS_FIELD = "stats (largest relative gap)"  # the per-track statistics: 0.0 when they agree


@dataclass(frozen=True)
class Drift:
    """One recorded value that today's metric code no longer reproduces from the same prediction files."""

    system: str
    task: str
    store_key: str
    field: str  # "score", "ci95[0]", "f1_per_class[3]", "honest_score", "per_track[<track>]", STATS_FIELD, ...
    recorded: float | None
    now: float | None
    source: str  # where the recorded value lives: "leaderboard row 12", or the baselines file

    def describe(self) -> str:
        return (
            f"{self.system} {self.task}: {self.field} recorded {_text(self.recorded)} ({self.source}), "
            f"re-scored now {_text(self.now)}"
        )


@dataclass
class DriftReport:
    """What the drift guard re-scored and found: ``checked`` runs, ``findings`` (empty when clean) and ``notes``."""

    checked: int = 0
    findings: list[Drift] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "findings": [asdict(finding) for finding in self.findings],
            "notes": list(self.notes),
        }


def same_value(recorded: float | None, now: float | None) -> bool:
    """Whether two recorded numbers agree to :data:`DRIFT_RTOL` (missing and NaN count as equal to each other)."""
    missing = [value is None or (isinstance(value, float) and math.isnan(value)) for value in (recorded, now)]
    if any(missing):
        return all(missing)
    return math.isclose(float(recorded), float(now), rel_tol=DRIFT_RTOL, abs_tol=_ABS_TOL)  # type: ignore[arg-type]


def predictions_digest(node: Node) -> str | None:
    """sha256 over the checksums of a complete node's validation predictions (``pred`` and ``honest``), or None.

    Two nodes with the same digest hold byte-identical validation predictions, so their scores must be identical.
    """
    try:
        artifacts = node.provenance().get("artifacts", {})
    except StoreError:
        return None
    lines = sorted(
        f"{name} {meta.get('sha256')}\n" for name, meta in artifacts.items() if name.startswith(PREDICTION_GROUPS)
    )
    return hashlib.sha256("".join(lines).encode()).hexdigest() if lines else None


def rescore(record: RunRecord, node: Node, dataset: Dataset) -> dict[str, float | None]:
    """The values of :func:`recorded_values` computed afresh from ``node``'s stored validation predictions, by the
    procedure that recorded them (:func:`harness.scoring.score_node_predictions`)."""
    scored = score_node_predictions(node, dataset, record.task, record.split, record.honest)
    values = _score_values(scored.scores, "", record.task)
    if scored.honest is not None:
        values |= _score_values(scored.honest, "honest_", record.task)
    values |= {f"per_track[{t['track']}]": _number(t["score"]) for t in scored.ranked["per_track"]}
    stats = scored.stats
    values[STATS_FIELD] = _stats_gap(record.stats, stats) if stats.shape == record.stats.shape else math.inf
    return values


def recorded_values(record: RunRecord) -> dict[str, float | None]:
    """A leaderboard row's recorded numbers, flat: ``score``, ``ci95[0]``, ``ccc_valence``, ``f1_per_class[3]``,
    ``f1_per_au[0]``, ``honest_*`` (fitted on validation), ``per_track[<track>]``, and :data:`STATS_FIELD` (0.0: no gap
    to itself)."""
    values: dict[str, float | None] = {"score": record.score, "ci95[0]": record.ci_low, "ci95[1]": record.ci_high}
    values |= _parts(record.details, "", record.task)
    if record.honest:
        values["honest_score"] = record.rank_score
        ci = record.extra.get("honest_ci") or [None, None]
        values |= {"honest_ci95[0]": _number(ci[0]), "honest_ci95[1]": _number(ci[1])}
        honest = {key.removeprefix("honest_"): v for key, v in record.extra.items() if key.startswith("honest_")}
        values |= _parts(honest, "honest_", record.task)
    values |= {f"per_track[{t['track']}]": _number(t["score"]) for t in record.per_track}
    values[STATS_FIELD] = 0.0
    return values


def check_leaderboard(
    dataset: Dataset, store: Store, leaderboard: Leaderboard, systems: Sequence[str] | None = None
) -> DriftReport:
    """Re-score the latest recorded run of each (system, store key) on ``dataset`` whose predictions are in ``store``.

    ``systems`` keeps only those systems (a spec name also selects its variants); None keeps all.
    """
    report = DriftReport()
    fingerprint = dataset.fingerprint()
    rows = [row for task in TASKS for row in leaderboard.rows(task=task, split="validation")]
    rows = [row for row in rows if systems is None or _selected(row.system, systems)]
    elsewhere = {row.dataset_fingerprint for row in rows if row.dataset_fingerprint != fingerprint}
    if elsewhere:
        report.notes.append(
            f"drift: runs recorded on {len(elsewhere)} other dataset(s) ({', '.join(sorted(elsewhere))}) are not "
            f"re-scored here: their labels are not at hand (this dataset is {fingerprint})"
        )
    latest: dict[tuple[str, str, str], RunRecord] = {}
    for row in rows:  # oldest first: the last one per key wins
        if row.dataset_fingerprint == fingerprint:
            latest[(row.system, row.task, row.store_key)] = row
    gone: list[str] = []
    for record in latest.values():
        node = store.node(record.store_key)
        if not node.is_complete():
            gone.append(f"{record.system} {record.task}")
            continue
        try:
            now = rescore(record, node, dataset)
        except StoreError as error:
            report.notes.append(f"drift: {record.system} {record.task} not re-scored: {error}")
            continue
        report.checked += 1
        report.findings.extend(_compare(record, now))
    if gone:
        report.notes.append(
            f"drift: {len(gone)} recorded run(s) not re-scored, their predictions are no longer in the store "
            f"{store.root} ({', '.join(gone[:5])}{', …' if len(gone) > 5 else ''})"
        )
    if not latest:
        report.notes.append(f"drift: no recorded runs on this dataset ({fingerprint}) to re-score yet")
    return report


def _compare(record: RunRecord, now: dict[str, float | None]) -> Iterable[Drift]:
    source = f"leaderboard row {record.id}"
    for name, recorded in recorded_values(record).items():
        value = now.get(name)
        if not same_value(recorded, value):
            yield Drift(record.system, record.task, record.store_key, name, recorded, value, source)


def _score_values(scores: dict, prefix: str, task: str) -> dict[str, float | None]:
    low, high = scores["ci95"]
    values = {f"{prefix}score": _number(scores["score"])}
    values |= {f"{prefix}ci95[0]": _number(low), f"{prefix}ci95[1]": _number(high)}
    return values | _parts(scores, prefix, task)


def _parts(source: dict, prefix: str, task: str) -> dict[str, float | None]:
    """The task's breakdown in ``source``, flat: a scalar part by its key (``ccc_valence``), a vector part entry by
    entry (``f1_per_class[3]``); parts absent from ``source`` are left out."""
    definition = get_task(task)
    values: dict[str, float | None] = {}
    for key in definition.breakdown_names:
        if key in definition.part_labels:
            for index, value in enumerate(source.get(key) or []):
                values[f"{prefix}{key}[{index}]"] = _number(value)
        elif key in source:
            values[f"{prefix}{key}"] = _number(source[key])
    return values


def _stats_gap(recorded: np.ndarray, now: np.ndarray) -> float:
    """0.0 when the statistics agree to the drift tolerance, else the largest relative difference."""
    scale = np.maximum(np.abs(recorded), np.abs(now))
    gap = np.abs(recorded - now)
    if np.all(gap <= DRIFT_RTOL * scale + _ABS_TOL):
        return 0.0
    return float(np.max(gap / np.maximum(scale, _ABS_TOL)))


def _selected(system: str, names: Sequence[str]) -> bool:
    return system in names or split_variant(system)[0] in names


def _number(value) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _text(value: float | None) -> str:
    return "none" if value is None else repr(value)
