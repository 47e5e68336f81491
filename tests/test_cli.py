"""The command line: score and validate hand-written ABAW files, help texts, errors without tracebacks, lazy imports."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXPR_HEADER, write_text
from typer.testing import CliRunner

from harness.cli import app
from harness.data.affwild2 import Dataset
from harness.submission import write_predictions

runner = CliRunner()
VA_FILE = """image_location,valence,arousal
10-60-1280x720_right/00002.jpg,0.2,0.7
10-60-1280x720_left/00001.jpg,0.4,0.5
10-60-1280x720_left/00002.jpg,-0.9,0.8
10-60-1280x720_right/00001.jpg,0.1,0.1
"""


def _ccc(x: np.ndarray, y: np.ndarray) -> float:
    return 2 * np.mean((x - x.mean()) * (y - y.mean())) / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_score_a_hand_written_file_like_the_organizers(handmade_root: Path, tmp_path: Path) -> None:
    path = write_text(tmp_path / "va.txt", VA_FILE.replace("\n", "\r\n"))
    result = runner.invoke(app, ["score", str(path), "--task", "va", "--data", str(handmade_root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    pred = np.array([[0.4, 0.5], [-0.9, 0.8], [0.1, 0.1], [0.2, 0.7]])
    labels = np.array([[0.5, 0.5], [-1, 1], [0, 0], [0.25, 0.75]])
    assert report["ccc_valence"] == pytest.approx(_ccc(pred[:, 0], labels[:, 0]), abs=1e-9)
    assert report["ccc_arousal"] == pytest.approx(_ccc(pred[:, 1], labels[:, 1]), abs=1e-9)
    assert report["score"] == pytest.approx((report["ccc_valence"] + report["ccc_arousal"]) / 2, abs=1e-12)
    assert report["frames"] == 4 and report["videos"] == 2 and len(report["ci95"]) == 2


def test_score_expr_and_human_output(handmade_root: Path, tmp_path: Path) -> None:
    lines = ["image_location," + EXPR_HEADER] + [
        f"118-30-640x480/{i:05d}.jpg,{c}" for i, c in enumerate([4, 5, 5, 1], 1)
    ]
    path = write_text(tmp_path / "e.txt", "\n".join(lines) + "\n\n")
    result = runner.invoke(app, ["score", str(path), "--task", "expr", "--data", str(handmade_root)])
    assert result.exit_code == 0, result.output
    # labels 4,4,5,1 → Happiness F1 2/3, Sadness 2/3, Anger 1; the other 5 classes 0
    assert "score 0.2917" in result.stdout and "Anger 1.000" in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            VA_FILE.replace("10-60-1280x720_right/00001.jpg,0.1,0.1\n", ""),
            "track '10-60-1280x720_right': expected 2 rows",
        ),
        (
            "".join(line + "\n" for line in VA_FILE.splitlines() if "right" not in line),
            "track '10-60-1280x720_right' of the va validation split is missing",
        ),
        (VA_FILE + "ghost/00001.jpg,0,0\n", "track 'ghost' is not in the va validation split"),
        (VA_FILE.replace("0.2,0.7", "nan,0.7"), r"line 2: track '10-60-1280x720_right': expected finite values"),
        (VA_FILE.replace("0.2,0.7", "0.2,1.7"), r"line 2: .*expected finite values in \[-1, 1\]"),
        (VA_FILE.replace("image_location,valence,arousal", '"image_location","valence","arousal"'), "line 1: expected"),
        ("", "empty file"),
    ],
)
def test_score_rejects_bad_files_with_a_clear_message(handmade_root: Path, tmp_path: Path, text: str, message: str):
    path = write_text(tmp_path / "bad.txt", text)
    result = runner.invoke(app, ["score", str(path), "--task", "va", "--data", str(handmade_root)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error:")
    assert re.search(message, result.stderr.replace("\n", "")), result.stderr


def test_validate_accepts_a_good_test_file_and_lists_problems_of_a_bad_one(handmade_root: Path, tmp_path: Path):
    good = write_text(
        tmp_path / "good.txt", "image_location,valence,arousal\ntest1/00001.jpg,0.1,0.2\ntest1/00002.jpg,1,-1\n"
    )
    result = runner.invoke(app, ["validate", str(good), "--task", "va", "--data", str(handmade_root)])
    assert result.exit_code == 0, result.output
    bad = write_text(
        tmp_path / "bad.txt", "image_location,valence,arousal\ntest1/00002.jpg,0.1,0.2\ntest1/00001.jpg,inf,0\n"
    )
    result = runner.invoke(app, ["validate", str(bad), "--task", "va", "--data", str(handmade_root), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["ok"]
    assert set(report["problems"]) == {"order", "non_finite"}
    assert all(problem["examples"][0]["line"] == 3 for problem in report["problems"].values())


def test_score_and_validate_on_the_synthetic_test_split(synthetic_tiny: Path, tmp_path: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    split = dataset.split("expr", "test")
    predictions = {t.name: np.where(t.labels < 0, 0, t.labels) for t in split.tracks}
    path = write_predictions(tmp_path / "expr_test.txt", "expr", dataset.template("expr"), predictions)
    base = ["--task", "expr", "--data", str(synthetic_tiny)]
    assert runner.invoke(app, ["validate", str(path), *base]).exit_code == 0
    result = runner.invoke(app, ["score", str(path), *base, "--split", "test", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    present = np.unique(split.labels()[split.valid()])
    assert report["score"] == pytest.approx(len(present) / 8)  # perfect on the classes present, 0 on the others
    assert report["videos"] == len(split.tracks)


def test_missing_dataset_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "is not a folder" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("command", [["data", "synth"], ["data", "check"], ["score"], ["validate"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.stdout


def test_light_commands_never_import_torch(handmade_root: Path, tmp_path: Path) -> None:
    path = write_text(tmp_path / "va.txt", VA_FILE)
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom harness.cli import app\n"
        f"r = CliRunner().invoke(app, ['score', {str(path)!r}, '--task', 'va', '--data', {str(handmade_root)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "heavy = [m for m in ('torch', 'timm', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
