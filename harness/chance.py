"""Chance levels of a dataset's splits: :meth:`harness.tasks.TaskDef.chance` of a split's labels, with the train
split's labels as the prior. ``abaw regress`` guards against scores falling to chance; ``abaw leaderboard`` shows it.

A chance level is the score of trivial predictions scored exactly as real ones: the best constant prediction (VA: any
constant scores CCC 0; EXPR: each single class; AU: every unit on) and predictions drawn frame by frame from the train
labels (the prior); the level is the higher of the two."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from harness.data.affwild2 import Dataset
from harness.data.root import default_synthetic_root
from harness.tasks import Chance, get_task


def split_chance(dataset: Dataset, task: str, split: str = "validation") -> Chance:
    """The chance level of ``task`` on ``split`` of ``dataset`` (train labels as the prior)."""
    return get_task(task).chance(dataset.split(task, split).labels(), dataset.split(task, "train").labels())


def chance_levels(dataset: Dataset, tasks: Iterable[str], split: str = "validation") -> dict[str, Chance]:
    """:func:`split_chance` of each of ``tasks`` that the dataset holds with labels on ``split`` and train."""
    levels = {}
    for task in tasks:
        held = all(dataset.layout.split_dir(task, name) is not None for name in (split, "train"))
        if held and dataset.split(task, split).has_labels:
            levels[task] = split_chance(dataset, task, split)
    return levels


def leaderboard_chance(
    data: Path | None, tasks: Iterable[str], fingerprints: Iterable[str]
) -> tuple[str, str, dict[str, Chance]] | None:
    """``(fingerprint, dataset name, levels)`` for ``abaw leaderboard``: the validation chance levels of the dataset
    at ``data`` (else ``$ABAW_DATA``, else the default synthetic dataset if it exists: never generated here), when
    its fingerprint is among the rankings' ``fingerprints``; None when no such dataset is at hand."""
    root = data or (Path(os.environ["ABAW_DATA"]) if os.environ.get("ABAW_DATA") else default_synthetic_root())
    if not root.is_dir():
        return None
    dataset = Dataset(root)
    fingerprint = dataset.fingerprint()
    if fingerprint not in set(fingerprints):
        return None
    return fingerprint, dataset.root.name, chance_levels(dataset, tasks)
