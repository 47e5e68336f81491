"""One procedure scores a stored node, for its leaderboard row (the runner) and for the drift guard, for every task."""

import json

import numpy as np
import pytest
from conftest import AU_RATES

from harness import drift
from harness.data.affwild2 import Split, Track
from harness.models.context import HONEST
from harness.resampling import track_statistics
from harness.run_record import RunRecord
from harness.scoring import node_predictions, score_node_predictions, score_split
from harness.tasks import TASKS, get_task


class StoredNode:
    """A complete node's per-track outputs, read as :class:`harness.store.Node` reads them."""

    def __init__(self, outputs: dict[str, dict[str, np.ndarray]]) -> None:
        self.outputs = outputs

    def read_track(self, group: str, track: str) -> np.ndarray:
        return self.outputs[group][track]


class OneSplit:
    """A dataset holding one split."""

    def __init__(self, split: Split) -> None:
        self.only = split

    def split(self, task: str, name: str) -> Split:
        assert (task, name) == (self.only.task, self.only.name)
        return self.only


def labelled_split(task: str, seed: int = 0) -> Split:
    """Eight tracks of random labels of ``task``, some frames invalid, the last track without a valid frame."""
    rng = np.random.default_rng(seed)
    definition = get_task(task)
    tracks = []
    for i in range(8):
        n = int(rng.integers(30, 70))
        if task == "va":
            labels = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        elif task == "expr":
            labels = rng.integers(0, 8, n)
        else:
            labels = (rng.random((n, 12)) < AU_RATES).astype(np.int8)
        labels[rng.random(n) < 0.1] = definition.invalid_labels(1)[0]
        if i == 7:
            labels = definition.invalid_labels(n)
        tracks.append(Track(f"video{i}", n, labels, None, None, None))
    return Split(task, "validation", tuple(tracks))


def stored_outputs(split: Split, noise: float, seed: int) -> dict[str, np.ndarray]:
    """What a kind stores per track: VA values, EXPR class scores, AU probabilities; right more often at low noise."""
    rng = np.random.default_rng(seed)
    definition = get_task(split.task)
    outputs = {}
    for track in split.tracks:
        clean = np.where(definition.valid(track.labels).reshape(-1, *[1] * (track.labels.ndim - 1)), track.labels, 0)
        target = definition.one_hot_targets(clean)
        outputs[track.name] = np.clip(target + rng.normal(0, noise, target.shape), -1, 1).astype(np.float32)
    return outputs


def same(a, b) -> bool:
    """Equal score results (a track without a valid frame scores NaN, which no comparison finds equal)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def scored_node(task: str, honest: bool):
    split = labelled_split(task, seed=TASKS.index(task))
    groups = {"pred-validation": stored_outputs(split, 0.3, 1)}
    if honest:
        groups[f"{HONEST}-validation"] = stored_outputs(split, 0.6, 2)
    return split, StoredNode(groups), OneSplit(split)


@pytest.mark.parametrize("task", TASKS)
def test_node_predictions_are_the_tasks_decisions(task: str) -> None:
    split, node, dataset = scored_node(task, honest=False)
    got = node_predictions(node, dataset, task, "validation")
    assert list(got) == list(split.names)
    definition = get_task(task)
    for name, values in got.items():
        np.testing.assert_array_equal(values, definition.decide(node.outputs["pred-validation"][name]))
    assert next(iter(got.values())).shape[1:] == {"va": (2,), "expr": (), "au": (12,)}[task]


@pytest.mark.parametrize("task", TASKS)
def test_a_node_without_honest_outputs_is_recorded_by_its_own_scores(task: str) -> None:
    split, node, dataset = scored_node(task, honest=False)
    scored = score_node_predictions(node, dataset, task, "validation", honest=False)
    predictions = node_predictions(node, dataset, task, "validation")
    assert same(scored.scores, score_split(split, predictions))
    assert scored.honest is None and scored.ranked is scored.scores and scored.record_result() is scored.scores
    assert scored.honest_extra() == {}
    pooled = np.concatenate([predictions[name] for name in split.names])
    want = track_statistics(task, pooled, split.labels(), split.track_index(), len(split.tracks))
    assert scored.stats.tobytes() == want.tobytes() and scored.track_names == split.names
    assert set(get_task(task).breakdown_names) <= set(scored.scores)


@pytest.mark.parametrize("task", TASKS)
def test_honest_scores_rank_and_the_drift_guard_reproduces_the_row(task: str) -> None:
    split, node, dataset = scored_node(task, honest=True)
    scored = score_node_predictions(node, dataset, task, "validation", honest=True)
    honest = score_split(split, node_predictions(node, dataset, task, "validation", HONEST))
    assert same(scored.honest, honest) and scored.ranked is scored.honest
    parts = get_task(task).breakdown_names
    result = scored.record_result()
    assert same(result["per_track"], honest["per_track"]) and result["frames"] == honest["frames"]
    assert all(result[key] == scored.scores[key] for key in ("score", "ci95", *parts))
    extra = scored.honest_extra()
    assert list(extra) == ["fitted_on_validation", "honest_score", "honest_ci", *(f"honest_{k}" for k in parts)]
    assert extra["honest_score"] == honest["score"] != scored.scores["score"]
    record = RunRecord.from_scores("fuse", "smoke", "h", "k", "fp", result, scored.stats, split.names, extra=extra)
    assert record.rank_score == honest["score"] and record.score == scored.scores["score"]
    recorded = drift.recorded_values(record)
    again = drift.rescore(record, node, dataset)
    assert recorded.keys() <= again.keys()
    assert all(drift.same_value(value, again[key]) for key, value in recorded.items())
    vector = [key for key in parts if key in get_task(task).part_labels]
    for key in vector:  # a vector part is compared entry by entry, in-sample and honest
        assert f"{key}[0]" in recorded and f"honest_{key}[0]" in recorded
    # an honest prediction changed after the row was recorded: its track, the pooled score and the statistics drift
    first = split.names[0]
    node.outputs[f"{HONEST}-validation"][first] = -node.outputs[f"{HONEST}-validation"][first]
    changed = drift.rescore(record, node, dataset)
    moved = {key for key, value in recorded.items() if not drift.same_value(value, changed[key])}
    assert {"honest_score", f"per_track[{first}]", drift.STATS_FIELD} <= moved
    assert "score" not in moved  # the in-sample predictions did not change
