"""Every default system plans under `paper` on a release-shaped tree (the affwild2 scale, pooled crops), without
editing a spec and without training: settings resolve, store keys form, and `--dry-run` prints the work."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.data import synthetic
from harness.data.affwild2 import Dataset
from harness.errors import SpecError
from harness.runner import plan_nodes
from harness.spec import load_spec

SYSTEMS = Path(__file__).parent.parent / "systems"
BACKBONES = ("efficientnet_b1", "efficientnet_b4", "vit_base_patch16_224")


@pytest.fixture(scope="module")
def release_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1% of the release's tracks at their real lengths, crops linked to a pool (cost-measurement mode)."""
    root = tmp_path_factory.mktemp("release") / "affwild2"
    synthetic.generate(root, seed=2, scale="affwild2", crops="pool", fraction=0.01, workers=1)
    return root


@pytest.fixture
def paper_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Local files where the paper profile looks for pretrained weights; planning hashes them, never loads them."""
    folder = tmp_path / "weights"
    folder.mkdir()
    for backbone in BACKBONES:
        (folder / f"{backbone}.safetensors").write_bytes(backbone.encode())
    (folder / "pdem").mkdir()
    for name in ("config.json", "model.safetensors"):  # checked for at planning, read only by a run
        (folder / "pdem" / name).write_text("{}")
    monkeypatch.setenv("ABAW_WEIGHTS", str(folder))
    monkeypatch.setenv("ABAW_PDEM", str(folder / "pdem"))
    monkeypatch.setenv("ABAW_HOME", str(tmp_path / "home"))
    return folder


@pytest.mark.parametrize("system", sorted(path.stem for path in SYSTEMS.glob("*.yaml")))
def test_every_default_system_plans_under_paper(system: str, release_tree: Path, paper_weights: Path) -> None:
    spec = load_spec(system, SYSTEMS)
    plans = plan_nodes(system, list(spec.tasks), Dataset(release_tree), "paper", SYSTEMS)
    own = [plan for plan in plans if plan.resolved.spec.name == system]
    assert own and {plan.task for plan in own} == set(spec.tasks)
    assert all(plan.resolved.profile == "paper" for plan in plans)
    assert len({plan.key for plan in plans}) == len(plans)


def test_dry_run_lists_the_work_of_dwf_under_paper(release_tree: Path, paper_weights: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "dwf", "--dry-run", "--profile", "paper", "--data", str(release_tree), "--json"]
    )
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.stdout)["nodes"]
    assert [node["name"] for node in nodes][-2:] == ["dwf", "dwf"]
    assert all(not node["stored"] and node["amount"] > 0 for node in nodes)
    assert not (tmp_path / "home" / "store").exists()  # a dry run computes and writes nothing
    audio = next(node for node in nodes if node["kind"] == "audio")
    seconds = audio["work"]["audio s"]  # PDEM's frozen features: 199 frames × 1024 float16 every 2 s
    assert audio["work"]["frozen-feature cache MB"] == pytest.approx(seconds / 2 * 199 * 1024 * 2 / 1e6)


def test_a_missing_pdem_folder_fails_at_planning(
    release_tree: Path, paper_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ABAW_PDEM", str(paper_weights / "elsewhere"))
    with pytest.raises(SpecError, match=r"PDEM weights: folder .*elsewhere \(from the audio spec's 'pdem' setting or "):
        plan_nodes("audio_v1", ["va"], Dataset(release_tree), "paper", SYSTEMS)
