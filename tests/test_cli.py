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
    assert report["ci95_note"] == "over 2 videos: not meaningful (fewer than 5)" and report["warnings"] == []


def test_score_expr_and_human_output(handmade_root: Path, tmp_path: Path) -> None:
    lines = ["image_location," + EXPR_HEADER] + [
        f"118-30-640x480/{i:05d}.jpg,{c}" for i, c in enumerate([4, 5, 5, 1], 1)
    ]
    path = write_text(tmp_path / "e.txt", "\n".join(lines) + "\n\n")
    result = runner.invoke(app, ["score", str(path), "--task", "expr", "--data", str(handmade_root)])
    assert result.exit_code == 0, result.output
    # labels 4,4,5,1 → Happiness F1 2/3, Sadness 2/3, Anger 1; the other 5 classes 0
    assert "score 0.2917" in result.stdout and "Anger 1.000" in result.stdout
    interval = re.search(
        r"\(95% video-block interval (\S+)–(\S+) — (.*?)\) over 4 frames", result.stdout.replace("\n", "")
    )
    assert interval and interval[3] == "over 1 video: not meaningful (fewer than 5)", result.stdout
    assert interval[1] == interval[2] == "0.2917"  # one video: every resample is that video; the number is kept


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
        (VA_FILE.replace("image_location,valence,arousal", "'image_location','valence','arousal'"), "line 1: expected"),
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


SUN_EXPR_HEADER = 'image_location,"Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"'


def _expr_file(tmp_path: Path, header: str, classes: list[str], track: str = "118-30-640x480") -> Path:
    rows = [f"{track}/{i:05d}.jpg,{c}" for i, c in enumerate(classes, 1)]
    return write_text(tmp_path / "expr.txt", "\n".join([header, *rows]) + "\n")


def test_score_reads_the_sun_teams_quoted_header_with_a_warning_and_strict_refuses_it(handmade_root, tmp_path):
    path = _expr_file(tmp_path, SUN_EXPR_HEADER, ["4", "5", "5", "1"])
    base = ["score", str(path), "--task", "expr", "--data", str(handmade_root)]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "score 0.2917" in result.stdout
    warning = result.stderr.replace("\n", "")
    assert warning.startswith(f"warning: {path}, line 1: found '{SUN_EXPR_HEADER}', which differs"), warning
    assert 'only by quotes around "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other" (8 names' in warning
    report = json.loads(runner.invoke(app, [*base, "--json"]).stdout)
    assert report["score"] == pytest.approx(0.2917, abs=1e-4) and len(report["warnings"]) == 1
    assert report["warnings"][0].startswith("line 1: found")
    strict = runner.invoke(app, [*base, "--strict"])
    assert strict.exit_code == 2 and "Traceback" not in strict.output
    assert re.search(
        r"^error: .*expr\.txt, line 1: found .*\(strict: every warning is an error\)$", strict.stderr.replace("\n", "")
    )


def test_score_reads_float_classes_only_with_lenient_numbers(handmade_root, tmp_path):
    path = _expr_file(tmp_path, "image_location," + EXPR_HEADER, ["4.0", "5", "5.0", "1"])
    base = ["score", str(path), "--task", "expr", "--data", str(handmade_root)]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2 and "line 2: expected an integer class" in refused.stderr.replace("\n", "")
    assert "--lenient-numbers" in refused.stderr.replace("\n", "")
    result = runner.invoke(app, [*base, "--lenient-numbers"])
    assert result.exit_code == 0 and "score 0.2917" in result.stdout
    assert "warning:" in result.stderr and "2 EXPR class(es) written as whole-number floats" in result.stderr


def test_validate_warns_on_the_sun_teams_header_and_strict_makes_it_an_error(handmade_root, tmp_path):
    path = _expr_file(tmp_path, SUN_EXPR_HEADER, ["4", "0"], track="test1")
    base = ["validate", str(path), "--task", "expr", "--data", str(handmade_root)]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "valid, with 1 warnings of 1 kinds" in result.stdout.replace(
        "\n", ""
    ) and "warning header_format (1)" in result.stdout.replace("\n", "")
    report = json.loads(runner.invoke(app, [*base, "--json"]).stdout)
    assert report["ok"] is True and report["problems"] == {} and list(report["warnings"]) == ["header_format"]
    strict = runner.invoke(app, [*base, "--strict"])
    assert strict.exit_code == 1 and "INVALID, 1 problems of 1 kinds" in strict.stdout.replace("\n", "")
    assert "(strict: every warning is a problem)" in strict.stdout.replace("\n", "")
    report = json.loads(runner.invoke(app, [*base, "--strict", "--json"]).stdout)
    assert report["ok"] is False and list(report["problems"]) == ["header_format"] and report["warnings"] == {}


def test_validate_float_classes_with_and_without_lenient_numbers(handmade_root, tmp_path):
    path = _expr_file(tmp_path, "image_location," + EXPR_HEADER, ["4.0", "0"], track="test1")
    base = ["validate", str(path), "--task", "expr", "--data", str(handmade_root)]
    result = runner.invoke(app, base)
    assert (
        result.exit_code == 1
        and "float_class (1): EXPR classes written as whole-number floats" in result.stdout.replace("\n", "")
    )
    assert "'test1/00001.jpg,4.0': write the integer class 4 (or pass --lenient-numbers)" in result.stdout.replace(
        "\n", ""
    )
    lenient = runner.invoke(app, [*base, "--lenient-numbers"])
    assert lenient.exit_code == 0 and "warning float_class (1)" in lenient.stdout.replace("\n", "")
    assert "'test1/00001.jpg,4.0': read as class 4" in lenient.stdout.replace("\n", "")
    assert runner.invoke(app, [*base, "--lenient-numbers", "--strict"]).exit_code == 1


def test_run_and_submit_tables_mark_an_interval_over_few_videos() -> None:
    from harness.cli import _few_videos_caption, _score_cell

    few = {"score": 0.53471, "ci95": [0.5347, 0.5347], "ci95_note": "over 2 videos: not meaningful (fewer than 5)"}
    many = {"score": 0.5, "ci95": [0.4, 0.6], "ci95_note": None}
    assert _score_cell(few) == "0.5347 (0.535–0.535 ‡)" and _score_cell(many) == "0.5000 (0.400–0.600)"
    assert _score_cell(None) == ""
    assert _few_videos_caption([few, many, few]) == "‡ 95% interval over 2 videos: not meaningful (fewer than 5)"
    assert _few_videos_caption([many]) is None


def test_an_au_score_prints_its_per_au_f1_and_keeps_it_in_the_summary(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from rich.console import Console

    import harness.cli as cli
    from harness.data.affwild2 import Split, Track
    from harness.scoring import score_split
    from harness.tasks import get_task

    labels = np.zeros((6, 12), np.int8)
    labels[:3, 0] = labels[::2, 6] = 1  # AU1 on the first three frames, AU12 on every other one
    labels[5] = -1  # an invalid frame
    pred = labels.clip(0, 1)
    pred[0, 0] = 0  # one AU1 frame missed: F1 2·2 / (2·2 + 0 + 1) = 0.8
    split = Split("au", "validation", (Track("video1", 6, labels, None, None, None),))
    result = score_split(split, {"video1": pred}, n_resamples=50)
    units = get_task("au").columns
    assert result["f1_per_au"][0] == pytest.approx(0.8) and result["f1_per_au"][units.index("AU12")] == 1.0
    assert result["score"] == pytest.approx(1.8 / 12) and result["frames"] == 5
    monkeypatch.setattr(cli, "out", Console(width=300, highlight=False))
    cli._render_score(result)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("au validation: score 0.1500 (95% video-block interval 0.1500–0.1500 — over 1 video")
    assert lines[1] == "F1 per AU: " + ", ".join(
        f"{name} {value:.3f}" for name, value in zip(units, result["f1_per_au"], strict=True)
    )
    assert lines[1].startswith("F1 per AU: AU1 0.800, AU2 0.000, AU4 0.000") and "AU12 1.000" in lines[1]
    summary = cli._summary(result)
    assert list(summary) == ["score", "ci95", "ci95_note", "f1_per_au", "frames", "videos"]
    assert summary["f1_per_au"] == result["f1_per_au"]


def test_score_an_au_file_of_the_synthetic_validation_split(synthetic_tiny: Path, tmp_path: Path) -> None:
    from sklearn.metrics import f1_score

    from harness.tasks import get_task

    au = get_task("au")
    split = Dataset(synthetic_tiny).split("au", "validation")
    rng = np.random.default_rng(3)
    lines, pred = ["image_location," + au.annotation_header], []
    for track in split.tracks:
        truth = np.maximum(track.labels, 0)
        rows = np.where(rng.random(truth.shape) < 0.2, 1 - truth, truth)
        pred.append(rows)
        lines += [f"{track.name}/{i:05d}.jpg," + ",".join(map(str, row)) for i, row in enumerate(rows.tolist(), 1)]
    path = write_text(tmp_path / "au.txt", "\n".join(lines[:1] + lines[:0:-1]) + "\n")  # rows in any order
    base = ["score", str(path), "--task", "au", "--data", str(synthetic_tiny)]
    result = runner.invoke(app, [*base, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    labels, pred = split.labels(), np.concatenate(pred)
    keep = au.valid(labels)
    want = f1_score(labels[keep], pred[keep], average=None, zero_division=0)
    np.testing.assert_allclose(report["f1_per_au"], want, rtol=0, atol=1e-12)
    assert report["score"] == pytest.approx(want.mean(), abs=1e-12) and report["frames"] == keep.sum()
    assert report["videos"] == len(split.tracks) and report["ci95"][0] <= report["score"] <= report["ci95"][1]
    text = " ".join(runner.invoke(app, base).stdout.split())
    assert f"au validation: score {report['score']:.4f}" in text and f"F1 per AU: AU1 {want[0]:.3f}, AU2" in text
