"""Fusion: the candidate-search math against frame-by-frame references, the dwf and rf kinds on toy inputs, honest
scores through the runner and the leaderboard, and every bad input with its message."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict

from harness.data.affwild2 import Dataset
from harness.errors import KindOutputError, SpecError
from harness.fusion_math import (
    AU_STEPS,
    AU_THRESHOLDS,
    au_best_choices,
    au_candidate_f1,
    corner_candidates,
    dirichlet_candidates,
    entropy_gate,
    expr_candidate_confusions,
    expr_candidate_scores,
    fuse,
    normalised_entropy,
    threshold_at_half,
    va_candidate_scores,
    va_moments,
    video_folds,
)
from harness.leaderboard import Leaderboard
from harness.metrics import task_scores
from harness.models.context import HONEST, Context
from harness.models.fusion import DWFKind, DWFSettings, RFKind, RFSettings
from harness.models.registry import KIND_MODULES, Kind, register_kind
from harness.runner import run_system, store_input
from harness.store import Store
from harness.tasks import get_task

# ----------------------------------------------------------------------------------------------- a toy input kind


class ToySettings(BaseModel):
    """A fake system: labels plus seeded noise, and switches that break it in the ways fusion must catch."""

    model_config = ConfigDict(extra="forbid")

    noise: float = 0.5
    nan_in: str | None = None  # a validation track whose first row is NaN
    skip_test: bool = False  # no prediction for the first test track
    rows: int = 0  # rows added to (or, negative, removed from) every track
    offset: float = 0.0  # added to every prediction (AU probabilities then leave [0, 1])


@register_kind("toy")
class ToyKind(Kind):
    version = "1"
    Settings = ToySettings
    profiles: dict = {}
    outputs = ("pred",)

    def __init__(self, settings: ToySettings, task: str, seed: int) -> None:
        self.settings, self.task, self.seed = settings, task, seed

    def fit(self, context) -> "ToyKind":
        self.fitted_ = True
        return self

    def predict(self, context, split_name, tracks):
        split = context.split(split_name)
        for index, name in enumerate(tracks):
            if self.settings.skip_test and split_name == "test" and name == split.names[0]:
                continue
            track = split.track(name)
            rng = np.random.default_rng([self.seed, index, len(name), ord(split_name[0])])
            n = track.n_rows + self.settings.rows
            if self.task == "va":
                truth = (
                    np.zeros((n, 2))
                    if track.labels is None
                    else np.resize(np.where(track.labels == -5, 0, track.labels), (n, 2))
                )
                pred = np.clip(truth + rng.normal(0, self.settings.noise, (n, 2)), -1, 1)
            elif self.task == "expr":
                truth = np.zeros(n, int) if track.labels is None else np.resize(np.maximum(track.labels, 0), n)
                logits = 2.0 * np.eye(8)[truth] + rng.normal(0, self.settings.noise * 4, (n, 8))
                pred = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            else:  # au: each unit's probability, skill falling with the noise
                truth = np.zeros((n, 12)) if track.labels is None else np.resize(np.maximum(track.labels, 0), (n, 12))
                logits = 3.0 * (truth - 0.5) - 1.0 + rng.normal(0, self.settings.noise * 3, (n, 12))
                pred = 1 / (1 + np.exp(-logits))
            pred = pred + self.settings.offset
            if self.settings.nan_in == name:
                pred[0] = np.nan
            yield name, {"pred": pred.astype(np.float32)}

    def state(self) -> dict:
        return {"fitted": torch.ones(1)}

    def load_state(self, state) -> "ToyKind":
        self.fitted_ = True
        return self


@register_kind("toy_fitted")
class FittedToyKind(ToyKind):
    """A toy that was fitted on validation: its in-sample validation predictions are the labels themselves, its
    cross-fitted ``honest`` ones the toy's noisy guesses."""

    validation_outputs = (HONEST,)

    def predict(self, context, split_name, tracks):
        split = context.split(split_name)
        for name, outputs in super().predict(context, split_name, tracks):
            if split_name == "validation":
                labels = split.track(name).labels
                exact = np.where(labels == -5, 0, labels) if self.task == "va" else np.eye(8)[np.maximum(labels, 0)]
                exact = np.maximum(labels, 0) if self.task == "au" else exact
                outputs = {"pred": exact.astype(np.float32), HONEST: outputs["pred"]}
            yield name, outputs


@pytest.fixture(scope="module")
def toy_world(synthetic_tiny: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two noisy toy inputs, fusion specs over them, a store and a leaderboard on the tiny synthetic dataset."""
    patch = pytest.MonkeyPatch()
    patch.setitem(KIND_MODULES, "toy", __name__)
    patch.setitem(KIND_MODULES, "toy_fitted", __name__)
    base = tmp_path_factory.mktemp("fusion")
    systems = base / "systems"
    systems.mkdir()
    for name, text in {
        "toy_a": "kind: toy\nseed: 1\nnoise: 0.6\n",
        "toy_b": "kind: toy\nseed: 2\nnoise: 0.6\n",
        "toy_c": "kind: toy\nseed: 3\nnoise: 0.9\n",
        "fuse": "kind: dwf\ninputs: [toy_a, toy_b, toy_c]\nsamples: 300\nfolds: 3\n",
        "forest": "kind: rf\ninputs: [toy_a, toy_b]\ntrees: [5, 10]\nmax_rows: 2000\nfolds: 3\n",
    }.items():
        (systems / f"{name}.yaml").write_text(text)
    yield Dataset(synthetic_tiny), Store(base / "store"), Leaderboard(base / "board.sqlite"), systems
    patch.undo()


def add_spec(systems: Path, name: str, text: str) -> str:
    (systems / f"{name}.yaml").write_text(text)
    return name


# ----------------------------------------------------------------------------------------------- math


def test_va_closed_form_equals_scoring_the_fused_frames() -> None:
    rng = np.random.default_rng(0)
    labels = rng.uniform(-1, 1, (3000, 2))
    inputs = np.clip(labels[None] * [[[0.8]], [[0.4]], [[0.1]]] + rng.normal(0, 0.4, (3, 3000, 2)), -1, 1) + 0.05
    labels[rng.random(3000) < 0.1, 1] = -5
    weights = np.concatenate([dirichlet_candidates(rng, 50, 3, 2), corner_candidates(3, 2)])
    scores = va_candidate_scores(weights, va_moments(inputs, labels))
    expected = [task_scores("va", fuse(w, list(inputs)), labels).score for w in weights]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)


def test_expr_counts_equal_an_argmax_loop_ties_included() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 8, 4000)
    logits = 1.5 * np.eye(8)[labels][None] + rng.normal(0, 1, (3, 4000, 8))
    inputs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    inputs[:, :300] = 0.125  # every class tied: with exact weights the lowest class wins, as argmax decides
    inputs[:, 300:600] = inputs[0, 300:600]  # inputs agree: every candidate gives the same class
    inputs = inputs.astype(np.float32)
    # random weights only where rounding cannot break a tie; the corners (weights 0 and 1) everywhere
    ties = expr_candidate_confusions(corner_candidates(3, 8)[:3], inputs[:, :300], labels[:300])
    for confusion in ties:
        np.testing.assert_array_equal(confusion[:, 0], np.bincount(labels[:300], minlength=8))
    inputs, labels = inputs[:, 300:], labels[300:]
    weights = dirichlet_candidates(rng, 300, 3, 8)
    confusions = expr_candidate_confusions(weights, inputs, labels, workers=2)
    for w, confusion in zip(weights[:40], confusions[:40], strict=True):
        predicted = fuse(w, list(inputs.astype(np.float64))).argmax(1)
        np.testing.assert_array_equal(confusion, np.bincount(labels * 8 + predicted, minlength=64).reshape(8, 8))
    scores = expr_candidate_scores(weights[:5], inputs, labels)
    np.testing.assert_allclose(
        scores, [task_scores("expr", fuse(w, list(inputs)).argmax(1), labels).score for w in weights[:5]], atol=1e-12
    )
    with pytest.raises(ValueError, match="needs 8 class scores per frame; got 7"):
        expr_candidate_scores(weights[:, :, :7], inputs[:, :, :7], labels)
    with pytest.raises(ValueError, match="needs 9 class scores per frame; got 8"):
        expr_candidate_scores(weights, inputs, labels, classes=9)
    with pytest.raises(ValueError, match=r"AU fusion needs probabilities in \[0, 1\]; got values from -0.5 to 1.0"):
        au_candidate_f1(
            corner_candidates(2, 12), np.stack([np.full((3, 12), -0.5), np.ones((3, 12))]), np.ones((3, 12))
        )


def au_data(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Three inputs' probabilities ``(3, n, 12)`` of 0/1 units ``(n, 12)`` with rates from 3% to 40%, the inputs of
    varying skill and calibration."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 12)) < np.linspace(0.03, 0.4, 12)).astype(np.int8)
    signal = np.array([1.5, 0.8, 0.2])[:, None, None] * (2 * labels[None] - 1)
    logits = signal + rng.normal(0, 1, (3, n, 12)) - np.array([1.0, 0.0, -0.5])[:, None, None]
    return 1 / (1 + np.exp(-logits)), labels


def test_au_f1_of_every_candidate_and_threshold_equals_thresholding_the_fused_frames() -> None:
    inputs, labels = au_data(2, 1500)
    weights = np.concatenate([dirichlet_candidates(np.random.default_rng(3), 6, 3, 12), corner_candidates(3, 12)])
    f1 = au_candidate_f1(weights, inputs, labels)
    assert f1.shape == (len(weights), 12, len(AU_THRESHOLDS))
    for s in (0, 3, len(weights) - 1):
        fused = fuse(weights[s], list(inputs))
        for j in (0, 10, 24, 48):
            decided = (fused * AU_STEPS >= j + 1).astype(np.int8)  # on at threshold j: its level j + 1
            expected = task_scores("au", decided, labels).f1_per_au
            np.testing.assert_allclose(f1[s, :, j], expected, rtol=0, atol=1e-12)


def test_au_choices_are_per_unit_and_their_stored_outputs_decide_at_half() -> None:
    inputs, labels = au_data(4)
    weights = np.concatenate([dirichlet_candidates(np.random.default_rng(5), 40, 3, 12), corner_candidates(3, 12)])
    chosen, thresholds, f1 = au_best_choices(weights, inputs, labels)
    assert chosen.shape == (3, 12) and thresholds.shape == f1.shape == (12,)
    np.testing.assert_allclose(chosen.sum(0), 1.0)
    assert set(thresholds) <= set(AU_THRESHOLDS) and len(set(thresholds)) > 1  # rare units want lower thresholds
    best = au_candidate_f1(weights, inputs, labels).max(axis=(0, 2))
    np.testing.assert_array_equal(f1, best)
    stored = threshold_at_half(fuse(chosen, list(inputs)), thresholds).astype(np.float32)
    assert stored.min() >= 0 and stored.max() <= 1
    scored = task_scores("au", get_task("au").decide(stored), labels)
    np.testing.assert_allclose(scored.f1_per_au, f1, rtol=0, atol=1e-12)
    singles = [task_scores("au", get_task("au").decide(p), labels).score for p in inputs]
    assert scored.score >= max(singles)  # each input alone at 0.5 is among the choices


def test_threshold_at_half_keeps_every_decision_and_the_order_once_float32() -> None:
    thresholds = np.array([0.02, 0.3, 0.5, 0.98])
    below = np.nextafter(thresholds, 0.0)
    rows = np.stack([thresholds, below, np.zeros(4), np.ones(4), np.nextafter(thresholds, 1.0), thresholds / 2])
    mapped = threshold_at_half(rows, thresholds).astype(np.float32)
    np.testing.assert_array_equal(mapped >= 0.5, rows * AU_STEPS >= np.round(thresholds * AU_STEPS))
    np.testing.assert_array_equal(mapped[0], 0.5)
    np.testing.assert_array_equal(mapped[2], 0.0)
    np.testing.assert_array_equal(mapped[3], 1.0)
    np.testing.assert_allclose(mapped[5], 0.25)
    values = np.sort(np.random.default_rng(0).random((500, 4)), axis=0)
    assert (np.diff(threshold_at_half(values, thresholds), axis=0) >= 0).all()


def test_candidates_are_seeded_columns_on_the_simplex() -> None:
    a = dirichlet_candidates(np.random.default_rng(4), 20, 3, 8, alpha=0.5)
    b = dirichlet_candidates(np.random.default_rng(4), 20, 3, 8, alpha=0.5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert (a >= 0).all() and corner_candidates(2, 2).shape == (3, 2, 2)


def test_entropy_gate_zeroes_unsure_rows_only() -> None:
    sure, unsure = np.eye(8)[[2]] * 0.93 + 0.01, np.full((1, 8), 0.125)
    rows = np.concatenate([sure, unsure])
    assert normalised_entropy(unsure)[0] == pytest.approx(1.0)
    gated = entropy_gate(rows, 0.8)
    np.testing.assert_array_equal(gated[0], rows[0])
    assert not gated[1].any()


def test_video_folds_keep_both_people_of_a_video_together() -> None:
    names = ["a_left", "a_right", "b", "c", "d_left", "d_right", "e"]
    folds = video_folds(names, 3, seed=0)
    assert folds[0] == folds[1] and folds[4] == folds[5] and set(folds) == {0, 1, 2}
    np.testing.assert_array_equal(folds, video_folds(names, 3, seed=0))
    assert set(video_folds(names, 50, seed=1)) == set(range(5))  # at most one fold per video
    with pytest.raises(ValueError, match="at least 2 folds of whole videos; got 5 folds, 1 videos"):
        video_folds(["a_left", "a_right"], 5, seed=0)


# ----------------------------------------------------------------------------------------------- AU kinds on arrays


class _Track:
    def __init__(self, labels: np.ndarray) -> None:
        self.labels, self.n_rows = labels, len(labels)


class _Split:
    """What the fusion kinds read of a split: its tracks' names, label rows and each frame's track number."""

    def __init__(self, labels: dict[str, np.ndarray]) -> None:
        self.names = list(labels)
        self.tracks = [_Track(value) for value in labels.values()]

    def track(self, name: str) -> _Track:
        return self.tracks[self.names.index(name)]

    def labels(self) -> np.ndarray:
        return np.concatenate([t.labels for t in self.tracks])

    def track_index(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.tracks)), [t.n_rows for t in self.tracks])


class _Dataset:
    def __init__(self, splits: dict[str, _Split]) -> None:
        self.splits = splits

    def split(self, task: str, name: str) -> _Split:
        return self.splits[name]


class _Input:
    honest = False

    def __init__(self, name: str, values: dict[tuple[str, str], np.ndarray]) -> None:
        self.name, self.values = name, values

    def read(self, output: str, split: str, track: str) -> np.ndarray:
        return self.values[(split, track)]


def au_context() -> Context:
    """Hand-made AU splits (6 validation videos, one with an invalid stretch, 2 test tracks) and two inputs' unit
    probabilities: a skilled one that is too low (its best thresholds lie below 0.5) and a weak one."""
    rng = np.random.default_rng(7)
    splits, inputs = {}, {"good": {}, "weak": {}}
    for split, names in {
        "validation": [f"v{i}" for i in range(5)] + ["w_left", "w_right"],
        "test": ["t1", "t2"],
    }.items():
        labels = {}
        for name in names:
            units = (rng.random((300, 12)) < np.linspace(0.05, 0.4, 12)).astype(np.int8)
            if name == "v1":
                units[:40] = -1
            labels[name] = units
            truth = np.maximum(units, 0)
            inputs["good"][(split, name)] = 1 / (1 + np.exp(-(3.0 * truth - 2.5 + rng.normal(0, 1, truth.shape))))
            inputs["weak"][(split, name)] = 1 / (1 + np.exp(-(1.0 * truth - 0.5 + rng.normal(0, 1, truth.shape))))
        splits[split] = _Split(labels)
    return Context(_Dataset(splits), "au", {name: _Input(name, values) for name, values in inputs.items()})


def test_au_dwf_on_arrays_thresholds_inside_the_folds_and_state_round_trip() -> None:
    context = au_context()
    kind = DWFKind(DWFSettings(samples=60, folds=3), "au", 0).fit(context)
    assert kind.weights_.shape == (2, 12) and kind.thresholds_.shape == (12,) and kind.fold_thresholds_.shape == (3, 12)
    assert kind.thresholds_.min() < 0.5 and "thresholds" in kind.notes_[0]
    split = context.split("validation")
    outputs = dict(kind.predict(context, "validation", split.names))
    au = get_task("au")
    for position, name in enumerate(split.names):
        inputs = [context.inputs[n].read("pred", "validation", name) for n in ("good", "weak")]
        fold = kind.folds_[position]
        honest = threshold_at_half(fuse(kind.fold_weights_[fold], inputs), kind.fold_thresholds_[fold])
        np.testing.assert_array_equal(outputs[name][HONEST], honest.astype(np.float32))
        on = fuse(kind.weights_, inputs) * AU_STEPS >= np.round(kind.thresholds_ * AU_STEPS)
        np.testing.assert_array_equal(au.decide(outputs[name]["pred"]), on)
    pred = np.concatenate([outputs[n]["pred"] for n in split.names])
    honest = np.concatenate([outputs[n][HONEST] for n in split.names])
    good = np.concatenate([context.inputs["good"].read("pred", "validation", n) for n in split.names])
    in_sample, honest_score, alone = (
        task_scores("au", au.decide(x), split.labels()).score for x in (pred, honest, good)
    )
    assert in_sample >= honest_score > alone  # the good input's own 0.5 is too high: thresholds chosen on folds help
    loaded = DWFKind(kind.settings, "au", 0).load_state(kind.state())
    np.testing.assert_array_equal(
        next(loaded.predict(context, "test", ["t1"]))[1]["pred"], next(kind.predict(context, "test", ["t1"]))[1]["pred"]
    )


def test_au_rf_on_arrays_one_forest_per_unit() -> None:
    context = au_context()
    kind = RFKind(RFSettings(trees=[5, 10], max_rows=1000, folds=3), "au", 0).fit(context)
    assert len(kind.forests_) == 12 and kind.notes_[0].count("trees") == 12
    split = context.split("validation")
    outputs = dict(kind.predict(context, "validation", split.names))
    pred = np.concatenate([outputs[n]["pred"] for n in split.names])
    honest = np.concatenate([outputs[n][HONEST] for n in split.names])
    assert pred.shape == honest.shape == (len(split.labels()), 12) and pred.min() >= 0 and pred.max() <= 1
    au = get_task("au")
    assert (
        task_scores("au", au.decide(pred), split.labels()).score
        > task_scores("au", au.decide(honest), split.labels()).score
        > 0.3
    )
    loaded = RFKind(kind.settings, "au", 0).load_state(kind.state())
    np.testing.assert_array_equal(
        next(loaded.predict(context, "test", ["t2"]))[1]["pred"], next(kind.predict(context, "test", ["t2"]))[1]["pred"]
    )


# ----------------------------------------------------------------------------------------------- kinds end to end


def test_dwf_records_in_sample_and_honest_scores_and_beats_its_inputs(toy_world) -> None:
    dataset, store, board, systems = toy_world
    results = run_system("fuse", ["va", "expr"], dataset, "smoke", store, board, systems)
    for task in ("va", "expr"):
        inputs = [r for r in results if r.plan.task == task and r.plan.name.startswith("toy")]
        (fused,) = [r for r in results if r.plan.task == task and r.plan.name == "fuse"]
        node = store.node(fused.plan.key)
        for name in dataset.split(task, "validation").names:
            honest = node.read_track("honest-validation", name)
            assert honest.shape == node.read_track("pred-validation", name).shape
        assert not node.done_tracks("honest-test")  # the honest output exists for validation only
        (row,) = board.rows(task=task, system="fuse")
        assert row.extra["fitted_on_validation"] and row.honest and row.score == fused.score["score"]
        assert row.rank_score == pytest.approx(fused.honest["score"]) and row.score >= row.rank_score - 0.02
        single = []
        for result in inputs:
            (input_row,) = board.rows(task=task, system=result.plan.name) or [None]
            single.append(score_of(result, dataset, store))
            assert input_row is None  # inputs are computed, not recorded
        assert fused.honest["score"] > max(single), (task, fused.honest["score"], single)


def score_of(result, dataset, store) -> float:
    from harness.runner import node_predictions
    from harness.scoring import score_split

    split = dataset.split(result.plan.task, "validation")
    return score_split(split, node_predictions(store.node(result.plan.key), dataset, result.plan.task, "validation"))[
        "score"
    ]


def test_rerun_of_a_fusion_is_all_store_hits(toy_world, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, store, board, systems = toy_world
    run_system("fuse", ["va"], dataset, "smoke", store, board, systems)
    monkeypatch.setattr(DWFKind, "fit", lambda *a: pytest.fail("an unchanged re-run must not fit"))
    monkeypatch.setattr(DWFKind, "predict", lambda *a: pytest.fail("an unchanged re-run must not predict"))
    results = run_system("fuse", ["va"], dataset, "smoke", store, board, systems)
    assert all(r.hit for r in results) and results[-1].honest is not None


def test_a_killed_fusion_resumes_its_honest_outputs(toy_world) -> None:
    dataset, store, board, systems = toy_world
    (*_, first) = run_system("fuse", ["expr"], dataset, "smoke", store, board, systems)
    node = store.node(first.plan.key)
    name = dataset.split("expr", "validation").names[1]
    saved = np.array(node.read_track("honest-validation", name))
    node.discard(f"honest-validation/{name}.npy")
    (node.path / "node.json").unlink(missing_ok=True)  # as if killed before the node was marked complete
    (*_, again) = run_system("fuse", ["expr"], dataset, "smoke", store, board, systems)
    assert not again.hit
    np.testing.assert_array_equal(node.read_track("honest-validation", name), saved)


def test_rf_fuses_with_honest_scores_and_refits_identically_from_its_state(toy_world) -> None:
    dataset, store, board, systems = toy_world
    results = run_system("forest", ["va", "expr"], dataset, "smoke", store, board, systems)
    for task in ("va", "expr"):
        (fused,) = [r for r in results if r.plan.task == task and r.plan.name == "forest"]
        (row,) = board.rows(task=task, system="forest")
        assert row.honest and np.isfinite(row.rank_score) and "out-of-bag" in " ".join(row.extra["notes"])
        context = Context(dataset, task, {p.name: store_input(store, p) for p in fused.plan.inputs})
        state = store.node(fused.plan.key).load_state("model.safetensors")
        kind = RFKind(fused.plan.resolved.settings, task, 0).load_state(state)
        name = dataset.split(task, "test").names[0]
        ((_, outputs),) = list(kind.predict(context, "test", [name]))
        np.testing.assert_array_equal(outputs["pred"], store.node(fused.plan.key).read_track("pred-test", name))


def test_au_dwf_chooses_weights_and_thresholds_per_unit_inside_the_folds(toy_world) -> None:
    dataset, store, board, systems = toy_world
    results = run_system("fuse", ["au"], dataset, "smoke", store, board, systems)
    (fused,) = [r for r in results if r.plan.name == "fuse"]
    node = store.node(fused.plan.key)
    state = node.load_state("model.safetensors")
    thresholds, fold_thresholds = state["thresholds"].numpy(), state["fold_thresholds"].numpy()
    assert thresholds.shape == (12,) and fold_thresholds.shape == (3, 12)
    assert set(np.concatenate([thresholds, fold_thresholds.ravel()])) <= set(AU_THRESHOLDS)
    assert "thresholds" in " ".join(board.rows(task="au", system="fuse")[0].extra["notes"])
    split = dataset.split("au", "validation")
    context = Context(dataset, "au", {p.name: store_input(store, p) for p in fused.plan.inputs})
    folds = state["folds"].numpy()
    for position, name in enumerate(split.names):  # each track's honest rows: its fold's weights and thresholds
        inputs = [context.inputs[p.name].read("pred", "validation", name) for p in fused.plan.inputs]
        fold = folds[position]
        expected = threshold_at_half(fuse(state["fold_weights"].numpy()[fold], inputs), fold_thresholds[fold])
        np.testing.assert_allclose(node.read_track("honest-validation", name), expected, atol=1e-6)
        pred = node.read_track("pred-validation", name)
        decided = get_task("au").decide(pred)
        on = fuse(state["weights"].numpy(), inputs) * AU_STEPS >= np.round(thresholds * AU_STEPS)
        np.testing.assert_array_equal(decided, on)
    single = [score_of(r, dataset, store) for r in results if r.plan.name.startswith("toy")]
    assert fused.score["score"] >= max(single)  # in-sample: each input alone at 0.5 is among the choices
    assert fused.honest["score"] > max(single), (fused.honest["score"], single)  # the toys' 0.5 is too high


def test_au_dwf_refuses_inputs_that_are_not_probabilities(toy_world) -> None:
    dataset, store, board, systems = toy_world
    add_spec(systems, "toy_shifted", "kind: toy\ntasks: [au]\nseed: 6\noffset: 0.5\n")
    add_spec(systems, "fuse_shifted", "kind: dwf\ntasks: [au]\ninputs: [toy_a, toy_shifted]\nsamples: 10\nfolds: 2\n")
    with pytest.raises(
        SpecError,
        match=r"dwf \(au\): input spec 'toy_shifted', track '\S+' \(validation\): expected "
        r"probabilities in \[0, 1\], found values from 0\.5\d* to 1\.\d+",
    ):
        run_system("fuse_shifted", ["au"], dataset, "smoke", store, board, systems)


def test_au_rf_fuses_per_unit_and_refits_identically(toy_world) -> None:
    dataset, store, board, systems = toy_world
    results = run_system("forest", ["au"], dataset, "smoke", store, board, systems)
    (fused,) = [r for r in results if r.plan.name == "forest"]
    (row,) = board.rows(task="au", system="forest")
    assert row.honest and np.isfinite(row.rank_score) and " ".join(row.extra["notes"]).count("trees") == 12
    context = Context(dataset, "au", {p.name: store_input(store, p) for p in fused.plan.inputs})
    kind = RFKind(fused.plan.resolved.settings, "au", 0).load_state(
        store.node(fused.plan.key).load_state("model.safetensors")
    )
    name = dataset.split("au", "test").names[0]
    ((_, outputs),) = list(kind.predict(context, "test", [name]))
    stored = store.node(fused.plan.key).read_track("pred-test", name)
    np.testing.assert_array_equal(outputs["pred"], stored)
    assert stored.shape[1] == 12 and stored.min() >= 0 and stored.max() <= 1
    single = [score_of(r, dataset, store) for r in results if r.plan.name.startswith("toy")]
    assert fused.honest["score"] > min(single), (fused.honest["score"], single)


def test_an_input_fitted_on_validation_is_fused_through_its_honest_predictions(toy_world) -> None:
    dataset, store, board, systems = toy_world
    add_spec(systems, "fitted", "kind: toy_fitted\nseed: 4\nnoise: 3.0\n")  # in-sample perfect, honestly noise
    add_spec(systems, "fuse_fitted", "kind: dwf\ninputs: [toy_a, fitted]\nsamples: 50\nfolds: 2\n")
    results = run_system("fuse_fitted", ["va", "expr"], dataset, "smoke", store, board, systems)
    for result in (r for r in results if r.plan.name == "fuse_fitted"):
        weights = store.node(result.plan.key).load_state("model.safetensors")["weights"].numpy()
        assert weights[1].max() < 0.3, (result.plan.task, weights)  # its labels-as-predictions would take it all
        assert result.score["score"] < 0.99


def test_single_input_degenerates_to_it_and_equal_inputs_are_fine(toy_world) -> None:
    dataset, store, board, systems = toy_world
    add_spec(systems, "alone", "kind: dwf\ninputs: [toy_a]\nfolds: 2\nsamples: 20\n")
    add_spec(systems, "toy_a2", "kind: toy\nseed: 1\nnoise: 0.6\n")  # the same predictions as toy_a
    add_spec(systems, "twins", "kind: dwf\ninputs: [toy_a, toy_a2]\nfolds: 2\nsamples: 50\n")
    for system in ("alone", "twins"):
        results = run_system(system, ["va", "expr"], dataset, "smoke", store, board, systems)
        for result in (r for r in results if r.plan.name == system):
            toy = next(r for r in results if r.plan.name == "toy_a" and r.plan.task == result.plan.task)
            name = dataset.split(result.plan.task, "test").names[0]
            fused = store.node(result.plan.key).read_track("pred-test", name)
            original = store.node(toy.plan.key).read_track("pred-test", name)
            np.testing.assert_allclose(fused, original, atol=1e-6)


@pytest.mark.parametrize(
    ("toy", "match"),
    [
        ("noise: 0.5\nnan_in: {track}\n", r"track '{track}' \(validation\), output 'pred': expected finite values"),
        ("skip_test: true\n", r"track '{test}' \(test\), output 'pred': expected every track of the split, found none"),
        ("rows: -3\n", r"track '\S+' \(\w+\), output 'pred': expected \d+ rows \(one per label line\), found \d+"),
        ("rows: 4\n", r"track '\S+' \(\w+\), output 'pred': expected \d+ rows \(one per label line\), found \d+"),
    ],
)
def test_bad_inputs_are_refused_at_their_own_node(toy_world, toy: str, match: str) -> None:
    """A NaN, a missing track or a wrong row count fails the input's node (the runner checks what a kind yields), so
    the fusion over it is never fitted."""
    dataset, store, board, systems = toy_world
    track, test = dataset.split("va", "validation").names[2], dataset.split("va", "test").names[0]
    suffix = abs(hash(toy)) % 10_000
    bad = add_spec(systems, f"bad_{suffix}", "kind: toy\ntasks: [va]\n" + toy.format(track=track))
    add_spec(systems, f"fuse_bad_{suffix}", f"kind: dwf\ntasks: [va]\ninputs: [toy_a, {bad}]\nsamples: 10\nfolds: 2\n")
    message = rf"system '{bad}' \(va\), node \S+, " + match.format(track=track, test=test)
    with pytest.raises(KindOutputError, match=message):
        run_system(f"fuse_bad_{suffix}", ["va"], dataset, "smoke", store, board, systems)


def test_fusion_setting_errors(toy_world) -> None:
    dataset, store, board, systems = toy_world
    add_spec(systems, "gated", "kind: dwf\ntasks: [expr]\ninputs: [toy_a]\nentropy_gate: {toy_z: 0.9}\n")
    with pytest.raises(SpecError, match=r"key 'entropy_gate': 'toy_z' is not an input of this node \(inputs: toy_a\)"):
        run_system("gated", ["expr"], dataset, "smoke", store, board, systems)
    add_spec(systems, "crit", "kind: rf\ntasks: [va]\ninputs: [toy_a]\ncriteria: [gini]\ntrees: [2]\n")
    with pytest.raises(SpecError, match=r"key 'criteria': 'gini' is not a criterion of a random forest for va"):
        run_system("crit", ["va"], dataset, "smoke", store, board, systems)
    add_spec(systems, "leafless", "kind: rf\ntasks: [va]\ninputs: [toy_a]\nmin_samples_leaf: {expr: 5}\ntrees: [2]\n")
    with pytest.raises(SpecError, match=r"key 'min_samples_leaf': no count for task 'va' \(given for expr\)"):
        run_system("leafless", ["va"], dataset, "smoke", store, board, systems)
    add_spec(systems, "nofolds", "kind: dwf\ntasks: [va]\ninputs: [toy_a]\nfolds: 1\n")
    with pytest.raises(SpecError, match=r"key 'folds'"):
        run_system("nofolds", ["va"], dataset, "smoke", store, board, systems)


def test_kinds_refuse_empty_inputs_and_predicting_before_fitting(toy_world) -> None:
    dataset = toy_world[0]
    kind = DWFKind(DWFSettings(), "va", 0)
    with pytest.raises(SpecError, match=r"dwf \(va\): key 'inputs' is empty"):
        kind.fit(Context(dataset, "va", {}))
    with pytest.raises(RuntimeError, match="this rf system is not fitted"):
        next(RFKind(RFSettings(), "va", 0).predict(Context(dataset, "va", {}), "test", ["x"]))
