"""Fault injection through the runner: corrupt inputs and predictions recomputed in the run that finds them, checks
that fail before any training (read-only or full store, read-only leaderboard, a task without annotations), and
submission folders replaced as a unit and checked against their manifest. Toy kinds on the hand-written root keep
every test to a few seconds."""

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from harness import preflight
from harness.cli import app
from harness.data.affwild2 import Dataset
from harness.errors import DataError, LeaderboardError, StoreError, SubmissionError
from harness.leaderboard import Leaderboard
from harness.models.registry import KIND_MODULES, Kind, register_kind
from harness.runner import run_system, submit_system
from harness.store import Store, forget_verified
from harness.submission import staged_folder

FITS: list[str] = []  # the toy kinds append their name here on every fit


class ToySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    noise: float = 0.3


@register_kind("rel_source")
class SourceKind(Kind):
    """Labels plus seeded noise, per track; the test split gets noise around zero."""

    version = "1"
    Settings = ToySettings
    profiles: dict = {}
    outputs = ("pred",)

    def __init__(self, settings: ToySettings, task: str, seed: int) -> None:
        self.settings, self.task, self.seed = settings, task, seed

    def fit(self, context) -> None:
        FITS.append(self.name)

    def predict(self, context, split_name, tracks):
        split = context.split(split_name)
        for name in tracks:
            track = split.track(name)
            rng = np.random.default_rng([self.seed, len(name), ord(split_name[0])])
            width = 2 if self.task == "va" else 8
            truth = np.zeros((track.n_rows, width))
            if track.labels is not None and self.task == "va":
                truth = np.where(track.labels == -5, 0, track.labels)
            elif track.labels is not None:
                truth = np.eye(8)[np.maximum(track.labels, 0)]
            noisy = truth + rng.normal(0, self.settings.noise, truth.shape)
            yield name, {"pred": np.clip(noisy, -1, 1).astype(np.float32)}

    def state(self) -> dict:
        return {"fitted": torch.ones(1)}

    def load_state(self, state) -> None:
        pass


@register_kind("rel_copy")
class CopyKind(SourceKind):
    """Its input's predictions, halved: its score depends on every byte of its input."""

    def predict(self, context, split_name, tracks):
        (source,) = context.inputs.values()
        for name in tracks:
            yield name, {"pred": 0.5 * np.asarray(source.read("pred", split_name, name), np.float32)}


@pytest.fixture
def world(handmade_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The hand-written root, a source spec and a copy of it, a store and a leaderboard; FITS emptied."""
    monkeypatch.setitem(KIND_MODULES, "rel_source", __name__)
    monkeypatch.setitem(KIND_MODULES, "rel_copy", __name__)
    systems = tmp_path / "systems"
    systems.mkdir()
    (systems / "source.yaml").write_text("kind: rel_source\nseed: 1\n")
    (systems / "copy.yaml").write_text("kind: rel_copy\ninputs: [source]\n")
    FITS.clear()
    return Dataset(handmade_root), Store(tmp_path / "store"), Leaderboard(tmp_path / "board.sqlite"), systems


def corrupt_keeping_size(path: Path) -> None:
    """Overwrite the array's values with other numbers, the file's size unchanged; then forget what this process
    verified, as a later `abaw run` (a new process) would start."""
    array = np.load(path)
    with open(path, "r+b") as file:
        file.seek(os.path.getsize(path) - array.nbytes)
        file.write((array + 0.25).astype(array.dtype).tobytes())
    forget_verified()


def test_a_corrupt_input_is_recomputed_in_the_same_run(world) -> None:
    dataset, store, board, systems = world
    source, copy = run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert FITS == ["rel_source", "rel_copy"]
    track = dataset.split("va", "validation").names[0]
    corrupt_keeping_size(store.node(source.plan.key).path / "pred-validation" / f"{track}.npy")
    store.remove(copy.plan.key)
    assert store.node(source.plan.key).is_complete()  # by its sizes it still looks complete
    again_source, again_copy = run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert not again_source.hit and not again_copy.hit  # the source's corrupt track was found and recomputed
    assert FITS == ["rel_source", "rel_copy", "rel_copy"]  # the source's saved model was reused, not refitted
    assert again_copy.score["score"] == copy.score["score"]
    assert store.node(source.plan.key).is_complete(verify=True)


def test_a_corrupt_stored_prediction_is_recomputed_while_scoring(world) -> None:
    dataset, store, board, systems = world
    (first,) = run_system("source", ["va"], dataset, "smoke", store, board, systems)
    track = dataset.split("va", "validation").names[-1]
    corrupt_keeping_size(store.node(first.plan.key).path / "pred-validation" / f"{track}.npy")
    (again,) = run_system("source", ["va"], dataset, "smoke", store, board, systems)
    assert not again.hit and again.score["score"] == first.score["score"]
    assert [row.score for row in board.rows(task="va")] == [first.score["score"]] * 2


def test_a_corrupt_test_prediction_is_recomputed_when_submitting(world, tmp_path: Path) -> None:
    dataset, store, board, systems = world
    first = submit_system("source", ["va"], dataset, tmp_path / "subs", "smoke", store, board, systems)
    written = first.files["va"].read_bytes()
    node = store.node(first.results[0].plan.key)
    corrupt_keeping_size(node.path / "pred-test" / f"{dataset.split('va', 'test').names[0]}.npy")
    again = submit_system("source", ["va"], dataset, tmp_path / "subs", "smoke", store, board, systems)
    assert not again.results[0].hit and again.files["va"].read_bytes() == written


# ---------------------------------------------------------------------------------------------- before the work


def refuse_writes_under(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> None:
    """Every os.open for writing under ``folder`` fails with ``code``: a read-only (EROFS) or full (ENOSPC) store."""
    original = os.open

    def fake_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(code, os.strerror(code), str(path))
        return original(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_a_read_only_store_fails_before_training(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems = world
    store.root.mkdir()
    refuse_writes_under(monkeypatch, store.root, errno.EROFS)
    with pytest.raises(StoreError, match=r"the store .*store cannot be written: Read-only file system"):
        run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert FITS == []


def test_a_complete_system_reruns_from_a_read_only_store(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems = world
    first = run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    refuse_writes_under(monkeypatch, store.root, errno.EROFS)
    again = run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert all(r.hit for r in again) and again[-1].score["score"] == first[-1].score["score"]


def test_a_full_store_fails_before_training(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems = world
    store.root.mkdir()
    original = os.write

    def full(handle: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{handle}").startswith(str(store.root)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(handle, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StoreError, match=r"cannot be written \(the disk is full\): No space left on device"):
        run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert FITS == []


def test_too_little_free_space_for_the_estimate_fails_before_training(world, monkeypatch) -> None:
    dataset, store, board, systems = world
    (source,) = run_system("source", ["va"], dataset, "smoke", store, board, systems)
    FITS.clear()
    usage = shutil.disk_usage(store.root)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=preflight.HEADROOM // 2))
    with pytest.raises(StoreError, match=r"has 33\.6 MB free, but the run will write about .* compute: copy va"):
        run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert FITS == []
    (again,) = run_system("source", ["va"], dataset, "smoke", store, board, systems)  # nothing to write: no check
    assert again.hit


def test_too_little_shared_memory_for_a_training_loader_fails_before_training(tmp_path: Path, monkeypatch) -> None:
    from harness.errors import HarnessError
    from harness.models.video import VideoKind, VideoSettings

    settings = VideoSettings(**{**VideoKind.profiles["paper"], "workers": 8, "batch_size": 64, "image_size": 224})
    need = VideoKind.shared_memory_bytes(settings)
    assert need == 8 * 2 * 64 * 3 * 224 * 224  # 8 workers, 2 ready batches each, 64 uint8 crops of 224 px
    nodes = [
        preflight.NodeWrites("source", SourceKind, "va", ToySettings()),  # no loader: no need
        preflight.NodeWrites("video_b1", VideoKind, "expr", settings),
    ]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=64 * 10**6))  # Docker's default
    with pytest.raises(HarnessError, match=r"has 64\.0 MB free, .* video_b1 expr keeps about 154\.1 MB .*--shm-size"):
        preflight.check_shared_memory(nodes, tmp_path)
    preflight.check_shared_memory(nodes[:1], tmp_path)  # nothing to hold
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=need))
    preflight.check_shared_memory(nodes, tmp_path)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's two local ranks train at once
    with pytest.raises(HarnessError, match=r"keeps about 308\.3 MB .* of its workers in 2 local ranks\) and would die"):
        preflight.check_shared_memory(nodes, tmp_path)


def test_the_estimate_counts_every_output_row(world) -> None:
    dataset, _, _, _ = world
    rows = sum(t.n_rows for split in ("train", "validation", "test") for t in dataset.split("va", split).tracks)
    tracks = sum(len(dataset.split("va", split).tracks) for split in ("train", "validation", "test"))
    node = preflight.NodeWrites("source", SourceKind, "va", ToySettings())
    assert preflight.estimate_bytes(dataset, [node]) == rows * 2 * 4 + tracks * preflight.FILE_OVERHEAD


def test_a_write_refused_mid_run_is_one_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = Store(tmp_path / "store").node("x-1")

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StoreError, match=r"cannot write store artifact 'a\.npy' of node x-1 .*No space left on device"):
        node.write_array("a.npy", np.zeros(3))


def test_a_read_only_leaderboard_fails_before_training(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems = world
    board.path.write_bytes(b"")
    original = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != board.path and original(path, mode, **kw))
    with pytest.raises(LeaderboardError, match=r"the leaderboard .*board\.sqlite is read-only"):
        run_system("copy", ["va"], dataset, "smoke", store, board, systems)
    assert FITS == []


def test_a_task_without_annotations_fails_before_training(world) -> None:
    dataset, store, board, systems = world
    shutil.rmtree(dataset.root / "6th ABAW Annotations" / "EXPR_Recognition_Challenge")
    dataset = Dataset(dataset.root)
    with pytest.raises(DataError, match=r"copy needs the expr train split \(checked before any training\): .*no expr"):
        run_system("copy", ["va", "expr"], dataset, "smoke", store, board, systems)
    assert FITS == []


def test_cli_says_one_line_for_a_read_only_store(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems = world
    store.root.mkdir()
    refuse_writes_under(monkeypatch, store.root, errno.EACCES)
    monkeypatch.setenv("ABAW_STORE", str(store.root))
    monkeypatch.setenv("ABAW_LEADERBOARD", str(board.path))
    monkeypatch.setenv("ABAW_SYSTEMS", str(systems))
    result = CliRunner().invoke(app, ["run", "copy", "--task", "va", "--data", str(dataset.root)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().startswith("error: the store") and "Permission denied" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and FITS == []  # one line (rich may wrap it)


# ---------------------------------------------------------------------------------------------- submissions


def test_a_read_only_submission_folder_fails_before_training(world, tmp_path: Path, monkeypatch) -> None:
    dataset, store, board, systems = world
    out = tmp_path / "subs"
    out.mkdir()
    refuse_writes_under(monkeypatch, out, errno.EROFS)
    with pytest.raises(SubmissionError, match=r"the submission folder .*subs cannot be written: Read-only file"):
        submit_system("copy", ["va"], dataset, out, "smoke", store, board, systems)
    assert FITS == []


def test_a_kill_while_packaging_leaves_the_old_package_intact(world, tmp_path: Path) -> None:
    dataset, store, board, systems = world
    out = tmp_path / "subs"
    first = submit_system("source", ["va"], dataset, out, "smoke", store, board, systems)
    before = {p.name: p.read_bytes() for p in first.folder.iterdir()}
    (systems / "source.yaml").write_text("kind: rel_source\nseed: 2\n")  # new predictions, same folder

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what a kill between the prediction files and the manifest looks like

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr("harness.runner.package_submission", killed)
        submit_system("source", ["va"], dataset, out, "smoke", store, board, systems)
    assert {p.name: p.read_bytes() for p in first.folder.iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["source"]  # no staging folder left behind
    second = submit_system("source", ["va"], dataset, out, "smoke", store, board, systems)
    assert second.files["va"].read_bytes() != before[second.files["va"].name]
    assert (
        second.package.manifest["files"]["va"]["sha256"] != json.loads(before["manifest.json"])["files"]["va"]["sha256"]
    )
    assert sorted(p.name for p in out.iterdir()) == ["source"]


@pytest.mark.parametrize("exchange", [True, False])
def test_staged_folder_swaps_the_whole_folder(tmp_path: Path, monkeypatch, exchange: bool) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    if not exchange:
        monkeypatch.setattr("harness.submission._exchange", lambda first, second: False)
    dead = tmp_path / ".sub.staging-4194303-abcd1234"  # a killed process's staging folder (pid above any live one)
    dead.mkdir()
    with staged_folder(folder) as staging:
        (staging / "new.txt").write_text("new")
        assert staging.parent == tmp_path and not dead.exists()
    assert [p.name for p in folder.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_validate_package_passes_a_package_and_catches_a_changed_file(world, tmp_path: Path, monkeypatch) -> None:
    dataset, store, board, systems = world
    done = submit_system("source", ["va", "expr"], dataset, tmp_path / "subs", "smoke", store, board, systems)
    runner = CliRunner()
    check = ["validate", "--package", str(done.folder), "--data", str(dataset.root)]
    result = runner.invoke(app, check)
    assert result.exit_code == 0 and "valid" in result.stdout and "2 prediction file(s)" in result.stdout
    va = done.files["va"]
    lines = va.read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ",0.123456,-0.654321"  # still a valid file, but not the packaged one
    va.write_text("\n".join(lines) + "\n")
    (done.folder / "notes.txt").write_text("stray")
    result = runner.invoke(app, [*check, "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and not report["ok"]
    assert any(f"{va.name} (va):" in p and "changed after packaging" in p for p in report["problems"])
    assert any("its " + va.name + " differs from the folder's" in p for p in report["problems"])
    assert any(p.startswith("notes.txt: in the folder but not in the manifest") for p in report["problems"])
    (done.folder / "manifest.json").unlink()
    result = runner.invoke(app, check)
    assert result.exit_code == 2 and "manifest.json: missing" in result.stderr
    result = runner.invoke(app, ["validate", "--data", str(dataset.root)])
    assert result.exit_code == 2 and "give a prediction FILE and --task, or --package FOLDER" in result.stderr


def test_validate_package_refuses_a_malformed_manifest(tmp_path: Path, templates) -> None:
    from harness.package_check import validate_package

    (tmp_path / "manifest.json").write_text(json.dumps({"system": "x", "files": {"va": {"file": "../a.txt"}}}))
    with pytest.raises(SubmissionError, match=r"key 'files\.va' must hold file, rows, sha256 and bytes"):
        validate_package(tmp_path, templates.get)
