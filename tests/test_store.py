"""The content-addressed store: keys, round trips, and every way a file can be untrustworthy."""

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness import store as store_module
from harness.errors import HarnessError, StoreError
from harness.store import Node, Store, default_store_root, key_material, node_key

BASE = {
    "kind": "video",
    "version": "1",
    "settings": {"lr": 0.001, "layers": [2, 3], "backbone": "resnet", "seed": 0},
    "input_keys": ["faces-aaa", "audio-bbb"],
    "dataset_fingerprint": "fp-1",
    "profile": "smoke",
    "tasks": ["va", "expr"],
}


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Store(tmp_path / "store").node("video-0123456789abcdef01234567")


def corrupt_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


# -- keys ------------------------------------------------------------------------------------------------------


def test_node_key_is_deterministic_and_prefixed_by_kind():
    key = node_key(**BASE)
    assert key == node_key(**BASE)
    assert key.startswith("video-") and len(key) == len("video-") + 24
    int(key.split("-", 1)[1], 16)


@pytest.mark.parametrize(
    "field, value",
    [
        ("settings", {**BASE["settings"], "lr": 0.002}),
        ("settings", {**BASE["settings"], "seed": 1}),
        ("settings", {**BASE["settings"], "lr": 0.0010000000000000002}),  # floats hash by repr, not rounded
        ("input_keys", ["faces-aaa", "audio-ccc"]),
        ("input_keys", ["audio-bbb", "faces-aaa"]),  # inputs are positional
        ("dataset_fingerprint", "fp-2"),
        ("version", "2"),
        ("profile", "paper"),
        ("tasks", ["va"]),
        ("extra", {"weights_sha256": "abc"}),
    ],
)
def test_node_key_changes_with_each_input(field, value):
    assert node_key(**{**BASE, field: value}) != node_key(**BASE)


def test_node_key_ignores_task_order_and_dict_order():
    reordered = dict(reversed(list(BASE["settings"].items())))
    assert node_key(**{**BASE, "tasks": ["expr", "va"], "settings": reordered}) == node_key(**BASE)


def test_node_key_converts_numpy_scalars_and_paths():
    plain = node_key(**{**BASE, "settings": {**BASE["settings"], "lr": 0.5, "weights": "w/model.pt", "n": 3}})
    numpy = {**BASE["settings"], "lr": np.float64(0.5), "weights": Path("w/model.pt"), "n": np.int64(3)}
    assert node_key(**{**BASE, "settings": numpy}) == plain
    assert key_material(**BASE)["tasks"] == ["expr", "va"]


def test_node_key_rejects_unhashable_values_and_unsafe_kinds():
    with pytest.raises(StoreError, match="cannot hash or store a value of type object"):
        node_key(**{**BASE, "settings": {"x": object()}})
    with pytest.raises(StoreError, match="mapping keys must be strings"):
        node_key(**{**BASE, "settings": {1: "a"}})
    with pytest.raises(StoreError, match="kind '../x' cannot name a store node"):
        node_key(**{**BASE, "kind": "../x"})


def test_default_store_root(monkeypatch, tmp_path):
    monkeypatch.delenv("ABAW_STORE", raising=False)
    monkeypatch.delenv("ABAW_HOME", raising=False)
    assert default_store_root() == Path(".abaw/store")
    monkeypatch.setenv("ABAW_HOME", str(tmp_path))
    assert default_store_root() == tmp_path / "store"
    monkeypatch.setenv("ABAW_STORE", str(tmp_path / "elsewhere"))
    assert default_store_root() == tmp_path / "elsewhere"


# -- round trips -----------------------------------------------------------------------------------------------


def test_array_round_trip_is_memory_mapped_and_keeps_float16(node):
    array = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    node.write_array("emb.npy", array, dtype=np.float16)
    back = node.read_array("emb.npy")
    assert isinstance(back, np.memmap) and back.dtype == np.float16 and not back.flags.writeable
    np.testing.assert_array_equal(back, array.astype(np.float16))
    np.testing.assert_array_equal(node.read_array("emb.npy", mmap=False, verify=False), back)
    fortran = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    node.write_array("fortran.npy", fortran)
    np.testing.assert_array_equal(node.read_array("fortran.npy"), fortran)
    node.write_array("empty.npy", np.zeros((0, 4), np.float32))
    assert node.read_array("empty.npy").shape == (0, 4)


def test_float16_overflow_and_object_arrays_are_refused(node):
    with pytest.raises(StoreError, match="out of float16 range"):
        node.write_array("emb.npy", np.array([1.0, 1e6]), dtype=np.float16)
    with pytest.raises(StoreError, match="dtype object"):
        node.write_array("obj.npy", np.array([{"a": 1}], dtype=object))
    assert not node.has("emb.npy") and not node.has("obj.npy")
    node.write_array("ok.npy", np.array([np.nan, np.inf, 1.0]), dtype=np.float16)  # non-finite already: kept as is
    np.testing.assert_array_equal(node.read_array("ok.npy"), np.array([np.nan, np.inf, 1.0], np.float16))


def test_json_round_trip(node):
    node.write_json("metrics.json", {"score": np.float32(0.5), "n": np.int64(3), "path": Path("a/b"), "s": {"b", "a"}})
    assert node.read_json("metrics.json") == {"score": 0.5, "n": 3, "path": "a/b", "s": ["a", "b"]}


def test_state_dict_round_trip(node):
    torch = pytest.importorskip("torch")
    state = {"w": torch.randn(3, 2), "b": torch.zeros(2, dtype=torch.float16), "step": torch.tensor(7)}
    node.save_state("model.safetensors", state)
    back = node.load_state("model.safetensors")
    assert back.keys() == state.keys()
    for name, tensor in state.items():
        assert back[name].dtype == tensor.dtype and torch.equal(back[name], tensor)
    shared = torch.zeros(4)
    with pytest.raises(StoreError, match="'tied.safetensors' .* cannot be saved"):
        node.save_state("tied.safetensors", {"a": shared, "b": shared})


def test_names_must_carry_their_suffix(node):
    with pytest.raises(StoreError, match=r"must end with '\.npy'"):
        node.write_array("emb", np.zeros(2))
    with pytest.raises(StoreError, match=r"must end with '\.json'"):
        node.write_json("node.json", {})


# -- untrusted files -------------------------------------------------------------------------------------------


def damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def damage_flip(path: Path) -> None:
    corrupt_flip(path)


def damage_sidecar(path: Path) -> None:
    Path(f"{path}.sha256").unlink()


def damage_foreign(path: Path) -> None:  # another file of the right size dropped in its place
    path.write_bytes(os.urandom(path.stat().st_size))


def damage_torn_sidecar(path: Path) -> None:
    sidecar = Path(f"{path}.sha256")
    sidecar.write_bytes(sidecar.read_bytes()[:10])


DAMAGES = [damage_truncate, damage_flip, damage_sidecar, damage_foreign, damage_torn_sidecar]


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_array_is_detected(node, damage):
    node.write_array("emb.npy", np.arange(100, dtype=np.float32))
    damage(node.path / "emb.npy")
    assert not node.has("emb.npy")
    for mmap in (True, False):
        with pytest.raises(StoreError, match=r"'emb\.npy' of node video-.* will be recomputed"):
            node.read_array("emb.npy", mmap=mmap)


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_json_and_state_are_detected(node, damage):
    torch = pytest.importorskip("torch")
    node.write_json("m.json", {"a": list(range(20))})
    node.save_state("s.safetensors", {"w": torch.ones(16)})
    damage(node.path / "m.json")
    damage(node.path / "s.safetensors")
    assert not node.has("m.json") and not node.has("s.safetensors")
    with pytest.raises(StoreError, match=r"'m\.json' .* recomputed"):
        node.read_json("m.json")
    with pytest.raises(StoreError, match=r"'s\.safetensors' .* recomputed"):
        node.load_state("s.safetensors")


def test_foreign_file_without_sidecar_and_missing_file(node):
    node.path.mkdir(parents=True)
    np.save(node.path / "dropped.npy", np.zeros(3))
    assert not node.has("dropped.npy")
    with pytest.raises(StoreError, match=r"'dropped\.npy' .* no checksum sidecar.* recomputed"):
        node.read_array("dropped.npy")
    with pytest.raises(StoreError, match=r"'absent\.npy' .* is missing; .* recomputed"):
        node.read_array("absent.npy")
    node.complete({})
    assert node.provenance()["artifacts"] == {}  # never listed


def test_valid_checksum_over_a_non_npy_file_is_still_refused(node):
    node.write_json("data.json", {"a": 1})
    os.replace(node.path / "data.json", node.path / "fake.npy")
    os.replace(node.path / "data.json.sha256", node.path / "fake.npy.sha256")
    assert node.has("fake.npy")  # the checksum matches: the bytes are what the store wrote...
    with pytest.raises(StoreError, match=r"'fake\.npy' .* not a readable \.npy file"):
        node.read_array("fake.npy")  # ...but they are not an array


def test_leftover_temp_file_is_never_trusted(node):
    node.path.mkdir(parents=True)
    array = np.arange(10.0)
    with open(node.path / f".emb.npy.tmp-{os.getpid()}-deadbeef", "wb") as file:
        np.save(file, array)
    assert not node.has("emb.npy")
    with pytest.raises(StoreError, match=r"'emb\.npy' .* is missing.*recomputed"):
        node.read_array("emb.npy")
    node.write_array("emb.npy", array)  # a new write is not disturbed by the leftover
    np.testing.assert_array_equal(node.read_array("emb.npy"), array)
    assert node.complete({})["artifacts"].keys() == {"emb.npy"}
    assert node.sweep(max_age_s=3600) == 0  # too fresh: it could belong to a live writer
    assert node.sweep(max_age_s=-1) == 1
    assert not list(node.path.glob(".*.tmp-*"))


@pytest.mark.parametrize("failing_call", [1, 2])  # the data file's rename, or its sidecar's
@pytest.mark.parametrize("existing", [False, True])
def test_crash_mid_write_leaves_no_trusted_file(node, monkeypatch, failing_call, existing):
    if existing:
        node.write_array("emb.npy", np.zeros(5))
    real_replace, calls = os.replace, []

    def crashing_replace(src, dst):
        calls.append(dst)
        if len(calls) == failing_call:
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "replace", crashing_replace)
    with pytest.raises(StoreError, match=r"cannot write store artifact 'emb\.npy' .*simulated crash"):  # one line
        node.write_array("emb.npy", np.ones(5))
    monkeypatch.undo()
    assert not node.has("emb.npy")
    with pytest.raises(StoreError, match="recomputed"):
        node.read_array("emb.npy")
    assert not list(node.path.glob(".*.tmp-*"))  # cleaned up on the way out


# -- tracks ----------------------------------------------------------------------------------------------------

TRACKS = ["10-60-1280x720", "video5_left", "118-30-640x480_right", "2", "video10-1"]


def test_per_track_resume(node):
    for track in TRACKS[::2]:
        node.write_track("video", track, np.full((4, 3), 1.5), dtype=np.float16)
    assert node.missing_tracks("video", TRACKS) == [TRACKS[1], TRACKS[3]]
    assert node.done_tracks("video") == set(TRACKS[::2])
    np.testing.assert_array_equal(node.read_track("video", TRACKS[0]), np.full((4, 3), 1.5, np.float16))
    corrupt_flip(node.path / "video" / f"{TRACKS[2]}.npy")
    assert node.missing_tracks("video", TRACKS) == TRACKS[1:4]
    assert node.done_tracks("video") == {TRACKS[0], TRACKS[4]}
    assert node.missing_tracks("audio", TRACKS[:2]) == TRACKS[:2] and node.done_tracks("audio") == set()
    node.discard(f"video/{TRACKS[2]}.npy")
    assert not (node.path / "video" / f"{TRACKS[2]}.npy").exists()


def test_tracks_written_from_two_processes_do_not_clash(node):
    import multiprocessing

    def write(tracks: list[str]) -> None:
        for track in tracks:
            node.write_track("video", track, np.full(1000, len(track), np.float32))

    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=write, args=(TRACKS[i::2],)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert node.missing_tracks("video", TRACKS) == []
    assert not list(node.path.glob("video/.*"))


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".hidden", "", "a b", "x.npy.sha256", "a\\b"])
def test_unsafe_names_are_rejected(node, bad):
    with pytest.raises(StoreError, match="not a safe store file name"):
        node.write_track("video", bad, np.zeros(2))
    with pytest.raises(StoreError, match="not a safe store file name"):
        node.write_track(bad, "track", np.zeros(2))
    with pytest.raises(StoreError, match="not a safe store file name"):
        Store(node.path.parent).node(bad)
    assert issubclass(StoreError, HarnessError)


@pytest.mark.parametrize("bad", ["../x.npy", "a/b.npy", ".x.npy", "x.npy.sha256", "a/b/c.npy", "node.json"])
def test_unsafe_artifact_names_are_rejected(node, bad):
    with pytest.raises(StoreError, match="not a safe store file name|must end with|must be 'name' or 'group/name'"):
        node.write_array(bad, np.zeros(2))
    with pytest.raises(StoreError, match="not a safe store file name|must end with|must be 'name' or 'group/name'"):
        node.write_json(bad, {})
    if bad != "a/b.npy":  # has and discard also take 'group/track.npy'
        with pytest.raises(StoreError, match="not a safe store file name|must be 'name' or 'group/name'"):
            node.has(bad)
        with pytest.raises(StoreError, match="not a safe store file name|must be 'name' or 'group/name'"):
            node.discard(bad)


# -- completion and provenance ---------------------------------------------------------------------------------


def test_complete_records_provenance_and_checksums(node):
    import sys

    node.write_array("emb.npy", np.zeros(3))
    node.write_track("video", "t1", np.ones(2))
    assert not node.is_complete()
    record = node.complete({**key_material(**BASE), "seed": 0, "git": "abc"})
    assert node.is_complete() and node.is_complete(verify=True)
    stored = node.provenance()
    assert stored == json.loads(json.dumps(record))
    assert stored["key"] == node.key and stored["provenance"]["seed"] == 0
    assert stored["provenance"]["settings"] == BASE["settings"]
    assert set(stored["artifacts"]) == {"emb.npy", "video/t1.npy"}
    assert stored["artifacts"]["emb.npy"] == json.loads((node.path / "emb.npy.sha256").read_text())
    assert {"python", "numpy", "harness"} <= set(stored["packages"])
    assert ("torch" in stored["packages"]) == ("torch" in sys.modules)
    assert stored["created"].endswith("+00:00")


def test_is_complete_turns_false_when_a_listed_artifact_goes_bad(node):
    node.write_array("emb.npy", np.arange(10.0))
    node.write_track("video", "t1", np.ones(8))
    node.complete({})
    damage_truncate(node.path / "video" / "t1.npy")
    assert not node.is_complete()  # fast mode: the size no longer matches

    node.write_track("video", "t1", np.ones(8))
    node.complete({})
    corrupt_flip(node.path / "emb.npy")
    assert node.is_complete() and not node.is_complete(verify=True)  # same size: only a rehash sees it
    with pytest.raises(StoreError, match="recomputed"):
        node.read_array("emb.npy")
    assert not node.is_complete()  # the failed read withdrew node.json
    node.discard("emb.npy")
    assert not node.has("emb.npy") and not (node.path / "emb.npy.sha256").exists()


def test_a_full_check_withdraws_node_json_when_an_artifact_no_longer_matches(node):
    node.write_array("emb.npy", np.arange(10.0))
    node.complete({})
    corrupt_flip(node.path / "emb.npy")
    store_module.forget_verified()
    assert not node.is_complete(verify=True)
    assert not (node.path / "node.json").exists() and not node.is_complete()  # recomputed, not a size-only hit


def test_each_file_is_hashed_once_per_process_and_again_when_it_changes(node, monkeypatch):
    hashed = []
    real = store_module.hashlib.file_digest
    monkeypatch.setattr(store_module.hashlib, "file_digest", lambda f, d: hashed.append(1) or real(f, d))
    node.write_array("emb.npy", np.arange(10.0))
    written = len(hashed)  # the data file and its sidecar, hashed while written
    for _ in range(3):
        node.read_array("emb.npy")
    assert len(hashed) == written  # known since the write
    store_module.forget_verified()  # as a new process
    node.read_array("emb.npy")
    node.read_array("emb.npy")
    assert len(hashed) == written + 1
    time.sleep(0.02)  # past the file system's timestamp granularity
    corrupt_flip(node.path / "emb.npy")  # in place: same inode, same size
    with pytest.raises(StoreError, match="does not match its sha256 checksum"):
        node.read_array("emb.npy")


def test_writes_and_discards_withdraw_completion(node):
    node.write_array("a.npy", np.zeros(2))
    node.complete({})
    node.write_array("b.npy", np.zeros(2))
    assert not node.is_complete()
    node.complete({})
    node.discard("b.npy")
    assert not node.is_complete()


def test_complete_refuses_a_torn_artifact_and_marker_problems(node):
    node.write_array("a.npy", np.zeros(20))
    damage_truncate(node.path / "a.npy")
    with pytest.raises(StoreError, match=r"'a\.npy' .* recomputed"):
        node.complete({})
    with pytest.raises(StoreError, match="has no readable node.json"):
        node.provenance()
    node.discard("a.npy")
    node.complete({})
    (node.path / "node.json").write_text("{not json")
    assert not node.is_complete()


def test_store_keys_and_remove(tmp_path):
    store = Store(tmp_path / "store")
    assert store.keys() == []
    for key in ("b-1", "a-2"):
        store.node(key).write_json("x.json", {})
    assert store.keys() == ["a-2", "b-1"]
    assert store.remove("a-2") and not store.remove("a-2")
    assert store.keys() == ["b-1"] and not list(store.root.glob(".trash-*"))


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _leftover(path: Path, age_s: float = 0.0, folder: bool = False) -> Path:
    """A temporary file (or folder) written ``age_s`` seconds ago."""
    path.mkdir(parents=True) if folder else path.write_bytes(b"x")
    then = path.stat().st_mtime - age_s
    os.utime(path, (then, then))
    return path


def test_opening_a_store_for_a_run_sweeps_what_killed_writers_left(tmp_path: Path, handmade_root: Path) -> None:
    from harness.data.affwild2 import Dataset
    from harness.leaderboard import Leaderboard
    from harness.runner import run_system

    store = Store(tmp_path / "store")
    node = store.node("video-abc")
    node.write_array("emb.npy", np.zeros(3))
    (node.path / "pred-test").mkdir()
    dead, late = _dead_pid(), store_module.STALE_AFTER_S + 60
    killed = _leftover(node.path / f".emb.npy.tmp-{dead}-0badc0de", late)
    killed_track = _leftover(node.path / "pred-test" / f".t1.npy.tmp-{dead}-0badc0de", late)
    trash = _leftover(store.root / f".trash-video-old-{dead}-0badc0de", late, folder=True)
    just_killed = _leftover(node.path / f".emb.npy.tmp-{dead}-feedf00d")  # within the margin: another machine's?
    live = _leftover(node.path / f".emb.npy.tmp-{os.getpid()}-cafe0001", late)  # a live writer's (this process)
    with pytest.raises(HarnessError, match="no spec named 'nothing_here'"):
        run_system("nothing_here", ["va"], Dataset(handmade_root), "smoke", store, Leaderboard(tmp_path / "lb.sqlite"),
                   tmp_path / "systems")  # fmt: skip
    assert not killed.exists() and not killed_track.exists() and not trash.exists()
    assert just_killed.exists() and live.exists() and node.has("emb.npy")
    assert store.sweep(max_age_s=-1) == 2  # past the hour whoever wrote it (pids are reused)


def test_every_stored_file_has_one_mode(node: Node) -> None:
    import torch

    node.save_state("model.safetensors", {"w": torch.zeros(2)})
    node.write_json("run.json", {"a": 1})
    node.write_array("emb.npy", np.zeros(2))
    plain = node.path / "plain"
    plain.write_bytes(b"")  # what a plain open gives under this umask
    modes = {path.name: path.stat().st_mode & 0o777 for path in node.path.iterdir()}
    assert set(modes.values()) == {modes["plain"]}, modes


def test_a_short_write_on_a_full_disk_says_the_disk_is_full(node, monkeypatch):
    """numpy reports a short write with neither errno nor cause: the store adds what the file system shows."""
    import harness.store as store_module

    def short(*args, **kwargs):
        raise OSError("1460 requested and 992 written")

    monkeypatch.setattr(store_module.np, "save", short)
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: SimpleNamespace(free=4096))
    with pytest.raises(StoreError, match=r"'emb\.npy' of node .*: 1460 requested and 992 written; the disk is full"):
        node.write_array("emb.npy", np.zeros(3, np.float32))
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: SimpleNamespace(free=1 << 30))
    with pytest.raises(StoreError, match=r"1460 requested and 992 written$"):
        node.write_array("emb.npy", np.zeros(3, np.float32))


def test_a_node_lock_is_held_in_a_folder_that_is_no_node(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with store.lock("abc123"):
        assert (store.root / ".locks" / "abc123").is_file()
    assert store.keys() == []
