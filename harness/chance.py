"""Chance levels of a dataset's splits: :meth:`harness.tasks.TaskDef.chance` of a split's labels, with the train
split's labels as the prior. ``abaw regress`` guards against scores falling to chance; ``abaw leaderboard`` shows it."""

from __future__ import annotations

from collections.abc import Iterable

from harness.data.affwild2 import Dataset
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
