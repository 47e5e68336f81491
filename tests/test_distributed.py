"""Scale-out (harness.distributed): the deterministic shard of a list, and runs of two gloo ranks on the CPU that
extract byte for byte what one process extracts, resume a killed rank's unfinished tracks only, and train with DDP.

The ranks run on a dataset of eleven short tracks (random 16-px crops, tiny videos), so that they take seconds."""

import json
import os
import shutil
import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_video

from harness import distributed
from harness.data.affwild2 import Dataset
from harness.leaderboard import Leaderboard
from harness.models import face_cache
from harness.runner import run_system
from harness.store import Node, Store

SPEC = """kind: video
tasks: [va]
seed: 0
profiles:
  smoke: {epochs: 2, frame_step: 1, eval_step: 1, patience: 2, batch_size: 4, image_size: 32}
"""
DYNAMIC_SPEC = "kind: dynamic\ntasks: [va]\ninputs: [tiny_video]\nwindow_s: 1\nepochs: 2\nheads: 4\n"
KELM_SPEC = "kind: kelm\ntasks: [va]\ninputs: [tiny_video]\nwindow_s: 1\nc_grid: [0.1, 1, 10]\nhonest_folds: 2\n"
AUDIO_SPEC = "kind: audio\ntasks: [va]\nseed: 0\nepochs: 2\nmin_speech: 0.0\ntiny_corpus_clips: 0\nper_task: {}\n"
SPLITS = {"train": ["tr0", "tr1", "tr2"], "validation": [f"va{i}" for i in range(5)], "test": ["te0", "te1", "te2"]}


def write_dataset(root: Path) -> None:
    """VA annotations, crops (every 4th frame missing), videos with a tone and a test template for the tracks of
    ``SPLITS``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folders = {"train": "Train_Set", "validation": "Validation_Set"}
    template = "image_location,valence,arousal\n"
    for split, names in SPLITS.items():
        for k, name in enumerate(names):
            n = 6 + 3 * k
            write_video(root / "batch1" / f"{name}.mp4", Fraction(30), n)
            crops = root / "cropped_aligned" / name
            crops.mkdir(parents=True)
            for frame in range(1, n + 1):
                if frame % 4:
                    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(crops / f"{frame:05d}.jpg")
            if split == "test":
                template += "".join(f"{name}/{frame:05d}.jpg,0,0\n" for frame in range(1, n + 1))
                continue
            labels = "".join(f"{v:.3f},{a:.3f}\n" for v, a in rng.uniform(-1, 1, (n, 2)))
            path = root / "6th ABAW Annotations/VA_Estimation_Challenge" / folders[split] / f"{name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"valence,arousal\n{labels}")
    lists = root / "test_set/names_of_videos_in_each_test_set"
    lists.mkdir(parents=True)
    (lists / "Valence_Arousal_Estimation_Challenge_test_set_release.txt").write_text("\n".join(SPLITS["test"]) + "\n")
    formats = root / "test_set/prediction_files_format"
    formats.mkdir(parents=True)
    (formats / "CVPR_6th_ABAW_VA_test_set_sample.txt").write_text(template)


def single_process(data: Path, systems: Path, base: Path, system: str = "tiny_video") -> Node:
    """Run the system in this process, on one thread like each rank (torchrun's default): float results are
    byte-identical only between processes that reduce in the same order, and the thread count changes that order."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        store, board = Store(base / "store"), Leaderboard(base / "board.sqlite")
        results = run_system(system, ["va"], Dataset(data), "smoke", store, board, systems)
    finally:
        torch.set_num_threads(threads)
    return store.node(results[-1].plan.key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """The dataset, the specs folder and the node of one single-process run (trained, every track extracted)."""
    base = tmp_path_factory.mktemp("distributed")
    write_dataset(base / "data")
    (base / "systems").mkdir()
    (base / "systems" / "tiny_video.yaml").write_text(SPEC)
    (base / "systems" / "tiny_dynamic.yaml").write_text(DYNAMIC_SPEC)
    (base / "systems" / "tiny_audio.yaml").write_text(AUDIO_SPEC)
    (base / "systems" / "tiny_kelm.yaml").write_text(KELM_SPEC)
    return base / "data", base / "systems", single_process(base / "data", base / "systems", base / "single")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_main(
    rank: int, world: int, port: int, base: Path, data: Path, systems: Path, die: bool, system: str = "tiny_video"
) -> None:
    """One rank: join the gloo group from torchrun's variables, run the system, log each track file it writes
    (``writes-<rank>.txt``: node outputs and shared caches), the video model it fitted (``fit-<rank>.json``) and the Cs
    of a KELM grid it solved (``grid-<rank>.json``). With
    ``die``, rank 1 exits after writing its first track, the way a killed process stops."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
    )
    os.environ["ABAW_DIST_TIMEOUT_S"] = "60"
    import torch

    from harness.models import kernel_elm
    from harness.models.video import VideoKind

    torch.set_num_threads(1)
    log = open(base / f"writes-{rank}.txt", "a")  # noqa: SIM115 - a killed rank leaves it to the OS
    write_track, fit, fit_grid = Node.write_track, VideoKind.fit, kernel_elm.fit_grid

    def logged_write(self, group, track, array, dtype=None):
        write_track(self, group, track, array, dtype)
        log.write(f"{group}/{track}\n")
        log.flush()
        if die and rank == 1 and group.startswith("frames-"):  # "pred", "emb", "frames": the track is complete
            os._exit(3)

    def logged_fit(self, context):
        fit(self, context)
        state = {name: tensor.double().sum().item() for name, tensor in self.state().items()}
        (base / f"fit-{rank}.json").write_text(json.dumps({"history": self.history_, "state": state}))
        return self

    def logged_grid(*args, **kwargs):
        (base / f"grid-{rank}.json").write_text(json.dumps([float(c) for c in args[2]]))
        return fit_grid(*args, **kwargs)

    Node.write_track, VideoKind.fit, kernel_elm.fit_grid = logged_write, logged_fit, logged_grid
    board = Leaderboard(base / "board.sqlite") if rank == 0 else None
    try:
        run_system(system, ["va"], Dataset(data), "smoke", Store(base / "store"), board, systems)
    except RuntimeError:  # gloo: "Connection closed by peer"; stop at once, as torchrun stops the survivors
        os._exit(2)
    distributed.finish()  # as the CLI ends


def launch(base: Path, data: Path, systems: Path, die: bool = False, system: str = "tiny_video") -> list[int]:
    """Start two ranks and wait for both (neither is killed when the other fails); their exit codes."""
    import torch.multiprocessing as mp

    args = (2, free_port(), base, data, systems, die, system)
    context = mp.start_processes(rank_main, args=args, nprocs=2, join=False, start_method="spawn")
    for process in context.processes:
        process.join(120)
    for process in context.processes:
        if process.is_alive():  # hung: fail the test, leave no process behind
            process.kill()
            process.join()
    return [process.exitcode for process in context.processes]


def writes(base: Path, rank: int, decoded: list[str] | None = None) -> list[str]:
    """The track files rank ``rank`` wrote since the last call, those of the video kind's decoded-crop cache
    (:mod:`harness.models.face_cache`) left out and added to ``decoded`` when given."""
    path = base / f"writes-{rank}.txt"
    lines = path.read_text().split() if path.is_file() else []
    path.unlink(missing_ok=True)
    cached = [line for line in lines if line.split("/")[0] in (face_cache.PIXELS, face_cache.FRAMES)]
    if decoded is not None:
        decoded += cached
    return [line for line in lines if line not in cached]


def with_saved_model(reference: Node, base: Path) -> Node:
    """A store holding only what a run killed right after fitting leaves: the reference node's model and times."""
    node = Store(base / "store").node(reference.key)
    node.path.mkdir(parents=True)
    for name in ("model.safetensors", "run.json"):
        for file in (name, f"{name}.sha256"):
            shutil.copy(reference.path / file, node.path / file)
    return node


def track_files(node: Node) -> dict[str, bytes]:
    return {path.relative_to(node.path).as_posix(): path.read_bytes() for path in sorted(node.path.glob("*/*.npy"))}


def share(data: Path, rank: int) -> list[str]:
    """Every track file rank ``rank`` of two should write, in its order."""
    files = []
    for split_name in SPLITS:
        split = Dataset(data).split("va", split_name)
        mine = distributed.shard(split.names, [t.n_rows for t in split.tracks], world=2, index=rank)
        files += [f"{output}-{split_name}/{name}" for name in mine for output in ("pred", "emb", "frames")]
    return files


# -- the shard and the helpers in one process --------------------------------------------------------------------


def test_shard_puts_every_item_on_exactly_one_rank() -> None:
    items = [f"t{i}" for i in range(11)]
    weights = [5, 1, 9, 9, 2, 7, 3, 3, 8, 1, 6]
    for world in (1, 2, 3, 4):
        for by in (None, weights):
            shares = [distributed.shard(items, by, world=world, index=rank) for rank in range(world)]
            assert sorted(sum(shares, [])) == sorted(items)
            assert all(share == [item for item in items if item in share] for share in shares)  # order kept
    loads = [sum(weights[items.index(t)] for t in distributed.shard(items, weights, 2, r)) for r in range(2)]
    assert loads == [27, 27]  # heaviest first to the least loaded rank: 54 split evenly
    assert distributed.shard(items, world=3, index=1) == ["t1", "t4", "t7", "t10"]


def test_shard_rejects_a_rank_outside_the_world_and_missing_weights() -> None:
    with pytest.raises(ValueError, match="rank 2 is outside a world of 2"):
        distributed.shard(["a"], world=2, index=2)
    with pytest.raises(ValueError, match="2 weights for 3 items"):
        distributed.shard(["a", "b", "c"], [1, 2], world=2, index=0)


def test_epoch_order_deals_one_permutation_evenly() -> None:
    for n, world in ((10, 3), (7, 2), (4, 4)):
        shares = [distributed.epoch_order(n, seed=5, epoch=1, world=world, index=rank) for rank in range(world)]
        assert len({len(s) for s in shares}) == 1 and set(sum(shares, [])) == set(range(n))
        assert sum(map(len, shares)) == n + (-n % world)  # padded by repeating the order's head
    assert distributed.epoch_order(9, 5, 1, 1, 0) != distributed.epoch_order(9, 5, 2, 1, 0)  # a new order per epoch
    assert distributed.deal([4, 0, 3, 1, 2], world=2, index=0) == [4, 3, 2]
    assert distributed.deal([4, 0, 3, 1, 2], world=2, index=1) == [0, 1, 4]  # padded with the order's head


def test_one_process_is_rank_zero_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.broadcast({"a": 1}) == {"a": 1} and distributed.all_gather(3) == [3]
    with distributed.main_first():
        distributed.barrier()


# -- two gloo ranks on the CPU --------------------------------------------------------------------------------------


def test_ddp_training_and_a_killed_rank_resume_to_the_bytes_of_one_process(reference, tmp_path: Path) -> None:
    """Two ranks train one model with DDP and share out the extraction; rank 1 dies after its first track. The rerun
    reuses the saved model and writes rank 1's unfinished tracks only; the result is what one process extracts."""
    data, systems, single = reference
    codes = launch(tmp_path, data, systems, die=True)
    assert codes == [2, 3]  # rank 0 finished its share, then lost its peer
    fits = [json.loads((tmp_path / f"fit-{rank}.json").read_text()) for rank in range(2)]
    assert fits[0] == fits[1]  # synchronised gradients and BatchNorm statistics: one model, one early-stopping path
    assert len(fits[0]["history"]) == 2 and all(np.isfinite(fits[0]["history"]))
    decoded: list[str] = []
    assert (writes(tmp_path, 0, decoded), writes(tmp_path, 1, decoded)) == (share(data, 0), share(data, 1)[:3])
    node = Store(tmp_path / "store").node(single.key)
    assert not node.is_complete() and node.has("model.safetensors")
    for rank in range(2):
        (tmp_path / f"fit-{rank}.json").unlink()

    assert launch(tmp_path, data, systems) == [0, 0]
    assert not list(tmp_path.glob("fit-*.json"))  # the saved model is reused, not fitted anew
    assert writes(tmp_path, 0, decoded) == [] and writes(tmp_path, 1, decoded) == share(data, 1)[3:]  # each once
    every_track = [name for names in SPLITS.values() for name in names]
    entries = sorted(line.rsplit(".", 1)[0] for line in decoded)  # <group>/<track>.<crop folder digest>
    assert entries == sorted(f"{group}/{name}" for name in every_track for group in ("pixels", "frames"))
    assert node.is_complete(verify=True) and len(track_files(node)) == 3 * sum(map(len, SPLITS.values()))
    (row,) = Leaderboard(tmp_path / "board.sqlite").rows(task="va")  # recorded once, by rank 0
    assert row.store_key == single.key
    with_saved_model(node, tmp_path / "alone")  # one process extracting with the model the two ranks trained
    assert track_files(single_process(data, systems, tmp_path / "alone")) == track_files(node)


def test_torchrun_runs_the_cli_unchanged(reference, tmp_path: Path) -> None:
    """``torchrun -m harness.cli run tiny_dynamic``: its video input extracted in shares from the saved model (the
    bytes of one process), then the dynamic kind trained with DDP and predicted in shares; rank 0 alone prints."""
    data, systems, video = reference
    with_saved_model(video, tmp_path)
    env = os.environ | {
        "ABAW_STORE": str(tmp_path / "store"),
        "ABAW_LEADERBOARD": str(tmp_path / "board.sqlite"),
        "ABAW_SYSTEMS": str(systems),
        "ABAW_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    command += ["--master_port", str(free_port()), "-m", "harness.cli", "run", "tiny_dynamic", "--task", "va"]
    command += ["--profile", "smoke", "--data", str(data), "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = json.loads(done.stdout)["nodes"]  # one JSON object: rank 0 alone reports
    assert [(node["system"], node["store_hit"]) for node in nodes] == [("tiny_video", False), ("tiny_dynamic", False)]
    assert nodes[0]["store_key"] == video.key and np.isfinite(nodes[1]["score"])
    store = Store(tmp_path / "store")
    assert track_files(store.node(video.key)) == track_files(video)
    dynamic = store.node(nodes[1]["store_key"])
    assert dynamic.is_complete(verify=True) and dynamic.has("model.safetensors")
    (row,) = Leaderboard(tmp_path / "board.sqlite").rows(task="va")
    assert row.system == "tiny_dynamic" and row.store_key == dynamic.key
    shutil.copytree(video.path, tmp_path / "alone" / "store" / video.key)
    with_saved_model(dynamic, tmp_path / "alone")  # one process predicting with the model the two ranks trained
    alone = single_process(data, systems, tmp_path / "alone", "tiny_dynamic")
    assert set(track_files(alone)) == set(track_files(dynamic))
    for name in track_files(dynamic):  # equal up to float rounding only: this kind's window batches span tracks
        group, track = name.removesuffix(".npy").split("/")
        np.testing.assert_allclose(dynamic.read_track(group, track), alone.read_track(group, track), rtol=0, atol=1e-6)


def test_audio_ranks_encode_their_share_and_rank_zero_trains_the_head(reference, tmp_path: Path) -> None:
    """The audio kind under two ranks: each encodes its share of the train and validation tracks into the shared
    caches (the frozen encoder's pass), rank 0 trains the head, both predict their shares; the node holds the bytes
    of one process."""
    data, systems, _ = reference
    assert launch(tmp_path, data, systems, system="tiny_audio") == [0, 0]
    dataset = Dataset(data)
    for rank in range(2):
        logged = writes(tmp_path, rank)
        encoded = sorted(line for line in logged if line.startswith(("va-train/", "va-validation/")))
        expected = []
        for split_name in ("train", "validation"):
            split = dataset.split("va", split_name)
            mine = distributed.shard(split.names, [t.n_rows for t in split.tracks], world=2, index=rank)
            expected += [f"va-{split_name}/{name}" for name in mine]
        assert encoded == sorted(expected)
    store = Store(tmp_path / "store")
    (row,) = Leaderboard(tmp_path / "board.sqlite").rows(task="va")
    node = store.node(row.store_key)
    assert node.is_complete(verify=True)
    assert track_files(single_process(data, systems, tmp_path / "alone", "tiny_audio")) == track_files(node)


def test_kelm_ranks_solve_their_share_of_the_grid(reference, tmp_path: Path) -> None:
    """KELM under two ranks: rank 0 solves C = 0.1 and 10, rank 1 C = 1 (each on the whole kernel matrix); rank 0
    gathers, chooses and saves; the node holds the bytes of one process."""
    data, systems, video = reference
    shutil.copytree(video.path, tmp_path / "store" / video.key)
    assert launch(tmp_path, data, systems, system="tiny_kelm") == [0, 0]
    grids = [json.loads((tmp_path / f"grid-{rank}.json").read_text()) for rank in range(2)]
    assert grids == [[0.1, 10.0], [1.0]]
    (row,) = Leaderboard(tmp_path / "board.sqlite").rows(task="va")
    node = Store(tmp_path / "store").node(row.store_key)
    assert node.is_complete(verify=True)
    shutil.copytree(video.path, tmp_path / "alone" / "store" / video.key)
    alone = single_process(data, systems, tmp_path / "alone", "tiny_kelm")
    assert track_files(alone) == track_files(node)
    solo, shared = alone.load_state("model.safetensors"), node.load_state("model.safetensors")
    assert solo.keys() == shared.keys() and all(torch.equal(solo[key], shared[key]) for key in solo)
