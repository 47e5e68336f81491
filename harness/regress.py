"""``abaw regress``: fail when a system's validation score falls below its committed baseline.

The baselines file (``leaderboard/baselines.json``, committed) holds, per dataset fingerprint and profile, one entry
per system (a sweep's variants each by name, e.g. ``dynamic_vit_context[window_s=4]``) and task (a registered task's
name: ``va``, ``expr``, ``au``)::

    {
      "format": 1,
      "about": "...",
      "datasets": {
        "<dataset fingerprint>": {
          "name": "synthetic-tiny-seed0-v4",
          "profiles": {
            "smoke": {
              "video_b1": {
                "<task>": {"score": 0.41, "tolerance": 0.02, "ranked_by": "score", "predictions": "<sha256>"}
              }
            }
          }
        }
      }
    }

``score`` is the validation score the leaderboard ranks by (:attr:`harness.run_record.RunRecord.rank_score`: the
honest, cross-fitted score of a system fitted on validation, which ``ranked_by: honest_score`` records); a run fails
when its score now is below ``score - tolerance``. ``predictions`` (optional) is the
:func:`harness.drift.predictions_digest` of the predictions the score came from: a run whose predictions are
byte-identical must reproduce the score to :data:`harness.drift.DRIFT_RTOL`, or the metric code drifted.

:func:`regress` runs the systems through :func:`harness.runner.run_system` (so what the store holds is reused),
compares, and with ``update`` rewrites the entries of this dataset and profile (atomically), keeping the others.
Before anything runs, :func:`harness.drift.check_leaderboard` re-scores the predictions of the runs recorded so far.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.atomic import write_atomically
from harness.data.affwild2 import Dataset
from harness.drift import Drift, DriftReport, check_leaderboard, predictions_digest, same_value
from harness.errors import HarnessError
from harness.leaderboard import Leaderboard
from harness.models.registry import did_you_mean
from harness.runner import NodeResult, default_profile, leaderboard_path, run_system
from harness.spec import PROFILES, available_specs, load_graph, load_spec, resolve_variants, split_variant, systems_dir
from harness.store import Store, default_store_root
from harness.tasks import TASKS

BASELINES_PATH = Path("leaderboard") / "baselines.json"
FORMAT = 1
DEFAULT_TOLERANCE = 0.02  # absolute, in challenge-score units: smoke training differs a little between machines
RANKED_BY = ("score", "honest_score")
ABOUT = (
    "Validation scores guarded by `abaw regress`, per dataset fingerprint, profile, system and task: a run fails when "
    "its score (the one the leaderboard ranks by) falls below score - tolerance. Rewrite with `abaw regress --update`."
)
_TOP_KEYS = ("format", "about", "datasets")
_DATASET_KEYS = ("name", "profiles")
_ENTRY_KEYS = ("score", "tolerance", "ranked_by", "predictions")


class BaselineError(HarnessError):
    """The baselines file is malformed, or names a system, variant or task that no longer exists."""


@dataclass(frozen=True)
class Baseline:
    """One guarded score: fail below ``score - tolerance``."""

    score: float
    tolerance: float = DEFAULT_TOLERANCE
    ranked_by: str = "score"
    predictions: str | None = None

    def to_json(self) -> dict:
        entry = {"score": self.score, "tolerance": self.tolerance, "ranked_by": self.ranked_by}
        return entry | ({"predictions": self.predictions} if self.predictions else {})


Guarded = dict[str, dict[str, Baseline]]  # system -> task -> baseline


class Baselines:
    """The baselines file: ``datasets[fingerprint] = {"name": str, "profiles": {profile: Guarded}}``."""

    def __init__(self, path: Path, datasets: dict | None = None) -> None:
        self.path = Path(path)
        self.datasets: dict[str, dict] = datasets or {}

    @classmethod
    def load(cls, path: str | Path) -> Baselines:
        """The file at ``path`` (an absent file holds no baselines); a malformed one names the file and the key."""
        path = Path(path)
        if not path.is_file():
            return cls(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise BaselineError(
                f"{path}, line {error.lineno}: not valid JSON ({error.msg}); fix it, or delete it and run "
                "`abaw regress --update`"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise BaselineError(f"{path}: cannot be read ({error})") from None
        return cls(path, _parse(path, raw))

    def guarded(self, fingerprint: str, profile: str) -> Guarded:
        """The entries for ``fingerprint`` under ``profile`` (empty when there are none)."""
        return self.datasets.get(fingerprint, {}).get("profiles", {}).get(profile, {})

    def others(self, fingerprint: str, profile: str) -> list[str]:
        """The (dataset, profile) sets of entries other than ``fingerprint``/``profile``, described."""
        found = []
        for key, dataset in sorted(self.datasets.items()):
            for name, entries in sorted(dataset.get("profiles", {}).items()):
                if (key, name) != (fingerprint, profile) and entries:
                    label = f"{key} ({dataset['name']})" if dataset.get("name") else key
                    found.append(f"dataset {label}, profile {name}: {len(entries)} system(s)")
        return found

    def replace(self, fingerprint: str, profile: str, name: str, guarded: Guarded) -> None:
        """Set the entries of ``fingerprint``/``profile`` (``name`` describes the dataset); others stay as they are."""
        dataset = self.datasets.setdefault(fingerprint, {"profiles": {}})
        dataset["name"] = name
        dataset.setdefault("profiles", {})[profile] = guarded

    def to_json(self) -> dict:
        datasets = {}
        for key, dataset in sorted(self.datasets.items()):
            profiles = {
                profile: {
                    system: {task: entry.to_json() for task, entry in sorted(tasks.items())}
                    for system, tasks in sorted(entries.items())
                }
                for profile, entries in sorted(dataset.get("profiles", {}).items())
            }
            datasets[key] = ({"name": dataset["name"]} if dataset.get("name") else {}) | {"profiles": profiles}
        return {"format": FORMAT, "about": ABOUT, "datasets": datasets}

    def save(self) -> None:
        """Write the file atomically (datasets, profiles, systems and tasks sorted, two-space indent: small diffs)."""
        text = json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"
        write_atomically(self.path, text.encode("utf-8"))


def _parse(path: Path, raw: object) -> dict[str, dict]:
    def fail(key: str, expected: str, found: object) -> BaselineError:
        return BaselineError(
            f"{path}: key '{key}': expected {expected}; found {found!r}. Fix it, or delete the file and run "
            "`abaw regress --update`"
        )

    def unknown(key: str, what: str, name: str, names: Sequence[str]) -> BaselineError:
        return BaselineError(
            f"{path}: key '{key}': unknown {what} {name!r}{did_you_mean(name, list(names))} "
            f"({what}s: {', '.join(names)})"
        )

    def mapping(value: object, key: str, what: str) -> dict:
        if not isinstance(value, dict):
            raise fail(key, what, value)
        return value

    def known(value: dict, key: str, keys: Sequence[str]) -> None:
        for name in value:
            if name not in keys:
                full = f"{key}.{name}" if key else str(name)
                raise BaselineError(
                    f"{path}: key '{full}' is unknown{did_you_mean(str(name), list(keys))} (keys: {', '.join(keys)})"
                )

    top = mapping(raw, "", "a JSON object with 'format' and 'datasets'")
    known(top, "", _TOP_KEYS)
    if top.get("format") != FORMAT:
        raise fail("format", f"{FORMAT} (the format this harness reads)", top.get("format"))
    datasets: dict[str, dict] = {}
    for fingerprint, dataset in mapping(top.get("datasets", {}), "datasets", "an object keyed by fingerprint").items():
        where = f"datasets.{fingerprint}"
        dataset = mapping(dataset, where, "an object with 'name' and 'profiles'")
        known(dataset, where, _DATASET_KEYS)
        name = dataset.get("name", "")
        if not isinstance(name, str):
            raise fail(f"{where}.name", "a string describing the dataset", name)
        profiles: dict[str, Guarded] = {}
        for profile, systems in mapping(dataset.get("profiles", {}), f"{where}.profiles", "an object").items():
            at = f"{where}.profiles.{profile}"
            if profile not in PROFILES:
                raise unknown(at, "profile", profile, PROFILES)
            guarded: Guarded = {}
            for system, tasks in mapping(systems, at, "an object keyed by system").items():
                entries = {}
                keyed = f"an object keyed by task ({', '.join(TASKS)})"
                for task, entry in mapping(tasks, f"{at}.{system}", keyed).items():
                    if task not in TASKS:
                        raise unknown(f"{at}.{system}.{task}", "task", task, TASKS)
                    entries[task] = _entry(f"{at}.{system}.{task}", entry, mapping, known, fail)
                guarded[system] = entries
            profiles[profile] = guarded
        datasets[fingerprint] = {"name": name, "profiles": profiles}
    return datasets


def _entry(key: str, raw: object, mapping, known, fail) -> Baseline:
    entry = mapping(raw, key, "an object with 'score' and 'tolerance'")
    known(entry, key, _ENTRY_KEYS)
    for name in ("score", "tolerance"):
        value = entry.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise fail(f"{key}.{name}", "a finite number", value)
    if entry["tolerance"] < 0:
        raise fail(f"{key}.tolerance", "a number >= 0", entry["tolerance"])
    ranked_by = entry.get("ranked_by", "score")
    if ranked_by not in RANKED_BY:
        raise fail(f"{key}.ranked_by", " or ".join(RANKED_BY), ranked_by)
    predictions = entry.get("predictions")
    if predictions is not None and not isinstance(predictions, str):
        raise fail(f"{key}.predictions", "the sha256 hex digest of the predictions, or null", predictions)
    return Baseline(float(entry["score"]), float(entry["tolerance"]), ranked_by, predictions)


def stale_entries(guarded: Guarded, folder: Path, profile: str) -> list[tuple[str, str]]:
    """``(system, why)`` for each guarded system (or task) that the specs in ``folder`` no longer define."""
    specs = available_specs(folder)
    stale = []
    for system, tasks in sorted(guarded.items()):
        base, _ = split_variant(system)
        if base not in specs:
            stale.append((system, f"no spec {base!r} in {folder}/{did_you_mean(base, specs)}"))
            continue
        spec = load_spec(base, folder)
        variants = [variant.name for variant in resolve_variants(spec, profile)]
        if system not in variants:
            hint = did_you_mean(system, variants)
            stale.append((system, f"spec {base!r} no longer has it (variants: {', '.join(variants)}){hint}"))
            continue
        for task in sorted(set(tasks) - set(spec.tasks)):
            stale.append((system, f"spec {base!r} no longer serves task {task!r} (tasks: {', '.join(spec.tasks)})"))
    return stale


@dataclass
class Row:
    """One (system, task) compared: ``status`` is ``ok``, ``FAIL``, ``new`` (no baseline yet) or ``error``."""

    system: str
    task: str
    baseline: float | None
    now: float | None
    tolerance: float | None
    ranked_by: str
    status: str
    message: str | None = None

    @property
    def change(self) -> float | None:
        return None if self.baseline is None or self.now is None else self.now - self.baseline


@dataclass
class RegressReport:
    """What :func:`regress` compared, found and (with ``update``) wrote."""

    baselines: Path
    dataset_fingerprint: str
    profile: str
    rows: list[Row] = field(default_factory=list)
    drift: DriftReport = field(default_factory=DriftReport)
    notes: list[str] = field(default_factory=list)
    updated: bool = False
    drift_only: bool = False

    @property
    def compared(self) -> int:
        return sum(row.baseline is not None and row.status in ("ok", "FAIL") for row in self.rows)

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if row.status in ("FAIL", "error")]

    @property
    def ok(self) -> bool:
        """Clean: no error; and, unless the baselines were rewritten on purpose, no drop, no drift, and at least one
        comparison made (a file without baselines for this dataset and profile guards nothing)."""
        if any(row.status == "error" for row in self.rows):
            return False
        if self.updated:
            return True
        if self.drift_only:
            return self.drift.ok
        return not self.failed and self.drift.ok and self.compared > 0

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "baselines": str(self.baselines),
            "dataset_fingerprint": self.dataset_fingerprint,
            "profile": self.profile,
            "updated": self.updated,
            "compared": self.compared,
            "rows": [asdict(row) | {"change": row.change} for row in self.rows],
            "drift": self.drift.to_dict(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Measured:
    """A system's validation score now, as the leaderboard ranks it, and the digest of its predictions."""

    system: str
    task: str
    score: float
    ranked_by: str
    store_key: str
    predictions: str | None


def regress(
    dataset: Dataset,
    profile: str | None = None,
    systems: Sequence[str] | None = None,
    baselines_path: str | Path = BASELINES_PATH,
    update: bool = False,
    tolerance: float | None = None,
    drift_only: bool = False,
    store: Store | None = None,
    leaderboard: Leaderboard | None = None,
    specs: Path | None = None,
) -> RegressReport:
    """Re-score recorded runs (drift), run ``systems`` (default: every spec in the specs folder), compare each score
    with its baseline; with ``update``, rewrite this dataset's and profile's baselines (``tolerance`` for new or all
    entries when given, else each entry keeps its own, new ones get :data:`DEFAULT_TOLERANCE`)."""
    if drift_only and update:
        raise BaselineError("--drift-only writes nothing and --update writes the baselines: pass one of them, not both")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise BaselineError(f"tolerance must be a finite number >= 0 (e.g. {DEFAULT_TOLERANCE}); got {tolerance!r}")
    profile = profile or default_profile(dataset)
    store = store or Store(default_store_root())
    leaderboard = leaderboard or Leaderboard(leaderboard_path())
    folder = specs or systems_dir()
    baselines = Baselines.load(baselines_path)
    names = list(systems) if systems else available_specs(folder)
    if not names:
        raise BaselineError(f"no system to run: {folder}/ holds no spec (*.yaml)")
    for name in names:
        load_graph(name, profile, folder)  # an unknown name or a broken spec fails before anything runs
    fingerprint = dataset.fingerprint()
    report = RegressReport(baselines.path, fingerprint, profile, drift_only=drift_only)
    guarded = dict(baselines.guarded(fingerprint, profile))
    stale = [] if drift_only else stale_entries(guarded, folder, profile)
    if stale and not update:
        system, why = stale[0]
        raise BaselineError(
            f"{baselines.path}: key 'datasets.{fingerprint}.profiles.{profile}.{system}': system {system!r} no "
            f"longer exists ({why}); remove the entry, or run `abaw regress --update` to rewrite this dataset's "
            f"baselines{f' ({len(stale)} stale entries in all)' if len(stale) > 1 else ''}"
        )
    report.drift = check_leaderboard(dataset, store, leaderboard, list(systems) if systems else None)
    if drift_only:
        return report
    for other in baselines.others(fingerprint, profile):
        report.notes.append(f"ignored baselines of {other} (this run: dataset {fingerprint}, profile {profile})")
    measured = []
    for name in names:
        try:
            results = run_system(name, list(TASKS), dataset, profile, store, leaderboard, folder)
        except HarnessError as error:
            report.rows.append(Row(name, "-", None, None, None, "score", "error", str(error)))
            continue
        measured += [_measure(result, store, leaderboard) for result in results if result.leaderboard_id is not None]
    report.rows += _compare(measured, guarded, report)
    if update:
        _update(baselines, guarded, stale, measured, tolerance, dataset, fingerprint, profile, report)
    elif report.compared == 0 and not report.failed:
        report.notes.append(
            f"nothing compared: {baselines.path} has no baseline for dataset {fingerprint} under profile {profile} "
            "for these systems; record them with `abaw regress --update`"
        )
    return report


def _measure(result: NodeResult, store: Store, leaderboard: Leaderboard) -> Measured:
    record = leaderboard.get(result.leaderboard_id)
    digest = predictions_digest(store.node(record.store_key))
    ranked_by = "honest_score" if record.honest else "score"
    return Measured(record.system, record.task, record.rank_score, ranked_by, record.store_key, digest)


def _compare(measured: Iterable[Measured], guarded: Guarded, report: RegressReport) -> list[Row]:
    rows, risen, same_files = [], [], 0
    for now in measured:
        entry = guarded.get(now.system, {}).get(now.task)
        if entry is None:
            rows.append(Row(now.system, now.task, None, now.score, None, now.ranked_by, "new", "no baseline yet"))
            continue
        fell = not math.isfinite(now.score) or now.score < entry.score - entry.tolerance
        message = None
        if entry.ranked_by != now.ranked_by:
            message = f"baseline is a {entry.ranked_by}, now ranked by {now.ranked_by}"
        row = Row(now.system, now.task, entry.score, now.score, entry.tolerance, now.ranked_by, "ok", message)
        if fell:
            row.status = "FAIL"
            floor = entry.score - entry.tolerance
            row.message = f"below baseline {entry.score:.4f} - tolerance {entry.tolerance:g} = {floor:.4f}"
            row.message += f"; {message}" if message else ""
        elif now.score > entry.score + entry.tolerance:
            risen.append(f"{now.system} {now.task}")
        rows.append(row)
        if entry.predictions and entry.predictions == now.predictions:
            same_files += 1
            if not same_value(entry.score, now.score):
                source = f"{report.baselines} (same prediction files)"
                report.drift.findings.append(
                    Drift(now.system, now.task, now.store_key, now.ranked_by, entry.score, now.score, source)
                )
    if same_files:
        report.notes.append(
            f"{same_files} score(s) came from the very prediction files of their baseline: re-checked to a relative "
            "1e-9 for metric drift"
        )
    if risen:
        report.notes.append(
            f"{len(risen)} score(s) rose above baseline + tolerance ({', '.join(risen)}); "
            "`abaw regress --update` records them"
        )
    return rows


def _update(baselines, guarded, stale, measured, tolerance, dataset, fingerprint, profile, report) -> None:
    for system, why in stale:
        guarded.pop(system, None)
        report.notes.append(f"dropped the baseline of {system!r}: {why}")
    for now in measured:
        old = guarded.get(now.system, {}).get(now.task)
        kept = tolerance if tolerance is not None else (old.tolerance if old else DEFAULT_TOLERANCE)
        entry = Baseline(now.score, kept, now.ranked_by, now.predictions)
        guarded[now.system] = {**guarded.get(now.system, {}), now.task: entry}
    baselines.replace(fingerprint, profile, dataset.root.name, guarded)
    baselines.save()
    report.updated = True
    report.notes.append(f"wrote {len(measured)} baseline(s) for dataset {fingerprint}, profile {profile}")


def parse_systems(text: str | None) -> list[str] | None:
    """``"a,b[x=1,y=2]"`` -> ``["a", "b[x=1,y=2]"]``: commas inside a variant's brackets do not split."""
    if not text:
        return None
    names, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            names.append(current.strip())
            current = ""
        else:
            current += char
    names.append(current.strip())
    return [name for name in names if name] or None
