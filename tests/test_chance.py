"""Chance levels (:meth:`harness.tasks.TaskDef.chance`): the best constant prediction and the prior-sampled one,
scored by the task's own metric; checked against the closed forms on small label sets."""

import numpy as np
import pytest

from harness.chance import chance_levels, split_chance
from harness.data.affwild2 import Dataset
from harness.tasks import get_task


def test_va_chance_is_zero_for_any_constant_and_near_zero_sampled() -> None:
    rng = np.random.default_rng(0)
    labels = np.clip(rng.normal(0.2, 0.3, (4000, 2)), -1, 1).astype(np.float32)
    labels[:10] = -5.0  # invalid frames are left out, as in scoring
    chance = get_task("va").chance(labels, labels[::-1])
    assert chance.constant == 0.0 and chance.constant_name == "train mean"
    assert abs(chance.sampled) < 0.03 and chance.level == max(0.0, chance.sampled)


def test_expr_chance_is_the_better_of_one_class_and_the_train_prior() -> None:
    labels = np.repeat(np.arange(8), [500, 100, 100, 100, 100, 50, 30, 20])
    chance = get_task("expr").chance(labels, labels)
    p = 500 / 1000
    assert chance.constant == pytest.approx(2 * p / (1 + p) / 8) and chance.constant_name == "always Neutral"
    shares = np.bincount(labels) / len(labels)
    assert chance.sampled == pytest.approx(shares.mean(), abs=0.02)  # E[F1_c] ~ 2pq/(p+q) = p with q = p
    assert chance.level == max(chance.constant, chance.sampled)
    again = get_task("expr").chance(labels, labels)
    assert again == chance  # seeded: the same level every time


def test_au_chance_is_every_unit_on_when_that_beats_the_prior() -> None:
    rng = np.random.default_rng(1)
    rates = np.linspace(0.05, 0.6, 12)
    labels = (rng.random((3000, 12)) < rates).astype(np.int8)
    labels[5] = -1
    chance = get_task("au").chance(labels, labels)
    valid = labels[np.all(labels >= 0, axis=1)]
    p = valid.mean(0)
    assert chance.constant == pytest.approx(np.mean(2 * p / (1 + p)))
    assert chance.sampled == pytest.approx(p.mean(), abs=0.02)
    assert chance.level == chance.constant and chance.constant_name == "every AU on"
    assert "best constant: every AU on" in chance.describe()


def test_train_labels_without_a_valid_frame_have_no_prior() -> None:
    with pytest.raises(ValueError, match="EXPR train labels have no valid frame"):
        get_task("expr").chance(np.array([0, 1, 2]), np.array([-1, -1]))


def test_chance_levels_of_the_tiny_dataset(synthetic_tiny) -> None:
    dataset = Dataset(synthetic_tiny)
    levels = chance_levels(dataset, ("va", "expr", "au"))
    assert set(levels) <= {"va", "expr", "au"} and "expr" in levels
    assert levels["expr"] == split_chance(dataset, "expr")
    assert all(0.0 <= level.level < 0.5 for level in levels.values())
