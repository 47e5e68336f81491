"""Every registered kind, for every task it serves, keeps the contract on the tiny synthetic dataset (smoke profile,
settings cut down to seconds): a run killed after a few tracks resumes, and the result equals a fresh fit with the
same seed (determinism) and the predictions of a fresh instance loaded from the saved state (state round trip),
compared on the validation and test splits. Cases run inputs first, so later ones reuse their nodes.

The parameters come from the registry (``list_kinds()`` × each kind's ``tasks``): a new kind or task is picked up,
and a kind without a spec in :data:`SPECS` fails :func:`test_every_kind_has_a_conformance_spec`.
"""

import numpy as np
import pytest
import torch
from kind_specs import SPECS

from harness.data.affwild2 import Dataset
from harness.models.context import Context, split_outputs
from harness.models.registry import build_kind, get_kind, list_kinds
from harness.runner import MODEL_FILE, NodePlan, cache_opener, plan_nodes, run_system, store_input
from harness.store import Node, Store

KILL_AFTER = 2  # tracks the node writes (every output of them) before the simulated kill
COMPARED = ("validation", "test")  # the splits a second fit and a loaded state predict (scored and submitted)
ORDER = {kind: position for position, kind in enumerate(SPECS)}  # inputs first: later cases reuse their nodes
CASES = [
    (kind, task)
    for kind in sorted(list_kinds(), key=lambda k: ORDER.get(k, len(ORDER)))
    for task in get_kind(kind).tasks
]


def test_every_kind_has_a_conformance_spec() -> None:
    assert sorted(SPECS) == list_kinds(), "add a small spec for each new kind to SPECS"


def _stored(node: Node, kind: type, dataset: Dataset, task: str) -> dict[tuple[str, str, str], np.ndarray]:
    """Every output of every track of the :data:`COMPARED` splits, as the node holds them."""
    return {
        (output, split, name): np.array(node.read_track(f"{output}-{split}", name))
        for split in COMPARED
        for output in split_outputs(kind, split)
        for name in dataset.split(task, split).names
    }


def _predicted(system, context: Context, dataset: Dataset, task: str) -> dict[tuple[str, str, str], np.ndarray]:
    """What ``predict`` yields for every track of the :data:`COMPARED` splits, keyed like :func:`_stored`."""
    out = {}
    for split in COMPARED:
        for name, outputs in system.predict(context, split, list(dataset.split(task, split).names)):
            out |= {(output, split, name): np.asarray(array) for output, array in outputs.items()}
    return out


def _context(plan: NodePlan, dataset: Dataset, store: Store) -> Context:
    """The node's context as the runner builds it (its inputs read from the store)."""
    inputs = {p.name: store_input(store, p) for p in plan.inputs}
    return Context(dataset, plan.task, inputs, cache=cache_opener(store, plan.material["dataset"]))


def _same(found: dict, expected: dict, what: str) -> None:
    assert found.keys() == expected.keys(), what
    for key, array in expected.items():
        np.testing.assert_array_equal(found[key].astype(array.dtype), array, err_msg=f"{what}: {key}")


@pytest.mark.parametrize(("kind", "task"), CASES)
def test_kind_conforms(conformance_world, kind: str, task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems = conformance_world
    system = f"conf_{kind}"
    plan = plan_nodes(system, [task], dataset, "smoke", systems)[-1]
    cls = get_kind(kind)

    # killed after KILL_AFTER tracks of its own node (its inputs are computed, or store hits, first)
    written: set[tuple[str, str]] = set()  # (split, track) of the node's writes so far
    write_track = Node.write_track

    def dies(self, group, track, array, dtype=None):
        if self.key == plan.key:
            where = (group.rsplit("-", 1)[1], track)
            if where not in written and len(written) == KILL_AFTER:
                raise KeyboardInterrupt
            written.add(where)
        return write_track(self, group, track, array, dtype)

    store.remove(plan.key)  # computed already as another case's input: this case computes it again
    monkeypatch.setattr(Node, "write_track", dies)
    with pytest.raises(KeyboardInterrupt):
        run_system(system, [task], dataset, "smoke", store, board, systems)
    monkeypatch.setattr(Node, "write_track", write_track)
    node = store.node(plan.key)
    assert not node.is_complete() and node.has(MODEL_FILE)
    monkeypatch.setattr(cls, "fit", lambda *a: pytest.fail("a resumed node reuses its saved model"))
    resumed = run_system(system, [task], dataset, "smoke", store, board, systems)[-1]
    monkeypatch.undo()
    assert not resumed.hit and node.is_complete() and resumed.score is not None
    stored = _stored(node, cls, dataset, task)

    # determinism: a fresh fit with the same seed predicts what the killed-and-resumed run stored
    context = _context(plan, dataset, store)
    fresh = build_kind(kind, plan.resolved.settings, task, plan.resolved.spec.seed)
    fresh.fit(context)
    _same(_predicted(fresh, context, dataset, task), stored, f"{kind} {task}: a second fit with the same seed")

    # state round trip: a fresh instance loaded from the saved state predicts the same, and gives that state back
    saved = node.load_state(MODEL_FILE)
    loaded = build_kind(kind, plan.resolved.settings, task, plan.resolved.spec.seed).load_state(saved)
    _same(_predicted(loaded, context, dataset, task), stored, f"{kind} {task}: loaded from its saved state")
    again = loaded.state()
    assert again.keys() == saved.keys()
    assert all(torch.equal(again[key], saved[key]) for key in saved)
