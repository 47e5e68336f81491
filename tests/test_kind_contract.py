"""The kind contract in code: the registry agrees with its modules, the factory, and the runner's checks of what a
kind yields (a bad track fails its node, which is not completed; a later run computes it)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict

from harness.data.affwild2 import Dataset
from harness.errors import KindOutputError, SpecError
from harness.leaderboard import Leaderboard
from harness.models import registry
from harness.models.registry import KIND_MODULES, Kind, build_kind, check_module, check_registry, register_kind
from harness.runner import plan_nodes, run_system
from harness.store import Store

FAULT: dict[str, str | None] = {"now": None}  # the fault the toy makes (module state: the node's key stays the same)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: float = 0.5


@register_kind("contract_toy")
class FaultyKind(Kind):
    """Half the labels, or, on the first validation track, the fault in ``FAULT``."""

    version = "1"
    Settings = _Settings
    profiles: dict = {}
    outputs = ("pred",)

    def fit(self, context) -> "FaultyKind":
        return self

    def predict(self, context, split_name, tracks):
        split = context.split(split_name)
        width = 2 if self.task == "va" else 8
        for name in tracks:
            n = split.track(name).n_rows
            first = split_name == "validation" and name == split.names[0]
            fault = FAULT["now"] if first else None
            if fault == "missing_track":
                continue
            pred = np.full((n - (fault == "rows"), width + (fault == "width")), self.settings.scale, np.float32)
            if fault == "nan":
                pred[-1, 0] = np.nan
            yield name, ({"emb": pred} if fault == "output" else {"pred": pred})

    def state(self) -> dict:
        return {"scale": torch.tensor([self.settings.scale])}

    def load_state(self, state) -> "FaultyKind":
        return self


@pytest.fixture
def world(handmade_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(KIND_MODULES, "contract_toy", __name__)
    monkeypatch.setitem(FAULT, "now", None)
    systems = tmp_path / "systems"
    systems.mkdir()
    (systems / "toy.yaml").write_text("kind: contract_toy\ntasks: [va]\n")
    return Dataset(handmade_root), Store(tmp_path / "store"), Leaderboard(tmp_path / "board.sqlite"), systems


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            "missing_track",
            r"track '{track}' \(validation\), output 'pred': expected every track of the split, found none",
        ),
        (
            "nan",
            r"track '{track}' \(validation\), output 'pred': "
            r"expected finite values, found 1 NaN or inf \(first in row 1\)",
        ),
        ("rows", r"track '{track}' \(validation\), output 'pred': expected 2 rows \(one per label line\), found 1"),
        ("width", r"track '{track}' \(validation\), output 'pred': expected 2 columns \(va\), found 3"),
        ("output", r"track '{track}' \(validation\): expected the outputs pred, found emb"),
    ],
)
def test_a_bad_output_fails_its_node_which_is_not_completed(world, fault: str, expected: str) -> None:
    dataset, store, board, systems = world
    (plan,) = plan_nodes("toy", ["va"], dataset, "smoke", systems)
    track = dataset.split("va", "validation").names[0]
    FAULT["now"] = fault
    message = rf"system 'toy' \(va\), node {plan.key}, " + expected.format(track=track)
    with pytest.raises(KindOutputError, match=message):
        run_system("toy", ["va"], dataset, "smoke", store, board, systems)
    assert not store.node(plan.key).is_complete()
    FAULT["now"] = None  # the kind fixed: the next run computes the node (from its saved model) and completes it
    (result,) = run_system("toy", ["va"], dataset, "smoke", store, board, systems)
    assert not result.hit and store.node(plan.key).is_complete()
    np.testing.assert_array_equal(store.node(plan.key).read_track("pred-validation", track), np.full((2, 2), 0.5))


def test_a_track_not_asked_for_is_refused(world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems = world
    monkeypatch.setattr(FaultyKind, "predict", lambda self, context, split, tracks: iter([("stranger", {})]))
    with pytest.raises(KindOutputError, match=r"track 'stranger' \(train\): expected one of the 1 tracks asked for"):
        run_system("toy", ["va"], dataset, "smoke", store, board, systems)


def test_every_kind_module_registers_the_names_mapped_to_it() -> None:
    check_registry()
    assert set(registry.list_kinds()) <= set(registry._REGISTRY)


def test_a_module_must_register_every_name_mapped_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KIND_MODULES, "contract_toy", __name__)
    check_module(__name__)
    monkeypatch.setitem(KIND_MODULES, "contract_ghost", __name__)
    with pytest.raises(
        ValueError, match=r"maps \['contract_ghost', 'contract_toy'\] to it, but it registers \['contract_toy'\]"
    ):
        check_module(__name__)


def test_registration_checks_the_class_and_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match=r"kind 'plain' \(\S+\.Plain\) must subclass registry.Kind"):

        @register_kind("plain")
        class Plain:
            pass

    with pytest.raises(TypeError, match=r"kind 'bare' \(\S+\.Bare\) lacks version, Settings, profiles, outputs"):

        @register_kind("bare")
        class Bare(Kind):
            pass

    monkeypatch.setitem(KIND_MODULES, "elsewhere", "harness.models.video")
    with pytest.raises(ValueError, match=r"kind 'elsewhere' is registered in \S+, but KIND_MODULES maps it to harness"):
        register_kind("elsewhere")(FaultyKind)
    with pytest.raises(ValueError, match=r"kind 'contract_toy' is registered twice"):
        register_kind("contract_toy")(FaultyKind)
    assert "plain" not in registry._REGISTRY and "elsewhere" not in registry._REGISTRY


def test_build_kind_checks_the_task_and_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KIND_MODULES, "contract_toy", __name__)
    toy = build_kind("contract_toy", {"scale": 0.25}, "expr", 3)
    assert isinstance(toy, FaultyKind) and (toy.settings.scale, toy.task, toy.seed) == (0.25, "expr", 3)
    assert toy.notes_ == () and FaultyKind.key_extra(toy.settings) is None and not FaultyKind.distributed_fit
    with pytest.raises(SpecError, match=r"kind 'contract_toy': settings \{'scales': 1\} are not its Settings"):
        build_kind("contract_toy", {"scales": 1}, "va", 0)
    monkeypatch.setattr(FaultyKind, "tasks", ("va",))
    with pytest.raises(SpecError, match=r"kind 'contract_toy' serves va, not task 'expr'"):
        build_kind("contract_toy", {}, "expr", 0)
