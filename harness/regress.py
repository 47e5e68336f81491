"""``abaw regress``: fail when a system's validation score falls below its committed baseline.

The baselines file (``leaderboard/baselines.json``, committed) holds, per dataset fingerprint and profile, one entry
per system (a sweep's variants each by name, e.g. ``dynamic_vit_context[window_s=4]``) and task (a registered task's
name: ``va``, ``expr``, ``au``)::

    {
      "format": 2,
      "about": "...",
      "datasets": {
        "<dataset fingerprint>": {
          "name": "synthetic-tiny-seed0-v5",
          "profiles": {
            "smoke": {
              "video_b1": {
                "<task>": {"score": 0.41, "tolerance": 0.02, "ranked_by": "score", "predictions": "<sha256>",
                           "chance": 0.117, "above_chance": true,
                           "parts": {"ccc_valence": 0.43, "ccc_arousal": 0.39}}
              }
            }
          }
        }
      }
    }

Smoke training is bit-reproducible on one CPU family, not across families (:func:`cpu_family`): where a sibling file
``baselines.<family>.json`` (e.g. ``baselines.authenticamd-avx512.json``) exists for this machine's family, it is
read (and with ``update`` written) instead of the file named.

``score`` is the validation score the leaderboard ranks by (:attr:`harness.run_record.RunRecord.rank_score`: the
honest, cross-fitted score of a system fitted on validation, which ``ranked_by: honest_score`` records); a run fails
when its score now is below ``score - tolerance``. ``predictions`` (optional) is the
:func:`harness.drift.predictions_digest` of the predictions the score came from: a run whose predictions are
byte-identical must reproduce the score to :data:`harness.drift.DRIFT_RTOL`, or the metric code drifted.

Three more checks make the guard see breaks that a drop of a few hundredths hides (format 2; format 1 files, whose
entries lack the fields, still load and are checked as before):

- ``chance`` is the task's chance level on this validation split (:func:`harness.chance.split_chance`) and
  ``above_chance`` whether the low end of the score's 95% interval lay above it when the baseline was recorded; a
  row whose baseline was above chance fails when its interval now reaches chance (low end <= chance).
- ``parts`` is the score's breakdown (the ranked score's: ``ccc_valence``/``ccc_arousal``, ``f1_per_class``,
  ``f1_per_au``); each entry fails below its baseline - ``tolerance * sqrt(k)``, ``k`` the number of entries the
  score averages (2 for VA, 8 for EXPR, 12 for AU): an entry of a mean of ``k`` independent parts varies about
  ``sqrt(k)`` times as much as the mean. So swapped valence and arousal, or one class lost, fail although the mean
  may stay within its tolerance.

And every compared row's validation predictions go once through the submission path (:func:`file_round_trip`:
template, writer, strict reader); a file that does not score as the predictions it was written from fails the row
(the writer or reader changed the values: a rotated class order, swapped columns).

:func:`regress` runs the systems through :func:`harness.runner.run_system` (so what the store holds is reused),
compares, and with ``update`` rewrites the entries of this dataset and profile (atomically), keeping the others.
Before anything runs, :func:`harness.drift.check_leaderboard` re-scores the predictions of the runs recorded so far.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.atomic import write_atomically
from harness.chance import chance_levels
from harness.data.affwild2 import Dataset
from harness.data.templates import read_template, write_template
from harness.drift import Drift, DriftReport, check_leaderboard, predictions_digest, same_value
from harness.errors import HarnessError
from harness.leaderboard import Leaderboard
from harness.models.registry import did_you_mean
from harness.runner import NodeResult, default_profile, leaderboard_path, run_system
from harness.scoring import node_predictions
from harness.spec import PROFILES, available_specs, load_graph, load_spec, resolve_variants, split_variant, systems_dir
from harness.store import Node, Store, default_store_root
from harness.submission import read_predictions, write_predictions
from harness.tasks import TASKS, Chance, get_task

BASELINES_PATH = Path("leaderboard") / "baselines.json"
FORMAT = 2
FORMATS = (1, 2)  # the formats this harness reads: 1 lacks chance, above_chance and parts
DEFAULT_TOLERANCE = 0.02  # absolute, in challenge-score units: smoke training differs a little between machines
RANKED_BY = ("score", "honest_score")
ABOUT = (
    "Validation scores guarded by `abaw regress`, per dataset fingerprint, profile, system and task: a run fails when "
    "its score (the one the leaderboard ranks by) falls below score - tolerance. Rewrite with `abaw regress --update`."
)
_TOP_KEYS = ("format", "about", "datasets")
_DATASET_KEYS = ("name", "profiles")
_ENTRY_KEYS = ("score", "tolerance", "ranked_by", "predictions", "chance", "above_chance", "parts")


class BaselineError(HarnessError):
    """The baselines file is malformed, or names a system, variant or task that no longer exists."""


def cpu_family() -> str:
    """This machine's CPU vendor and the instruction set torch's kernels dispatch to, e.g. ``genuineintel-avx512``.

    Smoke training is bit-reproducible on one CPU family but not across families: the same code, packages and seed
    trained ``video_b1`` VA to 0.267 on an AVX-512 Xeon and to 0.236 on an AVX-512 EPYC (2026-12-04), as oneDNN and
    the BLAS pick other kernels and the rounding differences grow over the epochs."""
    import torch

    vendor = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    return f"{vendor}-{torch.backends.cpu.get_cpu_capability()}".lower().replace(" ", "_")


def family_file(path: Path, family: str) -> Path:
    """The baselines of CPU family ``family`` beside ``path`` (``baselines.json`` → ``baselines.<family>.json``):
    :func:`regress` reads it instead of ``path`` where it exists."""
    return path.with_name(f"{path.stem}.{family}{path.suffix}")


Parts = dict[str, float | tuple[float, ...]]  # a score's breakdown: part name -> value, or values per class / AU


@dataclass(frozen=True)
class Baseline:
    """One guarded score: fail below ``score - tolerance``; with ``above_chance``, also when the interval reaches
    chance; with ``parts``, also when one part falls below its own floor (:func:`part_tolerance`)."""

    score: float
    tolerance: float = DEFAULT_TOLERANCE
    ranked_by: str = "score"
    predictions: str | None = None
    chance: float | None = None
    above_chance: bool | None = None
    parts: Parts | None = None

    def to_json(self) -> dict:
        entry = {"score": self.score, "tolerance": self.tolerance, "ranked_by": self.ranked_by}
        entry |= {"predictions": self.predictions} if self.predictions else {}
        entry |= {"chance": self.chance} if self.chance is not None else {}
        entry |= {"above_chance": self.above_chance} if self.above_chance is not None else {}
        if self.parts:
            entry["parts"] = {key: list(v) if isinstance(v, tuple) else v for key, v in sorted(self.parts.items())}
        return entry


def part_tolerance(tolerance: float, parts: Parts) -> float:
    """The tolerance of one entry of ``parts``: ``tolerance * sqrt(k)``, ``k`` the entries in all (what the score
    averages), since an entry of a mean of ``k`` independent parts varies ``sqrt(k)`` times as much as the mean."""
    entries = sum(len(value) if isinstance(value, tuple) else 1 for value in parts.values())
    return tolerance * math.sqrt(max(entries, 1))


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
    if top.get("format") not in FORMATS:
        raise fail(
            "format", f"one of {', '.join(map(str, FORMATS))} (the formats this harness reads)", top.get("format")
        )
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
                    entries[task] = _entry(f"{at}.{system}.{task}", task, entry, mapping, known, fail)
                guarded[system] = entries
            profiles[profile] = guarded
        datasets[fingerprint] = {"name": name, "profiles": profiles}
    return datasets


def _entry(key: str, task: str, raw: object, mapping, known, fail) -> Baseline:
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
    chance = entry.get("chance")
    if chance is not None and (
        isinstance(chance, bool) or not isinstance(chance, int | float) or not math.isfinite(chance)
    ):
        raise fail(f"{key}.chance", "the task's chance level (a finite number), or null", chance)
    above = entry.get("above_chance")
    if above is not None and not isinstance(above, bool):
        raise fail(f"{key}.above_chance", "true or false (or null)", above)
    parts = _parts(f"{key}.parts", task, entry.get("parts"), mapping, fail)
    score, tolerance = float(entry["score"]), float(entry["tolerance"])
    return Baseline(score, tolerance, ranked_by, predictions, None if chance is None else float(chance), above, parts)


def _parts(key: str, task: str, raw: object, mapping, fail) -> Parts | None:
    """A baseline's breakdown: the task's parts, a number each or (a vector part) one number per class or AU."""
    if raw is None:
        return None
    definition = get_task(task)
    raw = mapping(raw, key, f"an object with {', '.join(definition.breakdown_names)}")
    parts: Parts = {}
    for name in definition.breakdown_names:
        value = raw.get(name)
        labels = definition.part_labels.get(name)
        if labels is not None:
            if not (isinstance(value, list) and len(value) == len(labels) and all(map(_finite, value))):
                raise fail(f"{key}.{name}", f"{len(labels)} finite numbers ({', '.join(labels)})", value)
            parts[name] = tuple(float(v) for v in value)
        elif _finite(value):
            parts[name] = float(value)
        else:
            raise fail(f"{key}.{name}", "a finite number", value)
    extra = sorted(set(raw) - set(definition.breakdown_names))
    if extra:
        raise fail(f"{key}.{extra[0]}", f"only the parts {', '.join(definition.breakdown_names)}", raw[extra[0]])
    return parts


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


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
    """One (system, task) compared: ``status`` is ``ok``, ``FAIL``, ``new`` (no baseline yet) or ``error``.

    ``chance`` is the task's chance level, ``low`` the low end of the 95% interval of the score now (of the score the
    row is ranked by, else of the in-sample score: ``interval`` says which) and ``above_chance`` whether it lies
    above chance (None when either is unknown)."""

    system: str
    task: str
    baseline: float | None
    now: float | None
    tolerance: float | None
    ranked_by: str
    status: str
    message: str | None = None
    chance: float | None = None
    low: float | None = None
    interval: str | None = None
    above_chance: bool | None = None

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
    """A system's validation score now, as the leaderboard ranks it, the digest of its predictions, the breakdown
    and 95% interval of that score (``interval`` names whose interval ``low`` is), and the task's chance level."""

    system: str
    task: str
    score: float
    ranked_by: str
    store_key: str
    predictions: str | None
    parts: Parts | None = None
    low: float | None = None
    interval: str | None = None
    chance: Chance | None = None
    file_problem: str | None = None

    @property
    def above_chance(self) -> bool | None:
        """Whether the interval's low end lies above the chance level (None when either is unknown)."""
        return None if self.low is None or self.chance is None else self.low > self.chance.level


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
    exact: bool = False,
) -> RegressReport:
    """Re-score recorded runs (drift), run ``systems`` (default: every spec in the specs folder), compare each score
    with its baseline; with ``update``, rewrite this dataset's and profile's baselines (``tolerance`` for new or all
    entries when given, else each entry keeps its own, new ones get :data:`DEFAULT_TOLERANCE`). With ``exact``, a
    row also fails when its predictions are not byte-identical to its baseline's (where the baseline records their
    digest): on the machine that recorded the baselines, runs are bit-reproducible, so any change shows."""
    if drift_only and update:
        raise BaselineError("--drift-only writes nothing and --update writes the baselines: pass one of them, not both")
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise BaselineError(f"tolerance must be a finite number >= 0 (e.g. {DEFAULT_TOLERANCE}); got {tolerance!r}")
    profile = profile or default_profile(dataset)
    store = store or Store(default_store_root())
    leaderboard = leaderboard or Leaderboard(leaderboard_path())
    folder = specs or systems_dir()
    family = cpu_family()
    own = family_file(Path(baselines_path), family)
    baselines = Baselines.load(own if own.is_file() else baselines_path)
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
    levels = chance_levels(dataset, TASKS)
    for task, level in levels.items():
        report.notes.append(f"chance level of {task} on validation: {level.describe()}")
    for name in names:
        try:
            results = run_system(name, list(TASKS), dataset, profile, store, leaderboard, folder)
        except HarnessError as error:
            report.rows.append(Row(name, "-", None, None, None, "score", "error", str(error)))
            continue
        measured += [_measure(r, dataset, store, leaderboard, levels) for r in results if r.leaderboard_id is not None]
    report.rows += _compare(measured, guarded, report, exact)
    report.notes.append(f"baselines: {baselines.path} (this CPU family: {family})")
    if report.failed and not update and baselines.path != own:
        report.notes.append(
            "smoke training is bit-reproducible within a CPU family only: if these baselines come from another "
            f"family, record this machine's with `abaw regress --update --baselines {own}` and commit it"
        )
    if update:
        _update(baselines, guarded, stale, measured, tolerance, dataset, fingerprint, profile, report)
    elif report.compared == 0 and not report.failed:
        report.notes.append(
            f"nothing compared: {baselines.path} has no baseline for dataset {fingerprint} under profile {profile} "
            "for these systems; record them with `abaw regress --update`"
        )
    return report


def _measure(
    result: NodeResult, dataset: Dataset, store: Store, leaderboard: Leaderboard, levels: dict[str, Chance]
) -> Measured:
    record = leaderboard.get(result.leaderboard_id)
    digest = predictions_digest(store.node(record.store_key))
    ranked_by = "honest_score" if record.honest else "score"
    task = get_task(record.task)
    _, summed = task.scores_from_stats(record.stats.sum(axis=0))  # the statistics are those of the ranked score
    parts = dict(task.breakdown(summed).parts)
    ci, interval = record.rank_ci, ranked_by
    if ci is None and record.ci_low is not None:
        ci, interval = (record.ci_low, record.ci_high), "score"  # no interval of the honest score: the in-sample one
    low = None if ci is None else float(ci[0])
    chance = levels.get(record.task)
    problem = file_round_trip(store.node(record.store_key), dataset, record.task)
    return Measured(
        record.system,
        record.task,
        record.rank_score,
        ranked_by,
        record.store_key,
        digest,
        parts,
        low,
        None if ci is None else interval,
        chance,
        problem,
    )


FILE_TOLERANCE = 1e-4  # VA values are written with 6 decimals: the file's CCC moves by far less than this


def file_round_trip(node: Node, dataset: Dataset, task: str) -> str | None:
    """Why a node's validation predictions do not survive the submission path, or None when they do: written with
    a template of every validation frame (:func:`harness.submission.write_predictions`), read back strictly, the
    file must score as the predictions (to :data:`FILE_TOLERANCE`: VA's 6 decimals)."""
    split = dataset.split(task, "validation")
    predictions = node_predictions(node, dataset, task, "validation")
    definition, labels = get_task(task), split.labels()
    with tempfile.TemporaryDirectory(prefix="abaw-regress-") as folder:
        template = read_template(
            write_template(Path(folder) / "template.txt", task, {t.name: t.n_rows for t in split.tracks}), task
        )
        path = write_predictions(Path(folder) / definition.submission_name(None), task, template, predictions)
        read = read_predictions(path, task, strict=True).by_track(template)
    direct = definition.scores(
        np.concatenate([predictions[name][: t.n_rows] for name, t in zip(split.names, split.tracks, strict=True)]),
        labels,
    ).score
    again = definition.scores(np.concatenate([read[name] for name in split.names]), labels).score
    if abs(direct - again) <= FILE_TOLERANCE:
        return None
    return (
        f"its validation predictions written as a submission file and read back score {again:.4f}, not "
        f"{direct:.4f}: the prediction file writer or reader changes the values"
    )


def _compare(measured: Iterable[Measured], guarded: Guarded, report: RegressReport, exact: bool = False) -> list[Row]:
    rows, risen, same_files = [], [], 0
    for now in measured:
        entry = guarded.get(now.system, {}).get(now.task)
        level = None if now.chance is None else now.chance.level
        seen = {"chance": level, "low": now.low, "interval": now.interval, "above_chance": now.above_chance}
        if entry is None:
            rows.append(
                Row(now.system, now.task, None, now.score, None, now.ranked_by, "new", "no baseline yet", **seen)
            )
            continue
        row = Row(now.system, now.task, entry.score, now.score, entry.tolerance, now.ranked_by, "ok", None, **seen)
        problems = _problems(entry, now)
        if exact and entry.predictions and entry.predictions != now.predictions:
            problems.append("its predictions are not byte-identical to its baseline's (--exact)")
        other = [f"baseline is a {entry.ranked_by}, now ranked by {now.ranked_by}"] * (entry.ranked_by != now.ranked_by)
        if problems:
            row.status = "FAIL"
        elif now.score > entry.score + entry.tolerance:
            risen.append(f"{now.system} {now.task}")
        row.message = "; ".join(problems + other) or None
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


def _problems(entry: Baseline, now: Measured) -> list[str]:
    """Why ``now`` fails its baseline: the score below its floor, the interval reaching chance (a baseline recorded
    above chance), a part of the breakdown below its own floor; empty when it passes."""
    problems = [now.file_problem] if now.file_problem else []
    if not math.isfinite(now.score) or now.score < entry.score - entry.tolerance:
        floor = entry.score - entry.tolerance
        problems.append(f"below baseline {entry.score:.4f} - tolerance {entry.tolerance:g} = {floor:.4f}")
    if entry.above_chance and now.chance is not None and (now.low is None or now.low <= now.chance.level):
        low = "unknown" if now.low is None else f"{now.low:.4f}"
        problems.append(
            f"the 95% interval of the {now.interval or now.ranked_by} now reaches chance (low end {low} <= chance "
            f"{now.chance.level:.4f}); the baseline was above chance"
        )
    if entry.parts and now.parts:
        slack = part_tolerance(entry.tolerance, entry.parts)
        task = get_task(now.task)
        for key, was in entry.parts.items():
            names = task.part_labels.get(key)
            pairs = zip(names, was, now.parts[key], strict=True) if names else [(None, was, now.parts[key])]
            fell = [(name, old, new) for name, old, new in pairs if not new >= old - slack]
            for name, old, new in fell:
                label = f"{key}[{name}]" if name else key
                problems.append(f"{label} {new:.4f} below baseline {old:.4f} - {slack:.3g} = {old - slack:.4f}")
    return problems


def _update(baselines, guarded, stale, measured, tolerance, dataset, fingerprint, profile, report) -> None:
    for system, why in stale:
        guarded.pop(system, None)
        report.notes.append(f"dropped the baseline of {system!r}: {why}")
    for now in measured:
        old = guarded.get(now.system, {}).get(now.task)
        kept = tolerance if tolerance is not None else (old.tolerance if old else DEFAULT_TOLERANCE)
        level = None if now.chance is None else now.chance.level
        entry = Baseline(now.score, kept, now.ranked_by, now.predictions, level, now.above_chance, now.parts)
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
