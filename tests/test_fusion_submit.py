"""``abaw submit`` end to end on toy inputs: run, write the test files from the templates, validate, package, and
score them on the synthetic test labels."""

import json
import zipfile
from pathlib import Path

import pytest
from test_fusion import add_spec, toy_world  # noqa: F401  (the fixture: toy inputs and fusion specs)
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import SubmissionError
from harness.runner import submit_system
from harness.validation import ValidationReport, validate_predictions


def test_submit_writes_valid_packaged_files_and_scores_them(toy_world, tmp_path: Path) -> None:  # noqa: F811
    dataset, store, board, systems = toy_world
    done = submit_system("fuse", ["va", "expr"], dataset, tmp_path / "out", "smoke", store, board, systems)
    assert done.folder == tmp_path / "out" / "fuse"
    names = {"va": "CVPR_6th_ABAW_VA_test_set.txt", "expr": "CVPR_6th_ABAW_Expr_test_set.txt"}  # a 6th ABAW set
    for task in ("va", "expr"):
        path = done.files[task]
        assert path.name == names[task]
        assert validate_predictions(path, task, dataset.template(task)).ok
        assert done.honest[task]["score"] <= done.validation[task]["score"] + 0.02
        assert 0 < done.test[task]["score"] <= 1 and done.test[task]["split"] == "test"
    manifest = json.loads(done.package.manifest_path.read_text())
    assert manifest["system"] == "fuse" and manifest["validation_scores"]["va"]["fitted_on_validation"]
    assert set(manifest["extra"]["test_scores"]) == {"va", "expr"}
    with zipfile.ZipFile(done.package.zip_path) as archive:
        assert sorted(archive.namelist()) == sorted([*names.values(), "manifest.json"])


def test_a_sweep_is_submitted_one_variant_at_a_time(toy_world, tmp_path: Path) -> None:  # noqa: F811
    dataset, store, board, systems = toy_world
    add_spec(systems, "toy_sweep", "kind: toy\nseed: 4\nnoise: [0.5, 0.7]\n")
    with pytest.raises(SubmissionError, match=r"'toy_sweep' sweeps 2 variants; .*toy_sweep\[noise=0\.5\]"):
        submit_system("toy_sweep", ["va"], dataset, tmp_path, "smoke", store, board, systems)
    assert not (tmp_path / "toy_sweep").exists()
    done = submit_system("toy_sweep[noise=0.7]", ["va"], dataset, tmp_path, "smoke", store, board, systems)
    assert done.package.zip_path == tmp_path / "toy_sweep_noise-0.7" / "toy_sweep_noise-0.7.zip"
    assert done.package.manifest["system"] == "toy_sweep[noise=0.7]"


def test_both_tasks_of_a_single_task_system_submit_the_one_it_serves(toy_world, tmp_path: Path) -> None:  # noqa: F811
    dataset, store, board, systems = toy_world
    add_spec(systems, "toy_va_only", "kind: toy\ntasks: [va]\nseed: 5\n")
    done = submit_system("toy_va_only", ["va", "expr"], dataset, tmp_path, "smoke", store, board, systems)
    assert set(done.files) == {"va"} and validate_predictions(done.files["va"], "va", dataset.template("va")).ok
    with zipfile.ZipFile(done.package.zip_path) as archive:
        assert sorted(archive.namelist()) == ["CVPR_6th_ABAW_VA_test_set.txt", "manifest.json"]


def test_a_file_failing_validation_is_never_packaged(toy_world, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    dataset, store, board, systems = toy_world

    def fails(path, task, template):
        report = ValidationReport(Path(path), task, template.path, 0, template.n_rows)
        report.add("row_count", None, "made to fail")
        return report

    monkeypatch.setattr("harness.runner.validate_predictions", fails)
    with pytest.raises(SubmissionError, match=r"(?s)the written file fails validation .*made to fail"):
        submit_system("fuse", ["va"], dataset, tmp_path, "smoke", store, board, systems)
    assert not (tmp_path / "fuse" / "manifest.json").exists()


def test_cli_submit_prints_where_and_the_scores(toy_world, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    dataset, store, board, systems = toy_world
    monkeypatch.setenv("ABAW_STORE", str(store.root))
    monkeypatch.setenv("ABAW_LEADERBOARD", str(board.path))
    monkeypatch.setenv("ABAW_SYSTEMS", str(systems))
    runner = CliRunner()
    args = ["submit", "fuse", "--task", "va", "--data", str(dataset.root), "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    entry = summary["tasks"]["va"]
    assert summary["zip"].endswith("fuse.zip") and entry["honest"]["score"] and entry["test"]["score"]
    assert Path(entry["file"]).is_file()
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "fuse.zip" in result.stdout and "honest" in result.stdout
    result = runner.invoke(app, ["validate", entry["file"], "--task", "va", "--data", str(dataset.root)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["submit", "--help"])
    assert "Example: abaw submit dwf" in " ".join(result.stdout.split())
