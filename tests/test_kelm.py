"""The functionals + Kernel ELM kind: functionals, the task's window targets, weights and outputs, C chosen on
validation, honest fold choices."""

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import LabelEmbeddings

from harness.data.affwild2 import Dataset
from harness.metrics import task_scores
from harness.models import kelm as kelm_module
from harness.models.context import HONEST, Context
from harness.models.kelm import KelmKind, KelmSettings, prevalence_offsets, window_functionals
from harness.spec import load_spec, resolve_variants
from harness.tasks import get_task


def test_functionals_ignore_steps_past_the_track() -> None:
    features = np.array([[1.0, 10.0], [3.0, 20.0], [8.0, 30.0]], np.float32)
    rows = np.array([[0, 1, 2], [1, 2, 2]])
    inside = np.array([[True, True, True], [True, True, False]])
    out = window_functionals(features, rows, inside, ["mean", "max", "min", "std"], chunk=1)
    np.testing.assert_allclose(out[0], [4.0, 20.0, 8.0, 30.0, 1.0, 10.0, np.std([1, 3, 8]), np.std([10, 20, 30])])
    np.testing.assert_allclose(out[1], [5.5, 25.0, 8.0, 30.0, 3.0, 20.0, 2.5, 5.0])


def test_window_targets_and_sample_weights_come_from_the_task() -> None:
    va_task, expr_task, au_task = (get_task(name) for name in ("va", "expr", "au"))
    va = va_task.window_target(np.array([[[0.2, 0.4], [0.4, -5.0], [9.0, 9.0]]]), np.array([[True, True, False]]))
    np.testing.assert_allclose(va, [[0.3, -2.3]])  # an invalid step is masked by the caller's labelled mask
    steps = np.array([[3, 3, 1, -1], [2, 5, 5, 5]])
    expr = expr_task.window_target(steps, np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool))
    assert expr.argmax(1).tolist() == [3, 5] and expr.sum(1).tolist() == [1.0, 1.0]
    weights = expr_task.sample_weights(expr_task.from_one_hot(np.eye(8)[[0, 0, 0, 1]]))
    assert weights[3] == pytest.approx(3 * weights[0]) and weights.mean() == pytest.approx(1.0)
    units = np.zeros((1, 4, 12), np.int8)
    units[0, :2, 0] = 1  # AU1 on in 2 of the 3 labelled steps, AU2 in 1, AU4 only in the unlabelled step
    units[0, 2, 1] = units[0, 3, 2] = 1
    au = au_task.window_target(units, np.array([[True, True, True, False]]))
    assert au.tolist() == [[1.0, 0.0] + [0.0] * 10]
    assert au_task.sample_weights(au_task.from_one_hot(au)).tolist() == [1.0]
    assert va_task.sample_weights(va).tolist() == [1.0]  # all ones: the unweighted ELM


def test_regressor_scores_become_the_tasks_outputs() -> None:
    scores = np.array([[-1.5, 0.25, 1.2], [0.4, -0.2, 0.0]])
    va = get_task("va").outputs_from_scores(scores[:, :2])
    assert va.dtype == np.float32 and va.tolist() == np.float32([[-1.0, 0.25], [0.4, -0.2]]).tolist()
    au = np.tile(scores, (1, 4))
    np.testing.assert_array_equal(get_task("au").outputs_from_scores(au)[0, :3], [0.0, 0.25, 1.0])
    assert get_task("au").decide(get_task("au").clip_scores(au))[0, :3].tolist() == [0, 0, 1]
    expr = get_task("expr").outputs_from_scores(np.array([[-1.0, 3.0, 1.0] + [0.0] * 5, [-1.0] * 8]))
    np.testing.assert_allclose(expr[0, :3], [0.0, 0.75, 0.25])
    np.testing.assert_allclose(expr[1], 1 / 8)  # nothing positive: uniform
    assert get_task("expr").decide(get_task("expr").clip_scores(np.array([[-2.0, -1.0] + [-3.0] * 6]))).tolist() == [1]


@pytest.mark.parametrize("task", ["va", "expr"])
def test_kelm_learns_and_chooses_c_on_validation(synthetic_tiny: Path, task: str) -> None:
    dataset = Dataset(synthetic_tiny)
    context = Context(dataset, task, {"fake_video": LabelEmbeddings(dataset, task)})
    kind = KelmKind(KelmSettings(window_s=2.0, honest_folds=3), task, seed=2).fit(context)
    split = context.split("validation")
    results = dict(kind.predict(context, "validation", list(split.names)))
    for name in split.names:
        assert (
            results[name]["pred"].shape == results[name][HONEST].shape == (split.track(name).n_rows, kind.prior_.size)
        )
    pooled = np.concatenate([results[name]["pred"] for name in split.names])
    honest = np.concatenate([results[name][HONEST] for name in split.names])
    if task == "expr":
        np.testing.assert_allclose(pooled.sum(1), 1.0, atol=1e-5)
        pooled, honest = pooled.argmax(1), honest.argmax(1)
    assert task_scores(task, pooled, split.labels()).score > 0.4
    assert task_scores(task, honest, split.labels()).score > 0.3
    assert set(kind.honest_choice_.tolist()) <= set(range(len(kind.settings.c_grid)))
    test_names = list(context.split("test").names[:1])
    (only,) = kind.predict(context, "test", test_names)
    assert set(only[1]) == {"pred"}  # honest predictions exist for validation only
    loaded = KelmKind(kind.settings, task, 2).load_state(kind.state())
    (again,) = loaded.predict(context, "test", test_names)
    np.testing.assert_array_equal(only[1]["pred"], again[1]["pred"])


def test_kelm_serves_au_with_probabilities_decided_at_half(synthetic_tiny: Path) -> None:
    dataset = Dataset(synthetic_tiny)
    context = Context(dataset, "au", {"fake_video": LabelEmbeddings(dataset, "au")})
    kind = KelmKind(KelmSettings(window_s=2.0, honest_folds=3), "au", seed=2).fit(context)
    split = context.split("validation")
    results = dict(kind.predict(context, "validation", list(split.names)))
    pooled = np.concatenate([results[name]["pred"] for name in split.names])
    honest = np.concatenate([results[name][HONEST] for name in split.names])
    assert pooled.shape == (len(split.labels()), 12) and pooled.dtype == np.float32
    assert pooled.min() >= 0.0 and pooled.max() <= 1.0 and 0.0 < kind.prior_.min() <= kind.prior_.max() < 1.0
    au = get_task("au")
    assert task_scores("au", au.decide(pooled), split.labels()).score > 0.4
    assert task_scores("au", au.decide(honest), split.labels()).score > 0.3
    test_names = list(context.split("test").names[:1])
    (only,) = kind.predict(context, "test", test_names)
    (again,) = KelmKind(kind.settings, "au", 2).load_state(kind.state()).predict(context, "test", test_names)
    np.testing.assert_array_equal(only[1]["pred"], again[1]["pred"])


def test_beyond_the_exact_bound_nystrom_is_used_and_noted(
    synthetic_tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = Dataset(synthetic_tiny)
    context = Context(dataset, "va", {"fake_video": LabelEmbeddings(dataset, "va")})
    monkeypatch.setattr(kelm_module, "AUTO_LANDMARKS", 40)
    auto = KelmKind(KelmSettings(window_s=2.0, max_exact_rows=10), "va", 0).fit(context)
    assert auto.models_[0].method == "nystrom" and len(auto.models_[0].support) == 40
    (note,) = auto.notes_
    assert re.fullmatch(
        r"kelm \(va\): [\d,]+ training windows exceed the exact bound \(max_exact_rows=10\): Nyström with 40 "
        r"landmarks; bench/bench_kelm.py measured M = 3,000 within 1% of exact .*",
        note,
    )
    exact = KelmKind(KelmSettings(window_s=2.0), "va", 0).fit(context)
    assert exact.models_[0].method == "exact" and exact.notes_ == []
    nystrom = KelmKind(KelmSettings(window_s=2.0, max_exact_rows=10, nystrom_landmarks=50), "va", 0).fit(context)
    assert nystrom.models_[0].method == "nystrom" and len(nystrom.models_[0].support) == 50 and nystrom.notes_ == []


def test_functionals_list_is_a_setting_not_a_sweep(tmp_path: Path) -> None:
    (tmp_path / "k.yaml").write_text("kind: kelm\nfunctionals: [mean, std]\nwindow_s: [2, 4]\n")
    variants = resolve_variants(load_spec("k", tmp_path), "smoke")
    assert [v.name for v in variants] == ["k[window_s=2]", "k[window_s=4]"]
    assert variants[0].settings.functionals == ["mean", "std"]


def test_prevalence_offsets_decide_each_unit_at_its_training_rate() -> None:
    rng = np.random.default_rng(0)
    targets = np.zeros((1000, 3))
    targets[:80, 0] = 1  # rare: 8%
    targets[:500, 1] = 1  # common: 50%
    outputs = np.stack([0.3 * targets[:, 0], 0.2 + 0.4 * targets[:, 1], np.zeros(1000)], 1)  # shrunk least squares
    outputs += rng.normal(0, 0.02, outputs.shape)
    offsets = prevalence_offsets(outputs, targets)
    decided = (outputs + offsets) >= 0.5
    assert decided[:, 0].mean() == pytest.approx(0.08, abs=0.002) and decided[:80, 0].all()  # F1 0 at 0.5 unshifted
    assert decided[:, 1].mean() == pytest.approx(0.5, abs=0.002)
    assert offsets[2] == 0.0  # never on in training: left unshifted (never decided on)
