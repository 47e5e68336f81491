"""``abaw regress`` and the metric drift guard on a toy kind whose quality is a setting: baselines written and
checked, a lowered quality failing with a table naming the system, fusion compared by its honest score, stale,
foreign and malformed baselines files, and a tampered metric caught both from the leaderboard and from a baseline."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from harness import metrics
from harness.chance import split_chance
from harness.cli import app
from harness.data.affwild2 import Dataset
from harness.drift import DRIFT_RTOL, check_leaderboard, same_value
from harness.errors import HarnessError, SpecError
from harness.leaderboard import Leaderboard
from harness.models.registry import KIND_MODULES, Kind, register_kind
from harness.regress import (
    DEFAULT_TOLERANCE,
    Baseline,
    BaselineError,
    Baselines,
    Measured,
    _problems,
    parse_systems,
    part_tolerance,
    regress,
)
from harness.runner import run_system
from harness.store import Store
from harness.tasks import Chance
from harness.tasks import va as va_task
from harness.tasks.expr import Expression

# ----------------------------------------------------------------------------------------------- a toy kind


class QualitySettings(BaseModel):
    """A fake system: VA ``quality`` × truth blended with seeded noise, EXPR the true class for a fraction ``quality``
    of frames and a random one elsewhere (1 = the labels themselves)."""

    model_config = ConfigDict(extra="forbid")

    quality: float = 0.8
    broken: bool = False  # fit raises a HarnessError, as a missing weights file would


@register_kind("regress_toy")
class QualityKind(Kind):
    version = "1"
    Settings = QualitySettings
    profiles: dict = {}
    outputs = ("pred",)

    def __init__(self, settings: QualitySettings, task: str, seed: int) -> None:
        self.settings, self.task, self.seed = settings, task, seed

    def fit(self, context) -> "QualityKind":
        if self.settings.broken:
            raise HarnessError("toy weights file /nowhere/toy.safetensors is missing")
        self.fitted_ = True
        return self

    def predict(self, context, split_name, tracks):
        split, q = context.split(split_name), self.settings.quality
        for index, name in enumerate(tracks):
            track = split.track(name)
            rng = np.random.default_rng([self.seed, index, ord(split_name[0])])
            n = track.n_rows
            if self.task == "va":
                truth = np.zeros((n, 2)) if track.labels is None else np.where(track.labels == -5, 0, track.labels)
                pred = np.clip(q * truth + (1 - q) * rng.uniform(-1, 1, (n, 2)), -1, 1)
            else:
                truth = np.zeros(n, int) if track.labels is None else np.maximum(track.labels, 0)
                guessed = np.where(rng.random(n) < q, truth, rng.integers(0, 8, n))  # right a fraction q of frames
                pred = 0.6 * np.eye(8)[guessed] + 0.4 * rng.dirichlet(np.ones(8), n)
            yield name, {"pred": pred.astype(np.float32)}

    def state(self) -> dict:
        return {"quality": torch.tensor([self.settings.quality])}

    def load_state(self, state) -> "QualityKind":
        self.fitted_ = True
        return self


SPECS = {  # VA and EXPR: the toy kind draws no AU predictions
    "good": "kind: regress_toy\ntasks: [va, expr]\nseed: 1\nquality: 0.8\n",
    "weak": "kind: regress_toy\ntasks: [va, expr]\nseed: 2\nquality: 0.7\n",
    "fused": "kind: dwf\ntasks: [va, expr]\ninputs: [good, weak]\nsamples: 100\nfolds: 3\n",
    "sweep": "kind: regress_toy\ntasks: [va]\nseed: 3\nquality: [0.5, 0.8]\n",
}


@pytest.fixture(scope="module")
def world(synthetic_tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    """The toy specs, a store and a leaderboard on the tiny synthetic dataset; ``good`` already run once."""
    patch = pytest.MonkeyPatch()
    patch.setitem(KIND_MODULES, "regress_toy", __name__)
    base = tmp_path_factory.mktemp("regress")
    systems = base / "systems"
    systems.mkdir()
    for name, text in SPECS.items():
        (systems / f"{name}.yaml").write_text(text)
    dataset, store, board = Dataset(synthetic_tiny), Store(base / "store"), Leaderboard(base / "board.sqlite")
    run_system("good", ["va", "expr"], dataset, "smoke", store, board, systems)
    yield dataset, store, board, systems
    patch.undo()


def call(world, baselines: Path, **kwargs):
    dataset, store, board, systems = world
    kwargs.setdefault("store", store)
    kwargs.setdefault("leaderboard", board)
    kwargs.setdefault("specs", systems)
    return regress(dataset, "smoke", baselines_path=baselines, **kwargs)


def write_baselines(path: Path, datasets: dict) -> Path:
    path.write_text(json.dumps({"format": 1, "datasets": datasets}))
    return path


def entry(score: float, tolerance: float = 0.02) -> dict:
    return {"score": score, "tolerance": tolerance}


# ----------------------------------------------------------------------------------------------- regress


def test_update_writes_every_variant_and_fusion_by_its_honest_score(world, tmp_path: Path) -> None:
    dataset, _, board, _ = world
    path = tmp_path / "leaderboard" / "baselines.json"
    report = call(world, path, update=True, systems=["good", "fused", "sweep"])
    assert report.ok and report.updated and {row.status for row in report.rows} == {"new"}
    raw = json.loads(path.read_text())
    assert raw["format"] == 2 and "abaw regress --update" in raw["about"]
    saved = raw["datasets"][dataset.fingerprint()]
    assert saved["name"] == dataset.root.name
    guarded = saved["profiles"]["smoke"]
    assert set(guarded) == {"good", "fused", "sweep[quality=0.5]", "sweep[quality=0.8]"}
    assert set(guarded["good"]) == {"va", "expr"} and set(guarded["sweep[quality=0.8]"]) == {"va"}
    assert guarded["good"]["va"]["tolerance"] == DEFAULT_TOLERANCE and len(guarded["good"]["va"]["predictions"]) == 64
    good_va = guarded["good"]["va"]
    assert good_va["chance"] == split_chance(dataset, "va").level and good_va["above_chance"] is True
    assert set(good_va["parts"]) == {"ccc_valence", "ccc_arousal"}
    assert len(guarded["good"]["expr"]["parts"]["f1_per_class"]) == 8
    (fused_va,) = [row for row in board.current("va") if row.system == "fused"]
    assert guarded["fused"]["va"]["ranked_by"] == "honest_score"
    assert guarded["fused"]["va"]["score"] == fused_va.rank_score != fused_va.score
    again = call(world, path, systems=["good", "fused", "sweep"])
    assert again.ok and again.compared == 6 and {row.status for row in again.rows} == {"ok"}
    assert again.drift.ok and again.drift.checked >= 6
    assert [row.change for row in again.rows] == [0.0] * 6
    assert any("very prediction files" in note for note in again.notes)


def use_world(world, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the CLI at ``world``'s store, leaderboard and spec folder."""
    _, store, board, systems = world
    monkeypatch.setenv("ABAW_STORE", str(store.root))
    monkeypatch.setenv("ABAW_LEADERBOARD", str(board.path))
    monkeypatch.setenv("ABAW_SYSTEMS", str(systems))


def test_lowering_a_systems_quality_fails_with_a_table_naming_it(world, tmp_path: Path, monkeypatch) -> None:
    dataset, _, _, systems = world
    (systems / "shaky.yaml").write_text("kind: regress_toy\ntasks: [va, expr]\nseed: 4\nquality: 0.8\n")
    use_world(world, monkeypatch)
    path = tmp_path / "baselines.json"
    args = ["regress", "--data", str(dataset.root), "--baselines", str(path), "--systems", "shaky"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--update", "--tolerance", "0.05"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "new" in result.stdout
    assert runner.invoke(app, args).exit_code == 0
    # a profile override lowers the quality
    lowered = "kind: regress_toy\ntasks: [va, expr]\nseed: 4\nquality: 0.8\nprofiles:\n  smoke: {quality: 0.4}\n"
    (systems / "shaky.yaml").write_text(lowered)
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if "shaky" in line]
    assert len(lines) == 2 and all("FAIL" in line for line in lines)
    assert "FAIL: drift" in result.stdout and "below" in result.stderr
    result = runner.invoke(app, [*args, "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and not report["ok"] and {row["status"] for row in report["rows"]} == {"FAIL"}
    assert all(row["change"] < -0.05 for row in report["rows"])
    help_text = " ".join(runner.invoke(app, ["regress", "--help"]).stdout.split())
    assert "Example: abaw regress --systems video_b1,kelm" in help_text


def test_a_system_that_cannot_run_is_an_error_row(world, tmp_path: Path) -> None:
    (world[3] / "broken.yaml").write_text("kind: regress_toy\ntasks: [va, expr]\nbroken: true\n")
    report = call(world, tmp_path / "b.json", update=True, systems=["good", "broken"])
    (row,) = [row for row in report.rows if row.system == "broken"]
    assert row.status == "error" and "toy.safetensors" in row.message and not report.ok
    assert set(Baselines.load(tmp_path / "b.json").guarded(world[0].fingerprint(), "smoke")) == {"good"}
    (world[3] / "broken.yaml").unlink()


def test_an_unknown_system_fails_before_anything_runs(world, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="did you mean 'good'"):
        call(world, tmp_path / "b.json", systems=["goood"])
    with pytest.raises(BaselineError, match="holds no spec"):
        call(world, tmp_path / "b.json", specs=tmp_path)
    with pytest.raises(BaselineError, match=r"tolerance must be a finite number >= 0.*got -0\.1"):
        call(world, tmp_path / "b.json", update=True, tolerance=-0.1)
    with pytest.raises(BaselineError, match="pass one of them, not both"):
        call(world, tmp_path / "b.json", update=True, drift_only=True)


def test_a_baseline_naming_a_removed_system_or_variant_names_it_and_the_file(world, tmp_path: Path) -> None:
    fingerprint = world[0].fingerprint()
    for system, why in [("retired", "no spec 'retired'"), ("sweep[quality=0.9]", r"variants: sweep\[quality=0.5\]")]:
        smoke = {"good": {"va": entry(0.1)}, system: {"va": entry(0.5)}}
        path = write_baselines(tmp_path / "baselines.json", {fingerprint: {"profiles": {"smoke": smoke}}})
        message = rf"{path}: key 'datasets\.{fingerprint}\.profiles\.smoke\.{re.escape(system)}'.*{why}"
        with pytest.raises(BaselineError, match=message):
            call(world, path, systems=["good"])
        report = call(world, path, systems=["good"], update=True)
        assert any(f"dropped the baseline of {system!r}" in note for note in report.notes)
        assert set(Baselines.load(path).guarded(fingerprint, "smoke")) == {"good"}


def test_baselines_of_another_dataset_are_ignored_with_a_note(world, tmp_path: Path) -> None:
    fingerprint = world[0].fingerprint()
    foreign = {"0123456789abcdef": {"name": "Aff-Wild2", "profiles": {"paper": {"good": {"va": entry(0.99)}}}}}
    path = write_baselines(tmp_path / "baselines.json", foreign)
    report = call(world, path, systems=["good"])
    assert any("ignored baselines of dataset 0123456789abcdef (Aff-Wild2), profile paper" in n for n in report.notes)
    assert not report.ok and report.compared == 0 and any("nothing compared" in n for n in report.notes)
    report = call(world, path, systems=["good"], update=True)
    raw = json.loads(path.read_text())["datasets"]
    assert set(raw) == {"0123456789abcdef", fingerprint} and raw["0123456789abcdef"]["profiles"]["paper"]["good"]
    assert call(world, path, systems=["good"]).ok


def test_this_cpu_familys_baselines_are_read_instead_of_the_named_file(world, tmp_path: Path, monkeypatch) -> None:
    """Smoke training is reproducible within a CPU family: a sibling recorded on this family wins; another family's
    failing file says how to record this one's."""
    import harness.regress as regress_module

    monkeypatch.setattr(regress_module, "cpu_family", lambda: "testvendor-avx2")
    fingerprint = world[0].fingerprint()
    named = write_baselines(
        tmp_path / "baselines.json", {fingerprint: {"profiles": {"smoke": {"good": {"va": entry(0.99)}}}}}
    )
    report = call(world, named, systems=["good"])
    assert not report.ok and any(
        "--baselines " + str(tmp_path / "baselines.testvendor-avx2.json") in n for n in report.notes
    )
    own = call(world, tmp_path / "baselines.testvendor-avx2.json", systems=["good"], update=True)
    assert own.ok and own.baselines == tmp_path / "baselines.testvendor-avx2.json"
    again = call(world, named, systems=["good"])
    assert again.ok and again.baselines == own.baselines and again.compared == 2
    assert any(f"baselines: {own.baselines} (this CPU family: testvendor-avx2)" in n for n in again.notes)
    assert json.loads(named.read_text())["datasets"][fingerprint]["profiles"]["smoke"]["good"]["va"]["score"] == 0.99


def test_cpu_family_names_the_vendor_and_torchs_instruction_set() -> None:
    import torch

    from harness.regress import cpu_family, family_file

    assert cpu_family().endswith("-" + torch.backends.cpu.get_cpu_capability().lower())
    assert family_file(Path("leaderboard/baselines.json"), "x-avx2") == Path("leaderboard/baselines.x-avx2.json")


def nested(task: str = "va", profile: str = "smoke", **fields) -> str:
    """A baselines file holding one entry (system 'a', dataset 'fp') with ``fields``."""
    return json.dumps({"format": 1, "datasets": {"fp": {"profiles": {profile: {"a": {task: fields}}}}}})


KEY = r"key 'datasets\.fp\.profiles\.smoke\.a\.va"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": 1, "datasets": {', r"line 1: not valid JSON"),
        ('{"format": 3, "datasets": {}}', r"key 'format': expected one of 1, 2"),
        (nested(score=1, tolerance=0, chance="low"), rf"{KEY}\.chance': expected the task's chance level"),
        (nested(score=1, tolerance=0, above_chance="yes"), rf"{KEY}\.above_chance': expected true or false"),
        (nested(score=1, tolerance=0, parts={"ccc_valence": 0.1}), rf"{KEY}\.parts\.ccc_arousal': expected a finite"),
        (
            nested(task="expr", score=1, tolerance=0, parts={"f1_per_class": [0.1] * 7}),
            r"key 'datasets\.fp\.profiles\.smoke\.a\.expr\.parts\.f1_per_class': expected 8 finite numbers",
        ),
        (
            nested(score=1, tolerance=0, parts={"ccc_valence": 0, "ccc_arousal": 0, "v": 1}),
            rf"{KEY}\.parts\.v': expected only the parts ccc_valence, ccc_arousal",
        ),
        ('{"format": 1, "dataset": {}}', r"key 'dataset' is unknown; did you mean 'datasets'"),
        (nested(profile="smok"), r"key 'datasets\.fp\.profiles\.smok': unknown profile 'smok'; did you mean 'smoke'"),
        (nested(score="high", tolerance=0), rf"{KEY}\.score': expected a finite number; found 'high'"),
        (nested(score=1, tolerence=0), rf"{KEY}\.tolerence' is unknown; did you mean 'tolerance'"),
        (nested(score=1, tolerance=-1), rf"{KEY}\.tolerance': expected a number >= 0; found -1"),
        (nested(task="vaa", score=1, tolerance=0), rf"{KEY}a': unknown task 'vaa'; did you mean 'va'"),
    ],
)
def test_a_malformed_baselines_file_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "baselines.json"
    path.write_text(text)
    with pytest.raises(BaselineError, match=rf"{path}.*{message}"):
        Baselines.load(path)


def test_a_score_falling_to_chance_fails_even_within_a_wide_tolerance(world, tmp_path: Path, monkeypatch) -> None:
    dataset, _, _, systems = world
    (systems / "fading.yaml").write_text("kind: regress_toy\ntasks: [va, expr]\nseed: 5\nquality: 0.8\n")
    use_world(world, monkeypatch)
    path = tmp_path / "baselines.json"
    args = ["regress", "--data", str(dataset.root), "--baselines", str(path), "--systems", "fading"]
    runner = CliRunner()
    assert runner.invoke(app, [*args, "--update", "--tolerance", "1"]).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "chance" in result.stdout and "yes" in result.stdout
    # at quality 0 the toy predicts noise: within the tolerance of 1, but at chance
    (systems / "fading.yaml").write_text(
        "kind: regress_toy\ntasks: [va, expr]\nseed: 5\nquality: 0.8\nprofiles:\n  smoke: {quality: 0.0}\n"
    )
    result = runner.invoke(app, [*args, "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    (va,) = [row for row in report["rows"] if row["task"] == "va"]
    assert va["status"] == "FAIL" and va["above_chance"] is False and va["change"] > -1
    assert "95% interval of the score now reaches chance" in va["message"]
    # a format-1 entry (no above_chance) keeps the old behaviour: within the tolerance, it passes
    raw = json.loads(path.read_text())
    for entry_ in raw["datasets"][dataset.fingerprint()]["profiles"]["smoke"]["fading"].values():
        for key in ("chance", "above_chance", "parts"):
            entry_.pop(key)
    path.write_text(json.dumps(raw | {"format": 1}))
    assert runner.invoke(app, args).exit_code == 0
    (systems / "fading.yaml").unlink()


def test_leaderboard_shows_the_chance_level_of_the_dataset_at_hand(world, tmp_path: Path, monkeypatch) -> None:
    dataset, _, board, _ = world
    monkeypatch.setenv("ABAW_LEADERBOARD", str(board.path))
    monkeypatch.setenv("ABAW_HOME", str(tmp_path))  # no default synthetic dataset there: no chance line
    monkeypatch.delenv("ABAW_DATA", raising=False)
    runner = CliRunner()
    assert "chance level" not in runner.invoke(app, ["leaderboard", "--task", "va"]).stdout
    shown = runner.invoke(app, ["leaderboard", "--task", "expr", "--data", str(dataset.root)])
    assert shown.exit_code == 0, shown.output
    expected = split_chance(dataset, "expr")
    assert f"chance level on validation of {dataset.root.name}: {expected.describe()}" in " ".join(shown.stdout.split())
    monkeypatch.setenv("ABAW_DATA", str(dataset.root))
    data = json.loads(runner.invoke(app, ["leaderboard", "--json"]).stdout)
    assert data["chance"]["dataset_fingerprint"] == dataset.fingerprint()
    assert data["chance"]["expr"]["level"] == expected.level and data["chance"]["va"]["constant_name"] == "train mean"


def test_a_writer_that_changes_the_values_fails_the_row(world, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "baselines.json"
    assert call(world, path, systems=["good"], update=True).ok
    original = Expression.format_rows
    monkeypatch.setattr(
        Expression, "format_rows", lambda self, locations, rows: original(self, locations, (rows + 1) % 8)
    )
    report = call(world, path, systems=["good"])
    (expr,) = [row for row in report.rows if row.task == "expr"]
    assert expr.status == "FAIL" and "the prediction file writer or reader changes the values" in expr.message
    assert [row.status for row in report.rows if row.task == "va"] == ["ok"] and not report.ok


def test_exact_fails_a_row_whose_predictions_changed_within_the_tolerance(world, tmp_path: Path) -> None:
    path = tmp_path / "baselines.json"
    (world[3] / "nudged.yaml").write_text("kind: regress_toy\ntasks: [va]\nseed: 6\nquality: 0.8\n")
    assert call(world, path, systems=["nudged"], update=True).ok
    assert call(world, path, systems=["nudged"], exact=True).ok  # the same predictions: passes
    (world[3] / "nudged.yaml").write_text("kind: regress_toy\ntasks: [va]\nseed: 6\nquality: 0.799\n")
    assert call(world, path, systems=["nudged"]).ok  # a change far within the tolerance…
    report = call(world, path, systems=["nudged"], exact=True)  # …is one with --exact
    (row,) = report.rows
    assert row.status == "FAIL" and "not byte-identical to its baseline's (--exact)" in row.message and not report.ok
    (world[3] / "nudged.yaml").unlink()


def measured(task: str, score: float, parts: dict, low: float | None = 0.3, chance: float = 0.1) -> Measured:
    level = Chance(chance, chance, "constant", 0.0)
    return Measured("s", task, score, "score", "key", None, parts, low, "score", level)


def test_each_part_of_the_breakdown_has_its_own_floor() -> None:
    was = {"ccc_valence": 0.5, "ccc_arousal": 0.3}
    entry_ = Baseline(0.4, 0.02, parts=was, chance=0.0, above_chance=True)
    assert part_tolerance(0.02, was) == pytest.approx(0.02 * 2**0.5)
    assert _problems(entry_, measured("va", 0.4, was)) == []
    swapped = {"ccc_valence": 0.3, "ccc_arousal": 0.5}  # the mean is unchanged: only the parts see it
    (problem,) = _problems(entry_, measured("va", 0.4, swapped))
    assert problem.startswith("ccc_valence 0.3000 below baseline 0.5000 - 0.0283 = 0.4717")
    classes = tuple([0.4] * 8)
    expr = Baseline(0.4, 0.02, parts={"f1_per_class": classes})
    lost = (0.4, 0.4, 0.4, 0.3, 0.4, 0.4, 0.4, 0.45)
    (problem,) = _problems(expr, measured("expr", 0.39, {"f1_per_class": lost}))
    assert problem.startswith("f1_per_class[Fear] 0.3000 below baseline 0.4000")
    assert _problems(expr, measured("expr", 0.4, {"f1_per_class": (0.35, *classes[1:])})) == []  # within 0.057
    assert "low end unknown" in _problems(entry_, measured("va", 0.4, was, low=None))[0]


def test_parse_systems_keeps_a_variants_commas() -> None:
    assert parse_systems("a, b[x=1,y=2],c") == ["a", "b[x=1,y=2]", "c"]
    assert parse_systems("") is None and parse_systems(None) is None


# ----------------------------------------------------------------------------------------------- drift


def tamper_ccc(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change of the CCC definition far below any score tolerance: a relative 1e-6 (where the VA task takes it)."""
    original = metrics.ccc_from_central_moments
    monkeypatch.setattr(va_task, "ccc_from_central_moments", lambda *moments: original(*moments) * (1 + 1e-6))


def test_drift_is_clean_when_unchanged_and_caught_when_the_metric_changes(world, monkeypatch) -> None:
    dataset, store, board, _ = world
    clean = check_leaderboard(dataset, store, board, ["good"])
    assert clean.ok and clean.checked == 2, clean.findings
    tamper_ccc(monkeypatch)
    drifted = check_leaderboard(dataset, store, board, ["good"])
    assert drifted.checked == 2 and not drifted.ok
    fields = {(finding.task, finding.field) for finding in drifted.findings}
    assert fields == {("va", "score"), ("va", "ccc_valence"), ("va", "ccc_arousal")}
    (score,) = [finding for finding in drifted.findings if finding.field == "score"]
    assert score.system == "good" and score.source.startswith("leaderboard row ")
    assert score.now == pytest.approx(score.recorded * (1 + 1e-6), rel=1e-12)


def test_drift_beyond_the_tolerance_is_caught_from_a_baselines_same_prediction_files(world, tmp_path, monkeypatch):
    path = tmp_path / "baselines.json"
    assert call(world, path, systems=["good"], update=True).ok
    fresh = Leaderboard(tmp_path / "empty.sqlite")  # no recorded runs: only the baseline can reveal the drift
    tamper_ccc(monkeypatch)
    report = call(world, path, systems=["good"], leaderboard=fresh)
    assert [row.status for row in report.rows] == ["ok", "ok"]  # within the tolerance…
    (finding,) = report.drift.findings  # …but the same files no longer give the same score
    assert finding.system == "good" and finding.task == "va" and str(path) in finding.source
    assert not report.ok


def test_cli_drift_only_reports_json_without_training(world, monkeypatch) -> None:
    dataset = world[0]
    use_world(world, monkeypatch)
    monkeypatch.setattr(QualityKind, "fit", lambda *a: pytest.fail("--drift-only must not train"))
    args = ["regress", "--drift-only", "--data", str(dataset.root), "--systems", "good", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["drift"]["ok"] and report["drift"]["checked"] >= 2 and report["rows"] == []
    tamper_ccc(monkeypatch)
    result = CliRunner().invoke(app, args)
    drifted = json.loads(result.stdout)["drift"]
    fields = {f["field"] for f in drifted["findings"]}
    assert result.exit_code == 1 and fields == {"score", "ccc_valence", "ccc_arousal"}
    result = CliRunner().invoke(app, args[:-1])
    assert result.exit_code == 1 and "metric drift" in result.stdout


def test_same_value_is_relative_and_treats_missing_alike() -> None:
    assert same_value(0.5, 0.5 * (1 + DRIFT_RTOL / 2)) and not same_value(0.5, 0.5 * (1 + 10 * DRIFT_RTOL))
    assert same_value(None, float("nan")) and not same_value(None, 0.0) and same_value(0.0, 1e-13)
