"""``abaw predict``: a trained static video system on a video outside the dataset, frame-level CSV (issue #9; every
other kind: ``test_predict_graph.py``).

The system's nodes are real store nodes holding a randomly initialised static video model (saved through the
store, as a trained run leaves them); RetinaFace is the real architecture with random weights saved by the test."""

import csv
from pathlib import Path

import numpy as np
import pytest
from test_faces import deepface_home, drawn_video, weight_files  # noqa: F401  (a fixture)
from typer.testing import CliRunner

from harness.cli import app
from harness.data.affwild2 import Dataset
from harness.errors import SpecError
from harness.faces.detector import FaceError
from harness.models.video import VideoKind
from harness.predict import csv_header, predict_video
from harness.runner import MODEL_FILE, plan_nodes
from harness.store import Store

SPEC = """description: a tiny static video system for predict tests
kind: video
tasks: [va, expr]
seed: 0
pretrained: false
backbone: test_efficientnet
image_size: 32
batch_size: 4
workers: 0
"""
PRIOR = {
    "va": np.array([0.3, -0.2], np.float32),
    "expr": np.eye(8, dtype=np.float32)[4],  # Happiness
    "au": np.array([0.7, 0.2, 0.5] + [0.1] * 9, np.float32),  # AU frequencies: AU1 and AU4 at >= 0.5
}
CSV_HEADER = "time,valence,arousal,expression"
AU_COLUMNS = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


@pytest.fixture
def world(handmade_root: Path, tmp_path: Path, monkeypatch):
    """A dataset, a spec folder (the video system and a dynamic one over it), and the video system's nodes in a
    store under ``$ABAW_HOME``, as if ``abaw run tiny_video --profile smoke`` had run."""
    systems = tmp_path / "systems"
    systems.mkdir()
    (systems / "tiny_video.yaml").write_text(SPEC, encoding="utf-8")
    (systems / "tiny_dynamic.yaml").write_text("kind: dynamic\ntasks: [va]\ninputs: [tiny_video]\n", encoding="utf-8")
    (systems / "tiny_au.yaml").write_text(SPEC.replace("[va, expr]", "[au, expr]"), encoding="utf-8")
    monkeypatch.setenv("ABAW_SYSTEMS", str(systems))
    monkeypatch.setenv("ABAW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ABAW_STORE", raising=False)
    dataset = Dataset(handmade_root)
    store = Store(tmp_path / "home" / "store")
    for system in ("tiny_video", "tiny_au"):
        for plan in plan_nodes(system, ["va", "expr", "au"], dataset, "smoke", systems):
            net = VideoKind(plan.resolved.settings, plan.task, 0)._build()
            net.set_prior(PRIOR[plan.task])
            node = store.node(plan.key)
            node.save_state(MODEL_FILE, {k: v.detach().contiguous() for k, v in net.state_dict().items()})
            node.complete({"system": plan.name})
    return dataset, store, systems


def test_predict_writes_one_row_per_frame(world, weight_files, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    dataset, store, systems = world
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df", weight_files["firing"])))
    video = tmp_path / "clip.mp4"
    drawn_video(video, 5)
    result = predict_video("tiny_video", video, dataset, "smoke", store, systems=systems, detect_size=64)
    assert result.fps == 25 and result.faces == 5 and not result.notes
    np.testing.assert_allclose(result.times, np.arange(5) / 25)
    assert sorted(result.outputs) == ["expr", "va"]
    assert result.outputs["va"].shape == (5, 2) and np.all(np.abs(result.outputs["va"]) < 1)
    np.testing.assert_allclose(result.outputs["expr"].sum(1), 1.0, rtol=1e-5)  # class probabilities
    assert result.decided("expr").shape == (5,) and set(result.decided("expr")) <= set(range(8))
    path = result.write_csv(tmp_path / "clip.csv")
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert lines[0] == CSV_HEADER == csv_header(["expr", "va"]) and len(lines) == 6
    rows = list(csv.DictReader(lines))
    assert float(rows[2]["time"]) == pytest.approx(0.08) and -1 < float(rows[2]["valence"]) < 1


def test_predict_without_any_face_falls_back_to_the_prior(world, weight_files, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    dataset, store, systems = world
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df", weight_files["random"])))
    video = tmp_path / "clip.mp4"
    drawn_video(video, 3)
    result = predict_video("tiny_video", video, dataset, "smoke", store, systems=systems, detect_size=64)
    assert result.faces == 0
    assert result.notes and "clip.mp4: no face found in any of its 3 frames" in result.notes[0]
    np.testing.assert_allclose(result.outputs["va"], np.tile(PRIOR["va"], (3, 1)))
    assert result.decided("expr").tolist() == [4, 4, 4]


def test_a_system_trained_for_action_units_writes_their_columns(
    world,
    weight_files,  # noqa: F811
    tmp_path: Path,
    monkeypatch,
) -> None:
    dataset, store, systems = world
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df", weight_files["firing"])))
    video = tmp_path / "clip.mp4"
    drawn_video(video, 4)
    result = predict_video("tiny_au", video, dataset, "smoke", store, systems=systems, detect_size=64)
    au = result.outputs["au"]
    assert sorted(result.outputs) == ["au", "expr"] and au.shape == (4, 12) and (au >= 0).all() and (au <= 1).all()
    lines = result.write_csv(tmp_path / "clip.csv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"time,expression,{AU_COLUMNS}" and len(lines) == 5
    rows = list(csv.DictReader(lines))
    assert [int(rows[1][unit]) for unit in AU_COLUMNS.split(",")] == (au[1] >= 0.5).astype(int).tolist()
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df2", weight_files["random"])))
    faceless = predict_video("tiny_au", video, dataset, "smoke", store, systems=systems, detect_size=64)
    assert faceless.faces == 0 and faceless.decided("au").tolist() == [[1, 0, 1] + [0] * 9] * 4  # the prior


def test_predict_cli_writes_the_csv(world, weight_files, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("DEEPFACE_HOME", str(deepface_home(tmp_path / "df", weight_files["random"])))
    dataset, _, _ = world
    video = tmp_path / "clip.mp4"
    drawn_video(video, 2)
    args = ["predict", "tiny_video", str(video), "--data", str(dataset.root), "--profile", "smoke"]
    result = CliRunner().invoke(app, [*args, "--detect-size", "64"])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "clip.csv").read_text(encoding="utf-8").splitlines()
    assert lines == [CSV_HEADER, "0.000,0.3000,-0.2000,Happiness", "0.040,0.3000,-0.2000,Happiness"]
    assert "no face found" in result.output


def test_predict_refuses_untrained_systems(world, tmp_path: Path) -> None:
    dataset, store, systems = world
    video = tmp_path / "clip.mp4"
    drawn_video(video, 1)
    with pytest.raises(SpecError, match=r"tiny_dynamic \(va\) is not trained .* run `abaw run tiny_dynamic --task va`"):
        predict_video("tiny_dynamic", video, dataset, "smoke", store, systems=systems)
    with pytest.raises(SpecError, match=r"is not trained .* run `abaw run tiny_video --task va` first"):
        predict_video("tiny_video", video, dataset, "paper", store, systems=systems)


def test_predict_refuses_a_sweep_and_a_missing_file(world, tmp_path: Path) -> None:
    dataset, store, systems = world
    (systems / "tiny_sweep.yaml").write_text(SPEC.replace("image_size: 32", "image_size: [32, 48]"), encoding="utf-8")
    video = tmp_path / "clip.mp4"
    drawn_video(video, 1)
    with pytest.raises(SpecError, match=r"'tiny_sweep' is a sweep of 2 systems .*; predict with one"):
        predict_video("tiny_sweep", video, dataset, "smoke", store, systems=systems)
    with pytest.raises(FaceError, match=r"absent\.mp4: no such video file"):
        predict_video("tiny_video", tmp_path / "absent.mp4", dataset, "smoke", store, systems=systems)


def test_predict_on_a_corrupt_video_or_without_weights(world, tmp_path: Path, monkeypatch) -> None:
    dataset, store, systems = world
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(FaceError, match=r"bad\.mp4: unreadable or truncated video"):
        predict_video("tiny_video", bad, dataset, "smoke", store, systems=systems)
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path / "nothing"))
    video = tmp_path / "clip.mp4"
    drawn_video(video, 1)
    result = CliRunner().invoke(
        app, ["predict", "tiny_video", str(video), "--data", str(dataset.root), "--profile", "smoke"]
    )
    assert result.exit_code == 2 and "retinaface.pth" in result.output and "put it there" in result.output
