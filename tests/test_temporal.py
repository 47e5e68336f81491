"""The step table (embeddings on a 5 Hz grid) and the dynamic kind, on inputs whose embeddings carry the labels."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import LabelEmbeddings

from harness.data.affwild2 import Dataset
from harness.errors import SpecError
from harness.metrics import task_scores
from harness.models.context import Context
from harness.models.step_table import (
    build_table,
    normalisation,
    normalise,
    resample_to_steps,
    step_targets,
    window_rows,
    windows,
)
from harness.models.temporal import DynamicKind, DynamicSettings, TemporalNet
from harness.tasks import get_task

FAST = {"epochs": 4, "patience": 2, "layers": 1, "heads": 4, "learning_rate": 3e-3, "window_s": 2.0, "batch_size": 64}


def fitted(synthetic_tiny: Path, task: str, **settings) -> tuple[DynamicKind, Context]:
    dataset = Dataset(synthetic_tiny)
    context = Context(dataset, task, {"fake_video": LabelEmbeddings(dataset, task)})
    return DynamicKind(DynamicSettings(**{**FAST, **settings}), task, seed=5).fit(context), context


def test_resampling_averages_each_step_at_a_low_fps() -> None:
    frames = np.arange(1, 13)  # 12 frames at 6 fps: 2 s; steps of 0.2 s hold one or two frames
    emb = frames[:, None].astype(np.float32)
    steps = resample_to_steps(emb, frames, 6.0, 10, 5.0)[:, 0]
    times = (frames - 1) / 6.0
    expected = [emb[np.floor(times * 5 + 1e-9) == j, 0].mean() for j in range(10)]
    np.testing.assert_allclose(steps, expected)
    gap = resample_to_steps(np.array([[1.0], [9.0]]), np.array([1, 30]), 30.0, 5, 5.0)[:, 0]
    assert gap.tolist() == [1.0, 1.0, 9.0, 9.0, 9.0]  # a step without a face takes the face nearest its centre


def test_short_track_gets_one_padded_window(synthetic_tiny: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    split = dataset.split("va", "train")
    table = build_table(split, LabelEmbeddings(dataset, "va"), "va", 5.0, list(split.names[:2]))
    table.lengths[0] = 3  # pretend the first track is 0.6 s long
    tracks, starts = windows(table, 30, 15)
    assert starts[tracks == 0].tolist() == [0]
    rows, inside = window_rows(table, tracks[:1], starts[:1], 30)
    assert inside[0].sum() == 3 and (rows[0, 3:] == table.offsets[0] + 2).all()


def test_normalisation_is_fitted_on_train(synthetic_tiny: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    table = build_table(dataset.split("va", "train"), LabelEmbeddings(dataset, "va"), "va", 5.0)
    shift, scale = normalisation(table, "minmax")
    values = normalise(table, "minmax", shift, scale)
    assert values.min() == pytest.approx(0.0, abs=1e-6) and values.max() == pytest.approx(1.0, abs=1e-6)
    per_track = normalise(table, "track", *normalisation(table, "track"))
    np.testing.assert_allclose(per_track[table.track_rows(0)].mean(0), 0.0, atol=1e-4)


@pytest.mark.parametrize("task", ["va", "expr", "au"])
def test_dynamic_learns_its_inputs_and_predicts_every_frame(synthetic_tiny: Path, task: str) -> None:
    kind, context = fitted(synthetic_tiny, task)
    split = context.split("validation")
    predictions = dict(kind.predict(context, "validation", list(split.names)))
    assert set(predictions) == set(split.names)
    definition = get_task(task)
    for name, outputs in predictions.items():
        assert outputs["pred"].shape == (split.track(name).n_rows, definition.width)
    pooled = np.concatenate([predictions[name]["pred"] for name in split.names])
    if task == "expr":
        np.testing.assert_allclose(pooled.sum(1), 1.0, atol=1e-5)
    if task == "au":
        assert pooled.min() >= 0 and pooled.max() <= 1  # AU probabilities
    assert task_scores(task, definition.decide(pooled), split.labels()).score > 0.3  # a constant (the prior) scores 0


def test_same_seed_same_model_and_state_round_trip(synthetic_tiny: Path) -> None:
    first, context = fitted(synthetic_tiny, "va", epochs=2)
    second, _ = fitted(synthetic_tiny, "va", epochs=2)
    names = list(context.split("test").names[:2])
    a = dict(first.predict(context, "test", names))
    b = dict(second.predict(context, "test", names))
    loaded = DynamicKind(first.settings, "va", 5).load_state(first.state())
    c = dict(loaded.predict(context, "test", names))
    for name in names:
        np.testing.assert_array_equal(a[name]["pred"], b[name]["pred"])
        np.testing.assert_array_equal(a[name]["pred"], c[name]["pred"])


def test_faceless_track_gets_the_prior_and_a_note(synthetic_tiny: Path) -> None:
    kind, context = fitted(synthetic_tiny, "va", epochs=1)
    dataset = context.dataset
    name = dataset.split("va", "validation").names[0]
    context = Context(dataset, "va", {"fake_video": LabelEmbeddings(dataset, "va", faceless=(name,))})
    (result,) = kind.predict(context, "validation", [name])
    assert (result[1]["pred"] == kind.prior_).all()
    assert any(name in note for note in kind.notes_)


def test_input_without_embeddings_is_named(synthetic_tiny: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    context = Context(dataset, "va", {"fake_video": LabelEmbeddings(dataset, "va", has_emb=False)})
    with pytest.raises(SpecError, match="input spec 'fake_video' has no 'emb' output.*static video spec"):
        DynamicKind(DynamicSettings(**FAST), "va", 0).fit(context)
    everyone = tuple(dataset.split("va", "train").names)
    context = Context(dataset, "va", {"fake_video": LabelEmbeddings(dataset, "va", faceless=everyone)})
    with pytest.raises(SpecError, match="input spec 'fake_video' produced no embeddings for the train tracks"):
        DynamicKind(DynamicSettings(**FAST), "va", 0).fit(context)


class ShortEmbeddings(LabelEmbeddings):
    """An input whose embeddings lack the last face frame of every track (stale outputs)."""

    def read(self, output: str, split: str, track: str) -> np.ndarray:
        return super().read(output, split, track)[:-1]


def test_embeddings_not_one_per_face_frame_are_named(synthetic_tiny: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    context = Context(dataset, "va", {"fake_video": ShortEmbeddings(dataset, "va")})
    with pytest.raises(SpecError, match=r"'fake_video': train track .* face frames; its stored outputs disagree"):
        DynamicKind(DynamicSettings(**FAST), "va", 0).fit(context)


def test_dynamic_takes_one_input_and_checks_heads(synthetic_tiny: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    with pytest.raises(SpecError, match="exactly one input.*found 0"):
        DynamicKind(DynamicSettings(**FAST), "va", 0).fit(Context(dataset, "va", {}))
    context = Context(dataset, "va", {"fake_video": LabelEmbeddings(dataset, "va")})
    with pytest.raises(SpecError, match="key 'heads': the embedding size 16 must be divisible by heads, found 3"):
        DynamicKind(DynamicSettings(**{**FAST, "heads": 3}), "va", 0).fit(context)


@pytest.mark.parametrize("shuffled", [False, True])
def test_step_means_equal_a_plain_scatter_add_bit_for_bit(shuffled: bool) -> None:
    rng = np.random.default_rng(4)
    frames = np.sort(rng.choice(np.arange(1, 3001), 2400, replace=False))
    embeddings = rng.normal(size=(len(frames), 24)).astype(np.float32)
    if shuffled:
        order = rng.permutation(len(frames))
        frames, embeddings = frames[order], embeddings[order]
    total = 480  # 96 s at 5 Hz: the last frames fall beyond the table and are left out
    step = np.floor((frames - 1.0) / 29.97 * 5.0 + 1e-9).astype(np.int64)
    inside = step < total
    sums = np.zeros((total, 24))
    np.add.at(sums, step[inside], embeddings[inside])
    counts = np.bincount(step[inside], minlength=total)
    out = resample_to_steps(embeddings, frames, 29.97, total, 5.0)
    filled = counts > 0
    np.testing.assert_array_equal(out[filled], (sums[filled] / counts[filled, None]).astype(np.float32))


def test_step_targets_keep_the_task_dtype_and_mark_invalid_and_outside_steps() -> None:
    rows = np.array([0, 2, 1, -1])  # the last step lies past the track's end
    va = np.array([[0.5, -0.5], [-5.0, -5.0], [0.25, 0.0]], np.float32)
    targets, valid = step_targets(va, rows, get_task("va"), 4)
    assert targets.dtype == np.float32 and targets[1].tolist() == [0.25, 0.0] and valid.tolist() == [1, 1, 0, 0]
    targets, valid = step_targets(np.array([3, -1, 7]), rows, get_task("expr"), 4)
    assert targets.dtype == np.int64 and targets.tolist() == [3, 7, -1, 3] and valid.tolist() == [1, 1, 0, 0]
    au = np.array([[1] * 12, [-1] * 12, [0, 1] * 6], np.int8)
    targets, valid = step_targets(au, rows, get_task("au"), 4)
    assert targets.dtype == np.int8 and targets.shape == (4, 12) and valid.tolist() == [1, 1, 0, 0]
    targets, valid = step_targets(None, rows, get_task("au"), 4)  # the test split: no labels
    assert targets.shape == (4, 12) and not valid.any()


def test_temporal_net_gives_the_task_outputs_per_step() -> None:
    settings = DynamicSettings(**FAST)
    features = torch.randn(3, 10, 16) * 20
    for task, width in (("va", 2), ("expr", 8), ("au", 12)):
        torch.manual_seed(0)
        net = TemporalNet(16, task, settings).eval()
        net.head.bias.data.fill_(3.0)
        out = net(features)
        assert out.shape == (3, 10, width)
        assert (out.abs().max() <= 1) == (task == "va")  # VA bounded by tanh; EXPR and AU logits


def test_a_diverged_model_stops_training_with_an_error_saying_so(
    synthetic_tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NaN outputs would otherwise decide as class 0 (EXPR) or as no AU and train on silently."""
    from harness.errors import TrainingError
    from harness.models.training import check_converging

    monkeypatch.setattr(DynamicKind, "_step_outputs", lambda self, net, table: np.full((len(table.valid), 8), np.nan))
    with pytest.raises(TrainingError, match=r"dynamic \(expr\): the validation outputs hold NaN .* diverged"):
        fitted(synthetic_tiny, "expr")
    finite = np.zeros((3, 2), np.float32)
    assert check_converging(finite, "x") is finite
    with pytest.raises(TrainingError, match="^x: "):
        check_converging(np.array([[0.0, np.inf]]), "x")
