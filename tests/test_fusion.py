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
    corner_candidates,
    dirichlet_candidates,
    entropy_gate,
    expr_candidate_confusions,
    expr_candidate_scores,
    fuse,
    normalised_entropy,
    va_candidate_scores,
    va_moments,
    video_folds,
)
from harness.leaderboard import Leaderboard
from harness.metrics import expr_scores, va_scores
from harness.models.context import HONEST, Context
from harness.models.fusion import DWFKind, DWFSettings, RFKind, RFSettings
from harness.models.registry import KIND_MODULES, Kind, register_kind
from harness.runner import run_system, store_input
from harness.store import Store

# ----------------------------------------------------------------------------------------------- a toy input kind


class ToySettings(BaseModel):
    """A fake system: labels plus seeded noise, and switches that break it in the ways fusion must catch."""

    model_config = ConfigDict(extra="forbid")

    noise: float = 0.5
    nan_in: str | None = None  # a validation track whose first row is NaN
    skip_test: bool = False  # no prediction for the first test track
    rows: int = 0  # rows added to (or, negative, removed from) every track


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
            else:
                truth = np.zeros(n, int) if track.labels is None else np.resize(np.maximum(track.labels, 0), n)
                logits = 2.0 * np.eye(8)[truth] + rng.normal(0, self.settings.noise * 4, (n, 8))
                pred = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
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
    expected = [va_scores(fuse(w, list(inputs)), labels).score for w in weights]
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
        scores, [expr_scores(fuse(w, list(inputs)).argmax(1), labels).score for w in weights[:5]], atol=1e-12
    )
    with pytest.raises(ValueError, match="needs 8 class scores per frame; got 7"):
        expr_candidate_scores(weights[:, :, :7], inputs[:, :, :7], labels)


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
