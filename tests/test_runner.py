"""The runner on the synthetic dataset: train, predict, score, record; store hits; resume; corrupt files; new data."""

import json
import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from harness import runner
from harness.cost import THROUGHPUT_FILE, dry_run, machine
from harness.data.affwild2 import Dataset
from harness.leaderboard import Leaderboard
from harness.models.kelm import KelmKind
from harness.models.video import VideoKind
from harness.runner import plan_nodes, run_system
from harness.store import Node, Store

FAST_SPEC = """kind: video
tasks: [va, expr]
seed: 3
profiles:
  smoke: {epochs: 2, frame_step: 4, eval_step: 6, patience: 1}
"""


@pytest.fixture(scope="module")
def world(synthetic_tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    """One trained VA system on the tiny synthetic dataset, with its store, leaderboard and specs folder."""
    base = tmp_path_factory.mktemp("runner")
    systems = base / "systems"
    systems.mkdir()
    (systems / "fast_video.yaml").write_text(FAST_SPEC)
    store, board = Store(base / "store"), Leaderboard(base / "board.sqlite")
    dataset = Dataset(synthetic_tiny)
    results = run_system("fast_video", ["va"], dataset, "smoke", store, board, systems)
    return dataset, store, board, systems, results


def test_run_trains_predicts_scores_and_records(world) -> None:
    dataset, store, board, systems, results = world
    (result,) = results
    assert not result.hit and result.train_seconds > 0
    assert np.isfinite(result.score["score"]) and result.score["videos"] == len(
        dataset.split("va", "validation").tracks
    )
    (row,) = board.rows(task="va")
    assert row.system == "fast_video" and row.store_key == result.plan.key and row.profile == "smoke"
    node = store.node(result.plan.key)
    for split in ("train", "validation", "test"):
        for track in dataset.split("va", split).tracks:
            pred = node.read_track(f"pred-{split}", track.name)
            assert pred.shape == (track.n_rows, 2) and np.isfinite(pred).all() and np.abs(pred).max() <= 1
            emb = node.read_track(f"emb-{split}", track.name)
            assert emb.dtype == np.float16 and emb.shape == (
                len(dataset.split("va", split).face_frames(track.name)),
                256,
            )
    (cost,) = dry_run("fast_video", ["va"], dataset, "smoke", store, systems)  # the run measured its throughput
    assert cost.stored and cost.seconds == 0.0
    rate = json.loads((store.root / THROUGHPUT_FILE).read_text())[machine()]["video/smoke"]
    assert rate["runs"] == 1 and rate["amount"] == cost.amount and rate["seconds"] > 0


def test_rerun_is_all_store_hits(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems, _ = world
    monkeypatch.setattr(VideoKind, "fit", lambda *a: pytest.fail("an unchanged re-run must not train"))
    monkeypatch.setattr(VideoKind, "predict", lambda *a: pytest.fail("an unchanged re-run must not predict"))
    (again,) = run_system("fast_video", ["va"], dataset, "smoke", store, board, systems)
    assert again.hit and again.score["score"] == pytest.approx(world[4][0].score["score"])


def test_sweep_over_a_dynamic_system_records_one_row_per_window(world) -> None:
    dataset, store, board, systems, _ = world
    sweep = "kind: dynamic\ntasks: [va]\ninputs: [fast_video]\nwindow_s: [1, 2]\nepochs: 2\nheads: 4\n"
    (systems / "fast_dynamic.yaml").write_text(sweep)
    results = run_system("fast_dynamic", ["va"], dataset, "smoke", store, board, systems)
    assert [(r.plan.name, r.hit) for r in results] == [
        ("fast_video", True),
        ("fast_dynamic[window_s=1]", False),
        ("fast_dynamic[window_s=2]", False),
    ]
    rows = {row.system: row for row in board.rows(task="va") if row.system.startswith("fast_dynamic")}
    assert set(rows) == {"fast_dynamic[window_s=1]", "fast_dynamic[window_s=2]"}
    assert len({row.store_key for row in rows.values()}) == 2
    assert all(np.isfinite(row.score) for row in rows.values())


def test_killed_extraction_resumes_to_the_same_result(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems, (first,) = world
    node = store.node(first.plan.key)
    names = dataset.split("va", "validation").names
    saved = {name: np.array(node.read_track("pred-validation", name)) for name in names}
    for name in names[1:]:
        node.discard(f"pred-validation/{name}.npy")
    monkeypatch.setattr(VideoKind, "fit", lambda *a: pytest.fail("the saved model must be reused"))
    written = []
    original = type(node).write_track

    def dies_after_one(self, group, track, array, dtype=None):
        if group == "pred-validation" and written:
            raise KeyboardInterrupt
        written.append(track)
        return original(self, group, track, array, dtype)

    monkeypatch.setattr(type(node), "write_track", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        run_system("fast_video", ["va"], dataset, "smoke", store, board, systems)
    monkeypatch.setattr(type(node), "write_track", original)
    (resumed,) = run_system("fast_video", ["va"], dataset, "smoke", store, board, systems)
    assert not resumed.hit
    for name in names:
        np.testing.assert_array_equal(node.read_track("pred-validation", name), saved[name])


def test_truncated_store_file_is_recomputed(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems, (first,) = world
    node = store.node(first.plan.key)
    name = dataset.split("va", "test").names[0]
    saved = np.array(node.read_track("pred-test", name))
    path = node.path / "pred-test" / f"{name}.npy"
    path.write_bytes(path.read_bytes()[:100])
    monkeypatch.setattr(VideoKind, "fit", lambda *a: pytest.fail("only the torn file is recomputed"))
    (rerun,) = run_system("fast_video", ["va"], dataset, "smoke", store, board, systems)
    assert not rerun.hit
    np.testing.assert_array_equal(node.read_track("pred-test", name), saved)


def test_changed_dataset_gets_new_keys(handmade_root: Path, tmp_path: Path) -> None:
    systems = tmp_path / "systems"
    systems.mkdir()
    (systems / "v.yaml").write_text("kind: video\n")
    before = plan_nodes("v", ["va", "expr"], Dataset(handmade_root), "smoke", systems)
    label_file = handmade_root / "6th ABAW Annotations/VA_Estimation_Challenge/Train_Set/video1.txt"
    label_file.write_text(label_file.read_text().replace("0.1,0.2", "0.1,0.3"))
    after = plan_nodes("v", ["va", "expr"], Dataset(handmade_root), "smoke", systems)
    assert [p.key for p in before] != [p.key for p in after]
    assert before[0].key.startswith("video-") and len({p.key for p in before}) == 2
    shutil.rmtree(systems)


def test_cli_run_and_leaderboard(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from harness.cli import app

    dataset, store, board, systems, _ = world
    monkeypatch.setenv("ABAW_STORE", str(store.root))
    monkeypatch.setenv("ABAW_LEADERBOARD", str(board.path))
    monkeypatch.setenv("ABAW_SYSTEMS", str(systems))
    runner = CliRunner()
    result = runner.invoke(app, ["run", "fast_video", "--task", "va", "--data", str(dataset.root), "--json"])
    assert result.exit_code == 0, result.output
    (node,) = json.loads(result.stdout)["nodes"]
    assert node["store_hit"] and node["system"] == "fast_video" and len(node["ci95"]) == 2
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["leaderboard", "--task", "va", "--json", "--html", str(report)])
    assert result.exit_code == 0, result.output
    ranking = json.loads(result.stdout)["va"]
    entries = ranking["entries"]
    assert "fast_video" in {entry["system"] for entry in entries} and all("score" in entry for entry in entries)
    assert [entry["score"] for entry in entries] == sorted((entry["score"] for entry in entries), reverse=True)
    assert "fast_video" in report.read_text()
    result = runner.invoke(app, ["run", "fast_vidoe", "--data", str(dataset.root)])
    assert result.exit_code == 2 and "did you mean 'fast_video'" in result.stderr


def test_a_corrupt_saved_model_is_fitted_anew(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems, (first,) = world
    node = store.node(first.plan.key)
    model = node.path / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF  # same size, wrong content
    model.write_bytes(bytes(data))
    node.discard(f"pred-test/{dataset.split('va', 'test').names[0]}.npy")
    fitted = []
    original = VideoKind.fit
    monkeypatch.setattr(VideoKind, "fit", lambda self, context: fitted.append(1) or original(self, context))
    name = dataset.split("va", "validation").names[0]
    stale = node.path / "pred-validation" / f"{name}.npy"
    stale_time = stale.stat().st_mtime_ns
    (rerun,) = run_system("fast_video", ["va"], dataset, "smoke", store, board, systems)
    assert fitted and not rerun.hit and node.has("model.safetensors")
    assert stale.stat().st_mtime_ns != stale_time  # every output comes from the new fit, none from the old one


def test_a_run_waits_for_the_node_another_run_is_computing(world, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs needing one node: the second waits for the first instead of removing its node in progress."""
    dataset, store, board, systems, (first,) = world
    monkeypatch.setattr(VideoKind, "fit", lambda *a: pytest.fail("the other run's node is reused"))
    told: list[str] = []
    monkeypatch.setattr(runner, "notice", told.append)
    results = []
    with store.lock(first.plan.key):
        second = threading.Thread(
            target=lambda: results.extend(run_system("fast_video", ["va"], dataset, "smoke", store, board, systems))
        )
        second.start()
        second.join(0.5)
        assert second.is_alive() and not results
    second.join(120)
    (again,) = results
    assert again.hit and again.score["score"] == first.score["score"]
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    assert told == [f"fast_video (va): another run ({holder}) is computing this node; waiting for it"]


def test_a_run_killed_after_saving_its_model_resumes_with_its_training_seconds(
    world, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, store, board, systems, _ = world
    (systems / "fast_kelm.yaml").write_text("kind: kelm\ninputs: [fast_video]\nwindow_s: 2\nc_grid: [1]\n")
    *_, first = run_system("fast_kelm", ["va"], dataset, "smoke", store, board, systems)
    store.remove(first.plan.key)
    save = Node.save_state

    def dies_once_saved(self, name, state) -> None:
        save(self, name, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(Node, "save_state", dies_once_saved)
    with pytest.raises(KeyboardInterrupt):
        run_system("fast_kelm", ["va"], dataset, "smoke", store, board, systems)
    monkeypatch.setattr(Node, "save_state", save)
    monkeypatch.setattr(KelmKind, "fit", lambda *a: pytest.fail("the saved model must be reused"))
    *_, resumed = run_system("fast_kelm", ["va"], dataset, "smoke", store, board, systems)
    assert not resumed.hit and resumed.train_seconds > 0
    assert resumed.score["score"] == first.score["score"]
