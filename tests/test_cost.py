"""``--dry-run``: nodes in order with their work, and estimates from the throughput recorded by earlier runs."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness import cost, runner
from harness.cli import app
from harness.data.affwild2 import Dataset
from harness.store import Store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("ABAW_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("ABAW_HOME", str(tmp_path / "home"))
    return Store(tmp_path / "store")


def test_dry_run_counts_the_work_and_knows_no_rate_before_a_run(handmade_root: Path, store: Store) -> None:
    dataset = Dataset(handmade_root)
    costs = cost.dry_run("video_b1", ["va", "expr"], dataset, "smoke", store)
    assert [(c.name, c.task, c.kind, c.stored, c.seconds) for c in costs] == [
        ("video_b1", "va", "video", False, None),
        ("video_b1", "expr", "video", False, None),
    ]
    va = dataset.split("va", "train")
    train_crops = sum(len(va.face_frames(name)) for name in va.names)
    assert costs[0].work["train crops"] == train_crops == 2  # video1's frames 1 and 3
    assert costs[0].work["crops"] == 7  # and the validation pair's 2 + 1, the test track's 2
    assert costs[0].amount == train_crops * costs[0].work["epochs"] + costs[0].work["crops"]
    assert cost.describe(costs[0])[1] == "unknown"


def test_recorded_throughput_gives_an_estimate_per_kind_and_profile(handmade_root: Path, store: Store) -> None:
    dataset = Dataset(handmade_root)
    cost.record_throughput(store, "video", "paper", 1.0, 100.0)
    assert cost.dry_run("video_b1", ["va"], dataset, "smoke", store)[0].seconds is None  # another profile's rate
    plan = runner.plan_nodes("video_b1", ["va"], dataset, "smoke")[-1]
    runner._record_throughput(plan, dataset, store, 10.0)  # what run_node does after computing a node
    cost.record_throughput(store, "video", "smoke", 30.0, 2.0)
    recorded = json.loads((store.root / cost.THROUGHPUT_FILE).read_text())[cost.machine()]["video/smoke"]
    (va,) = cost.dry_run("video_b1", ["va"], dataset, "smoke", store)
    assert recorded["runs"] == 2 and recorded["amount"] == va.amount + 30.0 and recorded["seconds"] == 12.0
    assert va.seconds == pytest.approx(va.amount * 12.0 / (va.amount + 30.0))
    cost.record_throughput(store, "video", "smoke", 0.0, 5.0)  # nothing counted: nothing recorded
    assert json.loads((store.root / cost.THROUGHPUT_FILE).read_text())[cost.machine()]["video/smoke"]["runs"] == 2


def test_cli_dry_run_lists_nodes_and_computes_nothing(handmade_root: Path, store: Store) -> None:
    for command in ("run", "submit"):
        result = CliRunner().invoke(
            app, [command, "video_b1", "--dry-run", "--data", str(handmade_root), "--profile", "smoke", "--json"]
        )
        assert result.exit_code == 0, result.output
        listed = json.loads(result.stdout)
        assert [node["task"] for node in listed["nodes"]] == ["va", "expr"] and listed["profile"] == "smoke"
        assert all(node["seconds"] is None and not node["stored"] for node in listed["nodes"])
    assert not store.root.exists() or not store.keys()
    table = CliRunner().invoke(
        app, ["run", "video_b1", "--dry-run", "--data", str(handmade_root), "--profile", "smoke"]
    )
    assert table.exit_code == 0 and "to compute" in table.output and "unknown" in table.output


def test_work_of_an_au_node_counts_the_au_splits(synthetic_tiny: Path) -> None:
    from harness.models.kelm import KelmSettings

    dataset = Dataset(synthetic_tiny)
    splits = {name: dataset.split("au", name) for name in ("train", "validation", "test")}
    work, frames = cost.node_work("dwf", None, "au", dataset)
    assert frames == work["frames"] == sum(t.n_rows for s in ("validation", "test") for t in splits[s].tracks) > 0
    work, steps = cost.node_work("kelm", KelmSettings(), "au", dataset)
    assert steps == work["steps"] > 0 and set(work) == {"steps"}
